//! Folding provider observations into an order.
//!
//! Observations are facts about the provider, and they may be late or repeated: one that
//! no longer applies to the order's state is recorded as stale and changes nothing else.

use rust_decimal::Decimal;
use serde_json::json;

use super::builder::Builder;
use super::decide::expire_unpaid;
use super::status::initial_status;
use super::*;
use crate::schedule::{capped_exponential, chrono_duration, retry_delay};

pub(super) fn observe(d: &mut Builder, obs: Observation) {
    use OrderState::*;
    if d.order.state.is_terminal() {
        // Absorb, but keep the record complete: a provider order created by a call that
        // raced a cancel is still worth knowing about.
        let late = match &obs {
            Observation::Created(po) => Some(po),
            Observation::Lookup(Lookup::Found(f)) => Some(&f.order),
            _ => None,
        };
        if let Some(po) = late
            && d.order.provider_order_id.is_none()
        {
            d.order.provider_order_id = Some(po.provider_order_id.clone());
        }
        d.order.intent = None;
        d.history(
            "ignored_after_terminal",
            json!({ "observation": obs_name(&obs) }),
        );
        return;
    }
    let obs = match d.order.provider.plan {
        crate::provider::Plan::Partner => match super::partner::observe(d, obs) {
            None => return,
            Some(obs) => obs,
        },
        crate::provider::Plan::Onmeta => obs,
    };
    match obs {
        Observation::CallFailed(f) => call_failed(d, f),
        Observation::Kyc { verified, missing } if expecting(d, PrepStep::CheckKyc) => {
            kyc(d, verified, missing)
        }
        Observation::PaymentMethod(link) if expecting(d, PrepStep::LinkPaymentMethod) => {
            d.order.failures = 0;
            linked(d, link)
        }
        Observation::Quoted(q)
            if expecting(d, PrepStep::Quote) || expecting(d, PrepStep::CreateOrder) =>
        {
            quoted(d, q)
        }
        Observation::Created(po) if expecting(d, PrepStep::CreateOrder) => {
            provider_order(d, po, "created")
        }
        Observation::Lookup(found) => lookup(d, found),
        Observation::UtrAccepted if d.order.state == AwaitingPayment && d.order.utr.is_some() => {
            payment_ref_accepted(d, UtrSubmitted)
        }
        Observation::TxHashAccepted
            if d.order.state == AwaitingPayment && d.order.deposit_tx_hash.is_some() =>
        {
            payment_ref_accepted(d, TxHashSubmitted)
        }
        Observation::Status(report) if d.order.provider_order_id.is_some() => status(d, report),
        other => d.history(
            "stale_observation",
            json!({ "observation": obs_name(&other) }),
        ),
    }
}

/// Preparing at `step` (or waiting for KYC, which is the `CheckKyc` step).
fn expecting(d: &Builder, step: PrepStep) -> bool {
    d.order.state.is_preparing() && d.order.step == step
}

fn kyc(d: &mut Builder, verified: bool, missing: Vec<String>) {
    d.order.failures = 0;
    d.history(
        "kyc_checked",
        json!({ "verified": verified, "missing": missing }),
    );
    if verified {
        if d.order.state == OrderState::KycRequired {
            // The payment window starts now, not while the user was doing KYC.
            let window = d.ctx.policy.window(d.order.direction());
            d.order.expires_at = d.ctx.now + chrono_duration(window);
            d.move_to(OrderState::Preparing);
        }
        d.step(PrepStep::LinkPaymentMethod);
        return;
    }
    let now = d.ctx.now;
    let wait = d.order.kyc.get_or_insert_with(|| KycWait {
        since: now,
        checks: 0,
        missing: Vec::new(),
    });
    wait.checks += 1;
    wait.missing = missing;
    let checks = wait.checks;
    // Entering the state announces it (with what is missing) so upstream can send the
    // user to finish KYC.
    d.move_to(OrderState::KycRequired);
    let p = &d.ctx.policy;
    d.run_after(capped_exponential(
        p.kyc_recheck,
        p.kyc_recheck_cap,
        checks,
        d.ctx.jitter,
    ));
}

fn linked(d: &mut Builder, link: LinkResult) {
    match link {
        LinkResult::Linked => {
            d.order.link_reference = None;
            d.history("payment_method_linked", json!({}));
            d.step(PrepStep::Quote);
        }
        LinkResult::Pending { reference } => {
            d.history(
                "payment_method_link_pending",
                json!({ "reference": reference }),
            );
            d.order.link_reference = reference;
            d.poll_later();
        }
        LinkResult::Failed(why) => {
            d.history("payment_method_link_failed", json!({ "reason": why }));
            d.order.reason = Some(why);
            d.fail("payment_method_rejected");
        }
        LinkResult::NameMismatch => {
            d.history(
                "payment_method_link_failed",
                json!({ "reason": "name_mismatch" }),
            );
            d.fail("name_mismatch");
        }
    }
}

