//! What a benchmark run prints: one table and one JSON line.

use serde::Serialize;

use super::Backend;
use super::postgres::{PgCounters, TopStatement};

#[derive(Debug, Clone, Serialize)]
pub struct ProcessFigure {
    pub name: String,
    /// Process id (for the webhook receiver: its thread id).
    pub pid: i32,
    /// utime + stime inside the measured window.
    pub cpu_s: f64,
    pub cpu_ms_per_order: f64,
    /// Peak resident set size (`VmHWM`), or for PostgreSQL the peak sum of PSS.
    pub peak_rss_mib: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// When the run started (UTC).
    pub date: String,
    pub build: String,
    pub version: String,
    pub backend: Backend,
    pub postgres_version: Option<String>,
    pub cores: usize,
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
    pub orders: usize,
    /// `--parked`: orders created and parked (0 = every order pays).
    pub parked: usize,
    /// With `--parked`: the provider request budget, requests/s.
    pub budget_per_s: Option<f64>,
    /// Orders created per second (first create → every order awaiting payment).
    pub create_per_s: f64,
    /// The most provider requests the sandbox saw in any one second; polls alone.
    pub busiest_second: u64,
    pub busiest_poll_second: u64,
    /// Upper bound of the bucket holding the p99 task lag of the orders in motion over
    /// the UTR phase (`None` when none was claimed), and how many were claimed.
    pub moving_task_lag_p99_le_s: Option<f64>,
    pub moving_tasks_claimed: u64,
    pub poll_ms: u64,
    pub in_flight: usize,
    pub creates_published: usize,
    pub utrs_published: usize,
    /// Orders whose `completed` webhook arrived verified.
    pub completed: usize,
    /// First create published → last `completed` webhook.
    pub duration_s: f64,
    /// First create published → every order awaiting payment.
    pub create_phase_s: f64,
    /// First UTR published → last `completed` webhook.
    pub utr_phase_s: f64,
    /// UTR published → that order's `completed` webhook received.
    pub latency_p50_s: f64,
    pub latency_p90_s: f64,
    pub latency_p99_s: f64,
    pub latency_max_s: f64,
    pub processes: Vec<ProcessFigure>,
    /// rampd + nats-server + PostgreSQL.
    pub system_cpu_s: f64,
    /// Busy CPU of the whole machine in the window less every process above: how much
    /// else was running (other engineers' builds).
    pub other_processes_cpu_s: f64,
    pub postgres: Option<PgCounters>,
    #[serde(skip)]
    pub top_statements: Vec<TopStatement>,
    pub provider_orders: usize,
    pub duplicate_provider_orders: usize,
    pub utr_submissions: usize,
    pub orders_with_repeated_utr: usize,
    pub provider_status_calls: u64,
    pub provider_logins: u64,
    pub webhooks_received: usize,
    pub webhooks_verified: usize,
    /// Distinct `webhook-id`s among the verified (a retried delivery repeats its id).
    pub webhooks_unique: usize,
    pub events_received: usize,
    pub commands_rejected: usize,
    pub orders_ended_otherwise: usize,
}

impl BenchReport {
    pub fn orders_per_s(&self) -> f64 {
        self.orders as f64 / self.duration_s.max(1e-9)
    }

