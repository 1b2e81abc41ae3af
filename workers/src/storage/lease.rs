//! Leased claims over a work table (tasks, outbox, webhook deliveries).
//!
//! A claim is one guarded `UPDATE … SET lease_owner = <token>, lease_until = now + lease
//! WHERE id IN (<due candidates>) AND <still open and due> AND (lease_until IS NULL OR
//! lease_until < now) RETURNING *` ([`claim`]; [`take`] is the same for callers that chose
//! the candidates themselves). It needs no row locks, so it is equally correct on SQLite
//! (which has none) and PostgreSQL (where a concurrent claimer re-checks the guard after the
//! first one commits and skips the row). A replica that dies keeps its rows only until
//! `lease_until`; then any replica can claim them.
//!
//! What "open" and "due" mean belongs to the queue ([`LeaseColumns`]), not to the caller:
//! [`candidates`] and [`take`] both apply them, so no caller can forget either. The UPDATE
//! must re-check them because candidates go stale: between one replica's candidate read
//! and its UPDATE, another may claim the row, attempt it and reschedule it (a webhook retry
//! due in 30 s must not be sent again 35 ms later), finish it or publish it. Callers only
//! narrow (`kind = drive`, the ids the sender chose).

use rampd_domain::order::Urgency;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, ModelTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, UpdateMany,
};
use uuid::Uuid;

use super::entities::webhook_deliveries::PENDING;
use super::entities::{outbox, scheduled_tasks, webhook_deliveries};

/// The columns a leased table has, and what makes one of its rows claimable.
pub struct LeaseColumns<C> {
    pub id: C,
    pub lease_owner: C,
    pub lease_until: C,
    /// Claimed first, lowest first, before `order_by` (the tasks' urgency); `None` for
    /// queues whose rows are all alike.
    pub first_by: Option<ClaimFirst<C>>,
    /// Claim order (oldest due first).
    pub order_by: C,
    /// When a row falls due (epoch ms); a claim takes only rows with `due_at <= now`.
    /// `None` for a queue whose rows are due as soon as they are committed (the outbox).
    pub due_at: Option<C>,
    /// The rows still waiting for work (not done, not published, not delivered).
    pub open: fn() -> Condition,
}

/// A small integer column a queue is claimed by first, and every value it takes.
pub struct ClaimFirst<C> {
    pub col: C,
    /// Every value of `col`, in claim order. On PostgreSQL a claim reads the due rows of
    /// each value in turn (see [`claim`]).
    pub values: &'static [i16],
}

/// The rank of every urgency, most urgent first: derived from `Urgency::ALL`, so that an
/// urgency added there is claimed too (a rank left out would never be claimed).
const URGENCY_RANKS: [i16; Urgency::ALL.len()] = {
    let mut ranks = [0; Urgency::ALL.len()];
    let mut i = 0;
    while i < ranks.len() {
        ranks[i] = Urgency::ALL[i].rank();
        i += 1;
    }
    ranks
};

/// Order tasks, claimed most urgent first (`priority`), then oldest `run_at` first: when
/// the provider budget lets the executor claim fewer than are due, the orders whose
/// payment was just submitted go before deadline checks, and those before parked orders.
pub const TASKS: LeaseColumns<scheduled_tasks::Column> = LeaseColumns {
    id: scheduled_tasks::Column::Id,
    lease_owner: scheduled_tasks::Column::LeaseOwner,
    lease_until: scheduled_tasks::Column::LeaseUntil,
    first_by: Some(ClaimFirst {
        col: scheduled_tasks::Column::Priority,
        values: &URGENCY_RANKS,
    }),
    order_by: scheduled_tasks::Column::RunAt,
    due_at: Some(scheduled_tasks::Column::RunAt),
    open: || Condition::all().add(scheduled_tasks::Column::Status.eq("ready")),
};

/// Events waiting for NATS, claimed in the order they were written. An event is due once
/// committed: there is no "publish later". A failed publish backs off by keeping its
/// lease a little while.
pub const OUTBOX: LeaseColumns<outbox::Column> = LeaseColumns {
    id: outbox::Column::Id,
    lease_owner: outbox::Column::LeaseOwner,
    lease_until: outbox::Column::LeaseUntil,
    first_by: None,
    order_by: outbox::Column::CreatedAt,
    due_at: None,
    open: || Condition::all().add(outbox::Column::PublishedAt.is_null()),
};

/// Webhook deliveries, claimed oldest `run_at` first.
pub const DELIVERIES: LeaseColumns<webhook_deliveries::Column> = LeaseColumns {
    id: webhook_deliveries::Column::Id,
    lease_owner: webhook_deliveries::Column::LeaseOwner,
    lease_until: webhook_deliveries::Column::LeaseUntil,
    first_by: None,
    order_by: webhook_deliveries::Column::RunAt,
    due_at: Some(webhook_deliveries::Column::RunAt),
    open: || Condition::all().add(webhook_deliveries::Column::Status.eq(PENDING)),
};