/// A quote, first or refreshed. The first one sets the reference rate; a later one that
/// moved further from it than the request allows ends the order.
fn quoted(d: &mut Builder, q: Quote) {
    d.order.failures = 0;
    let reference = *d.order.reference_rate.get_or_insert(q.conversion_rate);
    let moved = price_change_pct(reference, q.conversion_rate);
    d.history(
        "quoted",
        json!({
            "token_amount": q.token_amount,
            "fiat_amount": q.fiat_amount,
            "conversion_rate": q.conversion_rate,
            "moved_pct": moved,
        }),
    );
    if let Some(limit) = d.order.request.max_price_change_pct()
        && moved > limit
    {
        d.order.reason = Some(format!(
            "rate moved {moved}% from {reference}; limit {limit}%"
        ));
        d.fail("price_moved");
        return;
    }
    d.order.quote = Some(q);
    d.step(PrepStep::CreateOrder);
}

/// Absolute change from `reference` to `rate`, in percent, rounded to 4 places.
fn price_change_pct(reference: Decimal, rate: Decimal) -> Decimal {
    if reference.is_zero() {
        return Decimal::ZERO;
    }
    ((rate - reference).abs() / reference * Decimal::ONE_HUNDRED).round_dp(4)
}

fn provider_order(d: &mut Builder, po: ProviderOrder, how: &'static str) {
    d.order.failures = 0;
    d.order.intent = None;
    let window = d.ctx.policy.window(d.order.direction());
    d.order.expires_at = po.expires_at.unwrap_or(d.ctx.now + chrono_duration(window));
    d.history(how, json!({ "provider_order_id": po.provider_order_id }));
    match &d.order.request {
        OrderRequest::Onramp(r) => {
            d.order.payment = Some(PaymentInstructions {
                mode: r.payment.provider_mode().to_string(),
                amount: r.fiat_amount,
                upi_deep_link: po.upi_deep_link,
                qr_string: po.qr_string,
                bank: po.bank,
                expires_at: d.order.expires_at,
            });
        }
        OrderRequest::Offramp(r) => match po.deposit_address {
            Some(address) => {
                d.order.deposit = Some(DepositInstructions {
                    address,
                    token: r.token.clone(),
                    chain_id: r.chain_id,
                    token_amount: r.token_amount.value(),
                    expires_at: d.order.expires_at,
                });
            }
            None => d.flag("provider order has no deposit address".into()),
        },
        // The Partner plan folds its own calls (`partner.rs`).
        OrderRequest::Mint(_) | OrderRequest::Redeem(_) => {}
    }
    d.order.provider_order_id = Some(po.provider_order_id);
    d.order.provider_status = Some(initial_status(d.order.direction()).to_string());
    d.move_to(OrderState::AwaitingPayment);
    if d.order.payment_claimed() {
        d.run_now(); // a payment reference arrived early: submit it now
    }
}

