//! `rampd demo`: the whole system on embedded defaults, acting as the upstream service.
//!
//! SQLite in a fresh file, the sandbox (both providers: Onmeta-style and the Partner API)
//! and a verifying webhook receiver in-process, and NATS from `--nats-url`/`NATS_URL` or a
//! private `nats-server`. It publishes create commands for on-ramp and off-ramp orders
//! (Onmeta) and mint and redeem orders (the Partner API), answers each payment
//! instruction like a user would (a UTR for fiat, a transaction hash for tokens sent to
//! the deposit address or, for a redeem, to the tenant's wallet), pays each redeem out
//! like the tenant's treasury would, and waits for every order to end.

pub mod receiver;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use futures::StreamExt;
use secrecy::SecretString;
use serde::Serialize;

use crate::app::{Worker, install_crypto};
use crate::config::{Config, EndpointConfig};
use crate::natsd::NatsServer;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::webhooks::WebhookSecret;
use receiver::Receiver;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub onramp: usize,
    pub offramp: usize,
    /// Mint orders at the Partner API.
    pub mint: usize,
    /// Redeem orders at the Partner API.
    pub redeem: usize,
    pub nats_url: Option<String>,
    pub timeout: Duration,
    /// Print progress lines on stderr.
    pub progress: bool,
}

/// An outside webhook receiver (`--webhook-url`, `--webhook-secret`).
#[derive(Debug, Clone)]
pub struct ExternalReceiver {
    pub url: String,
    pub secret: WebhookSecret,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DemoSummary {
    pub orders: usize,
    pub onramp_orders: usize,
    pub offramp_orders: usize,
    pub mint_orders: usize,
    pub redeem_orders: usize,
    pub completed: usize,
    pub failed: usize,
    pub expired: usize,
    pub cancelled: usize,
    pub refunded: usize,
    pub unfinished: usize,
    pub webhooks_received: usize,
    pub webhooks_verified: usize,
    /// Deliveries the worker recorded as accepted (2xx) by the receiver.
    pub webhooks_delivered: usize,
    /// Deliveries not accepted by the end of the run.
    pub webhooks_undelivered: usize,
    pub events_received: usize,
    pub provider_orders: usize,
    pub duplicate_provider_orders: usize,
    /// Partner API deposit requests, confirmations and payout reports beyond one per order.
    pub duplicate_partner_calls: usize,
    pub nats: String,
    pub duration_s: f64,
}

impl DemoSummary {
    pub fn success(&self) -> bool {
        let hooks_ok = if self.webhooks_received > 0 {
            self.webhooks_verified == self.webhooks_received
        } else {
            // An outside receiver: only the worker's records can tell.
            self.webhooks_delivered > 0
        };
        self.completed == self.orders
            && hooks_ok
            && self.webhooks_undelivered == 0
            && self.duplicate_provider_orders == 0
            && self.duplicate_partner_calls == 0
    }

