//! The one task that sends callbacks: it takes [`Change`]s in the order the world recorded
//! them, applies the fault knobs and `POST`s each body (5 s timeout, no retries, redirects not
//! followed). Sends are sequential, so one order's callbacks arrive in the order they were
//! produced (apart from `reorder`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::header;
use tokio::sync::{mpsc, watch};

use super::body::{body_bytes, sign};
use crate::SandboxStats;
use crate::clock::Clock;
use crate::faults::chance;
use crate::state::Change;

/// Per-request timeout (connect included).
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the sender did; added to [`SandboxStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    mis_signed: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    pub(crate) fn add_to(&self, stats: &mut SandboxStats) {
        stats.callbacks_sent = self.sent.load(Ordering::Relaxed);
        stats.callbacks_dropped = self.dropped.load(Ordering::Relaxed);
        stats.callbacks_mis_signed = self.mis_signed.load(Ordering::Relaxed);
        stats.callbacks_failed = self.failed.load(Ordering::Relaxed);
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A callback ready to send.
struct Prepared {
    url: String,
    body: Vec<u8>,
    signature: String,
    copies: u64,
}

struct Sender {
    http: reqwest::Client,
    clock: Clock,
    counters: Arc<Counters>,
    /// Per order, the callback `reorder` holds back until the order's next one.
    held: HashMap<String, Prepared>,
}

/// Starts the sender task. It ends when `stop` turns true or every world sender is gone;
/// callbacks still queued then are not sent.
pub(crate) fn spawn_sender(
    changes: mpsc::UnboundedReceiver<Change>,
    clock: Clock,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    crate::install_crypto();
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let sender = Sender {
        http,
        clock,
        counters,
        held: HashMap::new(),
    };
    tokio::spawn(sender.run(changes, stop));
    Ok(())
}

impl Sender {
    async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<Change>,
        mut stop: watch::Receiver<bool>,
    ) {
        let stopped = async move {
            if stop.wait_for(|stop| *stop).await.is_err() {
                // Every handle is gone without asking to stop: keep sending.
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(stopped);
        loop {
            let change = tokio::select! {
                biased;
                () = &mut stopped => break,
                change = changes.recv() => match change {
                    Some(change) => change,
                    None => break,
                },
            };
            self.handle(change).await;
        }
    }

    async fn handle(&mut self, change: Change) {
        let Some(url) = change.settings.url.clone() else {
            return;
        };
        if chance(change.settings.drop_rate) {
            Counters::bump(&self.counters.dropped);
            return;
        }
        let Some(prepared) = self.prepare(url, &change) else {
            Counters::bump(&self.counters.failed);
            return;
        };
        match self.held.remove(&change.order_id) {
            Some(earlier) => {
                self.deliver(&prepared).await;
                self.deliver(&earlier).await;
            }
            None if change.settings.reorder && !change.terminal => {
                self.held.insert(change.order_id, prepared);
            }
            None => self.deliver(&prepared).await,
        }
    }

    /// Builds and signs the body; `None` (logged) if that failed.
    fn prepare(&self, url: String, change: &Change) -> Option<Prepared> {
        let settings = &change.settings;
        let body = match body_bytes(&self.clock, change) {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(error = %err, order_id = %change.order_id, "sandbox callback body could not be serialised");
                return None;
            }
        };
        let key = if chance(settings.mis_sign_rate) {
            Counters::bump(&self.counters.mis_signed);
            format!("{}-not-the-merchant-secret", settings.secret)
        } else {
            settings.secret.clone()
        };
        let Some(signature) = sign(key.as_bytes(), &body) else {
            tracing::warn!(order_id = %change.order_id, "sandbox callback could not be signed");
            return None;
        };
        Some(Prepared {
            url,
            body,
            signature,
            copies: u64::from(settings.repeat) + 1,
        })
    }

    async fn deliver(&self, p: &Prepared) {
        for _ in 0..p.copies {
            Counters::bump(&self.counters.sent);
            let sent = self
                .http
                .post(&p.url)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json")
                .header("X-Onmeta-Signature", &p.signature)
                .body(p.body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => {
                    Counters::bump(&self.counters.failed);
                    tracing::debug!(status = %response.status(), "sandbox callback refused");
                }
                Err(err) => {
                    Counters::bump(&self.counters.failed);
                    tracing::debug!(error = %err, "sandbox callback not delivered");
                }
            }
        }
    }
}
