//! Provider callbacks (`Input::Callback`): folded like a poll's result, deciding nothing
//! when they tell nothing new, and never moving an order back.

use super::*;
use crate::schedule::chrono_duration;

fn callback_at(o: &Order, raw: &str, now: DateTime<Utc>) -> Decision {
    decide(o, Input::Callback(StatusReport::new(raw)), &ctx_at(now)).unwrap()
}

fn callback(o: &Order, raw: &str) -> Decision {
    callback_at(o, raw, t0() + chrono::Duration::minutes(1))
}

fn kinds(d: &Decision) -> Vec<&'static str> {
    d.history.iter().map(|h| h.kind).collect()
}

#[test]
fn a_callback_moves_a_parked_order_at_once_and_polls_follow_on_the_regular_cadence() {
    let parked = observe(&awaiting(), status("fiatPending")).order;
    let now = t0() + chrono::Duration::minutes(1);
    let d = callback_at(&parked, "fiatReceived", now);
    assert_eq!(d.order.state, OrderState::Processing);
    assert_eq!(d.order.provider_status.as_deref(), Some("fiatReceived"));
    assert!(kinds(&d).contains(&"provider_callback"));
    assert!(d.events.iter().any(|e| matches!(
        e.kind,
        EventKind::StatusChanged {
            to: OrderState::Processing,
            ..
        }
    )));
    // No longer parked: the next poll is on the provider's 10-15 s guidance, not the
    // slow parked cadence.
    let p = policy();
    let next = next_at(&d);
    assert!(next >= now + chrono_duration(p.poll.interval_min), "{next}");
    assert!(next <= now + chrono_duration(p.poll.interval_max), "{next}");
}

#[test]
fn a_callback_that_tells_nothing_new_decides_nothing() {
    let polled = observe(&awaiting(), status("fiatPending")).order;
    let d = callback(&polled, "fiatPending");
    assert!(d.is_noop(), "{d:?}");
    assert_eq!(d.order, polled);
    // The same for a repeat of a callback already applied.
    let once = callback(&polled, "fiatReceived").order;
    assert!(callback(&once, "fiatReceived").is_noop());
}

#[test]
fn a_late_callback_never_moves_an_order_back() {
    let ahead = observe(&awaiting(), status("fiatPending")).order;
    let ahead = callback(&ahead, "transferred").order;
    assert_eq!(ahead.state, OrderState::Transferred);
    let d = callback(&ahead, "fiatReceived");
    assert_eq!(d.order.state, OrderState::Transferred);
    assert!(d.events.is_empty());
}

#[test]
fn a_callback_that_disagrees_with_a_later_poll_keeps_the_furthest_state() {
    let o = observe(&awaiting(), status("fiatPending")).order;
    let o = callback(&o, "fiatReceived").order;
    // The provider's status endpoint lags behind its own callback.
    let d = observe(&o, status("fiatPending"));
    assert_eq!(d.order.state, OrderState::Processing);
    assert!(d.events.is_empty());
    assert!(!d.order.state.is_terminal());
    assert_ne!(d.next_run, NextRun::Keep, "polling goes on");
    // And the poll that catches up finishes the order as usual.
    let done = observe(&d.order, status("completed"));
    assert_eq!(done.order.state, OrderState::Completed);
}

#[test]
fn a_terminal_callback_ends_the_order_like_a_poll_would() {
    let o = observe(&awaiting(), status("fiatPending")).order;
    let by_callback = callback(&o, "completed");
    let by_poll = decide(
        &o,
        Input::Observed(Box::new(status("completed"))),
        &ctx_at(t0() + chrono::Duration::minutes(1)),
    )
    .unwrap();
    assert_eq!(by_callback.order.state, OrderState::Completed);
    assert_eq!(by_callback.next_run, NextRun::Done);
    assert_eq!(by_callback.order.state, by_poll.order.state);
    assert_eq!(by_callback.events.len(), by_poll.events.len());
    // Then it is absorbed: a repeat decides nothing.
    assert!(callback(&by_callback.order, "completed").is_noop());
    assert!(callback(&by_callback.order, "fiatReceived").is_noop());
}

#[test]
fn a_callback_before_the_provider_order_or_during_a_call_is_left_to_the_polls() {
    // Create in flight: the provider may call back before its create answer arrives.
    let creating = creating(new_order());
    assert!(creating.provider_order_id.is_none());
    assert!(callback(&creating, "fiatPending").is_noop());
    // A UTR submission in flight: its result is folded first.
    let o = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    let submitting = decide(&o, Input::Intent(Intent::SubmitUtr), &ctx_at(t0()))
        .unwrap()
        .order;
    assert!(callback(&submitting, "fiatReceived").is_noop());
}

#[test]
fn an_unknown_status_in_a_callback_flags_like_a_poll() {
    let o = observe(&awaiting(), status("fiatPending")).order;
    let d = callback(&o, "fiatHeldForReview");
    assert!(d.order.attention.is_some());
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
}

#[test]
fn an_offramp_callback_carries_the_payout_reference() {
    let o = observe(&offramp_with_hash(), status("pending")).order;
    let mut report = StatusReport::new("PayoutSuccess");
    report.payout_reference = Some("UTR998877".into());
    let d = decide(&o, Input::Callback(report), &ctx_at(t0())).unwrap();
    assert_eq!(d.order.payout_reference.as_deref(), Some("UTR998877"));
    assert!(d.order.state.rank() > o.state.rank());
}
