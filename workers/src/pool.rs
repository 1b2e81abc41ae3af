//! The loop shared by the leased-work runners (the task executor, the webhook sender).
//!
//! Each pass claims only as many due rows as can start now — a claimed row's lease is
//! already running, so claiming more than can run would age leases in a queue — and runs
//! each on its own task, at most `concurrency` at a time. When nothing is due it sleeps
//! until woken or until the idle interval passes. In-flight work finishes before `run`
//! returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::telemetry::meters;

pub trait LeasedWork: Clone + Send + Sync + 'static {
    type Item: Send + 'static;

    /// Claim at most `room` due items (`room` > 0).
    fn claim(&self, room: u64) -> impl Future<Output = Result<Vec<Self::Item>, DbErr>> + Send;

    /// Handle one claimed item. Failures are the implementor's to log: an item whose lease
    /// was not ended is claimed again when the lease runs out.
    fn process(&self, item: Self::Item) -> impl Future<Output = ()> + Send;

    /// When the item was due (epoch ms), for the task-lag metric.
    fn due_at(item: &Self::Item) -> i64;

    /// The task-lag metric's `urgency` label of an item (`none` where items are alike).
    fn urgency(_item: &Self::Item) -> &'static str {
        "none"
    }
}

pub async fn run<W: LeasedWork>(
    work: W,
    what: &'static str,
    concurrency: usize,
    idle: Duration,
    wake: &Notify,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    while !shutdown.is_cancelled() {
        let room = limit.available_permits() as u64;
        let claimed = if room == 0 {
            Vec::new()
        } else {
            work.claim(room).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, what, "claiming work failed");
                Vec::new()
            })
        };
        let found = !claimed.is_empty();
        let now = chrono::Utc::now().timestamp_millis();
        for item in &claimed {
            meters::task_lag(what, W::urgency(item), now - W::due_at(item));
        }
        for item in claimed {
            let permit = limit.clone().acquire_owned().await.expect("semaphore open");
            let w = work.clone();
            running.spawn(async move {
                w.process(item).await;
                drop(permit);
            });
        }
        while running.try_join_next().is_some() {}
        if found {
            // Wait for room before claiming again.
            let _p = limit.acquire().await;
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }
    while running.join_next().await.is_some() {}
}
