//! Provider callbacks (issue 12): the provider's own webhooks as the fast path beside
//! polling. The sandbox sends them, signed, on every status change; rampd listens on its
//! callback port.

use hmac::{Hmac, KeyInit, Mac};
use rampd::sandbox::{Callbacks, SandboxConfig};
use rampd::storage::entities::provider_callbacks;
use rampd_domain::order::OrderState;
use rampd_e2e::both;
use rampd_e2e::{Backend, Stack, wait_for};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use sha2::Sha256;

const SECRET: &str = "e2e-api-secret";

/// A stack whose worker listens for callbacks, whose parked orders are checked only every
/// minute or more (so that only a callback can move them within a test's wait), and whose
/// sandbox calls back with `callbacks` (its URL and secret filled in).
async fn stack(backend: Backend, callbacks: Callbacks) -> Stack {
    let s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.callbacks.listen = Some(([127, 0, 0, 1], 0).into());
        cfg.provider.api_secret = SECRET.to_string().into();
        cfg.orders.parked_poll_min_ms = 60_000;
        cfg.orders.parked_poll_max_ms = 600_000;
    })
    .await;
    s.sandbox.set_callbacks(Callbacks {
        url: Some(callback_url(&s)),
        secret: SECRET.into(),
        ..callbacks
    });
    s
}

