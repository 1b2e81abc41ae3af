//! Recording one attempt's outcome, in one transaction: the attempt row, the delivery's
//! next state (guarded by this replica's lease), the endpoint's health, and the
//! operational events (dead-lettered delivery, disabled endpoint) through the outbox.
//! No transaction is open while the HTTP call runs; this one starts after it returned.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rampd_domain::webhooks::events::{
    DELIVERY_DEAD_LETTERED, DeliveryDeadLettered, DisabledReason, ENDPOINT_DISABLED,
    EndpointDisabled, OperationalEvent,
};
use rampd_domain::webhooks::health::HealthChange;
use rampd_domain::webhooks::{AttemptResult, Verdict};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter,
};
use uuid::Uuid;

use super::endpoints::{DISABLED, ENABLED};
use super::http::Sent;

use crate::storage::begin_write;
use crate::storage::entities::{
    webhook_attempts as attempts, webhook_deliveries as deliveries, webhook_endpoints as eps,
};
use crate::storage::group_commit::{GroupCommit, GroupWrite};
use crate::storage::lease::{DELIVERIES, released};
use crate::storage::plan::{DeliveryOutcome, Plan};
use crate::storage::write::{WriteError, apply_one, insert_outbox, settle};

pub use crate::storage::entities::webhook_deliveries::{DEAD, DELIVERED, PENDING, SKIPPED};

pub struct Attempt<'a> {
    pub delivery: &'a deliveries::Model,
    pub number: i32,
    pub started_at: i64,
    pub sent: &'a Sent,
    pub verdict: Verdict,
    pub health: HealthChange,
    pub failing_since: Option<i64>,
}

/// What the commit changed, for the caller's wake-ups and WARN lines.
#[derive(Debug, Default)]
pub struct Recorded {
    pub events: usize,
    /// The endpoint was disabled by this outcome, and why.
    pub disabled: Option<DisabledReason>,
}

pub async fn record(db: &DatabaseConnection, a: &Attempt<'_>) -> Result<Recorded, DbErr> {
    let txn = begin_write(db).await?;
    let out = write(&txn, a).await;
    settle(txn, out).await
}

/// [`record`] in the next batch of `group` (one transaction for many attempts' outcomes,
/// each in a savepoint of its own, see [`crate::storage::group_commit`]), on the writer
/// of the delivery's order.
pub async fn record_grouped(group: &GroupCommit, a: &Attempt<'_>) -> Result<Recorded, DbErr> {
    let now = Utc::now().timestamp_millis();
    let owned = Arc::new(OwnedAttempt {
        plan: plain_outcome(a, now),
        delivery: a.delivery.clone(),
        number: a.number,
        started_at: a.started_at,
        sent: a.sent.clone(),
        verdict: a.verdict,
        health: a.health,
        failing_since: a.failing_since,
        disabled: Mutex::default(),
    });
    let events = group
        .write(&a.delivery.order_id, owned.clone())
        .await
        .map_err(WriteError::into_db)?;
    Ok(Recorded {
        events: events as usize,
        disabled: *owned
            .disabled
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    })
}

/// An [`Attempt`] that owns its parts, for a group-commit writer; with its rows as a
/// [`Plan`] when its outcome is a plain one ([`plain_outcome`]).
struct OwnedAttempt {
    plan: Option<Plan>,
    delivery: deliveries::Model,
    number: i32,
    started_at: i64,
    sent: Sent,
    verdict: Verdict,
    health: HealthChange,
    failing_since: Option<i64>,
    /// What the last run of [`write`] disabled: a group commit may run a write again
    /// (its batch failed), and only the run that committed counts.
    disabled: Mutex<Option<DisabledReason>>,
}

impl GroupWrite for OwnedAttempt {
    fn write<'t>(&'t self, txn: &'t DatabaseTransaction) -> BoxFuture<'t, Result<i64, WriteError>> {
        Box::pin(async move {
            let rec = match &self.plan {
                Some(plan) => Recorded {
                    events: apply_one(txn, plan).await? as usize,
                    disabled: None,
                },
                None => write(txn, &self.as_attempt()).await?,
            };
            *self.disabled.lock().unwrap_or_else(PoisonError::into_inner) = rec.disabled;
            Ok(rec.events as i64)
        })
    }

    fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }
}

