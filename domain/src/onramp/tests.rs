mod operator;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::command::{PaymentMethod, User};
use crate::values::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

fn ctx_at(now: DateTime<Utc>) -> Ctx {
    Ctx {
        now,
        jitter: 0.5,
        policy: OnrampPolicy::default(),
    }
}

fn request() -> OnrampRequest {
    OnrampRequest {
        user: User {
            email: Email::parse("asha@example.com").unwrap(),
            name: PersonName::parse("Asha Rao").unwrap(),
            phone: Phone::parse("9876543210").unwrap(),
            pan: Some(Pan::parse("ABCDE1234F").unwrap()),
        },
        fiat_amount: InrAmount::parse("1500").unwrap(),
        token: TokenSymbol::parse("USDT").unwrap(),
        chain_id: ChainId::new(137).unwrap(),
        token_address: None,
        receiver_address: EvmAddress::parse("0x1111111111111111111111111111111111111111").unwrap(),
        payment: PaymentMethod::Upi {
            upi_id: UpiId::parse("asha@okaxis").unwrap(),
        },
    }
}

fn new_order() -> OnrampOrder {
    create(
        Uuid::nil(),
        "acme",
        "o-1",
        Box::new(request()),
        &ctx_at(t0()),
    )
    .order
}

fn utr() -> Utr {
    Utr::parse("412345678901").unwrap()
}

fn observe(o: &OnrampOrder, obs: Observation) -> Decision {
    decide(o, Input::Observed(Box::new(obs)), &ctx_at(t0())).unwrap()
}

fn created() -> ProviderOrder {
    ProviderOrder {
        provider_order_id: "65f0c0ffee0000000000beef".into(),
        upi_deep_link: Some("upi://pay?pa=x@y".into()),
        qr_string: Some("upi://pay?pa=x@y".into()),
        bank: None,
        expires_at: None,
    }
}

fn quote() -> Quote {
    Quote {
        received_tokens: "16.9".parse().unwrap(),
        conversion_rate: "88.5".parse().unwrap(),
        quoted_at: t0(),
    }
}

/// Drive a fresh order to AwaitingPayment through the happy steps.
fn awaiting() -> OnrampOrder {
    let o = new_order();
    let o = observe(&o, Observation::Kyc { verified: true }).order;
    let o = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    let o = observe(&o, Observation::Quoted(quote())).order;
    let o = decide(&o, Input::Intent(Intent::CreateOrder), &ctx_at(t0()))
        .unwrap()
        .order;
    observe(&o, Observation::Created(created())).order
}

fn failure(kind: FailureKind) -> Observation {
    Observation::CallFailed(CallFailure {
        kind,
        retry_after: None,
        message: "nope".into(),
    })
}

fn status(raw: &str) -> Observation {
    Observation::Status {
        raw: raw.into(),
        tx_hash: None,
    }
}

fn policy() -> OnrampPolicy {
    OnrampPolicy::default()
}

#[test]
fn create_emits_preparing_and_runs_now() {
    let d = create(
        Uuid::nil(),
        "acme",
        "o-1",
        Box::new(request()),
        &ctx_at(t0()),
    );
    assert_eq!(d.order.state, OnrampState::Preparing);
    assert_eq!(d.order.sm_version, SM_VERSION);
    assert_eq!(d.next_run, NextRun::At(t0()));
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].seq, 1);
    assert_eq!(d.order.expires_at, t0() + chrono::Duration::hours(3));
    assert_eq!(next_action(&d.order, t0(), &policy()), Action::CheckKyc);
}

