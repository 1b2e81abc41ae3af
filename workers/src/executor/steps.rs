//! One provider step: find the order's connector by the provider it recorded and run the
//! action there (`providers::<kind>::steps`); a failure becomes a [`CallFailure`].

use chrono::{DateTime, Utc};
use rampd_domain::order::{Action, CallFailure, FailureKind, Observation, Order};

use sea_orm::DatabaseConnection;

use crate::providers::registry::{Connector, Providers};
use crate::providers::{ProviderError, onmeta, partner};
use crate::storage::orders::held_tx_hashes;
use crate::telemetry::warnings;

pub async fn run(
    providers: &Providers,
    db: &DatabaseConnection,
    action: &Action,
    order: &Order,
    now: DateTime<Utc>,
    trace: Option<&str>,
) -> Observation {
    let result = match providers.get(&order.provider.name) {
        Some(c) if c.plan() != order.provider.plan => Err(unserved(order, "has another plan")),
        Some(Connector::Onmeta(p)) => onmeta::steps::call(p, action, order, now, trace).await,
        Some(Connector::Partner(p)) => {
            let claims = StoredClaims { db, order };
            partner::steps::call(p, action, order, &claims, trace).await
        }
        None => Err(unserved(order, "is not configured on this replica")),
    };
    match result {
        Ok(obs) => obs,
        Err(e) => {
            let order_id = order.id.to_string();
            warnings::provider_call_failed(&order_id, trace, action.name(), &e);
            Observation::CallFailed(failure(e, action))
        }
    }
}

/// The settling transactions other orders of the provider hold, from storage.
struct StoredClaims<'a> {
    db: &'a DatabaseConnection,
    order: &'a Order,
}

impl partner::steps::Claims for StoredClaims<'_> {
    async fn held(&self, hashes: &[String]) -> Result<Vec<String>, ProviderError> {
        let (provider, id) = (self.order.provider.name.as_str(), self.order.id.to_string());
        held_tx_hashes(self.db, provider, &id, hashes)
            .await
            .map_err(|e| ProviderError::Retryable {
                reason: format!("reading the transactions other orders hold failed: {e}"),
                retry_after: None,
            })
    }
}

/// The order's provider cannot serve it here: a configuration to mend, not an answer.
/// Retried on the backoff (so a replica configured later picks it up) and flagged after
/// `attention_after_errors`; nothing is sent anywhere.
fn unserved(order: &Order, why: &str) -> ProviderError {
    ProviderError::Retryable {
        reason: format!(
            "provider {} ({}) {why}",
            order.provider.name,
            order.provider.plan.as_str()
        ),
        retry_after: None,
    }
}

fn failure(e: ProviderError, action: &Action) -> CallFailure {
    let retry_after = e.retry_after();
    let (kind, message) = match e {
        ProviderError::Retryable { reason, .. } => (FailureKind::Retryable, reason),
        ProviderError::RateLimited { .. } => (FailureKind::RateLimited, "rate limited".into()),
        ProviderError::Rejected { message, .. } => (FailureKind::Rejected, message),
        ProviderError::Unknown { detail } => (FailureKind::Unknown, detail),
        ProviderError::OverBudget { .. } => (FailureKind::Deferred, "over budget".into()),
    };
    CallFailure {
        kind,
        retry_after,
        message,
        action: Some(action.clone()),
    }
}
