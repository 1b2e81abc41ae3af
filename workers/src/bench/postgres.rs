//! A private PostgreSQL cluster for one benchmark run: `initdb` in a temporary directory,
//! its own port, fsync on, `pg_stat_statements` preloaded, sized like a production server
//! ([`SIZING`]); stopped and removed at the end.
//!
//! PostgreSQL refuses to run as root, so when the benchmark runs as root the cluster is
//! created and run as the `postgres` user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::natsd::free_port;

/// Memory and WAL sizing of the benchmark's cluster, as a production server is configured
/// rather than `initdb`'s minimal defaults (shared_buffers 128MB, wal_buffers 4MB,
/// max_wal_size 1GB). With those defaults, backends waited for WAL writes when the 4 MB of
/// WAL buffers filled (about 57 KiB of WAL per order), and a 10,000-order run crossed a
/// size-forced checkpoint, after which every first change of a page logged the whole page:
/// 10.2 against 8.3 CPU ms per order and 141 against 181 orders/s, same worker, two pairs
/// of runs. Durability is unchanged: fsync and synchronous_commit stay on.
pub const SIZING: [&str; 3] = [
    "shared_buffers=256MB",
    "wal_buffers=16MB",
    "max_wal_size=4GB",
];

/// One statement of `pg_stat_statements` in the window.
#[derive(Debug, Clone)]
pub struct TopStatement {
    pub calls: i64,
    /// Planning plus execution time, milliseconds, over all calls.
    pub ms: f64,
    /// Of `ms`, the planning time.
    pub plan_ms: f64,
    /// How many times it was planned (fewer than `calls` once a prepared statement's
    /// generic plan is reused).
    pub plans: i64,
    pub query: String,
}

/// Counters read from the statistics views; a run reports the deltas.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PgCounters {
    /// `pg_stat_statements` calls in the worker's database (reset at the window start).
    pub statements: i64,
    /// `pg_stat_database.xact_commit` of the worker's database.
    pub commits: i64,
    pub rollbacks: i64,
    /// `pg_stat_wal.wal_sync`: WAL fsyncs, whole cluster.
    pub wal_syncs: i64,
    pub wal_bytes: i64,
}

pub struct PrivatePostgres {
    child: Option<tokio::process::Child>,
    dir: PathBuf,
    port: u16,
    /// The database the worker uses.
    pub database: String,
    admin: Option<DatabaseConnection>,
}

