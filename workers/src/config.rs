//! Configuration: an optional TOML file, then environment variables, with defaults that
//! run locally (SQLite file, NATS on localhost, the sandbox provider).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rampd_domain::command::CommandLimits;
use rampd_domain::order::OrderPolicy;
use rampd_domain::schedule::PollPolicy;
use rampd_domain::supported_chains::SupportedChains;
use rampd_domain::values::AmountLimits;
use rampd_domain::webhooks::retry::DEFAULT_SCHEDULE_SECS;
use rampd_domain::webhooks::{AddressPolicy, IpNet, RetryPolicy};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://rampd.db` (default) or `postgres://…`.
    pub database_url: String,
    pub nats_url: String,
    /// Identifies this replica in task leases. Defaults to `<hostname>-<pid>`.
    pub worker_id: String,
    /// The Onmeta account, named `provider.name` (`onmeta` by default).
    pub provider: ProviderConfig,
    /// More providers, by name (`[providers.<name>]`, each with its `kind`).
    pub providers: BTreeMap<String, NamedProvider>,
    /// Per-tenant settings (`[tenants.<tenant>]`).
    pub tenants: BTreeMap<String, TenantConfig>,
    pub nats: NatsConfig,
    /// Order timing and limits, both directions (`[onramp]` is accepted as an alias: it
    /// was the section's name before off-ramp orders existed).
    #[serde(alias = "onramp")]
    pub orders: OrdersConfig,
    pub executor: ExecutorConfig,
    pub webhooks: WebhookConfig,
    pub admin: AdminConfig,
    /// The provider's own webhooks (`crate::callbacks`).
    pub callbacks: CallbacksConfig,
    pub retention: RetentionConfig,
}

/// How long finished work is kept before the retention loop deletes it, in bounded
/// batches. `order_events` is the permanent audit trail and is never deleted.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Between retention passes (each pass deletes until nothing is past retention).
    pub interval_secs: u64,
    /// Most rows one delete statement removes, so no lock is held long.
    pub batch: u64,
    /// Outbox rows, counted from when they were published to NATS.
    pub outbox_published_secs: u64,
    /// Drive tasks, counted from when they were done.
    pub tasks_done_secs: u64,
    /// Delivered webhook deliveries and their attempts, from delivery.
    pub webhooks_delivered_secs: u64,
    /// Dead-lettered deliveries and their attempts, from dead-lettering: the window in
    /// which an operator can still replay them.
    pub webhooks_dead_secs: u64,
    /// Provider callbacks received are kept this long (their record, for an operator).
    pub provider_callbacks_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        RetentionConfig {
            interval_secs: 300,
            batch: 1_000,
            outbox_published_secs: 7 * DAY,
            tasks_done_secs: 7 * DAY,
            webhooks_delivered_secs: 7 * DAY,
            webhooks_dead_secs: 30 * DAY,
            provider_callbacks_secs: 30 * DAY,
        }
    }
}

impl RetentionConfig {
    /// Refuse settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.interval_secs == 0 || self.batch == 0 {
            anyhow::bail!("retention.interval_secs and retention.batch must be >= 1");
        }
        Ok(())
    }
}

/// The admin HTTP port: `/metrics`, `/healthz`, `/readyz`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to serve on, e.g. `0.0.0.0:9464`. Off when unset (the default), so that
    /// the demo and tests can run several workers on one host; deployments turn it on.
    pub listen: Option<std::net::SocketAddr>,
}

/// The listener for the provider's callbacks.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// Address to serve `POST /callbacks/onmeta` on, e.g. `0.0.0.0:9465`. Off when unset
    /// (the default): polling alone drives orders. Give the provider
    /// `https://<public host>/callbacks/onmeta` as the callback URL.
    pub listen: Option<std::net::SocketAddr>,
    /// Larger bodies are refused with 413 before they are read (the provider's are ~2 KiB).
    pub body_limit_bytes: usize,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            listen: None,
            body_limit_bytes: 64 * 1024,
        }
    }
}

