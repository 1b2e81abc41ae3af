//! A chaos run for money safety: two worker replicas on one database and NATS, one provider
//! user holding a large share of the orders, slow create replies, provider faults, replicas
//! killed at random (tasks aborted mid-call, as a crash would) and, optionally, the webhook
//! receiver down for a while. It then counts what must be zero: duplicate provider orders,
//! duplicate UTR and tx-hash submissions, orders that did not end, and webhook retries sent
//! before their time or dead-lettered although the receiver came back within the ladder.
//!
//! ```sh
//! cargo run -p rampd-e2e --bin chaos -- --backend postgres --orders 800 --kills 20
//! cargo run -p rampd-e2e --bin chaos -- --orders 400 --kills 0 --faults
//! cargo run -p rampd-e2e --bin chaos -- --orders 300 --kills 0 --webhooks-down-secs 60
//! ```
//!
//! Prints a JSON summary as its last line and exits 1 if any count that must be zero is not.
//! It measures a run; it is not a test (the tests assert each rule deterministically).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use clap::Parser;
use rampd::sandbox::{Faults, SandboxConfig};
use rampd::storage::entities::{orders, webhook_attempts, webhook_deliveries};
use rampd_e2e::hooks::{HookReceiver, Reply};
use rampd_e2e::{Backend, Stack, create_body, evm_hash, offramp_body};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Chaos run: counts duplicate provider orders and submissions")]
struct Args {
    #[arg(long, default_value = "sqlite")]
    backend: String,
    #[arg(long, default_value_t = 800)]
    orders: usize,
    /// Share of the orders that are off-ramp orders.
    #[arg(long, default_value_t = 0.25)]
    offramp_share: f64,
    /// Share of the orders that belong to one provider user.
    #[arg(long, default_value_t = 0.5)]
    whale_share: f64,
    /// Replica kills, spread over the run (each killed replica is started again).
    #[arg(long, default_value_t = 20)]
    kills: u32,
    #[arg(long, default_value_t = 1_500)]
    kill_every_ms: u64,
    /// The provider holds each create reply this long after creating the order.
    #[arg(long, default_value_t = 500)]
    create_latency_ms: u64,
    /// Random provider faults: 20 % 503, 10 % 429, 3 % malformed 2xx, 5 % unknown statuses.
    #[arg(long)]
    faults: bool,
    /// The webhook receiver answers 503 for this long from the start.
    #[arg(long, default_value_t = 0)]
    webhooks_down_secs: u64,
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

const WHALE: &str = "whale@example.com";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = match args.backend.as_str() {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => anyhow::bail!("--backend sqlite|postgres, not {other}"),
    };
    let mut faults = Faults {
        respond_latency_create_ms: args.create_latency_ms,
        ..Faults::default()
    };
    if args.faults {
        faults.error_rate = 0.2;
        faults.rate_limit_rate = 0.1;
        faults.retry_after_secs = 1;
        faults.malformed_rate = 0.03;
        faults.unknown_status_rate = 0.05;
    }
    let hooks = HookReceiver::start(&[], Reply::Status(204)).await;
    if args.webhooks_down_secs > 0 {
        hooks.set_default(Reply::Status(503));
    }
    let hooks_url = hooks.url.clone();
    let mut s = Stack::start_with(backend, SandboxConfig::with_faults(faults), |cfg| {
        cfg.webhooks.endpoints[0].url = hooks_url;
        // A ladder that spans 98 s, so a 60 s outage must not dead-letter anything.
        cfg.webhooks.retry_schedule_ms = vec![1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 30_000];
        cfg.webhooks.max_attempts = 8;
        cfg.executor.lease_ms = 5_000;
        cfg.nats.max_deliver = 20;
    })
    .await;
    s.add_replica().await;
    let started = Instant::now();