#[test]
fn happy_path_step_by_step() {
    let o = new_order();
    let o = observe(&o, Observation::Kyc { verified: true }).order;
    assert_eq!(
        next_action(&o, t0(), &policy()),
        Action::EnsurePaymentMethod
    );
    let o = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::FetchQuote);
    let o = observe(&o, Observation::Quoted(quote())).order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::CreateOrder);
    let o = decide(&o, Input::Intent(Intent::CreateOrder), &ctx_at(t0()))
        .unwrap()
        .order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::FindProviderOrder);
    let d = observe(&o, Observation::Created(created()));
    assert_eq!(d.order.state, OnrampState::AwaitingPayment);
    assert_eq!(d.order.intent, None);
    let pay = d.order.payment.as_ref().unwrap();
    assert_eq!(pay.mode, "INR_UPI");
    assert_eq!(pay.amount.to_string(), "1500.00");
    assert!(matches!(
        d.events[0].kind,
        EventKind::StatusChanged {
            to: OnrampState::AwaitingPayment,
            ..
        }
    ));
    let o = d.order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::PollStatus);
    let o = decide(&o, Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::SubmitUtr(utr()));
    let o = decide(&o, Input::Intent(Intent::SubmitUtr), &ctx_at(t0()))
        .unwrap()
        .order;
    let o = observe(&o, Observation::UtrAccepted).order;
    assert_eq!(o.state, OnrampState::UtrSubmitted);
    let o = observe(&o, status("fiatReceived")).order;
    assert_eq!(o.state, OnrampState::Processing);
    let o = observe(&o, status("orderReceived")).order;
    assert_eq!(o.state, OnrampState::Processing);
    assert_eq!(o.provider_status.as_deref(), Some("orderReceived"));
    let o = observe(&o, status("transferred")).order;
    assert_eq!(o.state, OnrampState::Transferred);
    let d = observe(
        &o,
        Observation::Status {
            raw: "completed".into(),
            tx_hash: Some("0xabc".into()),
        },
    );
    assert_eq!(d.order.state, OnrampState::Completed);
    assert_eq!(d.next_run, NextRun::Done);
    assert_eq!(d.order.tx_hash.as_deref(), Some("0xabc"));
    assert_eq!(next_action(&d.order, t0(), &policy()), Action::Nothing);
}

#[test]
fn kyc_not_verified_fails() {
    let d = observe(&new_order(), Observation::Kyc { verified: false });
    assert_eq!(d.order.state, OnrampState::Failed);
    assert_eq!(d.order.reason.as_deref(), Some("kyc_not_verified"));
}

#[test]
fn link_pending_waits_and_link_failure_fails() {
    let o = observe(&new_order(), Observation::Kyc { verified: true }).order;
    let d = observe(&o, Observation::PaymentMethod(LinkResult::Pending));
    assert_eq!(d.order.state, OnrampState::Preparing);
    assert!(matches!(d.next_run, NextRun::At(t) if t > t0()));
    let d = observe(
        &o,
        Observation::PaymentMethod(LinkResult::Failed("name mismatch".into())),
    );
    assert_eq!(d.order.state, OnrampState::Failed);
    assert_eq!(d.order.reason.as_deref(), Some("payment_method_rejected"));
}

#[test]
fn rejections_in_each_preparing_step_fail_with_a_code() {
    let o = new_order();
    let d = observe(&o, failure(FailureKind::Rejected));
    assert_eq!(d.order.reason.as_deref(), Some("kyc_check_rejected: nope"));
    let o = observe(&o, Observation::Kyc { verified: true }).order;
    let o2 = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    let d = observe(&o2, failure(FailureKind::Rejected));
    assert_eq!(d.order.reason.as_deref(), Some("quote_rejected: nope"));
    let o3 = observe(&o2, Observation::Quoted(quote())).order;
    let o3 = decide(&o3, Input::Intent(Intent::CreateOrder), &ctx_at(t0()))
        .unwrap()
        .order;
    // with an intent recorded the next action is a lookup, so a rejection there is retried
    let d = observe(&o3, failure(FailureKind::Rejected));
    assert_eq!(d.order.state, OnrampState::Preparing);
    let o4 = observe(&o3, Observation::Lookup(None)).order;
    assert_eq!(next_action(&o4, t0(), &policy()), Action::CreateOrder);
    let d = observe(&o4, failure(FailureKind::Rejected));
    assert_eq!(d.order.state, OnrampState::Failed);
    assert_eq!(
        d.order.reason.as_deref(),
        Some("provider_rejected_order: nope")
    );
}

#[test]
fn retryable_failures_back_off_and_flag_after_threshold() {
    let mut o = awaiting();
    let mut last = t0();
    for i in 1..=20u32 {
        let d = observe(
            &o,
            Observation::CallFailed(CallFailure {
                kind: FailureKind::Retryable,
                retry_after: None,
                message: "503".into(),
            }),
        );
        let NextRun::At(at) = d.next_run else {
            panic!()
        };
        assert!(at > t0());
        if i > 1 {
            assert!(at >= last);
        }
        last = at;
        assert_eq!(d.order.failures, i);
        assert_eq!(d.order.state, OnrampState::AwaitingPayment);
        if i == 20 {
            assert!(
                d.events
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::AttentionNeeded { .. }))
            );
        }
        o = d.order;
    }
    // a success resets the counter
    assert_eq!(observe(&o, status("fiatPending")).order.failures, 0);
}

