//! On-ramp edge cases end to end: slow KYC and its timeout, pending and name-mismatched
//! payment-method links, stale quotes and price moves, a late UTR moved to a successor,
//! UTR reuse, and a provider that refuses an order with HTTP 200. Every test runs on both
//! backends and waits for conditions, never for time.

use std::time::Duration;

use rampd::sandbox::{Faults, SandboxConfig, Scenario};
use rampd::storage::entities::{orders, processed_commands, scheduled_tasks};
use rampd_domain::order::OrderState;
use rampd_e2e::both;
use rampd_e2e::{Backend, Stack, create_body, wait_for};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

const ONRAMP_PATH: [&str; 6] = [
    "preparing",
    "awaiting_payment",
    "utr_submitted",
    "processing",
    "transferred",
    "completed",
];

/// Fast KYC re-checks for tests that wait for KYC.
fn fast_kyc(cfg: &mut rampd::config::Config) {
    cfg.orders.kyc_recheck_ms = 50;
    cfg.orders.kyc_recheck_cap_ms = 200;
}

/// Wait until the command was handled (accepted, unchanged or refused) and return its
/// inbox row.
async fn processed(s: &Stack, command_id: &str) -> processed_commands::Model {
    let start = std::time::Instant::now();
    loop {
        let row = processed_commands::Entity::find_by_id(format!("{}:{command_id}", s.tenant))
            .one(&s.db)
            .await
            .unwrap();
        if let Some(row) = row {
            return row;
        }
        assert!(
            start.elapsed() < rampd_e2e::WAIT,
            "command {command_id} was never processed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Send an on-ramp UTR with an explicit command id (also its `Nats-Msg-Id`), so that a
/// repeat reaches the order machine instead of the inbox or JetStream dedup.
async fn utr_cmd(s: &Stack, command_id: &str, order_id: &str, utr: &str) {
    s.send(
        "onramp.utr",
        &json!({"command_id": command_id, "order_id": order_id, "utr": utr}),
    )
    .await;
}

/// The status of the order's drive task (`ready`, `done`, ...).
async fn task_status(s: &Stack, order_id: &str) -> Option<String> {
    let id = s.order(order_id).await?.order.id.to_string();
    scheduled_tasks::Entity::find()
        .filter(scheduled_tasks::Column::OrderId.eq(id))
        .filter(scheduled_tasks::Column::Kind.eq("drive"))
        .one(&s.db)
        .await
        .unwrap()
        .map(|t| t.status)
}

async fn order_count(s: &Stack) -> u64 {
    orders::Entity::find()
        .filter(orders::Column::Tenant.eq(s.tenant.as_str()))
        .count(&s.db)
        .await
        .unwrap()
}

fn count(history: &[String], kind: &str) -> usize {
    history.iter().filter(|k| *k == kind).count()
}

/// Wait for `n` status events of the order, then return their states.
async fn wait_states(s: &Stack, order_id: &str, n: usize) -> Vec<String> {
    wait_for(&format!("{n} status events of {order_id}"), || {
        let st = s.states_of(order_id);
        (st.len() >= n).then_some(st)
    })
    .await
}

/// The terminal webhook of the order arrived, and every webhook so far verifies.
async fn webhooks_verified(s: &Stack, order_id: &str, last_state: &str) {
    wait_for(&format!("{last_state} webhook of {order_id}"), || {
        s.receiver
            .received()
            .into_iter()
            .find(|h| h.body["order_id"] == order_id && h.body["state"] == last_state)
    })
    .await;
    let hooks = s.receiver.received();
    assert!(
        hooks.iter().all(|h| h.verified),
        "a webhook did not verify: {:?}",
        hooks
            .iter()
            .filter(|h| !h.verified)
            .map(|h| &h.body)
            .collect::<Vec<_>>()
    );
}

fn rejections(s: &Stack) -> Vec<Value> {
    s.events()
        .into_iter()
        .filter(|e| e["type"] == "command.rejected")
        .collect()
}

// 1. KYC pending for a few checks, then verified: the order waits on its own and goes on.
async fn kyc_pending_then_verified(backend: Backend) {
    let sandbox = SandboxConfig::with_scenario(Scenario {
        kyc_pending_checks: 3,
        ..Scenario::default()
    });
    let s = Stack::start_with(backend, sandbox, fast_kyc).await;
    s.create("o-kyc").await;

    let ev = s
        .wait_event("kyc_required", |e| {
            e["type"] == "order.status_changed"
                && e["order_id"] == "o-kyc"
                && e["state"] == "kyc_required"
        })
        .await;
    let missing: Vec<String> = ev["kyc_missing"]
        .as_array()
        .unwrap_or_else(|| panic!("kyc_required event lacks kyc_missing: {ev}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert!(!missing.is_empty(), "{ev}");
    let mut unique = missing.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), missing.len(), "duplicates in {missing:?}");
    // Outstanding items only: the sandbox lists ADDRESS_MAIN twice and DATE_OF_BIRTH
    // unstarted; EMAIL is fulfilled and IDENTIFICATION_VERIFICATION's IN_PROGRESS is
    // allowed.
    for m in ["ADDRESS_MAIN", "DATE_OF_BIRTH"] {
        assert!(missing.iter().any(|x| x == m), "{m} not in {missing:?}");
    }
    for m in ["EMAIL", "IDENTIFICATION_VERIFICATION"] {
        assert!(!missing.iter().any(|x| x == m), "{m} in {missing:?}");
    }

    // No command from us: the order re-checks and carries on by itself.
    let o = s.wait_state("o-kyc", OrderState::AwaitingPayment).await;
    assert!(o.order.provider_order_id.is_some());
    s.utr("o-kyc", "412345678901").await;
    s.wait_state("o-kyc", OrderState::Completed).await;

    let states = wait_states(&s, "o-kyc", 8).await;
    assert_eq!(
        states,
        [
            "preparing",
            "kyc_required",
            "preparing",
            "awaiting_payment",
            "utr_submitted",
            "processing",
            "transferred",
            "completed"
        ]
    );
    let history = s.history("o-kyc").await;
    // Three "not yet" answers and the one that verified.
    assert!(count(&history, "kyc_checked") >= 4, "{history:?}");
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.values().sum::<u32>(), 1);
    assert_eq!(stats.utr_submissions_by_order.values().sum::<u32>(), 1);
    webhooks_verified(&s, "o-kyc", "completed").await;
    s.finish().await;
}
both!(kyc_pending_then_verified);

// 2. KYC never verifies: the order fails `kyc_timeout` once the KYC window ends.
async fn kyc_timeout(backend: Backend) {
    let sandbox = SandboxConfig {
        kyc_verified: false,
        ..SandboxConfig::default()
    };
    let s = Stack::start_with(backend, sandbox, |cfg| {
        fast_kyc(cfg);
        cfg.orders.kyc_window_secs = 1;
    })
    .await;
    s.create("o-kto").await;
    let o = s.wait_state("o-kto", OrderState::Failed).await;
    assert_eq!(o.order.reason.as_deref(), Some("kyc_timeout"));
    assert!(o.order.provider_order_id.is_none());
    assert_eq!(task_status(&s, "o-kto").await.as_deref(), Some("done"));

    let states = wait_states(&s, "o-kto", 3).await;
    assert_eq!(states, ["preparing", "kyc_required", "failed"]);
    let failed = s
        .wait_event("failed event", |e| {
            e["order_id"] == "o-kto" && e["state"] == "failed"
        })
        .await;
    assert_eq!(failed["reason"], "kyc_timeout");
    assert!(count(&s.history("o-kto").await, "kyc_checked") >= 2);
    let stats = s.sandbox.stats();
    assert!(stats.orders_by_merchant_ref.is_empty(), "{stats:?}");
    assert_eq!(stats.create_calls, 0, "{stats:?}");
    webhooks_verified(&s, "o-kto", "failed").await;
    s.finish().await;
}
both!(kyc_timeout);

// 3. The payment-method link is pending for a few polls, then linked.
async fn link_pending_then_linked(backend: Backend) {
    let sandbox = SandboxConfig::with_scenario(Scenario {
        link_pending_polls: 2,
        ..Scenario::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-link").await;
    s.wait_state("o-link", OrderState::AwaitingPayment).await;
    let history = s.history("o-link").await;
    let pending = history
        .iter()
        .position(|k| k == "payment_method_link_pending")
        .unwrap_or_else(|| panic!("no payment_method_link_pending in {history:?}"));
    let linked = history
        .iter()
        .position(|k| k == "payment_method_linked")
        .unwrap_or_else(|| panic!("no payment_method_linked in {history:?}"));
    assert!(pending < linked, "{history:?}");
    assert!(
        s.order("o-link")
            .await
            .unwrap()
            .order
            .link_reference
            .is_none()
    );

    s.utr("o-link", "412345678901").await;
    s.wait_state("o-link", OrderState::Completed).await;
    assert_eq!(wait_states(&s, "o-link", 6).await, ONRAMP_PATH);
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.values().sum::<u32>(), 1);
    webhooks_verified(&s, "o-link", "completed").await;
    s.finish().await;
}
both!(link_pending_then_linked);

// 4. The UPI holder's name differs from the KYC name: the order fails, nothing is created.
async fn link_name_mismatch_fails(backend: Backend) {
    let sandbox = SandboxConfig::with_scenario(Scenario {
        link_name_mismatch_next: 1,
        ..Scenario::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-nm").await;
    let o = s.wait_state("o-nm", OrderState::Failed).await;
    assert_eq!(o.order.reason.as_deref(), Some("name_mismatch"));
    assert!(o.order.provider_order_id.is_none());
    assert_eq!(task_status(&s, "o-nm").await.as_deref(), Some("done"));
    let failed = s
        .wait_event("failed event", |e| {
            e["order_id"] == "o-nm" && e["state"] == "failed"
        })
        .await;
    assert_eq!(failed["reason"], "name_mismatch");
    let stats = s.sandbox.stats();
    assert!(stats.orders_by_merchant_ref.is_empty(), "{stats:?}");
    assert_eq!(stats.create_calls, 0, "{stats:?}");
    webhooks_verified(&s, "o-nm", "failed").await;
    s.finish().await;
}
both!(link_name_mismatch_fails);

/// Quotes go stale fast; a failed create is retried only after the quote went stale.
fn stale_quotes(cfg: &mut rampd::config::Config) {
    cfg.orders.quote_validity_ms = 200;
    cfg.orders.backoff_base_ms = 1_000;
    cfg.orders.backoff_cap_ms = 2_000;
}

// 5. A create fails and is retried after the quote went stale: the quote is fetched again.
async fn stale_quote_is_fetched_again(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        fail_next_create: 1,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, stale_quotes).await;
    s.create("o-sq").await;
    s.wait_state("o-sq", OrderState::AwaitingPayment).await;
    s.utr("o-sq", "412345678901").await;
    s.wait_state("o-sq", OrderState::Completed).await;

    let history = s.history("o-sq").await;
    assert!(count(&history, "quoted") >= 2, "{history:?}");
    assert!(count(&history, "provider_call_failed") >= 1, "{history:?}");
    // The re-quote came after the failure.
    let failed_at = history
        .iter()
        .position(|k| k == "provider_call_failed")
        .unwrap();
    assert!(
        history[failed_at..].iter().any(|k| k == "quoted"),
        "{history:?}"
    );
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.len(), 1, "{stats:?}");
    assert_eq!(
        stats.orders_by_merchant_ref.values().sum::<u32>(),
        1,
        "{stats:?}"
    );
    assert_eq!(stats.create_calls, 2, "{stats:?}");
    assert_eq!(wait_states(&s, "o-sq", 6).await, ONRAMP_PATH);
    webhooks_verified(&s, "o-sq", "completed").await;
    s.finish().await;
}
both!(stale_quote_is_fetched_again);

// 6. The price moves beyond the user's limit between quotes: the order fails.
async fn price_move_beyond_limit_fails(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        fail_next_create: 3,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, stale_quotes).await;
    let mut body = create_body("o-pm", "o-pm-create");
    body["max_price_change_pct"] = json!("2");
    s.send("onramp.create", &body).await;

    let start = std::time::Instant::now();
    while count(&s.history("o-pm").await, "quoted") == 0 {
        assert!(start.elapsed() < rampd_e2e::WAIT, "never quoted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = s.sandbox.conversion_rate();
    s.sandbox
        .set_conversion_rate(rate * Decimal::new(110, 2))
        .unwrap();

    let o = s.wait_state("o-pm", OrderState::Failed).await;
    let reason = o.order.reason.clone().unwrap();
    assert!(reason.starts_with("price_moved"), "{reason}");
    assert!(o.order.provider_order_id.is_none());
    assert_eq!(task_status(&s, "o-pm").await.as_deref(), Some("done"));
    let history = s.history("o-pm").await;
    assert!(count(&history, "quoted") >= 2, "{history:?}");
    let failed = s
        .wait_event("failed event", |e| {
            e["order_id"] == "o-pm" && e["state"] == "failed"
        })
        .await;
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("price_moved")),
        "{failed}"
    );
    let stats = s.sandbox.stats();
    assert!(stats.orders_by_merchant_ref.is_empty(), "{stats:?}");
    webhooks_verified(&s, "o-pm", "failed").await;
    s.finish().await;
}
both!(price_move_beyond_limit_fails);

// 7. A UTR for an order that expired unpaid moves to a new order that completes.
async fn late_utr_moves_to_a_successor(backend: Backend) {
    // Provider orders expire 3 s after creation (provider time = real time).
    let sandbox = SandboxConfig {
        order_expiry: Duration::from_secs(3),
        ..SandboxConfig::default()
    };
    let s = Stack::start_with(backend, sandbox, |cfg| cfg.orders.payment_window_secs = 3).await;
    s.create("o-late").await;
    let expired = s.wait_state("o-late", OrderState::Expired).await;
    let orig_id = expired.order.id.to_string();
    let orig_reason = expired.order.reason.clone();
    assert!(expired.order.utr.is_none());

    const UTR: &str = "412345678901";
    utr_cmd(&s, "late-1", "o-late", UTR).await;
    let succ = s
        .wait_state("o-late:successor", OrderState::Completed)
        .await;
    let succ_id = succ.order.id.to_string();
    assert_ne!(succ_id, orig_id);
    assert_eq!(succ.order.utr.as_ref().unwrap().as_str(), UTR);
    assert_eq!(succ.order.predecessor, Some(expired.order.id));
    assert_eq!(succ.order.request, expired.order.request);

    // The expired order stays expired and names its successor.
    let orig = s.order("o-late").await.unwrap();
    assert_eq!(orig.order.state, OrderState::Expired);
    assert_eq!(orig.order.reason, orig_reason);
    assert_eq!(orig.order.successor, Some(succ.order.id));
    assert!(orig.order.utr.is_none());
    assert_eq!(orig.order.late_utr.as_ref().unwrap().as_str(), UTR);
    assert_eq!(count(&s.history("o-late").await, "successor_created"), 1);
    assert!(
        s.history("o-late:successor")
            .await
            .iter()
            .any(|k| k == "carries_late_utr")
    );

    // Events name each other.
    let ev = s
        .wait_event("successor_created", |e| {
            e["type"] == "order.successor_created" && e["order_id"] == "o-late"
        })
        .await;
    assert_eq!(ev["successor_order_id"], succ_id.as_str());
    assert_eq!(ev["rampd_order_id"], orig_id.as_str());
    assert_eq!(ev["state"], "expired");
    assert_eq!(wait_states(&s, "o-late:successor", 6).await, ONRAMP_PATH);
    let succ_events = s.events_of("o-late:successor");
    assert!(!succ_events.is_empty());
    for e in &succ_events {
        assert_eq!(e["predecessor_order_id"], orig_id.as_str(), "{e}");
        assert_eq!(e["rampd_order_id"], succ_id.as_str(), "{e}");
    }
    // The original's own status events: preparing, awaiting_payment, expired, no more.
    assert_eq!(
        wait_states(&s, "o-late", 3).await,
        ["preparing", "awaiting_payment", "expired"]
    );

    // The provider saw one UTR, on the successor's order; one order per rampd order.
    let stats = s.sandbox.stats();
    let succ_po = succ.order.provider_order_id.clone().unwrap();
    assert_ne!(Some(&succ_po), expired.order.provider_order_id.as_ref());
    assert_eq!(stats.utr_submissions_by_order.len(), 1, "{stats:?}");
    assert_eq!(
        stats.utr_submissions_by_order.get(&succ_po),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.orders_by_merchant_ref.get(&orig_id), Some(&1));
    assert_eq!(stats.orders_by_merchant_ref.get(&succ_id), Some(&1));
    assert_eq!(stats.orders_by_merchant_ref.len(), 2, "{stats:?}");

    // The same late UTR again (a new command): nothing changes, nothing is refused.
    utr_cmd(&s, "late-2", "o-late", UTR).await;
    let row = processed(&s, "late-2").await;
    assert!(
        rejections(&s).iter().all(|r| r["command_id"] != "late-2"),
        "{row:?}"
    );
    assert_eq!(order_count(&s).await, 2);
    assert_eq!(count(&s.history("o-late").await, "successor_created"), 1);
    let again = s.order("o-late").await.unwrap();
    assert_eq!(again.order.successor, Some(succ.order.id));
    assert_eq!(again.version, orig.version, "the repeat changed the order");
    assert!(s.order("o-late:successor:successor").await.is_none());
    assert_eq!(s.sandbox.stats(), stats);

    // A different late UTR is refused: the expired order already handed one on.
    utr_cmd(&s, "late-3", "o-late", "412345678902").await;
    let rej = s
        .wait_event("second late utr rejection", |e| {
            e["type"] == "command.rejected" && e["command_id"] == "late-3"
        })
        .await;
    assert_eq!(rej["code"], "utr_already_set", "{rej}");
    assert_eq!(order_count(&s).await, 2);
    assert_eq!(
        s.events()
            .iter()
            .filter(|e| e["type"] == "order.successor_created")
            .count(),
        1
    );
    webhooks_verified(&s, "o-late:successor", "completed").await;
    s.finish().await;
}
both!(late_utr_moves_to_a_successor);

// 8. A repeated UTR on its order is harmless; the same UTR on another live order is
//    refused and leaves that order free to take its own.
async fn utr_reuse_rules(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create("o-ua").await;
    s.create("o-ub").await;
    s.wait_state("o-ua", OrderState::AwaitingPayment).await;
    let b = s.wait_state("o-ub", OrderState::AwaitingPayment).await;

    const UTR: &str = "512345678901";
    // Two commands carrying the same UTR for the same order.
    utr_cmd(&s, "ua-1", "o-ua", UTR).await;
    utr_cmd(&s, "ua-2", "o-ua", UTR).await;
    processed(&s, "ua-1").await;
    processed(&s, "ua-2").await;

    // The same UTR on the other, still awaiting, order is refused.
    utr_cmd(&s, "ub-reuse", "o-ub", UTR).await;
    let rej = s
        .wait_event("utr_in_use rejection", |e| {
            e["type"] == "command.rejected" && e["command_id"] == "ub-reuse"
        })
        .await;
    assert_eq!(rej["code"], "utr_in_use", "{rej}");
    assert_eq!(rej["order_id"], "o-ub");
    assert_eq!(rej["command"], "onramp.utr");
    let b_now = s.order("o-ub").await.unwrap();
    assert_eq!(b_now.order.state, OrderState::AwaitingPayment);
    assert!(b_now.order.utr.is_none());
    assert_eq!(b_now.order.event_seq, b.order.event_seq);

    s.wait_state("o-ua", OrderState::Completed).await;
    // Once more after completion: still a harmless repeat.
    utr_cmd(&s, "ua-3", "o-ua", UTR).await;
    processed(&s, "ua-3").await;

    // The refused order still takes its own UTR and completes.
    utr_cmd(&s, "ub-own", "o-ub", "512345678902").await;
    let b_done = s.wait_state("o-ub", OrderState::Completed).await;
    assert_eq!(b_done.order.utr.as_ref().unwrap().as_str(), "512345678902");

    let rejected: Vec<_> = rejections(&s)
        .iter()
        .map(|r| r["command_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rejected, ["ub-reuse"], "only the reuse is refused");
    let a = s.order("o-ua").await.unwrap();
    assert_eq!(a.order.utr.as_ref().unwrap().as_str(), UTR);
    let stats = s.sandbox.stats();
    let a_po = a.order.provider_order_id.unwrap();
    let b_po = b_done.order.provider_order_id.unwrap();
    assert_eq!(
        stats.utr_submissions_by_order.get(&a_po),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(
        stats.utr_submissions_by_order.get(&b_po),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.utr_submissions_by_order.len(), 2, "{stats:?}");
    assert_eq!(wait_states(&s, "o-ua", 6).await, ONRAMP_PATH);
    assert_eq!(wait_states(&s, "o-ub", 6).await, ONRAMP_PATH);
    webhooks_verified(&s, "o-ua", "completed").await;
    webhooks_verified(&s, "o-ub", "completed").await;
    s.finish().await;
}
both!(utr_reuse_rules);

// 9. The provider refuses the create with HTTP 200 and `success: false`: the order fails
//    at once, without retrying the create.
async fn two_hundred_rejection_fails_the_order(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        reject_2xx_next_create: 1,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-200").await;
    let o = s.wait_state("o-200", OrderState::Failed).await;
    let reason = o.order.reason.clone().unwrap();
    assert!(reason.starts_with("provider_rejected_order"), "{reason}");
    assert!(o.order.provider_order_id.is_none());
    assert!(o.order.intent.is_none());
    // Terminal: the order's task is done, so no create can follow.
    assert_eq!(task_status(&s, "o-200").await.as_deref(), Some("done"));
    let stats = s.sandbox.stats();
    assert_eq!(stats.create_calls, 1, "{stats:?}");
    assert!(stats.orders_by_merchant_ref.is_empty(), "{stats:?}");
    let failed = s
        .wait_event("failed event", |e| {
            e["order_id"] == "o-200" && e["state"] == "failed"
        })
        .await;
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("provider_rejected_order")),
        "{failed}"
    );
    assert_eq!(wait_states(&s, "o-200", 2).await, ["preparing", "failed"]);
    webhooks_verified(&s, "o-200", "failed").await;
    s.finish().await;
}
both!(two_hundred_rejection_fails_the_order);

/// A create naming a chain the deployment's provider does not support is refused with
/// `unsupported_chain` and creates nothing, here or at the provider: an id far outside any
/// real chain, and a real chain left out of `orders.supported_chains`.
async fn unsupported_chains_are_refused_before_any_provider_call(backend: Backend) {
    let s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.orders.supported_chains =
            rampd_domain::supported_chains::SupportedChains::new([137]).unwrap();
    })
    .await;
    for (order, chain) in [
        ("o-huge-chain", json!(12345678901234567890u64)),
        ("o-bsc", json!(56)),
    ] {
        let command = format!("{order}-create");
        let mut body = create_body(order, &command);
        body["chain_id"] = chain;
        s.send("onramp.create", &body).await;
        let rej = s
            .wait_event("the refusal", |e| e["command_id"] == command.as_str())
            .await;
        assert_eq!(rej["type"], "command.rejected");
        assert_eq!(rej["code"], "unsupported_chain");
        assert!(rej["reason"].as_str().unwrap().contains("chain_id"));
        assert!(s.order(order).await.is_none());
    }
    // Both were answered before this create was sent; the provider holds this one only.
    s.create("o-polygon").await;
    s.wait_state("o-polygon", OrderState::AwaitingPayment).await;
    assert_eq!(s.sandbox.stats().orders_by_merchant_ref.len(), 1);
    s.finish().await;
}
both!(unsupported_chains_are_refused_before_any_provider_call);
