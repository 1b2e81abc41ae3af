//! The task executor: drives orders whose `drive` task is due.
//!
//! A due task is claimed with a lease ([`crate::storage::lease`]); the provider call runs
//! outside any transaction; the outcome is committed with the order's version check, which
//! also ends the lease. Calls that must not happen twice (create order, submit UTR) first
//! commit an intent; after a crash the order's next step is a lookup at the provider, not a
//! second call. If the commit finds the order changed meanwhile (a command arrived), the
//! same observation is decided again against the fresh order: observations are facts and
//! the state machine ignores the ones that no longer apply.

mod steps;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use rampd_domain::order::{self, Action, Ctx, Input, Observation, Urgency};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::pool::{self, LeasedWork};
use crate::providers::attempt;
use crate::shared::Shared;
use crate::storage::entities::scheduled_tasks as tasks;
use crate::storage::lease::{TASKS, claim, released};
use crate::storage::orders::{StoredOrder, load, load_many};
use crate::storage::write::{DRIVE, OwnedWrite, WriteError, commit_grouped, reschedule_grouped};
use crate::telemetry;

/// A claimed task with its order as read right after the claim (`None`: no such order).
pub struct Claimed {
    task: tasks::Model,
    order: Result<Option<StoredOrder>, DbErr>,
}

impl LeasedWork for Executor {
    type Item = Claimed;

    /// Claim due tasks, then read all their orders in one query: a step decides on the
    /// order as read here, and its commit's version check catches an order that moved on
    /// since (the step then decides again on a fresh read).
    async fn claim(&self, room: u64) -> Result<Vec<Claimed>, DbErr> {
        let claimed = self.claim_due(room).await?;
        let ids: Vec<&str> = claimed.iter().map(|t| t.order_id.as_str()).collect();
        let mut orders = load_many(&self.shared.db, &ids).await?;
        Ok(claimed
            .into_iter()
            .map(|task| Claimed {
                order: orders.remove(&task.order_id).transpose(),
                task,
            })
            .collect())
    }

    async fn process(&self, c: Claimed) {
        self.run_task(c.task, c.order).await
    }

    fn due_at(c: &Claimed) -> i64 {
        c.task.run_at
    }

    fn urgency(c: &Claimed) -> &'static str {
        Urgency::from_rank(c.task.priority).map_or("none", Urgency::as_str)
    }
}

/// Under a budget, waiting orders are claimed for the tokens of this long ahead: their
/// polls then wait at most this for a token, well within the client's patience.
const CLAIM_HORIZON: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Executor {
    shared: Shared,
    /// Waiting orders' tasks (deadline checks, parked) claimed under a budget and still
    /// running: each may spend a token yet, so the next claim counts them against the
    /// tokens available.
    waiting: Arc<AtomicU64>,
}

impl Executor {
    pub fn new(shared: Shared) -> Self {
        Executor {
            shared,
            waiting: Arc::default(),
        }
    }