#[test]
fn rate_limit_honours_retry_after() {
    let o = awaiting();
    let d = observe(
        &o,
        Observation::CallFailed(CallFailure {
            kind: FailureKind::RateLimited,
            retry_after: Some(Duration::from_secs(42)),
            message: "429".into(),
        }),
    );
    assert_eq!(
        d.next_run,
        NextRun::At(t0() + chrono::Duration::seconds(42))
    );
}

#[test]
fn utr_before_provider_order_is_kept_and_submitted_after_create() {
    let o = new_order();
    let d = decide(&o, Input::SubmitUtr { utr: utr() }, &ctx_at(t0())).unwrap();
    assert_eq!(d.order.state, OnrampState::Preparing);
    assert_eq!(d.next_run, NextRun::Keep);
    let o = observe(&d.order, Observation::Kyc { verified: true }).order;
    let o = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    let o = observe(&o, Observation::Quoted(quote())).order;
    let d = observe(&o, Observation::Created(created()));
    assert_eq!(d.next_run, NextRun::At(t0()));
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::SubmitUtr(utr())
    );
}

#[test]
fn utr_rules() {
    let o = awaiting();
    let o = decide(&o, Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    // same UTR again: no-op
    assert!(
        decide(&o, Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
            .unwrap()
            .is_noop()
    );
    // a different one: refused
    let other = Utr::parse("412345678902").unwrap();
    assert_eq!(
        decide(&o, Input::SubmitUtr { utr: other.clone() }, &ctx_at(t0()))
            .unwrap_err()
            .code,
        "utr_already_set"
    );
    // provider refuses the UTR: cleared, event, a new one can come
    let d = observe(&o, failure(FailureKind::Rejected));
    assert_eq!(d.order.utr, None);
    assert!(matches!(d.events[0].kind, EventKind::UtrRejected { .. }));
    assert!(decide(&d.order, Input::SubmitUtr { utr: other }, &ctx_at(t0())).is_ok());
    // after completion a new UTR is refused
    let done = observe(
        &observe(&o, Observation::UtrAccepted).order,
        status("completed"),
    )
    .order;
    assert_eq!(
        decide(
            &done,
            Input::SubmitUtr {
                utr: Utr::parse("512345678901").unwrap()
            },
            &ctx_at(t0())
        )
        .unwrap_err()
        .code,
        "order_closed"
    );
    // paid without a UTR from us: refused, the provider already has the money
    let paid = observe(&awaiting(), status("orderReceived")).order;
    assert_eq!(
        decide(&paid, Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
            .unwrap_err()
            .code,
        "order_already_paid"
    );
}

#[test]
fn interrupted_create_is_looked_up_not_repeated() {
    let o = new_order();
    let o = observe(&o, Observation::Kyc { verified: true }).order;
    let o = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    let o = observe(&o, Observation::Quoted(quote())).order;
    let o = decide(&o, Input::Intent(Intent::CreateOrder), &ctx_at(t0()))
        .unwrap()
        .order;
    // a timeout leaves the intent: lookup next
    let o = observe(&o, failure(FailureKind::Unknown)).order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::FindProviderOrder);
    let d = observe(
        &o,
        Observation::Lookup(Some(FoundOrder {
            order: created(),
            status: "fiatPending".into(),
            utr: None,
        })),
    );
    assert_eq!(d.order.state, OnrampState::AwaitingPayment);
    assert_eq!(
        d.order.provider_order_id.as_deref(),
        Some("65f0c0ffee0000000000beef")
    );
}

#[test]
fn interrupted_utr_submission_is_looked_up() {
    let o = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    let o = decide(&o, Input::Intent(Intent::SubmitUtr), &ctx_at(t0()))
        .unwrap()
        .order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::FindProviderOrder);
    let found = |u: Option<&str>| {
        Observation::Lookup(Some(FoundOrder {
            order: created(),
            status: "fiatPending".into(),
            utr: u.map(str::to_string),
        }))
    };
    let d = observe(&o, found(Some("412345678901")));
    assert_eq!(d.order.state, OnrampState::UtrSubmitted);
    let d = observe(&o, found(None));
    assert_eq!(d.order.state, OnrampState::AwaitingPayment);
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::SubmitUtr(utr())
    );
}

