//! The Partner API plan: deposit request → confirmation → mint credit, its refusals, the
//! cancel that declines, and crash recovery that never repeats a deposit or confirmation.

use super::*;
use crate::command::{MintRequest, Namespace, PartnerWallet};
use crate::provider::{Plan, ProviderName};

fn partner() -> ProviderRef {
    ProviderRef {
        name: ProviderName::parse("partner").unwrap(),
        plan: Plan::Partner,
    }
}

fn mint() -> Order {
    let request = OrderRequest::Mint(MintRequest {
        amount: TokenAmount::parse("25").unwrap(),
        token: TokenSymbol::parse("USBC").unwrap(),
        wallet: PartnerWallet::CustomNamespace(Namespace::parse("alice.ul").unwrap()),
    });
    let d = create(
        Uuid::nil(),
        "acme",
        "m-1",
        partner(),
        request,
        &ctx_at(t0()),
    );
    assert_eq!(d.next_run, NextRun::At(t0()));
    d.order
}

fn at(minutes: i64) -> Ctx {
    ctx_at(t0() + chrono::Duration::minutes(minutes))
}

fn next(o: &Order) -> Action {
    next_action(o, t0(), &policy())
}

fn intent(o: &Order, i: Intent) -> Order {
    decide(o, Input::Intent(i), &ctx_at(t0())).unwrap().order
}

fn deposit_created() -> Observation {
    Observation::Created(ProviderOrder {
        provider_order_id: "dep-1".into(),
        ..Default::default()
    })
}

/// A mint whose deposit request stands, to be confirmed.
fn deposited() -> Order {
    let o = intent(&mint(), Intent::CreateOrder);
    let d = observe(&o, deposit_created());
    assert_eq!(d.order.provider_order_id.as_deref(), Some("dep-1"));
    assert_eq!(d.order.step, PrepStep::Confirm);
    assert_eq!(d.next_run, NextRun::At(t0()), "confirmed at once");
    d.order
}

fn confirmed() -> Order {
    let o = intent(&deposited(), Intent::Confirm);
    let d = observe(
        &o,
        Observation::Confirmed {
            transaction_id: "trx-9".into(),
        },
    );
    assert_eq!(d.order.state, OrderState::Processing);
    assert_eq!(d.order.intent, None);
    d.order
}

fn states(d: &Decision) -> Vec<OrderState> {
    d.events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::StatusChanged { to, .. } => Some(to),
            _ => None,
        })
        .collect()
}

/// Why the decision's order is flagged (it must be).
fn flag_of(d: &Decision) -> &str {
    d.order.attention.as_deref().expect("flagged")
}

/// The provider refused `action` with `message`.
fn refusal(action: Action, message: &str) -> Observation {
    Observation::CallFailed(CallFailure {
        kind: FailureKind::Rejected,
        retry_after: None,
        message: message.into(),
        action: Some(action),
    })
}

fn settled() -> Observation {
    Observation::Chain(ChainCheck::Settled {
        tx_hash: "0xabc".into(),
    })
}

#[test]
fn a_mint_runs_deposit_confirm_and_completes_on_its_credit() {
    let o = mint();
    assert_eq!(o.provider, partner());
    assert_eq!(next(&o), Action::CreateOrder);
    assert_eq!(Action::CreateOrder.intent(), Some(Intent::CreateOrder));
    let o = deposited();
    assert_eq!(o.state, OrderState::Preparing);
    assert_eq!(next(&o), Action::Confirm);
    assert_eq!(Action::Confirm.intent(), Some(Intent::Confirm));
    let o = confirmed();
    assert_eq!(o.provider_transaction_id.as_deref(), Some("trx-9"));
    assert_eq!(o.provider_status.as_deref(), Some("APPROVED"));
    assert_eq!(next(&o), Action::PollStatus);
    let d = observe(&o, Observation::Chain(ChainCheck::NotYet));
    assert!(d.history.is_empty() && d.events.is_empty(), "a quiet poll");
    assert!(matches!(d.next_run, NextRun::At(_)));
    let d = observe(&o, settled());
    assert_eq!(d.order.state, OrderState::Completed);
    assert_eq!(d.order.tx_hash.as_deref(), Some("0xabc"));
    assert_eq!(d.next_run, NextRun::Done);
}

#[test]
fn a_rejected_deposit_fails_with_the_reason_and_nothing_is_retried() {
    let o = intent(&mint(), Intent::CreateOrder);
    let d = observe(&o, refusal(Action::CreateOrder, "Deposit not allowed"));
    assert_eq!(d.order.state, OrderState::Failed);
    assert_eq!(
        d.order.reason.as_deref(),
        Some("provider_rejected_order: Deposit not allowed")
    );
    assert_eq!(next(&d.order), Action::Nothing);
}

