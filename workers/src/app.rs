//! Wiring: the parts of a running worker and their start/stop.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::executor::Executor;
use crate::providers::registry::Providers;
use crate::shared::{Shared, Wakers};
use crate::storage::group_commit::GroupCommit;
use crate::storage::handoff::Handoff;
use crate::webhooks::Endpoints;
use crate::webhooks::sender::Sender;
use crate::webhooks::vault::Vault;
use crate::{intake, nats, relay, retention, storage};

pub use crate::tls::install_crypto;

/// Refuse configurations that would break the money rules.
pub fn validate(cfg: &Config) -> anyhow::Result<()> {
    let timeout_ms = cfg.longest_provider_timeout_ms();
    if cfg.executor.lease_ms < timeout_ms + 2_000 {
        anyhow::bail!(
            "executor.lease_ms ({}) must exceed the longest provider timeout_ms ({timeout_ms}) \
             by at least 2 s, or a slow call could be repeated by another replica",
            cfg.executor.lease_ms,
        );
    }
    if cfg.orders.poll_interval_min_ms > cfg.orders.poll_interval_max_ms {
        anyhow::bail!("onramp.poll_interval_min_ms must not exceed poll_interval_max_ms");
    }
    if cfg.orders.parked_poll_min_ms > cfg.orders.parked_poll_max_ms {
        anyhow::bail!("orders.parked_poll_min_ms must not exceed parked_poll_max_ms");
    }
    if cfg.orders.amount_min <= rust_decimal::Decimal::ZERO
        || cfg.orders.amount_min > cfg.orders.amount_max
    {
        anyhow::bail!("onramp amount limits must satisfy 0 < amount_min <= amount_max");
    }
    let p = &cfg.provider;
    if !(p.requests_per_sec.is_finite() && p.requests_per_sec >= 0.0) || p.replicas == 0 {
        anyhow::bail!("provider.requests_per_sec must be >= 0 and provider.replicas >= 1");
    }
    if cfg.callbacks.body_limit_bytes == 0 {
        anyhow::bail!("callbacks.body_limit_bytes must be >= 1");
    }
    cfg.webhooks.validate()?;
    cfg.retention.validate()?;
    cfg.nats.validate()?;
    nats::servers(&cfg.nats_url)?;
    intake::lanes::validate_filter(cfg.nats.consumer_filter.as_deref())?;
    Ok(())
}

/// A running worker: intake, executor, outbox relay, webhook sender and retention.
pub struct Worker {
    pub shared: Shared,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, when `admin.listen` is set.
    pub admin_addr: Option<std::net::SocketAddr>,
    /// Where provider callbacks are received, when `callbacks.listen` is set.
    pub callbacks_addr: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Worker {
    /// Connect, migrate, set up NATS and start every loop.
    pub async fn start(cfg: Config) -> anyhow::Result<Worker> {
        install_crypto();
        validate(&cfg)?;
        let db = storage::open(&cfg.database_url, storage::Create::IfMissing).await?;
        storage::migrate(&db)
            .await
            .map_err(|e| anyhow::anyhow!("migrating the database failed: {e}"))?;
        let client = nats::connect(&cfg).await?;
        let js = jetstream::new(client.clone());
        let topology = nats::ensure_topology(&js, &cfg.nats).await?;
        let vault = Vault::new(cfg.webhooks.secrets_key.as_ref())?;
        let endpoints = Endpoints::from_config(&cfg.webhooks.endpoints)?.with_vault(vault);
        endpoints
            .sync_declared(
                &db,
                chrono::Utc::now().timestamp_millis(),
                cfg.webhooks.rotation_overlap_secs as i64 * 1000,
            )
            .await?;
        endpoints.seal_stored(&db).await?;
        let providers = Providers::from_config(&cfg)?;
        let writers = match storage::is_sqlite(&db) {
            true => 1, // SQLite has one writer at a time
            false => storage::group_commit::POSTGRES_WRITERS,
        };
        let wake = Arc::new(Wakers::default());
        let (handoff, handed) =
            Handoff::to_relay(&cfg.worker_id, relay::lease_ms(&cfg), wake.outbox.clone());
        let shared = Shared {
            commits: GroupCommit::start_with(db.clone(), writers, handoff),
            db,
            nats: client,
            js,
            endpoints,
            providers,
            cfg: Arc::new(cfg),
            wake,
            stream_drift: Arc::new(topology.drift),
        };
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        // Bound first, so a taken port fails the start before any work is picked up.
        let admin_addr = match shared.cfg.admin.listen {
            Some(listen) => {
                let (addr, serve) =
                    crate::admin::http::bind(&shared, listen, shutdown.clone()).await?;
                tasks.spawn(serve);
                Some(addr)
            }
            None => None,
        };
        let callbacks_addr = match shared.cfg.callbacks.listen {
            Some(listen) => {
                let (addr, serve) =
                    crate::callbacks::http::bind(&shared, listen, shutdown.clone()).await?;
                tasks.spawn(serve);
                Some(addr)
            }
            None => None,
        };
        tasks.spawn(intake::lanes::run(
            shared.clone(),
            topology.commands,
            shutdown.clone(),
        ));
        tasks.spawn(Executor::new(shared.clone()).run(shutdown.clone()));
        tasks.spawn(relay::run(shared.clone(), handed, shutdown.clone()));
        tasks.spawn(Sender::new(shared.clone())?.run(shutdown.clone()));
        tasks.spawn(retention::run(shared.clone(), shutdown.clone()));
        tracing::info!(worker = %shared.cfg.worker_id, "rampd worker started");
        Ok(Worker {
            shared,
            admin_addr,
            callbacks_addr,
            shutdown,
            tasks,
        })
    }

    /// Stop taking work and let in-flight steps finish (bounded by `grace`).
    pub async fn shutdown(mut self, grace: Duration) {
        self.shutdown.cancel();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("shutdown grace elapsed; aborting remaining work");
            self.tasks.abort_all();
        }
        tracing::info!("rampd worker stopped");
    }

    /// Stop at once, as a crash would: in-flight calls are dropped mid-way. Leases and the
    /// inbox make the work resume elsewhere.
    pub async fn kill(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
    pub async fn until_signal() {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        ctrl_c.await.ok();
    }
}