/// Claim up to `limit` claimable rows of `E` (within `narrow`) for `owner`; returns the
/// claimed rows, oldest due first.
///
/// One statement. On SQLite: `UPDATE … WHERE id IN (<up to limit claimable ids, oldest
/// due first>) AND <claimable> RETURNING *`; the outer guard repeats the inner one, so the
/// statement is correct without row locks.
///
/// On PostgreSQL: `UPDATE … WHERE id IN (SELECT * FROM rampd_ids(ARRAY(<the same select>
/// FOR UPDATE SKIP LOCKED))) RETURNING *`, without the outer guard; a queue with a first
/// column is selected one of its values at a time ([`postgres_due_ids`]). The inner select locks
/// the ids it returns (concurrent claimers pass over each other's rows), and a row another
/// claimer changed first is re-checked on its newest version before it is locked, so the
/// ids are claimable until the statement ends.
///
/// The two phases of a claim, [`candidates`] and [`take`], are public so that a caller can
/// choose among the candidates (the webhook sender bounds each endpoint's share) and so
/// that tests can separate them the way a slow replica does.
pub async fn claim<E, C>(
    db: &impl ConnectionTrait,
    cols: &LeaseColumns<C>,
    narrow: Condition,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: u64,
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    let backend = db.get_database_backend();
    let update = claim_update::<E, C>(backend, cols, narrow, owner, now_ms, lease_ms, limit);
    let mut rows = update.exec_with_returning(db).await?;
    sort_in_claim_order(&mut rows, cols);
    Ok(rows)
}

/// The UPDATE of [`claim`] for `backend`.
pub(super) fn claim_update<E, C>(
    backend: DbBackend,
    cols: &LeaseColumns<C>,
    narrow: Condition,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: u64,
) -> UpdateMany<E>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    // One pair per backend: which ids are claimed, and the guard the UPDATE repeats.
    let (chosen, guard) = if backend == DbBackend::Postgres {
        // Not `IN (subquery)` directly: PostgreSQL may plan that as a semi-join that runs
        // the subquery again per row, and then LIMIT bounds each run, not the claim (seen:
        // a claim of 32 took 682 rows). `ARRAY(subquery)` runs once, before the update,
        // and `rampd_ids` (estimated one row) makes the cached plan look the chosen ids up
        // by key at any table size (migration m20261202_000091). No guard: the inner
        // select locks every id it returns, after re-checking its conditions on the row's
        // newest version, so the ids stay claimable until this statement ends; repeating
        // the guard outside only gave the planner a range to scan.
        let chosen = Expr::cust_with_exprs(
            "$1 IN (SELECT * FROM rampd_ids(ARRAY($2)))",
            [
                Expr::col(cols.id),
                postgres_due_ids::<E, C>(cols, narrow, now_ms, limit),
            ],
        );
        (chosen, Condition::all())
    } else {
        let due = in_claim_order(due_select::<E, C>(cols, narrow.clone(), now_ms), cols);
        let chosen = cols.id.in_subquery(due.limit(limit).into_query());
        (chosen, narrow.add(claimable(cols, now_ms)))
    };
    let token = format!("{owner}/{}", Uuid::now_v7().simple());
    E::update_many()
        .col_expr(cols.lease_owner, Expr::value(token))
        .col_expr(cols.lease_until, Expr::value(now_ms + lease_ms))
        .filter(chosen)
        .filter(guard)
}

/// The ids of the claimable rows of `E` within `narrow`.
fn due_select<E, C>(cols: &LeaseColumns<C>, narrow: Condition, now_ms: i64) -> sea_orm::Select<E>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    E::find()
        .select_only()
        .column(cols.id)
        .filter(narrow)
        .filter(claimable(cols, now_ms))
}

/// PostgreSQL's choice of up to `limit` claimable ids, locked (`FOR UPDATE SKIP LOCKED`).
///
/// A queue claimed by a first column (the tasks' urgency) is read one value at a time,
/// `LATERAL` over the values in claim order, each an index range `first = v AND due_at <=
/// now` read in `order_by` order; the outer LIMIT stops the reading (and the locking, which
/// happens row by row as rows are read) as soon as `limit` ids are chosen. Written as one
/// `ORDER BY first, order_by`, the due range of every value is one range in no useful
/// order: PostgreSQL cached it as a bitmap of every index entry due by now, dead ones
/// included, plus a sort, while the table had not been analysed yet (16,000 entries for
/// 160 claimable tasks at 10,000 orders). The claim order across values relies on the
/// nested loop reading `unnest` in order, which PostgreSQL does; correctness never depends
/// on it, only the preference of the most urgent.
fn postgres_due_ids<E, C>(
    cols: &LeaseColumns<C>,
    narrow: Condition,
    now_ms: i64,
    limit: u64,
) -> Expr
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    let locked = |q: sea_orm::Select<E>| -> SelectStatement {
        let mut q = q.order_by_asc(cols.order_by).limit(limit).into_query();
        q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        q
    };
    let due = due_select::<E, C>(cols, narrow, now_ms);
    let Some(first) = &cols.first_by else {
        return Expr::SubQuery(None, Box::new(locked(due).into()));
    };
    let value = (Alias::new("p"), Alias::new("v"));
    let each = locked(due.filter(Expr::col(first.col).equals(value)));
    let values: Vec<String> = first.values.iter().map(i16::to_string).collect();
    Expr::cust_with_exprs(
        format!(
            "SELECT t.* FROM unnest('{{{}}}'::smallint[]) AS p(v), LATERAL $1 AS t LIMIT $2",
            values.join(",")
        ),
        [
            Expr::SubQuery(None, Box::new(each.into())),
            Expr::val(limit),
        ],
    )
}

