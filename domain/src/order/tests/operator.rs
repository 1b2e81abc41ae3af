//! Operator actions (`Input::Operator`): cancel under the command's rules, resolve a flag,
//! retry now; each recorded with who and why and announced as an event.

use super::*;

fn op(o: &Order, action: OperatorAction) -> Result<Decision, Rejection> {
    decide(
        o,
        Input::Operator {
            by: "alice".into(),
            reason: "checked with the provider".into(),
            action,
        },
        &ctx_at(t0() + chrono::Duration::minutes(5)),
    )
}

fn flagged() -> Order {
    let d = observe(&awaiting(), status("fiatHeldForReview"));
    assert!(d.order.attention.is_some());
    d.order
}

fn announced(d: &Decision, action: OperatorAction) {
    let h = d
        .history
        .iter()
        .find(|h| h.kind == "operator_action")
        .expect("recorded in the history");
    assert_eq!(h.detail["action"], action.as_str());
    assert_eq!(h.detail["by"], "alice");
    assert_eq!(h.detail["reason"], "checked with the provider");
    assert!(d.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::OperatorAction { action: a, by, .. } if *a == action && by == "alice"
    )));
}

#[test]
fn resolve_clears_the_flag_and_keeps_the_state() {
    let o = flagged();
    let d = op(&o, OperatorAction::Resolve).unwrap();
    assert_eq!(d.order.attention, None);
    assert_eq!(d.order.state, o.state);
    assert_eq!(d.next_run, NextRun::Keep);
    assert!(d.history.iter().any(|h| h.kind == "attention_resolved"));
    announced(&d, OperatorAction::Resolve);
}

#[test]
fn resolve_works_on_a_terminal_order_and_is_a_noop_when_not_flagged() {
    let submitted = observe(
        &decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
            .unwrap()
            .order,
        Observation::UtrAccepted,
    )
    .order;
    let ended = observe(&submitted, status("expired")).order;
    assert!(ended.state.is_terminal() && ended.attention.is_some());
    let d = op(&ended, OperatorAction::Resolve).unwrap();
    assert_eq!(d.order.attention, None);
    assert_eq!(d.order.state, ended.state);
    assert!(op(&d.order, OperatorAction::Resolve).unwrap().is_noop());
    assert!(op(&awaiting(), OperatorAction::Resolve).unwrap().is_noop());
}

#[test]
fn cancel_follows_the_cancel_command_rules() {
    let d = op(&awaiting(), OperatorAction::Cancel).unwrap();
    assert_eq!(d.order.state, OrderState::Cancelled);
    assert_eq!(d.order.reason.as_deref(), Some("cancelled_by_operator"));
    assert_eq!(d.next_run, NextRun::Done);
    announced(&d, OperatorAction::Cancel);
    assert_eq!(
        op(&d.order, OperatorAction::Cancel).unwrap_err().code,
        "order_closed"
    );
    let paid = observe(&awaiting(), status("fiatReceived")).order;
    let refused = op(&paid, OperatorAction::Cancel).unwrap_err();
    assert_eq!(refused.code, "payment_in_progress");
}

#[test]
fn retry_now_pulls_the_next_run_to_now_on_live_orders_only() {
    let o = awaiting();
    let d = op(&o, OperatorAction::RetryNow).unwrap();
    assert_eq!(d.next_run, NextRun::At(t0() + chrono::Duration::minutes(5)));
    assert_eq!(d.order.state, o.state);
    announced(&d, OperatorAction::RetryNow);
    let done = observe(
        &observe(&o, status("fiatReceived")).order,
        status("completed"),
    )
    .order;
    assert_eq!(
        op(&done, OperatorAction::RetryNow).unwrap_err().code,
        "order_closed"
    );
}

#[test]
fn operator_events_are_numbered_like_the_others() {
    let o = flagged();
    let d = op(&o, OperatorAction::Resolve).unwrap();
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].seq, o.event_seq + 1);
    assert_eq!(d.order.event_seq, o.event_seq + 1);
}
