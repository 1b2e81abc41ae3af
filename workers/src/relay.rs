//! The outbox relay: publishes committed events to NATS JetStream.
//!
//! Rows are claimed with a lease, published with `Nats-Msg-Id` = the outbox id (so a
//! publish repeated after a crash is dropped by the stream's duplicate window), and marked
//! published once JetStream acknowledged them. Order is kept: a batch is published in
//! `created_at` order and its acks awaited before the next batch.

use std::time::Duration;

use async_nats::HeaderMap;
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::shared::Shared;
use crate::storage::entities::outbox;
use crate::storage::lease::{OUTBOX, claim, released};
use crate::telemetry::{context, spans};

const BATCH: u64 = 256;
const LEASE_MS: i64 = 30_000;

pub async fn run(shared: Shared, shutdown: CancellationToken) {
    let idle = Duration::from_millis(shared.cfg.executor.idle_ms);
    while !shutdown.is_cancelled() {
        match relay_once(&shared).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox relay pass failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = shared.wake.outbox.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
    }
}

/// Publish one batch of pending events; returns how many were published.
pub async fn relay_once(shared: &Shared) -> Result<usize, DbErr> {
    let now = Utc::now().timestamp_millis();
    let rows = claim::<outbox::Entity, _>(
        &shared.db,
        &OUTBOX,
        // Every unpublished row (`lease::OUTBOX`); nothing narrower.
        Condition::all(),
        &shared.cfg.worker_id,
        now,
        LEASE_MS,
        BATCH,
    )
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut acks = Vec::with_capacity(rows.len());
    let server = spans::Server::of(&shared.nats);
    for row in &rows {
        let span = spans::publish(&row.subject, &row.id, row.trace_ctx.as_deref(), &server);
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, row.id.as_str());
        let trace = context::trace_ctx_of(&span).or_else(|| row.trace_ctx.clone());
        for (name, value) in context::header_fields(trace.as_deref()) {
            headers.insert(name, value.as_str());
        }
        let sent = shared
            .js
            .publish_with_headers(row.subject.clone(), headers, row.payload.clone().into())
            .instrument(span)
            .await;
        acks.push(sent);
    }
    let mut published = Vec::new();
    let mut failed = Vec::new();
    for (row, sent) in rows.iter().zip(acks) {
        let acked = match sent {
            Ok(fut) => fut.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match acked {
            Ok(()) => published.push(row.id.clone()),
            Err(e) => failed.push((row.id.clone(), e)),
        }
    }
    let done = Utc::now().timestamp_millis();
    if !published.is_empty() {
        released(outbox::Entity::update_many(), &OUTBOX)
            .col_expr(outbox::Column::PublishedAt, Expr::value(done))
            .filter(outbox::Column::Id.is_in(published.clone()))
            .exec(&shared.db)
            .await?;
    }
    for (id, error) in failed {
        tracing::warn!(outbox.id = %id, error, "event publish failed; will retry");
        // Keep the lease a little while so a broken broker is not hammered.
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).add(1),
            )
            .col_expr(outbox::Column::LastError, Expr::value(error))
            .col_expr(outbox::Column::LeaseUntil, Expr::value(done + 2_000))
            .filter(outbox::Column::Id.eq(id))
            .exec(&shared.db)
            .await?;
    }
    Ok(published.len())
}
