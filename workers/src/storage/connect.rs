//! Opening the database (PostgreSQL or SQLite), applying migrations, and starting write
//! transactions that behave the same way on both backends.

use std::time::Duration;

use rampd_migrations::{Migrator, MigratorTrait};
use std::str::FromStr;

use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, RuntimeErr, SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Most connections a SQLite pool opens. SQLite has one writer at a time (WAL lets readers
/// proceed alongside it); writers queue on the database lock for up to `SQLITE_BUSY_TIMEOUT`.
pub const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Most connections a PostgreSQL pool opens.
pub const POSTGRES_MAX_CONNECTIONS: u32 = 16;
/// Prepared statements each PostgreSQL connection keeps (sqlx's default is 100).
pub const STATEMENT_CACHE: usize = 1024;
/// How long a SQLite statement waits for a lock held by another connection.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
/// How much of a SQLite database file is read through a memory map (256 MiB).
pub const SQLITE_MMAP_BYTES: u64 = 256 << 20;
/// How long getting a pooled connection (including opening a new one) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled connection idle this long is pinged before it is handed out; one in use
/// since is not (see [`open`]).
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);

/// Whether opening a SQLite database may create its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// `run`, `migrate`, tests: a missing file is created (unless the URL names a `mode`).
    IfMissing,
    /// Operator commands: a missing file is an error, never an empty new database.
    Never,
}

/// Why the database could not be opened, in one line that names what is wrong (the URL
/// shown with its password replaced by `****`, never the password itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpenError(String);

impl OpenError {
    /// One line, with every occurrence of `password` (when there is one) masked.
    fn new(message: impl std::fmt::Display, password: Option<&str>) -> Self {
        let mut line = message
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            line = line.replace(p, "****");
        }
        OpenError(line)
    }
}

/// Connects to `url`: `postgres://…`/`postgresql://…` or `sqlite:…`, creating a missing
/// SQLite file. See [`open`]; this is `open(url, Create::IfMissing)` with the error as a
/// [`DbErr`].
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    open(url, Create::IfMissing)
        .await
        .map_err(|e| DbErr::Conn(RuntimeErr::Internal(e.to_string())))
}

/// Opens the database at `url`: `postgres://…`/`postgresql://…` or `sqlite:…`.
///
/// The URL is parsed first and one connection is opened on its own, so that a malformed
/// URL, an unknown scheme, a host that does not resolve or answer, a missing database or
/// role, and a SQLite path that cannot be opened each fail with an [`OpenError`] that
/// says which (not a panic, and not the pool's generic timeout). Then the pool is built.
///
/// SQLite: with [`Create::IfMissing`] the database file is created if missing (as with
/// `?mode=rwc`) unless the URL names a `mode` itself; with [`Create::Never`] it must
/// exist. Every pooled connection is opened with `journal_mode=WAL`, `busy_timeout=5000`,
/// `synchronous=NORMAL`, `foreign_keys=ON` and `mmap_size` [`SQLITE_MMAP_BYTES`]
/// (sqlx runs these PRAGMAs as it opens each connection). The pool holds up to
/// [`SQLITE_MAX_CONNECTIONS`]. An in-memory database (`sqlite::memory:`) lives as long as
/// one pooled connection does, so its pool never lets its connections expire.
///
/// PostgreSQL: up to [`POSTGRES_MAX_CONNECTIONS`] connections; acquiring one times out
/// after [`CONNECT_TIMEOUT`]. Opening never creates a database nor applies migrations.
///
/// Both: sqlx pings a connection (a round trip to the server, or a hand-off to SQLite's
/// connection thread) every time one is handed out, unless told otherwise, and again
/// every time one is given back. Only connections idle for [`PING_IF_IDLE_FOR`] are
/// pinged when handed out (the ones a server, proxy or firewall may have dropped); a
/// connection that broke while in use fails its statement, which the caller retries like
/// any database error, and the ping on its return then closes it.
pub async fn open(url: &str, create: Create) -> Result<DatabaseConnection, OpenError> {
    let target = Target::parse(url, create)?;
    target.probe().await?;

    let mut opt = ConnectOptions::new(url.to_owned());
    // sqlx would log every statement at INFO through `log`; sea-orm's own tracing spans
    // already record statements.
    opt.sqlx_logging(false)
        .connect_timeout(CONNECT_TIMEOUT)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
    match &target {
        Target::Sqlite { memory, .. } => {
            let create = target.creates();
            opt.max_connections(SQLITE_MAX_CONNECTIONS)
                .min_connections(1)
                .map_sqlx_sqlite_opts(move |o| sqlite_options(o, create));
            if *memory {
                // The last connection closing would drop the whole in-memory database.
                opt.idle_timeout(None).max_lifetime(None);
            }
        }
        Target::Postgres { .. } => {
            opt.max_connections(POSTGRES_MAX_CONNECTIONS)
                .min_connections(1)
                .map_sqlx_postgres_opts(|o| o.statement_cache_capacity(STATEMENT_CACHE));
        }
    }
    Database::connect(opt)
        .await
        .map_err(|e| OpenError::new(format!("{}: {e}", target.describe()), target.password()))
}

