//! The one write path for order decisions (DESIGN §2.1).
//!
//! Everything a decision implies commits together: the order row (guarded by its
//! version), its history, its drive task, the NATS events (outbox) and the webhook
//! deliveries, plus the inbox row of the command that caused it. Either all of it is
//! there or none of it is: in a transaction of its own ([`commit_decision`]) or in a
//! savepoint of a group commit with other orders' decisions ([`commit_grouped`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rampd_domain::Direction;
use rampd_domain::command_identity::Fingerprint;
use rampd_domain::event::{CommandRejected, OrderEvent, order_event, subject_suffix};
use rampd_domain::order::{Decision, NextRun, Urgency};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

pub(crate) use super::connect::settle;
use super::entities::webhook_deliveries::{PENDING, SKIPPED};
use super::entities::{
    order_events, orders, outbox, processed_commands, scheduled_tasks, webhook_deliveries,
};
use super::group_commit::{GroupCommit, GroupWrite};
use super::lease::{TASKS, released};
pub use super::write_error::WriteError;
use super::{begin_write, is_unique_violation};
use crate::telemetry::{meters, spans};
use crate::webhooks::Endpoints;
use crate::webhooks::endpoints::Subscriber;

/// The single task kind that drives an order forward.
pub const DRIVE: &str = "drive";

/// The command that caused a write, for the inbox.
#[derive(Debug, Clone)]
pub struct CommandRecord<'a> {
    pub tenant: &'a str,
    pub command_id: &'a str,
    pub command_type: &'a str,
    /// What the command said; `None` records it as unknown (see [`inbox_check`]).
    pub fingerprint: Option<&'a Fingerprint>,
}

impl CommandRecord<'_> {
    pub fn inbox_id(&self) -> String {
        inbox_id(self.tenant, self.command_id)
    }
}

pub fn inbox_id(tenant: &str, command_id: &str) -> String {
    format!("{tenant}:{command_id}")
}

pub struct Write<'a> {
    /// `None` inserts a new order.
    pub expected_version: Option<i64>,
    pub decision: &'a Decision,
    pub command: Option<CommandRecord<'a>>,
    pub trace_ctx: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// The lease token of the executor that made this decision; its lease on the order's
    /// task ends with the commit. Commands pass `None` and never touch a lease.
    pub release_lease: Option<&'a str>,
}

pub fn event_subject(tenant: &str, direction: Direction, event_type: &str) -> String {
    format!(
        "ramp.evt.{tenant}.{}.{}",
        direction.as_str(),
        subject_suffix(event_type)
    )
}

/// Commit a decision. Returns the order's new version.
pub async fn commit_decision(
    db: &DatabaseConnection,
    endpoints: &Endpoints,
    w: Write<'_>,
) -> Result<i64, WriteError> {
    let txn = begin_write(db).await?;
    let result = write_all(&txn, endpoints, &w, None).await;
    let version = settle(txn, result).await?;
    observe_committed(w.decision);
    Ok(version)
}

/// What [`commit_grouped`] writes: a [`Write`] that owns its parts, so that it can be
/// handed to a group-commit writer (and written again alone if its batch fails).
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
    pub fingerprint: Option<Fingerprint>,
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

/// An [`OwnedWrite`] with the endpoints its events are delivered to, as one write of a
/// group commit.
struct GroupedDecision {
    w: OwnedWrite,
    endpoints: Endpoints,
}

impl GroupWrite for GroupedDecision {
    fn write<'t>(&'t self, txn: &'t DatabaseTransaction) -> BoxFuture<'t, Result<i64, WriteError>> {
        Box::pin(async move { write_all(txn, &self.endpoints, &self.w.as_write(), None).await })
    }
}

/// A quiet poll's [`reschedule`], as one write of a group commit.
struct GroupedReschedule {
    task: scheduled_tasks::Model,
    token: String,
    run_at: DateTime<Utc>,
    urgency: Urgency,
}

