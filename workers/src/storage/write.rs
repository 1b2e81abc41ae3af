//! The one write path for order decisions (DESIGN §2.1).
//!
//! Everything a decision implies commits together: the order row (guarded by its
//! version), its history, its drive task, the NATS events (outbox) and the webhook
//! deliveries, plus the inbox row of the command that caused it. Either all of it is
//! there or none of it is: in a transaction of its own ([`commit_decision`]) or with other
//! orders' decisions in a group commit ([`commit_grouped`]).
//!
//! A write is first made into a [`Plan`] (its rows, as data: [`super::plan`]), then
//! written by [`super::apply`], which writes the plans of a whole group commit with one
//! statement per table.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rampd_domain::event::CommandRejected;
use rampd_domain::order::{Decision, Urgency};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel,
};
use uuid::Uuid;

use super::apply::apply;
use super::begin_write;
pub(crate) use super::connect::settle;
use super::entities::{outbox, processed_commands, scheduled_tasks};
use super::group_commit::{GroupCommit, GroupWrite};
use super::plan::{self, Plan};
pub use super::plan::{CommandRecord, DRIVE, Write, event_subject, inbox_id};
pub use super::write_error::WriteError;
use crate::telemetry::{meters, spans};

/// Commit a decision. Returns the order's new version.
pub async fn commit_decision(db: &DatabaseConnection, w: Write<'_>) -> Result<i64, WriteError> {
    let plan = plan_of(&w, None)?;
    let txn = begin_write(db).await?;
    let result = apply_one(&txn, &plan).await;
    let version = settle(txn, result).await?;
    observe_committed(w.decision, w.trace_ctx);
    Ok(version)
}

fn plan_of(w: &Write<'_>, refusal: Option<(&str, &CommandRejected)>) -> Result<Plan, WriteError> {
    plan::decision(w, refusal, &mut Uuid::now_v7)
        .map_err(|e| WriteError::Db(DbErr::Custom(e.to_string())))
}

/// Write one plan in `txn`: the order's new version, or why not.
pub(crate) async fn apply_one(txn: &impl ConnectionTrait, plan: &Plan) -> Result<i64, WriteError> {
    apply(txn, &[plan], None)
        .await?
        .pop()
        .expect("one result for one plan")
}

/// What [`commit_grouped`] writes: a [`Write`] that owns its parts, so that it can be
/// handed to a group-commit writer.
pub struct OwnedWrite {
    pub expected_version: Option<i64>,
    pub decision: Decision,
    pub command: Option<OwnedCommand>,
    pub trace_ctx: Option<String>,
    pub now: DateTime<Utc>,
    pub release_lease: Option<String>,
}

/// A [`CommandRecord`] that owns its parts.
pub struct OwnedCommand {
    pub tenant: String,
    pub command_id: String,
    pub command_type: String,
    pub fingerprint: Option<rampd_domain::command_identity::Fingerprint>,
}

impl OwnedCommand {
    pub fn of(c: &CommandRecord<'_>) -> Self {
        OwnedCommand {
            tenant: c.tenant.to_string(),
            command_id: c.command_id.to_string(),
            command_type: c.command_type.to_string(),
            fingerprint: c.fingerprint.cloned(),
        }
    }
}

impl OwnedWrite {
    fn as_write(&self) -> Write<'_> {
        Write {
            expected_version: self.expected_version,
            decision: &self.decision,
            command: self.command.as_ref().map(|c| CommandRecord {
                tenant: &c.tenant,
                command_id: &c.command_id,
                command_type: &c.command_type,
                fingerprint: c.fingerprint.as_ref(),
            }),
            trace_ctx: self.trace_ctx.as_deref(),
            now: self.now,
            release_lease: self.release_lease.as_deref(),
        }
    }
}

/// A plan as one write of a group commit: written with its batch-mates' plans by one
/// statement per table, or alone when its batch is written write by write.
struct Planned(Plan);

impl GroupWrite for Planned {
    fn write<'t>(&'t self, txn: &'t DatabaseTransaction) -> BoxFuture<'t, Result<i64, WriteError>> {
        Box::pin(apply_one(txn, &self.0))
    }

