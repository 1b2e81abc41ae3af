//! `scheduled_tasks`: durable timers (polls, expiries, provider-step retries) with leases.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScheduledTasks {
    Table,
    Id,
    OrderId,
    Kind,
    Status,
    RunAt,
    Attempt,
    LeaseOwner,
    LeaseUntil,
    LastError,
    TraceCtx,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ScheduledTasks::Table)
                    .col(
                        ColumnDef::new(ScheduledTasks::Id)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ScheduledTasks::OrderId).text().not_null())
                    .col(ColumnDef::new(ScheduledTasks::Kind).text().not_null())
                    .col(ColumnDef::new(ScheduledTasks::Status).text().not_null())
                    .col(
                        ColumnDef::new(ScheduledTasks::RunAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ScheduledTasks::Attempt)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(ScheduledTasks::LeaseOwner).text().null())
                    .col(
                        ColumnDef::new(ScheduledTasks::LeaseUntil)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(ScheduledTasks::LastError).text().null())
                    .col(ColumnDef::new(ScheduledTasks::TraceCtx).text().null())
                    .col(
                        ColumnDef::new(ScheduledTasks::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ScheduledTasks::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        // At most one task of each kind per order (re-scheduling updates the row).
        manager
            .create_index(
                Index::create()
                    .name("ux_scheduled_tasks_order_id_kind")
                    .table(ScheduledTasks::Table)
                    .col(ScheduledTasks::OrderId)
                    .col(ScheduledTasks::Kind)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The claim query: status = 'pending' AND run_at <= now ORDER BY run_at.
        manager
            .create_index(
                Index::create()
                    .name("ix_scheduled_tasks_status_run_at")
                    .table(ScheduledTasks::Table)
                    .col(ScheduledTasks::Status)
                    .col(ScheduledTasks::RunAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ScheduledTasks::Table).to_owned())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