#[test]
fn cancel_rules() {
    let d = decide(&new_order(), Input::Cancel { reason: None }, &ctx_at(t0())).unwrap();
    assert_eq!(d.order.state, OnrampState::Cancelled);
    assert_eq!(d.next_run, NextRun::Done);
    // cancelling twice is a no-op
    assert!(
        decide(&d.order, Input::Cancel { reason: None }, &ctx_at(t0()))
            .unwrap()
            .is_noop()
    );
    let d = decide(
        &awaiting(),
        Input::Cancel {
            reason: Some("user".into()),
        },
        &ctx_at(t0()),
    )
    .unwrap();
    assert_eq!(d.order.state, OnrampState::Cancelled);
    assert_eq!(d.order.reason.as_deref(), Some("user"));
    let with_utr = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    assert_eq!(
        decide(&with_utr, Input::Cancel { reason: None }, &ctx_at(t0()))
            .unwrap_err()
            .code,
        "payment_claimed"
    );
    let paid = observe(&awaiting(), status("fiatReceived")).order;
    assert_eq!(
        decide(&paid, Input::Cancel { reason: None }, &ctx_at(t0()))
            .unwrap_err()
            .code,
        "payment_in_progress"
    );
    let done = observe(&paid, status("completed")).order;
    assert_eq!(
        decide(&done, Input::Cancel { reason: None }, &ctx_at(t0()))
            .unwrap_err()
            .code,
        "order_closed"
    );
}

#[test]
fn a_create_that_raced_a_cancel_is_recorded_but_does_not_reopen() {
    let o = decide(&new_order(), Input::Cancel { reason: None }, &ctx_at(t0()))
        .unwrap()
        .order;
    let d = observe(&o, Observation::Created(created()));
    assert_eq!(d.order.state, OnrampState::Cancelled);
    assert!(d.order.provider_order_id.is_some());
    assert!(d.events.is_empty());
}

#[test]
fn expiry_by_provider_and_by_deadline() {
    let d = observe(&awaiting(), status("expired"));
    assert_eq!(d.order.state, OnrampState::Expired);
    assert_eq!(d.order.reason.as_deref(), Some("provider_expired"));
    assert_eq!(d.order.attention, None);

    let o = awaiting();
    let late = o.expires_at + chrono::Duration::minutes(6);
    assert_eq!(next_action(&o, o.expires_at, &policy()), Action::PollStatus);
    assert_eq!(next_action(&o, late, &policy()), Action::Expire);
    let d = decide(&o, Input::DeadlinePassed, &ctx_at(late)).unwrap();
    assert_eq!(d.order.state, OnrampState::Expired);
    assert_eq!(d.order.reason.as_deref(), Some("payment_window_elapsed"));
    // with a UTR in hand we never expire locally
    let o = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    assert_ne!(next_action(&o, late, &policy()), Action::Expire);
    assert_eq!(
        decide(&o, Input::DeadlinePassed, &ctx_at(late))
            .unwrap()
            .order
            .state,
        OnrampState::AwaitingPayment
    );
}

#[test]
fn provider_expiry_after_utr_flags_attention() {
    let o = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    let o = observe(&o, Observation::UtrAccepted).order;
    let d = observe(&o, status("expired"));
    assert_eq!(d.order.state, OnrampState::Expired);
    assert!(d.order.attention.is_some());
}

#[test]
fn provider_expiry_date_is_used() {
    let o = new_order();
    let o = observe(&o, Observation::Kyc { verified: true }).order;
    let o = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    let o = observe(&o, Observation::Quoted(quote())).order;
    let mut po = created();
    let at = t0() + chrono::Duration::minutes(170);
    po.expires_at = Some(at);
    let d = observe(&o, Observation::Created(po));
    assert_eq!(d.order.expires_at, at);
    assert_eq!(d.order.payment.unwrap().expires_at, at);
}

#[test]
fn unknown_and_miscased_statuses_flag_without_moving() {
    let o = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    let o = observe(&o, Observation::UtrAccepted).order;
    for raw in ["onHold", "Completed", "FIATRECEIVED", ""] {
        let d = observe(&o, status(raw));
        assert_eq!(d.order.state, OnrampState::UtrSubmitted, "{raw}");
        assert!(d.order.attention.is_some());
        assert!(matches!(d.next_run, NextRun::At(_)));
    }
    // flagged once per reason, not on every poll
    let d1 = observe(&o, status("onHold"));
    let d2 = observe(&d1.order, status("onHold"));
    assert!(d2.events.is_empty());
}

