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
use std::time::Duration;

use chrono::Utc;
use rampd_domain::onramp::{self, Action, Ctx, Input, Intent, Observation};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::app::Shared;
use crate::providers::onmeta::OnmetaClient;
use crate::storage::entities::scheduled_tasks as tasks;
use crate::storage::lease::{LeaseColumns, claim};
use crate::storage::orders::{StoredOrder, load};
use crate::storage::write::{DRIVE, Write, WriteError, commit_decision};

#[derive(Clone)]
pub struct Executor {
    shared: Shared,
    provider: OnmetaClient,
}

const COLUMNS: LeaseColumns<tasks::Column> = LeaseColumns {
    id: tasks::Column::Id,
    lease_owner: tasks::Column::LeaseOwner,
    lease_until: tasks::Column::LeaseUntil,
    order_by: tasks::Column::RunAt,
};

impl Executor {
    pub fn new(shared: Shared, provider: OnmetaClient) -> Self {
        Executor { shared, provider }
    }

    /// Run until `shutdown`, at most `executor.concurrency` orders at a time. In-flight
    /// steps finish before this returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let limit = Arc::new(Semaphore::new(self.shared.cfg.executor.concurrency.max(1)));
        let mut running = tokio::task::JoinSet::new();
        let idle = Duration::from_millis(self.shared.cfg.executor.idle_ms);
        while !shutdown.is_cancelled() {
            // Claim only what can start now: a claimed task's lease is already running.
            let room = limit.available_permits() as u64;
            let claimed = match self.claim_due(room).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming tasks failed");
                    Vec::new()
                }
            };
            let found = !claimed.is_empty();
            for task in claimed {
                let permit = limit.clone().acquire_owned().await.expect("semaphore open");
                let me = self.clone();
                running.spawn(async move {
                    me.run_task(task).await;
                    drop(permit);
                });
            }
            while running.try_join_next().is_some() {}
            if !found {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.shared.wake.tasks.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                }
            } else {
                // Let the permits free up before claiming more than we can run.
                let _p = limit.acquire().await;
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Claim and run every task due now, waiting for them to finish. Returns how many ran.
    /// Tests use this to step the system without sleeping.
    pub async fn run_due_once(&self) -> Result<usize, DbErr> {
        let claimed = self.claim_due(self.shared.cfg.executor.batch).await?;
        let n = claimed.len();
        let mut set = tokio::task::JoinSet::new();
        for task in claimed {
            let me = self.clone();
            set.spawn(async move { me.run_task(task).await });
        }
        while set.join_next().await.is_some() {}
        Ok(n)
    }

    async fn claim_due(&self, room: u64) -> Result<Vec<tasks::Model>, DbErr> {
        let cfg = &self.shared.cfg;
        if room == 0 {
            return Ok(Vec::new());
        }
        let now = Utc::now().timestamp_millis();
        let due = Condition::all()
            .add(tasks::Column::Status.eq("ready"))
            .add(tasks::Column::Kind.eq(DRIVE))
            .add(tasks::Column::RunAt.lte(now));
        claim::<tasks::Entity, _>(
            &self.shared.db,
            &COLUMNS,
            due,
            &cfg.worker_id,
            now,
            cfg.executor.lease_ms as i64,
            cfg.executor.batch.min(room),
        )
        .await
    }

    async fn run_task(&self, task: tasks::Model) {
        let span = tracing::info_span!("task", order.id = %task.order_id, kind = %task.kind);
        if let Err(e) = self.drive(&task).instrument(span).await {
            // The lease runs out and the task is retried; nothing is lost.
            tracing::warn!(order.id = %task.order_id, error = %e, "task failed; retried after its lease");
        }
    }

    async fn drive(&self, task: &tasks::Model) -> Result<(), WriteError> {
        let token = task.lease_owner.as_deref().unwrap_or_default();
        let Some(mut stored) = load(&self.shared.db, &task.order_id).await? else {
            tracing::error!("task for a missing order; closing it");
            self.close_task(task).await?;
            return Ok(());
        };
        let policy = self.shared.cfg.onramp.policy();
        let action = onramp::next_action(&stored.order, Utc::now(), &policy);
        tracing::debug!(
            action = action.name(),
            state = stored.order.state.as_str(),
            "step"
        );
        let observation = match &action {
            Action::Nothing => {
                self.close_task(task).await?;
                return Ok(());
            }
            Action::Expire => None,
            Action::CreateOrder | Action::SubmitUtr(_) => {
                let intent = if matches!(action, Action::CreateOrder) {
                    Intent::CreateOrder
                } else {
                    Intent::SubmitUtr
                };
                // Record the intent first; if that loses a race, the next run re-plans.
                stored = match self.commit(&stored, Input::Intent(intent), None).await? {
                    Some(s) => s,
                    None => return Ok(()),
                };
                Some(self.call(&action, &stored, task).await)
            }
            _ => Some(self.call(&action, &stored, task).await),
        };
        let input = |obs: &Option<Observation>| match obs {
            Some(o) => Input::Observed(Box::new(o.clone())),
            None => Input::DeadlinePassed,
        };
        for _ in 0..5 {
            match self.commit(&stored, input(&observation), Some(token)).await {
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
        stored: &StoredOrder,
        task: &tasks::Model,
    ) -> Observation {
        let trace = task.trace_ctx.as_deref().or(stored.trace_ctx.as_deref());
        let timeout = Duration::from_millis(self.shared.cfg.provider.timeout_ms + 1_000);
        let call = steps::run(&self.provider, action, &stored.order, Utc::now(), trace);
        match tokio::time::timeout(timeout, call).await {
            Ok(obs) => obs,
            Err(_) => Observation::CallFailed(onramp::CallFailure {
                kind: onramp::FailureKind::Unknown,
                retry_after: None,
                message: "provider call timed out".into(),
            }),
        }
    }

    /// Decide and commit. `Ok(None)` when the order moved on meanwhile (intent case only:
    /// the caller re-plans on the next run); errors with `Conflict` otherwise.
    async fn commit(
        &self,
        stored: &StoredOrder,
        input: Input,
        release_lease: Option<&str>,
    ) -> Result<Option<StoredOrder>, WriteError> {
        let now = Utc::now();
        let ctx = Ctx {
            now,
            jitter: rand::random(),
            policy: self.shared.cfg.onramp.policy(),
        };
        let is_intent = matches!(input, Input::Intent(_));
        let decision = onramp::decide(&stored.order, input, &ctx)
            .map_err(|r| WriteError::Db(DbErr::Custom(format!("unexpected rejection: {r}"))))?;
        let result = commit_decision(
            &self.shared.db,
            &self.shared.endpoints,
            Write {
                expected_version: Some(stored.version),
                decision: &decision,
                command: None,
                trace_ctx: stored.trace_ctx.as_deref(),
                now,
                release_lease,
            },
        )
        .await;
        match result {
            Ok(version) => {
                if !decision.events.is_empty() {
                    self.shared.wake.outbox.notify_one();
                    self.shared.wake.webhooks.notify_one();
                }
                Ok(Some(StoredOrder {
                    order: decision.order,
                    version,
                    trace_ctx: stored.trace_ctx.clone(),
                }))
            }
            Err(WriteError::Conflict) if is_intent => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn close_task(&self, task: &tasks::Model) -> Result<(), DbErr> {
        tasks::Entity::update_many()
            .col_expr(tasks::Column::Status, Expr::value("done"))
            .col_expr(
                tasks::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(tasks::Column::LeaseUntil, Expr::value(Option::<i64>::None))
            .filter(tasks::Column::Id.eq(task.id.clone()))
            .filter(tasks::Column::LeaseOwner.eq(task.lease_owner.clone()))
            .exec(&self.shared.db)
            .await?;
        Ok(())
    }
}