/// A provider beside `[provider]`, by its kind.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NamedProvider {
    /// Another Onmeta account (its callbacks are not received: `[callbacks]` verifies
    /// `[provider]`'s).
    Onmeta(ProviderConfig),
    /// The stablecoin Partner API (mint and redeem).
    Partner(PartnerProviderConfig),
}

/// A Partner API account (`providers::partner`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartnerProviderConfig {
    pub base_url: String,
    /// The bearer token.
    pub token: SecretString,
    pub tenant_id: String,
    /// The header that carries `tenant_id` (the documents do not name it).
    pub tenant_header: String,
    pub timeout_ms: u64,
    /// As for `[provider]`: all replicas together; 0 sets no budget.
    pub requests_per_sec: f64,
    pub replicas: u32,
}

impl Default for PartnerProviderConfig {
    fn default() -> Self {
        PartnerProviderConfig {
            base_url: "http://127.0.0.1:8088/partner".into(),
            token: SecretString::from("sandbox-partner-token"),
            // The sandbox's (`sandbox::partner`).
            tenant_id: "4e6cb408-8a22-4edc-ba0f-e0f8071efc64".into(),
            tenant_header: "x-tenant-id".into(),
            timeout_ms: 15_000,
            requests_per_sec: 0.0,
            replicas: 1,
        }
    }
}

