//! The webhook sender: claims due deliveries with a lease, sends each once, records the
//! outcome. The body and `webhook-id` were fixed when the delivery row was written; only
//! the timestamp and the signatures (one `v1,` per live secret) are made per attempt.
//!
//! Concurrency is bounded twice: overall (`webhooks.concurrency`, the shared pool) and per
//! endpoint (`webhooks.concurrency_per_endpoint`). A claim leaves out endpoints that are at
//! their bound and hands back, at once, rows beyond an endpoint's remaining room, so a
//! slow endpoint holds at most its own share of the pool and never starves the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rampd_domain::webhooks::health::after_attempt;
use rampd_domain::webhooks::{RetryPolicy, Verdict, judge};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use super::endpoints;
use super::http::{Outgoing, WebhookHttp};
use super::outcome::{self, Attempt, PENDING, SKIPPED};
use super::signature_header;
use crate::app::Shared;
use crate::pool::{self, LeasedWork};
use crate::storage::entities::webhook_deliveries as deliveries;
use crate::storage::lease::{DELIVERIES, claim, released};

impl LeasedWork for Sender {
    type Item = deliveries::Model;

    async fn claim(&self, room: u64) -> Result<Vec<deliveries::Model>, DbErr> {
        self.claim_due(room).await
    }

    async fn process(&self, d: deliveries::Model) {
        let _slot = Slot {
            inflight: self.inflight.clone(),
            endpoint: d.endpoint_id.clone(),
        };
        if let Err(e) = self.attempt(d).await {
            tracing::warn!(error = %e, "recording a webhook attempt failed");
        }
    }
}

#[derive(Clone)]
pub struct Sender {
    shared: Shared,
    http: WebhookHttp,
    policy: Arc<RetryPolicy>,
    /// Deliveries in flight per endpoint on this replica.
    inflight: Arc<Mutex<HashMap<String, usize>>>,
}

/// One in-flight delivery's place in its endpoint's bound; freed on drop.
struct Slot {
    inflight: Arc<Mutex<HashMap<String, usize>>>,
    endpoint: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.endpoint);
            }
        }
    }
}

impl Sender {
    pub fn new(shared: Shared) -> anyhow::Result<Self> {
        let w = &shared.cfg.webhooks;
        let http = WebhookHttp::new(
            w.address_policy()?,
            Duration::from_millis(w.timeout_ms),
            w.response_body_limit_bytes,
        )?;
        let policy = Arc::new(w.retry_policy());
        Ok(Sender {
            shared,
            http,
            policy,
            inflight: Arc::default(),
        })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = self.shared.cfg.clone();
        let wake = self.shared.wake.clone();
        let idle = Duration::from_millis(cfg.executor.idle_ms);
        let concurrency = cfg.webhooks.concurrency;
        pool::run(
            self,
            "webhooks",
            concurrency,
            idle,
            &wake.webhooks,
            shutdown,
        )
        .await;
    }

    fn per_endpoint(&self) -> usize {
        self.shared.cfg.webhooks.concurrency_per_endpoint.max(1)
    }

    async fn claim_due(&self, room: u64) -> Result<Vec<deliveries::Model>, DbErr> {
        let now = Utc::now().timestamp_millis();
        let lease = self.shared.cfg.webhooks.timeout_ms as i64 + 15_000;
        let full: Vec<String> = {
            let m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            m.iter()
                .filter(|(_, n)| **n >= self.per_endpoint())
                .map(|(k, _)| k.clone())
                .collect()
        };
        let mut due = Condition::all()
            .add(deliveries::Column::Status.eq(PENDING))
            .add(deliveries::Column::RunAt.lte(now));
        if !full.is_empty() {
            due = due.add(deliveries::Column::EndpointId.is_not_in(full));
        }
        let rows = claim::<deliveries::Entity, _>(
            &self.shared.db,
            &DELIVERIES,
            due,
            &self.shared.cfg.worker_id,
            now,
            lease,
            room.min(256),
        )
        .await?;
        let (mut keep, mut surplus) = (Vec::new(), Vec::new());
        {
            let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            for r in rows {
                let n = m.entry(r.endpoint_id.clone()).or_default();
                if *n < self.per_endpoint() {
                    *n += 1;
                    keep.push(r);
                } else {
                    surplus.push(r);
                }
            }
        }
        if let Some(token) = surplus.first().and_then(|r| r.lease_owner.clone()) {
            released(deliveries::Entity::update_many(), &DELIVERIES)
                .filter(deliveries::Column::Id.is_in(surplus.iter().map(|r| r.id.clone())))
                .filter(deliveries::Column::LeaseOwner.eq(token))
                .exec(&self.shared.db)
                .await?;
        }
        Ok(keep)
    }

    async fn attempt(&self, d: deliveries::Model) -> Result<(), DbErr> {
        let db = &self.shared.db;
        let started_at = Utc::now().timestamp_millis();
        let endpoint = endpoints::load(db, &d.endpoint_id, started_at).await?;
        let Some(endpoint) = endpoint.filter(|e| e.enabled) else {
            // Disabled or removed: keep it for a replay when the endpoint is enabled.
            released(deliveries::Entity::update_many(), &DELIVERIES)
                .col_expr(deliveries::Column::Status, Expr::value(SKIPPED))
                .filter(deliveries::Column::Id.eq(d.id.clone()))
                .filter(deliveries::Column::LeaseOwner.eq(d.lease_owner.clone()))
                .exec(db)
                .await?;
            return Ok(());
        };
        let ts = Utc::now().timestamp();
        let signature = signature_header(&endpoint.secrets, &d.id, ts, d.body.as_bytes());
        let sent = self
            .http
            .send(&Outgoing {
                url: &endpoint.url,
                webhook_id: &d.id,
                timestamp: ts,
                signature: &signature,
                body: &d.body,
                traceparent: d.trace_ctx.as_deref(),
            })
            .await;
        let number = d.attempt + 1;
        let verdict = judge(
            sent.result,
            number as u32,
            sent.retry_after,
            &self.policy,
            rand::random(),
        );
        let window = self.shared.cfg.webhooks.disable_after_secs as i64 * 1000;
        let health = after_attempt(
            sent.result.is_success(),
            endpoint.failing_since,
            Utc::now().timestamp_millis(),
            window,
        );
        tracing::debug!(
            webhook.id = %d.id,
            endpoint = %d.endpoint_id,
            attempt = number,
            result = ?sent.result,
            latency_ms = sent.latency_ms,
            "webhook attempt"
        );
        if verdict == Verdict::Dead {
            tracing::warn!(webhook.id = %d.id, endpoint = %d.endpoint_id, attempt = number, "webhook delivery dead-lettered");
        }
        let recorded = outcome::record(
            db,
            &Attempt {
                delivery: &d,
                number,
                started_at,
                sent: &sent,
                verdict,
                health,
                failing_since: endpoint.failing_since,
            },
        )
        .await?;
        if recorded.events > 0 {
            self.shared.wake.outbox.notify_one();
        }
        Ok(())
    }
}
