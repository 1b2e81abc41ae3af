//! `rampd bench`: the throughput benchmark of issue 10. It measures and asserts nothing.
//!
//! Every part runs as a process of its own so that its CPU is counted by PID: a private
//! `nats-server`, a private PostgreSQL cluster (or a SQLite file), the provider sandbox
//! (`rampd sandbox`) and the worker (`rampd run` with a generated config). This process is
//! the upstream service (it speaks to the worker only over the NATS subjects of
//! `deploy/asyncapi.yaml`) and the verifying webhook receiver (on a thread of its own).
//!
//! The flow: N on-ramp UPI orders. Publish N `onramp.create` commands and wait for each
//! order's `awaiting_payment` event; then publish N `onramp.utr` commands (at most
//! `--in-flight` unacknowledged publishes at once) and wait for each order's `completed`
//! webhook. The provider answers `fiatReceived` on the first status poll after the UTR
//! and `completed` on the second.
//!
//! With `--parked P` (issue 12), P orders are created and parked for the user's payment
//! under a provider request budget (`--budget`, requests/s), with the production cadence
//! for parked orders; then only the first N of them get their UTR. The figures that matter
//! there: how fast the P orders were created, the worker's peak memory, the busiest second
//! of polls at the sandbox (never above the budget), and the task lag of the orders in
//! motion (`rampd_task_lag_seconds{urgency="moving"}`, read from the worker's metrics over
//! the UTR phase) while the parked ones compete for the same budget.
//!
//! The measured window starts once the worker is ready and has settled, just before the
//! first create, and ends at the last `completed` webhook. PostgreSQL's cumulative
//! counters are read after the worker has stopped (backends flush them on exit), so they
//! also hold the worker's graceful stop.

mod hooks;
mod postgres;
mod procs;
mod report;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::HeaderMap;
use futures::StreamExt;

use crate::natsd::{NatsServer, free_port};
use crate::sandbox::SandboxStats;
use crate::webhooks::WebhookSecret;
use hooks::{Arrival, HookThread};
use postgres::{PgCounters, PrivatePostgres};
pub use report::{BenchReport, ProcessFigure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub orders: usize,
    pub backend: Backend,
    /// The worker's status poll interval (min = max).
    pub poll_ms: u64,
    /// Unacknowledged command publishes at once.
    pub in_flight: usize,
    pub timeout: Duration,
    /// A TOML file merged over the generated worker config (to try tunings).
    pub worker_config: Option<PathBuf>,
    /// PostgreSQL: also print this many of the worker's most frequent statements.
    pub top_statements: usize,
    /// Keep the run's directory (config, logs, SQLite file) instead of removing it.
    pub keep: bool,
    /// The worker's binary, when it is not this one (an A/B against another build).
    pub worker_bin: Option<PathBuf>,
    /// Orders to create and park (0: as many as `orders`); only `orders` of them pay.
    pub parked: usize,
    /// With `parked`: the provider request budget, requests/s.
    pub budget: f64,
}

/// A child process of the run, stopped on drop.
struct Proc {
    name: &'static str,
    child: tokio::process::Child,
    pid: i32,
    log: PathBuf,
}

impl Proc {
    fn spawn(
        name: &'static str,
        mut cmd: tokio::process::Command,
        dir: &Path,
    ) -> anyhow::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        for var in [
            "RAMPD_CONFIG",
            "DATABASE_URL",
            "NATS_URL",
            "RAMPD_WORKER_ID",
            "RAMPD_PROVIDER_URL",
            "RAMPD_PROVIDER_API_KEY",
            "RAMPD_WEBHOOK_SECRETS_KEY",
            "RAMPD_ADMIN_LISTEN",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ] {
            cmd.env_remove(var);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("child has no pid")? as i32;
        Ok(Proc {
            name,
            child,
            pid,
            log,
        })
    }