impl OwnedAttempt {
    fn as_attempt(&self) -> Attempt<'_> {
        Attempt {
            delivery: &self.delivery,
            number: self.number,
            started_at: self.started_at,
            sent: &self.sent,
            verdict: self.verdict,
            health: self.health,
            failing_since: self.failing_since,
        }
    }
}

/// The rows of an outcome that touches nothing but the attempt and its delivery, the
/// common case (delivered, or a retry while the endpoint's failing streak goes on or was
/// never started): the attempt row and the delivery's new state, written with other
/// outcomes' rows by one statement each. `None` for the others (a dead letter, an
/// endpoint's health changing), which [`write`] records one by one.
fn plain_outcome(a: &Attempt<'_>, now: i64) -> Option<Plan> {
    let steady = match a.health {
        HealthChange::StillFailing => true,
        HealthChange::Healthy => a.failing_since.is_none(),
        HealthChange::StartFailing(_) | HealthChange::Disable => false,
    };
    let (status, run_at, delivered_at) = match a.verdict {
        Verdict::Delivered => (DELIVERED, None, Some(now)),
        Verdict::Retry(delay) => (PENDING, Some(now + delay.as_millis() as i64), None),
        Verdict::Dead | Verdict::EndpointGone => return None,
    };
    let lease_owner = a.delivery.lease_owner.clone()?;
    if !steady {
        return None;
    }
    let (code, error) = result_of(a.sent);
    Some(Plan {
        delivery: Some(DeliveryOutcome {
            id: a.delivery.id.clone(),
            lease_owner,
            attempt: a.number,
            status: status.into(),
            last_status: code,
            last_error: last_error(code, &error),
            run_at,
            delivered_at,
        }),
        attempts: vec![attempt_row(a, code, error)],
        ..Plan::default()
    })
}

/// The HTTP status an attempt got, or the kind of its failure.
fn result_of(sent: &Sent) -> (Option<i32>, Option<String>) {
    match sent.result {
        AttemptResult::Response { status } => (Some(status as i32), None),
        AttemptResult::Failed(kind) => (None, Some(kind.as_str().to_string())),
    }
}

/// What the delivery keeps as its last error: the failure, or a status that is no success.
fn last_error(code: Option<i32>, error: &Option<String>) -> Option<String> {
    error.clone().or_else(|| {
        code.filter(|c| !(200..300).contains(c))
            .map(|c| format!("HTTP {c}"))
    })
}

fn attempt_row(a: &Attempt<'_>, code: Option<i32>, error: Option<String>) -> attempts::Model {
    attempts::Model {
        id: Uuid::now_v7().to_string(),
        delivery_id: a.delivery.id.clone(),
        endpoint_id: a.delivery.endpoint_id.clone(),
        attempt: a.number,
        started_at: a.started_at,
        latency_ms: a.sent.latency_ms,
        status_code: code,
        error_kind: error,
        response_excerpt: a.sent.excerpt.clone(),
    }
}