impl PrivatePostgres {
    /// `initdb` under `parent` and start the server on a free port.
    pub async fn start(parent: &Path) -> anyhow::Result<PrivatePostgres> {
        let bin = find_bin()?;
        let dir = parent.join("pg");
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let owner = run_as()?;
        if let Some((uid, gid)) = owner {
            // The parent must be traversable by the cluster's owner.
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        let mut initdb = tokio::process::Command::new(bin.join("initdb"));
        initdb
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = owner {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().await.context("running initdb")?;
        anyhow::ensure!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let port = free_port()?;
        let log = std::fs::File::create(parent.join("postgres.log"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(parent.join("postgres.log"), Some(uid), Some(gid))?;
        }
        let mut cmd = tokio::process::Command::new(bin.join("postgres"));
        cmd.arg("-D").arg(&dir).args(["-p", &port.to_string()]);
        for setting in [
            "listen_addresses=127.0.0.1".to_string(),
            format!("unix_socket_directories={}", dir.display()),
            "fsync=on".into(),
            "synchronous_commit=on".into(),
            "shared_preload_libraries=pg_stat_statements".into(),
            "pg_stat_statements.track=top".into(),
            "pg_stat_statements.track_planning=on".into(),
            "max_connections=200".into(),
        ]
        .into_iter()
        .chain(SIZING.map(String::from))
        {
            cmd.arg("-c").arg(setting);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some((uid, gid)) = owner {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().context("starting postgres")?;
        let mut pg = PrivatePostgres {
            child: Some(child),
            dir,
            port,
            database: "rampd".into(),
            admin: None,
        };
        let admin = pg.connect_admin().await?;
        admin
            .execute_unprepared("CREATE DATABASE rampd")
            .await
            .context("creating the worker's database")?;
        admin
            .execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await?;
        pg.admin = Some(admin);
        Ok(pg)
    }

    /// The postmaster's PID (every backend is its child).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref()?.id().map(|p| p as i32)
    }

    /// The worker's connection URL.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// `SELECT version()`, e.g. "PostgreSQL 15.x …".
    pub async fn version(&self) -> String {
        self.scalar_text("SELECT current_setting('server_version')")
            .await
            .unwrap_or_default()
    }

    async fn connect_admin(&self) -> anyhow::Result<DatabaseConnection> {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut opt = sea_orm::ConnectOptions::new(url.clone());
            opt.max_connections(1)
                .sqlx_logging(false)
                .connect_timeout(Duration::from_secs(2));
            match sea_orm::Database::connect(opt).await {
                Ok(db) => return Ok(db),
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(anyhow::anyhow!("postgres did not come up: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn admin(&self) -> anyhow::Result<&DatabaseConnection> {
        self.admin.as_ref().context("postgres is not running")
    }

    async fn scalar_text(&self, sql: &str) -> anyhow::Result<String> {
        let row = self
            .admin()?
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await?
            .context("no row")?;
        Ok(row.try_get_by_index::<String>(0)?)
    }

    async fn scalar(&self, sql: &str) -> anyhow::Result<i64> {
        let row = self
            .admin()?
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await?
            .context("no row")?;
        Ok(row.try_get_by_index::<i64>(0)?)
    }

    /// Start of the measured window: statement counts start from zero.
    pub async fn reset_statements(&self) -> anyhow::Result<()> {
        self.admin()?
            .execute_unprepared("SELECT pg_stat_statements_reset()")
            .await?;
        Ok(())
    }

    /// The counters now. The cumulative statistics (commits, WAL) reach the views when
    /// a backend flushes them (at most once a second while busy, and at exit).
    pub async fn counters(&self) -> anyhow::Result<PgCounters> {
        let db = &self.database;
        Ok(PgCounters {
            statements: self
                .scalar(&format!(
                    "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
                     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{db}')"
                ))
                .await?,
            commits: self
                .scalar(&format!(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"
                ))
                .await?,
            rollbacks: self
                .scalar(&format!(
                    "SELECT xact_rollback FROM pg_stat_database WHERE datname = '{db}'"
                ))
                .await?,
            wal_syncs: self.scalar("SELECT wal_sync FROM pg_stat_wal").await?,
            wal_bytes: self
                .scalar("SELECT wal_bytes::bigint FROM pg_stat_wal")
                .await?,
        })
    }

    /// The worker's statements that took PostgreSQL longest (planning plus execution)
    /// since the reset.
    pub async fn top_statements(&self, n: usize) -> anyhow::Result<Vec<TopStatement>> {
        let db = &self.database;
        let rows = self
            .admin()?
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT calls::bigint, (total_plan_time + total_exec_time)::float8 AS ms, \
                     total_plan_time::float8, plans::bigint, query FROM pg_stat_statements \
                     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{db}') \
                     ORDER BY ms DESC LIMIT {n}"
                ),
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TopStatement {
                    calls: r.try_get_by_index(0)?,
                    ms: r.try_get_by_index(1)?,
                    plan_ms: r.try_get_by_index(2)?,
                    plans: r.try_get_by_index(3)?,
                    query: r.try_get_by_index(4)?,
                })
            })
            .collect()
    }

    /// Waits (up to 10 s) until no backend is connected to the worker's database, so that
    /// every backend has flushed its statistics on exit.
    pub async fn wait_for_no_clients(&self) {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
            self.database
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if self.scalar(&sql).await.is_ok_and(|n| n == 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fast shutdown, then remove the cluster's directory.
    pub async fn stop(&mut self) {
        if let Some(admin) = self.admin.take() {
            let _ = admin.close().await;
        }
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                super::signal(pid, nix::sys::signal::Signal::SIGINT);
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The PostgreSQL server binaries: `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
/// else `PATH`.
fn find_bin() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists());
    on_path.context(
        "no PostgreSQL server binaries (initdb, postgres): install PostgreSQL \
         (`apt-get install postgresql`) or set PG_BIN",
    )
}

/// The uid/gid to run the cluster as: `postgres` when we are root, else ourselves.
fn run_as() -> anyhow::Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")?
        .context("running as root, and there is no `postgres` user to run the cluster as")?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}
