//! Writing many [`Plan`]s at once: one statement per table for all of them, whatever
//! their number, instead of one per row.
//!
//! For the plans of one transaction:
//! 1. every order update, in one `UPDATE orders … FROM v` guarded row by row by
//!    the version the plan expects, `RETURNING` the ids it changed: a plan whose order
//!    moved on meanwhile is a [`WriteError::Conflict`] and none of its other rows are
//!    written (the ones after it do not depend on it);
//! 2. the new orders, their history (numbered from the order rows' `history_seq`, no
//!    read), the drive tasks (one upsert), the lease ends and task moves (one `UPDATE
//!    … FROM v`), the outbox, the webhook deliveries (after one read of the tenants'
//!    endpoints) and the inbox: one multi-row statement each ([`super::many_rows`]).
//!
//! A plan's rows are written whole or not at all: a conflict is found before anything of
//! the plan is written, and any statement that fails (a UTR another order holds, a
//! command id already in the inbox) fails the whole call, which the caller answers by
//! rolling back and writing each plan alone (`group_commit`).
//!
//! Two plans of one order in one call are written one after the other (in "rounds"), so
//! that the second sees the first, as it would written alone.

use std::collections::{HashMap, HashSet};

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ConnectionTrait, DbErr, IntoActiveModel, Value};
use uuid::Uuid;

use super::entities::webhook_deliveries::{PENDING, SKIPPED};
use super::entities::{
    order_events, orders, outbox, processed_commands, scheduled_tasks, webhook_attempts,
    webhook_deliveries,
};
use super::handoff::OutboxLease;
use super::many_rows::{Upsert, insert_all, update_from};
use super::plan::{DRIVE, Plan};
use super::write_error::{WriteError, classify};
use crate::webhooks::endpoints::{Subscriber, subscribers};

/// A drive task written again (one per order and kind) takes the new status, run and
/// urgency, and keeps the rest (its id, attempts, lease, trace).
pub(crate) const DRIVE_TASK_UPSERT: Upsert<scheduled_tasks::Entity> = Upsert {
    on: &[
        scheduled_tasks::Column::OrderId,
        scheduled_tasks::Column::Kind,
    ],
    update: &[
        scheduled_tasks::Column::Status,
        scheduled_tasks::Column::RunAt,
        scheduled_tasks::Column::Priority,
        scheduled_tasks::Column::UpdatedAt,
    ],
};

/// Write `plans` in `txn`: for each, its order's new version, or `Conflict` when its
/// order moved on. `Err` when a statement failed: then `txn` holds part of the rows and
/// must be rolled back. With `lease`, the outbox rows are inserted under it, to be handed
/// to the relay once committed ([`super::handoff`]).
pub async fn apply(
    txn: &impl ConnectionTrait,
    plans: &[&Plan],
    lease: Option<&OutboxLease>,
) -> Result<Vec<Result<i64, WriteError>>, WriteError> {
    let mut results: Vec<Option<Result<i64, WriteError>>> = Vec::new();
    results.resize_with(plans.len(), || None);
    for round in rounds(plans) {
        let batch: Vec<&Plan> = round.iter().map(|&i| plans[i]).collect();
        for (i, r) in round
            .into_iter()
            .zip(apply_round(txn, &batch, lease).await?)
        {
            results[i] = Some(r);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every plan is in a round"))
        .collect())
}

/// The plans split into rounds in which no order is written twice, each plan in the
/// earliest round after every earlier plan of its orders.
fn rounds(plans: &[&Plan]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut last_round: HashMap<&str, usize> = HashMap::new();
    for (i, plan) in plans.iter().enumerate() {
        let ids: Vec<&str> = plan.order_ids().collect();
        let r = ids
            .iter()
            .filter_map(|id| last_round.get(id).map(|r| r + 1))
            .max()
            .unwrap_or(0);
        if r == rounds.len() {
            rounds.push(Vec::new());
        }
        for id in ids {
            last_round.insert(id, r);
        }
        rounds[r].push(i);
    }
    rounds
}

async fn apply_round(
    txn: &impl ConnectionTrait,
    plans: &[&Plan],
    lease: Option<&OutboxLease>,
) -> Result<Vec<Result<i64, WriteError>>, WriteError> {
    let changed = update_orders(txn, plans).await?;
    let results: Vec<Result<i64, WriteError>> = plans
        .iter()
        .map(|p| match p.orders.first() {
            Some(o) if o.expected_version.is_some() && !changed.contains_key(o.row.id.as_str()) => {
                Err(WriteError::Conflict)
            }
            Some(o) => Ok(o.row.version),
            None => Ok(0),
        })
        .collect();
    let live: Vec<&Plan> = plans
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(p, _)| *p)
        .collect();

    let new_orders = live
        .iter()
        .flat_map(|p| &p.orders)
        .filter(|o| o.expected_version.is_none())
        .map(|o| o.row.clone().into_active_model())
        .collect();
    insert_all::<orders::Entity>(txn, new_orders, None)
        .await
        .map_err(classify)?;
    write_history(txn, &live, &changed).await?;
    let tasks = live
        .iter()
        .flat_map(|p| &p.tasks)
        .map(|t| t.clone().into_active_model())
        .collect();
    insert_all::<scheduled_tasks::Entity>(txn, tasks, Some(&DRIVE_TASK_UPSERT)).await?;
    end_leases(txn, &live).await?;
    write_events(txn, &live, lease).await?;
    let inbox = live
        .iter()
        .filter_map(|p| p.inbox.clone())
        .map(IntoActiveModel::into_active_model)
        .collect();
    insert_all::<processed_commands::Entity>(txn, inbox, None)
        .await
        .map_err(classify)?;
    write_attempts(txn, &live).await?;
    Ok(results)
}