fn callback_url(s: &Stack) -> String {
    let addr = s.worker.as_ref().unwrap().callbacks_addr.unwrap();
    format!("http://{addr}/callbacks/onmeta")
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn post(s: &Stack, body: &[u8], signature: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(callback_url(s))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("x-onmeta-signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(json!(null)))
}

async fn recorded(s: &Stack, outcome: &str) -> Vec<provider_callbacks::Model> {
    provider_callbacks::Entity::find()
        .filter(provider_callbacks::Column::Outcome.eq(outcome))
        .all(&s.db)
        .await
        .unwrap()
}

/// The user pays a parked order at the provider; the provider's callback moves the order
/// at once, long before its next check is due, and the polls that follow finish it.
async fn a_callback_wakes_a_parked_order(backend: Backend) {
    let s = stack(backend, Callbacks::default()).await;
    s.create("o-cb").await;
    let parked = s.wait_state("o-cb", OrderState::AwaitingPayment).await;
    let provider_id = parked.order.provider_order_id.clone().unwrap();
    s.sandbox.pay(&provider_id).unwrap();
    let moved = s.wait_state("o-cb", OrderState::Processing).await;
    assert!(
        moved.order.utr.is_none(),
        "moved by the provider, not by a UTR"
    );
    assert!(
        s.history("o-cb")
            .await
            .contains(&"provider_callback".to_string())
    );
    s.wait_state("o-cb", OrderState::Completed).await;
    // Recorded as applied, with the order it moved (the record follows the commit).
    let order_id = parked.order.id.to_string();
    let start = std::time::Instant::now();
    while !recorded(&s, "applied").await.iter().any(|r| {
        r.order_id.as_deref() == Some(order_id.as_str()) && r.provider_order_id == provider_id
    }) {
        assert!(
            start.elapsed() < rampd_e2e::WAIT,
            "no applied callback recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    // Each state was announced once, in sequence, whether a callback or a poll saw it.
    s.wait_event("o-cb completed", |e| {
        e["order_id"] == "o-cb" && e["state"] == "completed"
    })
    .await;
    let seqs: Vec<i64> = s
        .events_of("o-cb")
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    // Straight from awaiting_payment to processing: the provider saw the money first.
    let states = s.states_of("o-cb");
    assert_eq!(
        states[..3],
        ["preparing", "awaiting_payment", "processing"],
        "{states:?}"
    );
    s.finish().await;
}
both!(a_callback_wakes_a_parked_order);

/// Repeated and reordered callbacks change nothing twice and never move an order back.
async fn repeated_and_reordered_callbacks_are_harmless(backend: Backend) {
    let knobs = Callbacks {
        repeat: 2,
        reorder: true,
        ..Callbacks::default()
    };
    let s = stack(backend, knobs).await;
    s.create("o-rr").await;
    s.wait_state("o-rr", OrderState::AwaitingPayment).await;
    s.utr("o-rr", "412345678903").await;
    s.wait_state("o-rr", OrderState::Completed).await;
    // Events are published after the commit: wait for the last one.
    s.wait_event("o-rr completed", |e| {
        e["order_id"] == "o-rr" && e["state"] == "completed"
    })
    .await;
    // The sandbox sent every callback three times; rampd took each body once.
    wait_for("the sandbox's callbacks", || {
        (s.sandbox.stats().callbacks_sent >= 9).then_some(())
    })
    .await;
    let states: Vec<String> = s
        .events_of("o-rr")
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect();
    let mut unique = states.clone();
    unique.dedup();
    assert_eq!(unique, states, "a state announced twice: {states:?}");
    assert_eq!(states.last().map(String::as_str), Some("completed"));
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.values().sum::<u32>(), 1);
    assert_eq!(stats.utr_submissions_by_order.values().sum::<u32>(), 1);
    s.finish().await;
}
both!(repeated_and_reordered_callbacks_are_harmless);

/// A mis-signed callback is refused with 401 and never acted on; the order stays parked.
async fn mis_signed_callbacks_are_never_acted_on(backend: Backend) {
    let knobs = Callbacks {
        mis_sign_rate: 1.0,
        ..Callbacks::default()
    };
    let s = stack(backend, knobs).await;
    s.create("o-ms").await;
    let parked = s.wait_state("o-ms", OrderState::AwaitingPayment).await;
    let refused = s.sandbox.stats().callbacks_failed;
    s.sandbox
        .pay(parked.order.provider_order_id.as_deref().unwrap())
        .unwrap();
    wait_for("the refused callback", || {
        (s.sandbox.stats().callbacks_failed > refused).then_some(())
    })
    .await;
    let still = s.order("o-ms").await.unwrap();
    assert_eq!(still.order.state, OrderState::AwaitingPayment);
    assert_eq!(still.version, parked.version);
    assert!(recorded(&s, "applied").await.is_empty());
    s.finish().await;
}
both!(mis_signed_callbacks_are_never_acted_on);

/// What the listener answers, request by request: the signature over the raw bytes, the
/// wrapper and key casing, an order nobody knows, the body limit.
async fn the_listener_verifies_raw_bytes_and_records_unknown_orders(backend: Backend) {
    let s = stack(backend, Callbacks::default()).await;
    let body = br#"{"request_data":{"orderid":"not-ours-1","status":"fiatReceived","eventtype":"onramp"}}"#;
    // Unsigned, wrongly signed, signed with another secret: 401.
    assert_eq!(post(&s, body, None).await.0, 401);
    assert_eq!(post(&s, body, Some(&"0".repeat(64))).await.0, 401);
    assert_eq!(post(&s, body, Some(&sign("other", body))).await.0, 401);
    // The same JSON re-serialised does not carry the signature of the original bytes.
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let reserialised = serde_json::to_vec_pretty(&v).unwrap();
    assert_eq!(
        post(&s, &reserialised, Some(&sign(SECRET, body))).await.0,
        401
    );
    // Verified, for an order we do not know: 200, and kept for an operator.
    let (status, answer) = post(&s, body, Some(&sign(SECRET, body))).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("unknown_order"))
    );
    let unknown = recorded(&s, "unknown_order").await;
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].provider_order_id, "not-ours-1");
    assert_eq!(unknown[0].status, "fiatReceived");
    // The operator's list shows it, and nothing applied.
    let mut out = Vec::new();
    let list = rampd::admin::callbacks::CallbacksCmd::List {
        outcome: "unknown_order".into(),
        limit: 10,
        json: false,
    };
    assert!(
        rampd::admin::callbacks::run(&s.db, list, &mut out)
            .await
            .unwrap()
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("not-ours-1") && text.contains("unknown_order"),
        "{text}"
    );
    // The same bytes again: a duplicate, not a second record.
    let (status, answer) = post(&s, body, Some(&sign(SECRET, body))).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(recorded(&s, "unknown_order").await.len(), 1);
    // Verified but unreadable: 400.
    let junk = br#"{"status":"completed"}"#;
    assert_eq!(post(&s, junk, Some(&sign(SECRET, junk))).await.0, 400);
    // Past the body limit: refused before it is read.
    let big = vec![b' '; s.cfg.callbacks.body_limit_bytes + 1];
    assert_eq!(post(&s, &big, Some(&sign(SECRET, &big))).await.0, 413);
    s.finish().await;
}
both!(the_listener_verifies_raw_bytes_and_records_unknown_orders);
