//! `decide_all`: several inputs folded into one decision, as the executor writes the steps
//! one lease ran.

use super::*;

fn prep_inputs() -> Vec<Input> {
    vec![
        obs_input(verified()),
        obs_input(Observation::PaymentMethod(LinkResult::Linked)),
        obs_input(Observation::Quoted(quote())),
        Input::Intent(Intent::CreateOrder),
    ]
}

/// Each input decided on the order the one before left, as separate decisions.
fn one_by_one(order: &Order, inputs: &[Input]) -> Vec<Decision> {
    let mut order = order.clone();
    let mut out = Vec::new();
    for input in inputs {
        let d = decide(&order, input.clone(), &ctx_at(t0())).unwrap();
        order = d.order.clone();
        out.push(d);
    }
    out
}

#[test]
fn a_fold_is_its_inputs_decided_in_turn() {
    let o = new_order();
    let inputs = prep_inputs();
    for n in 1..=inputs.len() {
        let folded = decide_all(&o, &inputs[..n], &ctx_at(t0())).unwrap();
        let steps = one_by_one(&o, &inputs[..n]);
        let last = steps.last().unwrap();
        assert_eq!(folded.order, last.order, "after {n} inputs");
        let history: Vec<_> = steps.iter().flat_map(|d| d.history.clone()).collect();
        assert_eq!(folded.history, history);
        let events: Vec<_> = steps.iter().flat_map(|d| d.events.clone()).collect();
        assert_eq!(folded.events, events);
        assert!(folded.spawned.is_none());
    }
    let folded = decide_all(&o, &inputs, &ctx_at(t0())).unwrap();
    assert_eq!(folded.order.intent, Some(Intent::CreateOrder));
    assert_eq!(
        next_action(&folded.order, t0(), &policy()),
        Action::FindProviderOrder,
        "after a crash, the create is looked up, never repeated"
    );
}

#[test]
fn a_fold_keeps_the_last_schedule_set() {
    let o = new_order();
    // The intent keeps the schedule the quote set (the create is due at once).
    let folded = decide_all(&o, &prep_inputs(), &ctx_at(t0())).unwrap();
    assert_eq!(folded.next_run, NextRun::At(t0()));
    assert_eq!(folded.urgency, Urgency::Moving);
    // A failure at the end backs off: its schedule wins.
    let mut inputs = prep_inputs();
    inputs.truncate(2);
    inputs.push(obs_input(failure(FailureKind::Retryable)));
    let folded = decide_all(&o, &inputs, &ctx_at(t0())).unwrap();
    let last = one_by_one(&o, &inputs).pop().unwrap();
    assert_eq!(folded.next_run, last.next_run);
    assert!(matches!(folded.next_run, NextRun::At(at) if at > t0()));
    // Reaching a terminal state ends the task.
    let inputs = vec![
        obs_input(verified()),
        obs_input(Observation::PaymentMethod(LinkResult::Failed(
            "closed".into(),
        ))),
    ];
    let folded = decide_all(&o, &inputs, &ctx_at(t0())).unwrap();
    assert_eq!(folded.order.state, OrderState::Failed);
    assert_eq!(folded.next_run, NextRun::Done);
}

#[test]
fn the_event_sequence_runs_on_across_the_fold() {
    let inputs = vec![
        obs_input(verified()),
        obs_input(Observation::PaymentMethod(LinkResult::Linked)),
        obs_input(Observation::Quoted(quote())),
        Input::Intent(Intent::CreateOrder),
        obs_input(Observation::Created(created())),
    ];
    let folded = decide_all(&new_order(), &inputs, &ctx_at(t0())).unwrap();
    let seqs: Vec<i64> = folded.events.iter().map(|e| e.seq).collect();
    assert!(!seqs.is_empty());
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(*seqs.last().unwrap(), folded.order.event_seq);
}

#[test]
fn one_refused_input_refuses_the_whole_fold() {
    let inputs = vec![
        obs_input(verified()),
        Input::SubmitTxHash {
            hash: EVM_HASH.into(),
        },
    ];
    let err = decide_all(&new_order(), &inputs, &ctx_at(t0())).unwrap_err();
    assert_eq!(err.code, RejectCode::NotApplicable);
}

#[test]
fn an_empty_fold_changes_nothing() {
    let o = new_order();
    let d = decide_all(&o, &[], &ctx_at(t0())).unwrap();
    assert!(d.is_noop());
    assert_eq!(d.order, o);
}

#[test]
fn a_fold_keeps_the_successor_a_late_utr_creates() {
    let o = observe(&awaiting(), status("expired")).order;
    let later = t0() + chrono::Duration::hours(4);
    let inputs = vec![
        Input::SubmitUtr { utr: utr() },
        Input::SubmitUtr { utr: utr() },
    ];
    let d = decide_all(&o, &inputs, &ctx_at(later)).unwrap();
    let next = d.spawned.as_ref().expect("successor");
    assert_eq!(d.order.successor, Some(next.order.id));
    assert_eq!(next.order.utr, Some(utr()));
}
