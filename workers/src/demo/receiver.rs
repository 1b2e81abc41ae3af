//! A webhook receiver that verifies every Standard Webhooks signature it gets. Used by
//! `rampd demo` and by the tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::webhooks::{WebhookSecret, verify};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Received {
    pub webhook_id: String,
    pub verified: bool,
    pub body: serde_json::Value,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    secret: WebhookSecret,
    inner: Arc<Mutex<Inner>>,
    pub url: String,
    shutdown: Arc<tokio::sync::Notify>,
}

impl Receiver {
    pub async fn start(secret: WebhookSecret) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}/webhooks", listener.local_addr()?);
        let r = Receiver {
            secret,
            inner: Arc::default(),
            url,
            shutdown: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/webhooks", post(receive))
            .with_state(r.clone());
        let stop = r.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        });
        Ok(r)
    }

    /// Every delivery received (a retried one appears again, with the same id).
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn stop(&self) {
        self.shutdown.notify_waiters();
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = h("webhook-id");
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let verified = verify(
        &r.secret,
        &id,
        ts,
        &h("webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
        300,
    )
    .is_ok();
    let mut inner = r.inner.lock().unwrap();
    let parsed = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let tp = Some(h("traceparent")).filter(|t| !t.is_empty());
    let ts = Some(h("tracestate")).filter(|t| !t.is_empty());
    inner.received.push(Received {
        webhook_id: id,
        verified,
        body: parsed,
        traceparent: tp,
        tracestate: ts,
    });
    if verified {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}