/// The webhook attempts of `plans` and their deliveries' new states (one statement each).
/// A delivery whose lease ran out keeps the state its new holder writes; its attempt is
/// on record all the same.
async fn write_attempts(txn: &impl ConnectionTrait, plans: &[&Plan]) -> Result<(), DbErr> {
    let attempts = plans
        .iter()
        .flat_map(|p| &p.attempts)
        .map(|a| a.clone().into_active_model())
        .collect();
    insert_all::<webhook_attempts::Entity>(txn, attempts, None).await?;
    let rows: Vec<Vec<Value>> = plans
        .iter()
        .filter_map(|p| p.delivery.as_ref())
        .map(|d| {
            vec![
                d.id.clone().into(),
                d.lease_owner.clone().into(),
                d.attempt.into(),
                d.status.clone().into(),
                d.last_status.into(),
                d.last_error.clone().into(),
                d.run_at.into(),
                d.delivered_at.into(),
            ]
        })
        .collect();
    let columns = [
        ("v_id", "text"),
        ("v_owner", "text"),
        ("v_attempt", "integer"),
        ("v_status", "text"),
        ("v_last_status", "integer"),
        ("v_last_error", "text"),
        ("v_run_at", "bigint"),
        ("v_delivered_at", "bigint"),
    ];
    let update = "UPDATE webhook_deliveries SET attempt = v.v_attempt, status = v.v_status, \
         last_status = v.v_last_status, last_error = v.v_last_error, \
         run_at = COALESCE(v.v_run_at, webhook_deliveries.run_at), \
         delivered_at = COALESCE(v.v_delivered_at, webhook_deliveries.delivered_at), \
         lease_owner = NULL, lease_until = NULL \
         FROM v WHERE webhook_deliveries.id = v.v_id \
         AND webhook_deliveries.lease_owner = v.v_owner RETURNING id";
    let written = update_from(txn, &columns, &rows, update).await?;
    if written.len() < rows.len() {
        tracing::warn!(
            lost = rows.len() - written.len(),
            "webhook leases lost before their outcomes were recorded"
        );
    }
    Ok(())
}

