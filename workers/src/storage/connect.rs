//! Opening the database (PostgreSQL or SQLite), applying migrations, and starting write
//! transactions that behave the same way on both backends.

use std::time::Duration;

use rampd_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Most connections a SQLite pool opens. SQLite has one writer at a time (WAL lets readers
/// proceed alongside it); writers queue on the database lock for up to `SQLITE_BUSY_TIMEOUT`.
pub const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Most connections a PostgreSQL pool opens.
pub const POSTGRES_MAX_CONNECTIONS: u32 = 16;
/// How long a SQLite statement waits for a lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
/// How much of a SQLite database file is read through a memory map (256 MiB).
pub const SQLITE_MMAP_BYTES: u64 = 256 << 20;
/// How long getting a pooled connection (including opening a new one) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `url`: `postgres://…`/`postgresql://…` or `sqlite:…`.
///
/// SQLite: the database file is created if missing (as with `?mode=rwc`) unless the URL
/// names a `mode` itself, and every pooled connection is opened with
/// `journal_mode=WAL`, `busy_timeout=5000`, `synchronous=NORMAL`, `foreign_keys=ON` and
/// `mmap_size` [`SQLITE_MMAP_BYTES`]
/// (sqlx runs these PRAGMAs as it opens each connection). The pool holds up to
/// [`SQLITE_MAX_CONNECTIONS`]. An in-memory database (`sqlite::memory:`) lives as long as
/// one pooled connection does, so its pool never lets its connections expire.
///
/// PostgreSQL: up to [`POSTGRES_MAX_CONNECTIONS`] connections; acquiring one times out
/// after [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opt = ConnectOptions::new(url.to_owned());
    // sqlx would log every statement at INFO through `log`; sea-orm's own tracing spans
    // already record statements.
    opt.sqlx_logging(false).connect_timeout(CONNECT_TIMEOUT);

    if DbBackend::Sqlite.is_prefix_of(url) {
        let create = !url_has_query_param(url, "mode");
        opt.max_connections(SQLITE_MAX_CONNECTIONS)
            .min_connections(1)
            .map_sqlx_sqlite_opts(move |o| {
                let o = if create { o.create_if_missing(true) } else { o };
                o.journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    // Pages are read through a shared memory map instead of being copied
                    // into each connection's cache with a read call per page.
                    .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
            });
        if is_sqlite_memory_url(url) {
            // The last connection closing would drop the whole in-memory database.
            opt.idle_timeout(None).max_lifetime(None);
        }
    } else {
        opt.max_connections(POSTGRES_MAX_CONNECTIONS)
            .min_connections(1);
    }

    Database::connect(opt).await
}

/// Key of the PostgreSQL advisory lock that serializes concurrent `migrate` calls
/// ("rampd" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0072_616d_7064;

/// Applies every pending migration (a no-op when the schema is current).
///
/// Safe to run from several replicas at once: all pending migrations are applied in one
/// transaction that first takes a lock (PostgreSQL: a transaction-scoped advisory lock;
/// SQLite: `BEGIN IMMEDIATE`), so a second caller waits, then finds nothing pending.
/// Each migration runs in a savepoint inside it and either all pending migrations are
/// applied or none.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    if !is_sqlite(db) {
        txn.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
        ))
        .await?;
    }
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Whether any migration is not yet applied. Read-only: it does not create the
/// migration bookkeeping table. Errors if the database has a migration applied that this
/// build does not know (a newer schema).
pub async fn migrations_pending(db: &DatabaseConnection) -> Result<bool, DbErr> {
    Ok(!Migrator::get_pending_migrations_read_only(db)
        .await?
        .is_empty())
}

/// Whether `db` is SQLite (as opposed to PostgreSQL).
pub fn is_sqlite(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Sqlite
}

/// Starts a transaction that is going to write.
///
/// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken up front (waiting up to the
/// busy timeout), so a transaction that reads and then writes cannot fail with
/// `SQLITE_BUSY` at its first write because another connection wrote in between. On
/// PostgreSQL it is a plain `BEGIN` (READ COMMITTED); use optimistic version checks.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    if is_sqlite(db) {
        db.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
    } else {
        db.begin().await
    }
}

/// Commit when `result` is Ok, roll back otherwise.
pub(crate) async fn settle<T, E: From<DbErr>>(
    txn: DatabaseTransaction,
    result: Result<T, E>,
) -> Result<T, E> {
    match result {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(e) => {
            txn.rollback().await.ok();
            Err(e)
        }
    }
}

/// Whether `err` is a unique-index or primary-key violation (on either backend).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

fn url_has_query_param(url: &str, name: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|kv| kv.split_once('=').map_or(kv, |(k, _)| k) == name)
    })
}

fn is_sqlite_memory_url(url: &str) -> bool {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    path.ends_with(":memory:") || query.split('&').any(|kv| kv == "mode=memory")
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn url_helpers() {
        assert!(!url_has_query_param("sqlite://rampd.db", "mode"));
        assert!(url_has_query_param("sqlite://rampd.db?mode=rw", "mode"));
        assert!(url_has_query_param(
            "sqlite://rampd.db?cache=shared&mode=ro",
            "mode"
        ));
        assert!(!url_has_query_param(
            "sqlite://mode.db?cache=shared",
            "mode"
        ));
        assert!(is_sqlite_memory_url("sqlite::memory:"));
        assert!(is_sqlite_memory_url("sqlite://x.db?mode=memory"));
        assert!(!is_sqlite_memory_url("sqlite://memory.db"));
    }
}
