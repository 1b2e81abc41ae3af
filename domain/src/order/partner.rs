//! The Partner API's step plan (providers.md §4): a mint is a deposit request, its
//! confirmation, then the mint credit seen in the on-chain history; a redeem is the user's
//! transfer verified in that history, the tenant's payout, and its report to the API.
//!
//! Mint:
//! ```text
//! preparing ─deposit request─▶ (deposit stands) ─confirm YES─▶ processing ─credit seen─▶ completed
//!     │ 201 rejection / 4xx: failed       │ cancel: confirm NO ▶ cancelled
//!                                         │ 201 rejection / 400 invalidated: failed
//! ```
//!
//! The API has no idempotency key and no endpoint to read a deposit request, a
//! confirmation or a mint back, so crash recovery differs from Onmeta's lookups:
//! - an unanswered **deposit request** cannot be looked up. It is never sent again on a
//!   guess: the order is flagged for a person and, unless they act, ends `expired` at its
//!   deadline. (A deposit request that did arrive mints nothing without a confirmation.)
//! - an unanswered **confirmation** may have started the mint. It is never sent again:
//!   the history is searched for the order's credit (its memo is the deposit request id),
//!   and found, the order completes. Until then it is looked for on the lookup backoff
//!   and flagged after `attention_after_inconclusive_lookups` looks. It never expires: the
//!   money may be moving.
//!
//! Redeem:
//! ```text
//! awaiting_payment ─tx hash─▶ (verify in history) ─▶ processing (payout instructions)
//!     ─redeem.payout─▶ report the payout (PUT) ─▶ paid_out ─▶ completed
//! ```
//! - The order waits for the user's transfer hash (`offramp.txhash`), then reads the
//!   wallet's history: the hash must be there, `Completed`, not reverted, to the order's
//!   wallet, for its exact amount. A reverted transfer refuses the hash (upstream may send
//!   another); any other mismatch flags the order for a person.
//! - Verified, the order announces what fiat to pay to which transfer method (`processing`)
//!   and waits for the treasury's payout reference (`redeem.payout`); then it reports the
//!   payout with the fiat-transfer PUT, whose `transactionId` it records. The PUT is
//!   idempotent at the provider by our reference (the order id): an interrupted one is
//!   simply made again.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::builder::Builder;
use super::*;
use crate::schedule::chrono_duration;

/// The provider status of a confirmed mint (the confirmation's `paymentStatus`); the
/// API has no status to poll, so it is the only one a mint records.
pub const MINT_APPROVED: &str = "APPROVED";

/// A mint starts with its deposit request: the Partner API has no KYC, link or quote
/// steps of ours.
pub(super) const FIRST_STEP: PrepStep = PrepStep::CreateOrder;

pub(super) fn next_action(order: &Order, now: DateTime<Utc>, policy: &OrderPolicy) -> Action {
    use OrderState::*;
    if let OrderRequest::Redeem(_) = order.request {
        return match order.state {
            s if s.is_terminal() => Action::Nothing,
            AwaitingPayment if !order.payment_claimed() && now >= order.unpaid_deadline(policy) => {
                Action::Expire
            }
            Processing if order.payout_reference.is_some() => Action::ReportPayout,
            // Verify the transfer; or, waiting for a command, nothing to ask (the connector
            // answers without a call).
            _ => Action::PollStatus,
        };
    }
    match order.state {
        s if s.is_terminal() => Action::Nothing,
        Preparing
            if order.intent != Some(Intent::Confirm) && now >= order.unpaid_deadline(policy) =>
        {
            Action::Expire
        }
        Preparing => match (order.step, order.intent) {
            (_, Some(_)) => Action::FindProviderOrder,
            (PrepStep::Confirm, None) if order.cancel_requested.is_some() => Action::Decline,
            (PrepStep::Confirm, None) => Action::Confirm,
            (_, None) => Action::CreateOrder,
        },
        _ => Action::PollStatus,
    }
}

/// A redeem has nothing to prepare: it waits for the user's transfer from the start.
pub(super) fn created(d: &mut Builder) {
    if let OrderRequest::Redeem(_) = d.order.request {
        d.history("awaiting_transfer", json!({}));
        d.move_to(OrderState::AwaitingPayment);
    }
}