#[test]
fn a_refused_or_invalidated_confirmation_is_terminal() {
    let o = intent(&deposited(), Intent::Confirm);
    let d = observe(
        &o,
        refusal(
            Action::Confirm,
            "Successfully Invalidated Confirmation Request",
        ),
    );
    assert_eq!(d.order.state, OrderState::Failed);
    assert!(
        d.order
            .reason
            .as_deref()
            .unwrap()
            .starts_with("confirmation_rejected")
    );
    assert_eq!(d.order.intent, None);
}

#[test]
fn an_unanswered_deposit_is_flagged_never_repeated_and_expires_at_its_deadline() {
    let o = intent(&mint(), Intent::CreateOrder);
    // The call timed out: the next step is a lookup, not a second deposit request.
    let d = observe(&o, failure(FailureKind::Unknown));
    assert_eq!(d.order.intent, Some(Intent::CreateOrder));
    assert_eq!(next(&d.order), Action::FindProviderOrder);
    let d = observe(
        &d.order,
        Observation::Lookup(Lookup::Unanswerable {
            evidence: "the Partner API cannot read a deposit request back".into(),
        }),
    );
    assert!(flag_of(&d).contains("interrupted deposit request"));
    assert!(
        d.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::AttentionNeeded { .. }))
    );
    let deadline = d.order.unpaid_deadline(&policy());
    assert_eq!(d.next_run, NextRun::At(deadline));
    assert_eq!(next_action(&d.order, deadline, &policy()), Action::Expire);
    let e = decide(&d.order, Input::DeadlinePassed, &ctx_at(deadline)).unwrap();
    assert_eq!(e.order.state, OrderState::Expired);
    // Or a person cancels it meanwhile: no deposit request is known to decline.
    let c = decide(&d.order, Input::Cancel { reason: None }, &at(5)).unwrap();
    assert_eq!(c.order.state, OrderState::Cancelled);
}

#[test]
fn an_unanswered_confirmation_is_settled_by_its_credit_or_flagged_never_repeated_nor_expired() {
    let o = intent(&deposited(), Intent::Confirm);
    let d = observe(&o, failure(FailureKind::Retryable));
    assert_eq!(next(&d.order), Action::FindProviderOrder);
    // Past the deadline it is still looked up: the mint may be under way.
    let late = o.unpaid_deadline(&policy()) + chrono::Duration::hours(1);
    assert_eq!(
        next_action(&d.order, late, &policy()),
        Action::FindProviderOrder
    );
    // Not in the history yet: looked for again, flagged after the threshold.
    let mut o = d.order;
    let threshold = policy().poll.attention_after_inconclusive_lookups;
    // The failed call counts as the first of them.
    for look in 2..=threshold {
        let d = observe(&o, Observation::Chain(ChainCheck::NotYet));
        assert_eq!(d.order.intent, Some(Intent::Confirm));
        assert_eq!(
            d.order.attention.is_some(),
            look >= threshold,
            "look {look}"
        );
        o = d.order;
    }
    assert!(
        o.attention
            .as_deref()
            .expect("flagged")
            .contains("interrupted confirmation")
    );
    // Then the credit shows up: the order completes through processing.
    let d = observe(&o, settled());
    assert_eq!(
        states(&d),
        vec![OrderState::Processing, OrderState::Completed]
    );
    assert_eq!(d.order.tx_hash.as_deref(), Some("0xabc"));
    assert_eq!(d.order.intent, None);
}

#[test]
fn cancel_before_confirmation_declines_the_deposit_request() {
    let o = deposited();
    let d = decide(
        &o,
        Input::Cancel {
            reason: Some("user left".into()),
        },
        &at(1),
    )
    .unwrap();
    assert_eq!(
        d.order.state,
        OrderState::Preparing,
        "cancelled once declined"
    );
    assert_eq!(d.order.cancel_requested.as_deref(), Some("user left"));
    assert_eq!(next(&d.order), Action::Decline);
    assert_eq!(
        Action::Decline.intent(),
        None,
        "declining again is harmless"
    );
    let again = decide(&d.order, Input::Cancel { reason: None }, &at(2)).unwrap();
    assert!(again.is_noop());
    // A failed decline is retried; the answer (or a refusal) cancels.
    let f = observe(&d.order, failure(FailureKind::Retryable));
    assert_eq!(next(&f.order), Action::Decline);
    let c = observe(&f.order, Observation::Declined);
    assert_eq!(c.order.state, OrderState::Cancelled);
    assert_eq!(c.order.reason.as_deref(), Some("user left"));
    let r = observe(&f.order, refusal(Action::Decline, "Something went wrong"));
    assert_eq!(r.order.state, OrderState::Cancelled);
}

