//! One order, from its create command to its completed webhook, is one connected trace;
//! and nothing secret or personal reaches a log line or a span.

use std::collections::HashSet;
use std::time::Instant;

use rampd::sandbox::SandboxConfig;
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, WAIT, both, wait_for};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::capture::{SpanRec, capture};

const UPSTREAM_SPAN: &str = "00f067aa0ba902b7";
const UPSTREAM_STATE: &str = "upstream=t61rcWkgMzE,other=1";

fn fresh_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Flush and wait until the spans of `trace_id` satisfy `done` (panics after [`WAIT`]).
async fn spans_until(trace_id: &str, done: impl Fn(&[SpanRec]) -> bool) -> Vec<SpanRec> {
    let cap = capture();
    let start = Instant::now();
    loop {
        cap.flush().await;
        let spans = cap.spans_of_trace(trace_id);
        if done(&spans) {
            return spans;
        }
        if start.elapsed() > WAIT {
            let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
            panic!("trace {trace_id} incomplete; spans so far: {names:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn has(spans: &[SpanRec], pred: impl Fn(&SpanRec) -> bool) -> bool {
    spans.iter().any(pred)
}

async fn one_order_is_one_trace(backend: Backend) {
    let cap = capture();
    let s = Stack::start(backend).await;
    let trace_id = fresh_trace_id();
    let traceparent = format!("00-{trace_id}-{UPSTREAM_SPAN}-01");
    let order = format!("tr-{}", &trace_id[..8]);
    let body = rampd_e2e::create_body(&order, &format!("{order}-create"));
    s.send_with_headers(
        "onramp.create",
        &body,
        &format!("{order}-create"),
        &[
            ("traceparent", &traceparent),
            ("tracestate", UPSTREAM_STATE),
        ],
    )
    .await;
    let waiting = s.wait_state(&order, OrderState::AwaitingPayment).await;
    // The order stores its own span's context with the upstream tracestate.
    let stored = waiting
        .trace_ctx
        .clone()
        .expect("the order stores its trace");
    assert!(
        stored.contains(&trace_id) && stored.ends_with(&format!(" {UPSTREAM_STATE}")),
        "{stored}"
    );
    // A later command without trace context of its own still lands in the order's trace.
    s.utr(&order, "412345678911").await;
    let done = s.wait_state(&order, OrderState::Completed).await;
    let rampd_id = done.order.id.to_string();
    let completed_webhook = wait_for("the completed webhook", || {
        s.receiver
            .received()
            .into_iter()
            .find(|r| r.body["order_id"] == order.as_str() && r.body["state"] == "completed")
    })
    .await;
    assert!(
        completed_webhook
            .traceparent
            .as_deref()
            .is_some_and(|tp| tp.contains(&trace_id)),
        "the webhook carries the order's trace: {:?}",
        completed_webhook.traceparent
    );
    assert_eq!(
        completed_webhook.tracestate.as_deref(),
        Some(UPSTREAM_STATE),
        "and the upstream tracestate"
    );

    let spans = spans_until(&trace_id, |sp| {
        has(sp, |s| s.name == "process ramp.cmd.{tenant}.onramp.create")
            && has(sp, |s| {
                s.name == "apply onramp.utr" && s.attr("rampd.order.state.after").is_some()
            })
            && has(sp, |s| {
                s.name == "task drive" && s.attr("rampd.order.state.after") == Some("completed")
            })
            && has(sp, |s| {
                s.name.starts_with("POST ") && s.kind == 3 && s.attr("url.template").is_some()
            })
            && has(sp, |s| {
                s.name == "publish ramp.evt.{tenant}.onramp.status_changed"
            })
            && has(sp, |s| {
                s.name == "POST webhook"
                    && s.attr("http.response.status_code")
                        .is_some_and(|c| c.starts_with('2'))
            })
            && sp.iter().filter(|s| s.name == "POST webhook").count() >= 6
    })
    .await;

    // One connected trace: every span's parent is the upstream span or another span of it.
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for sp in &spans {
        assert!(
            sp.parent_span_id == UPSTREAM_SPAN || ids.contains(sp.parent_span_id.as_str()),
            "span {} has a parent outside the trace: {}",
            sp.name,
            sp.parent_span_id
        );
    }
    // The create command: a NATS consumer span with messaging conventions, continuing
    // the upstream span.
    let create = spans
        .iter()
        .find(|s| s.name == "process ramp.cmd.{tenant}.onramp.create")
        .unwrap();
    assert_eq!(create.kind, 5, "consumer");
    assert_eq!(create.parent_span_id, UPSTREAM_SPAN);
    assert_eq!(create.attr("messaging.system"), Some("nats"));
    assert_eq!(create.attr("messaging.operation.type"), Some("process"));
    assert_eq!(
        create.attr("messaging.destination.name"),
        Some("ramp.cmd.acme.onramp.create")
    );
    assert_eq!(
        create.attr("messaging.destination.template"),
        Some("ramp.cmd.{tenant}.onramp.create")
    );
    assert!(create.attr("messaging.consumer.group.name").is_some());
    assert!(create.attr("server.address").is_some());
    assert_eq!(create.attr("rampd.order.id"), Some(rampd_id.as_str()));
    assert_eq!(create.attr("rampd.tenant"), Some("acme"));
    assert_eq!(create.attr("rampd.order.direction"), Some("onramp"));
    assert_eq!(create.attr("rampd.order.state.after"), Some("preparing"));
    // The UTR command came without context: its own consumer span started a trace of its
    // own, and the span that applied it to the order links there. The order polls while it
    // awaits payment, so an attempt may lose its versioned write to a poll and be decided
    // again: each attempt is a span, the losers marked as conflicts, exactly one committed.
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "apply onramp.utr")
        .collect();
    let (committed, lost): (Vec<&&SpanRec>, Vec<&&SpanRec>) = attempts
        .iter()
        .partition(|s| s.attr("rampd.order.state.after").is_some());
    assert_eq!(committed.len(), 1, "one attempt committed: {attempts:?}");
    for a in &lost {
        assert_eq!(a.attr("rampd.outcome"), Some("conflict"), "{a:?}");
        assert_eq!(a.attr("rampd.order.state.before"), None, "{a:?}");
    }
    let utr = committed[0];
    assert_eq!(utr.links.len(), 1, "linked to the command's own span");
    assert_ne!(utr.links[0].0, trace_id);
    assert_eq!(
        utr.attr("rampd.order.state.before"),
        Some("awaiting_payment")
    );
    assert_eq!(utr.attr("rampd.outcome"), None);
    // Tasks carry the order and its state before and after.
    let task = spans
        .iter()
        .find(|s| s.name == "task drive" && s.attr("rampd.order.state.after") == Some("completed"))
        .unwrap();
    assert_eq!(task.attr("rampd.order.id"), Some(rampd_id.as_str()));
    assert_eq!(task.attr("rampd.task.kind"), Some("drive"));
    assert_eq!(task.attr("rampd.action"), Some("poll_status"));
    assert_eq!(task.attr("rampd.order.state.before"), Some("transferred"));
    // Provider calls are HTTP client spans: method, route template, status, attempt.
    let call = spans
        .iter()
        .find(|s| s.kind == 3 && s.attr("url.template") == Some("users/kyc-status"))
        .expect("the KYC call");
    assert_eq!(call.attr("http.request.method"), Some("POST"));
    let full = call.attr("url.full").expect("url.full");
    assert!(
        full.ends_with("/v1/users/kyc-status") && !full.contains('?'),
        "{full}"
    );
    assert_eq!(call.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(call.attr("http.response.status_code"), Some("200"));
    assert_eq!(call.attr("rampd.retry.attempt"), Some("1"));
    assert_eq!(call.attr("rampd.provider"), Some("onmeta"));
    assert_ne!(call.status, 2, "a successful call is not an error");
    assert!(ids.contains(call.parent_span_id.as_str()), "under its task");
    // Outbox publishes are producer spans; webhook attempts are client spans.
    let publish = spans
        .iter()
        .find(|s| s.name == "publish ramp.evt.{tenant}.onramp.status_changed")
        .unwrap();
    assert_eq!(publish.kind, 4, "producer");
    assert_eq!(publish.attr("messaging.system"), Some("nats"));
    assert_eq!(publish.attr("messaging.operation.type"), Some("send"));
    let hook = spans.iter().find(|s| s.name == "POST webhook").unwrap();
    assert_eq!(hook.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(hook.kind, 3);
    assert_eq!(hook.attr("rampd.order.id"), Some(rampd_id.as_str()));
    assert_eq!(hook.attr("rampd.outcome"), Some("delivered"));
    assert!(hook.attr("rampd.webhook.delivery_id").is_some());

    // An off-ramp order is traced the same way, with its direction.
    let off = format!("tr-off-{}", &trace_id[..8]);
    s.create_offramp(&off).await;
    let stored = s.wait_state(&off, OrderState::AwaitingPayment).await;
    let off_trace = stored.trace_ctx.clone().expect("stored trace");
    let off_trace_id = off_trace.split('-').nth(1).unwrap();
    let off_spans = spans_until(off_trace_id, |sp| {
        has(sp, |s| s.name == "process ramp.cmd.{tenant}.offramp.create")
            && has(sp, |s| {
                s.attr("rampd.order.state.after") == Some("awaiting_payment")
            })
    })
    .await;
    assert!(
        off_spans
            .iter()
            .filter(|s| s.attr("rampd.order.state.after").is_some())
            .all(|s| s.attr("rampd.order.direction") == Some("offramp")),
        "every decision of the off-ramp order names its direction"
    );

    // Logs are JSON lines carrying the trace and span ids.
    let needle = format!("\"trace_id\":\"{trace_id}\"");
    let logs = cap.logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&needle))
        .expect("a log line in the order's trace");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["span_id"].as_str().map(str::len), Some(16));
    s.finish().await;
}
both!(one_order_is_one_trace);

const API_KEY: &str = "sk_live_Zq7RedactMe9";

async fn no_secret_or_pii_in_logs_or_spans(backend: Backend) {
    let cap = capture();
    let sandbox = SandboxConfig {
        api_key: API_KEY.into(),
        ..SandboxConfig::default()
    };
    let s = Stack::start_with(backend, sandbox, |cfg| {
        cfg.provider.api_key = API_KEY.to_string().into();
    })
    .await;
    let tag = &fresh_trace_id()[..10];
    let order = format!("pii-{tag}");
    let email = format!("zebulon.{tag}@example.com");
    let pii = [
        email.clone(),
        "Zebulon Quixote".to_string(),
        "9123456780".to_string(),
        "ZQXPK7312L".to_string(),
        "550012349876".to_string(),
    ];
    let body = json!({
        "command_id": format!("{order}-create"),
        "order_id": order,
        "user": {"email": email, "name": "Zebulon Quixote", "phone": "9123456780", "pan": "ZQXPK7312L"},
        "fiat_amount": "2500.00",
        "token": "USDT",
        "chain_id": 137,
        "receiver_address": "0x2222222222222222222222222222222222222222",
        "payment": {"mode": "imps", "account_number": "550012349876", "account_name": "Zebulon Quixote", "ifsc": "HDFC0000123"}
    });
    s.send("onramp.create", &body).await;
    // A refused command full of the same data, too.
    let mut bad = body.clone();
    bad["command_id"] = json!(format!("{order}-bad"));
    bad["order_id"] = json!(format!("{order}-bad"));
    bad["fiat_amount"] = json!("12.5x");
    s.send("onramp.create", &bad).await;
    s.wait_event("the refusal", |e| e["command_id"] == format!("{order}-bad"))
        .await;
    s.wait_state(&order, OrderState::AwaitingPayment).await;
    s.utr(&order, "412345678922").await;
    let done = s.wait_state(&order, OrderState::Completed).await;
    let trace = done.trace_ctx.clone().expect("the order stores its trace");
    let trace_id = trace.split('-').nth(1).unwrap().to_string();
    let spans = spans_until(&trace_id, |sp| {
        has(sp, |s| {
            s.attr("rampd.order.state.after") == Some("completed")
        })
    })
    .await;
    assert!(spans.len() > 10);

    let webhook_secret = s.cfg.webhooks.endpoints[0]
        .secret
        .expose_secret()
        .to_string();
    let webhook_key = webhook_secret.trim_start_matches("whsec_").to_string();
    let mut secrets: Vec<String> = pii.to_vec();
    secrets.extend([API_KEY.to_string(), webhook_key]);
    let logs = cap.logs();
    assert!(logs.contains(&order), "the captured logs cover this order");
    let every_span = cap.spans();
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a log line leaks {secret}");
        for sp in &every_span {
            assert!(
                !sp.name.contains(secret.as_str()),
                "span name leaks {secret}"
            );
            for (k, v) in &sp.attrs {
                assert!(
                    !v.contains(secret.as_str()),
                    "span {} attribute {k} leaks {secret}",
                    sp.name
                );
            }
        }
    }
    s.finish().await;
}
both!(no_secret_or_pii_in_logs_or_spans);