#[test]
fn middle_statuses_in_any_order_never_go_back() {
    let o = observe(&awaiting(), status("transferred")).order;
    assert_eq!(o.state, OnrampState::Transferred);
    for raw in ["fiatPending", "orderReceived", "InProgress", "fiatReceived"] {
        let d = observe(&o, status(raw));
        assert_eq!(d.order.state, OnrampState::Transferred);
        assert!(d.events.is_empty());
    }
}

#[test]
fn terminal_states_absorb_everything() {
    let done = observe(&awaiting(), status("completed")).order;
    for raw in ["expired", "cancelled", "fiatPending", "weird"] {
        let d = observe(&done, status(raw));
        assert_eq!(d.order.state, OnrampState::Completed);
        assert!(d.events.is_empty());
    }
    assert!(
        observe(&done, failure(FailureKind::Retryable))
            .events
            .is_empty()
    );
}

#[test]
fn stale_observations_are_ignored() {
    let o = awaiting();
    let d = observe(&o, Observation::Kyc { verified: false });
    assert_eq!(d.order.state, OnrampState::AwaitingPayment);
    assert_eq!(d.history[0].kind, "stale_observation");
    let d = observe(&new_order(), status("completed"));
    assert_eq!(d.order.state, OnrampState::Preparing);
}

#[test]
fn state_names_round_trip() {
    for s in OnrampState::ALL {
        assert_eq!(OnrampState::parse(s.as_str()), Some(s));
    }
}

#[test]
fn order_round_trips_through_json() {
    let o = awaiting();
    let back: OnrampOrder = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(back, o);
}

// ---------------------------------------------------------------- properties

fn obs_input(o: Observation) -> Input {
    Input::Observed(Box::new(o))
}

fn any_input() -> impl Strategy<Value = Input> {
    let status = prop::sample::select(vec![
        "fiatPending",
        "orderReceived",
        "InProgress",
        "fiatReceived",
        "transferred",
        "completed",
        "expired",
        "cancelled",
        "Completed",
        "onHold",
        "",
    ]);
    let kind = prop::sample::select(vec![
        FailureKind::Retryable,
        FailureKind::RateLimited,
        FailureKind::Rejected,
        FailureKind::Unknown,
    ]);
    let utrs = prop::sample::select(vec![
        "412345678901",
        "412345678902",
        "HDFCN52026112100001234",
    ]);
    prop_oneof![
        utrs.prop_map(|u| Input::SubmitUtr {
            utr: Utr::parse(u).unwrap_or_else(|_| Utr::parse("412345678901").unwrap())
        }),
        Just(Input::Cancel { reason: None }),
        Just(Input::Intent(Intent::CreateOrder)),
        Just(Input::Intent(Intent::SubmitUtr)),
        Just(Input::DeadlinePassed),
        prop::sample::select(vec![
            OperatorAction::Cancel,
            OperatorAction::Resolve,
            OperatorAction::RetryNow
        ])
        .prop_map(|action| Input::Operator {
            by: "ops".into(),
            reason: "checked".into(),
            action
        }),
        any::<bool>().prop_map(|v| obs_input(Observation::Kyc { verified: v })),
        prop_oneof![
            Just(LinkResult::Linked),
            Just(LinkResult::Pending),
            Just(LinkResult::Failed("x".into()))
        ]
        .prop_map(|l| obs_input(Observation::PaymentMethod(l))),
        Just(obs_input(Observation::Quoted(quote()))),
        Just(obs_input(Observation::Created(created()))),
        proptest::option::of(proptest::option::of(Just("412345678901"))).prop_map(|f| {
            obs_input(Observation::Lookup(f.map(|u| FoundOrder {
                order: created(),
                status: "fiatPending".into(),
                utr: u.map(str::to_string),
            })))
        }),
        Just(obs_input(Observation::UtrAccepted)),
        status.prop_map(|s| obs_input(Observation::Status {
            raw: s.to_string(),
            tx_hash: None
        })),
        (kind, proptest::option::of(0u64..1000)).prop_map(|(k, ra)| obs_input(
            Observation::CallFailed(CallFailure {
                kind: k,
                retry_after: ra.map(Duration::from_secs),
                message: "m".into()
            })
        )),
    ]
}

