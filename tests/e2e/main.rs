//! End-to-end tests: the real worker against a private nats-server, a fresh SQLite file or
//! PostgreSQL database, the sandbox provider and a verifying webhook receiver. Every test
//! runs on both backends.

use std::time::Duration;

use rampd::sandbox::{Faults, SandboxConfig};
use rampd::storage::entities::{order_events, processed_commands};
use rampd_domain::order::OrderState;
use rampd_e2e::both;
use rampd_e2e::{Backend, Stack, create_body, wait_for};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

mod budget;
mod callbacks;
mod chained_steps;
mod edge_cases;
mod fairness;
mod lookup;
mod nats_cluster;
mod offramp;
mod partner;
mod tenant_scoping;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn happy_path(backend: Backend) {
    let s = Stack::start(backend).await;
    s.send_with_id(
        "onramp.create",
        &create_body("o-1", "c-1"),
        "c-1",
        Some(TRACEPARENT),
    )
    .await;

    // The payer's instructions arrive with the awaiting_payment event.
    let ev = s
        .wait_event("awaiting_payment", |e| e["state"] == "awaiting_payment")
        .await;
    assert_eq!(ev["order_id"], "o-1");
    assert_eq!(ev["payment"]["mode"], "INR_UPI");
    assert_eq!(ev["payment"]["amount"], "1500.00");
    assert!(
        ev["payment"]["upi_deep_link"]
            .as_str()
            .unwrap()
            .starts_with("upi://")
    );
    assert!(ev["payment"]["expires_at"].is_string());
    // No PII of the user in events.
    let text = ev.to_string();
    for pii in ["o-1@example.com", "9876543210", "ABCDE1234F", "o-1@okaxis"] {
        assert!(!text.contains(pii), "event leaks {pii}");
    }

    s.utr("o-1", "412345678901").await;
    let done = s.wait_state("o-1", OrderState::Completed).await;
    assert!(done.order.provider_order_id.is_some());

    wait_for("six status events", || {
        (s.states_of("o-1").len() >= 6).then_some(())
    })
    .await;
    assert_eq!(
        s.states_of("o-1"),
        [
            "preparing",
            "awaiting_payment",
            "utr_submitted",
            "processing",
            "transferred",
            "completed"
        ]
    );
    // Events carry the upstream trace and a per-order sequence.
    let evs: Vec<_> = s
        .events()
        .into_iter()
        .filter(|e| e["order_id"] == "o-1")
        .collect();
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["sequence"], (i + 1) as i64);
        assert!(
            e["_headers"]["traceparent"]
                .as_str()
                .unwrap()
                .contains(TRACE_ID)
        );
        assert!(
            e["_subject"]
                .as_str()
                .unwrap()
                .starts_with("ramp.evt.acme.onramp.")
        );
    }

    // Every state change reached the webhook endpoint, signed verifiably.
    let hooks = wait_for("six webhooks", || {
        let h = s.receiver.received();
        (h.len() >= 6).then_some(h)
    })
    .await;
    assert!(hooks.iter().all(|h| h.verified));
    let states: Vec<_> = hooks
        .iter()
        .map(|h| h.body["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states.last().map(String::as_str), Some("completed"));
    assert!(hooks.iter().all(|h| {
        h.traceparent
            .as_deref()
            .is_some_and(|t| t.contains(TRACE_ID))
    }));

    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.len(), 1);
    assert_eq!(stats.orders_by_merchant_ref.values().sum::<u32>(), 1);
    assert_eq!(stats.utr_submissions_by_order.values().sum::<u32>(), 1);
    s.finish().await;
}
both!(happy_path);

async fn imps_order_completes(backend: Backend) {
    let s = Stack::start(backend).await;
    let mut body = create_body("o-imps", "c-imps");
    body["payment"] = json!({"mode": "imps", "account_number": "50100012345678", "account_name": "Asha Rao", "ifsc": "HDFC0001234"});
    s.send("onramp.create", &body).await;
    let ev = s
        .wait_event("awaiting_payment", |e| e["state"] == "awaiting_payment")
        .await;
    assert_eq!(ev["payment"]["mode"], "INR_IMPS");
    assert!(ev["payment"]["bank"]["ifsc"].is_string());
    assert!(!ev.to_string().contains("50100012345678"));
    s.utr("o-imps", "HDFCN52632100123").await;
    s.wait_state("o-imps", OrderState::Completed).await;
    s.finish().await;
}
both!(imps_order_completes);