async fn write(txn: &impl ConnectionTrait, a: &Attempt<'_>) -> Result<Recorded, DbErr> {
    let d = a.delivery;
    let now = Utc::now().timestamp_millis();
    let (code, error) = result_of(a.sent);
    let last_error = last_error(code, &error);
    attempts::Entity::insert(attempt_row(a, code, error).into_active_model())
        .exec_without_returning(txn)
        .await?;

    let mut update = released(deliveries::Entity::update_many(), &DELIVERIES)
        .col_expr(deliveries::Column::Attempt, Expr::value(a.number))
        .col_expr(deliveries::Column::LastStatus, Expr::value(code))
        .col_expr(
            deliveries::Column::LastError,
            Expr::value(last_error.clone()),
        );
    update = match a.verdict {
        Verdict::Delivered => update
            .col_expr(deliveries::Column::Status, Expr::value(DELIVERED))
            .col_expr(deliveries::Column::DeliveredAt, Expr::value(now)),
        Verdict::Retry(delay) => update
            .col_expr(deliveries::Column::Status, Expr::value(PENDING))
            .col_expr(
                deliveries::Column::RunAt,
                Expr::value(now + delay.as_millis() as i64),
            ),
        Verdict::Dead => update
            .col_expr(deliveries::Column::Status, Expr::value(DEAD))
            .col_expr(deliveries::Column::DeadAt, Expr::value(now)),
        Verdict::EndpointGone => update.col_expr(deliveries::Column::Status, Expr::value(SKIPPED)),
    };
    let res = update
        .filter(deliveries::Column::Id.eq(d.id.clone()))
        .filter(deliveries::Column::LeaseOwner.eq(d.lease_owner.clone()))
        .exec(txn)
        .await?;
    let mut rec = Recorded::default();
    if res.rows_affected != 1 {
        // The lease ran out and another replica owns the delivery now; the attempt is
        // on record, the delivery's state is theirs to write.
        tracing::warn!(webhook.id = %d.id, "webhook lease lost before the outcome was recorded");
        return Ok(rec);
    }
    let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default();
    if a.verdict == Verdict::Dead {
        let ev = DeliveryDeadLettered {
            event_id: Uuid::now_v7().to_string(),
            event_type: DELIVERY_DEAD_LETTERED.into(),
            tenant: d.tenant.clone(),
            endpoint_id: d.endpoint_id.clone(),
            webhook_id: d.id.clone(),
            rampd_order_id: d.order_id.clone(),
            delivery_event_type: d.event_type.clone(),
            attempts: a.number,
            last_status: code,
            last_error,
            occurred_at: at,
        };
        emit(txn, &ev, Some(&d.order_id), d.trace_ctx.as_deref(), now).await?;
        rec.events += 1;
    }
    let disable = match (a.verdict, a.health) {
        (Verdict::EndpointGone, _) => Some(DisabledReason::Gone),
        (_, HealthChange::Disable) => Some(DisabledReason::Failing),
        _ => None,
    };
    match (disable, a.health) {
        (Some(reason), _) => {
            if disable_endpoint(txn, &d.endpoint_id, reason, now).await? {
                let ev = EndpointDisabled {
                    event_id: Uuid::now_v7().to_string(),
                    event_type: ENDPOINT_DISABLED.into(),
                    tenant: d.tenant.clone(),
                    endpoint_id: d.endpoint_id.clone(),
                    reason,
                    failing_since: a
                        .failing_since
                        .and_then(DateTime::<Utc>::from_timestamp_millis),
                    occurred_at: at,
                };
                emit(txn, &ev, Some(&d.order_id), d.trace_ctx.as_deref(), now).await?;
                rec.events += 1;
                rec.disabled = Some(reason);
            }
        }
        (None, HealthChange::Healthy) if a.failing_since.is_some() => {
            eps::Entity::update_many()
                .col_expr(eps::Column::FailingSince, Expr::value(Option::<i64>::None))
                .filter(eps::Column::Id.eq(d.endpoint_id.clone()))
                .filter(eps::Column::FailingSince.is_not_null())
                .exec(txn)
                .await?;
        }
        (None, HealthChange::StartFailing(since)) => {
            eps::Entity::update_many()
                .col_expr(eps::Column::FailingSince, Expr::value(since))
                .filter(eps::Column::Id.eq(d.endpoint_id.clone()))
                .filter(eps::Column::FailingSince.is_null())
                .exec(txn)
                .await?;
        }
        (None, _) => {}
    }
    Ok(rec)
}

/// Disable an enabled endpoint; `true` if this call did it (so its event is sent once).
pub async fn disable_endpoint(
    txn: &impl ConnectionTrait,
    endpoint_id: &str,
    reason: DisabledReason,
    now: i64,
) -> Result<bool, DbErr> {
    let res = eps::Entity::update_many()
        .col_expr(eps::Column::Status, Expr::value(DISABLED))
        .col_expr(eps::Column::DisabledReason, Expr::value(reason.as_str()))
        .col_expr(eps::Column::DisabledAt, Expr::value(now))
        .col_expr(eps::Column::UpdatedAt, Expr::value(now))
        .filter(eps::Column::Id.eq(endpoint_id))
        .filter(eps::Column::Status.eq(ENABLED))
        .exec(txn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Queue an operational event for NATS in the caller's transaction.
pub async fn emit(
    txn: &impl ConnectionTrait,
    ev: &impl OperationalEvent,
    order_id: Option<&str>,
    trace_ctx: Option<&str>,
    now: i64,
) -> Result<(), DbErr> {
    let body = serde_json::to_string(ev).map_err(|e| DbErr::Custom(e.to_string()))?;
    insert_outbox(
        txn,
        ev.event_id(),
        operational_subject(ev.tenant(), ev.event_type()),
        body,
        order_id,
        trace_ctx,
        now,
    )
    .await
}

/// `ramp.evt.<tenant>.webhook.<event>` for `webhook.<event>`.
pub fn operational_subject(tenant: &str, event_type: &str) -> String {
    format!("ramp.evt.{tenant}.{event_type}")
}