#[test]
fn cancel_is_refused_once_a_confirmation_may_have_reached_the_provider() {
    let o = intent(&deposited(), Intent::Confirm);
    let r = decide(&o, Input::Cancel { reason: None }, &at(1)).unwrap_err();
    assert_eq!(r.code, RejectCode::PaymentInProgress);
    let r = decide(&confirmed(), Input::Cancel { reason: None }, &at(1)).unwrap_err();
    assert_eq!(r.code, RejectCode::PaymentInProgress);
    // Before any deposit request, a cancel ends the order at once.
    let c = decide(&mint(), Input::Cancel { reason: None }, &at(1)).unwrap();
    assert_eq!(c.order.state, OrderState::Cancelled);
}

#[test]
fn a_doubtful_or_missing_credit_flags_but_keeps_looking() {
    let o = confirmed();
    let d = observe(
        &o,
        Observation::Chain(ChainCheck::Doubtful {
            evidence: "2 credits alike".into(),
        }),
    );
    assert_eq!(d.order.state, OrderState::Processing);
    assert!(flag_of(&d).contains("2 credits alike"));
    assert!(matches!(d.next_run, NextRun::At(_)));
    let late = Ctx {
        now: o.expires_at,
        ..ctx_at(o.expires_at)
    };
    let d = decide(
        &o,
        Input::Observed(Box::new(Observation::Chain(ChainCheck::NotYet))),
        &late,
    )
    .unwrap();
    assert!(flag_of(&d).contains("within the payment window"));
    assert_eq!(
        d.order.state,
        OrderState::Processing,
        "never expired after confirmation"
    );
}

#[test]
fn a_mint_takes_no_utr_or_tx_hash_and_late_or_stale_answers_change_nothing() {
    let o = deposited();
    let r = decide(&o, Input::SubmitUtr { utr: utr() }, &at(1)).unwrap_err();
    assert_eq!(r.code, RejectCode::NotApplicable);
    assert!(r.message.contains("mint order"), "{}", r.message);
    let r = decide(&o, Input::SubmitTxHash { hash: "0x1".into() }, &at(1)).unwrap_err();
    assert_eq!(r.code, RejectCode::NotApplicable);
    // A credit before any confirmation is no proof of this order's mint.
    let d = observe(&o, settled());
    assert_eq!(d.order.state, OrderState::Preparing);
    assert_eq!(d.history[0].kind, "stale_observation");
    // After the end, everything is absorbed.
    let done = observe(&confirmed(), settled()).order;
    let d = observe(&done, Observation::Declined);
    assert_eq!(d.order.state, OrderState::Completed);
}

#[test]
fn the_plan_is_kept_in_the_stored_order_and_old_orders_are_onmeta() {
    let o = mint();
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(json["provider"]["name"], "partner");
    assert_eq!(json["provider"]["plan"], "partner");
    assert_eq!(serde_json::from_value::<Order>(json).unwrap(), o);
    let mut old = serde_json::to_value(new_order()).unwrap();
    old.as_object_mut().unwrap().remove("provider");
    let back: Order = serde_json::from_value(old).unwrap();
    assert_eq!(back.provider, ProviderRef::default());
}

// Redeem ------------------------------------------------------------------------------

fn redeem() -> Order {
    let request = OrderRequest::Redeem(crate::command::RedeemRequest {
        amount: TokenAmount::parse("25").unwrap(),
        token: TokenSymbol::parse("USBC").unwrap(),
        wallet: PartnerWallet::CustomNamespace(Namespace::parse("treasury.acme.ul").unwrap()),
        fiat: crate::command::FiatPayout {
            amount: "25.00".parse().unwrap(),
            symbol: "USD".into(),
            transfer_method_id: "tm-1".into(),
        },
    });
    let d = create(
        Uuid::nil(),
        "acme",
        "r-1",
        partner(),
        request,
        &ctx_at(t0()),
    );
    assert_eq!(
        states(&d),
        vec![OrderState::Preparing, OrderState::AwaitingPayment],
        "nothing to prepare"
    );
    assert_eq!(d.order.direction(), Direction::Offramp);
    d.order
}

fn hash() -> String {
    format!("0x{}", "ab".repeat(32))
}

fn with_hash() -> Order {
    let d = decide(&redeem(), Input::SubmitTxHash { hash: hash() }, &at(1)).unwrap();
    assert_eq!(d.next_run, NextRun::At(at(1).now), "verified at once");
    d.order
}

fn verified() -> Order {
    let d = observe(
        &with_hash(),
        Observation::Chain(ChainCheck::Settled { tx_hash: hash() }),
    );
    assert_eq!(d.order.state, OrderState::Processing);
    d.order
}

fn payout(o: &Order, reference: &str) -> Result<Decision, Rejection> {
    decide(
        o,
        Input::PayoutReported {
            reference: reference.into(),
        },
        &at(10),
    )
}

