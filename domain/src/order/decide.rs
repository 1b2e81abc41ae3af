//! Entry points of the order machine: creating an order, choosing the next action, and
//! folding commands and timers. Provider observations are folded in `observe.rs`.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::builder::Builder;
use super::*;
use crate::chain_values::TxHash;
use crate::command::RejectCode;
use crate::provider::{Plan, ProviderRef, RequestKind};
use crate::schedule::chrono_duration;
use crate::values::ChainFamily;

/// A new order in `Preparing` at `provider`, with its `created` event and an immediate
/// first step. The shell only asks for plans that serve the request (`Plan::serves`).
pub fn create(
    id: Uuid,
    tenant: &str,
    client_order_id: &str,
    provider: ProviderRef,
    request: OrderRequest,
    ctx: &Ctx,
) -> Decision {
    debug_assert!(provider.plan.serves(request.kind()));
    let window = ctx.policy.window(request.direction());
    let first_step = match provider.plan {
        Plan::Onmeta => PrepStep::CheckKyc,
        Plan::Partner => super::partner::FIRST_STEP,
    };
    let order = Order {
        id,
        tenant: tenant.to_string(),
        client_order_id: client_order_id.to_string(),
        sm_version: SM_VERSION,
        provider,
        request,
        state: OrderState::Preparing,
        step: first_step,
        created_at: ctx.now,
        expires_at: ctx.now + chrono_duration(window),
        kyc: None,
        link_reference: None,
        quote: None,
        reference_rate: None,
        provider_order_id: None,
        provider_status: None,
        payment: None,
        deposit: None,
        utr: None,
        deposit_tx_hash: None,
        intent: None,
        failures: 0,
        attention: None,
        reason: None,
        tx_hash: None,
        payout_reference: None,
        provider_transaction_id: None,
        cancel_requested: None,
        refund_address: None,
        predecessor: None,
        successor: None,
        late_utr: None,
        lookup_progress: None,
        event_seq: 0,
    };
    let mut d = Builder::new(order, ctx);
    d.history("created", json!({ "sm_version": SM_VERSION }));
    d.emit(EventKind::StatusChanged {
        from: None,
        to: OrderState::Preparing,
    });
    d.run_now();
    if d.order.provider.plan == Plan::Partner {
        super::partner::created(&mut d);
    }
    d.finish()
}

/// What the shell should do next for this order: its provider's plan says.
pub fn next_action(order: &Order, now: DateTime<Utc>, policy: &OrderPolicy) -> Action {
    match order.provider.plan {
        Plan::Onmeta => super::onmeta::next_action(order, now, policy),
        Plan::Partner => super::partner::next_action(order, now, policy),
    }
}

/// Fold one input into the order.
///
/// Commands may be refused ([`Rejection`]); observations and timers never are: a stale or
/// unexpected observation is recorded and otherwise ignored, so a late reply can never
/// move an order backwards or out of a terminal state.
pub fn decide(order: &Order, input: Input, ctx: &Ctx) -> Result<Decision, Rejection> {
    let mut d = Builder::new(order.clone(), ctx);
    match input {
        Input::SubmitUtr { utr } => submit_utr(&mut d, utr)?,
        Input::SubmitTxHash { hash } => submit_tx_hash(&mut d, &hash)?,
        Input::Cancel { reason } => cancel(&mut d, reason)?,
        Input::PayoutReported { reference } => super::partner::payout_reported(&mut d, reference)?,
        Input::Intent(_) if order.state.is_terminal() => {}
        Input::Intent(intent) => {
            d.order.intent = Some(intent);
            d.history("intent", json!({ "intent": intent }));
        }
        Input::DeadlinePassed => {
            deadline_passed(&mut d);
            d.keep_driving();
        }
        Input::Observed(obs) => {
            super::observe::observe(&mut d, *obs);
            d.keep_driving();
        }
        Input::Callback(report) => super::observe::callback(&mut d, report),
        Input::Operator { by, reason, action } => {
            super::operator::operator(&mut d, by, reason, action)?
        }
    }
    Ok(d.finish())
}