async fn same_command_twice(backend: Backend) {
    let s = Stack::start(backend).await;
    let body = create_body("o-dup", "c-dup");
    // Without Nats-Msg-Id so JetStream's own dedup does not hide the repeat.
    s.send_raw("acme", "onramp.create", &body, None).await;
    s.send_raw("acme", "onramp.create", &body, None).await;
    s.wait_state("o-dup", OrderState::AwaitingPayment).await;
    let utr = json!({"command_id": "c-dup-utr", "order_id": "o-dup", "utr": "412345678901"});
    s.send_raw("acme", "onramp.utr", &utr, None).await;
    s.send_raw("acme", "onramp.utr", &utr, None).await;
    s.wait_state("o-dup", OrderState::Completed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.events().iter().all(|e| e["type"] != "command.rejected"),
        "a repeat must not be rejected"
    );
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.values().sum::<u32>(), 1);
    assert_eq!(stats.utr_submissions_by_order.values().sum::<u32>(), 1);
    assert_eq!(
        s.states_of("o-dup")
            .iter()
            .filter(|st| *st == "preparing")
            .count(),
        1
    );
    s.finish().await;
}
both!(same_command_twice);

async fn two_creates_for_one_order_id(backend: Backend) {
    let s = Stack::start(backend).await;
    s.send("onramp.create", &create_body("o-2", "c-a")).await;
    s.send("onramp.create", &create_body("o-2", "c-b")).await;
    let rej = s
        .wait_event("rejection", |e| e["type"] == "command.rejected")
        .await;
    assert_eq!(rej["command_id"], "c-b");
    assert_eq!(rej["code"], "order_exists");
    assert_eq!(rej["_subject"], "ramp.evt.acme.onramp.command_rejected");
    s.wait_state("o-2", OrderState::AwaitingPayment).await;
    assert_eq!(
        s.sandbox
            .stats()
            .orders_by_merchant_ref
            .values()
            .sum::<u32>(),
        1
    );
    s.finish().await;
}
both!(two_creates_for_one_order_id);

