//! The `rampd` binary: worker, migrations, provider sandbox and demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampd::app::{Worker, install_crypto};
use rampd::config::Config;
use rampd::demo::{self, DemoOptions, ExternalReceiver};
use rampd::sandbox::{Faults, OfframpProgression, Progression, Sandbox, SandboxConfig, Scenario};
use rampd::webhooks::{self, WebhookSecret, admin::WebhooksCmd};
use rampd::{admin, bench, storage, telemetry};

/// mimalloc instead of glibc malloc: the worker allocates from many threads at once, and
/// glibc's arenas and locks cost 17 % of its CPU in the throughput benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rampd",
    version,
    about = "Crypto on/off-ramp order orchestration worker"
)]
struct Cli {
    /// Configuration file (TOML). Environment variables override it.
    #[arg(long, short, env = "RAMPD_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the worker: command intake, task executor, outbox relay, webhook sender.
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the provider sandbox (an Onmeta-style API simulator) as an HTTP server.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: SocketAddr,
        /// Provider time runs this many times faster (e.g. 360 turns the 3 h expiry into 30 s).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Every user starts KYC-verified.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        kyc_verified: bool,
        /// Status polls after the UTR until fiatReceived, orderReceived, transferred and
        /// completed (cumulative), e.g. `1,2,3,4`.
        #[arg(long, default_value = "1,2,3,4", value_parser = parse_progression)]
        progression: Progression,
        /// Initial faults as JSON, e.g. `{"error_rate":0.1,"rate_limit_rate":0.05}`
        /// (also settable at run time with `PUT /sandbox/faults`).
        #[arg(long, value_parser = parse_json::<Faults>)]
        faults: Option<Faults>,
        /// Business scenario knobs as JSON, e.g. `{"kyc_pending_checks":2,
        /// "link_pending_polls":1,"link_name_mismatch_next":1,"refund_next_offramp":1}`
        /// (also settable at run time with `PUT /sandbox/scenario`).
        #[arg(long, value_parser = parse_json::<Scenario>)]
        scenario: Option<Scenario>,
        /// Off-ramp status polls after the tx hash as JSON, e.g. `{"order_received":1,
        /// "in_progress":null,"crypto_received":2,"payout_success":3,"completed":4}`.
        #[arg(long, value_parser = parse_json::<OfframpProgression>)]
        offramp_progression: Option<OfframpProgression>,
        /// INR per token (also settable at run time with `PUT /sandbox/conversion-rate`).
        #[arg(long, default_value = "88.50")]
        conversion_rate: rust_decimal::Decimal,
    },
    /// Operator commands on orders: show a timeline, list, retry now, cancel, resolve.
    Orders {
        #[command(subcommand)]
        cmd: admin::cli::OrdersCmd,
    },
    /// Operator commands on tasks.
    Tasks {
        #[command(subcommand)]
        cmd: admin::cli::TasksCmd,
    },
    /// Provider callbacks received (by default those for orders rampd does not know).
    Callbacks {
        #[command(subcommand)]
        cmd: admin::callbacks::CallbacksCmd,
    },
    /// Run on-ramp and off-ramp orders end to end on embedded defaults and print a summary.
    Demo {
        /// Number of on-ramp (fiat → crypto) orders.
        #[arg(long, default_value_t = 20)]
        onramp: usize,
        /// Number of off-ramp (crypto → fiat) orders.
        #[arg(long, default_value_t = 0)]
        offramp: usize,
        /// NATS to use; when none answers, a private nats-server is started from PATH.
        #[arg(long, env = "NATS_URL")]
        nats_url: Option<String>,
        /// Print one JSON object as the last line.
        #[arg(long)]
        json: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Deliver webhooks to this receiver instead of the demo's own (needs --webhook-secret).
        #[arg(long, requires = "webhook_secret")]
        webhook_url: Option<String>,
        /// The `whsec_…` secret the receiver at --webhook-url verifies with.
        #[arg(
            long,
            env = "RAMPD_DEMO_WEBHOOK_SECRET",
            hide_env_values = true,
            requires = "webhook_url"
        )]
        webhook_secret: Option<String>,
    },
    /// Webhook endpoints (add, list, disable, enable, rotate-secret) and replay.
    #[command(subcommand)]
    Webhooks(WebhooksCmd),
    /// Throughput benchmark (issue 10): N on-ramp orders through a private NATS, database,
    /// sandbox and worker process; prints one table and one JSON line. Measures only.
    Bench {
        /// Number of on-ramp orders.
        #[arg(long, default_value_t = 1000)]
        orders: usize,
        #[arg(long, value_enum, default_value_t = bench::Backend::Sqlite)]
        backend: bench::Backend,
        /// The worker's status poll interval (with `--parked`, the production cadence instead).
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
        /// Unacknowledged command publishes at once.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
        /// TOML merged over the generated worker config (e.g. `[executor]\nbatch = 256`).
        #[arg(long)]
        worker_config: Option<PathBuf>,
        /// PostgreSQL: also list the worker's N most frequent statements.
        #[arg(long, default_value_t = 0)]
        top_statements: usize,
        /// Keep the run's directory (worker config and logs).
        #[arg(long)]
        keep: bool,
        /// Run the worker from this rampd binary instead of this one (to measure another
        /// build against the same driver, sandbox and receiver).
        #[arg(long)]
        worker_bin: Option<PathBuf>,
        /// Create and park this many orders (issue 12), under `--budget`; only `--orders`
        /// of them then get their UTR.
        #[arg(long, default_value_t = 0)]
        parked: usize,
        /// With `--parked`: the provider request budget, requests/s.
        #[arg(long, default_value_t = 200.0)]
        budget: f64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    install_crypto();
    let quiet = matches!(
        cli.command,
        Cmd::Demo { .. }
            | Cmd::Orders { .. }
            | Cmd::Tasks { .. }
            | Cmd::Callbacks { .. }
            | Cmd::Bench { .. }
    );
    let telemetry = telemetry::init(if quiet { "warn" } else { "info" });
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever the error's sources print.
            let line = format!("{e:#}").replace(['\r', '\n'], " ");
            eprintln!("rampd: {line}");
            ExitCode::FAILURE
        }
    };
    // Export the spans still queued before the process ends.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Run => {
            let cfg = Config::load(cli.config.as_deref())?;
            let worker = Worker::start(cfg).await?;
            Worker::until_signal().await;
            worker.shutdown(Duration::from_secs(30)).await;
        }
        Cmd::Migrate => {
            let cfg = Config::load(cli.config.as_deref())?;
            let db = storage::open(&cfg.database_url, storage::Create::IfMissing).await?;
            storage::migrate(&db)
                .await
                .context("migrating the database failed")?;
            println!(
                "migrations applied to {}",
                storage::redact_url(&cfg.database_url)
            );
        }
        Cmd::Orders { cmd } => {
            let (cfg, db) = admin_db(cli.config.as_deref()).await?;
            let done = admin::cli::orders(&db, &cfg, cmd, &mut std::io::stdout()).await;
            return operator_exit(done);
        }
        Cmd::Tasks { cmd } => {
            let (_, db) = admin_db(cli.config.as_deref()).await?;
            let done = admin::cli::tasks(&db, cmd, &mut std::io::stdout()).await;
            return operator_exit(done);
        }
        Cmd::Callbacks { cmd } => {
            let (_, db) = admin_db(cli.config.as_deref()).await?;
            let done = admin::callbacks::run(&db, cmd, &mut std::io::stdout()).await;
            return operator_exit(done);
        }
        Cmd::Sandbox {
            listen,
            time_scale,
            kyc_verified,
            progression,
            faults,
            scenario,
            offramp_progression,
            conversion_rate,
        } => {
            let cfg = SandboxConfig {
                time_scale,
                kyc_verified,
                progression,
                faults: faults.unwrap_or_default(),
                scenario: scenario.unwrap_or_default(),
                offramp_progression: offramp_progression.unwrap_or_default(),
                conversion_rate,
                ..SandboxConfig::default()
            };
            let sandbox = Sandbox::start(cfg, listen).await?;
            println!("provider sandbox listening on {}", sandbox.base_url());
            Worker::until_signal().await;
            sandbox.shutdown();
        }
        Cmd::Demo {
            onramp,
            offramp,
            nats_url,
            json,
            timeout_secs,
            webhook_url,
            webhook_secret,
        } => {
            let webhook = match (webhook_url, webhook_secret) {
                (Some(url), Some(secret)) => Some(ExternalReceiver {
                    url,
                    secret: WebhookSecret::parse(&secret).context("--webhook-secret")?,
                }),
                _ => None,
            };
            let opts = DemoOptions {
                onramp,
                offramp,
                nats_url,
                timeout: Duration::from_secs(timeout_secs),
                progress: true,
            };
            let summary = demo::run_with(opts, webhook).await?;
            println!("{}", summary.table());
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            }
            if !summary.success() {
                eprintln!("rampd demo: not every order completed with verified webhooks");
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Bench {
            orders,
            backend,
            poll_ms,
            in_flight,
            timeout_secs,
            worker_config,
            top_statements,
            keep,
            worker_bin,
            parked,
            budget,
        } => {
            let report = bench::run(bench::BenchOptions {
                orders,
                backend,
                poll_ms,
                in_flight,
                timeout: Duration::from_secs(timeout_secs),
                worker_config,
                top_statements,
                keep,
                worker_bin,
                parked,
                budget,
            })
            .await?;
            println!("{}", report.table());
            println!("{}", report.json()?);
        }
        Cmd::Webhooks(cmd) => {
            let (cfg, db) = admin_db(cli.config.as_deref()).await?;
            println!("{}", webhooks::admin::execute(&db, &cfg, cmd).await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An operator command's exit: failure when it was refused; output cut short by a closed
/// pipe (`rampd orders show … | head`) is not an error.
fn operator_exit(done: anyhow::Result<bool>) -> anyhow::Result<ExitCode> {
    match done {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::FAILURE),
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}

/// Config and database for an operator command. Never creates a database (a missing
/// SQLite file is an error) and never migrates one: refuses a database that is not
/// migrated to this build's schema rather than guessing.
async fn admin_db(
    config: Option<&std::path::Path>,
) -> anyhow::Result<(Config, sea_orm::DatabaseConnection)> {
    let cfg = Config::load(config)?;
    let db = storage::open(&cfg.database_url, storage::Create::Never).await?;
    let shown = storage::redact_url(&cfg.database_url);
    let pending = storage::migrations_pending(&db)
        .await
        .map_err(|e| anyhow::anyhow!("reading the schema version of {shown} failed: {e}"))?;
    if pending {
        anyhow::bail!(
            "the database at {shown} is not migrated (run `rampd migrate` or start a worker)"
        );
    }
    Ok((cfg, db))
}

fn parse_progression(s: &str) -> Result<Progression, String> {
    let n: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let [fiat_received, order_received, transferred, completed] = n[..] else {
        return Err("expected four comma-separated numbers".into());
    };
    if !(fiat_received <= order_received
        && order_received <= transferred
        && transferred <= completed)
    {
        return Err("thresholds must not decrease".into());
    }
    Ok(Progression {
        fiat_received,
        order_received,
        in_progress: None,
        transferred,
        completed,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_str(s).map_err(|e| e.to_string())
}
