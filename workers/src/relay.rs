//! The outbox relay: publishes committed events to NATS JetStream.
//!
//! Rows come two ways: handed over by the group commit right after their batch committed
//! (inserted already leased to this worker, see [`crate::storage::handoff`]), or claimed
//! with a lease by a scan, woken by writes that did not hand their rows over and run every
//! idle interval for rows whose lease ran out (a relay that stopped or died). Either way a
//! row is published with `Nats-Msg-Id` = the outbox id (so a publish repeated after a
//! crash is dropped by the stream's duplicate window), and marked published once
//! JetStream acknowledged it. A batch is published in order (commit order, or
//! `created_at` for a scan) and its acks awaited before the next batch; handed batches and
//! scan passes take turns ([`run`]), so a handed row and a scanned one can overtake each
//! other by up to a batch, as the contract allows (events carry their per-order
//! `sequence`).

use std::time::Duration;

use async_nats::HeaderMap;
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::shared::Shared;
use crate::storage::entities::outbox;
use crate::storage::handoff::Handed;
use crate::storage::lease::{OUTBOX, claim, released};
use crate::telemetry::{context, spans};

const BATCH: u64 = 256;

/// How long a claimed or handed row stays this relay's before another may take it: 30 s,
/// or `executor.lease_ms` when that is shorter (a crashed replica's events wait no longer
/// than its tasks).
pub fn lease_ms(cfg: &Config) -> i64 {
    Ord::min(cfg.executor.lease_ms as i64, 30_000)
}

/// The relay's loop. Handed batches and scan passes take turns: after each handed batch,
/// one scan pass if one is due, and scans go on pass by pass (each takes what has been
/// committed unleased since the last) while they find rows. So neither a stream of handed
/// rows nor a backlog of scanned ones (a flood of rejections, written outside the group
/// commit) holds the other back by more than one batch.
pub async fn run(shared: Shared, mut handed: Handed, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(shared.cfg.executor.idle_ms));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut rows = Vec::new();
    let mut open = true;
    let mut scan_due = true;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            n = handed.recv_many(&mut rows, BATCH as usize), if open => {
                if n == 0 {
                    open = false; // the writers stopped; scans go on
                    continue;
                }
                let batch: Vec<outbox::Model> = rows.drain(..).flatten().collect();
                if let Err(e) = publish(&shared, batch).await {
                    tracing::warn!(error = %e, "marking handed events published failed");
                }
                if scan_due {
                    scan_due = scan(&shared).await;
                }
            }
            _ = std::future::ready(()), if scan_due => scan_due = scan(&shared).await,
            _ = tick.tick() => scan_due = true,
            _ = shared.wake.outbox.notified() => scan_due = true,
        }
    }
}

/// One scan pass; whether another is due (this one found rows, so more may wait).
async fn scan(shared: &Shared) -> bool {
    match relay_once(shared).await {
        Ok(n) => n > 0,
        Err(e) => {
            tracing::warn!(error = %e, "outbox relay pass failed");
            false
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
        lease_ms(&shared.cfg),
        BATCH,
    )
    .await?;
    publish(shared, rows).await
}

/// Publish `rows` (leased to this relay), await their acks, and mark the acknowledged
/// ones published; returns how many were.
async fn publish(shared: &Shared, rows: Vec<outbox::Model>) -> Result<usize, DbErr> {
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
