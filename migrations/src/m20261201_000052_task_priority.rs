//! `scheduled_tasks.priority`: which due task is claimed first when the provider's request
//! budget cannot serve every due order (`rampd_domain::order::Urgency`: 0 an order in
//! motion, 1 a parked order's deadline check, 2 a parked order). Rows written before
//! this migration are 0, as they were all claimed alike. The index serves the claim,
//! `WHERE status = 'ready' AND run_at <= now ORDER BY priority, run_at`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScheduledTasks {
    Table,
    Status,
    Priority,
    RunAt,
}

const INDEX: &str = "ix_scheduled_tasks_status_priority_run_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ScheduledTasks as T;
        manager
            .alter_table(
                Table::alter()
                    .table(T::Table)
                    .add_column(
                        ColumnDef::new(T::Priority)
                            .small_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(T::Table)
                    .col(T::Status)
                    .col(T::Priority)
                    .col(T::RunAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(ScheduledTasks::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ScheduledTasks::Table)
                    .drop_column(ScheduledTasks::Priority)
                    .to_owned(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