/// Fold `inputs` one after another, each decided on the order the one before left, into
/// one decision: the history and events of all of them in turn, the last order, and the
/// last schedule any of them set. Committing it is committing each of them, at once.
///
/// The executor uses it to run an order's immediate steps (KYC, link, quote, and the intent
/// of the create call) within one lease, as one write; after a version conflict it folds
/// the same inputs again on the fresh order, as it would decide one observation again.
/// Any refusal refuses the whole fold, and so does a second successor order (only one
/// can be written with a decision).
pub fn decide_all(order: &Order, inputs: &[Input], ctx: &Ctx) -> Result<Decision, Rejection> {
    let Some((first, rest)) = inputs.split_first() else {
        return Ok(Builder::new(order.clone(), ctx).finish());
    };
    let mut folded = decide(order, first.clone(), ctx)?;
    for input in rest {
        let next = decide(&folded.order, input.clone(), ctx)?;
        if folded.spawned.is_some() && next.spawned.is_some() {
            return Err(Rejection::new(
                RejectCode::NotApplicable,
                "two successor orders in one write".into(),
            ));
        }
        folded = then(folded, next);
    }
    if let NextRun::At(at) = folded.next_run {
        folded.urgency = folded.order.urgency(at, &ctx.policy);
    }
    Ok(folded)
}

/// `first` followed by `next`, which was decided on `first`'s order: both histories and
/// both events in turn, `next`'s order, and the later schedule that was set (`next`'s,
/// unless it keeps the one `first` set).
fn then(first: Decision, next: Decision) -> Decision {
    let (next_run, urgency) = match next.next_run {
        NextRun::Keep => (first.next_run, first.urgency),
        _ => (next.next_run, next.urgency),
    };
    let mut history = first.history;
    history.extend(next.history);
    let mut events = first.events;
    events.extend(next.events);
    Decision {
        order: next.order,
        history,
        events,
        next_run,
        urgency,
        spawned: first.spawned.or(next.spawned),
    }
}

fn wrong_direction(d: &Builder, what: &str) -> Rejection {
    Rejection::new(
        RejectCode::NotApplicable,
        format!(
            "{what} does not apply to a {} order",
            d.order.request.kind().as_str()
        ),
    )
}

fn submit_utr(d: &mut Builder, utr: Utr) -> Result<(), Rejection> {
    use OrderState::*;
    if d.order.request.kind() != RequestKind::Onramp {
        return Err(wrong_direction(d, "a UTR"));
    }
    if d.order.utr.as_ref() == Some(&utr) {
        return Ok(()); // the same reference again: nothing to do
    }
    let state = d.order.state;
    if state == Expired && d.order.utr.is_none() {
        return late_utr(d, utr);
    }
    if state.is_terminal() {
        return Err(Rejection::new(
            RejectCode::OrderClosed,
            format!("order is {}", state.as_str()),
        ));
    }
    if d.order.utr.is_some() {
        return Err(Rejection::new(
            RejectCode::UtrAlreadySet,
            "a different UTR was already received for this order".into(),
        ));
    }
    accept_payment_ref(d, |o| o.utr = Some(utr))
}

/// Keep a payment reference: submit it now when the provider order exists, after its
/// creation otherwise.
fn accept_payment_ref(d: &mut Builder, keep: impl FnOnce(&mut Order)) -> Result<(), Rejection> {
    use OrderState::*;
    match d.order.state {
        Preparing | KycRequired => {
            keep(&mut d.order);
            d.history(
                "payment_ref_received",
                json!({ "submit": "after_provider_order" }),
            );
            Ok(())
        }
        AwaitingPayment => {
            keep(&mut d.order);
            d.history("payment_ref_received", json!({ "submit": "now" }));
            d.run_now();
            Ok(())
        }
        s => Err(Rejection::new(
            RejectCode::OrderAlreadyPaid,
            format!(
                "order is {}; the provider already has the payment",
                s.as_str()
            ),
        )),
    }
}