/// The treasury paid a redeem's fiat under `reference`: report it to the provider now.
/// The same reference again changes nothing; another one is refused.
pub(super) fn payout_reported(d: &mut Builder, reference: String) -> Result<(), Rejection> {
    if !matches!(d.order.request, OrderRequest::Redeem(_)) {
        return Err(Rejection::new(
            RejectCode::NotApplicable,
            format!(
                "a payout does not apply to a {} order",
                d.order.request.kind().as_str()
            ),
        ));
    }
    match &d.order.payout_reference {
        Some(r) if *r == reference => return Ok(()),
        Some(_) => {
            return Err(Rejection::new(
                RejectCode::PayoutAlreadySet,
                "a different payout reference was already reported for this order".into(),
            ));
        }
        None => {}
    }
    match d.order.state {
        OrderState::Processing => {}
        s if s.is_terminal() => {
            return Err(Rejection::new(
                RejectCode::OrderClosed,
                format!("order is {}", s.as_str()),
            ));
        }
        _ => {
            return Err(Rejection::new(
                RejectCode::NotApplicable,
                "the user's transfer is not verified yet: pay out only after `processing`".into(),
            ));
        }
    }
    d.history("payout_reported", json!({ "payout_reference": reference }));
    d.order.payout_reference = Some(reference);
    d.run_now();
    Ok(())
}

/// Upstream's cancel, where this plan differs from the shared rule: once the deposit
/// request stands it is declined first (the order ends `cancelled` when the provider has
/// answered), and while a confirmation is in flight it cannot be undone. `None`: the
/// shared rule applies.
pub(super) fn cancel(d: &mut Builder, reason: &Option<String>) -> Option<Result<(), Rejection>> {
    if d.order.state != OrderState::Preparing || d.order.step != PrepStep::Confirm {
        return None;
    }
    if d.order.intent == Some(Intent::Confirm) {
        return Some(Err(Rejection::new(
            RejectCode::PaymentInProgress,
            "the mint's confirmation may have reached the provider".into(),
        )));
    }
    if d.order.cancel_requested.is_some() {
        return Some(Ok(())); // already declining
    }
    let reason = reason
        .clone()
        .unwrap_or_else(|| "cancelled_by_upstream".into());
    d.history("cancel_requested", json!({ "reason": reason }));
    d.order.cancel_requested = Some(reason);
    d.run_now();
    Some(Ok(()))
}

/// Fold what this plan's calls return; the observation comes back when the shared fold
/// is to take it (failed calls, and what does not apply here).
pub(super) fn observe(d: &mut Builder, obs: Observation) -> Option<Observation> {
    use OrderState::*;
    let (state, step, intent) = (d.order.state, d.order.step, d.order.intent);
    match obs {
        Observation::Created(po) if state == Preparing && step == PrepStep::CreateOrder => {
            d.order.failures = 0;
            d.order.intent = None;
            d.history(
                "deposit_requested",
                json!({ "deposit_request_id": po.provider_order_id }),
            );
            d.order.provider_order_id = Some(po.provider_order_id);
            d.step(PrepStep::Confirm);
        }
        Observation::Confirmed { transaction_id }
            if state == Preparing && step == PrepStep::Confirm =>
        {
            confirmed(d, Some(transaction_id));
        }
        Observation::Declined if state == Preparing && step == PrepStep::Confirm => {
            d.order.failures = 0;
            d.history("deposit_request_declined", json!({}));
            d.order.reason = d.order.cancel_requested.take();
            d.move_to(Cancelled);
        }
        Observation::Chain(check) if is_redeem(d) => redeem_check(d, check),
        Observation::PayoutRecorded { transaction_id } if is_redeem(d) && state == Processing => {
            d.order.failures = 0;
            d.order.intent = None;
            d.history(
                "payout_recorded",
                json!({ "transaction_id": transaction_id }),
            );
            d.order.provider_transaction_id = Some(transaction_id);
            d.move_to(PaidOut);
            d.move_to(Completed);
        }
        Observation::Chain(check) if state == Processing => settlement(d, check),
        // The confirmation went unanswered; its credit in the history answers for it.
        Observation::Chain(check) if intent == Some(Intent::Confirm) => match check {
            ChainCheck::Settled { tx_hash } => {
                d.history("credit_found_after_interrupted_confirmation", json!({}));
                confirmed(d, None);
                settlement(d, ChainCheck::Settled { tx_hash });
            }
            ChainCheck::NotYet => d.inconclusive(
                "confirmation unanswered and no mint credit in the history yet; \
                 confirming again could mint twice"
                    .into(),
                None,
            ),
            ChainCheck::Doubtful { evidence } | ChainCheck::Failed { reason: evidence } => {
                d.inconclusive(evidence, None)
            }
        },
        Observation::Lookup(Lookup::Unanswerable { evidence })
            if state == Preparing && intent == Some(Intent::CreateOrder) =>
        {
            d.history("lookup_unanswerable", json!({ "evidence": evidence }));
            d.flag(format!(
                "interrupted deposit request: {evidence}; not repeated, so a person \
                 decides (cancel, or let the order expire)"
            ));
            // Nothing can be asked: the next look is at the deadline, which expires it.
            let deadline = d.order.unpaid_deadline(&d.ctx.policy);
            d.next = NextRun::At(deadline.max(d.ctx.now));
        }
        other => return Some(other),
    }
    None
}

