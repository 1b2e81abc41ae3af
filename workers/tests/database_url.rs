//! A database URL that is malformed, names an unsupported scheme, a host that does not
//! answer or resolve, a database that does not exist, or a SQLite path that cannot be
//! opened: every command that opens the database (`run`, `migrate`, operator commands)
//! exits 1 with one line on stderr that says what is wrong and never the password.
//! Operator commands never create or migrate a database.

use std::net::TcpListener;
use std::process::{Command, Output};

use sea_orm::{ConnectionTrait, Statement};

const PASSWORD: &str = "Pa55wordNeverShown";

fn rampd(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampd"))
        .args(args)
        .env("DATABASE_URL", db)
        .env_remove("RAMPD_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        // Nothing may be reached even if the database were: the test is about the database.
        .env("NATS_URL", "nats://127.0.0.1:1")
        .output()
        .expect("rampd runs")
}

/// Exit code 1 and exactly one stderr line containing `says`, without the password.
fn fails_with_one_line(db: &str, args: &[&str], says: &str) {
    let out = rampd(db, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(1), "{args:?} {db}: {stderr}");
    assert_eq!(lines.len(), 1, "{args:?} {db}: one line, got {stderr:?}");
    assert!(lines[0].starts_with("rampd: "), "{stderr}");
    assert!(lines[0].contains(says), "{args:?} {db}: {stderr}");
    assert!(!stderr.contains(PASSWORD), "{args:?} {db}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

const EVERY_COMMAND: [&[&str]; 6] = [
    &["run"],
    &["migrate"],
    &["orders", "list"],
    &["tasks", "list"],
    &["callbacks", "list"],
    &["webhooks", "endpoint", "list"],
];

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_database_urls_exit_1_with_one_clear_line() {
    let port = closed_port();
    let dir = std::env::temp_dir().join(format!("rampd-url-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_a_db = dir.join("notes.db");
    std::fs::write(&not_a_db, "not a database").unwrap();
    let cases = [
        ("not a url".to_string(), "is not a valid URL"),
        (
            format!("postgres://rampd:{PASSWORD}@[::1/rampd"),
            "invalid IPv6 address",
        ),
        (
            format!("postgres://rampd:{PASSWORD}@localhost:99999/rampd"),
            "invalid port number",
        ),
        (
            format!("mysql://rampd:{PASSWORD}@localhost/rampd"),
            "does not support",
        ),
        (
            format!("postgres://rampd:{PASSWORD}@127.0.0.1:{port}/rampd"),
            "connection refused",
        ),
        (
            format!("postgres://rampd:{PASSWORD}@no-such-host.invalid/rampd"),
            "does not resolve",
        ),
        (
            format!("sqlite://{}/no/such/dir/rampd.db", dir.display()),
            "SQLite database",
        ),
        (
            format!("sqlite://{}", not_a_db.display()),
            "file is not a database",
        ),
    ];
    for (url, says) in &cases {
        for args in EVERY_COMMAND {
            fails_with_one_line(url, args, says);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn operator_commands_never_create_a_sqlite_database() {
    let dir = std::env::temp_dir().join(format!("rampd-url-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rampd.db");
    for url in [
        format!("sqlite://{}", file.display()),
        format!("sqlite://{}?mode=rwc", file.display()),
    ] {
        for args in &EVERY_COMMAND[2..] {
            fails_with_one_line(&url, args, "there is no SQLite database at");
            assert!(!file.exists(), "{args:?} created {}", file.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn pg_admin_url() -> String {
    std::env::var("RAMPD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with the password put in (the test server trusts local connections, so any
/// password works and none may show).
fn with_password(url: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    u.set_password(Some(PASSWORD)).unwrap();
    u.to_string()
}

#[tokio::test]
async fn postgres_missing_or_unmigrated_databases_are_refused_and_left_alone() {
    rampd::app::install_crypto();
    let admin_url = pg_admin_url();
    let admin = rampd::storage::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required: {e}"));
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let name = format!("rampd_url_{}", uuid::Uuid::new_v4().simple());

    let missing = with_password(&format!("{base}/{name}"));
    for args in EVERY_COMMAND {
        let says = format!("has no database \"{name}\"");
        let missing = missing.clone();
        tokio::task::spawn_blocking(move || fails_with_one_line(&missing, args, &says))
            .await
            .unwrap();
    }

    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let empty = with_password(&format!("{base}/{name}"));
    for args in &EVERY_COMMAND[2..] {
        let empty = empty.clone();
        tokio::task::spawn_blocking(move || fails_with_one_line(&empty, args, "is not migrated"))
            .await
            .unwrap();
    }
    let db = rampd::storage::connect(&format!("{base}/{name}"))
        .await
        .unwrap();
    let tables = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*)::bigint AS n FROM information_schema.tables \
             WHERE table_schema = 'public'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(tables, 0, "an operator command created tables");
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
}
