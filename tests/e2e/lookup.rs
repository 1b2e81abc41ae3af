//! Interrupted creates and payment-reference submissions are settled by looking the order
//! up, never by calling again on a guess (issue 9, item 1). Each scenario ends with exactly
//! one provider order and one submission, for a user whose order list is longer than any
//! fixed number of pages.

use rampd::sandbox::{Faults, SandboxConfig};
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, both, evm_hash};

/// Newer orders the user gets elsewhere right after our create: our order sits on page 7 of
/// the user's order list.
const NEWER: u32 = 64;

/// One provider on-ramp order in all, for `order_id`, and its UTR submitted once.
async fn one_onramp_order_one_utr(s: &Stack, order_id: &str) {
    let o = s.wait_state(order_id, OrderState::Completed).await;
    let stats = s.sandbox.stats();
    let ours = o.order.id.to_string();
    assert_eq!(
        stats.orders_by_merchant_ref.get(&ours),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.orders_by_merchant_ref.len(), 1, "{stats:?}");
    let po = o.order.provider_order_id.unwrap();
    assert_eq!(
        stats.utr_submissions_by_order.get(&po),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.utr_submissions_by_order.len(), 1, "{stats:?}");
}

fn count(history: &[String], kind: &str) -> usize {
    history.iter().filter(|k| *k == kind).count()
}

// A crash while the provider holds the create reply, for a user who then gets 64 more
// orders: the lookup reads as many pages as it takes.
async fn interrupted_create_of_a_busy_user_is_found(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        respond_latency_create_ms: 800,
        orders_after_next_create: NEWER,
        ..Faults::default()
    });
    let mut s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-busy").await;
    s.kill_during_create("o-busy").await;
    s.wait_state("o-busy", OrderState::AwaitingPayment).await;
    assert_eq!(
        count(&s.history("o-busy").await, "found_after_interrupted_create"),
        1
    );
    s.utr("o-busy", "412345678901").await;
    one_onramp_order_one_utr(&s, "o-busy").await;
    s.finish().await;
}
both!(interrupted_create_of_a_busy_user_is_found);

// No crash: the create takes effect and answers HTTP 200 with garbage, then the first
// lookups fail (503). The failures are inconclusive, not "not found".
async fn garbled_create_then_failing_lookups(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        malformed_next_create: 1,
        fail_next_lookup: 3,
        orders_after_next_create: NEWER,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-garbled").await;
    s.wait_state("o-garbled", OrderState::AwaitingPayment).await;
    let history = s.history("o-garbled").await;
    assert_eq!(count(&history, "lookup_inconclusive"), 3, "{history:?}");
    assert_eq!(count(&history, "found_after_interrupted_create"), 1);
    assert_eq!(count(&history, "not_found_after_interrupted_create"), 0);
    assert_eq!(s.sandbox.stats().create_calls, 1);
    s.utr("o-garbled", "412345678902").await;
    one_onramp_order_one_utr(&s, "o-garbled").await;
    s.finish().await;
}
both!(garbled_create_then_failing_lookups);

// A UTR submission that took effect but answered garbage, for a busy user: the lookup by
// provider order id finds the UTR on page 7 and does not submit it again.
async fn garbled_utr_submission_is_found(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        orders_after_next_create: NEWER,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-utr").await;
    s.wait_state("o-utr", OrderState::AwaitingPayment).await;
    s.sandbox.set_faults(Faults {
        malformed_next_payment_ref: 1,
        fail_next_lookup: 2,
        ..Faults::default()
    });
    s.utr("o-utr", "412345678903").await;
    one_onramp_order_one_utr(&s, "o-utr").await;
    let history = s.history("o-utr").await;
    assert_eq!(
        count(&history, "payment_ref_found_after_interrupted_submit"),
        1,
        "{history:?}"
    );
    s.finish().await;
}
both!(garbled_utr_submission_is_found);

// The same for an off-ramp transaction hash.
async fn garbled_tx_hash_submission_is_found(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        orders_after_next_create: NEWER,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create_offramp("off-hash").await;
    s.wait_state("off-hash", OrderState::AwaitingPayment).await;
    s.sandbox.set_faults(Faults {
        malformed_next_payment_ref: 1,
        ..Faults::default()
    });
    s.tx_hash("off-hash", &evm_hash(7)).await;
    let o = s.wait_state("off-hash", OrderState::Completed).await;
    let stats = s.sandbox.stats();
    assert_eq!(
        stats.offramp_orders_by_merchant_ref.values().sum::<u32>(),
        1,
        "{stats:?}"
    );
    let po = o.order.provider_order_id.unwrap();
    assert_eq!(
        stats.tx_hash_submissions_by_order.get(&po),
        Some(&1),
        "{stats:?}"
    );
    s.finish().await;
}
both!(garbled_tx_hash_submission_is_found);

// Lookups that keep failing: the order is flagged for a person (with the evidence in its
// timeline) and the create is never called again; once the provider answers, the lookup
// finds the one order.
async fn lookups_that_keep_failing_flag_the_order(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        malformed_next_create: 1,
        fail_next_lookup: 1_000,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-stuck").await;
    let flag = s
        .wait_event("attention_needed", |e| {
            e["type"] == "order.attention_needed" && e["order_id"] == "o-stuck"
        })
        .await;
    let reason = flag["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("not repeated"), "{flag}");
    let history = s.history("o-stuck").await;
    // The garbled create and the failed lookups after it count towards the limit (5).
    assert!(count(&history, "lookup_inconclusive") >= 4, "{history:?}");
    assert!(count(&history, "attention") >= 1, "{history:?}");
    let o = s.order("o-stuck").await.unwrap();
    assert_eq!(o.order.state, OrderState::Preparing);
    assert_eq!(s.sandbox.stats().create_calls, 1);
    // The provider recovers: the lookup settles it, still without a second create.
    s.sandbox.set_faults(Faults::default());
    s.wait_state("o-stuck", OrderState::AwaitingPayment).await;
    let stats = s.sandbox.stats();
    assert_eq!(stats.create_calls, 1, "{stats:?}");
    assert_eq!(
        stats.orders_by_merchant_ref.values().sum::<u32>(),
        1,
        "{stats:?}"
    );
    s.finish().await;
}
both!(lookups_that_keep_failing_flag_the_order);

// Every third page of the order list fails: a lookup that started over each time would
// never reach page 7; each attempt goes on where the last one stopped.
async fn a_long_lookup_under_faults_goes_on_where_it_stopped(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        malformed_next_create: 1,
        fail_every_nth_lookup: 3,
        orders_after_next_create: NEWER,
        ..Faults::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create("o-resume").await;
    s.wait_state("o-resume", OrderState::AwaitingPayment).await;
    let history = s.history("o-resume").await;
    assert!(count(&history, "lookup_inconclusive") >= 2, "{history:?}");
    assert_eq!(count(&history, "found_after_interrupted_create"), 1);
    assert_eq!(s.sandbox.stats().create_calls, 1);
    s.sandbox.set_faults(Faults::default());
    s.utr("o-resume", "412345678904").await;
    one_onramp_order_one_utr(&s, "o-resume").await;
    s.finish().await;
}
both!(a_long_lookup_under_faults_goes_on_where_it_stopped);
