//! Leased claims over a work table (tasks, outbox, webhook deliveries).
//!
//! A claim is one guarded `UPDATE … SET lease_owner = <token>, lease_until = now + lease
//! WHERE id IN (<due candidates>) AND <still due> AND (lease_until IS NULL OR lease_until <
//! now)`, followed by reading back the rows carrying the token. It needs no row locks, so
//! it is equally correct on SQLite (which has none) and PostgreSQL (where a concurrent
//! claimer re-checks the guard after the first one commits and skips the row). A replica
//! that dies keeps its rows only until `lease_until`; then any replica can claim them.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

/// The columns a leased table has.
pub struct LeaseColumns<C> {
    pub id: C,
    pub lease_owner: C,
    pub lease_until: C,
    /// Claim order (oldest due first).
    pub order_by: C,
}

/// Claim up to `limit` due rows of `E` for `owner`; returns the claimed rows.
pub async fn claim<E, C>(
    db: &impl ConnectionTrait,
    cols: &LeaseColumns<C>,
    due: Condition,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: u64,
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait<Column = C>,
    C: ColumnTrait,
{
    let free = Condition::any()
        .add(cols.lease_until.is_null())
        .add(cols.lease_until.lt(now_ms));
    let ids: Vec<String> = E::find()
        .select_only()
        .column(cols.id)
        .filter(due.clone())
        .filter(free.clone())
        .order_by_asc(cols.order_by)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // A token per claim round, so reading back returns exactly what this round won.
    let token = format!("{owner}/{}", Uuid::now_v7().simple());
    E::update_many()
        .col_expr(cols.lease_owner, Expr::value(token.clone()))
        .col_expr(cols.lease_until, Expr::value(now_ms + lease_ms))
        .filter(cols.id.is_in(ids))
        .filter(due)
        .filter(free)
        .exec(db)
        .await?;
    E::find()
        .filter(cols.lease_owner.eq(token))
        .order_by_asc(cols.order_by)
        .all(db)
        .await
}