    /// Run until `shutdown`, at most `executor.concurrency` orders at a time. In-flight
    /// steps finish before this returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = self.shared.cfg.clone();
        let wake = self.shared.wake.clone();
        let idle = Duration::from_millis(cfg.executor.idle_ms);
        pool::run(
            self,
            "tasks",
            cfg.executor.concurrency,
            idle,
            &wake.tasks,
            shutdown,
        )
        .await;
    }

    /// Claim due drive tasks, most urgent first (`lease::TASKS`).
    ///
    /// Under a provider budget, the orders in motion (`Urgency::Moving`: being prepared,
    /// or with the payment reference in) are claimed as room allows, and the waiting ones
    /// (deadline checks, parked orders) only as many as the budget has tokens for, less
    /// those of them still running (each may spend a token yet). So a crowd of parked
    /// orders can neither spend the tokens the moving ones need nor be claimed only to
    /// be deferred (`providers::budget`).
    async fn claim_due(&self, room: u64) -> Result<Vec<tasks::Model>, DbErr> {
        let budget = self.shared.providers.claim_budget();
        let drive = Condition::all().add(tasks::Column::Kind.eq(DRIVE));
        if !budget.is_limited() {
            return self.claim_where(drive, room).await;
        }
        let moving = Urgency::Moving.rank();
        let mut claimed = self
            .claim_where(drive.clone().add(tasks::Column::Priority.eq(moving)), room)
            .await?;
        let free = budget
            .available(CLAIM_HORIZON)
            .saturating_sub(self.waiting.load(Ordering::Relaxed));
        let room = (room - claimed.len() as u64).min(free);
        if room > 0 {
            let waiting = self
                .claim_where(drive.add(tasks::Column::Priority.gt(moving)), room)
                .await?;
            self.waiting
                .fetch_add(waiting.len() as u64, Ordering::Relaxed);
            claimed.extend(waiting);
        }
        Ok(claimed)
    }

    /// Ready and due is the queue's own guard (`lease::TASKS`); `narrow` only narrows.
    async fn claim_where(&self, narrow: Condition, room: u64) -> Result<Vec<tasks::Model>, DbErr> {
        let cfg = &self.shared.cfg;
        claim::<tasks::Entity, _>(
            &self.shared.db,
            &TASKS,
            narrow,
            &cfg.worker_id,
            Utc::now().timestamp_millis(),
            cfg.executor.lease_ms as i64,
            cfg.executor.batch.min(room),
        )
        .await
    }

    async fn run_task(&self, task: tasks::Model, order: Result<Option<StoredOrder>, DbErr>) {
        let span = telemetry::spans::task(&task.order_id, &task.kind, task.trace_ctx.as_deref());
        if let Err(e) = self.drive(&task, order).instrument(span).await {
            // The lease runs out and the task is retried; nothing is lost.
            let trace_id = telemetry::warnings::order_trace_id(task.trace_ctx.as_deref());
            tracing::warn!(order.id = %task.order_id, order.trace_id = trace_id.as_deref(), error = %e, "task failed; retried after its lease");
        }
        if self.shared.providers.claim_budget().is_limited()
            && task.priority != Urgency::Moving.rank()
        {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Run the order's due step, and the steps that fall due at once after it (KYC, link,
    /// quote, the create call), within this one lease; see [`Chain`].
    async fn drive(
        &self,
        task: &tasks::Model,
        order: Result<Option<StoredOrder>, DbErr>,
    ) -> Result<(), WriteError> {
        let Some(mut stored) = order? else {
            tracing::error!("task for a missing order; closing it");
            self.close_task(task).await?;
            return Ok(());
        };
        let policy = self.shared.cfg.orders.policy();
        let chain = Chain::new(&self.shared.cfg);
        // What this lease has observed and not yet written, and the order as it leaves it.
        let mut pending: Vec<Input> = Vec::new();
        let mut view = stored.order.clone();
        loop {
            let action = order::next_action(&view, Utc::now(), &policy);
            tracing::Span::current().record("rampd.action", action.name());
            tracing::debug!(action = action.name(), state = view.state.as_str(), "step");
            match &action {
                Action::Nothing if pending.is_empty() => {
                    self.close_task(task).await?;
                    return Ok(());
                }
                Action::Nothing => break,
                Action::Expire => {
                    pending.push(Input::DeadlinePassed);
                    break;
                }
                _ => {
                    if let Some(intent) = action.intent() {
                        // The intent is written (with what was observed before it) before
                        // the call. If that loses a race, what was observed is written
                        // alone and the next run re-plans.
                        pending.push(Input::Intent(intent));
                        match self.commit(&stored, &pending, None).await {
                            Err(WriteError::Conflict) => {
                                pending.pop();
                                if pending.is_empty() {
                                    return Ok(());
                                }
                                break;
                            }
                            other => stored = other?,
                        }
                        pending.clear();
                        view = stored.order.clone();
                    }
                    let obs = self.call(&action, &view, stored.trace_ctx.as_deref(), task);
                    pending.push(Input::Observed(Box::new(obs.await)));
                }
            }
            match chain.next_view(&stored.order, &pending, &policy) {
                Some(next) => view = next,
                None => break,
            }
        }
        for _ in 0..5 {
            match self.commit(&stored, &pending, Some(task)).await {
                Ok(_) => return Ok(()),
                Err(WriteError::Conflict) => {
                    let Some(fresh) = load(&self.shared.db, &task.order_id).await? else {
                        return Ok(());
                    };
                    stored = fresh;
                }
                Err(e) => return Err(e),
            }
        }
        Err(WriteError::Conflict)
    }

    async fn call(
        &self,
        action: &Action,
        order: &order::Order,
        order_trace: Option<&str>,
        task: &tasks::Model,
    ) -> Observation {
        let trace = task.trace_ctx.as_deref().or(order_trace);
        let timeout = call_timeout(&self.shared.cfg);
        let providers = &self.shared.providers;
        let call = steps::run(providers, &self.shared.db, action, order, Utc::now(), trace);
        let call = attempt::scope(order.failures + 1, call);
        match tokio::time::timeout(timeout, call).await {
            Ok(obs) => obs,
            Err(_) => Observation::CallFailed(order::CallFailure {
                kind: order::FailureKind::Unknown,
                retry_after: None,
                message: "provider call timed out".into(),
                action: Some(action.clone()),
            }),
        }
    }

    /// Decide `inputs` in turn on `stored` and commit that as one write; `Conflict` when
    /// the order moved on meanwhile. With the leased `task`, the write also ends its
    /// lease; a decision that changes nothing but the next run writes only that
    /// (`write::reschedule_grouped`).
    async fn commit(
        &self,
        stored: &StoredOrder,
        inputs: &[Input],
        task: Option<&tasks::Model>,
    ) -> Result<StoredOrder, WriteError> {
        let release_lease = task.and_then(|t| t.lease_owner.as_deref());
        let now = Utc::now();
        let ctx = Ctx {
            now,
            jitter: rand::random(),
            policy: self.shared.cfg.orders.policy(),
        };
        let decision = order::decide_all(&stored.order, inputs, &ctx)
            .map_err(|r| WriteError::Db(DbErr::Custom(format!("unexpected rejection: {r}"))))?;
        if let (Some(task), Some(token)) = (task, release_lease)
            && let Some(run_at) = decision.only_reschedules(&stored.order)
        {
            reschedule_grouped(&self.shared.commits, task, token, run_at, decision.urgency).await?;
            return Ok(stored.clone());
        }
        let (decision, committed) = commit_grouped(
            &self.shared.commits,
            OwnedWrite {
                expected_version: Some(stored.version),
                decision,
                command: None,
                trace_ctx: stored.trace_ctx.clone(),
                now,
                release_lease: release_lease.map(str::to_string),
            },
        )
        .await;
        let version = committed?;
        if !decision.events.is_empty() {
            self.shared.wake_webhooks();
        }
        Ok(StoredOrder {
            order: decision.order,
            version,
            trace_ctx: stored.trace_ctx.clone(),
        })
    }

    async fn close_task(&self, task: &tasks::Model) -> Result<(), DbErr> {
        released(tasks::Entity::update_many(), &TASKS)
            .col_expr(tasks::Column::Status, Expr::value("done"))
            .filter(tasks::Column::Id.eq(task.id.clone()))
            .filter(tasks::Column::LeaseOwner.eq(task.lease_owner.clone()))
            .exec(&self.shared.db)
            .await?;
        Ok(())
    }
}

/// The longest a provider call may take: the longest client timeout and a second of slack.
fn call_timeout(cfg: &crate::config::Config) -> Duration {
    Duration::from_millis(cfg.longest_provider_timeout_ms() + 1_000)
}

/// When a lease goes on with the order's next step instead of writing what it has.
///
/// A step whose outcome makes the next one due at once (KYC passed: link; linked: quote)
/// runs in the same lease, and all their observations are written together with the
/// next intent, or at the end: one write instead of one per step. A crash before that
/// write loses only observations of calls that are safe to repeat (calls that are not
/// have their intent written first), so the next run repeats them, as it would repeat
/// one. A lease goes on for at most [`Chain::MAX_CALLS`] calls, and starts a call only
/// while that call, timing out, would still end within the first three quarters of the
/// lease: the last quarter is left for the write, so no other replica claims the order
/// while this one still drives it.
struct Chain {
    started: std::time::Instant,
    /// Further calls may start until this long after `started`.
    until: Duration,
}

impl Chain {
    const MAX_CALLS: usize = 8;

    fn new(cfg: &crate::config::Config) -> Self {
        let lease = Duration::from_millis(cfg.executor.lease_ms);
        Chain {
            started: std::time::Instant::now(),
            until: lease
                .saturating_sub(lease / 4)
                .saturating_sub(call_timeout(cfg)),
        }
    }

    /// The order as `pending` leaves it when its next step is due now and may run in this
    /// lease; `None` when the lease should write what it has.
    fn next_view(
        &self,
        stored: &order::Order,
        pending: &[Input],
        policy: &order::OrderPolicy,
    ) -> Option<order::Order> {
        if pending.len() >= Self::MAX_CALLS || self.started.elapsed() >= self.until {
            return None;
        }
        let now = Utc::now();
        let ctx = Ctx {
            now,
            jitter: 0.0,
            policy: *policy,
        };
        let d = order::decide_all(stored, pending, &ctx).ok()?;
        let due_now = matches!(d.next_run, order::NextRun::At(at) if at <= now);
        (due_now && d.spawned.is_none()).then_some(d.order)
    }
}