/// A tenant's settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// The provider that serves this tenant's orders when a create does not name one and
    /// it serves the order's kind.
    pub provider: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub base_url: String,
    pub api_key: SecretString,
    /// The merchant API secret the provider signs its callbacks with.
    pub api_secret: SecretString,
    /// The secret before the last rotation, accepted as well until it is removed.
    pub api_secret_previous: Option<SecretString>,
    pub timeout_ms: u64,
    /// The request budget for this provider, all replicas together (requests per
    /// second); 0 (the default) sets no budget. See `providers::budget`.
    pub requests_per_sec: f64,
    /// How many replicas share `requests_per_sec`: each one spends at most its share.
    pub replicas: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    pub command_stream: String,
    pub event_stream: String,
    pub dead_letter_stream: String,
    /// Prefix of the durable consumers: one per tenant, `<consumer>-<tenant>` (see
    /// `intake::lanes`).
    pub consumer: String,
    /// Only consume commands matching this subject (e.g. `ramp.cmd.acme.>` for a worker
    /// dedicated to one tenant). Default: all commands.
    pub consumer_filter: Option<String>,
    /// Commands handled at once per replica, over all tenants; busy tenants take turns.
    pub intake_concurrency: usize,
    /// Commands of one tenant handled at once per replica (those of one order always one
    /// after another), so that one busy tenant leaves permits for the others.
    pub lane_concurrency: usize,
    /// How often the command stream is checked for tenants without a consumer yet.
    pub lane_discovery_ms: u64,
    /// Most tenants (consumers) one worker serves.
    pub max_lanes: usize,
    /// Deliveries of one command before it is dead-lettered.
    pub max_deliver: i64,
    /// Must exceed the slowest command handler (a few database writes).
    pub ack_wait_ms: u64,
    pub batch: usize,
    /// Window in which JetStream drops a repeated `Nats-Msg-Id`.
    pub duplicate_window_secs: u64,
    /// Replicas of each stream rampd creates (1, or 3 or 5 on a NATS cluster). A stream
    /// that exists already is left as it is; rampd warns when it differs.
    pub stream_replicas: usize,
    /// Try the servers of `nats_url` in the order given (say, the local zone's first)
    /// instead of in random order, when connecting and reconnecting.
    pub servers_in_order: bool,
    /// Credentials, at most one kind: `user` with `password`, `token`, `nkey_seed`, or a
    /// `creds_file` (JWT and seed). Secrets are never logged.
    pub user: Option<String>,
    pub password: Option<SecretString>,
    pub token: Option<SecretString>,
    pub nkey_seed: Option<SecretString>,
    pub creds_file: Option<PathBuf>,
    /// TLS: required (also implied by a `tls://` URL), a CA to trust beyond the system's,
    /// a client certificate and its key (mutual TLS).
    pub tls_required: bool,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl NatsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=5).contains(&self.stream_replicas) {
            anyhow::bail!("nats.stream_replicas must be 1 to 5 (JetStream's limit)");
        }
        let kinds = [
            self.password.is_some(),
            self.token.is_some(),
            self.nkey_seed.is_some(),
            self.creds_file.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            anyhow::bail!(
                "NATS credentials: give one of nats.password (with nats.user), nats.token, \
                 nats.nkey_seed or nats.creds_file, not several"
            );
        }
        if self.password.is_some() != self.user.is_some() {
            anyhow::bail!("NATS credentials: nats.user and nats.password go together");
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            anyhow::bail!("NATS TLS: nats.tls_cert_file and nats.tls_key_file go together");
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    pub poll_interval_min_ms: u64,
    pub poll_interval_max_ms: u64,
    /// An order parked for the user's payment (no UTR or deposit hash yet) is checked
    /// after a quarter of the time it has waited, within these bounds; its payment
    /// reference or an operator wakes it at once (`PollPolicy::parked_min`).
    pub parked_poll_min_ms: u64,
    pub parked_poll_max_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    pub retry_after_cap_ms: u64,
    pub attention_after_errors: u32,
    /// Failed or inconclusive lookups of an interrupted create or payment-reference
    /// submission after which the order is flagged (the call is never repeated blind).
    pub attention_after_inconclusive_lookups: u32,
    /// On-ramp: how long the user has to pay (provider: 3 h).
    pub payment_window_secs: u64,
    /// Off-ramp: how long the user has to send the tokens and their hash.
    pub deposit_window_secs: u64,
    pub expiry_grace_secs: u64,
    /// How long an order waits for the user's KYC before it fails (`kyc_timeout`).
    pub kyc_window_secs: u64,
    /// First delay between KYC re-checks; doubles up to `kyc_recheck_cap_ms`.
    pub kyc_recheck_ms: u64,
    pub kyc_recheck_cap_ms: u64,
    /// A quote older than this is fetched again before the order is created.
    pub quote_validity_ms: u64,
    /// On-ramp fiat amount limits (INR).
    pub amount_min: Decimal,
    pub amount_max: Decimal,
    /// Chain ids creates may name (the chains the provider account has tokens on); any
    /// other is refused as `unsupported_chain`. Each must be of a family rampd knows.
    pub supported_chains: SupportedChains,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// How long a claimed task belongs to this replica. Must exceed the provider timeout
    /// plus a commit; a crashed replica's tasks are taken over when it runs out. The
    /// outbox relay's leases last this long too, at most 30 s.
    pub lease_ms: u64,
    pub batch: u64,
    pub concurrency: usize,
    /// Sleep between scans when nothing is due (new work wakes the loop earlier).
    pub idle_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    pub endpoints: Vec<EndpointConfig>,
    /// Per attempt, connect to last body byte; a timeout is a failed attempt.
    pub timeout_ms: u64,
    /// Attempts in all, the first one included, before a delivery is dead-lettered.
    pub max_attempts: i32,
    /// Deliveries in flight at once per replica, over all endpoints.
    pub concurrency: usize,
    /// Deliveries in flight at once per replica to any one endpoint.
    pub concurrency_per_endpoint: usize,
    /// Delay before attempt 2, 3, …; the last step repeats.
    pub retry_schedule_ms: Vec<u64>,
    /// Each delay is spread by ± this fraction.
    pub retry_jitter: f64,
    /// The longest `Retry-After` honoured (a receiver can delay, never hasten, a retry).
    pub retry_after_cap_ms: u64,
    /// An endpoint failing continuously this long is disabled.
    pub disable_after_secs: u64,
    /// After a secret rotation the previous secret keeps signing this long.
    pub rotation_overlap_secs: u64,
    /// Restricted networks (private, loopback, link-local, …) webhooks may still reach,
    /// in CIDR notation, e.g. `["127.0.0.0/8", "::1/128"]`.
    pub allow_networks: Vec<String>,
    /// Most response bytes read per attempt.
    pub response_body_limit_bytes: usize,
    /// Base64 of 32 random bytes: endpoint secrets are stored sealed with it (AES-256-GCM).
    /// Without it they are stored as plain `whsec_` text. Env `RAMPD_WEBHOOK_SECRETS_KEY`.
    pub secrets_key: Option<SecretString>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub id: String,
    pub tenant: String,
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: SecretString,
    /// Event types to receive (`*`, `order.*`, `order.status_changed`, …); empty: all.
    #[serde(default)]
    pub events: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://rampd.db".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            worker_id: default_worker_id(),
            provider: ProviderConfig::default(),
            providers: BTreeMap::new(),
            tenants: BTreeMap::new(),
            nats: NatsConfig::default(),
            orders: OrdersConfig::default(),
            executor: ExecutorConfig::default(),
            webhooks: WebhookConfig::default(),
            admin: AdminConfig::default(),
            callbacks: CallbacksConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            name: "onmeta".into(),
            base_url: "http://127.0.0.1:8088".into(),
            api_key: SecretString::from("sandbox-api-key"),
            api_secret: SecretString::from("sandbox-api-secret"),
            api_secret_previous: None,
            timeout_ms: 15_000,
            requests_per_sec: 0.0,
            replicas: 1,
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            command_stream: "RAMP_CMD".into(),
            event_stream: "RAMP_EVT".into(),
            dead_letter_stream: "RAMP_DLQ".into(),
            consumer: "rampd".into(),
            consumer_filter: None,
            intake_concurrency: 256,
            lane_concurrency: 32,
            lane_discovery_ms: 2_000,
            max_lanes: 1_024,
            max_deliver: 5,
            ack_wait_ms: 30_000,
            batch: 32,
            duplicate_window_secs: 120,
            stream_replicas: 1,
            servers_in_order: false,
            user: None,
            password: None,
            token: None,
            nkey_seed: None,
            creds_file: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Default for OrdersConfig {
    fn default() -> Self {
        let p = OrderPolicy::default();
        let l = AmountLimits::default();
        OrdersConfig {
            poll_interval_min_ms: p.poll.interval_min.as_millis() as u64,
            poll_interval_max_ms: p.poll.interval_max.as_millis() as u64,
            parked_poll_min_ms: p.poll.parked_min.as_millis() as u64,
            parked_poll_max_ms: p.poll.parked_max.as_millis() as u64,
            backoff_base_ms: p.poll.backoff_base.as_millis() as u64,
            backoff_cap_ms: p.poll.backoff_cap.as_millis() as u64,
            retry_after_cap_ms: p.poll.retry_after_cap.as_millis() as u64,
            attention_after_errors: p.poll.attention_after_errors,
            attention_after_inconclusive_lookups: p.poll.attention_after_inconclusive_lookups,
            payment_window_secs: p.payment_window.as_secs(),
            deposit_window_secs: p.deposit_window.as_secs(),
            expiry_grace_secs: p.expiry_grace.as_secs(),
            kyc_window_secs: p.kyc_window.as_secs(),
            kyc_recheck_ms: p.kyc_recheck.as_millis() as u64,
            kyc_recheck_cap_ms: p.kyc_recheck_cap.as_millis() as u64,
            quote_validity_ms: p.quote_validity.as_millis() as u64,
            amount_min: l.min,
            amount_max: l.max,
            supported_chains: SupportedChains::default(),
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            lease_ms: 60_000,
            batch: 256,
            concurrency: 256,
            idle_ms: 500,
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            endpoints: Vec::new(),
            timeout_ms: 15_000,
            max_attempts: 8,
            concurrency: 128,
            concurrency_per_endpoint: 32,
            retry_schedule_ms: DEFAULT_SCHEDULE_SECS.iter().map(|s| s * 1000).collect(),
            retry_jitter: 0.2,
            retry_after_cap_ms: 3_600_000,
            disable_after_secs: 5 * 24 * 3600,
            rotation_overlap_secs: 24 * 3600,
            allow_networks: Vec::new(),
            response_body_limit_bytes: 64 * 1024,
            secrets_key: None,
        }
    }
}

impl OrdersConfig {
    pub fn policy(&self) -> OrderPolicy {
        OrderPolicy {
            poll: PollPolicy {
                interval_min: ms(self.poll_interval_min_ms),
                interval_max: ms(self.poll_interval_max_ms),
                parked_min: ms(self.parked_poll_min_ms),
                parked_max: ms(self.parked_poll_max_ms),
                backoff_base: ms(self.backoff_base_ms),
                backoff_cap: ms(self.backoff_cap_ms),
                retry_after_cap: ms(self.retry_after_cap_ms),
                attention_after_errors: self.attention_after_errors,
                attention_after_inconclusive_lookups: self.attention_after_inconclusive_lookups,
            },
            payment_window: Duration::from_secs(self.payment_window_secs),
            deposit_window: Duration::from_secs(self.deposit_window_secs),
            expiry_grace: Duration::from_secs(self.expiry_grace_secs),
            kyc_window: Duration::from_secs(self.kyc_window_secs),
            kyc_recheck: ms(self.kyc_recheck_ms),
            kyc_recheck_cap: ms(self.kyc_recheck_cap_ms),
            quote_validity: ms(self.quote_validity_ms),
        }
    }

    pub fn limits(&self) -> CommandLimits {
        CommandLimits {
            amounts: AmountLimits {
                min: self.amount_min,
                max: self.amount_max,
            },
            chains: self.supported_chains.clone(),
        }
    }
}

impl WebhookConfig {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            schedule: self.retry_schedule_ms.iter().map(|v| ms(*v)).collect(),
            max_attempts: self.max_attempts.max(1) as u32,
            jitter: self.retry_jitter,
            retry_after_cap: ms(self.retry_after_cap_ms),
        }
    }

    /// Refuse webhook settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.address_policy()?;
        crate::webhooks::vault::Vault::new(self.secrets_key.as_ref())?;
        if self.retry_schedule_ms.is_empty() {
            anyhow::bail!("webhooks.retry_schedule_ms must name at least one delay");
        }
        if self.max_attempts < 1 || self.concurrency < 1 || self.concurrency_per_endpoint < 1 {
            anyhow::bail!(
                "webhooks.max_attempts, concurrency and concurrency_per_endpoint must be >= 1"
            );
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            anyhow::bail!("webhooks.retry_jitter must be within 0..=1");
        }
        if self.timeout_ms == 0 || self.response_body_limit_bytes == 0 {
            anyhow::bail!("webhooks.timeout_ms and response_body_limit_bytes must be > 0");
        }
        Ok(())
    }

    pub fn address_policy(&self) -> anyhow::Result<AddressPolicy> {
        let allow = self
            .allow_networks
            .iter()
            .map(|n| n.parse::<IpNet>())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("webhooks.allow_networks: {e}"))?;
        Ok(AddressPolicy { allow })
    }
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rampd".into());
    format!("{host}-{}", std::process::id())
}

