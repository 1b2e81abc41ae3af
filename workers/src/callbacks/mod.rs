//! Provider callbacks: the provider's own webhooks about our orders, the fast path beside
//! polling (which stays the source of truth).
//!
//! [`http`] is the listener (its own port, off by default): it checks the signature on the
//! raw bytes and refuses anything unverified with 401, never acting on it. A verified
//! callback is handed to [`receive`], which treats it as one more observation of the
//! order: it goes through the order machine's decide path (`Input::Callback`) and the
//! same versioned write as a poll's result, so it may arrive late, repeated or out of
//! order without harm. Each distinct body is recorded once (`provider_callbacks`, keyed by
//! the body's SHA-256, as the provider sends no event id); a callback for an order we do
//! not know is answered 200 (the provider retries nothing we can rely on) and kept there
//! for an operator.
//!
//! The record is written after the decision commits: a crash between the two leaves a
//! callback that a repeat would apply again, which decides nothing the second time.

pub mod http;

use chrono::Utc;
use rampd_domain::order::{self, Ctx, Input, OrderState, StatusClass, classify_status};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DbErr, EntityTrait};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::providers::onmeta::PROVIDER;
use crate::providers::onmeta::callback::Callback;
use crate::shared::Shared;
use crate::storage::entities::provider_callbacks::{
    self as rows, APPLIED, NO_CHANGE, UNKNOWN_ORDER, WRONG_DIRECTION,
};
use crate::storage::orders::{StoredOrder, load, load_by_provider_order};
use crate::storage::write::{OwnedWrite, WriteError, commit_grouped};
use crate::telemetry;

/// What became of a verified callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The order changed (and its changes are announced as usual).
    Applied,
    /// Nothing new for the order, or left to the polls (see `Input::Callback`).
    NoChange,
    /// These exact bytes were received before.
    Duplicate,
    /// No order of ours has this provider order id.
    UnknownOrder,
    /// The order is of the other direction than the callback says.
    WrongDirection,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => APPLIED,
            Outcome::NoChange => NO_CHANGE,
            Outcome::Duplicate => "duplicate",
            Outcome::UnknownOrder => UNKNOWN_ORDER,
            Outcome::WrongDirection => WRONG_DIRECTION,
        }
    }
}

/// Act on a verified callback whose raw body is `body`.
pub async fn receive(
    shared: &Shared,
    body: &[u8],
    callback: Callback,
) -> Result<Outcome, WriteError> {
    let id = format!("{PROVIDER}:{}", hex::encode(Sha256::digest(body)));
    if rows::Entity::find_by_id(id.clone())
        .one(&shared.db)
        .await?
        .is_some()
    {
        return Ok(Outcome::Duplicate);
    }
    // The callbacks are `[provider]`'s; its orders carry its configured name, or the
    // legacy `onmeta` when they were stored before orders named their provider.
    let name = shared.cfg.provider.name.as_str();
    let mut found = load_by_provider_order(&shared.db, name, &callback.provider_order_id).await?;
    if found.is_none() && name != PROVIDER {
        found = load_by_provider_order(&shared.db, PROVIDER, &callback.provider_order_id).await?;
    }
    let order_id = found.as_ref().map(|s| s.order.id.to_string());
    let outcome = match found {
        None => {
            // The provider announces a new order (awaiting payment) as soon as it has
            // created it, often before its answer to our create is committed: expected,
            // and the poll after the create sees the same. Anything else is for a person.
            let fresh = classify_status(callback.direction, &callback.report.raw)
                == StatusClass::Known(OrderState::AwaitingPayment);
            if fresh {
                tracing::info!(
                    provider = PROVIDER,
                    provider.order_id = %callback.provider_order_id,
                    "provider callback for an order whose create is not committed yet"
                );
            } else {
                tracing::warn!(
                    provider = PROVIDER,
                    provider.order_id = %callback.provider_order_id,
                    status = %callback.report.raw,
                    "provider callback for an order rampd does not know; recorded for an operator"
                );
            }
            Outcome::UnknownOrder
        }
        Some(stored) if stored.order.direction() != callback.direction => {
            tracing::warn!(
                order.id = %stored.order.id,
                "provider callback of the other direction than its order; ignored"
            );
            Outcome::WrongDirection
        }
        Some(stored) => {
            let id = stored.order.id.to_string();
            let span = telemetry::spans::callback(PROVIDER, &id, stored.trace_ctx.as_deref());
            apply(shared, stored, &callback).instrument(span).await?
        }
    };
    record(shared, id, &callback, order_id, outcome).await?;
    Ok(outcome)
}

/// Decide the callback against the order and commit it under the version check; when a
/// worker wrote the order meanwhile, decide again on the fresh order.
async fn apply(
    shared: &Shared,
    mut stored: StoredOrder,
    callback: &Callback,
) -> Result<Outcome, WriteError> {
    for _ in 0..5 {
        let now = Utc::now();
        let ctx = Ctx {
            now,
            jitter: rand::random(),
            policy: shared.cfg.orders.policy(),
        };
        let input = Input::Callback(callback.report.clone());
        let decision = order::decide(&stored.order, input, &ctx)
            .map_err(|r| WriteError::Db(DbErr::Custom(format!("unexpected rejection: {r}"))))?;
        if decision.is_noop() {
            return Ok(Outcome::NoChange);
        }
        let announces = !decision.events.is_empty();
        let (_, committed) = commit_grouped(
            &shared.commits,
            OwnedWrite {
                expected_version: Some(stored.version),
                decision,
                command: None,
                trace_ctx: stored.trace_ctx.clone(),
                now,
                release_lease: None,
            },
        )
        .await;
        match committed {
            Ok(_) => {
                shared.wake.tasks.notify_one();
                if announces {
                    shared.wake_webhooks();
                }
                return Ok(Outcome::Applied);
            }
            Err(WriteError::Conflict) => {
                let id = stored.order.id.to_string();
                let Some(fresh) = load(&shared.db, &id).await? else {
                    return Ok(Outcome::NoChange);
                };
                stored = fresh;
            }
            Err(e) => return Err(e),
        }
    }
    Err(WriteError::Conflict)
}

/// Keep the callback's identity and outcome; a concurrent receipt of the same bytes
/// already wrote it, which is fine.
async fn record(
    shared: &Shared,
    id: String,
    callback: &Callback,
    order_id: Option<String>,
    outcome: Outcome,
) -> Result<(), DbErr> {
    let row = rows::ActiveModel {
        id: Set(id),
        provider: Set(PROVIDER.to_string()),
        provider_order_id: Set(callback.provider_order_id.clone()),
        order_id: Set(order_id),
        direction: Set(callback.direction.as_str().to_string()),
        status: Set(callback.report.raw.clone()),
        outcome: Set(outcome.as_str().to_string()),
        received_at: Set(Utc::now().timestamp_millis()),
    };
    rows::Entity::insert(row)
        .on_conflict(OnConflict::column(rows::Column::Id).do_nothing().to_owned())
        .exec_without_returning(&shared.db)
        .await?;
    Ok(())
}
