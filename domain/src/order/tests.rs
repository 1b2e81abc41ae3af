mod callbacks;
mod contested;
mod fold;
mod operator;
mod partner;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::chain_values::{TokenAmount, TxHash, WalletAddress};
use crate::command::{OfframpRequest, PaymentMethod, PayoutAccount, User};
use crate::provider::ProviderRef;
use crate::values::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

fn ctx_at(now: DateTime<Utc>) -> Ctx {
    Ctx {
        now,
        jitter: 0.5,
        policy: OrderPolicy::default(),
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
        max_price_change_pct: None,
    }
}

const EVM_HASH: &str = "0x88df016429689c079f3b2f6ad39fa052532c56795b733da78a91ebe6a713944b";
const OTHER_EVM_HASH: &str = "0x0000000000000000000000000000000000000000000000000000000000000001";
const DEPOSIT: &str = "0x2222222222222222222222222222222222222222";

fn offramp_request() -> OfframpRequest {
    let wallet = |s: &str| WalletAddress::parse(ChainFamily::Evm, s).unwrap();
    OfframpRequest {
        user: request().user,
        token: TokenSymbol::parse("USDT").unwrap(),
        chain_id: ChainId::new(137).unwrap(),
        token_amount: TokenAmount::parse("25.5").unwrap(),
        token_address: None,
        sender_address: wallet("0x3333333333333333333333333333333333333333"),
        refund_address: wallet("0x4444444444444444444444444444444444444444"),
        bank: PayoutAccount {
            account_number: BankAccountNumber::parse("123456789012").unwrap(),
            account_name: PersonName::parse("Asha Rao").unwrap(),
            ifsc: Ifsc::parse("HDFC0001234").unwrap(),
        },
        max_price_change_pct: None,
    }
}

/// Drive a fresh order of `direction` to AwaitingPayment through the happy steps.
fn awaiting_of(direction: Direction) -> Order {
    let o = creating(new_order_of(direction));
    let po = ProviderOrder {
        deposit_address: Some(DEPOSIT.into()),
        ..created()
    };
    observe(&o, Observation::Created(po)).order
}

fn verified() -> Observation {
    Observation::Kyc {
        verified: true,
        missing: vec![],
    }
}

/// Drive a fresh order through KYC, link and quote: next comes the create.
fn quoted(o: Order) -> Order {
    let o = observe(&o, verified()).order;
    let o = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    observe(&o, Observation::Quoted(quote())).order
}

/// … and record the create intent, as the executor does before calling.
fn creating(o: Order) -> Order {
    decide(
        &quoted(o),
        Input::Intent(Intent::CreateOrder),
        &ctx_at(t0()),
    )
    .unwrap()
    .order
}

/// An off-ramp order awaiting payment that has received `EVM_HASH`.
fn offramp_with_hash() -> Order {
    let o = awaiting_of(Direction::Offramp);
    let hash = EVM_HASH.into();
    decide(&o, Input::SubmitTxHash { hash }, &ctx_at(t0()))
        .unwrap()
        .order
}

/// … and is about to submit it (the intent is on record).
fn submitting_hash() -> Order {
    let o = offramp_with_hash();
    decide(&o, Input::Intent(Intent::SubmitTxHash), &ctx_at(t0()))
        .unwrap()
        .order
}

fn new_order() -> Order {
    create(
        Uuid::nil(),
        "acme",
        "o-1",
        ProviderRef::default(),
        OrderRequest::Onramp(request()),
        &ctx_at(t0()),
    )
    .order
}

fn utr() -> Utr {
    Utr::parse("412345678901").unwrap()
}

fn observe(o: &Order, obs: Observation) -> Decision {
    decide(o, Input::Observed(Box::new(obs)), &ctx_at(t0())).unwrap()
}

fn created() -> ProviderOrder {
    ProviderOrder {
        provider_order_id: "65f0c0ffee0000000000beef".into(),
        upi_deep_link: Some("upi://pay?pa=x@y".into()),
        qr_string: Some("upi://pay?pa=x@y".into()),
        bank: None,
        expires_at: None,
        deposit_address: None,
    }
}

fn quote() -> Quote {
    Quote {
        token_amount: "16.9".parse().unwrap(),
        fiat_amount: "1500".parse().unwrap(),
        conversion_rate: "88.5".parse().unwrap(),
        quoted_at: t0(),
    }
}

/// A fresh on-ramp order driven to AwaitingPayment through the happy steps.
fn awaiting() -> Order {
    awaiting_of(Direction::Onramp)
}

fn rejected() -> CallFailure {
    CallFailure {
        kind: FailureKind::Rejected,
        retry_after: None,
        message: "refused".into(),
        action: None,
    }
}

fn failure(kind: FailureKind) -> Observation {
    Observation::CallFailed(CallFailure {
        kind,
        retry_after: None,
        message: "nope".into(),
        action: None,
    })
}

fn status(raw: &str) -> Observation {
    Observation::Status(StatusReport::new(raw))
}

fn policy() -> OrderPolicy {
    OrderPolicy::default()
}