/// A UTR for an order that expired unpaid. The provider's rule (providers.md §1.3): the
/// user may pay into a *new* order of the same amount with the old UTR. The successor is
/// created in the same transaction, carries the UTR, and both orders name each other.
fn late_utr(d: &mut Builder, utr: Utr) -> Result<(), Rejection> {
    if let Some(successor) = d.order.successor {
        if d.order.late_utr.as_ref() == Some(&utr) {
            return Ok(()); // the same late UTR again: the successor already carries it
        }
        return Err(Rejection::new(
            RejectCode::UtrAlreadySet,
            format!("a late UTR was already moved to successor order {successor}"),
        ));
    }
    let successor_id = d.order.successor_id();
    let mut next = create(
        successor_id,
        &d.order.tenant,
        &format!("{}:successor", d.order.client_order_id),
        d.order.provider.clone(),
        d.order.request.clone(),
        d.ctx,
    );
    next.order.utr = Some(utr.clone());
    next.order.predecessor = Some(d.order.id);
    next.history.push(History {
        kind: "carries_late_utr",
        detail: json!({ "predecessor": d.order.id }),
        transition: None,
    });
    d.order.successor = Some(successor_id);
    d.order.late_utr = Some(utr);
    d.history("successor_created", json!({ "successor": successor_id }));
    d.emit(EventKind::SuccessorCreated {
        successor: successor_id,
    });
    d.spawned = Some(Box::new(next));
    Ok(())
}

fn submit_tx_hash(d: &mut Builder, raw: &str) -> Result<(), Rejection> {
    let family = match (d.order.request.kind(), d.order.request.chain_id()) {
        (RequestKind::Offramp, Some(chain)) => chain.family().ok_or_else(|| {
            Rejection::new(
                RejectCode::InvalidField,
                format!("chain {chain} has no known hash format"),
            )
        })?,
        // The Partner API's ledger is an EVM chain (its history names 0x hashes).
        (RequestKind::Redeem, _) => ChainFamily::Evm,
        _ => return Err(wrong_direction(d, "a transaction hash")),
    };
    let hash = TxHash::parse(family, raw)
        .map_err(|e| Rejection::new(RejectCode::InvalidTxHash, e.to_string()))?;
    if d.order.deposit_tx_hash.as_ref() == Some(&hash) {
        return Ok(());
    }
    let state = d.order.state;
    if state.is_terminal() {
        return Err(Rejection::new(
            RejectCode::OrderClosed,
            format!("order is {}", state.as_str()),
        ));
    }
    if d.order.deposit_tx_hash.is_some() {
        return Err(Rejection::new(
            RejectCode::TxHashAlreadySet,
            "a different transaction hash was already received for this order".into(),
        ));
    }
    accept_payment_ref(d, |o| o.deposit_tx_hash = Some(hash))
}

pub(super) fn cancel(d: &mut Builder, reason: Option<String>) -> Result<(), Rejection> {
    use OrderState::*;
    if d.order.provider.plan == Plan::Partner
        && let Some(answer) = super::partner::cancel(d, &reason)
    {
        return answer;
    }
    match d.order.state {
        Cancelled => Ok(()),
        s if s.is_terminal() => Err(Rejection::new(
            RejectCode::OrderClosed,
            format!("order is {}", s.as_str()),
        )),
        Preparing | KycRequired | AwaitingPayment if !d.order.payment_claimed() => {
            let reason = reason.unwrap_or_else(|| "cancelled_by_upstream".into());
            d.history("cancel", json!({ "reason": reason }));
            d.order.reason = Some(reason);
            d.move_to(Cancelled);
            Ok(())
        }
        Preparing | KycRequired | AwaitingPayment => Err(Rejection::new(
            RejectCode::PaymentClaimed,
            "a payment reference was received; the order can no longer be cancelled".into(),
        )),
        s => Err(Rejection::new(
            RejectCode::PaymentInProgress,
            format!("order is {}", s.as_str()),
        )),
    }
}

fn deadline_passed(d: &mut Builder) {
    use OrderState::*;
    let now = d.ctx.now;
    match d.order.state {
        KycRequired
            if super::onmeta::kyc_deadline(&d.order, &d.ctx.policy).is_some_and(|t| now >= t) =>
        {
            d.fail("kyc_timeout");
        }
        Preparing | AwaitingPayment
            if !d.order.payment_claimed() && now >= d.order.unpaid_deadline(&d.ctx.policy) =>
        {
            expire_unpaid(d);
        }
        s => d.history("deadline_ignored", json!({ "state": s.as_str() })),
    }
}

pub(super) fn expire_unpaid(d: &mut Builder) {
    d.order.reason = Some(
        match d.order.direction() {
            Direction::Onramp => "payment_window_elapsed",
            Direction::Offramp => "deposit_window_elapsed",
        }
        .into(),
    );
    d.move_to(OrderState::Expired);
}