    // Spread off-ramp and whale orders evenly over the run.
    let every =
        |share: f64, i: usize| (i as f64 * share).floor() != ((i + 1) as f64 * share).floor();
    let plan: BTreeMap<String, bool> = (0..args.orders)
        .map(|i| (format!("chaos-{i}"), every(args.offramp_share, i)))
        .collect();
    for i in 0..args.orders {
        let id = format!("chaos-{i}");
        let (cmd, mut body) = if plan[&id] {
            ("offramp.create", offramp_body(&id, &format!("{id}-create")))
        } else {
            ("onramp.create", create_body(&id, &format!("{id}-create")))
        };
        if every(args.whale_share, i) {
            body["user"]["email"] = json!(WHALE);
        }
        s.send(cmd, &body).await;
    }
    eprintln!("published {} creates", plan.len());

    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut paid: HashSet<String> = HashSet::new();
    let mut kills = 0u32;
    let mut last_kill = Instant::now();
    let mut receiver_up = args.webhooks_down_secs == 0;
    loop {
        // Answer each order's payment instructions like the user would.
        for ev in s.events() {
            if ev["type"] != "order.status_changed" || ev["state"] != "awaiting_payment" {
                continue;
            }
            let id = ev["order_id"].as_str().unwrap_or_default().to_string();
            if !paid.insert(id.clone()) {
                continue;
            }
            let n: usize = id.trim_start_matches("chaos-").parse().unwrap_or(0);
            if plan.get(&id).copied().unwrap_or(false) {
                s.tx_hash(&id, &evm_hash(n as u64 + 1)).await;
            } else {
                s.utr(&id, &format!("4{:011}", n)).await;
            }
        }
        if kills < args.kills && last_kill.elapsed() >= Duration::from_millis(args.kill_every_ms) {
            if kills.is_multiple_of(2) {
                s.kill_worker().await;
                s.start_worker().await;
            } else if let Some(r) = s.replicas.pop() {
                r.kill().await;
                s.add_replica().await;
            }
            kills += 1;
            last_kill = Instant::now();
        }
        if !receiver_up && started.elapsed() >= Duration::from_secs(args.webhooks_down_secs) {
            hooks.set_default(Reply::Status(204));
            receiver_up = true;
            eprintln!("webhook receiver up after {} s", args.webhooks_down_secs);
        }
        let states = state_counts(&s).await;
        let known: u64 = states.values().sum();
        let live: u64 = states
            .iter()
            .filter(|(k, _)| !is_terminal(k))
            .map(|(_, v)| v)
            .sum::<u64>()
            + (args.orders as u64).saturating_sub(known);
        let pending_hooks = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::Status.eq("pending"))
            .all(&s.db)
            .await?
            .len();
        if (live == 0 && pending_hooks == 0 && receiver_up && kills >= args.kills)
            || Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let summary = summarize(&s, &args, started.elapsed()).await?;
    println!("{summary}");
    let bad = [
        "duplicate_provider_orders",
        "duplicate_utr_submissions",
        "duplicate_tx_hash_submissions",
        "orders_not_ended",
        "early_webhook_retries",
        "webhooks_dead_lettered",
    ]
    .iter()
    .any(|k| summary[*k].as_u64().unwrap_or(1) > 0);
    s.finish().await;
    hooks.stop();
    std::process::exit(i32::from(bad));
}

fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "completed" | "failed" | "expired" | "cancelled" | "refunded"
    )
}

async fn state_counts(s: &Stack) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let rows = orders::Entity::find()
        .filter(orders::Column::Tenant.eq(s.tenant.as_str()))
        .all(&s.db)
        .await
        .unwrap_or_default();
    for o in rows {
        *counts.entry(o.state).or_default() += 1;
    }
    counts
}

/// Σ (n − 1) over the counts above one.
fn extra(counts: impl IntoIterator<Item = u32>) -> u64 {
    counts
        .into_iter()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum()
}

async fn summarize(s: &Stack, args: &Args, took: Duration) -> anyhow::Result<Value> {
    let stats = s.sandbox.stats();
    let states = state_counts(s).await;
    let all = orders::Entity::find()
        .filter(orders::Column::Tenant.eq(s.tenant.as_str()))
        .all(&s.db)
        .await?;
    let flagged = all.iter().filter(|o| o.flagged).count();
    let not_ended = all.iter().filter(|o| !is_terminal(&o.state)).count()
        + args.orders.saturating_sub(all.len());
    // Webhook attempts sent before the run_at their previous attempt scheduled (±20 %
    // jitter allowed below the ladder step): measured as gaps under half the step.
    let attempts = webhook_attempts::Entity::find().all(&s.db).await?;
    let mut by_delivery: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for a in &attempts {
        by_delivery
            .entry(a.delivery_id.clone())
            .or_default()
            .push((a.attempt, a.started_at));
    }
    let ladder = [1_000i64, 2_000, 5_000, 10_000, 20_000, 30_000, 30_000];
    let mut early = 0u64;
    for list in by_delivery.values_mut() {
        list.sort();
        for w in list.windows(2) {
            let step = ladder[(w[0].0.max(1) as usize - 1).min(ladder.len() - 1)];
            if w[1].1 - w[0].1 < step / 2 {
                early += 1;
            }
        }
    }
    let dead = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::Status.eq("dead"))
        .all(&s.db)
        .await?
        .len();
    let delivered = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::Status.eq("delivered"))
        .all(&s.db)
        .await?
        .len();
    Ok(json!({
        "backend": args.backend,
        "orders": args.orders,
        "whale_orders": (args.orders as f64 * args.whale_share).round(),
        "kills": args.kills,
        "create_latency_ms": args.create_latency_ms,
        "faults": args.faults,
        "webhooks_down_secs": args.webhooks_down_secs,
        "duration_s": took.as_secs_f64(),
        "states": states,
        "flagged": flagged,
        "create_calls": stats.create_calls,
        "provider_orders": stats.orders_by_merchant_ref.values().sum::<u32>()
            + stats.offramp_orders_by_merchant_ref.values().sum::<u32>(),
        "duplicate_provider_orders": extra(stats.orders_by_merchant_ref.values().copied())
            + extra(stats.offramp_orders_by_merchant_ref.values().copied()),
        "duplicate_utr_submissions": extra(stats.utr_submissions_by_order.values().copied()),
        "duplicate_tx_hash_submissions": extra(stats.tx_hash_submissions_by_order.values().copied()),
        "orders_not_ended": not_ended,
        "webhook_attempts": attempts.len(),
        "webhooks_delivered": delivered,
        "webhooks_dead_lettered": dead,
        "early_webhook_retries": early,
    }))
}