#[test]
fn create_emits_preparing_and_runs_now() {
    let d = create(
        Uuid::nil(),
        "acme",
        "o-1",
        ProviderRef::default(),
        OrderRequest::Onramp(request()),
        &ctx_at(t0()),
    );
    assert_eq!(d.order.state, OrderState::Preparing);
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
    let o = observe(&o, verified()).order;
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
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
    assert_eq!(d.order.intent, None);
    let pay = d.order.payment.as_ref().unwrap();
    assert_eq!(pay.mode, "INR_UPI");
    assert_eq!(pay.amount.to_string(), "1500.00");
    assert!(matches!(
        d.events[0].kind,
        EventKind::StatusChanged {
            to: OrderState::AwaitingPayment,
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
    assert_eq!(o.state, OrderState::UtrSubmitted);
    let o = observe(&o, status("fiatReceived")).order;
    assert_eq!(o.state, OrderState::Processing);
    let o = observe(&o, status("orderReceived")).order;
    assert_eq!(o.state, OrderState::Processing);
    assert_eq!(o.provider_status.as_deref(), Some("orderReceived"));
    let o = observe(&o, status("transferred")).order;
    assert_eq!(o.state, OrderState::Transferred);
    let d = observe(
        &o,
        Observation::Status(StatusReport {
            tx_hash: Some("0xabc".into()),
            ..StatusReport::new("completed")
        }),
    );
    assert_eq!(d.order.state, OrderState::Completed);
    assert_eq!(d.next_run, NextRun::Done);
    assert_eq!(d.order.tx_hash.as_deref(), Some("0xabc"));
    assert_eq!(next_action(&d.order, t0(), &policy()), Action::Nothing);
}

#[test]
fn kyc_not_verified_waits_announces_what_is_missing_and_continues_once_verified() {
    let missing = vec!["ADDRESS_MAIN".to_string(), "DATE_OF_BIRTH".to_string()];
    let d = observe(
        &new_order(),
        Observation::Kyc {
            verified: false,
            missing: missing.clone(),
        },
    );
    assert_eq!(d.order.state, OrderState::KycRequired);
    assert_eq!(d.order.kyc.as_ref().unwrap().missing, missing);
    assert!(d.events.iter().any(|e| e.kind
        == EventKind::StatusChanged {
            from: Some(OrderState::Preparing),
            to: OrderState::KycRequired
        }));
    // re-checked on a growing schedule, not at once and not at the poll cadence
    let first = match d.next_run {
        NextRun::At(t) => t - t0(),
        other => panic!("{other:?}"),
    };
    assert!(first >= chrono::Duration::seconds(15) && first <= chrono::Duration::seconds(30));
    assert_eq!(next_action(&d.order, t0(), &policy()), Action::CheckKyc);
    let later = t0() + chrono::Duration::hours(5);
    let d2 = decide(
        &d.order,
        obs_input(Observation::Kyc {
            verified: false,
            missing: vec![],
        }),
        &ctx_at(later),
    )
    .unwrap();
    assert_eq!(d2.order.state, OrderState::KycRequired);
    assert_eq!(d2.order.kyc.as_ref().unwrap().checks, 2);
    assert!(
        d2.events.is_empty(),
        "still waiting: nothing new to announce"
    );
    // verified: back to preparing, with a fresh payment window, and on to linking
    let d3 = decide(&d2.order, obs_input(verified()), &ctx_at(later)).unwrap();
    assert_eq!(d3.order.state, OrderState::Preparing);
    assert_eq!(d3.order.step, PrepStep::LinkPaymentMethod);
    assert_eq!(d3.order.expires_at, later + chrono::Duration::hours(3));
    assert_eq!(d3.next_run, NextRun::At(later));
    assert_eq!(
        next_action(&d3.order, later, &policy()),
        Action::EnsurePaymentMethod
    );
}

#[test]
fn kyc_window_ends_in_kyc_timeout() {
    let o = observe(
        &new_order(),
        Observation::Kyc {
            verified: false,
            missing: vec![],
        },
    )
    .order;
    let end = t0() + chrono::Duration::hours(72);
    assert_eq!(
        next_action(&o, end - chrono::Duration::seconds(1), &policy()),
        Action::CheckKyc
    );
    assert_eq!(next_action(&o, end, &policy()), Action::Expire);
    let early = decide(
        &o,
        Input::DeadlinePassed,
        &ctx_at(end - chrono::Duration::seconds(1)),
    )
    .unwrap();
    assert_eq!(early.order.state, OrderState::KycRequired);
    let d = decide(&o, Input::DeadlinePassed, &ctx_at(end)).unwrap();
    assert_eq!(d.order.state, OrderState::Failed);
    assert_eq!(d.order.reason.as_deref(), Some("kyc_timeout"));
    assert_eq!(d.next_run, NextRun::Done);
    // a cancel while waiting for KYC is allowed
    let c = decide(&o, Input::Cancel { reason: None }, &ctx_at(t0())).unwrap();
    assert_eq!(c.order.state, OrderState::Cancelled);
}

#[test]
fn link_pending_is_polled_by_reference_and_link_failures_fail() {
    let o = observe(&new_order(), verified()).order;
    let d = observe(
        &o,
        Observation::PaymentMethod(LinkResult::Pending { reference: None }),
    );
    assert_eq!(d.order.state, OrderState::Preparing);
    assert!(matches!(d.next_run, NextRun::At(t) if t > t0()));
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::EnsurePaymentMethod
    );
    let d = observe(
        &o,
        Observation::PaymentMethod(LinkResult::Pending {
            reference: Some("ref-9".into()),
        }),
    );
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::PollLink("ref-9".into())
    );
    let linked = observe(&d.order, Observation::PaymentMethod(LinkResult::Linked)).order;
    assert_eq!(linked.link_reference, None);
    assert_eq!(next_action(&linked, t0(), &policy()), Action::FetchQuote);

    let d = observe(
        &o,
        Observation::PaymentMethod(LinkResult::Failed("account closed".into())),
    );
    assert_eq!(d.order.state, OrderState::Failed);
    assert_eq!(
        d.order.reason.as_deref(),
        Some("payment_method_rejected: account closed")
    );
    let d = observe(&o, Observation::PaymentMethod(LinkResult::NameMismatch));
    assert_eq!(d.order.state, OrderState::Failed);
    assert_eq!(d.order.reason.as_deref(), Some("name_mismatch"));
}

fn at_create_step(max_pct: Option<&str>) -> Order {
    let mut r = request();
    r.max_price_change_pct = max_pct.map(|p| p.parse().unwrap());
    let o = create(
        Uuid::nil(),
        "acme",
        "o-1",
        ProviderRef::default(),
        OrderRequest::Onramp(r),
        &ctx_at(t0()),
    )
    .order;
    quoted(o)
}

#[test]
fn a_stale_quote_is_fetched_again_before_create() {
    let o = at_create_step(None);
    assert_eq!(o.reference_rate, Some("88.5".parse().unwrap()));
    assert_eq!(
        next_action(&o, t0() + chrono::Duration::seconds(30), &policy()),
        Action::CreateOrder
    );
    let stale = t0() + chrono::Duration::seconds(31);
    assert_eq!(next_action(&o, stale, &policy()), Action::FetchQuote);
    let fresh = Quote {
        conversion_rate: "120".parse().unwrap(),
        quoted_at: stale,
        ..quote()
    };
    let d = decide(&o, obs_input(Observation::Quoted(fresh)), &ctx_at(stale)).unwrap();
    // no limit in the request: any move is accepted, the reference stays the first quote
    assert_eq!(d.order.state, OrderState::Preparing);
    assert_eq!(d.order.reference_rate, Some("88.5".parse().unwrap()));
    assert_eq!(next_action(&d.order, stale, &policy()), Action::CreateOrder);
    // an interrupted create is looked up, never re-quoted first
    let o = decide(&o, Input::Intent(Intent::CreateOrder), &ctx_at(t0()))
        .unwrap()
        .order;
    assert_eq!(next_action(&o, stale, &policy()), Action::FindProviderOrder);
}

#[test]
fn a_price_move_beyond_the_limit_fails_the_order() {
    let o = at_create_step(Some("1.5"));
    let stale = t0() + chrono::Duration::seconds(40);
    let within = Quote {
        conversion_rate: "89.8".parse().unwrap(),
        quoted_at: stale,
        ..quote()
    };
    let d = decide(&o, obs_input(Observation::Quoted(within)), &ctx_at(stale)).unwrap();
    assert_eq!(d.order.state, OrderState::Preparing, "1.47% is within 1.5%");
    let beyond = Quote {
        conversion_rate: "86.9".parse().unwrap(),
        quoted_at: stale,
        ..quote()
    };
    let d = decide(&o, obs_input(Observation::Quoted(beyond)), &ctx_at(stale)).unwrap();
    assert_eq!(d.order.state, OrderState::Failed);
    assert!(
        d.order
            .reason
            .as_deref()
            .unwrap()
            .starts_with("price_moved: rate moved 1.8079% from 88.5")
    );
}

#[test]
fn a_late_utr_on_an_expired_order_moves_to_a_successor() {
    let o = observe(&awaiting(), status("expired")).order;
    assert_eq!(o.state, OrderState::Expired);
    let later = t0() + chrono::Duration::hours(4);
    let d = decide(&o, Input::SubmitUtr { utr: utr() }, &ctx_at(later)).unwrap();
    assert_eq!(d.order.state, OrderState::Expired);
    assert_eq!(
        d.order.utr, None,
        "the UTR's unique index holds it once: on the successor"
    );
    let next = d.spawned.as_ref().expect("successor");
    assert_eq!(d.order.successor, Some(next.order.id));
    assert_eq!(next.order.id, o.successor_id());
    assert_eq!(next.order.predecessor, Some(o.id));
    assert_eq!(next.order.utr, Some(utr()));
    assert_eq!(next.order.client_order_id, "o-1:successor");
    assert_eq!(
        next.order.request, o.request,
        "same amount, same user, same payment method"
    );
    assert_eq!(next.order.state, OrderState::Preparing);
    assert_eq!(next.next_run, NextRun::At(later));
    assert!(
        matches!(d.events.as_slice(), [Emitted { kind: EventKind::SuccessorCreated { successor }, .. }] if *successor == next.order.id)
    );
    // the same late UTR again changes nothing; another one is refused
    let again = decide(&d.order, Input::SubmitUtr { utr: utr() }, &ctx_at(later)).unwrap();
    assert!(again.is_noop());
    let other = Utr::parse("412345678902").unwrap();
    let err = decide(&d.order, Input::SubmitUtr { utr: other }, &ctx_at(later)).unwrap_err();
    assert_eq!(err.code, RejectCode::UtrAlreadySet);
    // only an expiry qualifies
    let cancelled = decide(&awaiting(), Input::Cancel { reason: None }, &ctx_at(t0()))
        .unwrap()
        .order;
    let err = decide(&cancelled, Input::SubmitUtr { utr: utr() }, &ctx_at(later)).unwrap_err();
    assert_eq!(err.code, RejectCode::OrderClosed);
}

#[test]
fn commands_of_the_other_direction_are_not_applicable() {
    let on = awaiting();
    let err = decide(
        &on,
        Input::SubmitTxHash {
            hash: EVM_HASH.into(),
        },
        &ctx_at(t0()),
    )
    .unwrap_err();
    assert_eq!(err.code, RejectCode::NotApplicable);
    let off = awaiting_of(Direction::Offramp);
    let err = decide(&off, Input::SubmitUtr { utr: utr() }, &ctx_at(t0())).unwrap_err();
    assert_eq!(err.code, RejectCode::NotApplicable);
}

#[test]
fn rejections_in_each_preparing_step_fail_with_a_code() {
    let o = new_order();
    let d = observe(&o, failure(FailureKind::Rejected));
    assert_eq!(d.order.reason.as_deref(), Some("kyc_check_rejected: nope"));
    let o = observe(&o, verified()).order;
    let o2 = observe(&o, Observation::PaymentMethod(LinkResult::Linked)).order;
    let d = observe(&o2, failure(FailureKind::Rejected));
    assert_eq!(d.order.reason.as_deref(), Some("quote_rejected: nope"));
    let o3 = observe(&o2, Observation::Quoted(quote())).order;
    let o3 = decide(&o3, Input::Intent(Intent::CreateOrder), &ctx_at(t0()))
        .unwrap()
        .order;
    // with an intent recorded the next action is a lookup, so a rejection there is retried
    let d = observe(&o3, failure(FailureKind::Rejected));
    assert_eq!(d.order.state, OrderState::Preparing);
    let o4 = observe(&o3, Observation::Lookup(Lookup::NotFound)).order;
    assert_eq!(next_action(&o4, t0(), &policy()), Action::CreateOrder);
    let d = observe(&o4, failure(FailureKind::Rejected));
    assert_eq!(d.order.state, OrderState::Failed);
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
                action: None,
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
        assert_eq!(d.order.state, OrderState::AwaitingPayment);
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
            action: None,
        }),
    );
    assert_eq!(
        d.next_run,
        NextRun::At(t0() + chrono::Duration::seconds(42))
    );
}