    fn plan(&self) -> Option<&Plan> {
        Some(&self.0)
    }
}

/// [`commit_decision`] in the next batch of `group` (see [`group_commit`]): the same
/// rows, with the same checks, in a transaction shared with other orders' writes. Hands
/// the decision back, with the order's new version once the batch has committed, or the
/// error.
///
/// [`group_commit`]: super::group_commit
pub async fn commit_grouped(
    group: &GroupCommit,
    w: OwnedWrite,
) -> (Decision, Result<i64, WriteError>) {
    let result = match plan_of(&w.as_write(), None) {
        Ok(plan) => {
            let order = w.decision.order.id.to_string();
            group.write(&order, Arc::new(Planned(plan))).await
        }
        Err(e) => Err(e),
    };
    if result.is_ok() {
        observe_committed(&w.decision, w.trace_ctx.as_deref());
    }
    (w.decision, result)
}

/// The write of a decision that only moves the order's next run
/// ([`Decision::only_reschedules`]): the leased task's `run_at`, and the end of the lease,
/// in one statement; no order row, history or outbox is touched.
///
/// Guarded by the task row as the lease claimed it (`run_at`, `updated_at`): a decision
/// that wrote the task since (a command that wants the order driven now) wins, and then this
/// only ends the lease, so that write takes effect at once.
pub async fn reschedule(
    db: &impl ConnectionTrait,
    task: &scheduled_tasks::Model,
    token: &str,
    run_at: DateTime<Utc>,
    urgency: Urgency,
) -> Result<(), DbErr> {
    let plan = Plan::reschedule(task, token, run_at.timestamp_millis(), urgency.rank());
    apply_one(db, &plan)
        .await
        .map(|_| ())
        .map_err(WriteError::into_db)
}

/// [`reschedule`] in the next batch of `group`: the quiet polls of every task that arrive
/// while a batch is being written share its transaction and its WAL flush. Each move
/// keeps its own guard, so a task that a command wrote meanwhile keeps the command's run
/// and only loses its lease, while the others move.
pub async fn reschedule_grouped(
    group: &GroupCommit,
    task: &scheduled_tasks::Model,
    token: &str,
    run_at: DateTime<Utc>,
    urgency: Urgency,
) -> Result<(), DbErr> {
    let plan = Plan::reschedule(task, token, run_at.timestamp_millis(), urgency.rank());
    group
        .write(&task.order_id, Arc::new(Planned(plan)))
        .await
        .map(|_| ())
        .map_err(WriteError::into_db)
}

/// Commit a decision that its command caused but that refuses the command (a payment
/// reference another tenant's order holds: the order is flagged, the command rejected).
/// The inbox records the command as rejected, and its `command_rejected` event is queued
/// on `ramp.evt.<tenant>.<direction>.command_rejected`, in the decision's transaction.
pub async fn commit_refusing_decision(
    db: &DatabaseConnection,
    w: Write<'_>,
    direction: &str,
    rejected: &CommandRejected,
) -> Result<i64, WriteError> {
    let plan = plan_of(&w, Some((direction, rejected)))?;
    let txn = begin_write(db).await?;
    let result = apply_one(&txn, &plan).await;
    let version = settle(txn, result).await?;
    observe_committed(w.decision, w.trace_ctx);
    Ok(version)
}

/// Trace attributes (order, tenant, direction, state before/after) on the current span
/// and the transition counters, once a decision is committed. `trace_ctx` is the stored
/// context of the order's trace (the WARN lines name its trace id).
fn observe_committed(d: &Decision, trace_ctx: Option<&str>) {
    let o = &d.order;
    let direction = o.direction().as_str();
    let transitions = d.history.iter().filter_map(|h| h.transition);
    let before = transitions.clone().next().map_or(o.state, |(from, _)| from);
    for (from, to) in transitions {
        meters::transition(direction, from.as_str(), to.as_str());
    }
    crate::telemetry::warnings::committed(d, trace_ctx);
    spans::annotate_order(
        &o.id.to_string(),
        &o.tenant,
        direction,
        before.as_str(),
        o.state.as_str(),
    );
}

