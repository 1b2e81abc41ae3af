//! The retention loop: every `retention.interval_secs`, delete finished work past its
//! retention ([`crate::storage::retention`]) batch after batch until none is left, then
//! wait for the next pass. Safe on several replicas at once (each row is deleted once);
//! logs and counts what it removed.

use std::time::Duration;

use chrono::Utc;
use sea_orm::DbErr;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::shared::Shared;
use crate::storage::retention::{Cutoffs, Removed, prune_batch};
use crate::telemetry::meters;

pub async fn run(shared: Shared, shutdown: CancellationToken) {
    let cfg = shared.cfg.retention.clone();
    let every = Duration::from_secs(cfg.interval_secs);
    while !shutdown.is_cancelled() {
        match prune(&shared, &cfg, &shutdown).await {
            Ok(r) if r != Removed::default() => tracing::info!(
                outbox = r.outbox,
                tasks = r.tasks,
                webhook_deliveries = r.deliveries,
                webhook_attempts = r.attempts,
                provider_callbacks = r.callbacks,
                "retention removed finished work"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retried next pass"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The cutoffs at `now` (epoch ms).
pub fn cutoffs(cfg: &RetentionConfig, now: i64) -> Cutoffs {
    let before = |secs: u64| now.saturating_sub((secs as i64).saturating_mul(1000));
    Cutoffs {
        outbox_published_before: before(cfg.outbox_published_secs),
        tasks_done_before: before(cfg.tasks_done_secs),
        delivered_before: before(cfg.webhooks_delivered_secs),
        dead_before: before(cfg.webhooks_dead_secs),
        callbacks_before: before(cfg.provider_callbacks_secs),
        now,
    }
}

/// One pass: batches until one removes less than a full batch of every kind.
pub async fn prune(
    shared: &Shared,
    cfg: &RetentionConfig,
    shutdown: &CancellationToken,
) -> Result<Removed, DbErr> {
    let c = cutoffs(cfg, Utc::now().timestamp_millis());
    let mut total = Removed::default();
    while !shutdown.is_cancelled() {
        let r = prune_batch(&shared.db, &c, cfg.batch).await?;
        for (table, rows) in r.by_table() {
            meters::retention_removed(table, rows);
        }
        total.add(r);
        let full = [r.outbox, r.tasks, r.deliveries, r.callbacks]
            .iter()
            .any(|n| *n >= cfg.batch);
        if !full {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(total)
}