async fn utr_before_the_provider_order_exists(backend: Backend) {
    // Slow provider: the UTR arrives while the order is still being prepared.
    let sandbox = SandboxConfig::with_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-early").await;
    let o = loop {
        if let Some(o) = s.order("o-early").await {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(o.order.state, OrderState::Preparing);
    s.utr("o-early", "412345678901").await;
    let done = s.wait_state("o-early", OrderState::Completed).await;
    assert_eq!(done.order.utr.as_ref().unwrap().as_str(), "412345678901");
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
both!(utr_before_the_provider_order_exists);

async fn invalid_commands_are_rejected_or_dead_lettered(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create("o-3").await;
    s.wait_state("o-3", OrderState::AwaitingPayment).await;

    // A UTR of the wrong shape: rejected with the command id, nothing changes.
    s.send(
        "onramp.utr",
        &json!({"command_id": "bad-utr", "order_id": "o-3", "utr": "12345"}),
    )
    .await;
    let rej = s
        .wait_event("bad utr rejection", |e| e["command_id"] == "bad-utr")
        .await;
    assert_eq!(rej["code"], "invalid_field");
    assert!(rej["reason"].as_str().unwrap().contains("utr"));
    assert_eq!(
        s.order("o-3").await.unwrap().order.state,
        OrderState::AwaitingPayment
    );

    // An invalid create: rejected, no order.
    let mut bad = create_body("o-4", "bad-create");
    bad["fiat_amount"] = json!("-10");
    s.send("onramp.create", &bad).await;
    s.wait_event("bad create rejection", |e| e["command_id"] == "bad-create")
        .await;
    assert!(s.order("o-4").await.is_none());

    // The same UTR on a second order is refused by the database's unique index.
    s.create("o-5").await;
    s.wait_state("o-5", OrderState::AwaitingPayment).await;
    s.utr("o-3", "412345678901").await;
    s.wait_state("o-3", OrderState::UtrSubmitted).await;
    s.send(
        "onramp.utr",
        &json!({"command_id": "reuse", "order_id": "o-5", "utr": "412345678901"}),
    )
    .await;
    let rej = s
        .wait_event("reused utr rejection", |e| e["command_id"] == "reuse")
        .await;
    assert_eq!(rej["code"], "utr_in_use");

    // Poison: no ids, not JSON, unknown command: dead-lettered, not redelivered forever.
    s.send_with_id(
        "onramp.create",
        &json!({"hello": "world"}),
        "poison-1",
        None,
    )
    .await;
    s.js.publish(
        format!("ramp.cmd.{}.onramp.utr", s.tenant),
        "not json".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    s.js.publish(format!("ramp.cmd.{}.onramp.explode", s.tenant), "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    wait_for("three dead letters", || {
        (s.dead_letters().len() >= 3).then_some(())
    })
    .await;
    assert!(
        s.dead_letters()
            .iter()
            .all(|d| d["_headers"]["reason"].is_string())
    );
    s.finish().await;
}
both!(invalid_commands_are_rejected_or_dead_lettered);

async fn provider_errors_while_polling(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create("o-err").await;
    s.wait_state("o-err", OrderState::AwaitingPayment).await;
    s.sandbox.set_faults(Faults {
        fail_next_status: 3,
        rate_limit_next_status: 2,
        retry_after_secs: 1,
        ..Faults::default()
    });
    s.utr("o-err", "412345678901").await;
    s.wait_state("o-err", OrderState::Completed).await;
    assert!(s.sandbox.stats().faults_injected >= 5);
    // The failures are in the order's history, and the order never flagged or failed.
    let rows: Vec<(String,)> = {
        use rampd::storage::entities::order_events as ev;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
        let id = s.order("o-err").await.unwrap().order.id.to_string();
        ev::Entity::find()
            .select_only()
            .column(ev::Column::Kind)
            .filter(ev::Column::OrderId.eq(id))
            .into_tuple()
            .all(&s.db)
            .await
            .unwrap()
    };
    assert!(
        rows.iter()
            .filter(|(k,)| k == "provider_call_failed")
            .count()
            >= 5
    );
    s.finish().await;
}
both!(provider_errors_while_polling);

async fn cancel_before_payment(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create("o-c").await;
    s.wait_state("o-c", OrderState::AwaitingPayment).await;
    s.send(
        "order.cancel",
        &json!({"command_id": "cancel-1", "order_id": "o-c", "reason": "user changed their mind"}),
    )
    .await;
    let o = s.wait_state("o-c", OrderState::Cancelled).await;
    assert_eq!(o.order.reason.as_deref(), Some("user changed their mind"));
    s.wait_event("cancelled event", |e| {
        e["state"] == "cancelled" && e["order_id"] == "o-c"
    })
    .await;
    // A UTR after the cancel is refused.
    s.send(
        "onramp.utr",
        &json!({"command_id": "late", "order_id": "o-c", "utr": "412345678901"}),
    )
    .await;
    let rej = s
        .wait_event("late utr rejection", |e| e["command_id"] == "late")
        .await;
    assert_eq!(rej["code"], "order_closed");
    // A cancel after payment is refused.
    s.create("o-paid").await;
    s.wait_state("o-paid", OrderState::AwaitingPayment).await;
    s.utr("o-paid", "412345678902").await;
    s.send(
        "order.cancel",
        &json!({"command_id": "cancel-2", "order_id": "o-paid"}),
    )
    .await;
    let rej = s
        .wait_event("cancel rejection", |e| e["command_id"] == "cancel-2")
        .await;
    assert!(
        ["payment_claimed", "payment_in_progress", "order_closed"]
            .contains(&rej["code"].as_str().unwrap())
    );
    s.finish().await;
}
both!(cancel_before_payment);

async fn unpaid_order_expires(backend: Backend) {
    // 3 h of provider time pass in 1.5 s.
    let sandbox = SandboxConfig {
        time_scale: 7_200.0,
        ..SandboxConfig::default()
    };
    let s = Stack::start_with(backend, sandbox, |cfg| cfg.orders.payment_window_secs = 2).await;
    s.create("o-exp").await;
    let o = s.wait_state("o-exp", OrderState::Expired).await;
    assert!(
        o.order.reason.as_deref().unwrap().contains("expired")
            || o.order.reason.as_deref() == Some("payment_window_elapsed")
    );
    s.wait_event("expired event", |e| e["state"] == "expired")
        .await;
    s.finish().await;
}
both!(unpaid_order_expires);

async fn worker_killed_mid_create_resumes_without_duplicates(backend: Backend) {
    // The sandbox creates the order, then holds its reply: the worker dies before it hears
    // back, so the only trace of the order at the provider is our merchant reference.
    let sandbox = SandboxConfig::with_faults(Faults {
        respond_latency_create_ms: 800,
        ..Faults::default()
    });
    let mut s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-crash").await;
    s.kill_during_create("o-crash").await;
    s.wait_state("o-crash", OrderState::AwaitingPayment).await;
    s.utr("o-crash", "412345678901").await;
    s.wait_state("o-crash", OrderState::Completed).await;
    let stats = s.sandbox.stats();
    assert_eq!(
        stats.orders_by_merchant_ref.values().sum::<u32>(),
        1,
        "{stats:?}"
    );
    assert_eq!(
        stats.utr_submissions_by_order.values().sum::<u32>(),
        1,
        "{stats:?}"
    );
    s.finish().await;
}
both!(worker_killed_mid_create_resumes_without_duplicates);

async fn worker_restart_between_commands(backend: Backend) {
    let mut s = Stack::start(backend).await;
    s.create("o-r").await;
    s.wait_state("o-r", OrderState::AwaitingPayment).await;
    s.kill_worker().await;
    // The UTR arrives while no worker runs; JetStream keeps it.
    s.utr("o-r", "412345678901").await;
    s.start_worker().await;
    s.wait_state("o-r", OrderState::Completed).await;
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.values().sum::<u32>(), 1);
    assert_eq!(stats.utr_submissions_by_order.values().sum::<u32>(), 1);
    s.finish().await;
}
both!(worker_restart_between_commands);

/// The worker dies in the middle of a burst of commands, which intake handles many at a
/// time: some are committed and not yet acknowledged, some are mid-way, some unread. After
/// a restart every command has had its effect exactly once: one order each, one inbox row
/// each, one creation in its history each, one provider order each (issue 10: a crash
/// between commit and ack).
async fn a_crash_in_a_burst_of_commands_loses_and_repeats_nothing(backend: Backend) {
    const N: usize = 60;
    let mut s = Stack::start(backend).await;
    let orders: Vec<String> = (0..N).map(|i| format!("o-burst-{i}")).collect();
    for o in &orders {
        s.create(o).await;
    }
    // Some commands are through (their events are out): crash now.
    wait_for("a tenth of the creates through", || {
        let through = s
            .events()
            .iter()
            .filter(|e| e["type"] == "order.status_changed" && e["state"] == "preparing")
            .count();
        (through >= N / 10).then_some(())
    })
    .await;
    s.kill_worker().await;
    s.start_worker().await;
    for o in &orders {
        s.wait_state(o, OrderState::AwaitingPayment).await;
    }
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.len(), N, "{stats:?}");
    assert!(
        stats.orders_by_merchant_ref.values().all(|n| *n == 1),
        "{stats:?}"
    );
    for o in &orders {
        let stored = s.order(o).await.unwrap();
        let id = stored.order.id.to_string();
        let created = order_events::Entity::find()
            .filter(order_events::Column::OrderId.eq(id))
            .filter(order_events::Column::Kind.eq("created"))
            // the order's own creation, not its provider order's
            .filter(order_events::Column::Detail.contains("sm_version"))
            .count(&s.db)
            .await
            .unwrap();
        assert_eq!(created, 1, "{o}: its create took effect {created} times");
    }
    let inbox = processed_commands::Entity::find()
        .filter(processed_commands::Column::CommandType.eq("onramp.create"))
        .count(&s.db)
        .await
        .unwrap();
    assert_eq!(inbox as usize, N);
    s.finish().await;
}
both!(a_crash_in_a_burst_of_commands_loses_and_repeats_nothing);

/// `rampd demo` itself (SQLite, in-process sandbox and receiver) on a private NATS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_completes_every_order() {
    let nats = rampd::natsd::NatsServer::start().await.unwrap();
    let summary = rampd::demo::run(rampd::demo::DemoOptions {
        onramp: 6,
        offramp: 4,
        mint: 3,
        redeem: 2,
        nats_url: Some(nats.url.clone()),
        timeout: Duration::from_secs(60),
        progress: false,
    })
    .await
    .unwrap();
    assert!(summary.success(), "{summary:?}");
    assert_eq!(summary.completed, 15);
    assert_eq!((summary.onramp_orders, summary.offramp_orders), (6, 4));
    assert_eq!((summary.mint_orders, summary.redeem_orders), (3, 2));
    assert_eq!(summary.provider_orders, 10);
    assert_eq!(summary.duplicate_partner_calls, 0);
    // Six status changes per Onmeta order, three per mint, five per redeem, each
    // delivered once and verified.
    assert_eq!(summary.webhooks_received, 60 + 3 * 3 + 2 * 5);
    assert_eq!(summary.webhooks_verified, summary.webhooks_received);
}