/// The PRAGMAs and file mode every pooled SQLite connection (and the probe) opens with.
/// `create` is `Some(_)` to set whether a missing file is created, `None` to keep what
/// the URL's `mode` says.
fn sqlite_options(o: SqliteConnectOptions, create: Option<bool>) -> SqliteConnectOptions {
    let o = match create {
        Some(c) => o.create_if_missing(c),
        None => o,
    };
    o.journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Pages are read through a shared memory map instead of being copied into each
        // connection's cache with a read call per page.
        .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
}

/// A database URL, parsed and checked before anything connects.
enum Target {
    Postgres {
        opts: PgConnectOptions,
        /// The URL with its password masked.
        shown: String,
        password: Option<String>,
    },
    Sqlite {
        opts: SqliteConnectOptions,
        path: std::path::PathBuf,
        memory: bool,
        create: Create,
        /// The URL names a `mode` (then it decides whether a file is created).
        has_mode: bool,
    },
}

/// Never the password: what is opened, as messages name it.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Target {
    fn parse(url: &str, create: Create) -> Result<Target, OpenError> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
            OpenError::new(
                format!(
                    "the database URL (DATABASE_URL or database_url) is not a valid URL: {e}; \
                     expected postgres://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:PATH"
                ),
                None,
            )
        })?;
        let password = parsed
            .password()
            .map(|p| percent_decode(p).unwrap_or_else(|| p.to_string()));
        let mut masked = parsed.clone();
        if parsed.password().is_some() {
            let _ = masked.set_password(Some("****"));
        }
        let shown = masked.to_string();
        let invalid = |e: &dyn std::fmt::Display| {
            OpenError::new(
                format!("the database URL {shown} is not valid: {e}"),
                password.as_deref(),
            )
        };
        match parsed.scheme() {
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url.trim()).map_err(|e| invalid(&e))?;
                Ok(Target::Postgres {
                    opts,
                    shown,
                    password,
                })
            }
            "sqlite" => {
                let opts = SqliteConnectOptions::from_str(url.trim()).map_err(|e| invalid(&e))?;
                Ok(Target::Sqlite {
                    path: opts.get_filename().to_path_buf(),
                    opts,
                    memory: is_sqlite_memory_url(url),
                    create,
                    has_mode: url_has_query_param(url, "mode"),
                })
            }
            other => Err(OpenError::new(
                format!(
                    "the database URL {shown} names {other:?}, which rampd does not support; \
                     use postgres://… (or postgresql://…) or sqlite:…"
                ),
                password.as_deref(),
            )),
        }
    }

    /// For SQLite: whether the pool's connections create a missing file (`None`: as the
    /// URL's `mode` says).
    fn creates(&self) -> Option<bool> {
        match self {
            Target::Sqlite {
                create: Create::Never,
                ..
            } => Some(false),
            Target::Sqlite {
                has_mode: false, ..
            } => Some(true),
            _ => None,
        }
    }

    fn password(&self) -> Option<&str> {
        match self {
            Target::Postgres { password, .. } => password.as_deref(),
            Target::Sqlite { .. } => None,
        }
    }

    /// What is being opened, for messages.
    fn describe(&self) -> String {
        match self {
            Target::Postgres { opts, .. } => {
                format!("PostgreSQL at {}:{}", opts.get_host(), opts.get_port())
            }
            Target::Sqlite { path, memory, .. } => match memory {
                true => "the in-memory SQLite database".to_string(),
                false => format!("the SQLite database {}", path.display()),
            },
        }
    }

    /// Open one connection on its own and close it: the error it gives is the real reason
    /// (the pool would only time out after retrying).
    async fn probe(&self) -> Result<(), OpenError> {
        match self {
            Target::Postgres { opts, shown, .. } => {
                let opts = opts.clone().disable_statement_logging();
                let pw = self.password();
                match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
                    Ok(Ok(conn)) => {
                        let _ = conn.close().await;
                        Ok(())
                    }
                    Ok(Err(e)) => Err(OpenError::new(postgres_error(&opts, &e), pw)),
                    Err(_) => Err(OpenError::new(
                        format!(
                            "{} did not answer within {} s ({shown})",
                            self.describe(),
                            CONNECT_TIMEOUT.as_secs()
                        ),
                        pw,
                    )),
                }
            }
            Target::Sqlite { memory: true, .. } => Ok(()),
            Target::Sqlite {
                opts, path, create, ..
            } => {
                if *create == Create::Never && !path.exists() {
                    return Err(OpenError::new(
                        format!(
                            "there is no SQLite database at {}; operator commands do not \
                             create one (check DATABASE_URL, or run `rampd migrate` first)",
                            path.display()
                        ),
                        None,
                    ));
                }
                let opts = sqlite_options(opts.clone(), self.creates());
                match opts.connect().await {
                    Ok(conn) => {
                        let _ = conn.close().await;
                        Ok(())
                    }
                    Err(e) => Err(OpenError::new(sqlite_error(path, &e), None)),
                }
            }
        }
    }
}

