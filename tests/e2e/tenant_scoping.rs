//! Tenant scoping end to end (issue 9, item 3): message ids, the inbox and payment
//! references. Two tenants share one stream, one worker and one database: `acme` (the
//! stack's own tenant) and `globex`. Every test runs on both backends and waits for
//! conditions, never for time.

use std::sync::{Arc, Mutex};

use rampd_domain::order::OrderState;
use rampd_e2e::both;
use rampd_e2e::{Backend, Stack, create_body, wait_for};
use serde_json::{Value, json};

const OTHER: &str = "globex";

/// A stack whose worker takes the commands of every tenant.
async fn two_tenants(backend: Backend) -> (Stack, Arc<Mutex<Vec<Value>>>) {
    let s = Stack::start_with(backend, Default::default(), |cfg| {
        cfg.nats.consumer_filter = None;
    })
    .await;
    let other = s.collect_events_of(OTHER).await;
    (s, other)
}

/// Wait for the `command_rejected` event of `command_id` among `events`.
async fn rejection_in(events: &Arc<Mutex<Vec<Value>>>, command_id: &str) -> Value {
    wait_for(&format!("rejection of {command_id}"), || {
        events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "command.rejected" && e["command_id"] == command_id)
            .cloned()
    })
    .await
}

async fn wait_order_of(s: &Stack, tenant: &str, order_id: &str, state: OrderState) {
    let start = std::time::Instant::now();
    loop {
        if let Some(o) = s.order_of(tenant, order_id).await
            && o.order.state == state
        {
            return;
        }
        assert!(
            start.elapsed() < rampd_e2e::WAIT,
            "{tenant}/{order_id} never reached {state:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

// (a) Tenant B publishing with A's bare command id as Nats-Msg-Id (the old contract) no
//     longer suppresses A's command: B's message is refused `msg_id_mismatch`, A's
//     command, sent as `acme.<command_id>`, makes its order. B publishing under A's scoped
//     id is refused as well, so the one thing the stream still does (drop A's later
//     publish of that id, with `duplicate: true` in A's PubAck) is always visible.
async fn mis_scoped_message_ids_are_refused(backend: Backend) {
    let (s, other) = two_tenants(backend).await;

    let b_bare = create_body("g-1", "c-1");
    let ack = s
        .send_raw(OTHER, "onramp.create", &b_bare, Some("c-1"))
        .await;
    assert!(!ack.duplicate);
    let rej = rejection_in(&other, "c-1").await;
    assert_eq!(rej["code"], "msg_id_mismatch", "{rej}");
    assert_eq!(rej["tenant"], OTHER);
    assert_eq!(rej["_subject"], "ramp.evt.globex.onramp.command_rejected");
    assert!(!rej.to_string().contains("acme"), "names no other tenant");

    let ack = s
        .send_raw(
            "acme",
            "onramp.create",
            &create_body("o-1", "c-1"),
            Some("acme.c-1"),
        )
        .await;
    assert!(!ack.duplicate, "B's bare id no longer collides with A's");
    s.wait_state("o-1", OrderState::AwaitingPayment).await;
    assert!(
        s.order_of(OTHER, "g-1").await.is_none(),
        "the refused command made no order"
    );

    // The refusal used nothing up: B's command, sent correctly, is carried out.
    s.send_raw(OTHER, "onramp.create", &b_bare, Some("globex.c-1"))
        .await;
    wait_order_of(&s, OTHER, "g-1", OrderState::AwaitingPayment).await;

    // B under A's scoped id: refused, and A's PubAck shows the stream dropped A's message.
    s.send_raw(
        OTHER,
        "onramp.create",
        &create_body("g-2", "c-2"),
        Some("acme.c-2"),
    )
    .await;
    let rej = rejection_in(&other, "c-2").await;
    assert_eq!(rej["code"], "msg_id_mismatch", "{rej}");
    let ack = s
        .send_raw(
            "acme",
            "onramp.create",
            &create_body("o-2", "c-2"),
            Some("acme.c-2"),
        )
        .await;
    assert!(ack.duplicate, "the residual the contract documents");
    // A, told by its PubAck, sends again under a new command id.
    s.send("onramp.create", &create_body("o-2", "c-2b")).await;
    s.wait_state("o-2", OrderState::AwaitingPayment).await;
    assert!(s.order_of(OTHER, "g-2").await.is_none());
    assert!(
        s.events().iter().all(|e| e["type"] != "command.rejected"),
        "acme saw no rejection: {:?}",
        s.events()
    );
    s.finish().await;
}
both!(mis_scoped_message_ids_are_refused);

// (b) The same command id (and order id) from two tenants makes two orders: the message
//     ids differ by tenant and the inbox is keyed by (tenant, command id).
async fn same_command_id_for_two_tenants_makes_two_orders(backend: Backend) {
    let (s, _other) = two_tenants(backend).await;
    let body = create_body("o-same", "c-same");
    s.send("onramp.create", &body).await;
    let ack = s
        .send_raw(OTHER, "onramp.create", &body, Some("globex.c-same"))
        .await;
    assert!(!ack.duplicate);
    s.wait_state("o-same", OrderState::AwaitingPayment).await;
    wait_order_of(&s, OTHER, "o-same", OrderState::AwaitingPayment).await;
    let a = s.order("o-same").await.unwrap();
    let b = s.order_of(OTHER, "o-same").await.unwrap();
    assert_ne!(a.order.id, b.order.id);
    assert_eq!(
        s.sandbox
            .stats()
            .orders_by_merchant_ref
            .values()
            .sum::<u32>(),
        2
    );
    s.finish().await;
}
both!(same_command_id_for_two_tenants_makes_two_orders);
// (c) A command id is an idempotency key. The same body again (even re-serialised with
//     its keys in another order) changes nothing; another body under a used id is refused
//     `command_id_reused`, also after the first was rejected; a numeric 123 and a string
//     "123" do not collide silently. Sent without Nats-Msg-Id so that JetStream's window
//     does not hide the repeats from rampd.
async fn reused_command_ids_are_refused(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create("o-r").await;
    s.wait_state("o-r", OrderState::AwaitingPayment).await;

    let utr = json!({"command_id": "u-1", "order_id": "o-r", "utr": "412345678901"});
    s.send("onramp.utr", &utr).await;
    s.wait_state("o-r", OrderState::UtrSubmitted).await;
    // Same body, other key order: a harmless repeat.
    let same = r#"{"utr":"412345678901","order_id":"o-r","command_id":"u-1"}"#;
    s.send_raw(
        "acme",
        "onramp.utr",
        &serde_json::from_str(same).unwrap(),
        None,
    )
    .await;
    // Different body under the same command id.
    let other = json!({"command_id": "u-1", "order_id": "o-r", "utr": "412345678902"});
    s.send_raw("acme", "onramp.utr", &other, None).await;
    let rej = s
        .wait_event("reuse rejection", |e| {
            e["type"] == "command.rejected" && e["command_id"] == "u-1"
        })
        .await;
    assert_eq!(rej["code"], "command_id_reused", "{rej}");
    assert!(!rej["reason"].as_str().unwrap().contains("412345678902"));

    // A rejected command's id is used up too: its corrected body is refused.
    let bad = json!({"command_id": "x-1", "order_id": "o-x", "utr": "12"});
    s.send_raw("acme", "onramp.utr", &bad, None).await;
    s.wait_event("first rejection of x-1", |e| {
        e["command_id"] == "x-1" && e["code"] == "invalid_field"
    })
    .await;
    let fixed = create_body("o-x", "x-1");
    s.send_raw("acme", "onramp.create", &fixed, None).await;
    s.wait_event("reuse rejection of x-1", |e| {
        e["command_id"] == "x-1" && e["code"] == "command_id_reused"
    })
    .await;
    assert!(s.order("o-x").await.is_none());

    // Numeric 123, then string "123": the second is refused, not dropped as a repeat.
    s.send_raw("acme", "onramp.create", &create_body("o-n", "c-n"), None)
        .await;
    s.wait_state("o-n", OrderState::AwaitingPayment).await;
    let numeric = r#"{"command_id":123,"order_id":"o-n","reason":"changed my mind"}"#;
    s.send_raw(
        "acme",
        "order.cancel",
        &serde_json::from_str(numeric).unwrap(),
        None,
    )
    .await;
    s.wait_state("o-n", OrderState::Cancelled).await;
    let string = json!({"command_id": "123", "order_id": "o-n", "reason": "changed my mind"});
    s.send_raw("acme", "order.cancel", &string, None).await;
    let rej = s
        .wait_event("reuse rejection of 123", |e| {
            e["type"] == "command.rejected" && e["command_id"] == "123"
        })
        .await;
    assert_eq!(rej["code"], "command_id_reused", "{rej}");

    // Each reuse was answered exactly once and nothing else was refused; the UTR went
    // to the provider once.
    let codes: Vec<_> = s
        .events()
        .iter()
        .filter(|e| e["type"] == "command.rejected")
        .map(|e| format!("{}:{}", e["command_id"], e["code"]))
        .collect();
    assert_eq!(
        codes,
        [
            r#""u-1":"command_id_reused""#,
            r#""x-1":"invalid_field""#,
            r#""x-1":"command_id_reused""#,
            r#""123":"command_id_reused""#
        ]
    );
    let done = s.wait_state("o-r", OrderState::Completed).await;
    assert_eq!(done.order.utr.unwrap().as_str(), "412345678901");
    assert_eq!(
        s.sandbox
            .stats()
            .utr_submissions_by_order
            .values()
            .sum::<u32>(),
        1
    );
    s.finish().await;
}
both!(reused_command_ids_are_refused);