/// RETURNING keeps no order; claimers work (and the relay publishes) in claim order.
fn sort_in_claim_order<M, C>(rows: &mut [M], cols: &LeaseColumns<C>)
where
    M: ModelTrait,
    C: ColumnTrait + Into<<M::Entity as EntityTrait>::Column>,
{
    rows.sort_by_key(|row| {
        let first = cols
            .first_by
            .as_ref()
            .map_or(0, |f| sort_key(row.get(f.col.into())));
        (first, sort_key(row.get(cols.order_by.into())))
    });
}

/// `ORDER BY first_by, order_by` (or `order_by` alone).
fn in_claim_order<E, C>(q: sea_orm::Select<E>, cols: &LeaseColumns<C>) -> sea_orm::Select<E>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    match &cols.first_by {
        Some(first) => q.order_by_asc(first.col).order_by_asc(cols.order_by),
        None => q.order_by_asc(cols.order_by),
    }
}

/// A claim-order column's value as a sortable integer (epoch ms, or a priority).
fn sort_key(v: sea_orm::Value) -> i64 {
    match v {
        sea_orm::Value::BigInt(Some(n)) => n,
        sea_orm::Value::Int(Some(n)) => n.into(),
        sea_orm::Value::SmallInt(Some(n)) => n.into(),
        _ => i64::MIN,
    }
}

/// The ids of up to `limit` rows claimable at `now_ms`, oldest due first. Only a hint: by
/// the time [`take`] runs, another replica may have claimed, done or rescheduled them.
pub async fn candidates<E, C>(
    db: &impl ConnectionTrait,
    cols: &LeaseColumns<C>,
    narrow: Condition,
    now_ms: i64,
    limit: u64,
) -> Result<Vec<String>, DbErr>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    in_claim_order(
        E::find()
            .select_only()
            .column(cols.id)
            .filter(narrow)
            .filter(claimable(cols, now_ms)),
        cols,
    )
    .limit(limit)
    .into_tuple()
    .all(db)
    .await
}

/// Lease those of `ids` that are still claimable at `now_ms` (open, due, no live lease, and
/// within `narrow`) to `owner`, with one guarded UPDATE; returns the rows this call won.
pub async fn take<E, C>(
    db: &impl ConnectionTrait,
    cols: &LeaseColumns<C>,
    ids: Vec<String>,
    narrow: Condition,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // A token per claim round, so the lease names the round that won it.
    let token = format!("{owner}/{}", Uuid::now_v7().simple());
    let mut rows = E::update_many()
        .col_expr(cols.lease_owner, Expr::value(token))
        .col_expr(cols.lease_until, Expr::value(now_ms + lease_ms))
        .filter(cols.id.is_in(ids))
        .filter(narrow)
        .filter(claimable(cols, now_ms))
        .exec_with_returning(db)
        .await?;
    sort_in_claim_order(&mut rows, cols);
    Ok(rows)
}

/// Open, due at `now_ms`, and under no live lease (never leased, released, or run out).
/// Callers that read candidates of their own (the webhook sender) filter with this too.
pub fn claimable<C: ColumnTrait>(cols: &LeaseColumns<C>, now_ms: i64) -> Condition {
    let free = Condition::any()
        .add(cols.lease_until.is_null())
        .add(cols.lease_until.lt(now_ms));
    let mut c = Condition::all().add((cols.open)()).add(free);
    if let Some(due_at) = cols.due_at {
        c = c.add(due_at.lte(now_ms));
    }
    c
}

/// Add "end the lease" to an update of leased rows, so the row is claimable again as soon
/// as it is due. Callers filter on their own lease token.
pub fn released<E>(update: UpdateMany<E>, cols: &LeaseColumns<E::Column>) -> UpdateMany<E>
where
    E: EntityTrait,
{
    update
        .col_expr(cols.lease_owner, Expr::value(Option::<String>::None))
        .col_expr(cols.lease_until, Expr::value(Option::<i64>::None))
}
