//! Indexes for what the hot queries read (issue 9, item 6):
//! - every claim reads its rows back by `lease_owner` (its round's token), on all three
//!   leased tables; without an index that read scans the whole table, history included;
//! - retention finds delivered and dead webhook deliveries by status and age.
//!
//! The other hot queries already have theirs: the task and delivery candidate selects use
//! `(status, run_at)`, the relay's `(published_at, created_at)`, and retention of done tasks
//! and published outbox rows reuses those two.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScheduledTasks {
    Table,
    LeaseOwner,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    LeaseOwner,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    LeaseOwner,
    Status,
    DeliveredAt,
    DeadAt,
}

/// (index name, table, columns)
fn indexes() -> Vec<(&'static str, DynIden, Vec<DynIden>)> {
    vec![
        (
            "ix_scheduled_tasks_lease_owner",
            ScheduledTasks::Table.into_iden(),
            vec![ScheduledTasks::LeaseOwner.into_iden()],
        ),
        (
            "ix_outbox_lease_owner",
            Outbox::Table.into_iden(),
            vec![Outbox::LeaseOwner.into_iden()],
        ),
        (
            "ix_webhook_deliveries_lease_owner",
            WebhookDeliveries::Table.into_iden(),
            vec![WebhookDeliveries::LeaseOwner.into_iden()],
        ),
        (
            "ix_webhook_deliveries_status_delivered_at",
            WebhookDeliveries::Table.into_iden(),
            vec![
                WebhookDeliveries::Status.into_iden(),
                WebhookDeliveries::DeliveredAt.into_iden(),
            ],
        ),
        (
            "ix_webhook_deliveries_status_dead_at",
            WebhookDeliveries::Table.into_iden(),
            vec![
                WebhookDeliveries::Status.into_iden(),
                WebhookDeliveries::DeadAt.into_iden(),
            ],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, cols) in indexes() {
            let mut ix = Index::create();
            ix.name(name).table(table);
            for c in cols {
                ix.col(c);
            }
            manager.create_index(ix.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in indexes() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