#[test]
fn a_call_deferred_by_the_budget_only_moves_the_next_run() {
    let deferred = |wait| {
        Observation::CallFailed(CallFailure {
            kind: FailureKind::Deferred,
            retry_after: Some(wait),
            message: "over budget".into(),
            action: None,
        })
    };
    // A parked order's poll: no record, no failure counted, the order itself unchanged.
    let o = awaiting();
    let d = observe(&o, deferred(Duration::from_millis(700)));
    assert_eq!(
        d.only_reschedules(&o),
        Some(t0() + chrono::Duration::milliseconds(700))
    );
    assert_eq!(d.order.failures, 0);
    // A create whose intent is on record keeps it: the next run finds out, as always,
    // whether the provider has the order (here it cannot, but the rule is the same).
    let c = creating(new_order());
    let d = observe(&c, deferred(Duration::from_secs(2)));
    assert_eq!(d.order.intent, Some(Intent::CreateOrder));
    assert!(d.history.is_empty() && d.events.is_empty());
    assert_eq!(d.next_run, NextRun::At(t0() + chrono::Duration::seconds(2)));
}

#[test]
fn utr_before_provider_order_is_kept_and_submitted_after_create() {
    let o = new_order();
    let d = decide(&o, Input::SubmitUtr { utr: utr() }, &ctx_at(t0())).unwrap();
    assert_eq!(d.order.state, OrderState::Preparing);
    assert_eq!(d.next_run, NextRun::Keep);
    let o = quoted(d.order);
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
    assert!(matches!(
        d.events[0].kind,
        EventKind::PaymentRefRejected { .. }
    ));
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
    let o = observe(&o, verified()).order;
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
        Observation::Lookup(Lookup::Found(Box::new(FoundOrder {
            order: created(),
            status: "fiatPending".into(),
            payment_ref: None,
        }))),
    );
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
    assert_eq!(
        d.order.provider_order_id.as_deref(),
        Some("65f0c0ffee0000000000beef")
    );
}

