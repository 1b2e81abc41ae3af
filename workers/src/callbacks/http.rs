//! The callback listener: `POST /callbacks/onmeta`, on a port of its own
//! (`callbacks.listen`, off by default), so that it can be exposed to the provider without
//! exposing the admin port.
//!
//! Answers: 200 for every verified, readable callback (applied, repeated, or for an order
//! we do not know: the provider retries nothing we can rely on, and the poll remains the
//! source of truth); 401 when the signature is missing or wrong (counted, logged without
//! the body, never acted on); 400 for a verified body that says nothing usable; 413 past
//! `callbacks.body_limit_bytes`; 503 when the database cannot take the callback (the
//! provider may try again; if it does not, the next poll sees the same).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::receive;
use crate::providers::onmeta::PROVIDER;
use crate::providers::onmeta::callback::{SIGNATURE_HEADER, parse, verify};
use crate::shared::Shared;
use crate::telemetry::meters;

#[derive(Clone)]
struct Listener {
    shared: Shared,
    /// The merchant API secrets a callback may be signed with: current first, then the
    /// previous one while a rotation is under way.
    secrets: Arc<Vec<SecretString>>,
}

/// Bind `listen`; returns the bound address (useful with port 0) and the server, which
/// runs until `shutdown` once spawned.
pub async fn bind(
    shared: &Shared,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let provider = &shared.cfg.provider;
    let secrets: Vec<SecretString> = [
        Some(&provider.api_secret),
        provider.api_secret_previous.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.expose_secret().is_empty())
    .cloned()
    .collect();
    anyhow::ensure!(
        !secrets.is_empty(),
        "callbacks.listen is set but provider.api_secret is empty: no callback could be verified"
    );
    let state = Listener {
        shared: shared.clone(),
        secrets: Arc::new(secrets),
    };
    let app = Router::new()
        .route("/callbacks/onmeta", post(onmeta))
        .layer(DefaultBodyLimit::max(shared.cfg.callbacks.body_limit_bytes))
        .with_state(state);
    let (addr, serve) = crate::http_port::bind("callback", listen, app, shutdown).await?;
    tracing::info!(%addr, "provider callbacks: POST /callbacks/onmeta");
    Ok((addr, serve))
}

async fn onmeta(
    State(l): State<Listener>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let secrets: Vec<&[u8]> = l
        .secrets
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect();
    if !verify(&secrets, &body, signature) {
        meters::provider_callback(PROVIDER, "unverified");
        tracing::warn!(
            provider = PROVIDER,
            signed = !signature.is_empty(),
            bytes = body.len(),
            "provider callback refused: signature missing or wrong"
        );
        return answer(StatusCode::UNAUTHORIZED, "signature missing or wrong");
    }
    let callback = match parse(&body) {
        Ok(c) => c,
        Err(e) => {
            meters::provider_callback(PROVIDER, "malformed");
            tracing::warn!(provider = PROVIDER, error = %e, "provider callback unreadable");
            return answer(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    match receive(&l.shared, &body, callback).await {
        Ok(outcome) => {
            meters::provider_callback(PROVIDER, outcome.as_str());
            answer(StatusCode::OK, outcome.as_str())
        }
        Err(e) => {
            meters::provider_callback(PROVIDER, "error");
            tracing::warn!(provider = PROVIDER, error = %e, "provider callback not taken");
            answer(StatusCode::SERVICE_UNAVAILABLE, "try again later")
        }
    }
}

fn answer(status: StatusCode, outcome: &str) -> (StatusCode, axum::Json<serde_json::Value>) {
    (status, axum::Json(json!({ "outcome": outcome })))
}
