//! One HTTP port of the worker (the admin port, the callback listener): bound before any
//! work is picked up, so that a taken port fails the start, and served until shutdown.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

/// Bind `listen` for `app`; returns the bound address (useful with port 0) and the
/// server, which runs until `shutdown` once spawned. `what` names the port in errors.
pub async fn bind(
    what: &'static str,
    listen: SocketAddr,
    app: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("{what} port {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let serve = async move {
        let stop = async move { shutdown.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "{what} port stopped");
        }
    };
    Ok((addr, serve))
}