/// Attention events of a decision.
fn attention(d: &Decision) -> Vec<String> {
    d.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AttentionNeeded { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn inconclusive_lookups_never_recreate_and_flag_past_the_limit() {
    let limit = policy().poll.attention_after_inconclusive_lookups;
    let mut o = creating(new_order());
    for attempt in 1..=limit + 3 {
        // Alternate an inconclusive search with a failed lookup call: both settle nothing.
        let obs = if attempt % 2 == 0 {
            failure(FailureKind::Retryable)
        } else {
            Observation::Lookup(Lookup::Inconclusive {
                evidence: "row 4 of page 6 unreadable".into(),
                progress: None,
            })
        };
        let d = observe(&o, obs);
        assert_eq!(d.order.state, OrderState::Preparing);
        assert_eq!(d.order.intent, Some(Intent::CreateOrder));
        assert_eq!(
            next_action(&d.order, t0(), &policy()),
            Action::FindProviderOrder,
            "attempt {attempt}: never a second create"
        );
        let NextRun::At(at) = d.next_run else {
            panic!("a retry is scheduled")
        };
        assert!(at > t0(), "backs off");
        assert!(
            d.history.iter().any(|h| h.kind == "lookup_inconclusive"),
            "evidence in the timeline"
        );
        let flags = attention(&d);
        if attempt == limit {
            assert_eq!(flags.len(), 1, "{flags:?}");
            assert!(flags[0].contains("not repeated"), "{flags:?}");
        } else {
            assert!(flags.is_empty(), "attempt {attempt}: {flags:?}");
        }
        o = d.order;
    }
    // A later complete answer still settles it.
    let d = observe(&o, Observation::Lookup(Lookup::NotFound));
    assert_eq!(d.order.intent, None);
    assert_eq!(next_action(&d.order, t0(), &policy()), Action::CreateOrder);
}

#[test]
fn an_unfinished_lookup_goes_on_where_it_stopped() {
    let o = creating(new_order());
    let progress = LookupProgress {
        cursor: "70".into(),
        doubt: None,
    };
    let d = observe(
        &o,
        Observation::Lookup(Lookup::Inconclusive {
            evidence: "page 8 failed".into(),
            progress: Some(progress.clone()),
        }),
    );
    assert_eq!(d.order.lookup_progress, Some(progress));
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::FindProviderOrder
    );
    // Searches that keep reading further never reach the flag; one that stops does.
    let limit = policy().poll.attention_after_inconclusive_lookups;
    let mut o = d.order.clone();
    for page in 8..8 + limit + 2 {
        let d = observe(
            &o,
            Observation::Lookup(Lookup::Inconclusive {
                evidence: format!("page {page} failed"),
                progress: Some(LookupProgress {
                    cursor: (page * 10).to_string(),
                    doubt: None,
                }),
            }),
        );
        assert!(attention(&d).is_empty(), "page {page}");
        assert_eq!(d.order.failures, 1);
        o = d.order;
    }
    let stuck = Observation::Lookup(Lookup::Inconclusive {
        evidence: "same page failed".into(),
        progress: o.lookup_progress.clone(),
    });
    let flags: usize = (1..limit)
        .map(|_| {
            let d = observe(&o, stuck.clone());
            o = d.order.clone();
            attention(&d).len()
        })
        .sum();
    assert_eq!(flags, 1, "flagged once the search stopped getting further");
    // A failed call keeps it; the answer clears it with the intent.
    let d = observe(&d.order, failure(FailureKind::Retryable));
    assert!(d.order.lookup_progress.is_some());
    let d = observe(
        &d.order,
        Observation::Lookup(Lookup::Found(Box::new(FoundOrder {
            order: created(),
            status: "fiatPending".into(),
            payment_ref: None,
        }))),
    );
    assert_eq!(d.order.intent, None);
    assert_eq!(d.order.lookup_progress, None);
}

#[test]
fn a_submission_lookup_that_misses_the_order_is_inconclusive() {
    let o = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    let o = decide(&o, Input::Intent(Intent::SubmitUtr), &ctx_at(t0()))
        .unwrap()
        .order;
    // The provider order exists, so "not in the list" proves nothing.
    let d = observe(&o, Observation::Lookup(Lookup::NotFound));
    assert_eq!(d.order.intent, Some(Intent::SubmitUtr));
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::FindProviderOrder
    );
    // The provider holding another reference is not a reason to submit ours over it.
    let d = observe(
        &o,
        Observation::Lookup(Lookup::Found(Box::new(FoundOrder {
            order: created(),
            status: "fiatReceived".into(),
            payment_ref: Some("499999999999".into()),
        }))),
    );
    assert_eq!(d.order.state, OrderState::UtrSubmitted);
    assert_eq!(d.order.intent, None);
    assert_eq!(next_action(&d.order, t0(), &policy()), Action::PollStatus);
    assert_eq!(attention(&d).len(), 1);
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
        Observation::Lookup(Lookup::Found(Box::new(FoundOrder {
            order: created(),
            status: "fiatPending".into(),
            payment_ref: u.map(str::to_string),
        })))
    };
    let d = observe(&o, found(Some("412345678901")));
    assert_eq!(d.order.state, OrderState::UtrSubmitted);
    let d = observe(&o, found(None));
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::SubmitUtr(utr())
    );
}

#[test]
fn a_poll_that_sees_nothing_new_only_reschedules() {
    let o = awaiting();
    let d = observe(&o, status("fiatPending"));
    let NextRun::At(at) = d.next_run else {
        panic!("a live order is polled again")
    };
    assert_eq!(d.only_reschedules(&o), Some(at));
    // Anything new is a real write: a new status, a failure (counted), a flag.
    assert_eq!(
        observe(&o, status("fiatReceived")).only_reschedules(&o),
        None
    );
    assert_eq!(
        observe(&o, failure(FailureKind::Retryable)).only_reschedules(&o),
        None
    );
    assert_eq!(observe(&o, status("onHold")).only_reschedules(&o), None);
    // The first success after failures resets the count: a write.
    let failed = observe(&o, failure(FailureKind::Retryable)).order;
    assert_eq!(
        observe(&failed, status("fiatPending")).only_reschedules(&failed),
        None
    );
}

/// The next run of `d`, which must be a time.
fn next_at(d: &Decision) -> DateTime<Utc> {
    match d.next_run {
        NextRun::At(at) => at,
        other => panic!("expected a next run, got {other:?}"),
    }
}

#[test]
fn cadence_fits_what_the_order_waits_for() {
    let p = policy().poll;
    let secs = chrono::Duration::seconds;
    // Parked for the user's payment: checked slowly from the start (jitter 0.5 takes 5 %
    // off), never sooner than the regular cadence.
    let parked = awaiting();
    let created = observe(&creating(new_order()), Observation::Created(created()));
    assert_eq!(
        next_at(&created),
        t0() + secs(28) + chrono::Duration::milliseconds(500)
    );
    // … and ever more slowly: an hour after creation the check is the longest one.
    let later = t0() + chrono::Duration::hours(1);
    let quiet = decide(
        &parked,
        Input::Observed(Box::new(status("fiatPending"))),
        &ctx_at(later),
    )
    .unwrap();
    assert_eq!(next_at(&quiet), later + secs(570));
    assert!(next_at(&quiet) - later <= chrono::Duration::from_std(p.parked_max).unwrap());
    // Close to its deadline, the check is at the deadline, where the order is ended.
    let deadline = parked.expires_at + chrono::Duration::from_std(policy().expiry_grace).unwrap();
    let near = deadline - secs(60);
    let last = decide(
        &parked,
        Input::Observed(Box::new(status("fiatPending"))),
        &ctx_at(near),
    )
    .unwrap();
    assert_eq!(next_at(&last), deadline);
    assert_eq!(
        next_action(&last.order, deadline, &policy()),
        Action::PollStatus
    );
    // The UTR wakes it at once; once submitted, it is polled on the provider's cadence.
    let paid = decide(&parked, Input::SubmitUtr { utr: utr() }, &ctx_at(later)).unwrap();
    assert_eq!(next_at(&paid), later);
    let o = decide(
        &paid.order,
        Input::Intent(Intent::SubmitUtr),
        &ctx_at(later),
    )
    .unwrap()
    .order;
    let submitted = decide(
        &o,
        Input::Observed(Box::new(Observation::UtrAccepted)),
        &ctx_at(later),
    )
    .unwrap();
    assert_eq!(submitted.order.state, OrderState::UtrSubmitted);
    assert_eq!(
        next_at(&submitted),
        later + secs(12) + chrono::Duration::milliseconds(500)
    );
    // Off-ramp orders parked for the user's deposit follow the same cadence.
    let off = awaiting_of(Direction::Offramp);
    let quiet = decide(
        &off,
        Input::Observed(Box::new(status("pending"))),
        &ctx_at(later),
    )
    .unwrap();
    assert_eq!(next_at(&quiet), later + secs(570));
}