/// Every version-checked order update of `plans`, in one statement: the ids it changed,
/// each with its `history_seq` as the update left it (advanced by the rows it adds).
async fn update_orders(
    txn: &impl ConnectionTrait,
    plans: &[&Plan],
) -> Result<HashMap<String, i32>, WriteError> {
    let rows: Vec<Vec<Value>> = plans
        .iter()
        .flat_map(|p| &p.orders)
        .filter_map(|o| {
            let v = o.expected_version?;
            let r = &o.row;
            Some(vec![
                r.id.clone().into(),
                v.into(),
                r.version.into(),
                r.state.clone().into(),
                r.data.clone().into(),
                r.provider_order_id.clone().into(),
                r.utr.clone().into(),
                r.deposit_tx_hash.clone().into(),
                r.flagged.into(),
                r.updated_at.into(),
                r.history_seq.into(),
            ])
        })
        .collect();
    let columns = [
        ("v_id", "text"),
        ("v_expected", "bigint"),
        ("v_version", "bigint"),
        ("v_state", "text"),
        ("v_data", "text"),
        ("v_provider_order_id", "text"),
        ("v_utr", "text"),
        ("v_tx_hash", "text"),
        ("v_flagged", "boolean"),
        ("v_updated_at", "bigint"),
        ("v_history_added", "integer"),
    ];
    let update = "UPDATE orders SET version = v.v_version, state = v.v_state, \
         data = v.v_data, provider_order_id = v.v_provider_order_id, utr = v.v_utr, \
         deposit_tx_hash = v.v_tx_hash, flagged = v.v_flagged, updated_at = v.v_updated_at, \
         history_seq = orders.history_seq + v.v_history_added \
         FROM v WHERE orders.id = v.v_id AND orders.version = v.v_expected \
         RETURNING id, history_seq";
    let mut changed = HashMap::new();
    for row in update_from(txn, &columns, &rows, update)
        .await
        .map_err(classify)?
    {
        let id = row.try_get::<String>("", "id").map_err(WriteError::Db)?;
        let seq = row
            .try_get::<i32>("", "history_seq")
            .map_err(WriteError::Db)?;
        changed.insert(id, seq);
    }
    Ok(changed)
}