    pub fn table(&self) -> String {
        let rows = [
            ("orders", self.orders.to_string()),
            ("  on-ramp", self.onramp_orders.to_string()),
            ("  off-ramp", self.offramp_orders.to_string()),
            ("  mint (Partner API)", self.mint_orders.to_string()),
            ("  redeem (Partner API)", self.redeem_orders.to_string()),
            ("completed", self.completed.to_string()),
            ("failed", self.failed.to_string()),
            ("expired", self.expired.to_string()),
            ("cancelled", self.cancelled.to_string()),
            ("refunded", self.refunded.to_string()),
            ("unfinished", self.unfinished.to_string()),
            ("events received (NATS)", self.events_received.to_string()),
            ("webhooks received", self.webhooks_received.to_string()),
            ("webhooks verified", self.webhooks_verified.to_string()),
            ("webhooks delivered", self.webhooks_delivered.to_string()),
            (
                "webhooks undelivered",
                self.webhooks_undelivered.to_string(),
            ),
            ("provider orders", self.provider_orders.to_string()),
            (
                "duplicate provider orders",
                self.duplicate_provider_orders.to_string(),
            ),
            (
                "duplicate Partner API calls",
                self.duplicate_partner_calls.to_string(),
            ),
            ("nats", self.nats.clone()),
            ("duration", format!("{:.2} s", self.duration_s)),
        ];
        crate::admin::table::framed(rows.map(|(k, v)| (k.to_string(), v)))
    }
}

/// NATS to use: the given URL if it answers, else a private nats-server.
async fn nats(url: Option<&str>) -> anyhow::Result<(String, Option<NatsServer>)> {
    let url = url.unwrap_or("nats://127.0.0.1:4222");
    // Shown by host and port only: a URL may carry credentials.
    let shown = crate::telemetry::warnings::nats_servers(url);
    let probe = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(crate::nats::servers(url)?)
        .await;
    if let Ok(client) = probe {
        if client.server_info().jetstream {
            return Ok((url.to_string(), None));
        }
        eprintln!("rampd demo: NATS at {shown} has no JetStream; starting a private nats-server");
    } else {
        eprintln!("rampd demo: no NATS answers at {shown}; starting a private nats-server");
    }
    let server = NatsServer::start().await?;
    Ok((server.url.clone(), Some(server)))
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    run_with(opts, None).await
}

/// [`run`], delivering webhooks to `webhook` when given instead of the built-in receiver.
pub async fn run_with(
    opts: DemoOptions,
    webhook: Option<ExternalReceiver>,
) -> anyhow::Result<DemoSummary> {
    install_crypto();
    let started = Instant::now();
    let (nats_url, private_nats) = nats(opts.nats_url.as_deref()).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let tenant = format!("demo{}", &run_id[..8]);
    let dir = std::env::temp_dir().join(format!("rampd-demo-{run_id}"));
    std::fs::create_dir_all(&dir)?;
    let db_path = dir.join("rampd.db");

    let sandbox = Sandbox::start(
        SandboxConfig::default(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await?;
    let secret = WebhookSecret::generate();
    let receiver = Receiver::start(secret.clone()).await?;

    let mut cfg = Config {
        database_url: format!("sqlite://{}", db_path.display()),
        nats_url: nats_url.clone(),
        worker_id: format!("demo-{}", &run_id[..8]),
        ..Config::default()
    };
    cfg.provider.base_url = sandbox.base_url();
    cfg.provider.api_key = SecretString::from(SandboxConfig::default().api_key);
    cfg.provider.timeout_ms = 5_000;
    cfg.providers.insert(
        "partner".into(),
        crate::config::NamedProvider::Partner(crate::config::PartnerProviderConfig {
            base_url: format!("{}/partner", sandbox.base_url()),
            timeout_ms: 5_000,
            ..Default::default()
        }),
    );
    // A consumer of its own, for this run's tenant only, so a shared NATS is left alone.
    cfg.nats.consumer = format!("rampd-demo-{}", &run_id[..8]);
    cfg.nats.consumer_filter = Some(format!("ramp.cmd.{tenant}.>"));
    cfg.orders.poll_interval_min_ms = 150;
    cfg.orders.poll_interval_max_ms = 300;
    cfg.orders.parked_poll_min_ms = 150;
    cfg.orders.parked_poll_max_ms = 300;
    cfg.orders.backoff_base_ms = 200;
    cfg.orders.backoff_cap_ms = 3_000;
    cfg.executor.lease_ms = 10_000;
    cfg.executor.idle_ms = 100;
    let (hook_url, hook_secret) = match &webhook {
        Some(ext) => (ext.url.clone(), ext.secret.clone()),
        None => (receiver.url.clone(), secret.clone()),
    };
    cfg.webhooks.endpoints = vec![EndpointConfig {
        id: format!("demo-{}", &run_id[..8]),
        tenant: tenant.clone(),
        url: hook_url,
        secret: SecretString::from(hook_secret.expose_text()),
        events: Vec::new(),
    }];
    // The receivers of a demo run on this machine.
    cfg.webhooks.allow_networks = vec!["127.0.0.0/8".into(), "::1/128".into()];
    cfg.webhooks.retry_schedule_ms = vec![200, 1_000, 2_000, 5_000];
    // Secrets sealed as in production, with a key as short-lived as this run's database
    // (and no start-up warning about unsealed secrets).
    cfg.webhooks.secrets_key = Some(crate::webhooks::vault::Vault::generate_key());
    let worker = Worker::start(cfg.clone()).await?;

    let client = worker.shared.nats.clone();
    let js = worker.shared.js.clone();
    let mut events = client.subscribe(format!("ramp.evt.{tenant}.>")).await?;

    // Upstream: one create command per order.
    for i in 0..opts.onramp {
        let order_id = format!("order-{:04}", i + 1);
        publish(
            &js,
            &tenant,
            "onramp.create",
            &onramp_create(&tenant, &order_id, i),
        )
        .await?;
    }
    for i in 0..opts.offramp {
        let order_id = format!("sell-{:04}", i + 1);
        publish(
            &js,
            &tenant,
            "offramp.create",
            &offramp_create(&tenant, &order_id, i),
        )
        .await?;
    }
    for i in 0..opts.mint {
        let order_id = format!("mint-{:04}", i + 1);
        publish(
            &js,
            &tenant,
            "mint.create",
            &mint_create(&tenant, &order_id, i),
        )
        .await?;
    }
    for i in 0..opts.redeem {
        let order_id = format!("redeem-{:04}", i + 1);
        publish(
            &js,
            &tenant,
            "redeem.create",
            &redeem_create(&tenant, &order_id, i),
        )
        .await?;
    }
    let total = opts.onramp + opts.offramp + opts.mint + opts.redeem;

    let mut states: HashMap<String, String> = HashMap::new();
    let mut events_received = 0usize;
    let deadline = started + opts.timeout;
    let mut last_progress = Instant::now();
    let terminal = |s: &str| {
        matches!(
            s,
            "completed" | "failed" | "expired" | "cancelled" | "refunded"
        )
    };
    while states.values().filter(|s| terminal(s)).count() < total && Instant::now() < deadline {
        let next = tokio::time::timeout(Duration::from_millis(250), events.next()).await;
        if let Ok(Some(msg)) = next {
            events_received += 1;
            let ev: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
            let (Some(order_id), Some(state)) = (ev["order_id"].as_str(), ev["state"].as_str())
            else {
                continue;
            };
            if ev["type"] == "order.status_changed" {
                let seq_state = states.entry(order_id.to_string()).or_default();
                if !terminal(seq_state) {
                    *seq_state = state.to_string();
                }
                if state == "awaiting_payment" {
                    pay(&js, &tenant, order_id, &ev, &sandbox).await?;
                }
                if state == "processing" && ev.get("payout").is_some() {
                    // The treasury pays the redeem out and says so.
                    let body = serde_json::json!({"command_id": format!("{tenant}-{order_id}-payout"), "order_id": order_id, "payout_reference": format!("ACH-{order_id}")});
                    publish(&js, &tenant, "redeem.payout", &body).await?;
                }
            } else if ev["type"] == "command.rejected" {
                eprintln!("rampd demo: command rejected: {}", ev["reason"]);
            }
        }
        if opts.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "[{:>5.1}s] {}",
                started.elapsed().as_secs_f64(),
                progress_line(&states, total)
            );
        }
    }
    // Webhooks trail the events slightly: wait until none is pending.
    let webhook_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < webhook_deadline {
        let (_, pending) = delivery_counts(&worker.shared.db).await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while webhook.is_none() && Instant::now() < webhook_deadline {
        let terminal_hooks = receiver
            .received()
            .iter()
            .filter(|r| {
                r.body["type"] == "order.status_changed"
                    && r.body["state"].as_str().is_some_and(terminal)
            })
            .count();
        if terminal_hooks >= states.values().filter(|s| terminal(s)).count() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (delivered, undelivered) = delivery_counts(&worker.shared.db).await;
    worker.shutdown(Duration::from_secs(5)).await;
    if private_nats.is_none() {
        leave_shared_nats_clean(&js, &cfg, &tenant).await;
    }
    receiver.stop();
    sandbox.shutdown();

    let hooks = receiver.received();
    let stats = sandbox.stats();
    let partner = sandbox.partner().stats();
    let beyond = |calls: u64, orders: usize| (calls as usize).saturating_sub(orders);
    let count = |s: &str| states.values().filter(|v| v.as_str() == s).count();
    let provider_orders = || {
        stats
            .orders_by_merchant_ref
            .values()
            .chain(stats.offramp_orders_by_merchant_ref.values())
    };
    let summary = DemoSummary {
        orders: total,
        onramp_orders: opts.onramp,
        offramp_orders: opts.offramp,
        mint_orders: opts.mint,
        redeem_orders: opts.redeem,
        completed: count("completed"),
        failed: count("failed"),
        expired: count("expired"),
        cancelled: count("cancelled"),
        refunded: count("refunded"),
        unfinished: total - states.values().filter(|s| terminal(s)).count(),
        webhooks_received: hooks.len(),
        webhooks_verified: hooks.iter().filter(|h| h.verified).count(),
        webhooks_delivered: delivered,
        webhooks_undelivered: undelivered,
        events_received,
        provider_orders: provider_orders().map(|n| *n as usize).sum(),
        duplicate_provider_orders: provider_orders().filter(|n| **n > 1).count(),
        duplicate_partner_calls: beyond(partner.deposit_requests, opts.mint)
            + beyond(partner.confirmations, opts.mint)
            + beyond(partner.fiat_transfers, opts.redeem),
        nats: nats_url,
        duration_s: started.elapsed().as_secs_f64(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(summary)
}

/// Deliveries accepted by the receiver, and those not (yet).
async fn delivery_counts(db: &sea_orm::DatabaseConnection) -> (usize, usize) {
    use crate::storage::entities::webhook_deliveries as d;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let delivered = d::Entity::find()
        .filter(d::Column::Status.eq(crate::webhooks::outcome::DELIVERED))
        .count(db)
        .await
        .unwrap_or(0) as usize;
    let all = d::Entity::find().count(db).await.unwrap_or(0) as usize;
    (delivered, all - delivered.min(all))
}

fn onramp_create(tenant: &str, order_id: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "command_id": format!("{tenant}-{order_id}-create"),
        "order_id": order_id,
        "user": {
            "email": format!("user{}@example.com", i + 1),
            "name": "Asha Rao",
            "phone": format!("98765{:05}", i + 1),
            "pan": "ABCDE1234F"
        },
        "fiat_amount": format!("{}.00", 500 + 100 * (i % 20)),
        "token": "USDT",
        "chain_id": 137,
        "receiver_address": format!("0x{:040x}", i + 1),
        "payment": if i.is_multiple_of(2) {
            serde_json::json!({"mode": "upi", "upi_id": format!("user{}@okaxis", i + 1)})
        } else {
            serde_json::json!({"mode": "imps", "account_number": format!("5010{:08}", i + 1), "account_name": "Asha Rao", "ifsc": "HDFC0001234"})
        },
    })
}

fn offramp_create(tenant: &str, order_id: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "command_id": format!("{tenant}-{order_id}-create"),
        "order_id": order_id,
        "user": {
            "email": format!("seller{}@example.com", i + 1),
            "name": "Ravi Kumar",
            "phone": format!("91234{:05}", i + 1),
            "pan": "BCDEF2345G"
        },
        "token": "USDT",
        "chain_id": 137,
        "token_amount": format!("{}.5", 10 + i % 40),
        "sender_address": format!("0x{:040x}", 0x5000 + i),
        "refund_address": format!("0x{:040x}", 0x5000 + i),
        "bank": {"account_number": format!("6020{:08}", i + 1), "account_name": "Ravi Kumar", "ifsc": "ICIC0004321"},
        "max_price_change_pct": "2",
    })
}

/// The tenant's wallet at the Partner API that redeems are sent to.
const TREASURY: &str = "treasury.demo.ul";

fn mint_create(tenant: &str, order_id: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "command_id": format!("{tenant}-{order_id}-create"),
        "order_id": order_id,
        "amount": format!("{}", 10 + i % 40),
        "token": "USBC",
        "wallet_identifier": format!("user{}.demo.ul", i + 1),
        "wallet_identifier_type": "custom_namespace",
    })
}

