//! The admin port: health, readiness, and metrics that move as orders flow.

use std::net::SocketAddr;

use rampd::sandbox::SandboxConfig;
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, both, wait_for};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::capture::capture;

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of the sample `name{labels}` (labels in any order), 0 when absent.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let have: Vec<&str> = if rest.is_empty() {
                vec![]
            } else {
                rest.split(',').collect()
            };
            let matches = n == name
                && labels
                    .iter()
                    .all(|(k, v)| have.contains(&format!("{k}=\"{v}\"").as_str()));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

async fn metrics_and_health(backend: Backend) {
    capture();
    let mut s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let addr = s.worker.as_ref().unwrap().admin_addr.expect("admin port");

    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["nats"], "connected");
    assert_eq!(ready["migrations"], "applied");

    let (_, before) = get(addr, "/metrics").await;
    let accepted = [("command", "onramp.create"), ("outcome", "accepted")];
    let to_processing = [
        ("direction", "onramp"),
        ("from", "utr_submitted"),
        ("to", "processing"),
    ];
    let kyc_ok = [
        ("provider", "onmeta"),
        ("endpoint", "users/kyc-status"),
        ("outcome", "ok"),
    ];
    let delivered = [("outcome", "delivered")];

    s.create("m-1").await;
    s.wait_state("m-1", OrderState::AwaitingPayment).await;
    s.create("m-2").await;
    s.wait_state("m-2", OrderState::AwaitingPayment).await;
    s.create_offramp("m-3").await;
    s.wait_state("m-3", OrderState::AwaitingPayment).await;
    s.utr("m-1", "412345678933").await;
    s.wait_state("m-1", OrderState::Completed).await;
    // A command that cannot be answered is dead-lettered.
    s.send("onramp.create", &json!({"no": "ids"})).await;
    wait_for("the dead letter", || {
        (!s.dead_letters().is_empty()).then_some(())
    })
    .await;

    let after = wait_for_metrics(addr, |m| {
        sample(m, "rampd_outbox_backlog", &[]) == 0.0
            && sample(m, "rampd_webhook_backlog", &[]) == 0.0
            && sample(m, "rampd_dead_letters", &[("kind", "command")]) == 1.0
    })
    .await;
    // Counters of this process moved (other tests in the binary only add to them).
    for (name, labels) in [
        ("rampd_commands_total", &accepted[..]),
        ("rampd_state_transitions_total", &to_processing[..]),
        ("rampd_provider_calls_total", &kyc_ok[..]),
        ("rampd_provider_call_duration_seconds_count", &kyc_ok[..]),
        ("rampd_webhook_attempts_total", &delivered[..]),
        (
            "rampd_webhook_request_duration_seconds_count",
            &[("outcome", "ok")][..],
        ),
        ("rampd_task_lag_seconds_count", &[("queue", "tasks")][..]),
        ("rampd_task_lag_seconds_count", &[("queue", "webhooks")][..]),
    ] {
        assert!(
            sample(&after, name, labels) > sample(&before, name, labels),
            "{name}{labels:?} did not move"
        );
    }
    assert!(
        sample(
            &after,
            "rampd_commands_total",
            &[("outcome", "dead_lettered")]
        ) >= 1.0,
        "dead-lettered commands are counted"
    );
    // Gauges come from this stack's database: exact.
    assert_eq!(
        sample(
            &after,
            "rampd_orders",
            &[("direction", "onramp"), ("state", "completed")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "rampd_orders",
            &[("direction", "onramp"), ("state", "awaiting_payment")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "rampd_orders",
            &[("direction", "offramp"), ("state", "awaiting_payment")]
        ),
        1.0
    );
    let offramp_created = [
        ("direction", "offramp"),
        ("from", "preparing"),
        ("to", "awaiting_payment"),
    ];
    assert!(
        sample(&after, "rampd_state_transitions_total", &offramp_created)
            > sample(&before, "rampd_state_transitions_total", &offramp_created)
    );
    assert_eq!(
        sample(&after, "rampd_orders_flagged", &[("direction", "onramp")]),
        0.0
    );
    assert_eq!(
        sample(&after, "rampd_dead_letters", &[("kind", "webhook")]),
        0.0
    );
    assert!(after.contains("# TYPE rampd_task_oldest_due_seconds gauge"));

    // About the process: which build, and the standard process metrics.
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(sample(&after, "rampd_build_info", &version), 1.0);
    assert!(sample(&after, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(sample(&after, "process_open_fds", &[]) > 0.0);
    assert!(sample(&after, "process_start_time_seconds", &[]) > 1.0e9);
    assert!(after.contains("# TYPE process_cpu_seconds_total counter"));
    // Commands waiting in NATS, per intake consumer (all handled by now).
    let lane = [
        ("stream", s.cfg.nats.command_stream.as_str()),
        ("consumer", "rampd-acme"),
    ];
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("rampd_nats_pending_commands{")
                && l.contains("consumer=\"rampd-acme\"")),
        "{after}"
    );
    assert_eq!(sample(&after, "rampd_nats_pending_commands", &lane), 0.0);
    assert_eq!(
        sample(&after, "rampd_gauges_up", &[("source", "database")]),
        1.0
    );
    assert_eq!(
        sample(&after, "rampd_gauges_up", &[("source", "nats")]),
        1.0
    );

    // A database read that fails is said, not hidden: the database gauges are left out
    // and rampd_gauges_up{source="database"} is 0, until the read works again.
    s.db.execute_unprepared("ALTER TABLE orders RENAME TO orders_hidden")
        .await
        .unwrap();
    let broken = wait_for_metrics(addr, |m| {
        sample(m, "rampd_gauges_up", &[("source", "database")]) == 0.0
    })
    .await;
    assert!(!broken.contains("rampd_orders{"), "{broken}");
    assert!(
        !broken.contains("rampd_task_oldest_due_seconds "),
        "{broken}"
    );
    assert_eq!(
        sample(&broken, "rampd_gauges_up", &[("source", "nats")]),
        1.0
    );
    assert_eq!(
        sample(&broken, "rampd_dead_letters", &[("kind", "command")]),
        1.0,
        "the NATS-side gauges stay"
    );
    s.db.execute_unprepared("ALTER TABLE orders_hidden RENAME TO orders")
        .await
        .unwrap();
    wait_for_metrics(addr, |m| {
        sample(m, "rampd_gauges_up", &[("source", "database")]) == 1.0
    })
    .await;

    // Not ready once NATS is gone; still alive.
    s.nats.stop().await;
    let (code, body) = wait_for_status(addr, "/readyz", 503).await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], false);
    assert_ne!(ready["nats"], "connected");
    assert_eq!(code, 503);
    assert_eq!(get(addr, "/healthz").await.0, 200);
    // And the scrape says the NATS-side gauges could not be read.
    let no_nats = wait_for_metrics(addr, |m| {
        sample(m, "rampd_gauges_up", &[("source", "nats")]) == 0.0
    })
    .await;
    assert!(
        !no_nats.contains("rampd_nats_pending_commands{"),
        "{no_nats}"
    );
    assert_eq!(
        sample(&no_nats, "rampd_gauges_up", &[("source", "database")]),
        1.0
    );
    // The change is logged once as a WARN naming what is not ready, and its end as INFO.
    let worker = s.cfg.worker_id.clone();
    let not_ready = log_line("WARN", "not ready", &worker).await;
    assert_ne!(not_ready["nats"], "connected", "{not_ready}");
    assert_eq!(not_ready["database"], "ok", "{not_ready}");
    s.nats.restart().await.expect("nats-server restarts");
    wait_for_status(addr, "/readyz", 200).await;
    log_line("INFO", "ready again", &worker).await;
    let warned = capture()
        .logs()
        .lines()
        .filter(|l| l.contains("not ready") && l.contains(&worker))
        .count();
    assert_eq!(
        warned, 1,
        "one WARN for one change, however often /readyz is asked"
    );
    s.kill_worker().await;
    s.finish().await;
}
both!(metrics_and_health);

/// Wait for a captured log line of `level` whose message starts with `message`, from `worker`.
async fn log_line(level: &str, message: &str, worker: &str) -> Value {
    wait_for(&format!("{level} {message:?} from {worker}"), || {
        capture()
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["level"] == level
                    && v["worker"] == worker
                    && v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(message))
            })
    })
    .await
}

async fn wait_for_metrics(addr: SocketAddr, ok: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let (_, m) = get(addr, "/metrics").await;
        if ok(&m) {
            return m;
        }
        assert!(
            start.elapsed() < rampd_e2e::WAIT,
            "metrics never settled:\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn wait_for_status(addr: SocketAddr, path: &str, code: u16) -> (u16, String) {
    let start = std::time::Instant::now();
    loop {
        let got = get(addr, path).await;
        if got.0 == code {
            return got;
        }
        assert!(start.elapsed() < rampd_e2e::WAIT, "{path} stayed {}", got.0);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