fn lookup(d: &mut Builder, result: Lookup) {
    use OrderState::*;
    let submitting = matches!(
        d.order.intent,
        Some(Intent::SubmitUtr | Intent::SubmitTxHash)
    );
    match (d.order.state, d.order.intent, result) {
        (Preparing, Some(Intent::CreateOrder), Lookup::Found(f)) => {
            provider_order(d, f.order, "found_after_interrupted_create");
            if let Some(theirs) = f.payment_ref {
                let matches = our_payment_ref(&d.order).is_some_and(|o| same_ref(&o, &theirs));
                d.history("provider_has_payment_ref", json!({ "matches": matches }));
            }
        }
        (Preparing, Some(Intent::CreateOrder), Lookup::NotFound) => {
            // A complete search: the interrupted create never reached the provider.
            d.order.failures = 0;
            d.order.intent = None;
            d.history("not_found_after_interrupted_create", json!({}));
            d.run_now();
        }
        (AwaitingPayment, Some(_), Lookup::Found(f)) if submitting => {
            d.order.failures = 0;
            d.order.intent = None;
            let ours = our_payment_ref(&d.order);
            let submitted = match d.order.direction() {
                Direction::Onramp => UtrSubmitted,
                Direction::Offramp => TxHashSubmitted,
            };
            match (ours, f.payment_ref) {
                (Some(o), Some(t)) if same_ref(&o, &t) => {
                    d.history("payment_ref_found_after_interrupted_submit", json!({}));
                    d.move_to(submitted);
                }
                (None, Some(_)) => {
                    d.history("stale_observation", json!({ "observation": "lookup" }));
                }
                (Some(_), Some(_)) => {
                    // The provider's order holds another reference. Submitting ours over it
                    // could pay twice or not at all: the provider's status decides from
                    // here, and a person reconciles.
                    d.history(
                        "provider_holds_other_payment_ref",
                        json!({ "provider_order_id": f.order.provider_order_id }),
                    );
                    d.flag("provider holds a different payment reference for this order".into());
                    d.move_to(submitted);
                }
                (_, None) => {
                    // The order's own row, read whole, holds no reference: not submitted.
                    d.history("payment_ref_not_found_after_interrupted_submit", json!({}));
                    d.run_now();
                }
            }
        }
        (AwaitingPayment, Some(_), Lookup::NotFound) if submitting => {
            // The provider order exists (we hold its id), so a search that missed it
            // proves nothing about the submission.
            d.inconclusive(
                "the provider order's own row was not in its order list".into(),
                None,
            )
        }
        (Preparing | AwaitingPayment, Some(_), Lookup::Inconclusive { evidence, progress }) => {
            // A search that read further than the last one is not stuck: it starts the
            // count towards the flag (and the backoff) afresh.
            if progress.is_some() && progress != d.order.lookup_progress {
                d.order.failures = 0;
            }
            d.order.lookup_progress = progress;
            d.inconclusive(evidence, None)
        }
        _ => d.history("stale_observation", json!({ "observation": "lookup" })),
    }
}

fn our_payment_ref(o: &Order) -> Option<String> {
    o.utr
        .as_ref()
        .map(|u| u.as_str().to_string())
        .or_else(|| o.deposit_tx_hash.as_ref().map(|h| h.as_str().to_string()))
}

/// Hex hashes may come back in another case; UTRs are digits.
fn same_ref(ours: &str, theirs: &str) -> bool {
    ours.eq_ignore_ascii_case(theirs.trim())
}

fn payment_ref_accepted(d: &mut Builder, to: OrderState) {
    d.order.failures = 0;
    d.order.intent = None;
    d.history("payment_ref_submitted", json!({}));
    d.move_to(to);
}

/// A provider callback: the fact a status poll returns, arriving on the provider's schedule
/// instead of ours, so possibly late, repeated or out of order. It is folded exactly like a
/// poll's result (states only move forward, a terminal order absorbs it), which makes a
/// callback that disagrees with a later poll harmless: whichever is further along wins,
/// and neither can move the order back.
///
/// One that tells nothing new decides nothing: no history, no write, and the next poll
/// stays when it was (a repeated callback costs no database write). Polling remains the
/// source of truth and is never stopped by a callback. A callback is left to the polls
/// (decides nothing) when the order has no provider order yet, is closed, or has a call
/// in flight (an intent): that call's own result must be folded first, and the poll that
/// follows it sees what the callback said.
pub(super) fn callback(d: &mut Builder, report: StatusReport) {
    let o = &d.order;
    let newer = |seen: &Option<String>, now: &Option<String>| now.is_some() && now != seen;
    let news = o.provider_status.as_deref() != Some(report.raw.as_str())
        || newer(&o.tx_hash, &report.tx_hash)
        || newer(&o.payout_reference, &report.payout_reference)
        || newer(&o.refund_address, &report.refund_address);
    let applies = o.provider_order_id.is_some() && !o.state.is_terminal() && o.intent.is_none();
    if !(news && applies) {
        return;
    }
    d.history("provider_callback", json!({ "status": report.raw }));
    status(d, report);
}