    /// Fails when the process has exited, with the end of its log.
    fn ensure_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited ({status}); the end of its log:\n{}",
                self.name,
                log_tail(&self.log)
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    async fn stop(&mut self, grace: Duration) {
        signal(self.pid as u32, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub(crate) fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// CPU seconds of every measured process at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct CpuSnapshot {
    rampd: f64,
    nats: f64,
    postgres: f64,
    sandbox: f64,
    bench: f64,
    receiver: f64,
    machine: f64,
}

struct Pids {
    rampd: i32,
    nats: i32,
    postgres: Option<i32>,
    sandbox: i32,
    bench: i32,
    receiver_tid: i32,
}

impl Pids {
    fn cpu(&self) -> CpuSnapshot {
        CpuSnapshot {
            rampd: procs::cpu_secs(self.rampd).unwrap_or(0.0),
            nats: procs::cpu_secs(self.nats).unwrap_or(0.0),
            postgres: self
                .postgres
                .map(|p| procs::tree_cpu_secs(p).unwrap_or(0.0))
                .unwrap_or(0.0),
            sandbox: procs::cpu_secs(self.sandbox).unwrap_or(0.0),
            bench: procs::cpu_secs(self.bench).unwrap_or(0.0),
            receiver: procs::thread_cpu_secs(self.receiver_tid).unwrap_or(0.0),
            machine: procs::machine_busy_secs(),
        }
    }
}

/// An event from the worker, as the driver needs it.
struct Event {
    order: Option<usize>,
    kind: String,
    state: String,
    reason: String,
}

/// Runs the benchmark and returns its figures. Everything it started is stopped and its
/// directory removed (unless `keep`), also on error.
pub async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.orders > 0, "--orders must be at least 1");
    anyhow::ensure!(opts.in_flight > 0, "--in-flight must be at least 1");
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("rampd-bench-{}", &run_id[..12]));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&opts, &run_id, &dir).await;
    if opts.keep {
        eprintln!("rampd bench: kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(opts: &BenchOptions, run_id: &str, dir: &Path) -> anyhow::Result<BenchReport> {
    let n = opts.orders;
    anyhow::ensure!(
        opts.parked == 0 || opts.parked >= n,
        "--parked must be at least --orders (the orders that pay are among the parked ones)"
    );
    // Orders created; the first `n` of them pay.
    let created_n = n.max(opts.parked);
    let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let tenant = format!("bench{}", &run_id[..8]);
    let exe = std::env::current_exe().context("locating the rampd binary")?;
    let build = if cfg!(debug_assertions) {
        eprintln!("rampd bench: this is a DEBUG build; figures are not comparable");
        "debug"
    } else {
        "release"
    };

    // The stack: NATS, database, sandbox, webhook receiver, worker.
    let nats = NatsServer::start().await?;
    let nats_pid = nats.pid().context("nats-server has no pid")? as i32;
    let mut pg = match opts.backend {
        Backend::Postgres => Some(PrivatePostgres::start(dir).await?),
        Backend::Sqlite => None,
    };
    let database_url = match &pg {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}", dir.join("rampd.db").display()),
    };
    let postgres_version = match &pg {
        Some(pg) => Some(pg.version().await),
        None => None,
    };

    let sandbox_port = free_port()?;
    let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
    let mut cmd = tokio::process::Command::new(&exe);
    // After the UTR: fiatReceived on the first status poll, completed on the second.
    cmd.args(["sandbox", "--listen", &format!("127.0.0.1:{sandbox_port}")])
        .args(["--progression", "1,2,2,2"]);
    let mut sandbox = Proc::spawn("sandbox", cmd, dir)?;
    let http = reqwest::Client::new();
    wait_http(&http, &format!("{sandbox_url}/sandbox/stats"), &mut sandbox).await?;

    let secret = WebhookSecret::generate();
    let (mut hook_thread, mut arrivals) = HookThread::start(secret.clone())?;

    let admin_port = free_port()?;
    let config = worker_config(
        opts,
        &database_url,
        &nats.url,
        &sandbox_url,
        &tenant,
        &hook_thread.url,
        &secret,
        admin_port,
    )?;
    let config_path = dir.join("rampd.toml");
    std::fs::write(&config_path, &config)?;
    let mut cmd = tokio::process::Command::new(opts.worker_bin.as_deref().unwrap_or(&exe));
    cmd.arg("run").arg("--config").arg(&config_path);
    let mut rampd = Proc::spawn("rampd", cmd, dir)?;
    wait_http(
        &http,
        &format!("http://127.0.0.1:{admin_port}/readyz"),
        &mut rampd,
    )
    .await?;

    let client = async_nats::ConnectOptions::new()
        .subscription_capacity(1 << 20)
        .connect(&nats.url)
        .await?;
    let js = async_nats::jetstream::new(client.clone());
    let mut subscription = client.subscribe(format!("ramp.evt.{tenant}.>")).await?;
    let (event_tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let event_task = tokio::spawn(async move {
        while let Some(msg) = subscription.next().await {
            let ev: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
            let text = |k: &str| ev[k].as_str().unwrap_or_default().to_string();
            let event = Event {
                order: ev["order_id"].as_str().and_then(order_index),
                kind: text("type"),
                state: text("state"),
                reason: ev["reason"].to_string(),
            };
            if event_tx.send(event).is_err() {
                break;
            }
        }
    });

    let pids = Pids {
        rampd: rampd.pid,
        nats: nats_pid,
        postgres: pg.as_ref().and_then(PrivatePostgres::pid),
        sandbox: sandbox.pid,
        bench: std::process::id() as i32,
        receiver_tid: hook_thread.tid,
    };

    // Let start-up work (migrations, consumer set-up) finish and its statistics flush.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(pg) = &pg {
        pg.reset_statements().await?;
    }
    let pg_before = match &pg {
        Some(pg) => pg.counters().await?,
        None => PgCounters::default(),
    };
    let load_start = procs::load_average();
    let cpu0 = pids.cpu();
    let pg_pss_peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = pids.postgres.map(|root| {
        let peak = pg_pss_peak.clone();
        tokio::spawn(async move {
            loop {
                let pss = tokio::task::spawn_blocking(move || procs::tree_pss_bytes(root))
                    .await
                    .unwrap_or(0);
                peak.fetch_max(pss, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });

    // Phase 1: the creates.
    let t0 = Instant::now();
    let deadline = t0 + opts.timeout;
    let creates = tokio::spawn(publish_all(
        js.clone(),
        tenant.clone(),
        created_n,
        opts.in_flight,
        Command::Create,
    ));
    let metrics_url = format!("http://127.0.0.1:{admin_port}/metrics");
    let mut t1 = None;
    let mut lag_at_t1 = LagBuckets::default();
    let mut utrs = None;
    let mut tally = Tally::new(created_n);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;

    while tally.n_completed < n {
        if t1.is_none() && tally.n_awaiting == created_n {
            // Phase 2: every order awaits payment; the users of the first n pay.
            t1 = Some(Instant::now());
            lag_at_t1 = LagBuckets::scrape(&http, &metrics_url).await?;
            utrs = Some(tokio::spawn(publish_all(
                js.clone(),
                tenant.clone(),
                n,
                opts.in_flight,
                Command::Utr,
            )));
        }
        let bad = tally.ended_early + tally.rejected;
        let (good, of) = if t1.is_none() {
            (tally.n_awaiting, created_n)
        } else {
            (tally.n_completed, n)
        };
        if bad > 0 && good + bad >= of {
            anyhow::bail!(
                "{} commands rejected and {} orders ended early; see the worker's log",
                tally.rejected,
                tally.ended_early
            );
        }
        tokio::select! {
            Some(e) = events.recv() => tally.event(e),
            Some(a) = arrivals.recv() => tally.hook(a),
            _ = tick.tick() => {
                rampd.ensure_alive()?;
                sandbox.ensure_alive()?;
                eprintln!(
                    "[{:>6.1}s] awaiting payment {}/{created_n}, completed webhooks {}/{n}, webhooks {}, load {:.2}",
                    t0.elapsed().as_secs_f64(),
                    tally.n_awaiting,
                    tally.n_completed,
                    tally.hooks_received,
                    procs::load_average()[0],
                );
                if Instant::now() > deadline {
                    anyhow::bail!(
                        "timed out after {:?}: {}/{created_n} awaiting payment, {}/{n} completed",
                        opts.timeout,
                        tally.n_awaiting,
                        tally.n_completed
                    );
                }
            }
        }
    }
    let t2 = tally
        .completed_at
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or(t0);
    let cpu1 = pids.cpu();
    let load_end = procs::load_average();
    let lag = LagBuckets::scrape(&http, &metrics_url)
        .await?
        .since(&lag_at_t1);
    if let Some(s) = sampler {
        s.abort();
    }
    let peak = |pid: i32| procs::peak_rss_bytes(pid).unwrap_or(0);
    let (rss_rampd, rss_nats, rss_sandbox, rss_bench) = (
        peak(pids.rampd),
        peak(pids.nats),
        peak(pids.sandbox),
        peak(pids.bench),
    );
    let creates_published = creates.await??.len();
    let sent = utrs.context("no UTR was published")?.await??;
    let t1 = t1.unwrap_or(t0);

    // Webhooks of earlier states may still be on their way: take what arrives until the
    // receiver has been quiet for a second (outside the window).
    let quiet_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < quiet_until {
        match tokio::time::timeout(Duration::from_secs(1), arrivals.recv()).await {
            Ok(Some(a)) => tally.hook(a),
            _ => break,
        }
    }
    while let Ok(e) = events.try_recv() {
        tally.event(e);
    }

    let stats: SandboxStats = http
        .get(format!("{sandbox_url}/sandbox/stats"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;

    rampd.stop(Duration::from_secs(30)).await;
    let (pg_after, top_statements) = match &pg {
        Some(pg) => {
            pg.wait_for_no_clients().await;
            (
                pg.counters().await?,
                pg.top_statements(opts.top_statements).await?,
            )
        }
        None => (PgCounters::default(), Vec::new()),
    };
    event_task.abort();
    hook_thread.stop();
    sandbox.stop(Duration::from_secs(5)).await;
    if let Some(pg) = pg.as_mut() {
        pg.stop().await;
    }
    drop(nats);

    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|&(i, at)| {
            Some(
                tally.completed_at[i]?
                    .saturating_duration_since(at)
                    .as_secs_f64(),
            )
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let d = |a: f64, b: f64| (b - a).max(0.0);
    let round = |v: f64, scale: f64| (v * scale).round() / scale;
    // Seconds to the millisecond.
    let ms = |v: f64| round(v, 1000.0);
    let cpu = |name: &str, pid: i32, secs: f64, rss: Option<u64>, note: &str| ProcessFigure {
        name: name.to_string(),
        pid,
        cpu_s: round(secs, 100.0),
        cpu_ms_per_order: round(secs * 1000.0 / n as f64, 1000.0),
        peak_rss_mib: rss.map(|b| round(b as f64 / (1024.0 * 1024.0), 10.0)),
        note: note.to_string(),
    };
    let receiver_s = d(cpu0.receiver, cpu1.receiver);
    let mut processes = vec![
        cpu(
            "rampd",
            pids.rampd,
            d(cpu0.rampd, cpu1.rampd),
            Some(rss_rampd),
            "worker (rampd run)",
        ),
        cpu(
            "nats-server",
            pids.nats,
            d(cpu0.nats, cpu1.nats),
            Some(rss_nats),
            "",
        ),
    ];
    if let Some(pid) = pids.postgres {
        processes.push(cpu(
            "postgres",
            pid,
            d(cpu0.postgres, cpu1.postgres),
            Some(pg_pss_peak.load(std::sync::atomic::Ordering::Relaxed)),
            "postmaster + backends; memory: peak sum of PSS",
        ));
    }
    let system_s: f64 = processes.iter().map(|p| p.cpu_s).sum();
    processes.push(cpu(
        "sandbox",
        pids.sandbox,
        d(cpu0.sandbox, cpu1.sandbox),
        Some(rss_sandbox),
        "provider simulator (rampd sandbox)",
    ));
    processes.push(cpu(
        "bench driver",
        pids.bench,
        (d(cpu0.bench, cpu1.bench) - receiver_s).max(0.0),
        Some(rss_bench),
        "upstream over NATS; memory: whole bench process",
    ));
    processes.push(cpu(
        "webhook receiver",
        hook_thread.tid,
        receiver_s,
        None,
        "a thread (tid) of the bench process",
    ));
    let ours: f64 = processes.iter().map(|p| p.cpu_s).sum();
    let others = (d(cpu0.machine, cpu1.machine) - ours).max(0.0);

    let pg_delta = pg.as_ref().map(|_| PgCounters {
        statements: pg_after.statements - pg_before.statements,
        commits: pg_after.commits - pg_before.commits,
        rollbacks: pg_after.rollbacks - pg_before.rollbacks,
        wal_syncs: pg_after.wal_syncs - pg_before.wal_syncs,
        wal_bytes: pg_after.wal_bytes - pg_before.wal_bytes,
    });
    let provider_orders: u32 = stats.orders_by_merchant_ref.values().sum();
    let report = BenchReport {
        date,
        build: build.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        backend: opts.backend,
        postgres_version,
        cores: std::thread::available_parallelism().map_or(0, |c| c.get()),
        load_start,
        load_end,
        orders: n,
        parked: opts.parked,
        budget_per_s: (opts.parked > 0).then_some(opts.budget),
        create_per_s: round(
            created_n as f64 / t1.saturating_duration_since(t0).as_secs_f64().max(1e-9),
            10.0,
        ),
        busiest_second: stats.busiest_second,
        busiest_poll_second: stats.busiest_poll_second,
        moving_task_lag_p99_le_s: lag.p99_le(),
        moving_tasks_claimed: lag.total(),
        poll_ms: opts.poll_ms,
        in_flight: opts.in_flight,
        creates_published,
        utrs_published: sent.len(),
        completed: tally.n_completed,
        duration_s: ms(t2.saturating_duration_since(t0).as_secs_f64()),
        create_phase_s: ms(t1.saturating_duration_since(t0).as_secs_f64()),
        utr_phase_s: ms(t2.saturating_duration_since(t1).as_secs_f64()),
        latency_p50_s: ms(percentile(&latencies, 0.50)),
        latency_p90_s: ms(percentile(&latencies, 0.90)),
        latency_p99_s: ms(percentile(&latencies, 0.99)),
        latency_max_s: ms(latencies.last().copied().unwrap_or(0.0)),
        processes,
        system_cpu_s: round(system_s, 100.0),
        other_processes_cpu_s: round(others, 100.0),
        postgres: pg_delta,
        top_statements,
        provider_orders: provider_orders as usize,
        duplicate_provider_orders: stats
            .orders_by_merchant_ref
            .values()
            .filter(|c| **c > 1)
            .count(),
        utr_submissions: stats.utr_submissions_by_order.values().sum::<u32>() as usize,
        orders_with_repeated_utr: stats
            .utr_submissions_by_order
            .values()
            .filter(|c| **c > 1)
            .count(),
        provider_status_calls: stats.status_calls,
        provider_logins: stats.logins,
        webhooks_received: tally.hooks_received,
        webhooks_verified: tally.hooks_verified,
        webhooks_unique: tally.hook_ids.len(),
        events_received: tally.events_received,
        commands_rejected: tally.rejected,
        orders_ended_otherwise: tally.ended_early,
    };
    Ok(report)
}

/// What the driver has seen of the orders so far.
struct Tally {
    awaiting: Vec<bool>,
    n_awaiting: usize,
    rejected: usize,
    ended_early: usize,
    events_received: usize,
    /// When each order's verified `completed` webhook arrived.
    completed_at: Vec<Option<Instant>>,
    n_completed: usize,
    hooks_received: usize,
    hooks_verified: usize,
    hook_ids: HashSet<String>,
}

impl Tally {
    fn new(n: usize) -> Tally {
        Tally {
            awaiting: vec![false; n],
            n_awaiting: 0,
            rejected: 0,
            ended_early: 0,
            events_received: 0,
            completed_at: vec![None; n],
            n_completed: 0,
            hooks_received: 0,
            hooks_verified: 0,
            hook_ids: HashSet::new(),
        }
    }

    fn event(&mut self, e: Event) {
        self.events_received += 1;
        match (e.kind.as_str(), e.state.as_str(), e.order) {
            ("order.status_changed", "awaiting_payment", Some(i))
                if i < self.awaiting.len() && !self.awaiting[i] =>
            {
                self.awaiting[i] = true;
                self.n_awaiting += 1;
            }
            ("order.status_changed", "failed" | "expired" | "cancelled" | "refunded", _) => {
                self.ended_early += 1;
                eprintln!("rampd bench: an order ended {}", e.state);
            }
            ("command.rejected", _, _) => {
                self.rejected += 1;
                eprintln!("rampd bench: command rejected: {}", e.reason);
            }
            _ => {}
        }
    }

    fn hook(&mut self, a: Arrival) {
        self.hooks_received += 1;
        if !a.verified {
            return;
        }
        self.hooks_verified += 1;
        self.hook_ids.insert(a.webhook_id);
        if a.kind.as_deref() == Some("order.status_changed")
            && a.state.as_deref() == Some("completed")
            && let Some(i) = a.order_id.as_deref().and_then(order_index)
            && i < self.completed_at.len()
            && self.completed_at[i].is_none()
        {
            self.completed_at[i] = Some(a.at);
            self.n_completed += 1;
        }
    }
}

/// The worker's task-lag histogram of the orders in motion
/// (`rampd_task_lag_seconds_bucket{queue="tasks",urgency="moving"}`): cumulative counts by
/// upper bound, in seconds.
#[derive(Debug, Default, Clone, PartialEq)]
struct LagBuckets(Vec<(f64, u64)>);

impl LagBuckets {
    async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<LagBuckets> {
        let text = http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(LagBuckets::parse(&text))
    }

    fn parse(text: &str) -> LagBuckets {
        let mut buckets: Vec<(f64, u64)> = text
            .lines()
            .filter(|l| l.starts_with("rampd_task_lag_seconds_bucket{"))
            .filter(|l| l.contains(r#"queue="tasks""#) && l.contains(r#"urgency="moving""#))
            .filter_map(|l| {
                let le = l.split(r#"le=""#).nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                let count = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
                Some((le, count))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        LagBuckets(buckets)
    }

    /// The counts since `before`.
    fn since(&self, before: &LagBuckets) -> LagBuckets {
        LagBuckets(
            self.0
                .iter()
                .map(|&(le, n)| {
                    let was = before.0.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
                    (le, n.saturating_sub(was))
                })
                .collect(),
        )
    }

    fn total(&self) -> u64 {
        self.0.last().map_or(0, |b| b.1)
    }

    /// The upper bound of the bucket that holds the 99th percentile (`None` when empty).
    fn p99_le(&self) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * 0.99).ceil() as u64;
        self.0.iter().find(|b| b.1 >= rank).map(|b| b.0)
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn order_id(i: usize) -> String {
    format!("o{i:07}")
}

fn order_index(id: &str) -> Option<usize> {
    id.strip_prefix('o')?.parse().ok()
}

#[derive(Clone, Copy)]
enum Command {
    Create,
    Utr,
}

/// Publishes one command per order, at most `in_flight` unacknowledged at once; returns
/// (order, when its publish was sent) in the order the acks came back.
async fn publish_all(
    js: async_nats::jetstream::Context,
    tenant: String,
    n: usize,
    in_flight: usize,
    command: Command,
) -> anyhow::Result<Vec<(usize, Instant)>> {
    futures::stream::iter(0..n)
        .map(|i| {
            let js = js.clone();
            let tenant = tenant.clone();
            async move {
                let oid = order_id(i);
                let (subject, body) = match command {
                    Command::Create => ("onramp.create", onramp_create(&oid, i)),
                    Command::Utr => (
                        "onramp.utr",
                        serde_json::json!({
                            "command_id": format!("{oid}-utr"),
                            "order_id": oid,
                            "utr": format!("{:012}", 600_000_000_000u64 + i as u64),
                        }),
                    ),
                };
                let mut headers = HeaderMap::new();
                let msg_id = format!("{tenant}.{}", body["command_id"].as_str().unwrap_or(""));
                headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
                for (name, value) in crate::telemetry::context::new_trace_fields() {
                    headers.insert(name, value.as_str());
                }
                let at = Instant::now();
                js.publish_with_headers(
                    format!("ramp.cmd.{tenant}.{subject}"),
                    headers,
                    body.to_string().into(),
                )
                .await?
                .await
                .with_context(|| format!("publishing {subject} for {oid}"))?;
                anyhow::Ok((i, at))
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

fn onramp_create(order_id: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "command_id": format!("{order_id}-create"),
        "order_id": order_id,
        "user": {
            "email": format!("user{}@example.com", i + 1),
            "name": "Asha Rao",
            "phone": format!("98{:08}", i + 1),
            "pan": "ABCDE1234F"
        },
        "fiat_amount": format!("{}.00", 500 + 100 * (i % 20)),
        "token": "USDT",
        "chain_id": 137,
        "receiver_address": format!("0x{:040x}", i + 1),
        "payment": {"mode": "upi", "upi_id": format!("user{}@okaxis", i + 1)},
    })
}

/// Waits until `url` answers 2xx, failing early if `proc` exits.
async fn wait_http(http: &reqwest::Client, url: &str, proc: &mut Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        proc.ensure_alive()?;
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} did not become ready at {url}; the end of its log:\n{}",
            proc.name,
            log_tail(&proc.log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The worker's config: production defaults but for the sandbox provider, the poll
/// interval, a short idle scan, the one webhook endpoint and the admin port; then the
/// `--worker-config` file merged over it.
#[allow(clippy::too_many_arguments)]
fn worker_config(
    opts: &BenchOptions,
    database_url: &str,
    nats_url: &str,
    sandbox_url: &str,
    tenant: &str,
    hook_url: &str,
    secret: &WebhookSecret,
    admin_port: u16,
) -> anyhow::Result<String> {
    let generated = serde_json::json!({
        "database_url": database_url,
        "nats_url": nats_url,
        "worker_id": format!("bench-{tenant}"),
        "provider": {
            "base_url": sandbox_url,
            "api_key": crate::sandbox::SandboxConfig::default().api_key,
        },
        "orders": {
            "poll_interval_min_ms": opts.poll_ms,
            "poll_interval_max_ms": opts.poll_ms,
        },
        "executor": { "idle_ms": 100 },
        "webhooks": {
            "endpoints": [{
                "id": "bench",
                "tenant": tenant,
                "url": hook_url,
                "secret": secret.expose_text(),
            }],
            "allow_networks": ["127.0.0.0/8"],
        },
        "admin": { "listen": format!("127.0.0.1:{admin_port}") },
    });
    let mut table: toml::Table = toml::Table::try_from(generated)?;
    if opts.parked > 0 {
        // The production cadence (parked orders slowly, paid ones every 10-15 s) under
        // the budget: that is what this run is about.
        table.remove("orders");
        let budget: toml::Table = toml::from_str(&format!(
            "[provider]\nrequests_per_sec = {:?}\n",
            opts.budget
        ))?;
        merge(&mut table, budget);
    }
    if let Some(path) = &opts.worker_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let overlay: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        merge(&mut table, overlay);
    }
    // Refuse a config the worker would refuse, before starting it.
    let text = toml::to_string(&table)?;
    toml::from_str::<crate::config::Config>(&text).context("the worker config")?;
    Ok(text)
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.9), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_moving_orders_lag_histogram_is_read_and_differenced() {
        let scrape = |a: u64, b: u64, inf: u64| {
            LagBuckets::parse(&format!(
                "# TYPE rampd_task_lag_seconds histogram\n\
                 rampd_task_lag_seconds_bucket{{queue=\"tasks\",urgency=\"moving\",le=\"0.5\"}} {a}\n\
                 rampd_task_lag_seconds_bucket{{queue=\"tasks\",urgency=\"moving\",le=\"1\"}} {b}\n\
                 rampd_task_lag_seconds_bucket{{queue=\"tasks\",urgency=\"moving\",le=\"+Inf\"}} {inf}\n\
                 rampd_task_lag_seconds_bucket{{queue=\"tasks\",urgency=\"parked\",le=\"1\"}} 99\n"
            ))
        };
        let before = scrape(10, 10, 10);
        let after = scrape(1_010, 1_110, 1_111);
        let lag = after.since(&before);
        assert_eq!(lag.total(), 1_101);
        assert_eq!(lag.p99_le(), Some(1.0));
        assert_eq!(scrape(0, 0, 0).p99_le(), None);
        assert_eq!(scrape(5, 5, 500).p99_le(), Some(f64::INFINITY));
    }

    #[test]
    fn order_ids_round_trip() {
        assert_eq!(order_index(&order_id(42)), Some(42));
        assert_eq!(order_index("x1"), None);
    }

    #[test]
    fn overlay_replaces_leaves_and_keeps_the_rest() {
        let mut base: toml::Table =
            toml::from_str("[executor]\nidle_ms = 100\nbatch = 64\n").unwrap();
        merge(
            &mut base,
            toml::from_str("[executor]\nbatch = 256\n[nats]\nbatch = 128\n").unwrap(),
        );
        assert_eq!(base["executor"]["idle_ms"].as_integer(), Some(100));
        assert_eq!(base["executor"]["batch"].as_integer(), Some(256));
        assert_eq!(base["nats"]["batch"].as_integer(), Some(128));
    }
}