fn redeem_create(tenant: &str, order_id: &str, i: usize) -> serde_json::Value {
    let amount = 10 + i % 40;
    serde_json::json!({
        "command_id": format!("{tenant}-{order_id}-create"),
        "order_id": order_id,
        "amount": amount.to_string(),
        "token": "USBC",
        "wallet_identifier": TREASURY,
        "wallet_identifier_type": "custom_namespace",
        "fiat_amount": format!("{amount}.00"),
        "fiat_symbol": "USD",
        "transfer_method_id": format!("tm-ach-{}", i + 1),
    })
}

/// The user pays: a bank reference for fiat (on-ramp), the hash of the transfer to the
/// provider's deposit address (off-ramp), or the hash of a transfer to the tenant's
/// wallet at the Partner API, which the user makes there first (redeem).
async fn pay(
    js: &async_nats::jetstream::Context,
    tenant: &str,
    order_id: &str,
    ev: &serde_json::Value,
    sandbox: &crate::sandbox::SandboxHandle,
) -> anyhow::Result<()> {
    if ev["provider"] == "partner" {
        let amount = ev["token_amount"].as_str().unwrap_or_default().parse()?;
        let hash = sandbox
            .partner()
            .add_transfer(&format!("{order_id}.demo.ul"), TREASURY, amount);
        let body = serde_json::json!({"command_id": format!("{tenant}-{order_id}-tx"), "order_id": order_id, "tx_hash": hash});
        publish(js, tenant, "offramp.txhash", &body).await
    } else if ev["direction"] == "offramp" {
        let hash = format!(
            "0x{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let body = serde_json::json!({"command_id": format!("{tenant}-{order_id}-tx"), "order_id": order_id, "tx_hash": hash});
        publish(js, tenant, "offramp.txhash", &body).await
    } else {
        let utr = format!("6{:011}", rand::random::<u64>() % 100_000_000_000);
        let body = serde_json::json!({"command_id": format!("{tenant}-{order_id}-utr"), "order_id": order_id, "utr": utr});
        publish(js, tenant, "onramp.utr", &body).await
    }
}

/// On a shared NATS, remove this run's consumers (one per tenant lane) and messages so that
/// no later worker replays the demo's commands.
async fn leave_shared_nats_clean(js: &async_nats::jetstream::Context, cfg: &Config, tenant: &str) {
    if let Ok(commands) = js.get_stream(&cfg.nats.command_stream).await {
        let ours: Vec<String> = commands
            .consumer_names()
            .filter_map(|n| async move { n.ok() })
            .filter(|n| std::future::ready(n.starts_with(&format!("{}-", cfg.nats.consumer))))
            .collect()
            .await;
        for name in ours {
            let _ = commands.delete_consumer(&name).await;
        }
    }
    for (stream, prefix) in [
        (&cfg.nats.command_stream, "ramp.cmd"),
        (&cfg.nats.event_stream, "ramp.evt"),
    ] {
        if let Ok(s) = js.get_stream(stream).await {
            let _ = s.purge().filter(format!("{prefix}.{tenant}.>")).await;
        }
    }
}

fn progress_line(states: &HashMap<String, String>, total: usize) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for s in states.values() {
        *by.entry(s.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = by.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{} orders: {}", total, parts.join(", "))
}

/// Publish a command with `Nats-Msg-Id` = `<tenant>.<command_id>`, as the contract asks
/// (ids are unique per run: the stream's duplicate window would silently drop a repeat
/// from an earlier run). A publish that fails or is not acknowledged (a NATS node lost, a
/// stream electing its leader) is sent again, for up to 30 s: the `Nats-Msg-Id` makes a
/// repeat of one that did land harmless.
async fn publish(
    js: &async_nats::jetstream::Context,
    tenant: &str,
    command: &str,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut headers = HeaderMap::new();
    let id = body["command_id"].as_str().unwrap_or_default();
    let msg_id = rampd_domain::command_identity::scoped_msg_id(tenant, id);
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
    for (name, value) in crate::telemetry::context::new_trace_fields() {
        headers.insert(name, value.as_str());
    }
    let subject = format!("ramp.cmd.{tenant}.{command}");
    let payload = body.to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(200);
    loop {
        let sent = async {
            js.publish_with_headers(subject.clone(), headers.clone(), payload.clone().into())
                .await?
                .await?;
            anyhow::Ok(())
        };
        match sent.await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() + pause > deadline => {
                return Err(e.context(format!("publishing {command} {id}")));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::stream;
    use futures::StreamExt;

    use crate::natsd::NatsServer;

    /// The upstream's publish keeps trying while the command stream cannot take it (here:
    /// not there yet, as while a lost node's stream elects a leader), and lands once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_publish_is_retried_until_the_stream_takes_it() {
        let nats = NatsServer::start().await.unwrap();
        let client = async_nats::connect(&nats.url).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        // Every attempt is a core message on the subject: see the first one fail.
        let mut attempts = client
            .subscribe("ramp.cmd.acme.onramp.create")
            .await
            .unwrap();
        client.flush().await.unwrap();
        let body = serde_json::json!({ "command_id": "c-1", "client_order_id": "o-1" });
        let publishing = {
            let js = js.clone();
            tokio::spawn(async move { super::publish(&js, "acme", "onramp.create", &body).await })
        };
        // It reached the server before the stream existed, so it cannot have landed: the
        // publish can only succeed by trying again.
        attempts.next().await.expect("a first attempt");

        js.create_stream(stream::Config {
            name: "RAMP_CMD".into(),
            subjects: vec!["ramp.cmd.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        publishing
            .await
            .unwrap()
            .expect("published once the stream is there");
        let mut s = js.get_stream("RAMP_CMD").await.unwrap();
        assert_eq!(s.info().await.unwrap().state.messages, 1, "landed once");
    }
}
