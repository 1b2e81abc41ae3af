//! The operator commands through the real `rampd` binary: wiring, output and exit codes
//! against a fresh SQLite database (the end-to-end behaviour of each command is in
//! `tests/ops/admin.rs`).

use std::process::{Command, Output};

fn rampd(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampd"))
        .args(args)
        .env("DATABASE_URL", db)
        .env_remove("RAMPD_CONFIG")
        .output()
        .expect("rampd runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn operator_commands_run_against_the_configured_database() {
    let dir = std::env::temp_dir().join(format!("rampd-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/rampd.db", dir.display());

    // Not migrated yet: refused with a hint, not guessed at.
    let out = rampd(&db, &["orders", "list"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rampd migrate"),
        "{}",
        text(&out.stderr)
    );

    assert!(rampd(&db, &["migrate"]).status.success());
    let out = rampd(&db, &["orders", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "[]");
    let out = rampd(&db, &["orders", "list", "--flagged", "--stuck-for", "30m"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("0 order(s)"));
    let out = rampd(&db, &["tasks", "list", "--due", "--json"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "[]");

    // Bad input gets a clear answer and a failing exit code.
    let out = rampd(&db, &["orders", "show", "o-404"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no order o-404"));
    let out = rampd(&db, &["orders", "list", "--state", "lost"]);
    assert!(!out.status.success());
    // The flag lists its values (`--state` is an enumerated flag).
    let err = text(&out.stderr);
    assert!(err.contains("invalid value 'lost'"), "{err}");
    assert!(err.contains("awaiting_payment"), "{err}");
    let out = rampd(&db, &["orders", "list", "--stuck-for", "30"]);
    assert!(!out.status.success());
    let out = rampd(&db, &["orders", "resolve", "o-404", "--by", "alice"]);
    assert!(!out.status.success(), "resolve needs --reason");
    let out = rampd(&db, &["orders", "retry-now", "o-404"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no order o-404"));

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_logs_have_no_colours_when_not_on_a_terminal() {
    let dir = std::env::temp_dir().join(format!("rampd-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/rampd.db", dir.display());
    let out = Command::new(env!("CARGO_BIN_EXE_rampd"))
        .arg("migrate")
        .env("DATABASE_URL", &db)
        .env("RUST_LOG", "info")
        .env_remove("RAMPD_CONFIG")
        .env_remove("RAMPD_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .output()
        .expect("rampd runs");
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(" INFO "), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "ANSI escapes in piped logs: {stderr:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
