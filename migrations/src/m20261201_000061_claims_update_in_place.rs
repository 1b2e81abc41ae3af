//! Claims update their rows in place (issue 10).
//!
//! A claim sets only `lease_owner` and `lease_until`. While `lease_owner` was indexed, every
//! claim wrote a new entry into each of the table's indexes (five on `scheduled_tasks`);
//! without that index PostgreSQL can make it a heap-only update, which touches no index at
//! all. No query reads by `lease_owner` alone any more: claims return their rows
//! (`UPDATE … RETURNING`), and every write that checks a lease also names the row's id.
//!
//! On PostgreSQL the three queues and `orders` also leave a quarter of each page free
//! (`fillfactor = 75`, for rows inserted from now on), so that such an update finds room
//! on the row's own page. SQLite has no such setting; there only the indexes go.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table) of the indexes this drops; `down` restores them.
const LEASE_OWNER_INDEXES: [(&str, &str); 3] = [
    ("ix_scheduled_tasks_lease_owner", "scheduled_tasks"),
    ("ix_outbox_lease_owner", "outbox"),
    ("ix_webhook_deliveries_lease_owner", "webhook_deliveries"),
];

/// Tables whose rows are updated many times each.
const CHURNED: [&str; 4] = ["scheduled_tasks", "outbox", "webhook_deliveries", "orders"];
const FILLFACTOR: u8 = 75;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in LEASE_OWNER_INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        set_fillfactor(manager, Some(FILLFACTOR)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_fillfactor(manager, None).await?;
        for (name, table) in LEASE_OWNER_INDEXES {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Alias::new(table))
                        .col(Alias::new("lease_owner"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

/// `Some(n)`: leave `100 - n` % of each new page free; `None`: PostgreSQL's default again.
async fn set_fillfactor(manager: &SchemaManager<'_>, fill: Option<u8>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for table in CHURNED {
        let sql = match fill {
            Some(n) => format!("ALTER TABLE {table} SET (fillfactor = {n})"),
            None => format!("ALTER TABLE {table} RESET (fillfactor)"),
        };
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}
