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

/// Wait until the order of `tenant` has recorded `utr` (its state may move on at once).
async fn wait_utr_of(s: &Stack, tenant: &str, order_id: &str, utr: &str) {
    let start = std::time::Instant::now();
    loop {
        if let Some(o) = s.order_of(tenant, order_id).await
            && o.order.utr.as_ref().map(|u| u.as_str()) == Some(utr)
        {
            return;
        }
        assert!(
            start.elapsed() < rampd_e2e::WAIT,
            "{tenant}/{order_id} never recorded its UTR"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
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
    wait_utr_of(&s, "acme", "o-r", "412345678901").await;
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

/// The kinds and details of an order's history rows, oldest first.
async fn history_of(s: &Stack, tenant: &str, order_id: &str) -> Vec<(String, Value)> {
    use rampd::storage::entities::order_events;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let o = s.order_of(tenant, order_id).await.unwrap();
    order_events::Entity::find()
        .filter(order_events::Column::OrderId.eq(o.order.id.to_string()))
        .order_by_asc(order_events::Column::Seq)
        .all(&s.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, serde_json::from_str(&r.detail).unwrap()))
        .collect()
}

// (d) A UTR held by another tenant's order. The sender learns nothing of that order: its
//     command is refused `payment_ref_unavailable` with a neutral reason, and its own order
//     is flagged `payment_ref_contested` with the holder named in its history (operators
//     only). That holds both ways: when B tries A's reference, and when A (whose user
//     really paid) comes after B has pre-empted it. Within one tenant, `utr_in_use` stays.
async fn payment_refs_held_by_another_tenant(backend: Backend) {
    let (s, other) = two_tenants(backend).await;
    s.create("o-a").await;
    s.create("o-a2").await;
    s.create("o-a3").await;
    let b_create = create_body("g-b", "g-b-create");
    s.send_raw(OTHER, "onramp.create", &b_create, Some("globex.g-b-create"))
        .await;
    for o in ["o-a", "o-a2", "o-a3"] {
        s.wait_state(o, OrderState::AwaitingPayment).await;
    }
    wait_order_of(&s, OTHER, "g-b", OrderState::AwaitingPayment).await;

    // A uses X; B then sends X for its own order.
    const X: &str = "612345678901";
    s.utr("o-a", X).await;
    wait_utr_of(&s, "acme", "o-a", X).await;
    let b_try = json!({"command_id": "g-b-x", "order_id": "g-b", "utr": X});
    s.send_raw(OTHER, "onramp.utr", &b_try, Some("globex.g-b-x"))
        .await;
    let rej = rejection_in(&other, "g-b-x").await;
    assert_eq!(rej["code"], "payment_ref_unavailable", "{rej}");
    let text = rej.to_string();
    let a = s.order("o-a").await.unwrap();
    for secret in [X, "o-a", "acme", &a.order.id.to_string()] {
        assert!(
            !text.contains(secret),
            "the rejection reveals {secret}: {text}"
        );
    }
    let b = s.order_of(OTHER, "g-b").await.unwrap();
    assert_eq!(b.order.state, OrderState::AwaitingPayment);
    assert!(b.order.utr.is_none());
    assert_eq!(b.order.attention.as_deref(), Some("payment_ref_contested"));
    let attention = wait_for("B's attention event", || {
        other
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "order.attention_needed")
            .cloned()
    })
    .await;
    assert_eq!(attention["reason"], "payment_ref_contested");
    assert!(!attention.to_string().contains(X));
    let evidence = history_of(&s, OTHER, "g-b").await;
    let (_, detail) = evidence
        .iter()
        .find(|(k, _)| k == "payment_ref_contested")
        .expect("the attempt is in B's timeline");
    assert_eq!(detail["held_by_order"], a.order.id.to_string());
    assert_eq!(detail["reference"], "utr");

    // B pre-empts Y; A's user, who paid with Y, comes second: A is flagged, not just refused.
    const Y: &str = "612345678902";
    let b_y = json!({"command_id": "g-b-y", "order_id": "g-b", "utr": Y});
    s.send_raw(OTHER, "onramp.utr", &b_y, Some("globex.g-b-y"))
        .await;
    wait_utr_of(&s, OTHER, "g-b", Y).await;
    s.send(
        "onramp.utr",
        &json!({"command_id": "a2-y", "order_id": "o-a2", "utr": Y}),
    )
    .await;
    let rej = s
        .wait_event("A's neutral rejection", |e| {
            e["type"] == "command.rejected" && e["command_id"] == "a2-y"
        })
        .await;
    assert_eq!(rej["code"], "payment_ref_unavailable", "{rej}");
    assert!(!rej.to_string().contains("globex"));
    let a2 = s
        .wait_event("A's attention event", |e| {
            e["order_id"] == "o-a2" && e["type"] == "order.attention_needed"
        })
        .await;
    assert_eq!(a2["reason"], "payment_ref_contested");
    let b = s.order_of(OTHER, "g-b").await.unwrap();
    let evidence = history_of(&s, "acme", "o-a2").await;
    let (_, detail) = evidence
        .iter()
        .find(|(k, _)| k == "payment_ref_contested")
        .expect("the evidence is in A's timeline");
    assert_eq!(detail["held_by_order"], b.order.id.to_string());
    assert_eq!(
        s.order("o-a2").await.unwrap().order.attention.as_deref(),
        Some("payment_ref_contested")
    );

    // Within one tenant the holder is the tenant's own: utr_in_use, nothing flagged.
    s.send(
        "onramp.utr",
        &json!({"command_id": "a3-x", "order_id": "o-a3", "utr": X}),
    )
    .await;
    let rej = s
        .wait_event("same-tenant rejection", |e| {
            e["type"] == "command.rejected" && e["command_id"] == "a3-x"
        })
        .await;
    assert_eq!(rej["code"], "utr_in_use", "{rej}");
    assert!(s.order("o-a3").await.unwrap().order.attention.is_none());

    // Each reference reached the provider once, for the order that holds it.
    let stats = s.sandbox.stats();
    assert_eq!(
        stats.utr_submissions_by_order.values().sum::<u32>(),
        2,
        "{stats:?}"
    );
    s.finish().await;
}
both!(payment_refs_held_by_another_tenant);
