//! The admin HTTP port: `/metrics` (Prometheus text), `/healthz` (the process answers) and
//! `/readyz` (database reachable, NATS connected, the command stream answering,
//! migrations applied).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sea_orm::DatabaseConnection;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::gauges;
use crate::shared::Shared;
use crate::storage;
use crate::telemetry::{meters, process, warnings};

#[derive(Clone)]
struct AdminState {
    db: DatabaseConnection,
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    nats_sources: gauges::NatsSources,
    worker: String,
    stream_drift: Arc<Vec<String>>,
    /// The last `/readyz` answer (`None` before the first), to log its changes.
    last_ready: Arc<Mutex<Option<bool>>>,
}

/// Bind `listen`; returns the bound address (useful with port 0) and the server, which
/// runs until `shutdown` once spawned.
pub async fn bind(
    shared: &Shared,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    meters::install();
    let state = AdminState {
        db: shared.db.clone(),
        nats: shared.nats.clone(),
        js: shared.js.clone(),
        nats_sources: gauges::NatsSources {
            command_stream: shared.cfg.nats.command_stream.clone(),
            dead_letter_stream: shared.cfg.nats.dead_letter_stream.clone(),
            consumer: shared.cfg.nats.consumer.clone(),
        },
        worker: shared.cfg.worker_id.clone(),
        stream_drift: shared.stream_drift.clone(),
        last_ready: Arc::default(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let (addr, serve) = crate::http_port::bind("admin", listen, app, shutdown).await?;
    tracing::info!(%addr, "admin endpoints: /metrics /healthz /readyz");
    Ok((addr, serve))
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let mut text = meters::render();
    text.push_str(&process::render());
    text.push_str(&gauges::render(&s.db, &s.js, &s.nats_sources).await);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let database = match s.db.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("unreachable: {e}"),
    };
    let migrations = match storage::migrations_pending(&s.db).await {
        Ok(false) => "applied".to_string(),
        Ok(true) => "pending".to_string(),
        Err(e) => format!("unknown: {e}"),
    };
    let nats = match s.nats.connection_state() {
        async_nats::connection::State::Connected => "connected".to_string(),
        other => format!("{other:?}").to_lowercase(),
    };
    // Connected is not enough on a cluster: the command stream may have no leader (an
    // election, or its only replica's node is down), and then no command flows.
    let commands = if nats == "connected" {
        command_stream_state(&s.js, &s.nats_sources.command_stream).await
    } else {
        "unavailable: NATS not connected".to_string()
    };
    let ready = database == "ok"
        && migrations == "applied"
        && nats == "connected"
        && commands == "available";
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Streams that differ from the configuration are reported, not a reason to stop.
    let streams = match s.stream_drift.as_slice() {
        [] => "as configured".to_string(),
        drift => drift.join("; "),
    };
    let detail = json!({
        "ready": ready,
        "database": database,
        "nats": nats,
        "migrations": migrations,
        "commands": commands,
        "streams": streams,
    });
    let previous = s
        .last_ready
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .replace(ready);
    warnings::readiness_changed(&s.worker, previous, ready, &detail);
    (code, axum::Json(detail))
}

/// Whether the command stream answers (`available`), within two seconds.
async fn command_stream_state(js: &async_nats::jetstream::Context, stream: &str) -> String {
    // `get_stream` is one stream-info request to the stream's leader.
    match tokio::time::timeout(std::time::Duration::from_secs(2), js.get_stream(stream)).await {
        Ok(Ok(_)) => "available".to_string(),
        Ok(Err(e)) => format!("unavailable: {e}"),
        Err(_) => format!("unavailable: stream {stream} did not answer within 2 s"),
    }
}