/// Insert an unpublished outbox row, in `txn`.
pub(crate) async fn insert_outbox(
    txn: &impl ConnectionTrait,
    id: &str,
    subject: String,
    payload: String,
    order_id: Option<&str>,
    trace_ctx: Option<&str>,
    now: i64,
) -> Result<(), DbErr> {
    let row = plan::outbox_row(id.to_string(), subject, payload, order_id, trace_ctx, now);
    outbox::Entity::insert(row.into_active_model())
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Has this command been handled already (accepted, rejected or a no-op)?
pub async fn already_processed(
    db: &impl ConnectionTrait,
    tenant: &str,
    command_id: &str,
) -> Result<bool, DbErr> {
    Ok(
        processed_commands::Entity::find_by_id(inbox_id(tenant, command_id))
            .one(db)
            .await?
            .is_some(),
    )
}

/// What the inbox knows of a command's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not handled yet.
    New,
    /// Handled before, with the same body (or with a fingerprint that is unknown on either
    /// side: rows older than fingerprints): a harmless repeat.
    Repeat,
    /// Handled before, with a different body: the id is being reused.
    Reused,
}

/// Look the command's (tenant, command id) up in the inbox and compare fingerprints.
pub async fn inbox_check(db: &impl ConnectionTrait, c: &CommandRecord<'_>) -> Result<Seen, DbErr> {
    let row = processed_commands::Entity::find_by_id(c.inbox_id())
        .one(db)
        .await?;
    Ok(seen(row.as_ref().map(|r| r.fingerprint.as_deref()), c))
}

/// What the inbox knows of `c`, given its inbox row: `None` when there is none, else the
/// fingerprint the row holds (`None` for rows older than fingerprints).
pub fn seen(row: Option<Option<&str>>, c: &CommandRecord<'_>) -> Seen {
    match row {
        None => Seen::New,
        Some(before) => match (before, c.fingerprint) {
            (Some(before), Some(now)) if before != now.as_str() => Seen::Reused,
            _ => Seen::Repeat,
        },
    }
}

/// Queue a `command_rejected` event on `ramp.evt.<tenant>.<direction>.command_rejected`
/// without an inbox row: for a refusal that must not (a `Nats-Msg-Id` that does not fit:
/// the command id stays free) or cannot (a reused command id: its row is the first
/// command's) be recorded in the inbox.
pub async fn announce_rejection(
    db: &DatabaseConnection,
    direction: &str,
    rejected: &CommandRejected,
    trace_ctx: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let now = now.timestamp_millis();
    let row = plan::rejection_row(direction, rejected, None, trace_ctx, now)
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    outbox::Entity::insert(row.outbox.into_active_model())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Record a command that changed no order, in one transaction: an idempotent repeat
/// under a new command id (`rejection: None`), or a refusal together with its
/// `command_rejected` event on `ramp.evt.<tenant>.<direction>.command_rejected`.
/// A repeat of the same command finds its inbox row and changes nothing.
pub async fn record_unchanged(
    db: &DatabaseConnection,
    c: &CommandRecord<'_>,
    order_id: Option<&str>,
    rejection: Option<(&str, &CommandRejected)>,
    trace_ctx: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let now = now.timestamp_millis();
    let (outcome, reason) = match rejection {
        None => ("noop", None),
        Some((_, rejected)) => ("rejected", Some(rejected.code.as_str())),
    };
    let mut plan = Plan::default();
    plan.inbox = Some(plan::inbox_row(c, order_id, outcome, reason, now));
    if let Some((direction, rejected)) = rejection {
        let row = plan::rejection_row(direction, rejected, order_id, trace_ctx, now)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        plan.events.push(row);
    }
    let txn = begin_write(db).await?;
    let result = apply_one(&txn, &plan).await;
    match settle(txn, result).await {
        // The inbox row is there already: the same command, handled before.
        Ok(_) | Err(WriteError::Conflict) => Ok(()),
        Err(e) => Err(e.into_db()),
    }
}
