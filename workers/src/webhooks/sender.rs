//! First webhook sender: signs each delivery (Standard Webhooks) and POSTs it, retrying on
//! a simple durable backoff. The body and `webhook-id` were fixed when the delivery row was
//! written; only the timestamp and signature are made per attempt.

use std::time::Duration;

use chrono::Utc;
use rampd_domain::schedule::{PollPolicy, backoff_delay};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use super::signature_header;
use crate::app::Shared;
use crate::pool::{self, LeasedWork};
use crate::storage::entities::webhook_deliveries as deliveries;
use crate::storage::lease::{DELIVERIES, claim, released};
use crate::telemetry::{self, spans};
use tracing::Instrument;

impl LeasedWork for Sender {
    type Item = deliveries::Model;

    async fn claim(&self, room: u64) -> Result<Vec<deliveries::Model>, DbErr> {
        self.claim_due(room).await
    }

    async fn process(&self, d: deliveries::Model) {
        let span = spans::webhook(
            &d.id,
            &d.order_id,
            &d.endpoint_id,
            d.attempt + 1,
            &d.event_type,
            d.trace_ctx.as_deref(),
        );
        if let Err(e) = self.attempt(d).instrument(span).await {
            tracing::warn!(error = %e, "recording a webhook attempt failed");
        }
    }

    fn due_at(d: &deliveries::Model) -> Option<i64> {
        Some(d.run_at)
    }
}

#[derive(Clone)]
pub struct Sender {
    shared: Shared,
    http: reqwest::Client,
}

impl Sender {
    pub fn new(shared: Shared) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(shared.cfg.webhooks.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rampd-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { shared, http })
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

    async fn claim_due(&self, room: u64) -> Result<Vec<deliveries::Model>, DbErr> {
        let now = Utc::now().timestamp_millis();
        let lease = self.shared.cfg.webhooks.timeout_ms as i64 + 15_000;
        claim::<deliveries::Entity, _>(
            &self.shared.db,
            &DELIVERIES,
            Condition::all()
                .add(deliveries::Column::Status.eq("pending"))
                .add(deliveries::Column::RunAt.lte(now)),
            &self.shared.cfg.worker_id,
            now,
            lease,
            room.min(256),
        )
        .await
    }

    async fn attempt(&self, d: deliveries::Model) -> Result<(), DbErr> {
        let Some(endpoint) = self.shared.endpoints.get(&d.endpoint_id) else {
            let error = Some("endpoint no longer configured".into());
            return self.record(&d, Outcome::Dead, d.attempt, None, error).await;
        };
        let ts = Utc::now().timestamp();
        let signature = signature_header(&endpoint.secrets, &d.id, ts, d.body.as_bytes());
        let mut req = self
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone());
        if let Some(tp) = telemetry::outgoing_traceparent(d.trace_ctx.as_deref()) {
            req = req.header("traceparent", tp);
        }
        let attempt = d.attempt + 1;
        let (ok, status, error) = match req.send().await {
            Ok(resp) => {
                let code = resp.status();
                (
                    code.is_success(),
                    Some(code.as_u16() as i32),
                    (!code.is_success()).then(|| format!("HTTP {code}")),
                )
            }
            Err(e) => (
                false,
                None,
                Some(if e.is_timeout() {
                    "timeout".into()
                } else {
                    "connection failed".into()
                }),
            ),
        };
        tracing::debug!(webhook.id = %d.id, attempt, ok, status, "webhook attempt");
        let now = Utc::now().timestamp_millis();
        let outcome = if ok {
            Outcome::Delivered
        } else if attempt >= self.shared.cfg.webhooks.max_attempts {
            tracing::warn!(webhook.id = %d.id, attempt, "webhook delivery exhausted its retries");
            Outcome::Dead
        } else {
            let policy = PollPolicy {
                backoff_base: Duration::from_secs(1),
                backoff_cap: Duration::from_secs(300),
                ..PollPolicy::default()
            };
            let delay = backoff_delay(&policy, attempt as u32, rand::random());
            Outcome::RetryAt(now + delay.as_millis() as i64)
        };
        self.record(&d, outcome, attempt, status, error).await
    }

    /// Record an attempt's outcome and end this replica's lease on the delivery.
    async fn record(
        &self,
        d: &deliveries::Model,
        outcome: Outcome,
        attempt: i32,
        http_status: Option<i32>,
        error: Option<String>,
    ) -> Result<(), DbErr> {
        let now = Utc::now().timestamp_millis();
        let (status, run_at, delivered_at) = match outcome {
            Outcome::Delivered => ("delivered", d.run_at, Some(now)),
            Outcome::Dead => ("dead", d.run_at, None),
            Outcome::RetryAt(at) => ("pending", at, None),
        };
        telemetry::meters::webhook_attempt(if status == "pending" { "retry" } else { status });
        tracing::Span::current().record("http.response.status_code", http_status);
        released(deliveries::Entity::update_many(), &DELIVERIES)
            .col_expr(deliveries::Column::Status, Expr::value(status))
            .col_expr(deliveries::Column::Attempt, Expr::value(attempt))
            .col_expr(deliveries::Column::RunAt, Expr::value(run_at))
            .col_expr(deliveries::Column::LastStatus, Expr::value(http_status))
            .col_expr(deliveries::Column::LastError, Expr::value(error))
            .col_expr(deliveries::Column::DeliveredAt, Expr::value(delivered_at))
            .filter(deliveries::Column::Id.eq(d.id.clone()))
            .filter(deliveries::Column::LeaseOwner.eq(d.lease_owner.clone()))
            .exec(&self.shared.db)
            .await?;
        Ok(())
    }
}

enum Outcome {
    Delivered,
    Dead,
    RetryAt(i64),
}