#[test]
fn urgency_puts_submitted_payments_first_then_deadlines_then_parked_orders() {
    let secs = chrono::Duration::seconds;
    let later = t0() + chrono::Duration::hours(1);
    let parked = awaiting();
    let quiet = decide(
        &parked,
        Input::Observed(Box::new(status("fiatPending"))),
        &ctx_at(later),
    )
    .unwrap();
    assert_eq!(quiet.urgency, Urgency::Parked);
    // The check at the deadline, which ends the order, comes before the parked ones.
    let deadline = parked.expires_at + chrono::Duration::from_std(policy().expiry_grace).unwrap();
    let last = decide(
        &parked,
        Input::Observed(Box::new(status("fiatPending"))),
        &ctx_at(deadline - secs(60)),
    )
    .unwrap();
    assert_eq!(last.urgency, Urgency::Deadline);
    // A submitted UTR goes before both.
    let paid = decide(&parked, Input::SubmitUtr { utr: utr() }, &ctx_at(later)).unwrap();
    assert_eq!(paid.urgency, Urgency::Moving);
    // So do the steps before the provider order exists (the user is at checkout) ...
    let fresh = create(
        Uuid::nil(),
        "acme",
        "o-1",
        ProviderRef::default(),
        OrderRequest::Onramp(request()),
        &ctx_at(t0()),
    );
    assert_eq!(fresh.urgency, Urgency::Moving);
    // ... while a user who has to finish KYC waits like a parked order.
    let kyc = observe(
        &new_order(),
        Observation::Kyc {
            verified: false,
            missing: vec![],
        },
    );
    assert_eq!(kyc.order.state, OrderState::KycRequired);
    assert_eq!(kyc.urgency, Urgency::Parked);
    assert!(Urgency::Moving < Urgency::Deadline && Urgency::Deadline < Urgency::Parked);
    // Claims read urgencies in the order of `ALL`: every variant, most urgent first.
    assert_eq!(
        Urgency::ALL,
        [Urgency::Moving, Urgency::Deadline, Urgency::Parked]
    );
    for u in Urgency::ALL {
        assert_eq!(Urgency::from_rank(u.rank()), Some(u));
    }
    assert_eq!(Urgency::from_rank(7), None);
}

#[test]
fn cancel_rules() {
    let d = decide(&new_order(), Input::Cancel { reason: None }, &ctx_at(t0())).unwrap();
    assert_eq!(d.order.state, OrderState::Cancelled);
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
    assert_eq!(d.order.state, OrderState::Cancelled);
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
    assert_eq!(d.order.state, OrderState::Cancelled);
    assert!(d.order.provider_order_id.is_some());
    assert!(d.events.is_empty());
}

#[test]
fn expiry_by_provider_and_by_deadline() {
    let d = observe(&awaiting(), status("expired"));
    assert_eq!(d.order.state, OrderState::Expired);
    assert_eq!(d.order.reason.as_deref(), Some("provider_expired"));
    assert_eq!(d.order.attention, None);

    // With a provider order, the provider is asked before we expire it ourselves.
    let o = awaiting();
    let late = o.expires_at + chrono::Duration::minutes(6);
    assert_eq!(next_action(&o, late, &policy()), Action::PollStatus);
    let d = decide(&o, obs_input(status("fiatPending")), &ctx_at(late)).unwrap();
    assert_eq!(d.order.state, OrderState::Expired);
    assert_eq!(d.order.reason.as_deref(), Some("payment_window_elapsed"));
    let paid = decide(&o, obs_input(status("orderReceived")), &ctx_at(late)).unwrap();
    assert_eq!(
        paid.order.state,
        OrderState::Processing,
        "money that came late is followed"
    );

    // Without one, the deadline ends it.
    let o = observe(&new_order(), verified()).order;
    let late = o.expires_at + chrono::Duration::minutes(6);
    assert_eq!(next_action(&o, late, &policy()), Action::Expire);
    let d = decide(&o, Input::DeadlinePassed, &ctx_at(late)).unwrap();
    assert_eq!(d.order.state, OrderState::Expired);
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
        OrderState::AwaitingPayment
    );
    let d = decide(&o, obs_input(status("fiatPending")), &ctx_at(late)).unwrap();
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
}

#[test]
fn provider_expiry_after_utr_flags_attention() {
    let o = decide(&awaiting(), Input::SubmitUtr { utr: utr() }, &ctx_at(t0()))
        .unwrap()
        .order;
    let o = observe(&o, Observation::UtrAccepted).order;
    let d = observe(&o, status("expired"));
    assert_eq!(d.order.state, OrderState::Expired);
    assert!(d.order.attention.is_some());
}

#[test]
fn provider_expiry_date_is_used() {
    let o = new_order();
    let o = observe(&o, verified()).order;
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
        assert_eq!(d.order.state, OrderState::UtrSubmitted, "{raw}");
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
    assert_eq!(o.state, OrderState::Transferred);
    for raw in ["fiatPending", "orderReceived", "InProgress", "fiatReceived"] {
        let d = observe(&o, status(raw));
        assert_eq!(d.order.state, OrderState::Transferred);
        assert!(d.events.is_empty());
    }
}

