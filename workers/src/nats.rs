//! NATS plumbing: connection, idempotent stream/consumer setup, trace headers.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::config::{Config, NatsConfig};

pub const CMD_SUBJECTS: &str = "ramp.cmd.>";
pub const EVT_SUBJECTS: &str = "ramp.evt.>";
pub const DLQ_SUBJECTS: &str = "ramp.dlq.>";

/// Connect as worker `cfg.worker_id`. Disconnects, reconnects and server or client errors
/// are logged at WARN (`telemetry::warnings::nats_event`).
pub async fn connect(cfg: &Config) -> anyhow::Result<async_nats::Client> {
    let worker = Arc::new(cfg.worker_id.clone());
    let server = Arc::new(crate::telemetry::warnings::nats_servers(&cfg.nats_url));
    let seen_connected = Arc::new(AtomicBool::new(false));
    async_nats::ConnectOptions::new()
        .name(format!("rampd {}", cfg.worker_id))
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let (worker, server, seen) = (worker.clone(), server.clone(), seen_connected.clone());
            async move {
                crate::telemetry::warnings::nats_event(&event, &seen, &worker, &server);
            }
        })
        .connect(&cfg.nats_url)
        .await
        .map_err(|e| {
            let at = crate::telemetry::warnings::nats_servers(&cfg.nats_url);
            anyhow::anyhow!("cannot connect to NATS at {at}: {e}")
        })
}

fn stream_config(name: &str, subject: &str, cfg: &NatsConfig, max_age: Duration) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
        max_age,
        ..Default::default()
    }
}

/// Create the command, event and dead-letter streams if they do not exist yet; returns the
/// command stream, whose per-tenant consumers the intake creates (`intake::lanes`). Safe
/// to call from every replica at every start.
pub async fn ensure_topology(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> anyhow::Result<stream::Stream> {
    let week = Duration::from_secs(7 * 24 * 3600);
    let cmd = js
        .get_or_create_stream(stream_config(&cfg.command_stream, CMD_SUBJECTS, cfg, week))
        .await
        .map_err(|e| anyhow::anyhow!("command stream: {e}"))?;
    js.get_or_create_stream(stream_config(&cfg.event_stream, EVT_SUBJECTS, cfg, week))
        .await
        .map_err(|e| anyhow::anyhow!("event stream: {e}"))?;
    js.get_or_create_stream(stream_config(
        &cfg.dead_letter_stream,
        DLQ_SUBJECTS,
        cfg,
        Duration::from_secs(30 * 24 * 3600),
    ))
    .await
    .map_err(|e| anyhow::anyhow!("dead-letter stream: {e}"))?;
    Ok(cmd)
}