impl Config {
    /// The longest timeout of any configured provider's client.
    pub fn longest_provider_timeout_ms(&self) -> u64 {
        self.providers
            .values()
            .map(|p| match p {
                NamedProvider::Onmeta(c) => c.timeout_ms,
                NamedProvider::Partner(c) => c.timeout_ms,
            })
            .fold(self.provider.timeout_ms, u64::max)
    }

    /// Defaults, then the TOML file if given, then the environment:
    /// `DATABASE_URL`, `NATS_URL`, `RAMPD_WORKER_ID`, `RAMPD_PROVIDER_URL`,
    /// `RAMPD_PROVIDER_API_KEY`, `RAMPD_WEBHOOK_SECRETS_KEY`, `RAMPD_ADMIN_LISTEN`,
    /// `RAMPD_NATS_STREAM_REPLICAS`, and NATS credentials under the nats CLI's names.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", p.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", p.display()))?
            }
            None => Config::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("DATABASE_URL") {
            cfg.database_url = v;
        }
        if let Some(v) = env("NATS_URL") {
            cfg.nats_url = v;
        }
        // The names the nats CLI reads too.
        let n = &mut cfg.nats;
        if let Some(v) = env("NATS_USER") {
            n.user = Some(v);
        }
        if let Some(v) = env("NATS_PASSWORD") {
            n.password = Some(SecretString::from(v));
        }
        if let Some(v) = env("NATS_TOKEN") {
            n.token = Some(SecretString::from(v));
        }
        if let Some(v) = env("NATS_NKEY") {
            n.nkey_seed = Some(SecretString::from(v));
        }
        if let Some(v) = env("NATS_CREDS") {
            n.creds_file = Some(v.into());
        }
        if let Some(v) = env("NATS_CA") {
            n.tls_ca_file = Some(v.into());
        }
        if let Some(v) = env("NATS_CERT") {
            n.tls_cert_file = Some(v.into());
        }
        if let Some(v) = env("NATS_KEY") {
            n.tls_key_file = Some(v.into());
        }
        if let Some(v) = env("RAMPD_WORKER_ID") {
            cfg.worker_id = v;
        }
        if let Some(v) = env("RAMPD_PROVIDER_URL") {
            cfg.provider.base_url = v;
        }
        if let Some(v) = env("RAMPD_PROVIDER_API_KEY") {
            cfg.provider.api_key = SecretString::from(v);
        }
        if let Some(v) = env("RAMPD_PROVIDER_API_SECRET") {
            cfg.provider.api_secret = SecretString::from(v);
        }
        if let Some(v) = env("RAMPD_PROVIDER_API_SECRET_PREVIOUS") {
            cfg.provider.api_secret_previous = Some(SecretString::from(v));
        }
        provider_secrets_from(&mut cfg, env);
        if let Some(v) = env("RAMPD_CALLBACKS_LISTEN") {
            cfg.callbacks.listen = Some(
                v.parse()
                    .map_err(|e| anyhow::anyhow!("RAMPD_CALLBACKS_LISTEN {v:?}: {e}"))?,
            );
        }
        if let Some(v) = env("RAMPD_WEBHOOK_SECRETS_KEY") {
            cfg.webhooks.secrets_key = Some(SecretString::from(v));
        }
        if let Some(v) = env("RAMPD_NATS_STREAM_REPLICAS") {
            cfg.nats.stream_replicas = v
                .parse()
                .map_err(|e| anyhow::anyhow!("RAMPD_NATS_STREAM_REPLICAS {v:?}: {e}"))?;
        }
        if let Some(v) = env("RAMPD_ADMIN_LISTEN") {
            cfg.admin.listen = Some(
                v.parse()
                    .map_err(|e| anyhow::anyhow!("RAMPD_ADMIN_LISTEN {v:?}: {e}"))?,
            );
        }
        Ok(cfg)
    }
}