/// The reason a PostgreSQL connection failed, for a person.
fn postgres_error(opts: &PgConnectOptions, e: &sea_orm::sqlx::Error) -> String {
    use sea_orm::sqlx::Error;
    let at = format!("PostgreSQL at {}:{}", opts.get_host(), opts.get_port());
    let database = opts.get_database().unwrap_or(opts.get_username());
    match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("cannot connect to {at}: connection refused (is it running, on that port?)")
        }
        Error::Io(io) if io.to_string().contains("lookup address") => format!(
            "cannot connect to {at}: the host name {:?} does not resolve ({io})",
            opts.get_host()
        ),
        Error::Io(io) => format!("cannot connect to {at}: {io}"),
        Error::Tls(tls) => format!("cannot connect to {at}: TLS failed: {tls}"),
        Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => format!(
                "{at} has no database {database:?}; create it first (e.g. `createdb {database}`)"
            ),
            Some("28P01" | "28000") => format!(
                "{at} refused user {:?}: {}",
                opts.get_username(),
                db.message()
            ),
            Some(code) => format!(
                "{at} refused the connection: {} (SQLSTATE {code})",
                db.message()
            ),
            None => format!("{at} refused the connection: {}", db.message()),
        },
        other => format!("cannot connect to {at}: {other}"),
    }
}

/// The reason a SQLite database could not be opened, for a person.
fn sqlite_error(path: &std::path::Path, e: &sea_orm::sqlx::Error) -> String {
    let what = format!("cannot open the SQLite database {}", path.display());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return format!("{what}: the directory {} does not exist", dir.display());
    }
    if path.is_dir() {
        return format!("{what}: it is a directory");
    }
    if path.exists()
        && let Err(io) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
    {
        return format!("{what}: {io}");
    }
    if !path.exists() {
        return format!("{what}: it cannot be created in {}", dir.display());
    }
    match e {
        sea_orm::sqlx::Error::Database(db) => format!("{what}: {}", db.message()),
        other => format!("{what}: {other}"),
    }
}

