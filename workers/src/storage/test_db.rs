//! Fresh databases for storage tests: a PostgreSQL database per test (dropped at the end,
//! also when the test panics) and a SQLite temp file (removed with its -wal/-shm).
//!
//! PostgreSQL: `RAMPD_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names an admin connection that may `CREATE DATABASE`.

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::connect::connect;

const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn pg_admin_url() -> String {
    std::env::var("RAMPD_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
}

fn random_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh PostgreSQL database named `<prefix>_<random>`; `drop_db` drops it, and so does
/// `Drop` if a test panics.
pub(crate) struct PgDb {
    admin: DatabaseConnection,
    name: String,
    pub db: DatabaseConnection,
    dropped: bool,
}

impl PgDb {
    pub async fn create(prefix: &str) -> PgDb {
        let admin_url = pg_admin_url();
        let admin = connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required: {e}"));
        let name = format!("{prefix}_{}", random_suffix());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let (base, _) = admin_url.rsplit_once('/').expect("database in URL");
        let db = connect(&format!("{base}/{name}"))
            .await
            .expect("connect to fresh database");
        PgDb {
            admin,
            name,
            db,
            dropped: false,
        }
    }

    /// The server ends every session of this database (as a restart or a proxy would),
    /// leaving the pool's connections broken; returns once none is left.
    pub async fn terminate_sessions(&self) -> usize {
        let sql = format!(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = '{}'",
            self.name
        );
        let ended = self.count(&sql).await;
        let left = format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        );
        while self.count(&left).await > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        ended
    }

    /// The count `sql` selects (as `n`), asked on the admin connection.
    async fn count(&self, sql: &str) -> usize {
        let row = self
            .admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await
            .expect("pg_stat_activity")
            .expect("a count");
        row.try_get::<i64>("", "n").expect("n") as usize
    }

    pub async fn drop_db(mut self) {
        self.db.close_by_ref().await.expect("close pool");
        self.admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop database");
        self.admin.close_by_ref().await.expect("close admin pool");
        self.dropped = true;
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // A test failed before `drop_db`: drop the database from a fresh runtime.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = connect(&pg_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = admin.execute_unprepared(&sql).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A fresh SQLite file in the temp dir, removed with its -wal/-shm on drop.
pub(crate) struct SqliteFile {
    pub path: PathBuf,
}

impl SqliteFile {
    pub fn new(prefix: &str) -> SqliteFile {
        let path = std::env::temp_dir().join(format!("{prefix}_{}.db", random_suffix()));
        SqliteFile { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Run `case` against a fresh, migrated SQLite file.
pub(crate) async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let file = SqliteFile::new("rampd_st");
    let db = connect(&file.url()).await.expect("connect sqlite");
    super::migrate(&db).await.expect("migrate sqlite");
    case(db.clone()).await;
    db.close().await.expect("close sqlite");
    drop(file);
}

/// PostgreSQL's cached generic plan of `statement` (as `EXPLAIN` prints it), prepared as
/// `PREPARE q AS <statement>` and run with `args` (`EXECUTE q(<args>)`), in a transaction
/// that is rolled back.
pub(crate) async fn generic_plan(db: &DatabaseConnection, statement: &str, args: &str) -> String {
    use sea_orm::{DbBackend, Statement, TransactionTrait};
    let txn = db.begin().await.expect("begin");
    for sql in [
        "SET LOCAL plan_cache_mode = force_generic_plan".to_owned(),
        format!("PREPARE rampd_plan_q AS {statement}"),
    ] {
        txn.execute_unprepared(&sql).await.expect(&sql);
    }
    let lines: Vec<String> = txn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("EXPLAIN EXECUTE rampd_plan_q({args})"),
        ))
        .await
        .expect("explain")
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("plan line"))
        .collect();
    txn.execute_unprepared("DEALLOCATE rampd_plan_q")
        .await
        .expect("deallocate");
    txn.rollback().await.expect("rollback");
    lines.join("\n")
}

/// Run `case` against a fresh, migrated PostgreSQL database, dropped afterwards.
pub(crate) async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let pg = PgDb::create("rampd_st").await;
    super::migrate(&pg.db).await.expect("migrate postgres");
    case(pg.db.clone()).await;
    pg.drop_db().await;
}

/// For each named `async fn case(db: DatabaseConnection)` in scope, a module of the same
/// name with a `sqlite` and a `postgres` test.
macro_rules! storage_cases {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::storage::test_db::on_sqlite(super::$case).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::storage::test_db::on_postgres(super::$case).await;
                }
            }
        )*
    };
}
pub(crate) use storage_cases;

/// A drive task row for `order-<id>`, with `run_at` as its creation and update time too.
pub(crate) fn task_row(
    id: &str,
    status: &str,
    run_at: i64,
) -> super::entities::scheduled_tasks::ActiveModel {
    use sea_orm::ActiveValue::Set;
    super::entities::scheduled_tasks::ActiveModel {
        id: Set(id.to_owned()),
        order_id: Set(format!("order-{id}")),
        kind: Set(super::write::DRIVE.into()),
        status: Set(status.into()),
        run_at: Set(run_at),
        priority: Set(0),
        attempt: Set(0),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        trace_ctx: Set(None),
        created_at: Set(run_at),
        updated_at: Set(run_at),
    }
}