/// The secrets of `[providers.<name>]` from the environment, under
/// `RAMPD_PROVIDERS_<NAME>_` (the name upper-cased, `-` as `_`): `TOKEN` for a Partner
/// account; `API_KEY`, `API_SECRET` for an Onmeta one.
fn provider_secrets_from(cfg: &mut Config, env: impl Fn(&str) -> Option<String>) {
    for (name, p) in cfg.providers.iter_mut() {
        let var = |what: &str| {
            let name = name.to_ascii_uppercase().replace('-', "_");
            env(&format!("RAMPD_PROVIDERS_{name}_{what}")).map(SecretString::from)
        };
        match p {
            NamedProvider::Partner(c) => {
                if let Some(v) = var("TOKEN") {
                    c.token = v;
                }
            }
            NamedProvider::Onmeta(c) => {
                if let Some(v) = var("API_KEY") {
                    c.api_key = v;
                }
                if let Some(v) = var("API_SECRET") {
                    c.api_secret = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn named_providers_load_with_their_kind_and_take_secrets_from_the_environment() {
        let mut c: Config = toml::from_str(
            "[providers.partner-eu]\nkind = \"partner\"\ntenant_id = \"t-1\"\n\
             [providers.onmeta-2]\nkind = \"onmeta\"\nbase_url = \"http://127.0.0.1:9\"\n\
             [tenants.acme]\nprovider = \"partner-eu\"\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "RAMPD_PROVIDERS_PARTNER_EU_TOKEN" => Some("tok-from-env".to_string()),
            "RAMPD_PROVIDERS_ONMETA_2_API_KEY" => Some("key-from-env".to_string()),
            _ => None,
        };
        provider_secrets_from(&mut c, env);
        let NamedProvider::Partner(p) = &c.providers["partner-eu"] else {
            panic!("a partner account");
        };
        assert_eq!(
            (p.tenant_id.as_str(), p.token.expose_secret()),
            ("t-1", "tok-from-env")
        );
        assert_eq!(p.tenant_header, "x-tenant-id", "defaults kept");
        let NamedProvider::Onmeta(o) = &c.providers["onmeta-2"] else {
            panic!("an onmeta account");
        };
        assert_eq!(o.api_key.expose_secret(), "key-from-env");
        assert_eq!(o.api_secret.expose_secret(), "sandbox-api-secret");
        assert_eq!(c.tenants["acme"].provider.as_deref(), Some("partner-eu"));
        assert!(
            !format!("{c:?}").contains("tok-from-env"),
            "secrets are not printed"
        );
        for bad in [
            "[providers.x]\nkind = \"bunq\"\n",
            "[providers.x]\nbase_url = \"http://h\"\n",
            "[providers.x]\nkind = \"partner\"\nbogus = 1\n",
            "[tenants.acme]\nbogus = 1\n",
        ] {
            assert!(toml::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_follow_the_provider_guidance() {
        let c = Config::default();
        let p = c.orders.policy();
        assert_eq!(p.poll.interval_min, Duration::from_secs(10));
        assert_eq!(p.poll.interval_max, Duration::from_secs(15));
        assert_eq!(p.payment_window, Duration::from_secs(3 * 3600));
        assert!(c.executor.lease_ms > c.provider.timeout_ms);
        assert!(c.database_url.starts_with("sqlite:"));
    }

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("rampd-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[onramp]\npoll_interval_min_ms = 100\n[[webhooks.endpoints]]\nid='e1'\ntenant='acme'\nurl='http://127.0.0.1:9/'\nsecret='whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(c.orders.poll_interval_min_ms, 100);
        assert_eq!(c.webhooks.endpoints.len(), 1);
        assert!(!format!("{:?}", c).contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        std::fs::write(&f, "bogus = 1\n").unwrap();
        assert!(Config::load(Some(&f)).is_err());
    }

    #[test]
    fn retention_section_loads_and_refuses_a_zero_batch() {
        let c: Config =
            toml::from_str("[retention]\nbatch = 50\nwebhooks_dead_secs = 86400\n").unwrap();
        assert_eq!(
            (c.retention.batch, c.retention.webhooks_dead_secs),
            (50, 86400)
        );
        assert_eq!(
            c.retention.interval_secs, 300,
            "other keys keep their defaults"
        );
        assert!(c.retention.validate().is_ok());
        let mut bad = c.retention.clone();
        bad.batch = 0;
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<Config>("[retention]\nbogus = 1\n").is_err());
    }

    #[test]
    fn webhook_settings_that_cannot_work_are_refused() {
        let ok = WebhookConfig::default();
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.allow_networks = vec!["10.0.0.0/33".into()];
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.retry_schedule_ms.clear();
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.concurrency_per_endpoint = 0;
        assert!(bad.validate().is_err());
    }
}