fn status(d: &mut Builder, report: StatusReport) {
    use OrderState::*;
    d.order.failures = 0;
    let StatusReport {
        raw,
        tx_hash,
        payout_reference,
        refund_address,
    } = report;
    if tx_hash.is_some() {
        d.order.tx_hash = tx_hash;
    }
    if payout_reference.is_some() {
        d.order.payout_reference = payout_reference;
    }
    if refund_address.is_some() {
        d.order.refund_address = refund_address;
    }
    let target = match classify_status(d.order.direction(), &raw) {
        StatusClass::Known(s) => s,
        StatusClass::NearMiss(_) | StatusClass::Unknown => {
            d.history("unknown_provider_status", json!({ "status": raw }));
            d.flag(format!("unknown provider status {raw:?}"));
            d.poll_later();
            return;
        }
    };
    if d.order.provider_status.as_deref() != Some(raw.as_str()) {
        d.history("provider_status", json!({ "status": raw }));
        d.order.provider_status = Some(raw);
    }
    if target.rank() > d.order.state.rank() {
        if matches!(target, Expired | Cancelled | Refunded) {
            d.order.reason = Some(format!("provider_{}", target.as_str()));
        }
        if matches!(target, Expired | Cancelled) && d.order.payment_claimed() {
            // The user says they paid (or the provider saw the money) and yet the order
            // ended unpaid: a person must reconcile it.
            d.flag(format!(
                "provider reported {} after payment",
                target.as_str()
            ));
        }
        d.move_to(target);
    }
    if d.order.state == AwaitingPayment
        && !d.order.payment_claimed()
        && d.ctx.now >= d.order.unpaid_deadline(&d.ctx.policy)
    {
        // The provider still waits for a payment that is past our window.
        expire_unpaid(d);
    }
    if !d.order.state.is_terminal() {
        d.poll_later();
    }
}

fn call_failed(d: &mut Builder, f: CallFailure) {
    use OrderState::*;
    if f.kind == FailureKind::Deferred {
        // Not a failure and not news: the same step later, with no record (a quiet write).
        d.run_after(f.retry_after.unwrap_or(crate::budget::DEFAULT_PAUSE));
        return;
    }
    let action = f
        .action
        .clone()
        .unwrap_or_else(|| next_action(&d.order, d.ctx.now, &d.ctx.policy));
    d.history(
        "provider_call_failed",
        json!({ "action": action.name(), "kind": format!("{:?}", f.kind), "message": f.message }),
    );
    if f.kind == FailureKind::Rejected {
        if d.order.provider.plan == crate::provider::Plan::Partner
            && super::partner::refused(d, &action, f.message.clone()).is_some()
        {
            return;
        }
        match (d.order.state, &action) {
            (Preparing, Action::CreateOrder) => {
                // The provider refused outright: no order exists there.
                d.order.intent = None;
                d.order.reason = Some(f.message);
                d.fail("provider_rejected_order");
                return;
            }
            (
                Preparing | KycRequired,
                Action::CheckKyc
                | Action::EnsurePaymentMethod
                | Action::PollLink(_)
                | Action::FetchQuote,
            ) => {
                d.order.reason = Some(f.message);
                let code = match d.order.step {
                    PrepStep::CheckKyc => "kyc_check_rejected",
                    PrepStep::LinkPaymentMethod => "payment_method_rejected",
                    _ => "quote_rejected",
                };
                d.fail(code);
                return;
            }
            (AwaitingPayment, Action::SubmitUtr(_) | Action::SubmitTxHash(_)) => {
                d.order.utr = None;
                d.order.deposit_tx_hash = None;
                d.order.intent = None;
                d.emit(EventKind::PaymentRefRejected { reason: f.message });
                d.poll_later();
                return;
            }
            _ => {} // a refused poll or lookup: treat like any other failure
        }
    }
    if action == Action::FindProviderOrder && d.order.intent.is_some() {
        let evidence = format!("lookup call failed ({:?}): {}", f.kind, f.message);
        return d.inconclusive(evidence, f.retry_after);
    }
    d.order.failures = d.order.failures.saturating_add(1);
    if d.order.failures == d.ctx.policy.poll.attention_after_errors {
        d.flag(format!(
            "{} consecutive provider failures",
            d.order.failures
        ));
    }
    let delay = retry_delay(
        &d.ctx.policy.poll,
        d.order.failures,
        f.retry_after,
        d.ctx.jitter,
    );
    d.run_after(delay);
}

fn obs_name(o: &Observation) -> &'static str {
    match o {
        Observation::Kyc { .. } => "kyc",
        Observation::PaymentMethod(_) => "payment_method",
        Observation::Quoted(_) => "quote",
        Observation::Created(_) => "created",
        Observation::Lookup(_) => "lookup",
        Observation::UtrAccepted => "utr_accepted",
        Observation::TxHashAccepted => "tx_hash_accepted",
        Observation::Status(_) => "status",
        Observation::Confirmed { .. } => "confirmed",
        Observation::Declined => "declined",
        Observation::PayoutRecorded { .. } => "payout_recorded",
        Observation::Chain(_) => "chain",
        Observation::CallFailed(_) => "call_failed",
    }
}
