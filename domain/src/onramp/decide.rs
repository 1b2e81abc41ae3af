//! Transition rules of the on-ramp machine.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::command::RejectCode;
use crate::schedule::{chrono_duration, poll_delay, retry_delay};

/// A new order in `Preparing`, with its `created` event and an immediate first step.
pub fn create(
    id: Uuid,
    tenant: &str,
    client_order_id: &str,
    request: Box<OnrampRequest>,
    ctx: &Ctx,
) -> Decision {
    let order = OnrampOrder {
        id,
        tenant: tenant.to_string(),
        client_order_id: client_order_id.to_string(),
        sm_version: SM_VERSION,
        request: *request,
        state: OnrampState::Preparing,
        step: PrepStep::CheckKyc,
        created_at: ctx.now,
        expires_at: ctx.now + chrono_duration(ctx.policy.payment_window),
        quote: None,
        provider_order_id: None,
        provider_status: None,
        payment: None,
        utr: None,
        intent: None,
        failures: 0,
        attention: None,
        reason: None,
        tx_hash: None,
        event_seq: 0,
    };
    let mut d = Builder::new(order, ctx);
    d.history("created", json!({ "sm_version": SM_VERSION }));
    d.emit(EventKind::StatusChanged {
        from: None,
        to: OnrampState::Preparing,
    });
    d.next = NextRun::At(ctx.now);
    d.finish()
}

/// What the shell should do next for this order.
pub fn next_action(order: &OnrampOrder, now: DateTime<Utc>, policy: &OnrampPolicy) -> Action {
    use OnrampState::*;
    if order.state.is_terminal() {
        return Action::Nothing;
    }
    let deadline = order.expires_at + chrono_duration(policy.expiry_grace);
    let unpaid = matches!(order.state, Preparing | AwaitingPayment) && order.utr.is_none();
    if unpaid && now >= deadline {
        return Action::Expire;
    }
    match order.state {
        Preparing => match order.step {
            PrepStep::CheckKyc => Action::CheckKyc,
            PrepStep::LinkPaymentMethod => Action::EnsurePaymentMethod,
            PrepStep::Quote => Action::FetchQuote,
            PrepStep::CreateOrder if order.intent == Some(Intent::CreateOrder) => {
                Action::FindProviderOrder
            }
            PrepStep::CreateOrder => Action::CreateOrder,
        },
        AwaitingPayment => match (&order.utr, order.intent) {
            (Some(_), Some(Intent::SubmitUtr)) => Action::FindProviderOrder,
            (Some(utr), _) => Action::SubmitUtr(utr.clone()),
            (None, _) => Action::PollStatus,
        },
        UtrSubmitted | Processing | Transferred => Action::PollStatus,
        Completed | Expired | Cancelled | Failed => Action::Nothing,
    }
}

/// Fold one input into the order.
///
/// Commands may be refused ([`Rejection`]); observations and timers never are: a stale or
/// unexpected observation is recorded and otherwise ignored, so a late reply can never
/// move an order backwards or out of a terminal state.
pub fn decide(order: &OnrampOrder, input: Input, ctx: &Ctx) -> Result<Decision, Rejection> {
    let mut d = Builder::new(order.clone(), ctx);
    match input {
        Input::SubmitUtr { utr } => submit_utr(&mut d, utr)?,
        Input::Cancel { reason } => cancel(&mut d, reason)?,
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
            observe(&mut d, *obs);
            d.keep_driving();
        }
        Input::Operator { by, reason, action } => operator(&mut d, by, reason, action)?,
    }
    Ok(d.finish())
}

/// An operator's action, recorded in the history and announced as an event. An action
/// that would change nothing (resolving an order that is not flagged) is a no-op.
fn operator(
    d: &mut Builder,
    by: String,
    reason: String,
    action: OperatorAction,
) -> Result<(), Rejection> {
    let state = d.order.state;
    match action {
        OperatorAction::Cancel if state == OnrampState::Cancelled => {
            return Err(reject(
                RejectCode::OrderClosed,
                "order is already cancelled".into(),
            ));
        }
        OperatorAction::Cancel => cancel(d, Some("cancelled_by_operator".into()))?,
        OperatorAction::Resolve => {
            let Some(was) = d.order.attention.take() else {
                return Ok(());
            };
            d.history("attention_resolved", json!({ "was": was }));
        }
        OperatorAction::RetryNow if state.is_terminal() => {
            return Err(reject(
                RejectCode::OrderClosed,
                format!("order is {}", state.as_str()),
            ));
        }
        OperatorAction::RetryNow => d.next = NextRun::At(d.ctx.now),
    }
    d.history(
        "operator_action",
        json!({ "action": action.as_str(), "by": by, "reason": reason }),
    );
    d.emit(EventKind::OperatorAction { action, by, reason });
    Ok(())
}

