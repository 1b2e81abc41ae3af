//! The benchmark's webhook receiver: verifies every Standard Webhooks signature and
//! streams each arrival, time-stamped, to the driver. It runs on a thread and runtime of
//! its own so that its CPU can be told apart from the driver's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

use crate::webhooks::{WebhookSecret, verify};

/// One delivery as it arrived.
#[derive(Debug)]
pub struct Arrival {
    pub at: Instant,
    pub webhook_id: String,
    pub verified: bool,
    pub order_id: Option<String>,
    /// `order.status_changed`, `command.rejected`, …
    pub kind: Option<String>,
    pub state: Option<String>,
}

pub struct HookThread {
    pub url: String,
    /// The receiver thread's id, for its CPU seconds.
    pub tid: i32,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Ctx {
    secret: WebhookSecret,
    tx: mpsc::UnboundedSender<Arrival>,
}

impl HookThread {
    pub fn start(
        secret: WebhookSecret,
    ) -> anyhow::Result<(HookThread, mpsc::UnboundedReceiver<Arrival>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-webhooks".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener =
                        match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                            .await
                            .and_then(|l| Ok((l.local_addr()?, l)))
                        {
                            Ok(l) => l,
                            Err(e) => {
                                let _ = ready_tx.send(Err(anyhow::anyhow!(e)));
                                return;
                            }
                        };
                    let (addr, listener) = listener;
                    let _ = ready_tx.send(Ok((
                        format!("http://{addr}/webhooks"),
                        super::procs::current_tid(),
                    )));
                    let app = axum::Router::new()
                        .route("/webhooks", post(receive))
                        .with_state(Arc::new(Ctx { secret, tx }));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })?;
        let (url, tid) = ready_rx.recv()??;
        Ok((
            HookThread {
                url,
                tid,
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            rx,
        ))
    }

    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HookThread {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn receive(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let webhook_id = h("webhook-id").to_string();
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let verified = verify(
        &ctx.secret,
        &webhook_id,
        ts,
        h("webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
        300,
    )
    .is_ok();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |k: &str| parsed[k].as_str().map(str::to_string);
    let _ = ctx.tx.send(Arrival {
        at,
        webhook_id,
        verified,
        order_id: text("order_id"),
        kind: text("type"),
        state: text("state"),
    });
    if verified {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}