/// `%XX` escapes decoded (a password in a URL may have them); `None` if not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `url` with its password (if any) replaced by `****`; unparsable URLs are not shown.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        Err(_) => "(an unparsable database URL)".to_string(),
    }
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

    fn parse_err(url: &str) -> String {
        Target::parse(url, Create::IfMissing)
            .expect_err(url)
            .to_string()
    }

    #[test]
    fn bad_urls_are_one_line_without_the_password() {
        for (url, says) in [
            ("nonsense", "not a valid URL: relative URL without a base"),
            ("postgres://u:hunter2@[::1/db", "invalid IPv6 address"),
            ("postgres://u:hunter2@h:99999/db", "invalid port number"),
            (
                "mysql://u:hunter2@h/db",
                "names \"mysql\", which rampd does not support",
            ),
            ("", "not a valid URL"),
        ] {
            let e = parse_err(url);
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
            assert!(!e.contains('\n'), "{url}: {e}");
        }
        assert!(parse_err("mysql://u:hunter2@h/db").contains("mysql://u:****@h/db"));
    }

    #[test]
    fn good_urls_parse_into_their_backend() {
        let t = Target::parse("postgres://u:p%40ss@db.example:6432/rampd", Create::Never).unwrap();
        assert_eq!(t.describe(), "PostgreSQL at db.example:6432");
        assert_eq!(t.password(), Some("p@ss"));
        let t = Target::parse("sqlite:///var/lib/rampd.db", Create::IfMissing).unwrap();
        assert_eq!(t.describe(), "the SQLite database /var/lib/rampd.db");
        assert_eq!(t.creates(), Some(true));
        let t = Target::parse("sqlite://rampd.db?mode=rwc", Create::Never).unwrap();
        assert_eq!(t.creates(), Some(false), "operator commands never create");
        let t = Target::parse("sqlite://rampd.db?mode=ro", Create::IfMissing).unwrap();
        assert_eq!(t.creates(), None, "the URL's mode decides");
        let t = Target::parse("sqlite::memory:", Create::Never).unwrap();
        assert!(matches!(t, Target::Sqlite { memory: true, .. }));
    }

    #[test]
    fn messages_mask_the_password_and_fold_lines() {
        let e = OpenError::new("user u:\n  pw s3cr3t\trefused", Some("s3cr3t"));
        assert_eq!(e.to_string(), "user u: pw **** refused");
        assert_eq!(
            redact_url("postgres://u:s3cr3t@h:5432/db"),
            "postgres://u:****@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://rampd.db"), "sqlite://rampd.db");
        assert!(!redact_url("postgres://u:s3cr3t@[::1").contains("s3cr3t"));
        assert_eq!(percent_decode("a%40b%2"), Some("a@b%2".into()));
    }

    #[tokio::test]
    async fn operator_opens_never_create_a_sqlite_file() {
        let dir = std::env::temp_dir().join(format!("rampd-open-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rampd.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let e = open(&url, Create::Never).await.expect_err("no file yet");
        assert!(
            e.to_string().contains("there is no SQLite database at"),
            "{e}"
        );
        assert!(!file.exists());
        let missing_dir = format!("sqlite://{}/no/such/dir/x.db", dir.display());
        let e = open(&missing_dir, Create::IfMissing)
            .await
            .expect_err("no dir");
        assert!(e.to_string().ends_with("does not exist"), "{e}");
        std::fs::write(&file, "not a database").unwrap();
        let e = open(&url, Create::IfMissing).await.expect_err("not sqlite");
        assert!(e.to_string().contains("file is not a database"), "{e}");
        std::fs::remove_file(&file).unwrap();
        open(&url, Create::IfMissing).await.expect("created");
        assert!(file.exists());
        open(&url, Create::Never)
            .await
            .expect("opens an existing file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
