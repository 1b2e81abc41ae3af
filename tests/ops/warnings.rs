//! The WARN lines on-call reads, through a running stack: a provider call that failed for
//! good, an order flagged for attention, a webhook delivery dead-lettered, an endpoint
//! disabled, NATS disconnected and reconnected. Each names the order (id and trace id)
//! where there is one, and none carries personal data.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rampd::config::EndpointConfig;
use rampd::sandbox::{Faults, SandboxConfig};
use rampd::storage::orders::StoredOrder;
use rampd::webhooks::WebhookSecret;
use rampd_e2e::{Backend, Stack, WAIT, wait_for};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::capture::capture;

/// The captured WARN lines, parsed.
fn warnings() -> Vec<Value> {
    capture()
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "WARN")
        .collect()
}

/// Wait for a WARN line whose message starts with `message` and whose fields include
/// every `(key, value)` of `fields`.
async fn warning(message: &str, fields: &[(&str, &str)]) -> Value {
    let what = format!("WARN {message:?} with {fields:?}");
    wait_for(&what, || {
        warnings().into_iter().find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
                && fields.iter().all(|(k, want)| v[*k].as_str() == Some(*want))
        })
    })
    .await
}

/// A webhook endpoint that answers every delivery 410 Gone.
async fn gone_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new().route("/hook", axum::routing::post(|| async { StatusCode::GONE }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

fn endpoint(id: &str, url: String) -> EndpointConfig {
    EndpointConfig {
        id: id.into(),
        tenant: "acme".into(),
        url,
        secret: SecretString::from(WebhookSecret::generate().expose_text()),
        events: Vec::new(),
    }
}

/// The order with the client's id `order_id`, once it is stored.
async fn stored_order(s: &Stack, order_id: &str) -> StoredOrder {
    let start = Instant::now();
    loop {
        if let Some(o) = s.order(order_id).await {
            return o;
        }
        assert!(start.elapsed() < WAIT, "order {order_id} was never stored");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn trace_id_of(traceparent: Option<&str>) -> String {
    traceparent
        .and_then(|t| t.split('-').nth(1))
        .expect("the order stores its trace")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_lines_name_the_order_and_carry_no_personal_data() {
    let cap = capture();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = gone_endpoint().await;
    let sandbox = SandboxConfig {
        faults: Faults {
            reject_2xx_next_create: 1,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    };
    let mut s = Stack::start_with(Backend::Sqlite, sandbox, |cfg| {
        cfg.orders.attention_after_errors = 1;
        cfg.webhooks.max_attempts = 2;
        cfg.webhooks.retry_schedule_ms = vec![20];
        cfg.webhooks.endpoints.push(endpoint(
            &format!("dead-{tag}"),
            format!("http://127.0.0.1:{closed}/hook"),
        ));
        cfg.webhooks
            .endpoints
            .push(endpoint(&format!("gone-{tag}"), gone));
    })
    .await;
    let worker = s.cfg.worker_id.clone();
    let email = format!("zebulon.{tag}@example.com");
    let pii = [
        email.clone(),
        "Zebulon Quixote".to_string(),
        "9123456780".to_string(),
        "ZQXPK7312L".to_string(),
        "550012349876".to_string(),
    ];
    let body = |order: &str| {
        json!({
            "command_id": format!("{order}-create"),
            "order_id": order,
            "user": {"email": email, "name": "Zebulon Quixote", "phone": "9123456780", "pan": "ZQXPK7312L"},
            "fiat_amount": "2500.00",
            "token": "USDT",
            "chain_id": 137,
            "receiver_address": "0x2222222222222222222222222222222222222222",
            "payment": {"mode": "imps", "account_number": "550012349876", "account_name": "Zebulon Quixote", "ifsc": "HDFC0000123"}
        })
    };

    // The provider refuses the create for good.
    let rejected = format!("warn-rejected-{tag}");
    s.send("onramp.create", &body(&rejected)).await;
    let a = stored_order(&s, &rejected).await;
    let a_id = a.order.id.to_string();
    let a_trace = trace_id_of(a.trace_ctx.as_deref());
    let line = warning(
        "provider call failed for good",
        &[("order.id", &a_id), ("order.trace_id", &a_trace)],
    )
    .await;
    assert!(
        line["error"].as_str().unwrap().starts_with("rejected"),
        "{line}"
    );

    // One failed call flags the next order (attention_after_errors = 1).
    s.sandbox.set_faults(Faults {
        fail_next_create: 1,
        ..Faults::default()
    });
    let flagged = format!("warn-flagged-{tag}");
    s.send("onramp.create", &body(&flagged)).await;
    let b = stored_order(&s, &flagged).await;
    let b_id = b.order.id.to_string();
    let b_trace = trace_id_of(b.trace_ctx.as_deref());
    let line = warning(
        "order flagged for attention",
        &[
            ("order.id", &b_id),
            ("order.trace_id", &b_trace),
            ("tenant", "acme"),
        ],
    )
    .await;
    assert_eq!(line["reason"], "1 consecutive provider failures", "{line}");
    assert_eq!(line["trace_id"], b_trace.as_str(), "{line}");

    // Webhooks: one endpoint refuses connections until its deliveries give up, another
    // answers 410 and is disabled.
    let line = warning(
        "webhook delivery dead-lettered",
        &[("endpoint", &format!("dead-{tag}")), ("tenant", "acme")],
    )
    .await;
    assert_eq!(line["last_result"], "connection_failed", "{line}");
    assert!(
        [a_id.as_str(), b_id.as_str()].contains(&line["order.id"].as_str().unwrap()),
        "{line}"
    );
    assert!(
        line["order.trace_id"]
            .as_str()
            .is_some_and(|t| t.len() == 32)
    );
    let line = warning(
        "webhook endpoint disabled",
        &[("endpoint", &format!("gone-{tag}")), ("reason", "gone")],
    )
    .await;
    assert!(line["order.id"].as_str().is_some(), "{line}");

    // NATS goes away and comes back.
    s.nats.stop().await;
    warning("NATS disconnected", &[("worker", &worker)]).await;
    s.nats.restart().await.expect("nats-server restarts");
    warning("NATS reconnected", &[("worker", &worker)]).await;

    // No WARN line (nor any other) carries the orders' personal data.
    let logs = cap.logs();
    for secret in &pii {
        assert!(!logs.contains(secret.as_str()), "a log line leaks {secret}");
    }
    s.finish().await;
}