/// Properties every reachable order satisfies.
fn check_invariants(o: &OnrampOrder) -> Result<(), TestCaseError> {
    use OnrampState::*;
    if matches!(
        o.state,
        AwaitingPayment | UtrSubmitted | Processing | Transferred | Completed
    ) {
        prop_assert!(
            o.provider_order_id.is_some(),
            "{:?} without provider order",
            o.state
        );
    }
    if o.state == UtrSubmitted {
        prop_assert!(o.utr.is_some());
    }
    if o.state.is_terminal() {
        prop_assert!(o.intent.is_none(), "terminal order with an open intent");
    }
    if o.state == Failed || o.state == Expired || o.state == Cancelled {
        prop_assert!(o.reason.is_some());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_input_sequence_breaks_the_machine(inputs in prop::collection::vec(any_input(), 1..60), step_secs in 0i64..2000) {
        let mut order = new_order();
        let mut now = t0();
        let mut provider_id: Option<String> = None;
        let mut submitted_utr: Option<Utr> = None;
        for input in inputs {
            now += chrono::Duration::seconds(step_secs);
            let before = order.clone();
            let input_kind = match &input {
                Input::Observed(_) => "observed",
                Input::DeadlinePassed => "deadline",
                _ => "other",
            };
            let Ok(d) = decide(&order, input, &ctx_at(now)) else {
                continue; // refused commands change nothing, by construction
            };
            let after = &d.order;
            // monotonic
            prop_assert!(after.state.rank() >= before.state.rank(), "{:?} -> {:?}", before.state, after.state);
            // terminal absorbs
            if before.state.is_terminal() {
                prop_assert_eq!(after.state, before.state);
                // only an operator's action (resolving a flag) is announced after the end
                let only_operator = d.events.iter().all(|e| matches!(e.kind, EventKind::OperatorAction { .. }));
                prop_assert!(only_operator, "events after the end");
            }
            // every state change is announced, in sequence
            if after.state != before.state {
                let announced = d.events.iter().any(|e| matches!(e.kind, EventKind::StatusChanged { to, .. } if to == after.state));
                prop_assert!(announced, "state change not announced");
            }
            let mut seq = before.event_seq;
            for e in &d.events {
                prop_assert_eq!(e.seq, seq + 1);
                seq = e.seq;
            }
            prop_assert_eq!(after.event_seq, seq);
            // a provider order id, once known, never changes
            if let Some(p) = &provider_id {
                prop_assert_eq!(after.provider_order_id.as_ref(), Some(p));
            }
            provider_id = after.provider_order_id.clone();
            // a UTR accepted by the provider never changes
            if let Some(u) = &submitted_utr {
                prop_assert_eq!(after.utr.as_ref(), Some(u));
            }
            if after.state.rank() >= OnrampState::UtrSubmitted.rank() && after.utr.is_some() && submitted_utr.is_none() && after.state == OnrampState::UtrSubmitted {
                submitted_utr = after.utr.clone();
            }
            // after an observation or a timer a live order is always scheduled
            if matches!(input_kind, "observed" | "deadline") && !after.state.is_terminal() {
                prop_assert!(matches!(d.next_run, NextRun::At(_)), "live order left unscheduled");
            }
            // terminal orders are unscheduled, live ones are scheduled in the future or kept
            match d.next_run {
                NextRun::Done => prop_assert!(after.state.is_terminal()),
                NextRun::At(t) => { prop_assert!(!after.state.is_terminal()); prop_assert!(t >= now); }
                NextRun::Keep => {}
            }
            if after.state.is_terminal() {
                prop_assert_eq!(next_action(after, now, &policy()), Action::Nothing);
            }
            check_invariants(after)?;
            order = d.order;
        }
    }

    #[test]
    fn status_sequences_only_move_forward(seq in prop::collection::vec(prop::sample::select(vec![
        "fiatPending", "orderReceived", "InProgress", "fiatReceived", "transferred", "completed", "expired", "cancelled"
    ]), 1..30)) {
        let mut o = awaiting();
        let mut max_rank = o.state.rank();
        for raw in seq {
            o = observe(&o, status(raw)).order;
            prop_assert!(o.state.rank() >= max_rank);
            max_rank = o.state.rank();
        }
    }
}

#[test]
fn only_creating_calls_need_an_intent() {
    assert_eq!(Action::CreateOrder.intent(), Some(Intent::CreateOrder));
    assert_eq!(Action::SubmitUtr(utr()).intent(), Some(Intent::SubmitUtr));
    for a in [
        Action::CheckKyc,
        Action::EnsurePaymentMethod,
        Action::FetchQuote,
        Action::FindProviderOrder,
        Action::PollStatus,
        Action::Expire,
        Action::Nothing,
    ] {
        assert_eq!(a.intent(), None, "{}", a.name());
    }
}
