//! Prometheus metrics: names, labels and the recording calls the workers make.
//!
//! Counters and histograms live in this process (the `metrics` facade with the Prometheus
//! recorder, installed once per process by [`install`]). Quantities that must agree across
//! replicas (orders by state, outbox backlog, dead letters) are not counted here: the
//! admin endpoint reads them from the database at scrape time (`admin::gauges`).
//!
//! Labels are low-cardinality and never carry ids or personal data.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const COMMANDS: &str = "rampd_commands_total";
pub const TRANSITIONS: &str = "rampd_state_transitions_total";
pub const TASK_LAG: &str = "rampd_task_lag_seconds";
pub const PROVIDER_CALLS: &str = "rampd_provider_calls_total";
pub const PROVIDER_LATENCY: &str = "rampd_provider_call_duration_seconds";
pub const RATE_LIMITED: &str = "rampd_provider_rate_limited_total";
pub const WEBHOOK_ATTEMPTS: &str = "rampd_webhook_attempts_total";
pub const RETENTION_REMOVED: &str = "rampd_retention_removed_rows_total";
pub const PROVIDER_CALLBACKS: &str = "rampd_provider_callbacks_total";
pub const WEBHOOK_LATENCY: &str = "rampd_webhook_request_duration_seconds";

/// Seconds: from a few milliseconds (a sandbox call) to 15 minutes (a badly lagging queue).
const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once; later calls return the same handle).
/// `None` if another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Some(h);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(&BUCKETS)
        .expect("non-empty buckets")
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        describe();
        let _ = HANDLE.set(handle);
    }
    HANDLE.get()
}

/// The counters and histograms of this process in Prometheus text format.
pub fn render() -> String {
    match HANDLE.get() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(COMMANDS, "NATS commands handled, by command and outcome");
    describe_counter!(TRANSITIONS, "Order state transitions committed");
    describe_histogram!(
        TASK_LAG,
        metrics::Unit::Seconds,
        "How late a task was when claimed (now - run_at)"
    );
    describe_counter!(
        PROVIDER_CALLS,
        "Provider HTTP calls by endpoint and outcome"
    );
    describe_histogram!(
        PROVIDER_LATENCY,
        metrics::Unit::Seconds,
        "Provider HTTP call latency by endpoint and outcome"
    );
    describe_counter!(RATE_LIMITED, "Provider answers of 429 Too Many Requests");
    describe_counter!(WEBHOOK_ATTEMPTS, "Webhook delivery attempts by outcome");
    describe_histogram!(
        WEBHOOK_LATENCY,
        metrics::Unit::Seconds,
        "Webhook HTTP request duration per attempt, by outcome class"
    );
    describe_counter!(
        PROVIDER_CALLBACKS,
        "Provider callbacks received, by provider and outcome (unverified ones included)"
    );
    describe_counter!(
        RETENTION_REMOVED,
        "Finished rows deleted past their retention, by table"
    );
}

/// A provider callback and what became of it (`applied`, `no_change`, `duplicate`,
/// `unknown_order`, `wrong_direction`, `unverified`, `malformed`, `error`).
pub fn provider_callback(provider: &'static str, outcome: &'static str) {
    counter!(PROVIDER_CALLBACKS, "provider" => provider, "outcome" => outcome).increment(1);
}

/// Rows one retention batch deleted from `table`.
pub fn retention_removed(table: &'static str, rows: u64) {
    if rows > 0 {
        counter!(RETENTION_REMOVED, "table" => table).increment(rows);
    }
}

/// One command handled: `outcome` is accepted, unchanged, rejected, duplicate, not_yet,
/// retry or dead_lettered.
pub fn command(command: &str, outcome: &'static str) {
    counter!(COMMANDS, "command" => command.to_string(), "outcome" => outcome).increment(1);
}

/// One committed state transition.
pub fn transition(direction: &str, from: &str, to: &str) {
    counter!(
        TRANSITIONS,
        "direction" => direction.to_string(),
        "from" => from.to_string(),
        "to" => to.to_string()
    )
    .increment(1);
}

/// A task claimed `lag_ms` after it was due (negative values count as 0); `urgency` tells
/// the orders in motion from parked ones (`moving`, `deadline`, `parked`; `none` for
/// queues other than the tasks).
pub fn task_lag(queue: &'static str, urgency: &'static str, lag_ms: i64) {
    histogram!(TASK_LAG, "queue" => queue, "urgency" => urgency)
        .record(lag_ms.max(0) as f64 / 1000.0);
}

/// The outcome label of a provider answer: ok, client_error, server_error, rate_limited,
/// or a transport failure (timeout, connect).
pub fn provider_outcome(status: Option<u16>, timed_out: bool) -> &'static str {
    match status {
        Some(429) => "rate_limited",
        Some(s) if (200..300).contains(&s) => "ok",
        Some(s) if (400..500).contains(&s) => "client_error",
        Some(_) => "server_error",
        None if timed_out => "timeout",
        None => "transport_error",
    }
}