fn is_redeem(d: &Builder) -> bool {
    matches!(d.order.request, OrderRequest::Redeem(_))
}

/// A look at a redeem: its transfer while awaiting it, nothing (a quiet wait for the
/// treasury's payout) once verified.
fn redeem_check(d: &mut Builder, check: ChainCheck) {
    use OrderState::*;
    let p = d.ctx.policy.poll;
    match (d.order.state, check) {
        (AwaitingPayment, ChainCheck::Settled { tx_hash }) if d.order.payment_claimed() => {
            d.order.failures = 0;
            d.history("transfer_verified", json!({ "tx_hash": tx_hash }));
            d.order.tx_hash = Some(tx_hash);
            // The payment window now bounds the wait for the treasury's payout (a flag).
            let window = d.ctx.policy.window(d.order.direction());
            d.order.expires_at = d.ctx.now + chrono_duration(window);
            d.move_to(Processing);
            d.run_after(p.parked_max);
        }
        (AwaitingPayment, ChainCheck::Failed { reason }) if d.order.payment_claimed() => {
            d.history("transfer_failed", json!({ "reason": reason }));
            d.order.deposit_tx_hash = None;
            d.emit(EventKind::PaymentRefRejected { reason });
            d.poll_later();
        }
        (AwaitingPayment, ChainCheck::Doubtful { evidence }) => {
            d.history("transfer_mismatch", json!({ "evidence": evidence }));
            d.flag(format!(
                "the user's transfer is not what the order expects: {evidence}"
            ));
            d.run_after(p.parked_max);
        }
        (AwaitingPayment, _) => d.poll_later(),
        (Processing, _) => {
            if d.ctx.now >= d.order.expires_at {
                d.flag("no payout reported within the payment window".into());
            }
            d.run_after(p.parked_max);
        }
        _ => d.history("stale_observation", json!({ "observation": "chain" })),
    }
}

/// The confirmation was accepted (or its credit found): the payment is approved and the
/// mint under way. The payment window now bounds the wait for the credit (a flag, never
/// an expiry: the money moved).
fn confirmed(d: &mut Builder, transaction_id: Option<String>) {
    d.order.failures = 0;
    d.order.intent = None;
    if transaction_id.is_some() {
        d.order.provider_transaction_id = transaction_id;
    }
    d.order.provider_status = Some(MINT_APPROVED.into());
    d.history(
        "confirmed",
        json!({ "transaction_id": d.order.provider_transaction_id }),
    );
    let window = d.ctx.policy.window(d.order.direction());
    d.order.expires_at = d.ctx.now + chrono_duration(window);
    d.move_to(OrderState::Processing);
}

fn settlement(d: &mut Builder, check: ChainCheck) {
    d.order.failures = 0;
    match check {
        ChainCheck::Settled { tx_hash } => {
            d.history("mint_credited", json!({ "tx_hash": tx_hash }));
            d.order.tx_hash = Some(tx_hash);
            d.move_to(OrderState::Completed);
        }
        ChainCheck::NotYet | ChainCheck::Failed { .. } => {
            if d.ctx.now >= d.order.expires_at {
                d.flag("no mint credit in the on-chain history within the payment window".into());
            }
            d.poll_later();
        }
        ChainCheck::Doubtful { evidence } => {
            d.history("mint_credit_doubtful", json!({ "evidence": evidence }));
            d.flag(format!("mint credit unclear: {evidence}"));
            d.poll_later();
        }
    }
}

/// A refusal of this plan's own calls (`None`: the shared rule applies). A refused
/// confirmation ends the order; a refused decline leaves nothing to undo (an unconfirmed
/// deposit request mints nothing), so the cancel completes.
pub(super) fn refused(d: &mut Builder, action: &Action, message: String) -> Option<()> {
    match action {
        Action::Confirm => {
            d.order.intent = None;
            d.order.reason = Some(message);
            d.fail("confirmation_rejected");
        }
        Action::Decline => {
            d.history("decline_refused", json!({ "message": message }));
            d.order.reason = d.order.cancel_requested.take();
            d.move_to(OrderState::Cancelled);
        }
        // The same report would be refused again: a person looks; it is tried again only
        // on the slow cadence (or at once by `retry-now`).
        Action::ReportPayout => {
            d.order.intent = None;
            d.flag(format!("the provider refused the payout report: {message}"));
            d.run_after(d.ctx.policy.poll.parked_max);
        }
        _ => return None,
    }
    Some(())
}