#[test]
fn a_redeem_verifies_the_transfer_then_reports_the_treasurys_payout() {
    let o = redeem();
    // Waiting for the hash: nothing to ask (the connector answers without a call).
    assert_eq!(next(&o), Action::PollStatus);
    let d = observe(&o, Observation::Chain(ChainCheck::NotYet));
    assert!(d.history.is_empty() && d.events.is_empty());
    let o = with_hash();
    assert_eq!(o.deposit_tx_hash.as_ref().unwrap().as_str(), hash());
    assert_eq!(next(&o), Action::PollStatus);
    let o = verified();
    assert_eq!(o.tx_hash.as_deref(), Some(hash().as_str()));
    assert_eq!(next(&o), Action::PollStatus, "waits for redeem.payout");
    let d = observe(&o, Observation::Chain(ChainCheck::NotYet));
    assert_eq!(d.order.state, OrderState::Processing);
    assert!(d.history.is_empty(), "a quiet wait");
    let d = payout(&o, "ACH-77").unwrap();
    assert_eq!(d.order.payout_reference.as_deref(), Some("ACH-77"));
    assert_eq!(next(&d.order), Action::ReportPayout);
    assert_eq!(Action::ReportPayout.intent(), Some(Intent::ReportPayout));
    let o = intent(&d.order, Intent::ReportPayout);
    // Interrupted: the PUT is made again (idempotent at the provider by our reference).
    assert_eq!(next(&o), Action::ReportPayout);
    let d = observe(
        &o,
        Observation::PayoutRecorded {
            transaction_id: "ftx-1".into(),
        },
    );
    assert_eq!(states(&d), vec![OrderState::PaidOut, OrderState::Completed]);
    assert_eq!(d.order.provider_transaction_id.as_deref(), Some("ftx-1"));
}

#[test]
fn payout_references_are_checked() {
    let r = payout(&with_hash(), "ACH-1").unwrap_err();
    assert_eq!(r.code, RejectCode::NotApplicable, "not verified yet");
    let d = payout(&verified(), "ACH-1").unwrap();
    assert!(
        payout(&d.order, "ACH-1").unwrap().is_noop(),
        "the same again"
    );
    let r = payout(&d.order, "ACH-2").unwrap_err();
    assert_eq!(r.code, RejectCode::PayoutAlreadySet);
    let r = payout(&deposited(), "ACH-1").unwrap_err();
    assert_eq!(r.code, RejectCode::NotApplicable, "not a redeem");
    assert!(r.message.contains("mint order"), "{}", r.message);
}

#[test]
fn a_failed_transfer_refuses_the_hash_and_a_mismatch_flags() {
    let d = observe(
        &with_hash(),
        Observation::Chain(ChainCheck::Failed {
            reason: "reverted: out of gas".into(),
        }),
    );
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
    assert_eq!(d.order.deposit_tx_hash, None, "another hash may be sent");
    assert!(d.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::PaymentRefRejected { reason } if reason.contains("out of gas")
    )));
    let d = observe(
        &with_hash(),
        Observation::Chain(ChainCheck::Doubtful {
            evidence: "10 tokens sent, expected 25".into(),
        }),
    );
    assert_eq!(d.order.state, OrderState::AwaitingPayment);
    assert!(flag_of(&d).contains("10 tokens sent"));
    assert!(d.order.deposit_tx_hash.is_some(), "kept for the person");
}

#[test]
fn an_unpaid_redeem_expires_or_is_cancelled_and_a_paid_one_is_not() {
    let o = redeem();
    let deadline = o.unpaid_deadline(&policy());
    assert_eq!(next_action(&o, deadline, &policy()), Action::Expire);
    let c = decide(&o, Input::Cancel { reason: None }, &at(1)).unwrap();
    assert_eq!(c.order.state, OrderState::Cancelled);
    let r = decide(&with_hash(), Input::Cancel { reason: None }, &at(2)).unwrap_err();
    assert_eq!(r.code, RejectCode::PaymentClaimed);
    assert_eq!(
        next_action(&with_hash(), deadline, &policy()),
        Action::PollStatus
    );
}

#[test]
fn a_refused_payout_report_flags_and_slows_down() {
    let d = payout(&verified(), "ACH-1").unwrap();
    let o = intent(&d.order, Intent::ReportPayout);
    let d = observe(
        &o,
        refusal(Action::ReportPayout, "please enter correct amount"),
    );
    assert_eq!(d.order.state, OrderState::Processing);
    assert!(flag_of(&d).contains("correct amount"));
    let slow = t0() + chrono::Duration::from_std(policy().poll.parked_max).unwrap();
    assert_eq!(d.next_run, NextRun::At(slow));
}