fn submit_utr(d: &mut Builder, utr: Utr) -> Result<(), Rejection> {
    use OnrampState::*;
    if d.order.utr.as_ref() == Some(&utr) {
        return Ok(()); // the same reference again: nothing to do
    }
    let state = d.order.state;
    if state.is_terminal() {
        return Err(reject(
            RejectCode::OrderClosed,
            format!("order is {}", state.as_str()),
        ));
    }
    if d.order.utr.is_some() {
        return Err(reject(
            RejectCode::UtrAlreadySet,
            "a different UTR was already received for this order".into(),
        ));
    }
    match state {
        Preparing => {
            // Kept until the provider order exists, then submitted.
            d.order.utr = Some(utr);
            d.history("utr_received", json!({ "submit": "after_provider_order" }));
        }
        AwaitingPayment => {
            d.order.utr = Some(utr);
            d.history("utr_received", json!({ "submit": "now" }));
            d.next = NextRun::At(d.ctx.now);
        }
        _ => {
            return Err(reject(
                RejectCode::OrderAlreadyPaid,
                format!(
                    "order is {}; the provider already has the payment",
                    state.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn cancel(d: &mut Builder, reason: Option<String>) -> Result<(), Rejection> {
    use OnrampState::*;
    match d.order.state {
        Cancelled => Ok(()),
        s if s.is_terminal() => Err(reject(
            RejectCode::OrderClosed,
            format!("order is {}", s.as_str()),
        )),
        Preparing | AwaitingPayment if d.order.utr.is_none() => {
            let reason = reason.unwrap_or_else(|| "cancelled_by_upstream".into());
            d.history("cancel", json!({ "reason": reason }));
            d.order.reason = Some(reason);
            d.move_to(Cancelled);
            Ok(())
        }
        Preparing | AwaitingPayment => Err(reject(
            RejectCode::PaymentClaimed,
            "a UTR was received; the order can no longer be cancelled".into(),
        )),
        s => Err(reject(
            RejectCode::PaymentInProgress,
            format!("order is {}", s.as_str()),
        )),
    }
}

fn deadline_passed(d: &mut Builder) {
    use OnrampState::*;
    let unpaid = matches!(d.order.state, Preparing | AwaitingPayment) && d.order.utr.is_none();
    if !unpaid {
        d.history(
            "deadline_ignored",
            json!({ "state": d.order.state.as_str() }),
        );
        return;
    }
    d.order.reason = Some("payment_window_elapsed".into());
    d.move_to(Expired);
}

fn observe(d: &mut Builder, obs: Observation) {
    use OnrampState::*;
    if d.order.state.is_terminal() {
        // Absorb, but keep the record complete: a provider order created by a call that
        // raced a cancel is still worth knowing about.
        if let Observation::Created(po) | Observation::Lookup(Some(FoundOrder { order: po, .. })) =
            &obs
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
    match obs {
        Observation::CallFailed(f) => call_failed(d, f),
        Observation::Kyc { verified } if expecting(d, PrepStep::CheckKyc) => {
            d.order.failures = 0;
            d.history("kyc_checked", json!({ "verified": verified }));
            if verified {
                d.step(PrepStep::LinkPaymentMethod);
            } else {
                d.fail("kyc_not_verified");
            }
        }
        Observation::PaymentMethod(link) if expecting(d, PrepStep::LinkPaymentMethod) => {
            d.order.failures = 0;
            match link {
                LinkResult::Linked => {
                    d.history("payment_method_linked", json!({}));
                    d.step(PrepStep::Quote);
                }
                LinkResult::Pending => {
                    d.history("payment_method_link_pending", json!({}));
                    d.poll_later();
                }
                LinkResult::Failed(why) => {
                    d.history("payment_method_link_failed", json!({ "reason": why }));
                    d.fail("payment_method_rejected");
                }
            }
        }
        Observation::Quoted(q) if expecting(d, PrepStep::Quote) => {
            d.order.failures = 0;
            d.history(
                "quoted",
                json!({ "received_tokens": q.received_tokens, "conversion_rate": q.conversion_rate }),
            );
            d.order.quote = Some(q);
            d.step(PrepStep::CreateOrder);
        }
        Observation::Created(po) if expecting(d, PrepStep::CreateOrder) => {
            provider_order(d, po, "created")
        }
        Observation::Lookup(found) => lookup(d, found),
        Observation::UtrAccepted if d.order.state == AwaitingPayment && d.order.utr.is_some() => {
            d.order.failures = 0;
            d.order.intent = None;
            d.history("utr_submitted", json!({}));
            d.move_to(UtrSubmitted);
        }
        Observation::Status { raw, tx_hash } if d.order.provider_order_id.is_some() => {
            status(d, raw, tx_hash)
        }
        other => d.history(
            "stale_observation",
            json!({ "observation": obs_name(&other) }),
        ),
    }
}

fn expecting(d: &Builder, step: PrepStep) -> bool {
    d.order.state == OnrampState::Preparing && d.order.step == step
}

fn provider_order(d: &mut Builder, po: ProviderOrder, how: &'static str) {
    d.order.failures = 0;
    d.order.intent = None;
    if let Some(at) = po.expires_at {
        d.order.expires_at = at;
    }
    d.history(how, json!({ "provider_order_id": po.provider_order_id }));
    d.order.payment = Some(PaymentInstructions {
        mode: d.order.request.payment.provider_mode().to_string(),
        amount: d.order.request.fiat_amount,
        upi_deep_link: po.upi_deep_link,
        qr_string: po.qr_string,
        bank: po.bank,
        expires_at: d.order.expires_at,
    });
    d.order.provider_order_id = Some(po.provider_order_id);
    d.order.provider_status = Some(ProviderStatus::FiatPending.as_str().to_string());
    d.move_to(OnrampState::AwaitingPayment);
    if d.order.utr.is_some() {
        d.next = NextRun::At(d.ctx.now); // a UTR arrived early: submit it now
    }
}

fn lookup(d: &mut Builder, found: Option<FoundOrder>) {
    use OnrampState::*;
    d.order.failures = 0;
    match (d.order.state, d.order.intent, found) {
        (Preparing, Some(Intent::CreateOrder), Some(f)) => {
            provider_order(d, f.order, "found_after_interrupted_create");
            if let Some(utr) = f.utr {
                d.history(
                    "provider_has_utr",
                    json!({ "matches": d.order.utr.as_ref().map(|u| u.as_str() == utr) }),
                );
            }
        }
        (Preparing, Some(Intent::CreateOrder), None) => {
            d.order.intent = None;
            d.history("not_found_after_interrupted_create", json!({}));
            d.next = NextRun::At(d.ctx.now);
        }
        (AwaitingPayment, Some(Intent::SubmitUtr), found) => {
            let ours = d.order.utr.as_ref().map(|u| u.as_str().to_string());
            let theirs = found.and_then(|f| f.utr);
            d.order.intent = None;
            if theirs.is_some() && theirs == ours {
                d.history("utr_found_after_interrupted_submit", json!({}));
                d.move_to(UtrSubmitted);
            } else {
                d.history("utr_not_found_after_interrupted_submit", json!({}));
                d.next = NextRun::At(d.ctx.now);
            }
        }
        _ => d.history("stale_observation", json!({ "observation": "lookup" })),
    }
}

fn status(d: &mut Builder, raw: String, tx_hash: Option<String>) {
    use OnrampState::*;
    d.order.failures = 0;
    if tx_hash.is_some() {
        d.order.tx_hash = tx_hash;
    }
    let known = match classify_status(&raw) {
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
    let target = known.state();
    let paid = d.order.state.rank() >= Processing.rank();
    if target.rank() > d.order.state.rank() {
        if matches!(target, Expired | Cancelled) {
            d.order.reason = Some(format!("provider_{}", target.as_str()));
            if paid || d.order.state == UtrSubmitted {
                // The user says they paid (or the provider saw the money) and yet the
                // order ended unpaid: a person must reconcile it.
                d.flag(format!(
                    "provider reported {} after payment",
                    target.as_str()
                ));
            }
        }
        d.move_to(target);
    }
    if !d.order.state.is_terminal() {
        d.poll_later();
    }
}

fn call_failed(d: &mut Builder, f: CallFailure) {
    use OnrampState::*;
    let action = next_action(&d.order, d.ctx.now, &d.ctx.policy);
    d.history(
        "provider_call_failed",
        json!({ "action": action.name(), "kind": format!("{:?}", f.kind), "message": f.message }),
    );
    if f.kind == FailureKind::Rejected {
        match (d.order.state, action) {
            (Preparing, Action::CreateOrder) => {
                // The provider refused outright: no order exists there.
                d.order.intent = None;
                d.order.reason = Some(f.message);
                d.fail("provider_rejected_order");
                return;
            }
            (Preparing, Action::CheckKyc | Action::EnsurePaymentMethod | Action::FetchQuote) => {
                d.order.reason = Some(f.message);
                let code = match d.order.step {
                    PrepStep::CheckKyc => "kyc_check_rejected",
                    PrepStep::LinkPaymentMethod => "payment_method_rejected",
                    _ => "quote_rejected",
                };
                d.fail(code);
                return;
            }
            (AwaitingPayment, Action::SubmitUtr(_)) => {
                d.order.utr = None;
                d.order.intent = None;
                d.emit(EventKind::UtrRejected { reason: f.message });
                d.poll_later();
                return;
            }
            _ => {} // a refused poll or lookup: treat like any other failure
        }
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
    d.next = NextRun::At(d.ctx.now + chrono_duration(delay));
}

fn reject(code: RejectCode, message: String) -> Rejection {
    Rejection { code, message }
}

fn obs_name(o: &Observation) -> &'static str {
    match o {
        Observation::Kyc { .. } => "kyc",
        Observation::PaymentMethod(_) => "payment_method",
        Observation::Quoted(_) => "quote",
        Observation::Created(_) => "created",
        Observation::Lookup(_) => "lookup",
        Observation::UtrAccepted => "utr_accepted",
        Observation::Status { .. } => "status",
        Observation::CallFailed(_) => "call_failed",
    }
}

/// Accumulates one decision.
struct Builder<'a> {
    order: OnrampOrder,
    ctx: &'a Ctx,
    history: Vec<History>,
    events: Vec<Emitted>,
    next: NextRun,
}

impl<'a> Builder<'a> {
    fn new(order: OnrampOrder, ctx: &'a Ctx) -> Self {
        Builder {
            order,
            ctx,
            history: Vec::new(),
            events: Vec::new(),
            next: NextRun::Keep,
        }
    }

    fn history(&mut self, kind: &'static str, detail: serde_json::Value) {
        self.history.push(History {
            kind,
            detail,
            transition: None,
        });
    }

    fn emit(&mut self, kind: EventKind) {
        self.order.event_seq += 1;
        self.events.push(Emitted {
            seq: self.order.event_seq,
            kind,
        });
    }

    /// Move forward (callers guarantee a higher rank) and announce it.
    fn move_to(&mut self, to: OnrampState) {
        let from = self.order.state;
        debug_assert!(to.rank() > from.rank() || from == to);
        if from == to {
            return;
        }
        self.order.state = to;
        if to.is_terminal() {
            // An interrupted call can no longer matter to a closed order; its intent stays
            // visible in the history.
            self.order.intent = None;
        }
        self.history.push(History {
            kind: "state_changed",
            detail: json!({ "from": from.as_str(), "to": to.as_str() }),
            transition: Some((from, to)),
        });
        self.emit(EventKind::StatusChanged {
            from: Some(from),
            to,
        });
        self.next = if to.is_terminal() {
            NextRun::Done
        } else {
            NextRun::At(
                self.ctx.now + chrono_duration(poll_delay(&self.ctx.policy.poll, self.ctx.jitter)),
            )
        };
    }

    fn step(&mut self, step: PrepStep) {
        self.order.step = step;
        self.next = NextRun::At(self.ctx.now);
    }

    fn fail(&mut self, code: &'static str) {
        let detail = self.order.reason.take();
        self.order.reason = Some(match detail {
            Some(d) if !d.is_empty() => format!("{code}: {d}"),
            _ => code.to_string(),
        });
        self.move_to(OnrampState::Failed);
    }

    /// Schedule the next regular poll, or run at once when a received UTR is waiting to
    /// be submitted (it may have arrived while this step was in flight).
    fn poll_later(&mut self) {
        let utr_waiting = self.order.state == OnrampState::AwaitingPayment
            && self.order.utr.is_some()
            && self.order.intent.is_none();
        self.next = NextRun::At(if utr_waiting {
            self.ctx.now
        } else {
            self.ctx.now + chrono_duration(poll_delay(&self.ctx.policy.poll, self.ctx.jitter))
        });
    }

    /// After a step of the executor a live order always has a next run: an observation
    /// that changed nothing must not leave the task due at once (a busy loop) nor stranded.
    fn keep_driving(&mut self) {
        if self.next == NextRun::Keep && !self.order.state.is_terminal() {
            self.poll_later();
        }
    }

    /// Flag the order for a person; announce it once per distinct reason.
    fn flag(&mut self, reason: String) {
        if self.order.attention.as_deref() == Some(reason.as_str()) {
            return;
        }
        self.order.attention = Some(reason.clone());
        self.history("attention", json!({ "reason": reason }));
        self.emit(EventKind::AttentionNeeded { reason });
    }

    fn finish(self) -> Decision {
        Decision {
            order: self.order,
            history: self.history,
            events: self.events,
            next_run: self.next,
        }
    }
}