impl GroupWrite for GroupedReschedule {
    fn write<'t>(&'t self, txn: &'t DatabaseTransaction) -> BoxFuture<'t, Result<i64, WriteError>> {
        Box::pin(async move {
            reschedule(txn, &self.task, &self.token, self.run_at, self.urgency).await?;
            Ok(0)
        })
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

/// [`commit_decision`] in the next batch of `group` (see [`group_commit`]): the same
/// writes, with the same checks, in a savepoint of a transaction shared with other
/// orders' writes. Hands the decision back, with the order's new version once the batch
/// has committed, or the error.
///
/// [`group_commit`]: super::group_commit
pub async fn commit_grouped(
    group: &GroupCommit,
    endpoints: &Endpoints,
    w: OwnedWrite,
) -> (Decision, Result<i64, WriteError>) {
    let order = w.decision.order.id.to_string();
    let job = Arc::new(GroupedDecision {
        w,
        endpoints: endpoints.clone(),
    });
    let result = group.write(&order, job.clone()).await;
    if result.is_ok() {
        observe_committed(&job.w.decision);
    }
    // The writer drops its copy when it answers; clone only if it has not done so yet.
    let decision = Arc::try_unwrap(job).map_or_else(|j| j.w.decision.clone(), |j| j.w.decision);
    (decision, result)
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
    let mine = |update| {
        released(update, &TASKS)
            .filter(scheduled_tasks::Column::Id.eq(task.id.as_str()))
            .filter(scheduled_tasks::Column::LeaseOwner.eq(token))
    };
    let moved = mine(scheduled_tasks::Entity::update_many())
        .col_expr(
            scheduled_tasks::Column::RunAt,
            Expr::value(run_at.timestamp_millis()),
        )
        .col_expr(
            scheduled_tasks::Column::Priority,
            Expr::value(urgency.rank()),
        )
        .filter(scheduled_tasks::Column::RunAt.eq(task.run_at))
        .filter(scheduled_tasks::Column::UpdatedAt.eq(task.updated_at))
        .exec(db)
        .await?;
    if moved.rows_affected == 0 {
        mine(scheduled_tasks::Entity::update_many())
            .exec(db)
            .await?;
    }
    Ok(())
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
    let job = Arc::new(GroupedReschedule {
        task: task.clone(),
        token: token.to_string(),
        run_at,
        urgency,
    });
    group
        .write(&task.order_id, job)
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
    endpoints: &Endpoints,
    w: Write<'_>,
    direction: &str,
    rejected: &CommandRejected,
) -> Result<i64, WriteError> {
    let txn = begin_write(db).await?;
    let result = write_all(&txn, endpoints, &w, Some((direction, rejected))).await;
    let version = settle(txn, result).await?;
    observe_committed(w.decision);
    Ok(version)
}

/// Trace attributes (order, tenant, direction, state before/after) on the current span
/// and the transition counters, once a decision is committed.
fn observe_committed(d: &Decision) {
    let o = &d.order;
    let direction = o.direction().as_str();
    let transitions = d.history.iter().filter_map(|h| h.transition);
    let before = transitions.clone().next().map_or(o.state, |(from, _)| from);
    for (from, to) in transitions {
        meters::transition(direction, from.as_str(), to.as_str());
    }
    spans::annotate_order(
        &o.id.to_string(),
        &o.tenant,
        direction,
        before.as_str(),
        o.state.as_str(),
    );
}

async fn write_all(
    txn: &impl ConnectionTrait,
    endpoints: &Endpoints,
    w: &Write<'_>,
    refusal: Option<(&str, &CommandRejected)>,
) -> Result<i64, WriteError> {
    let d = w.decision;
    let version = write_order(txn, endpoints, d, w.expected_version, w).await?;
    if let Some(spawned) = &d.spawned {
        // A successor order is created in the same transaction as the decision that
        // names it: both orders exist, each pointing at the other, or neither does.
        write_order(txn, endpoints, spawned, None, w).await?;
    }
    let id = d.order.id.to_string();
    // A decision that schedules the task ends the lease in that same upsert (`write_task`).
    if let Some(token) = w.release_lease
        && d.next_run == NextRun::Keep
    {
        released(scheduled_tasks::Entity::update_many(), &TASKS)
            .filter(scheduled_tasks::Column::OrderId.eq(id.clone()))
            .filter(scheduled_tasks::Column::Kind.eq(DRIVE))
            .filter(scheduled_tasks::Column::LeaseOwner.eq(token))
            .exec(txn)
            .await?;
    }
    if let Some(c) = &w.command {
        let (outcome, code) = match refusal {
            None => ("accepted", None),
            Some((_, rejected)) => ("rejected", Some(rejected.code.as_str())),
        };
        record_command(txn, c, Some(&id), outcome, code, now_ms(w))
            .await
            .map_err(classify)?;
        if let Some((direction, rejected)) = refusal {
            enqueue_rejection(txn, direction, rejected, Some(&id), w.trace_ctx, now_ms(w)).await?;
        }
    }
    Ok(version)
}

fn now_ms(w: &Write<'_>) -> i64 {
    w.now.timestamp_millis()
}

/// One order's row (inserted when `expected_version` is `None`, else updated under the
/// version check), history, drive task and events.
async fn write_order(
    txn: &impl ConnectionTrait,
    endpoints: &Endpoints,
    d: &Decision,
    expected_version: Option<i64>,
    w: &Write<'_>,
) -> Result<i64, WriteError> {
    let o = &d.order;
    let now = now_ms(w);
    let id = o.id.to_string();
    let data = serde_json::to_string(o).map_err(|e| DbErr::Custom(e.to_string()))?;
    let utr = o.utr.as_ref().map(|u| u.as_str().to_string());
    let tx_hash = o.deposit_tx_hash.as_ref().map(|h| h.as_str().to_string());
    let version = match expected_version {
        None => {
            let row = orders::ActiveModel {
                id: Set(id.clone()),
                tenant: Set(o.tenant.clone()),
                client_order_id: Set(o.client_order_id.clone()),
                direction: Set(o.direction().as_str().into()),
                state: Set(o.state.as_str().into()),
                data: Set(data),
                sm_version: Set(o.sm_version),
                version: Set(1),
                provider: Set(crate::providers::onmeta::PROVIDER.into()),
                provider_order_id: Set(o.provider_order_id.clone()),
                utr: Set(utr),
                deposit_tx_hash: Set(tx_hash),
                flagged: Set(o.attention.is_some()),
                trace_ctx: Set(w.trace_ctx.map(str::to_string)),
                created_at: Set(now),
                updated_at: Set(now),
            };
            orders::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map_err(classify)?;
            1
        }
        Some(v) => {
            let res = orders::Entity::update_many()
                .col_expr(orders::Column::State, Expr::value(o.state.as_str()))
                .col_expr(orders::Column::Data, Expr::value(data))
                .col_expr(orders::Column::Version, Expr::value(v + 1))
                .col_expr(
                    orders::Column::ProviderOrderId,
                    Expr::value(o.provider_order_id.clone()),
                )
                .col_expr(orders::Column::Utr, Expr::value(utr))
                .col_expr(orders::Column::DepositTxHash, Expr::value(tx_hash))
                .col_expr(orders::Column::Flagged, Expr::value(o.attention.is_some()))
                .col_expr(orders::Column::UpdatedAt, Expr::value(now))
                .filter(orders::Column::Id.eq(id.clone()))
                .filter(orders::Column::Version.eq(v))
                .exec(txn)
                .await
                .map_err(classify)?;
            if res.rows_affected != 1 {
                return Err(WriteError::Conflict);
            }
            v + 1
        }
    };

    write_history(txn, d, w, now).await?;
    write_task(txn, &id, d, w.trace_ctx, now, w.release_lease).await?;
    let subscribers = match d.events.is_empty() {
        true => Vec::new(),
        false => endpoints.of_tenant(txn, &o.tenant).await?,
    };
    for e in &d.events {
        let event = order_event(
            o,
            e.seq,
            &e.kind,
            Uuid::now_v7().to_string(),
            w.now,
            w.command.as_ref().map(|c| c.command_id),
        );
        enqueue_event(txn, &subscribers, &event, w.trace_ctx, now).await?;
    }
    Ok(version)
}

/// Map a unique violation on the UTR or deposit-hash index to [`WriteError::UtrInUse`] /
/// [`WriteError::TxHashInUse`]; any other (the order's natural key, the inbox) means
/// another writer got there first: [`WriteError::Conflict`]. PostgreSQL names the index
/// in its message, SQLite the columns.
fn classify(e: DbErr) -> WriteError {
    if is_unique_violation(&e) {
        let text = e.to_string();
        if text.contains("ux_orders_provider_utr") || text.contains("orders.utr") {
            return WriteError::UtrInUse;
        }
        if text.contains("ux_orders_provider_deposit_tx_hash")
            || text.contains("orders.deposit_tx_hash")
        {
            return WriteError::TxHashInUse;
        }
        return WriteError::Conflict;
    }
    WriteError::Db(e)
}

async fn write_history(
    txn: &impl ConnectionTrait,
    d: &Decision,
    w: &Write<'_>,
    now: i64,
) -> Result<(), DbErr> {
    let o = &d.order;
    if let [h] = d.history.as_slice() {
        return write_one_history_row(txn, &o.id.to_string(), h, w, now).await;
    }
    if d.history.is_empty() {
        return Ok(());
    }
    let last: Option<i32> = order_events::Entity::find()
        .select_only()
        .column(order_events::Column::Seq)
        .filter(order_events::Column::OrderId.eq(o.id.to_string()))
        .order_by_desc(order_events::Column::Seq)
        .limit(1)
        .into_tuple()
        .one(txn)
        .await?;
    let mut seq = last.unwrap_or(0);
    let rows = d.history.iter().map(|h| {
        seq += 1;
        let (from, to) = match h.transition {
            Some((from, to)) => (
                Some(from.as_str().to_string()),
                Some(to.as_str().to_string()),
            ),
            None => (None, None),
        };
        order_events::ActiveModel {
            id: NotSet,
            order_id: Set(o.id.to_string()),
            seq: Set(seq),
            kind: Set(h.kind.to_string()),
            from_state: Set(from),
            to_state: Set(to),
            detail: Set(h.detail.to_string()),
            command_id: Set(w.command.as_ref().map(|c| c.command_id.to_string())),
            trace_ctx: Set(w.trace_ctx.map(str::to_string)),
            created_at: Set(now),
        }
    });
    order_events::Entity::insert_many(rows.collect::<Vec<_>>())
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// A decision's only history row (most decisions have one), numbered in its own
/// `INSERT` (`seq = (SELECT MAX(seq) + 1 …)`) instead of after a read of the last number.
/// Two writers of one order cannot number alike: the order row's version check, written
/// first in the same transaction, lets only one of them through (and the `(order_id,
/// seq)` index backs it up).
async fn write_one_history_row(
    txn: &impl ConnectionTrait,
    order_id: &str,
    h: &rampd_domain::order::History,
    w: &Write<'_>,
    now: i64,
) -> Result<(), DbErr> {
    use order_events::Column as C;
    let next_seq = Query::select()
        .expr(Expr::cust("COALESCE(MAX(seq), 0) + 1"))
        .from(order_events::Entity)
        .and_where(Expr::col(C::OrderId).eq(order_id))
        .to_owned();
    let (from, to) = match h.transition {
        Some((from, to)) => (Some(from.as_str()), Some(to.as_str())),
        None => (None, None),
    };
    let insert = Query::insert()
        .into_table(order_events::Entity)
        .columns([
            C::OrderId,
            C::Seq,
            C::Kind,
            C::FromState,
            C::ToState,
            C::Detail,
            C::CommandId,
            C::TraceCtx,
            C::CreatedAt,
        ])
        .values_panic([
            Expr::val(order_id),
            Expr::SubQuery(None, Box::new(next_seq.into())),
            Expr::val(h.kind),
            Expr::val(from),
            Expr::val(to),
            Expr::val(h.detail.to_string()),
            Expr::val(w.command.as_ref().map(|c| c.command_id)),
            Expr::val(w.trace_ctx),
            Expr::val(now),
        ])
        .to_owned();
    txn.execute(&insert).await?;
    Ok(())
}

async fn write_task(
    txn: &impl ConnectionTrait,
    order_id: &str,
    d: &Decision,
    trace_ctx: Option<&str>,
    now: i64,
    release_lease: Option<&str>,
) -> Result<(), DbErr> {
    use scheduled_tasks::Column as C;
    let (status, run_at) = match d.next_run {
        NextRun::Keep => return Ok(()),
        NextRun::At(t) => ("ready", t.timestamp_millis()),
        NextRun::Done => ("done", now),
    };
    let row = scheduled_tasks::ActiveModel {
        id: Set(Uuid::now_v7().to_string()),
        order_id: Set(order_id.to_string()),
        kind: Set(DRIVE.into()),
        status: Set(status.into()),
        run_at: Set(run_at),
        priority: Set(d.urgency.rank()),
        attempt: Set(0),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        trace_ctx: Set(trace_ctx.map(str::to_string)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    // Another holder's lease is left alone: a replica that holds it finishes its call and
    // then finds the order's version moved on. The lease of `release_lease` ends here.
    let mut upsert = OnConflict::columns([C::OrderId, C::Kind])
        .update_columns([C::Status, C::RunAt, C::Priority, C::UpdatedAt])
        .to_owned();
    if let Some(token) = release_lease {
        // `CASE WHEN lease_owner = <token> THEN NULL ELSE <col> END`, on the stored row.
        let mine = || Expr::col((scheduled_tasks::Entity, C::LeaseOwner)).eq(token);
        let owner = Expr::case(mine(), Expr::val(Option::<String>::None))
            .finally(Expr::col((scheduled_tasks::Entity, C::LeaseOwner)));
        let until = Expr::case(mine(), Expr::val(Option::<i64>::None))
            .finally(Expr::col((scheduled_tasks::Entity, C::LeaseUntil)));
        upsert
            .value(C::LeaseOwner, owner)
            .value(C::LeaseUntil, until);
    }
    scheduled_tasks::Entity::insert(row)
        .on_conflict(upsert)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Queue an order event for NATS and for every endpoint of its tenant subscribed to it. The JSON bytes
/// are fixed here and never rebuilt, so retries resend the same body under the same id.
async fn enqueue_event(
    txn: &impl ConnectionTrait,
    subscribers: &[Subscriber],
    event: &OrderEvent,
    trace_ctx: Option<&str>,
    now: i64,
) -> Result<(), DbErr> {
    let body = serde_json::to_string(event).map_err(|e| DbErr::Custom(e.to_string()))?;
    let subject = event_subject(&event.tenant, event.direction, &event.event_type);
    insert_outbox(
        txn,
        &event.event_id,
        subject,
        body.clone(),
        Some(&event.rampd_order_id),
        trace_ctx,
        now,
    )
    .await?;
    for ep in subscribers.iter().filter(|s| s.wants(&event.event_type)) {
        let row = webhook_deliveries::ActiveModel {
            id: Set(format!("msg_{}", Uuid::now_v7().simple())),
            order_id: Set(event.rampd_order_id.clone()),
            tenant: Set(event.tenant.clone()),
            endpoint_id: Set(ep.id.clone()),
            url: Set(ep.url.clone()),
            event_type: Set(event.event_type.clone()),
            body: Set(body.clone()),
            // A disabled endpoint's deliveries wait to be replayed when it is enabled.
            status: Set(if ep.enabled { PENDING } else { SKIPPED }.into()),
            attempt: Set(0),
            run_at: Set(now),
            lease_owner: Set(None),
            lease_until: Set(None),
            last_status: Set(None),
            last_error: Set(None),
            trace_ctx: Set(trace_ctx.map(str::to_string)),
            created_at: Set(now),
            delivered_at: Set(None),
            dead_at: Set(None),
        };
        webhook_deliveries::Entity::insert(row)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_outbox(
    txn: &impl ConnectionTrait,
    id: &str,
    subject: String,
    payload: String,
    order_id: Option<&str>,
    trace_ctx: Option<&str>,
    now: i64,
) -> Result<(), DbErr> {
    let row = outbox::ActiveModel {
        id: Set(id.to_string()),
        subject: Set(subject),
        payload: Set(payload),
        order_id: Set(order_id.map(str::to_string)),
        trace_ctx: Set(trace_ctx.map(str::to_string)),
        created_at: Set(now),
        published_at: Set(None),
        attempts: Set(0),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
    };
    outbox::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

async fn record_command(
    txn: &impl ConnectionTrait,
    c: &CommandRecord<'_>,
    order_id: Option<&str>,
    outcome: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<(), DbErr> {
    let row = processed_commands::ActiveModel {
        id: Set(c.inbox_id()),
        tenant: Set(c.tenant.to_string()),
        command_id: Set(c.command_id.to_string()),
        command_type: Set(c.command_type.to_string()),
        order_id: Set(order_id.map(str::to_string)),
        outcome: Set(outcome.to_string()),
        reason: Set(reason.map(str::to_string)),
        processed_at: Set(now),
        fingerprint: Set(c.fingerprint.map(|f| f.as_str().to_string())),
    };
    processed_commands::Entity::insert(row)
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
    Ok(match row {
        None => Seen::New,
        Some(row) => match (row.fingerprint.as_deref(), c.fingerprint) {
            (Some(before), Some(now)) if before != now.as_str() => Seen::Reused,
            _ => Seen::Repeat,
        },
    })
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
    enqueue_rejection(db, direction, rejected, None, trace_ctx, now).await
}

/// Queue `rejected` on `ramp.evt.<tenant>.<direction>.command_rejected`, in `txn`.
async fn enqueue_rejection(
    txn: &impl ConnectionTrait,
    direction: &str,
    rejected: &CommandRejected,
    order_id: Option<&str>,
    trace_ctx: Option<&str>,
    now: i64,
) -> Result<(), DbErr> {
    let body = serde_json::to_string(rejected).map_err(|e| DbErr::Custom(e.to_string()))?;
    let subject = format!("ramp.evt.{}.{direction}.command_rejected", rejected.tenant);
    let id = &rejected.event_id;
    insert_outbox(txn, id, subject, body, order_id, trace_ctx, now).await
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
    let txn = begin_write(db).await?;
    let result = async {
        let Some((direction, rejected)) = rejection else {
            return record_command(&txn, c, order_id, "noop", None, now).await;
        };
        record_command(&txn, c, order_id, "rejected", Some(&rejected.code), now).await?;
        enqueue_rejection(&txn, direction, rejected, order_id, trace_ctx, now).await
    }
    .await;
    match settle(txn, result).await {
        Err(e) if is_unique_violation(&e) => Ok(()),
        other => other,
    }
}