#[test]
fn terminal_states_absorb_everything() {
    let done = observe(&awaiting(), status("completed")).order;
    for raw in ["expired", "cancelled", "fiatPending", "weird"] {
        let d = observe(&done, status(raw));
        assert_eq!(d.order.state, OrderState::Completed);
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
    let d = observe(
        &o,
        Observation::Kyc {
            verified: false,
            missing: vec![],
        },
    );
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
    assert_eq!(d.history[0].kind, "stale_observation");
    let d = observe(&new_order(), status("completed"));
    assert_eq!(d.order.state, OrderState::Preparing);
}

#[test]
fn state_names_round_trip() {
    for s in OrderState::ALL {
        assert_eq!(OrderState::parse(s.as_str()), Some(s));
    }
}

#[test]
fn order_round_trips_through_json() {
    let o = awaiting();
    let back: Order = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(back, o);
}

// ---------------------------------------------------------------- properties

fn obs_input(o: Observation) -> Input {
    Input::Observed(Box::new(o))
}

fn new_order_of(direction: Direction) -> Order {
    let request = match direction {
        Direction::Onramp => OrderRequest::Onramp(request()),
        Direction::Offramp => OrderRequest::Offramp(offramp_request()),
    };
    create(
        Uuid::nil(),
        "acme",
        "o-1",
        ProviderRef::default(),
        request,
        &ctx_at(t0()),
    )
    .order
}

fn any_input(direction: Direction) -> impl Strategy<Value = Input> {
    let mut statuses: Vec<&'static str> =
        known_statuses(direction).iter().map(|(s, _)| *s).collect();
    statuses.extend(["Completed", "onHold", "", "fiatPending", "refunded"]);
    let status = prop::sample::select(statuses);
    let kind = prop::sample::select(vec![
        FailureKind::Retryable,
        FailureKind::RateLimited,
        FailureKind::Rejected,
        FailureKind::Unknown,
        FailureKind::Deferred,
    ]);
    let utrs = prop::sample::select(vec!["412345678901", "412345678902", "HDFCN52026112123"]);
    let hashes = prop::sample::select(vec![EVM_HASH, OTHER_EVM_HASH, "0x1234", "not a hash"]);
    let refs = prop::sample::select(vec!["412345678901", EVM_HASH]);
    let rates = prop::sample::select(vec!["88.5", "88.6", "95", "70"]);
    prop_oneof![
        utrs.prop_map(|u| Input::SubmitUtr {
            utr: Utr::parse(u).unwrap()
        }),
        hashes.prop_map(|h| Input::SubmitTxHash {
            hash: h.to_string()
        }),
        Just(Input::Cancel { reason: None }),
        Just(Input::Intent(Intent::CreateOrder)),
        Just(Input::Intent(Intent::SubmitUtr)),
        Just(Input::Intent(Intent::SubmitTxHash)),
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
        (any::<bool>(), any::<bool>()).prop_map(|(v, m)| obs_input(Observation::Kyc {
            verified: v,
            missing: if m {
                vec!["DATE_OF_BIRTH".into()]
            } else {
                vec![]
            }
        })),
        prop_oneof![
            Just(LinkResult::Linked),
            Just(LinkResult::Pending { reference: None }),
            Just(LinkResult::Pending {
                reference: Some("ref-1".into())
            }),
            Just(LinkResult::Failed("x".into())),
            Just(LinkResult::NameMismatch),
        ]
        .prop_map(|l| obs_input(Observation::PaymentMethod(l))),
        rates.prop_map(|r| obs_input(Observation::Quoted(Quote {
            conversion_rate: r.parse().unwrap(),
            ..quote()
        }))),
        any::<bool>().prop_map(|dep| obs_input(Observation::Created(ProviderOrder {
            deposit_address: dep.then(|| DEPOSIT.to_string()),
            ..created()
        }))),
        proptest::option::of(proptest::option::of(refs)).prop_map(|f| {
            obs_input(Observation::Lookup(match f {
                Some(r) => Lookup::Found(Box::new(FoundOrder {
                    order: created(),
                    status: "fiatPending".into(),
                    payment_ref: r.map(str::to_string),
                })),
                None => Lookup::NotFound,
            }))
        }),
        Just(obs_input(Observation::Lookup(Lookup::Inconclusive {
            evidence: "page 4 unreadable".into(),
            progress: None,
        }))),
        Just(obs_input(Observation::Lookup(Lookup::Inconclusive {
            evidence: "page 5 failed".into(),
            progress: Some(LookupProgress {
                cursor: "5".into(),
                doubt: None,
            }),
        }))),
        Just(obs_input(Observation::UtrAccepted)),
        Just(obs_input(Observation::TxHashAccepted)),
        status
            .clone()
            .prop_map(|s| obs_input(Observation::Status(StatusReport::new(s)))),
        status.prop_map(|s| Input::Callback(StatusReport::new(s))),
        (kind, proptest::option::of(0u64..1000)).prop_map(|(k, ra)| obs_input(
            Observation::CallFailed(CallFailure {
                kind: k,
                retry_after: ra.map(Duration::from_secs),
                message: "m".into(),
                action: None,
            })
        )),
    ]
}

/// Properties every reachable order satisfies.
fn check_invariants(o: &Order) -> Result<(), TestCaseError> {
    use OrderState::*;
    prop_assert!(
        OrderState::for_direction(o.direction()).contains(&o.state),
        "{:?} is not a state of {:?}",
        o.state,
        o.direction()
    );
    if o.state.rank() >= AwaitingPayment.rank() && !matches!(o.state, Expired | Cancelled | Failed)
    {
        prop_assert!(
            o.provider_order_id.is_some(),
            "{:?} without provider order",
            o.state
        );
    }
    if o.state == UtrSubmitted {
        prop_assert!(o.utr.is_some());
    }
    if o.state == TxHashSubmitted {
        prop_assert!(o.deposit_tx_hash.is_some());
    }
    match o.direction() {
        Direction::Onramp => prop_assert!(o.deposit_tx_hash.is_none() && o.deposit.is_none()),
        Direction::Offramp => {
            prop_assert!(o.utr.is_none() && o.payment.is_none() && o.successor.is_none())
        }
    }
    if o.state == KycRequired {
        prop_assert!(o.kyc.is_some());
    }
    if o.state.is_terminal() {
        prop_assert!(o.intent.is_none(), "terminal order with an open intent");
    }
    if matches!(o.state, Failed | Expired | Cancelled | Refunded) {
        prop_assert!(o.reason.is_some());
    }
    Ok(())
}

fn run_machine(
    direction: Direction,
    inputs: Vec<Input>,
    step_secs: i64,
) -> Result<(), TestCaseError> {
    let mut order = new_order_of(direction);
    let mut now = t0();
    let mut provider_id: Option<String> = None;
    let mut submitted_ref: Option<String> = None;
    for input in inputs {
        now += chrono::Duration::seconds(step_secs);
        let before = order.clone();
        let input_kind = match &input {
            Input::Observed(_) => "observed",
            Input::DeadlinePassed => "deadline",
            _ => "other",
        };
        // An interrupted create or submission is only settled by a fact: a failed or
        // inconclusive lookup (or a "not found" for an order the provider has) keeps it.
        let settles_nothing = before.intent.is_some()
            && !before.state.is_terminal()
            && next_action(&before, now, &policy()) == Action::FindProviderOrder
            && match &input {
                Input::Observed(o) => match &**o {
                    Observation::CallFailed(_)
                    | Observation::Lookup(Lookup::Inconclusive { .. }) => true,
                    Observation::Lookup(Lookup::NotFound) => {
                        before.intent != Some(Intent::CreateOrder)
                    }
                    _ => false,
                },
                _ => false,
            };
        let Ok(d) = decide(&order, input, &ctx_at(now)) else {
            continue; // refused commands change nothing, by construction
        };
        prop_assert!(
            d.order.lookup_progress.is_none() || d.order.intent.is_some(),
            "lookup progress outlived its intent"
        );
        if settles_nothing {
            prop_assert_eq!(
                d.order.intent,
                before.intent,
                "intent dropped without a fact"
            );
            prop_assert_eq!(d.order.state, before.state);
        }
        let after = &d.order;
        // monotonic; the only same-rank moves are preparing <-> kyc_required
        prop_assert!(
            after.state.rank() >= before.state.rank(),
            "{:?} -> {:?}",
            before.state,
            after.state
        );
        if after.state.rank() == before.state.rank() && after.state != before.state {
            prop_assert!(after.state.is_preparing() && before.state.is_preparing());
        }
        // terminal absorbs (a late UTR on an expired order only names its successor; an
        // operator may still resolve a flag)
        if before.state.is_terminal() {
            prop_assert_eq!(after.state, before.state);
            let only_successor = d.events.iter().all(|e| {
                matches!(
                    e.kind,
                    EventKind::SuccessorCreated { .. } | EventKind::OperatorAction { .. }
                )
            });
            prop_assert!(
                only_successor,
                "terminal order emitted a non-successor event"
            );
        }
        if let Some(next) = &d.spawned {
            prop_assert_eq!(before.state, OrderState::Expired);
            prop_assert_eq!(next.order.predecessor, Some(after.id));
            prop_assert_eq!(after.successor, Some(next.order.id));
            prop_assert!(next.order.utr.is_some());
            prop_assert!(before.utr.is_none() && after.utr.is_none());
        }
        // every state change is announced, in sequence
        if after.state != before.state {
            let announced = d.events.iter().any(
                |e| matches!(e.kind, EventKind::StatusChanged { to, .. } if to == after.state),
            );
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
        // a payment reference accepted by the provider never changes
        let ours = after
            .utr
            .as_ref()
            .map(|u| u.as_str().to_string())
            .or_else(|| {
                after
                    .deposit_tx_hash
                    .as_ref()
                    .map(|h| h.as_str().to_string())
            });
        if let Some(r) = &submitted_ref {
            prop_assert_eq!(ours.as_ref(), Some(r));
        }
        if matches!(
            after.state,
            OrderState::UtrSubmitted | OrderState::TxHashSubmitted
        ) && submitted_ref.is_none()
        {
            submitted_ref = ours;
        }
        // after an observation or a timer a live order is always scheduled
        if matches!(input_kind, "observed" | "deadline") && !after.state.is_terminal() {
            prop_assert!(
                matches!(d.next_run, NextRun::At(_)),
                "live order left unscheduled"
            );
        }
        match d.next_run {
            NextRun::Done => prop_assert!(after.state.is_terminal()),
            NextRun::At(t) => {
                prop_assert!(!after.state.is_terminal());
                prop_assert!(t >= now);
            }
            NextRun::Keep => {}
        }
        if after.state.is_terminal() {
            prop_assert_eq!(next_action(after, now, &policy()), Action::Nothing);
        }
        check_invariants(after)?;
        order = d.order;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_input_sequence_breaks_the_onramp_machine(inputs in prop::collection::vec(any_input(Direction::Onramp), 1..60), step_secs in 0i64..2000) {
        run_machine(Direction::Onramp, inputs, step_secs)?;
    }

    #[test]
    fn no_input_sequence_breaks_the_offramp_machine(inputs in prop::collection::vec(any_input(Direction::Offramp), 1..60), step_secs in 0i64..2000) {
        run_machine(Direction::Offramp, inputs, step_secs)?;
    }

    #[test]
    fn status_sequences_only_move_forward(
        direction in prop::sample::select(vec![Direction::Onramp, Direction::Offramp]),
        picks in prop::collection::vec(0usize..8, 1..30),
    ) {
        let mut o = awaiting_of(direction);
        let mut max_rank = o.state.rank();
        let known = known_statuses(direction);
        for i in picks {
            o = observe(&o, status(known[i % known.len()].0)).order;
            prop_assert!(o.state.rank() >= max_rank);
            max_rank = o.state.rank();
        }
    }
}

#[test]
fn only_creating_calls_need_an_intent() {
    assert_eq!(Action::CreateOrder.intent(), Some(Intent::CreateOrder));
    assert_eq!(Action::SubmitUtr(utr()).intent(), Some(Intent::SubmitUtr));
    assert_eq!(
        Action::SubmitTxHash(TxHash::parse(ChainFamily::Evm, EVM_HASH).unwrap()).intent(),
        Some(Intent::SubmitTxHash)
    );
    for a in [
        Action::CheckKyc,
        Action::EnsurePaymentMethod,
        Action::FetchQuote,
        Action::PollLink("r".into()),
        Action::FindProviderOrder,
        Action::PollStatus,
        Action::Expire,
        Action::Nothing,
    ] {
        assert_eq!(a.intent(), None, "{}", a.name());
    }
}

#[test]
fn offramp_happy_path_with_deposit_instructions_and_payout() {
    let o = awaiting_of(Direction::Offramp);
    assert_eq!(o.state, OrderState::AwaitingPayment);
    assert_eq!(o.provider_status.as_deref(), Some("cryptoInit"));
    let dep = o.deposit.clone().expect("deposit instructions");
    assert_eq!(dep.address, DEPOSIT);
    assert_eq!(dep.token_amount, "25.5".parse().unwrap());
    assert_eq!(dep.chain_id, ChainId::new(137).unwrap());
    assert_eq!(dep.expires_at, t0() + chrono::Duration::hours(2));
    assert_eq!(o.payment, None);
    assert_eq!(next_action(&o, t0(), &policy()), Action::PollStatus);

    // The hash is validated for the chain and normalised before anything is sent.
    let upper = EVM_HASH.to_uppercase().replacen("0X", "0x", 1);
    let d = decide(
        &o,
        Input::SubmitTxHash {
            hash: format!("  {upper} "),
        },
        &ctx_at(t0()),
    )
    .unwrap();
    let hash = d.order.deposit_tx_hash.clone().unwrap();
    assert_eq!(hash.as_str(), EVM_HASH);
    assert_eq!(d.next_run, NextRun::At(t0()));
    assert_eq!(
        next_action(&d.order, t0(), &policy()),
        Action::SubmitTxHash(hash)
    );
    let o = decide(&d.order, Input::Intent(Intent::SubmitTxHash), &ctx_at(t0()))
        .unwrap()
        .order;
    assert_eq!(next_action(&o, t0(), &policy()), Action::FindProviderOrder);
    let o = observe(&o, Observation::TxHashAccepted).order;
    assert_eq!(o.state, OrderState::TxHashSubmitted);
    assert_eq!(o.intent, None);
    let o = observe(&o, status("orderReceived")).order;
    assert_eq!(o.state, OrderState::Processing);
    let o = observe(&o, status("CryptoReceived")).order;
    assert_eq!(o.state, OrderState::Processing);
    let d = observe(
        &o,
        Observation::Status(StatusReport {
            payout_reference: Some("NEFT123".into()),
            ..StatusReport::new("PayoutSuccess")
        }),
    );
    assert_eq!(d.order.state, OrderState::PaidOut);
    assert_eq!(d.order.payout_reference.as_deref(), Some("NEFT123"));
    let d = observe(&d.order, status("completed"));
    assert_eq!(d.order.state, OrderState::Completed);
    assert_eq!(d.next_run, NextRun::Done);
}

#[test]
fn tx_hash_rules() {
    let o = awaiting_of(Direction::Offramp);
    for bad in [
        "0x1234",
        "88df016429689c079f3b2f6ad39fa052532c56795b733da78a91ebe6a713944b",
        "",
        "zz",
    ] {
        let err = decide(&o, Input::SubmitTxHash { hash: bad.into() }, &ctx_at(t0())).unwrap_err();
        assert_eq!(err.code, RejectCode::InvalidTxHash, "{bad}");
        assert!(
            bad.is_empty() || !err.message.contains(bad),
            "the reason never echoes the input"
        );
    }
    let o = decide(
        &o,
        Input::SubmitTxHash {
            hash: EVM_HASH.into(),
        },
        &ctx_at(t0()),
    )
    .unwrap()
    .order;
    // the same hash again is a no-op, another is refused
    assert!(
        decide(
            &o,
            Input::SubmitTxHash {
                hash: EVM_HASH.into()
            },
            &ctx_at(t0())
        )
        .unwrap()
        .is_noop()
    );
    let err = decide(
        &o,
        Input::SubmitTxHash {
            hash: OTHER_EVM_HASH.into(),
        },
        &ctx_at(t0()),
    )
    .unwrap_err();
    assert_eq!(err.code, RejectCode::TxHashAlreadySet);
    // a hash received before the provider order exists is kept and submitted after create
    let early = new_order_of(Direction::Offramp);
    let d = decide(
        &early,
        Input::SubmitTxHash {
            hash: EVM_HASH.into(),
        },
        &ctx_at(t0()),
    )
    .unwrap();
    assert_eq!(d.order.state, OrderState::Preparing);
    assert!(d.order.deposit_tx_hash.is_some());
    // a cancel after the hash arrived is refused
    let err = decide(&o, Input::Cancel { reason: None }, &ctx_at(t0())).unwrap_err();
    assert_eq!(err.code, RejectCode::PaymentClaimed);
}

#[test]
fn a_tron_order_refuses_an_evm_hash() {
    let mut r = offramp_request();
    r.chain_id = ChainId::TRON;
    let o = create(
        Uuid::nil(),
        "acme",
        "o-t",
        ProviderRef::default(),
        OrderRequest::Offramp(r),
        &ctx_at(t0()),
    )
    .order;
    let err = decide(
        &o,
        Input::SubmitTxHash {
            hash: EVM_HASH.into(),
        },
        &ctx_at(t0()),
    )
    .unwrap_err();
    assert_eq!(err.code, RejectCode::InvalidTxHash);
    let tron = &EVM_HASH[2..];
    let d = decide(
        &o,
        Input::SubmitTxHash {
            hash: tron.to_uppercase(),
        },
        &ctx_at(t0()),
    )
    .unwrap();
    assert_eq!(d.order.deposit_tx_hash.unwrap().as_str(), tron);
}

#[test]
fn offramp_refund_is_terminal_and_names_the_refund_address() {
    let o = offramp_with_hash();
    let o = observe(&o, Observation::TxHashAccepted).order;
    let o = observe(&o, status("orderReceived")).order;
    let d = observe(
        &o,
        Observation::Status(StatusReport {
            refund_address: Some("0x4444444444444444444444444444444444444444".into()),
            ..StatusReport::new("refunded")
        }),
    );
    assert_eq!(d.order.state, OrderState::Refunded);
    assert_eq!(d.order.reason.as_deref(), Some("provider_refunded"));
    assert_eq!(d.next_run, NextRun::Done);
    let event = crate::event::order_event(
        &d.order,
        d.events[0].seq,
        &d.events[0].kind,
        "e".into(),
        t0(),
        None,
    );
    assert_eq!(event.state, "refunded");
    assert_eq!(
        event.refund_address.as_deref(),
        Some("0x4444444444444444444444444444444444444444")
    );
    assert_eq!(event.reason.as_deref(), Some("provider_refunded"));
}

#[test]
fn offramp_without_a_hash_by_the_deadline_expires() {
    let o = awaiting_of(Direction::Offramp);
    let late = o.expires_at + chrono::Duration::minutes(6);
    assert_eq!(next_action(&o, late, &policy()), Action::PollStatus);
    let d = decide(&o, obs_input(status("pending")), &ctx_at(late)).unwrap();
    assert_eq!(d.order.state, OrderState::Expired);
    assert_eq!(d.order.reason.as_deref(), Some("deposit_window_elapsed"));
    // tokens that arrived without a hash are followed, not expired (providers.md §6 #15)
    let d = decide(&o, obs_input(status("orderReceived")), &ctx_at(late)).unwrap();
    assert_eq!(d.order.state, OrderState::Processing);
}

#[test]
fn interrupted_tx_hash_submission_is_looked_up() {
    let o = submitting_hash();
    let found = |r: Option<&str>| {
        obs_input(Observation::Lookup(Lookup::Found(Box::new(FoundOrder {
            order: created(),
            status: "pending".into(),
            payment_ref: r.map(str::to_string),
        }))))
    };
    let d = decide(
        &o,
        found(Some(&EVM_HASH.to_uppercase().replacen("0X", "0x", 1))),
        &ctx_at(t0()),
    )
    .unwrap();
    assert_eq!(
        d.order.state,
        OrderState::TxHashSubmitted,
        "hex compares case-insensitively"
    );
    let d = decide(&o, found(None), &ctx_at(t0())).unwrap();
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
    assert_eq!(d.order.intent, None);
    assert!(matches!(
        next_action(&d.order, t0(), &policy()),
        Action::SubmitTxHash(_)
    ));
}

#[test]
fn a_refused_tx_hash_is_announced_and_can_be_replaced() {
    let o = submitting_hash();
    // After the intent, the order alone would say "look it up": the failure names the call.
    let submit = Action::SubmitTxHash(o.deposit_tx_hash.clone().unwrap());
    let d = observe(
        &o,
        Observation::CallFailed(CallFailure {
            action: Some(submit),
            ..rejected()
        }),
    );
    assert_eq!(d.order.deposit_tx_hash, None);
    assert!(matches!(
        d.events.as_slice(),
        [Emitted {
            kind: EventKind::PaymentRefRejected { .. },
            ..
        }]
    ));
    let event = crate::event::order_event(
        &d.order,
        d.events[0].seq,
        &d.events[0].kind,
        "e".into(),
        t0(),
        None,
    );
    assert_eq!(event.event_type, crate::event::TX_HASH_REJECTED);
    let d = decide(
        &d.order,
        Input::SubmitTxHash {
            hash: OTHER_EVM_HASH.into(),
        },
        &ctx_at(t0()),
    )
    .unwrap();
    assert!(d.order.deposit_tx_hash.is_some());
}

#[test]
fn kyc_required_event_lists_what_is_missing() {
    let d = observe(
        &new_order_of(Direction::Offramp),
        Observation::Kyc {
            verified: false,
            missing: vec!["IDENTIFICATION_VERIFICATION".into()],
        },
    );
    let e = &d.events[0];
    let event = crate::event::order_event(&d.order, e.seq, &e.kind, "e".into(), t0(), None);
    assert_eq!(event.state, "kyc_required");
    assert_eq!(
        event.kyc_missing,
        Some(vec!["IDENTIFICATION_VERIFICATION".to_string()])
    );
    assert_eq!(event.direction, Direction::Offramp);
    assert_eq!(event.token_amount.as_deref(), Some("25.5"));
}

#[test]
fn a_refused_create_fails_even_though_the_intent_was_recorded() {
    // The executor records the intent, then calls; the refusal names the call.
    let o = at_create_step(None);
    let o = decide(&o, Input::Intent(Intent::CreateOrder), &ctx_at(t0()))
        .unwrap()
        .order;
    let d = observe(
        &o,
        Observation::CallFailed(CallFailure {
            action: Some(Action::CreateOrder),
            ..rejected()
        }),
    );
    assert_eq!(d.order.state, OrderState::Failed);
    assert_eq!(
        d.order.reason.as_deref(),
        Some("provider_rejected_order: refused")
    );
    assert_eq!(d.order.intent, None);
    // a refused lookup is just a failure: it is retried
    let d = observe(
        &o,
        Observation::CallFailed(CallFailure {
            action: Some(Action::FindProviderOrder),
            ..rejected()
        }),
    );
    assert_eq!(d.order.state, OrderState::Preparing);
    assert_eq!(d.order.failures, 1);
}
