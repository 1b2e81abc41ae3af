//! rampd's database schema, as sea-orm-migration migrations.
//!
//! Every migration must produce the same logical schema on PostgreSQL and SQLite:
//! times are `BIGINT` unix epoch milliseconds, ids are `TEXT`, JSON is stored as `TEXT`
//! and flags are `BOOLEAN`. No backend-specific column types, no foreign keys (the
//! worker enforces relationships in its transactions), no database-side defaults for
//! times (the clock is an argument in rampd, never `now()` in SQL).
//!
//! The worker applies these with `Migrator::up(&db, None)` (`rampd migrate`).

pub use sea_orm_migration::prelude::*;

/// Run `sql` when the database is PostgreSQL; nothing on SQLite (for the planner aids that
/// only PostgreSQL needs, such as the one-row set functions).
async fn on_postgres_only(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::{ConnectionTrait as _, DbBackend as Backend};
    if manager.get_database_backend() == Backend::Postgres {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}

mod m20261121_000001_orders;
mod m20261121_000002_order_events;
mod m20261121_000003_processed_commands;
mod m20261121_000004_scheduled_tasks;
mod m20261121_000005_outbox;
mod m20261121_000006_webhook_deliveries;
mod m20261121_000007_deposit_tx_hash;
mod m20261122_000041_webhook_endpoints;
mod m20261122_000042_webhook_attempts;
mod m20261201_000001_h2_lease_owner_and_retention_indexes;
mod m20261201_000031_h3_command_fingerprint;
mod m20261201_000051_provider_callbacks;
mod m20261201_000052_task_priority;
mod m20261201_000061_claims_update_in_place;
mod m20261202_000071_orders_history_seq;
mod m20261202_000081_json_rows;
mod m20261202_000091_claim_ids;

/// All of rampd's migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_orders::Migration),
            Box::new(m20261121_000002_order_events::Migration),
            Box::new(m20261121_000003_processed_commands::Migration),
            Box::new(m20261121_000004_scheduled_tasks::Migration),
            Box::new(m20261121_000005_outbox::Migration),
            Box::new(m20261121_000006_webhook_deliveries::Migration),
            Box::new(m20261121_000007_deposit_tx_hash::Migration),
            Box::new(m20261122_000041_webhook_endpoints::Migration),
            Box::new(m20261122_000042_webhook_attempts::Migration),
            Box::new(m20261201_000001_h2_lease_owner_and_retention_indexes::Migration),
            Box::new(m20261201_000031_h3_command_fingerprint::Migration),
            Box::new(m20261201_000051_provider_callbacks::Migration),
            Box::new(m20261201_000052_task_priority::Migration),
            Box::new(m20261201_000061_claims_update_in_place::Migration),
            Box::new(m20261202_000071_orders_history_seq::Migration),
            Box::new(m20261202_000081_json_rows::Migration),
            Box::new(m20261202_000091_claim_ids::Migration),
        ]
    }
}
