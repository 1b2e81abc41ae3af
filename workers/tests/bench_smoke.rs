//! `rampd bench` runs end to end (N = 5, SQLite) so that it cannot rot. It asserts that the
//! run finished and what it counted, never how fast it was.

use std::process::Command;

#[test]
fn bench_runs_end_to_end_on_sqlite() {
    let out = Command::new(env!("CARGO_BIN_EXE_rampd"))
        .args(["bench", "--orders", "5", "--backend", "sqlite"])
        .args(["--timeout-secs", "120"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run rampd bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rampd bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("a JSON line");
    let report: serde_json::Value = serde_json::from_str(last).expect("the last line is JSON");
    assert_eq!(report["orders"], 5);
    assert_eq!(report["completed"], 5);
    assert_eq!(report["provider_orders"], 5);
    assert_eq!(report["duplicate_provider_orders"], 0);
    assert_eq!(report["utr_submissions"], 5);
    assert_eq!(report["webhooks_verified"], report["webhooks_received"]);
    assert!(report["processes"].as_array().is_some_and(|p| p.len() >= 5));
    assert!(
        stdout.contains("orders/s"),
        "the table is printed:\n{stdout}"
    );
}