/// The history rows of `plans`, numbered after each order's last stored row: from 1 for an
/// order this write inserts, and for one it updates from its `history_seq` before the
/// update (`updated` holds the value the update left, advanced by the rows it adds). No
/// read: the number travels with the order row, under its version check.
async fn write_history(
    txn: &impl ConnectionTrait,
    plans: &[&Plan],
    updated: &HashMap<String, i32>,
) -> Result<(), DbErr> {
    let mut last: HashMap<&str, i32> = HashMap::new();
    for o in plans.iter().flat_map(|p| &p.orders) {
        let before = match o.expected_version {
            None => 0,
            Some(_) => match updated.get(&o.row.id) {
                Some(after) => after - o.row.history_seq,
                None => continue,
            },
        };
        last.insert(&o.row.id, before);
    }
    let rows = plans
        .iter()
        .flat_map(|p| &p.history)
        .map(|h| {
            let before = last.get(h.order_id.as_str()).copied().ok_or_else(|| {
                DbErr::Custom(format!(
                    "history of order {} without its order row",
                    h.order_id
                ))
            })?;
            let mut row = h.clone().into_active_model();
            row.id = NotSet;
            row.seq = Set(before + h.seq);
            Ok(row)
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    insert_all::<order_events::Entity>(txn, rows, None).await
}

/// Every lease end (and task move) of `plans`, in one statement.
///
/// A move is guarded by the task row as its lease claimed it (`run_at`, `updated_at`):
/// where a write since changed the task, the task keeps that write's run and only the
/// lease ends.
async fn end_leases(txn: &impl ConnectionTrait, plans: &[&Plan]) -> Result<(), DbErr> {
    let rows: Vec<Vec<Value>> = plans
        .iter()
        .filter_map(|p| p.lease.as_ref())
        .map(|l| {
            let m = l.moved.as_ref();
            vec![
                l.order_id.clone().into(),
                l.token.clone().into(),
                m.map(|m| m.run_at).into(),
                m.map(|m| m.priority).into(),
                m.map(|m| m.claimed_run_at).into(),
                m.map(|m| m.claimed_updated_at).into(),
            ]
        })
        .collect();
    let columns = [
        ("v_order", "text"),
        ("v_token", "text"),
        ("v_run_at", "bigint"),
        ("v_priority", "smallint"),
        ("v_claimed_run_at", "bigint"),
        ("v_claimed_updated_at", "bigint"),
    ];
    let unchanged = "v.v_run_at IS NOT NULL \
         AND scheduled_tasks.run_at = v.v_claimed_run_at \
         AND scheduled_tasks.updated_at = v.v_claimed_updated_at";
    let update = format!(
        "UPDATE scheduled_tasks SET \
         run_at = CASE WHEN {unchanged} THEN v.v_run_at ELSE scheduled_tasks.run_at END, \
         priority = CASE WHEN {unchanged} THEN v.v_priority ELSE scheduled_tasks.priority END, \
         lease_owner = NULL, lease_until = NULL \
         FROM v WHERE scheduled_tasks.order_id = v.v_order \
         AND scheduled_tasks.kind = '{DRIVE}' AND scheduled_tasks.lease_owner = v.v_token \
         RETURNING id"
    );
    update_from(txn, &columns, &rows, &update).await?;
    Ok(())
}

/// The outbox rows of `plans` and, for order events, a delivery to each endpoint of the
/// tenant subscribed to the event's type (endpoints read in this transaction, so one an
/// operator added takes effect with the next event on every replica). A disabled
/// endpoint's deliveries wait, skipped, to be replayed when it is enabled.
async fn write_events(
    txn: &impl ConnectionTrait,
    plans: &[&Plan],
    lease: Option<&OutboxLease>,
) -> Result<(), DbErr> {
    let events: Vec<_> = plans.iter().flat_map(|p| &p.events).collect();
    let tenants: Vec<&str> = events
        .iter()
        .filter_map(|e| e.delivery.as_ref().map(|(t, _)| t.as_str()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let endpoints: HashMap<String, Vec<Subscriber>> = subscribers(txn, &tenants).await?;
    insert_all::<outbox::Entity>(
        txn,
        events
            .iter()
            .map(|e| match lease {
                Some(l) => l.stamp(e.outbox.clone()),
                None => e.outbox.clone(),
            })
            .map(IntoActiveModel::into_active_model)
            .collect(),
        None,
    )
    .await?;
    let mut deliveries = Vec::new();
    for e in &events {
        let Some((tenant, event_type)) = &e.delivery else {
            continue;
        };
        let to = endpoints.get(tenant).map_or(&[][..], Vec::as_slice);
        for ep in to.iter().filter(|s| s.wants(event_type)) {
            let o = &e.outbox;
            let row = webhook_deliveries::Model {
                id: format!("msg_{}", Uuid::now_v7().simple()),
                order_id: o.order_id.clone().unwrap_or_default(),
                tenant: tenant.clone(),
                endpoint_id: ep.id.clone(),
                url: ep.url.clone(),
                event_type: event_type.clone(),
                body: o.payload.clone(),
                status: if ep.enabled { PENDING } else { SKIPPED }.into(),
                attempt: 0,
                run_at: o.created_at,
                lease_owner: None,
                lease_until: None,
                last_status: None,
                last_error: None,
                trace_ctx: o.trace_ctx.clone(),
                created_at: o.created_at,
                delivered_at: None,
                dead_at: None,
            };
            deliveries.push(row.into_active_model());
        }
    }
    insert_all::<webhook_deliveries::Entity>(txn, deliveries, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::plan::LeaseEnd;

    fn lease(order: &str) -> Plan {
        Plan {
            lease: Some(LeaseEnd {
                order_id: order.into(),
                token: "t".into(),
                moved: None,
            }),
            ..Plan::default()
        }
    }

    /// Plans of distinct orders share one round; a second plan of an order goes to the
    /// round after that order's last one, and a plan after it follows it.
    #[test]
    fn rounds_never_write_an_order_twice() {
        let (a, b, c) = (lease("a"), lease("b"), lease("c"));
        let plans = [&a, &b, &a, &c, &a, &b];
        assert_eq!(rounds(&plans), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
        assert_eq!(rounds(&[]), Vec::<Vec<usize>>::new());
    }
}