async fn replicas_share_the_work_without_duplicates(backend: Backend) {
    let mut s = Stack::start(backend).await;
    s.add_replica().await;
    s.add_replica().await;
    let orders: Vec<String> = (0..12).map(|i| format!("o-rep-{i}")).collect();
    for o in &orders {
        s.create(o).await;
    }
    for o in &orders {
        s.wait_state(o, OrderState::AwaitingPayment).await;
    }
    for (i, o) in orders.iter().enumerate() {
        s.utr(o, &format!("5{:011}", i + 1)).await;
    }
    for o in &orders {
        s.wait_state(o, OrderState::Completed).await;
    }
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.len(), orders.len());
    assert!(
        stats.orders_by_merchant_ref.values().all(|n| *n == 1),
        "{stats:?}"
    );
    assert!(
        stats.utr_submissions_by_order.values().all(|n| *n == 1),
        "{stats:?}"
    );
    // Every state change is delivered once per endpoint, in sequence, whoever sent it.
    let hooks = wait_for("all webhooks", || {
        let h = s.receiver.received();
        (h.len() >= orders.len() * 6).then_some(h)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hooks_after = s.receiver.received();
    assert_eq!(hooks_after.len(), hooks.len(), "a webhook was sent twice");
    let mut ids: Vec<_> = hooks.iter().map(|h| h.webhook_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), orders.len() * 6);
    for o in &orders {
        let mut seqs: Vec<i64> = hooks
            .iter()
            .filter(|h| h.body["order_id"] == o.as_str())
            .map(|h| h.body["sequence"].as_i64().unwrap())
            .collect();
        seqs.sort();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "{o}");
    }
    s.finish().await;
}
both!(replicas_share_the_work_without_duplicates);

// A parked order's polls that see nothing new write no order row and no history: only its
// task moves (issue 10).
async fn quiet_polls_write_only_the_task(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create("o-quiet").await;
    let parked = s.wait_state("o-quiet", OrderState::AwaitingPayment).await;
    let history = s.history("o-quiet").await.len();
    let polls = s.sandbox.stats().status_calls;
    wait_for("five more status polls", || {
        (s.sandbox.stats().status_calls >= polls + 5).then_some(())
    })
    .await;
    let still = s.order("o-quiet").await.unwrap();
    assert_eq!(still.version, parked.version, "no order write");
    assert_eq!(s.history("o-quiet").await.len(), history, "no history");
    // And it still moves at once when something happens.
    s.utr("o-quiet", "412345678909").await;
    s.wait_state("o-quiet", OrderState::Completed).await;
    s.finish().await;
}
both!(quiet_polls_write_only_the_task);
