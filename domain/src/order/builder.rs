//! Accumulates one [`Decision`]: history rows, events, the next run.

use serde_json::json;

use super::*;
use crate::schedule::{chrono_duration, parked_delay, poll_delay, retry_delay};

pub(super) struct Builder<'a> {
    pub order: Order,
    pub ctx: &'a Ctx,
    history: Vec<History>,
    events: Vec<Emitted>,
    pub next: NextRun,
    pub spawned: Option<Box<Decision>>,
}

impl<'a> Builder<'a> {
    pub fn new(order: Order, ctx: &'a Ctx) -> Self {
        Builder {
            order,
            ctx,
            history: Vec::new(),
            events: Vec::new(),
            next: NextRun::Keep,
            spawned: None,
        }
    }

    pub fn history(&mut self, kind: &'static str, detail: serde_json::Value) {
        self.history.push(History {
            kind,
            detail,
            transition: None,
        });
    }

    pub fn emit(&mut self, kind: EventKind) {
        self.order.event_seq += 1;
        self.events.push(Emitted {
            seq: self.order.event_seq,
            kind,
        });
    }

    /// Move to `to` and announce it. Callers guarantee the rank does not drop; the only
    /// same-rank moves are between `preparing` and `kyc_required`.
    pub fn move_to(&mut self, to: OrderState) {
        let from = self.order.state;
        debug_assert!(to.rank() >= from.rank(), "{from:?} -> {to:?}");
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
            NextRun::At(self.next_check())
        };
    }

    /// Go on with the next preparation step at once.
    pub fn step(&mut self, step: PrepStep) {
        self.order.step = step;
        self.next = NextRun::At(self.ctx.now);
    }

    pub fn run_now(&mut self) {
        self.next = NextRun::At(self.ctx.now);
    }

    pub fn run_after(&mut self, delay: std::time::Duration) {
        self.next = NextRun::At(self.ctx.now + chrono_duration(delay));
    }

    /// End the order `failed` with `code` (and the provider's words, when there are any).
    pub fn fail(&mut self, code: &'static str) {
        let detail = self.order.reason.take();
        self.order.reason = Some(match detail {
            Some(d) if !d.is_empty() => format!("{code}: {d}"),
            _ => code.to_string(),
        });
        self.move_to(OrderState::Failed);
    }

    /// Schedule the next regular poll, or run at once when the user's payment reference
    /// is waiting to be submitted (it may have arrived while this step was in flight).
    pub fn poll_later(&mut self) {
        if self.order.state == OrderState::AwaitingPayment
            && self.order.payment_claimed()
            && self.order.intent.is_none()
        {
            self.run_now();
        } else {
            self.next = NextRun::At(self.next_check());
        }
    }

    /// When to look at the provider's side of this order again, by what it waits for:
    /// parked for the user's payment (no UTR or deposit hash yet), ever more slowly, but
    /// never past its deadline, where the order is checked once to end it; otherwise on
    /// the provider's regular cadence.
    fn next_check(&self) -> DateTime<Utc> {
        let (o, now, policy) = (&self.order, self.ctx.now, &self.ctx.policy);
        let regular = now + chrono_duration(poll_delay(&policy.poll, self.ctx.jitter));
        let parked = o.state == OrderState::AwaitingPayment && !o.payment_claimed();
        let deadline = o.unpaid_deadline(policy);
        if !parked || deadline <= now {
            return regular;
        }
        let waited = (now - o.created_at).to_std().unwrap_or_default();
        let delay = parked_delay(&policy.poll, waited, self.ctx.jitter);
        (now + chrono_duration(delay)).max(regular).min(deadline)
    }

    /// After a step of the executor a live order always has a next run: an observation
    /// that changed nothing must not leave the task due at once (a busy loop) nor stranded.
    pub fn keep_driving(&mut self) {
        if self.next == NextRun::Keep && !self.order.state.is_terminal() {
            self.poll_later();
        }
    }

    /// A lookup that established nothing (an inconclusive search, or a failed lookup call).
    /// The intent stays, so the next step is another lookup on the backoff schedule, never the
    /// create or submission itself; past `attention_after_inconclusive_lookups` a person is
    /// asked to look, with the evidence in the timeline.
    pub fn inconclusive(&mut self, evidence: String, retry_after: Option<std::time::Duration>) {
        self.order.failures = self.order.failures.saturating_add(1);
        let attempts = self.order.failures;
        self.history(
            "lookup_inconclusive",
            json!({ "attempts": attempts, "evidence": evidence }),
        );
        if attempts == self.ctx.policy.poll.attention_after_inconclusive_lookups {
            let call = match self.order.intent {
                Some(Intent::CreateOrder) => "create",
                Some(Intent::Confirm) => "confirmation",
                _ => "payment reference submission",
            };
            self.flag(format!(
                "interrupted {call} unconfirmed after {attempts} failed or inconclusive calls; \
             not repeated: {evidence}"
            ));
        }
        let delay = retry_delay(
            &self.ctx.policy.poll,
            attempts,
            retry_after,
            self.ctx.jitter,
        );
        self.run_after(delay);
    }

    /// Flag the order for a person; announce it once per distinct reason.
    pub fn flag(&mut self, reason: String) {
        if self.order.attention.as_deref() == Some(reason.as_str()) {
            return;
        }
        self.order.attention = Some(reason.clone());
        self.history("attention", json!({ "reason": reason }));
        self.emit(EventKind::AttentionNeeded { reason });
    }

    pub fn finish(mut self) -> Decision {
        if self.order.intent.is_none() {
            // A lookup's progress belongs to the intent it settles.
            self.order.lookup_progress = None;
        }
        let urgency = match self.next {
            NextRun::At(at) => self.order.urgency(at, &self.ctx.policy),
            NextRun::Keep | NextRun::Done => Urgency::Moving,
        };
        Decision {
            order: self.order,
            history: self.history,
            events: self.events,
            next_run: self.next,
            urgency,
            spawned: self.spawned,
        }
    }
}
