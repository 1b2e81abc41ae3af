//! Deleting finished work past its retention: published outbox rows, done drive tasks,
//! delivered and dead-lettered webhook deliveries with their attempts, and the record of
//! provider callbacks received (`provider_callbacks`, written once, never changed). `order_events` is
//! the permanent audit trail and is never touched; neither is anything still open
//! (unpublished, ready, pending) or held for an operator (`skipped` deliveries, which
//! `rampd webhooks endpoint enable --replay` sends).
//!
//! Each call deletes one bounded batch in one short statement or transaction, so other
//! writers interleave between batches. Every DELETE repeats its selection's condition on
//! the rows it deletes, so a row that changed between the two (a done task re-armed by a
//! new decision, a delivered delivery replayed by an operator) is kept. Several replicas
//! may prune at once: a row is deleted once, the others find it gone.

use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QuerySelect,
};

use super::begin_write;
use super::entities::webhook_attempts as attempts;
use super::entities::webhook_deliveries as deliveries;
use super::entities::webhook_deliveries::{DEAD, DELIVERED};
use super::entities::{outbox, provider_callbacks as callbacks, scheduled_tasks as tasks};
use super::write::settle;

/// Rows older than these (epoch ms) are past retention.
#[derive(Clone, Copy, Debug)]
pub struct Cutoffs {
    pub outbox_published_before: i64,
    pub tasks_done_before: i64,
    pub delivered_before: i64,
    pub dead_before: i64,
    pub callbacks_before: i64,
    /// For the lease check on done tasks.
    pub now: i64,
}

/// What one batch removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub outbox: u64,
    pub tasks: u64,
    pub deliveries: u64,
    pub attempts: u64,
    pub callbacks: u64,
}

impl Removed {
    /// The counts with their table names.
    pub fn by_table(&self) -> [(&'static str, u64); 5] {
        [
            ("outbox", self.outbox),
            ("scheduled_tasks", self.tasks),
            ("webhook_deliveries", self.deliveries),
            ("webhook_attempts", self.attempts),
            ("provider_callbacks", self.callbacks),
        ]
    }

    pub fn add(&mut self, o: Removed) {
        self.outbox += o.outbox;
        self.tasks += o.tasks;
        self.deliveries += o.deliveries;
        self.attempts += o.attempts;
        self.callbacks += o.callbacks;
    }
}

/// One batch of each kind, at most `batch` outbox rows, `batch` tasks and `batch`
/// deliveries of each final status (with their attempts, a few per delivery).
pub async fn prune_batch(
    db: &DatabaseConnection,
    c: &Cutoffs,
    batch: u64,
) -> Result<Removed, DbErr> {
    let outbox = prune_outbox(db, c.outbox_published_before, batch).await?;
    let tasks = prune_tasks(db, c.tasks_done_before, c.now, batch).await?;
    let (d1, a1) = prune_deliveries(
        db,
        DELIVERED,
        deliveries::Column::DeliveredAt,
        c.delivered_before,
        batch,
    )
    .await?;
    let (d2, a2) =
        prune_deliveries(db, DEAD, deliveries::Column::DeadAt, c.dead_before, batch).await?;
    let callbacks = prune_callbacks(db, c.callbacks_before, batch).await?;
    Ok(Removed {
        outbox,
        tasks,
        deliveries: d1 + d2,
        attempts: a1 + a2,
        callbacks,
    })
}

/// Callbacks received before `before`. Their rows never change.
pub async fn prune_callbacks(
    db: &impl ConnectionTrait,
    before: i64,
    batch: u64,
) -> Result<u64, DbErr> {
    let old = || Condition::all().add(callbacks::Column::ReceivedAt.lt(before));
    let ids = Query::select()
        .column(callbacks::Column::Id)
        .from(callbacks::Entity)
        .cond_where(old())
        .limit(batch)
        .to_owned();
    let res = callbacks::Entity::delete_many()
        .filter(callbacks::Column::Id.in_subquery(ids))
        .filter(old())
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Published before `before`. Published rows never change again.
pub async fn prune_outbox(
    db: &impl ConnectionTrait,
    before: i64,
    batch: u64,
) -> Result<u64, DbErr> {
    let old = || Condition::all().add(outbox::Column::PublishedAt.lt(before));
    let ids = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .cond_where(old())
        .limit(batch)
        .to_owned();
    let res = outbox::Entity::delete_many()
        .filter(outbox::Column::Id.in_subquery(ids))
        .filter(old())
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Done before `before`, and under no live lease. A done task's `run_at` is when it was
/// done (the write path sets it then; closing a task leaves the time it was last due,
/// within its lease of that). A deleted task is simply inserted again if the order ever
/// schedules work (`(order_id, kind)` upsert).
pub async fn prune_tasks(
    db: &impl ConnectionTrait,
    before: i64,
    now: i64,
    batch: u64,
) -> Result<u64, DbErr> {
    let old = || {
        Condition::all()
            .add(tasks::Column::Status.eq("done"))
            .add(tasks::Column::RunAt.lt(before))
            .add(
                Condition::any()
                    .add(tasks::Column::LeaseUntil.is_null())
                    .add(tasks::Column::LeaseUntil.lt(now)),
            )
    };
    let ids = Query::select()
        .column(tasks::Column::Id)
        .from(tasks::Entity)
        .cond_where(old())
        .limit(batch)
        .to_owned();
    let res = tasks::Entity::delete_many()
        .filter(tasks::Column::Id.in_subquery(ids))
        .filter(old())
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Deliveries in `status` whose `at` is before `before`, and their attempts; returns
/// (deliveries, attempts) removed. One transaction: the attempts go only with their
/// delivery, and a delivery replayed meanwhile keeps both.
pub async fn prune_deliveries(
    db: &DatabaseConnection,
    status: &str,
    at: deliveries::Column,
    before: i64,
    batch: u64,
) -> Result<(u64, u64), DbErr> {
    let old = || {
        Condition::all()
            .add(deliveries::Column::Status.eq(status))
            .add(at.lt(before))
    };
    let ids: Vec<String> = deliveries::Entity::find()
        .select_only()
        .column(deliveries::Column::Id)
        .filter(old())
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let txn = begin_write(db).await?;
    let out = async {
        let gone = deliveries::Entity::delete_many()
            .filter(deliveries::Column::Id.is_in(ids.clone()))
            .filter(old())
            .exec(&txn)
            .await?
            .rows_affected;
        // Attempts of the chosen deliveries that no longer exist (deleted just now).
        let kept = Query::select()
            .column(deliveries::Column::Id)
            .from(deliveries::Entity)
            .and_where(deliveries::Column::Id.is_in(ids.clone()))
            .to_owned();
        let tries = attempts::Entity::delete_many()
            .filter(attempts::Column::DeliveryId.is_in(ids.clone()))
            .filter(attempts::Column::DeliveryId.not_in_subquery(kept))
            .exec(&txn)
            .await?
            .rows_affected;
        Ok::<_, DbErr>((gone, tries))
    }
    .await;
    settle(txn, out).await
}