/// One provider HTTP call.
pub fn provider_call(
    provider: &str,
    endpoint: &'static str,
    outcome: &'static str,
    took: Duration,
) {
    let labels = [
        ("provider", provider.to_string()),
        ("endpoint", endpoint.to_string()),
        ("outcome", outcome.to_string()),
    ];
    counter!(PROVIDER_CALLS, &labels).increment(1);
    histogram!(PROVIDER_LATENCY, &labels).record(took.as_secs_f64());
    if outcome == "rate_limited" {
        counter!(
            RATE_LIMITED,
            "provider" => provider.to_string(),
            "endpoint" => endpoint
        )
        .increment(1);
    }
}

/// One webhook attempt: delivered, retry, dead or gone (410, the endpoint is disabled).
pub fn webhook_attempt(outcome: &'static str) {
    counter!(WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
}

/// The outcome class of a webhook attempt's HTTP exchange: ok (2xx), redirect (3xx, not
/// followed), rate_limited (429), client_error, server_error, timeout, connection_failed,
/// address_refused (not sent: the address is not allowed).
pub fn webhook_outcome(result: rampd_domain::webhooks::AttemptResult) -> &'static str {
    use rampd_domain::webhooks::{AttemptResult, FailureKind};
    match result {
        AttemptResult::Response { status: 429 } => "rate_limited",
        AttemptResult::Response { status } => match status {
            200..=299 => "ok",
            300..=399 => "redirect",
            400..=499 => "client_error",
            _ => "server_error",
        },
        AttemptResult::Failed(FailureKind::Timeout) => "timeout",
        AttemptResult::Failed(FailureKind::Connect) => "connection_failed",
        AttemptResult::Failed(FailureKind::AddressRefused) => "address_refused",
    }
}

/// One webhook HTTP request and how long it took (a refused address sent nothing and is
/// not measured).
pub fn webhook_request(result: rampd_domain::webhooks::AttemptResult, latency_ms: i64) {
    let outcome = webhook_outcome(result);
    if outcome != "address_refused" {
        histogram!(WEBHOOK_LATENCY, "outcome" => outcome).record(latency_ms.max(0) as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::gauges;

    /// Every `rampd_…` name the dashboard, the runbook and the alert rules use is one rampd
    /// exports.
    #[test]
    fn dashboard_and_runbook_use_exported_names() {
        let known = [
            COMMANDS,
            TRANSITIONS,
            TASK_LAG,
            PROVIDER_CALLS,
            PROVIDER_LATENCY,
            RATE_LIMITED,
            WEBHOOK_ATTEMPTS,
            gauges::ORDERS,
            gauges::FLAGGED,
            gauges::OUTBOX_BACKLOG,
            gauges::OUTBOX_OLDEST,
            gauges::TASKS_DUE,
            gauges::TASK_OLDEST_DUE,
            gauges::WEBHOOK_BACKLOG,
            gauges::DEAD_LETTERS,
            gauges::NATS_PENDING,
            gauges::GAUGES_UP,
            WEBHOOK_LATENCY,
            super::super::process::BUILD_INFO,
        ];
        let docs = [
            include_str!("../../../deploy/grafana/rampd-dashboard.json"),
            include_str!("../../../deploy/RUNBOOK.md"),
            include_str!("../../../deploy/alerts.yaml"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for doc in docs {
            for (i, _) in doc.match_indices("rampd_") {
                let name: String = doc[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| known.contains(b)))
                    .unwrap_or(&name);
                assert!(known.contains(&base), "unknown metric {name}");
                seen.insert(base.to_string());
            }
        }
        // The dashboard shows every metric.
        assert_eq!(seen.len(), known.len(), "{seen:?}");
    }

    #[test]
    fn webhook_outcomes() {
        use rampd_domain::webhooks::{AttemptResult::*, FailureKind};
        assert_eq!(webhook_outcome(Response { status: 204 }), "ok");
        assert_eq!(webhook_outcome(Response { status: 302 }), "redirect");
        assert_eq!(webhook_outcome(Response { status: 429 }), "rate_limited");
        assert_eq!(webhook_outcome(Response { status: 410 }), "client_error");
        assert_eq!(webhook_outcome(Response { status: 503 }), "server_error");
        assert_eq!(webhook_outcome(Failed(FailureKind::Timeout)), "timeout");
        assert_eq!(
            webhook_outcome(Failed(FailureKind::Connect)),
            "connection_failed"
        );
    }

    #[test]
    fn provider_outcomes() {
        assert_eq!(provider_outcome(Some(200), false), "ok");
        assert_eq!(provider_outcome(Some(429), false), "rate_limited");
        assert_eq!(provider_outcome(Some(404), false), "client_error");
        assert_eq!(provider_outcome(Some(503), false), "server_error");
        assert_eq!(provider_outcome(None, true), "timeout");
        assert_eq!(provider_outcome(None, false), "transport_error");
    }
}
