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
    #[command(subcommand)]
    command: Cmd,
}

/// `--config`, on the subcommands that read the configuration (and theirs).
#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file (TOML). Environment variables override it.
    #[arg(long, short, env = "RAMPD_CONFIG", global = true)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the worker: command intake, task executor, outbox relay, webhook sender.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Publish one command (as upstream would) and print the events that answer it.
    Publish {
        #[command(flatten)]
        args: admin::publish::PublishArgs,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run the provider sandbox (an Onmeta-style API simulator) as an HTTP server.
    Sandbox {
        /// Address to listen on.
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
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Operator commands on tasks.
    Tasks {
        #[command(subcommand)]
        cmd: admin::cli::TasksCmd,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Commands by command id: what became of one (inbox outcome, reason, order).
    Commands {
        #[command(subcommand)]
        cmd: admin::commands::CommandsCmd,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Dead-lettered commands (the dead-letter stream): list, show, replay.
    Dlq {
        #[command(subcommand)]
        cmd: admin::dlq::DlqCmd,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Provider callbacks received (by default those for orders rampd does not know).
    Callbacks {
        #[command(subcommand)]
        cmd: admin::callbacks::CallbacksCmd,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run orders of both providers end to end on embedded defaults and print a summary.
    Demo {
        /// Number of on-ramp (fiat → crypto) orders, at Onmeta.
        #[arg(long, default_value_t = 20)]
        onramp: usize,
        /// Number of off-ramp (crypto → fiat) orders, at Onmeta.
        #[arg(long, default_value_t = 0)]
        offramp: usize,
        /// Number of mint (fiat → stablecoin) orders, at the Partner API.
        #[arg(long, default_value_t = 5)]
        mint: usize,
        /// Number of redeem (stablecoin → fiat) orders, at the Partner API.
        #[arg(long, default_value_t = 5)]
        redeem: usize,
        /// Only this provider's orders (`onmeta`: on-ramp and off-ramp; `partner`: mint and
        /// redeem); both by default.
        #[arg(long, value_parser = ["onmeta", "partner"])]
        provider: Option<String>,
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
    Webhooks {
        #[command(subcommand)]
        cmd: WebhooksCmd,
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of text: the endpoints or deliveries, or what was done.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Throughput benchmark (issue 10): N on-ramp orders through a private NATS, database,
    /// sandbox and worker process; prints one table and one JSON line. Measures only.
    Bench {
        /// Number of on-ramp orders.
        #[arg(long, default_value_t = 1000)]
        orders: usize,
        /// The database the worker runs on.
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
        /// PostgreSQL: also list the worker's N statements that took PostgreSQL longest
        /// (planning plus execution), per order.
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
            | Cmd::Commands { .. }
            | Cmd::Dlq { .. }
            | Cmd::Bench { .. }
            | Cmd::Publish { .. }
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
        Cmd::Run { config } => {
            let cfg = Config::load(config.path())?;
            let worker = Worker::start(cfg).await?;
            Worker::until_signal().await;
            worker.shutdown(Duration::from_secs(30)).await;
        }
        Cmd::Migrate { config } => {
            let cfg = Config::load(config.path())?;
            let db = storage::open(&cfg.database_url, storage::Create::IfMissing).await?;
            storage::migrate(&db)
                .await
                .context("migrating the database failed")?;
            println!(
                "migrations applied to {}",
                storage::redact_url(&cfg.database_url)
            );
        }
        Cmd::Publish { args, config } => {
            let cfg = Config::load(config.path())?;
            let body = admin::publish::prepare(&args)?;
            let client = rampd::nats::connect(&cfg).await?;
            let answer =
                admin::publish::publish(&client, &args, &body, &mut std::io::stdout()).await?;
            return Ok(if answer.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Cmd::Orders { cmd, config } => {
            let (cfg, db) = admin_db(config.path()).await?;
            let done = admin::cli::orders(&db, &cfg, cmd, &mut std::io::stdout()).await;
            return operator_exit(done);
        }
        Cmd::Tasks { cmd, config } => {
            let (_, db) = admin_db(config.path()).await?;
            let done = admin::cli::tasks(&db, cmd, &mut std::io::stdout()).await;
            return operator_exit(done);
        }
        Cmd::Commands { cmd, config } => {
            let (_, db) = admin_db(config.path()).await?;
            let done = admin::commands::run(&db, cmd, &mut std::io::stdout()).await;
            return operator_exit(done);
        }
        Cmd::Dlq { cmd, config } => {
            let cfg = Config::load(config.path())?;
            let client = rampd::nats::connect(&cfg).await?;
            let js = async_nats::jetstream::new(client);
            let stream = &cfg.nats.dead_letter_stream;
            let done = admin::dlq::run(&js, stream, cmd, &mut std::io::stdout()).await;
            return operator_exit(done);
        }
        Cmd::Callbacks { cmd, config } => {
            let (_, db) = admin_db(config.path()).await?;
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
            mint,
            redeem,
            provider,
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
            let (onmeta, partner) = match provider.as_deref() {
                Some("onmeta") => (true, false),
                Some("partner") => (false, true),
                _ => (true, true),
            };
            let only = |on: bool, n: usize| if on { n } else { 0 };
            let opts = DemoOptions {
                onramp: only(onmeta, onramp),
                offramp: only(onmeta, offramp),
                mint: only(partner, mint),
                redeem: only(partner, redeem),
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
        Cmd::Webhooks { cmd, config, json } => {
            let (cfg, db) = admin_db(config.path()).await?;
            println!(
                "{}",
                webhooks::admin::execute_as(&db, &cfg, cmd, json).await?
            );
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every subcommand, with its path (`rampd orders show`).
    fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let p = format!("{path} {}", sub.get_name());
            out.push((p.clone(), sub.clone()));
            walk(sub, p, out);
        }
    }

    fn commands() -> Vec<(String, clap::Command)> {
        let mut root = Cli::command();
        root.build();
        let mut all = vec![("rampd".to_string(), root.clone())];
        walk(&root, "rampd".into(), &mut all);
        all
    }

    #[test]
    fn every_argument_has_help() {
        Cli::command().debug_assert();
        let mut missing = Vec::new();
        for (path, cmd) in commands() {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().or(arg.get_long_help());
                if help.is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path}: {id}"));
                }
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn enumerated_flags_list_their_values() {
        let values = |path: &str, arg: &str| -> Vec<String> {
            let (_, cmd) = commands().into_iter().find(|(p, _)| p == path).unwrap();
            let a = cmd
                .get_arguments()
                .find(|a| a.get_id() == arg)
                .unwrap_or_else(|| panic!("{path} has no {arg}"));
            a.get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect()
        };
        assert!(values("rampd orders list", "state").contains(&"awaiting_payment".to_string()));
        assert_eq!(
            values("rampd orders list", "direction"),
            ["onramp", "offramp"]
        );
        assert!(values("rampd callbacks list", "outcome").contains(&"wrong_direction".into()));
        assert!(values("rampd bench", "backend").contains(&"postgres".into()));
        assert!(values("rampd publish", "command").contains(&"onramp.utr".into()));
    }

    #[test]
    fn webhooks_commands_take_json() {
        let all = commands();
        let hooks: Vec<_> = all
            .iter()
            .filter(|(p, c)| p.starts_with("rampd webhooks") && !c.has_subcommands())
            .collect();
        assert!(
            hooks.len() >= 7,
            "{:?}",
            hooks.iter().map(|h| &h.0).collect::<Vec<_>>()
        );
        for (path, cmd) in hooks {
            assert!(
                cmd.get_arguments().any(|a| a.get_id() == "json"),
                "{path} has no --json"
            );
        }
        assert!(Cli::try_parse_from(["rampd", "webhooks", "endpoint", "list", "--json"]).is_ok());
    }

    #[test]
    fn only_commands_that_read_the_config_take_config() {
        let reads = [
            "run",
            "migrate",
            "publish",
            "orders",
            "tasks",
            "callbacks",
            "commands",
            "dlq",
            "webhooks",
        ];
        for (path, cmd) in commands() {
            let top = path.split(' ').nth(1).unwrap_or("");
            let takes = cmd.get_arguments().any(|a| a.get_id() == "config");
            assert_eq!(
                takes,
                reads.contains(&top),
                "{path}: --config accepted = {takes}"
            );
        }
        assert!(Cli::try_parse_from(["rampd", "sandbox", "--config", "x.toml"]).is_err());
        assert!(Cli::try_parse_from(["rampd", "demo", "--config", "x.toml"]).is_err());
        assert!(
            Cli::try_parse_from(["rampd", "orders", "show", "o-1", "--config", "x.toml"]).is_ok()
        );
        assert!(Cli::try_parse_from(["rampd", "run", "--config", "x.toml"]).is_ok());
    }
}
