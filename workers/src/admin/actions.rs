//! Operator actions on one order: cancel, resolve a flag, retry now.
//!
//! Each is an input to the order's state machine (`Input::Operator`), so the machine
//! decides whether it is allowed (a cancel follows the `order.cancel` rules), and each is
//! committed through the one decision write path: the order row (version-checked), its
//! history row naming who and why, the `order.operator_action` event in the outbox and
//! its webhook deliveries, all in one transaction. The running workers pick the change up
//! from the database: the relay publishes the event and, after `retry-now`, the executor
//! finds the order's task due. No other order is touched and no worker is woken.

use chrono::Utc;
use rampd_domain::order::{self, Ctx, Input, OperatorAction};
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use super::orders::find;
use crate::config::Config;
use crate::storage::orders::load;
use crate::storage::write::{Write, WriteError, commit_decision};
use crate::telemetry::{self, spans};

/// Who acts and why.
#[derive(Debug, Clone)]
pub struct Operator {
    pub by: String,
    pub reason: String,
}

/// What an action came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Committed; the order is now in `state`.
    Applied { order_id: String, state: String },
    /// Nothing to do (e.g. resolving an order that is not flagged).
    Nothing { order_id: String, why: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Find(#[from] super::orders::FindError),
    /// The state machine refused, e.g. cancelling an order that was paid.
    #[error("refused: {0}")]
    Refused(order::Rejection),
    #[error("the order kept changing while the action was being recorded; try again")]
    Busy,
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{0}")]
    Config(String),
}

/// Apply `action` to the order `id` (rampd id or client order id, see [`find`]).
pub async fn apply(
    db: &DatabaseConnection,
    cfg: &Config,
    id: &str,
    tenant: Option<&str>,
    action: OperatorAction,
    who: &Operator,
) -> Result<Done, ActionError> {
    let row = find(db, id, tenant).await?;
    let span = spans::admin(action.as_str(), &row.id, row.trace_ctx.as_deref());
    apply_found(db, cfg, &row.id, action, who)
        .instrument(span)
        .await
}

async fn apply_found(
    db: &DatabaseConnection,
    cfg: &Config,
    order_id: &str,
    action: OperatorAction,
    who: &Operator,
) -> Result<Done, ActionError> {
    // A conflict means a worker wrote the order meanwhile: decide again on the new one.
    for _ in 0..5 {
        let Some(stored) = load(db, order_id).await.map_err(WriteError::Db)? else {
            return Err(super::orders::FindError::NotFound(order_id.to_string()).into());
        };
        let now = Utc::now();
        let ctx = Ctx {
            now,
            jitter: rand::random(),
            policy: cfg.orders.policy(),
        };
        let input = Input::Operator {
            by: who.by.clone(),
            reason: who.reason.clone(),
            action,
        };
        let decision = order::decide(&stored.order, input, &ctx).map_err(ActionError::Refused)?;
        if decision.is_noop() {
            return Ok(Done::Nothing {
                order_id: order_id.to_string(),
                why: format!(
                    "{} changes nothing for this order (state {}{})",
                    action.as_str(),
                    stored.order.state.as_str(),
                    if stored.order.attention.is_none() {
                        ", not flagged"
                    } else {
                        ""
                    }
                ),
            });
        }
        let trace = telemetry::outgoing_trace_ctx(stored.trace_ctx.as_deref());
        match commit_decision(
            db,
            Write {
                expected_version: Some(stored.version),
                decision: &decision,
                command: None,
                trace_ctx: trace.as_deref(),
                now,
                release_lease: None,
            },
        )
        .await
        {
            Ok(_) => {
                tracing::info!(
                    order.id = order_id,
                    action = action.as_str(),
                    "operator action recorded"
                );
                return Ok(Done::Applied {
                    order_id: order_id.to_string(),
                    state: decision.order.state.as_str().to_string(),
                });
            }
            Err(WriteError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ActionError::Busy)
}