    fn per_order(&self, v: f64) -> f64 {
        v / self.orders.max(1) as f64
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            (
                "run".into(),
                format!(
                    "{} {} build, {}{}",
                    self.date,
                    self.build,
                    match self.backend {
                        Backend::Sqlite => "SQLite".to_string(),
                        Backend::Postgres => "PostgreSQL".to_string(),
                    },
                    self.postgres_version
                        .as_deref()
                        .map(|v| format!(" {v} (fsync on, {})", super::postgres::SIZING.join(", ")))
                        .unwrap_or_default()
                ),
            ),
            (
                "machine".into(),
                format!(
                    "{} cores, load {:.2} {:.2} {:.2} → {:.2} {:.2} {:.2}",
                    self.cores,
                    self.load_start[0],
                    self.load_start[1],
                    self.load_start[2],
                    self.load_end[0],
                    self.load_end[1],
                    self.load_end[2]
                ),
            ),
            (
                "orders (N)".into(),
                format!(
                    "{} ({} completed), poll {} ms, {} publishes in flight",
                    self.orders, self.completed, self.poll_ms, self.in_flight
                ),
            ),
            (
                "orders/s".into(),
                format!(
                    "{:.1}  (create phase {:.1} s, UTR phase {:.1} s)",
                    self.orders_per_s(),
                    self.create_phase_s,
                    self.utr_phase_s
                ),
            ),
            (
                "parked".into(),
                match self.budget_per_s {
                    Some(b) => format!(
                        "{} orders created and parked at {:.1}/s, budget {b} requests/s",
                        self.parked, self.create_per_s
                    ),
                    None => format!("none (created at {:.1}/s)", self.create_per_s),
                },
            ),
            (
                "provider, busiest second".into(),
                format!(
                    "{} requests, {} of them polls",
                    self.busiest_second, self.busiest_poll_second
                ),
            ),
            (
                "task lag, orders in motion".into(),
                match self.moving_task_lag_p99_le_s {
                    Some(le) => format!(
                        "p99 ≤ {le} s over the UTR phase ({} claimed)",
                        self.moving_tasks_claimed
                    ),
                    None => "none claimed".into(),
                },
            ),
            (
                "UTR → completed webhook".into(),
                format!(
                    "p50 {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s",
                    self.latency_p50_s, self.latency_p90_s, self.latency_p99_s, self.latency_max_s
                ),
            ),
        ];
        for p in &self.processes {
            rows.push((
                format!("CPU {} (pid {})", p.name, p.pid),
                format!(
                    "{:.2} s, {:.2} ms/order{}{}",
                    p.cpu_s,
                    p.cpu_ms_per_order,
                    p.peak_rss_mib
                        .map(|m| format!(", peak {m:.1} MiB"))
                        .unwrap_or_default(),
                    if p.note.is_empty() {
                        String::new()
                    } else {
                        format!("  [{}]", p.note)
                    }
                ),
            ));
        }
        rows.push((
            "CPU rampd+nats+postgres".into(),
            format!(
                "{:.2} s, {:.2} ms/order",
                self.system_cpu_s,
                self.per_order(self.system_cpu_s) * 1000.0
            ),
        ));
        rows.push((
            "CPU other processes".into(),
            format!(
                "{:.2} s (the rest of the machine during the window)",
                self.other_processes_cpu_s
            ),
        ));
        match &self.postgres {
            Some(pg) => {
                rows.push((
                    "statements / order".into(),
                    format!(
                        "{:.1}  ({} in all)",
                        self.per_order(pg.statements as f64),
                        pg.statements
                    ),
                ));
                rows.push((
                    "commits / order".into(),
                    format!(
                        "{:.1}  ({} in all, {} rollbacks)",
                        self.per_order(pg.commits as f64),
                        pg.commits,
                        pg.rollbacks
                    ),
                ));
                rows.push((
                    "WAL fsyncs / order".into(),
                    format!(
                        "{:.1}  ({} in all, {:.1} KiB WAL/order)",
                        self.per_order(pg.wal_syncs as f64),
                        pg.wal_syncs,
                        self.per_order(pg.wal_bytes as f64) / 1024.0
                    ),
                ));
            }
            None => rows.push((
                "statements, commits, fsyncs".into(),
                "not counted on SQLite (WAL, synchronous=NORMAL)".into(),
            )),
        }
        rows.extend([
            (
                "provider orders".into(),
                format!(
                    "{} ({} duplicate)",
                    self.provider_orders, self.duplicate_provider_orders
                ),
            ),
            (
                "UTR submissions".into(),
                format!(
                    "{} ({} orders with more than one)",
                    self.utr_submissions, self.orders_with_repeated_utr
                ),
            ),
            (
                "provider status calls".into(),
                format!(
                    "{} ({:.1}/order), logins {}",
                    self.provider_status_calls,
                    self.per_order(self.provider_status_calls as f64),
                    self.provider_logins
                ),
            ),
            (
                "webhooks verified".into(),
                format!(
                    "{} of {} received ({} distinct ids, {:.1}/order)",
                    self.webhooks_verified,
                    self.webhooks_received,
                    self.webhooks_unique,
                    self.per_order(self.webhooks_unique as f64)
                ),
            ),
            (
                "events (NATS)".into(),
                format!(
                    "{} received, {} commands rejected, {} orders ended otherwise",
                    self.events_received, self.commands_rejected, self.orders_ended_otherwise
                ),
            ),
        ]);
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        if !self.top_statements.is_empty() {
            out.push_str(
                "costliest statements (planning + execution ms/order, of it planning, \
                 calls/order, plans/order):\n",
            );
            for s in &self.top_statements {
                let q: String = s.query.split_whitespace().collect::<Vec<_>>().join(" ");
                let q: String = q.chars().take(100).collect();
                let (ms, plan) = (self.per_order(s.ms), self.per_order(s.plan_ms));
                let (calls, plans) = (
                    self.per_order(s.calls as f64),
                    self.per_order(s.plans as f64),
                );
                out.push_str(&format!(
                    "  {ms:>6.3} {plan:>6.3} {calls:>5.1} {plans:>5.1}  {q}\n"
                ));
            }
        }
        out.trim_end().to_string()
    }

    /// The JSON line: every figure, with orders/s and per-order CPU spelled out.
    pub fn json(&self) -> anyhow::Result<String> {
        let mut v = serde_json::to_value(self)?;
        v["orders_per_s"] = serde_json::json!(self.orders_per_s());
        v["system_cpu_ms_per_order"] =
            serde_json::json!(self.per_order(self.system_cpu_s) * 1000.0);
        if let Some(pg) = &self.postgres {
            v["statements_per_order"] = serde_json::json!(self.per_order(pg.statements as f64));
            v["commits_per_order"] = serde_json::json!(self.per_order(pg.commits as f64));
            v["fsyncs_per_order"] = serde_json::json!(self.per_order(pg.wal_syncs as f64));
        }
        Ok(serde_json::to_string(&v)?)
    }
}
