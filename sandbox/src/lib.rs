//! The provider sandbox: a real HTTP server speaking the Onmeta-style on- and off-ramp API
//! (`reference/providers.md` §1) with scripted status progressions, expiry on a scalable
//! clock, business scenarios and fault injection. It serves the demo, the tests and the
//! benchmark.
//!
//! Control endpoints (no API key): `GET /sandbox/stats` returns [`SandboxStats`];
//! `GET`/`PUT /sandbox/faults` reads/replaces [`Faults`]; `GET`/`PUT /sandbox/scenario`
//! reads/replaces [`Scenario`]; `GET`/`PUT /sandbox/conversion-rate` reads/sets the INR
//! per token rate as `{"conversion_rate": "88.50"}`; `GET`/`PUT /sandbox/callbacks`
//! reads/replaces [`Callbacks`] (400 for a non-http(s) URL or a rate outside `[0, 1]`);
//! `POST /sandbox/onramp/{order_id}/pay` says the user has paid an on-ramp order without
//! the merchant submitting a UTR (also [`SandboxHandle::pay`]): a `fiatPending` order that
//! has not expired becomes `fiatReceived` and its status polls then progress as after an
//! accepted UTR (the `order_received`, `transferred` and `completed` thresholds of
//! [`Progression`] follow). It answers `{"orderId": …, "status": "fiatReceived"}`, 404 for
//! an unknown order, 409 if the order expired or is past `fiatPending`.
//!
//! Under `/partner` it also serves the stablecoin Partner API ([`partner`]), with state of
//! its own.
//!
//! Merchant callbacks (`reference/providers.md` §1.5): with [`Callbacks::url`] set, every
//! status change of an order (on-ramp: create → `fiatPending`, each change on a status poll,
//! expiry when it is settled, `pay`; off-ramp: create → `pending`, each change on a status
//! poll) is `POST`ed there as JSON with `Content-Type` and `Accept: application/json` and
//! `X-Onmeta-Signature` = lowercase hex HMAC-SHA256(`secret`, exact body bytes). No
//! timestamp, no event id, no retries; one background task sends them in the order they
//! happened. Fault knobs: `drop_rate` (never sent), `repeat` (extra identical copies),
//! `reorder` (each order's callbacks arrive pairwise swapped), `mis_sign_rate` (wrong
//! signature), `wrap` (`{"request_data": {…}}`) and `lower_case_keys` (`orderid`,
//! `txnhash`, …). The `callbacks_*` counters of [`SandboxStats`] count what happened.

mod callbacks;
mod clock;
mod faults;
mod json;
pub mod partner;
mod routes;
mod scenario;
mod state;
mod traffic;

/// The callback sender's TLS provider (ring, as the rest of rampd uses); a no-op when one
/// is installed already.
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rust_decimal::Decimal;

use self::clock::Clock;
use self::state::World;

pub use self::callbacks::{Callbacks, CallbacksError};
pub use self::scenario::{KNOWN_OFFRAMP_STATUSES, OfframpProgression, Scenario};

#[derive(Clone)]
pub struct SandboxConfig {
    /// Expected `x-api-key`. Default `"sandbox-api-key"`.
    pub api_key: String,
    /// Provider time runs this many times faster than real time (expiry is 3 h / time_scale).
    pub time_scale: f64,
    /// Unpaid orders expire after this much provider time. Default 3 h.
    pub order_expiry: Duration,
    /// Access tokens expire after this much provider time. Default 1 h.
    pub access_token_ttl: Duration,
    pub progression: Progression,
    /// Whether every user is KYC-verified. Default true.
    pub kyc_verified: bool,
    /// INR per token, for buy and sell quotes and off-ramp payouts. Default 88.50;
    /// settable at run time ([`SandboxHandle::set_conversion_rate`]).
    pub conversion_rate: Decimal,
    /// INR deducted from every off-ramp payout (`transactionFee` of the sell quote).
    /// Default 5.00.
    pub sell_fee: Decimal,
    pub offramp_progression: OfframpProgression,
    pub scenario: Scenario,
    pub faults: Faults,
    /// Merchant callbacks; off by default (no URL).
    pub callbacks: Callbacks,
    /// The Partner API simulator under `/partner` ([`partner`]).
    pub partner: partner::PartnerSimConfig,
}

impl SandboxConfig {
    /// The defaults with these faults injected.
    pub fn with_faults(faults: Faults) -> Self {
        SandboxConfig {
            faults,
            ..SandboxConfig::default()
        }
    }

    /// The defaults with this business scenario.
    pub fn with_scenario(scenario: Scenario) -> Self {
        SandboxConfig {
            scenario,
            ..SandboxConfig::default()
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            api_key: "sandbox-api-key".to_owned(),
            time_scale: 1.0,
            order_expiry: Duration::from_secs(3 * 3600),
            access_token_ttl: Duration::from_secs(3600),
            progression: Progression::default(),
            kyc_verified: true,
            conversion_rate: Decimal::new(8850, 2),
            sell_fee: Decimal::new(500, 2),
            offramp_progression: OfframpProgression::default(),
            scenario: Scenario::default(),
            faults: Faults::default(),
            callbacks: Callbacks::default(),
            partner: partner::PartnerSimConfig::default(),
        }
    }
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("api_key", &"<redacted>")
            .field("time_scale", &self.time_scale)
            .field("order_expiry", &self.order_expiry)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("progression", &self.progression)
            .field("kyc_verified", &self.kyc_verified)
            .field("conversion_rate", &self.conversion_rate)
            .field("sell_fee", &self.sell_fee)
            .field("offramp_progression", &self.offramp_progression)
            .field("scenario", &self.scenario)
            .field("faults", &self.faults)
            .field("callbacks", &self.callbacks)
            .finish_non_exhaustive()
    }
}

/// Status polls (after a UTR was submitted) needed to reach each status; cumulative
/// thresholds. Default: 1, 2, None, 3, 4.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Progression {
    pub fiat_received: u32,
    pub order_received: u32,
    /// `InProgress` (only for non-native tokens at the real provider); `None` skips it.
    pub in_progress: Option<u32>,
    pub transferred: u32,
    pub completed: u32,
}

impl Default for Progression {
    fn default() -> Self {
        Progression {
            fiat_received: 1,
            order_received: 2,
            in_progress: None,
            transferred: 3,
            completed: 4,
        }
    }
}

/// Random faults apply to every endpoint except `/sandbox/*`; rates are in `[0, 1]`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Share of calls answered 503 before the handler runs.
    pub error_rate: f64,
    /// Share of calls answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// Added to every call.
    pub latency_ms: u64,
    /// Share of successful calls whose body is replaced by non-JSON (the call took effect).
    pub malformed_rate: f64,
    /// Share of status calls answered with an odd status (not persisted).
    pub unknown_status_rate: f64,
    /// Deterministic: the next N order-status calls (on- or off-ramp) return 503.
    pub fail_next_status: u32,
    /// Deterministic: the next N order-status calls (on- or off-ramp) return 429 with
    /// `Retry-After`.
    pub rate_limit_next_status: u32,
    /// Deterministic: the next N order creates (on- or off-ramp) return 503 without
    /// creating anything (e.g. to let a quote go stale while the caller retries).
    pub fail_next_create: u32,
    /// Deterministic: the next N order creates (on- or off-ramp) return HTTP 200 with
    /// `success: false` and a business error, without creating anything.
    pub reject_2xx_next_create: u32,
    /// Sleep after creating an order and before answering (a reply lost in a crash).
    pub respond_latency_create_ms: u64,
    /// Deterministic: the next N order creates (on- or off-ramp) take effect, then answer
    /// HTTP 200 with a body that is not JSON.
    pub malformed_next_create: u32,
    /// Deterministic: the next N UTR or tx-hash submissions take effect, then answer HTTP
    /// 200 with a body that is not JSON.
    pub malformed_next_payment_ref: u32,
    /// Deterministic: the next N order-list pages (`GET /v1/orders/{skip}`) return 503.
    pub fail_next_lookup: u32,
    /// Deterministic: every Nth order-list page (the Nth, 2Nth, … since this was set)
    /// returns 503; 0 is off.
    pub fail_every_nth_lookup: u32,
    /// Order-list pages seen since `fail_every_nth_lookup` was set (internal count).
    #[serde(skip)]
    pub lookups_seen: u32,
    /// After the next successful create, the same user gets this many newer orders from
    /// elsewhere (another merchant's, with their own merchant reference), so that the new
    /// order sits deep in the user's order list.
    pub orders_after_next_create: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SandboxStats {
    /// How many provider on-ramp orders each merchantRef created.
    pub orders_by_merchant_ref: BTreeMap<String, u32>,
    /// Accepted UTR submissions per order (repeats of the same UTR included).
    pub utr_submissions_by_order: BTreeMap<String, u32>,
    /// How many provider off-ramp orders each merchantRef created.
    pub offramp_orders_by_merchant_ref: BTreeMap<String, u32>,
    /// Accepted tx-hash submissions per off-ramp order (repeats of the same hash included).
    pub tx_hash_submissions_by_order: BTreeMap<String, u32>,
    /// Order-status requests (on- and off-ramp) that passed the API key check (faulted ones
    /// included).
    pub status_calls: u64,
    /// Order-create requests (on- and off-ramp) that passed the API key check (faulted ones
    /// included).
    pub create_calls: u64,
    /// Successful logins.
    pub logins: u64,
    /// Successful token refreshes.
    pub refreshes: u64,
    pub faults_injected: u64,
    /// The most `/v1/*` requests that arrived within any one second (sliding window).
    pub busiest_second: u64,
    /// The same for polls alone (order status and order list calls).
    pub busiest_poll_second: u64,
    /// Callback HTTP requests made (repeats included, failed ones too).
    pub callbacks_sent: u64,
    /// Callbacks never sent (`drop_rate`).
    pub callbacks_dropped: u64,
    /// Callbacks sent with a wrong signature (`mis_sign_rate`), each counted once however
    /// many copies `repeat` sends.
    pub callbacks_mis_signed: u64,
    /// Callback requests that failed: transport error or a non-2xx answer.
    pub callbacks_failed: u64,
}

/// Where the callback sender takes the world's status changes from.
type ChangeReceiver = tokio::sync::mpsc::UnboundedReceiver<state::Change>;

/// State shared by the handlers.
pub(crate) struct Shared {
    pub(crate) api_key: String,
    pub(crate) clock: Clock,
    world: Mutex<World>,
    faults: Mutex<Faults>,
    callback_counters: Arc<callbacks::sender::Counters>,
    pub(crate) traffic: Mutex<traffic::Traffic>,
}

impl Shared {
    /// The shared state and the receiving end of the world's status changes.
    fn new(config: &SandboxConfig) -> (Self, ChangeReceiver) {
        let (outbox, changes) = tokio::sync::mpsc::unbounded_channel();
        let mut world = World::new(config);
        world.connect_callbacks(outbox);
        let shared = Shared {
            api_key: config.api_key.clone(),
            clock: Clock::new(config.time_scale),
            world: Mutex::new(world),
            faults: Mutex::new(config.faults.clone()),
            callback_counters: Arc::default(),
            traffic: Mutex::new(traffic::Traffic::new()),
        };
        (shared, changes)
    }

    /// The counters, the callback sender's included.
    pub(crate) fn stats(&self) -> SandboxStats {
        let mut stats = self.world().stats.clone();
        self.callback_counters.add_to(&mut stats);
        (stats.busiest_second, stats.busiest_poll_second) = self.traffic().busiest_second();
        stats
    }

    pub(crate) fn traffic(&self) -> MutexGuard<'_, traffic::Traffic> {
        self.traffic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn faults_mut(&self) -> MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a successful create for `email`: apply `orders_after_next_create`.
    pub(crate) fn after_create(&self, email: &str) {
        let n = std::mem::take(&mut self.faults_mut().orders_after_next_create);
        if n > 0 {
            self.world()
                .add_orders_elsewhere(email, n, self.clock.now());
        }
    }

    pub(crate) fn faults_snapshot(&self) -> Faults {
        self.faults_mut().clone()
    }
}

pub struct Sandbox;

impl Sandbox {
    /// Binds `addr` (use port 0 for a free port) and serves until [`SandboxHandle::shutdown`].
    /// Dropping the handles does not stop the server.
    pub async fn start(config: SandboxConfig, addr: SocketAddr) -> anyhow::Result<SandboxHandle> {
        anyhow::ensure!(
            config.time_scale.is_finite() && config.time_scale > 0.0,
            "sandbox time_scale must be a positive number"
        );
        anyhow::ensure!(
            config.conversion_rate > Decimal::ZERO,
            "sandbox conversion_rate must be positive"
        );
        anyhow::ensure!(
            config.sell_fee >= Decimal::ZERO,
            "sandbox sell_fee must not be negative"
        );
        anyhow::ensure!(
            config.offramp_progression.is_ordered(),
            "sandbox offramp_progression thresholds must not decrease"
        );
        config
            .callbacks
            .validate()
            .map_err(|err| anyhow::anyhow!("sandbox {err}"))?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (shared, changes) = Shared::new(&config);
        let shared = Arc::new(shared);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        callbacks::sender::spawn_sender(
            changes,
            shared.clock.clone(),
            shared.callback_counters.clone(),
            stop_tx.subscribe(),
        )?;
        let partner = partner::PartnerSim::new(config.partner.clone());
        let app = routes::router(shared.clone()).nest("/partner", partner.router());
        tokio::spawn(async move {
            let stopped = async move {
                if stop_rx.wait_for(|stop| *stop).await.is_err() {
                    // Every handle is gone without asking to stop: keep serving.
                    std::future::pending::<()>().await;
                }
            };
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(error = %err, "sandbox server stopped with an error");
            }
        });
        let ip = if local.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            local.ip()
        };
        tracing::info!(addr = %local, "provider sandbox listening");
        Ok(SandboxHandle {
            shared,
            addr: SocketAddr::new(ip, local.port()),
            stop: Arc::new(stop_tx),
            partner,
        })
    }
}

#[derive(Clone)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    partner: partner::PartnerSim,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// `"http://127.0.0.1:PORT"`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> SandboxStats {
        self.shared.stats()
    }

    /// The Partner API simulator, served under `{base_url}/partner`.
    pub fn partner(&self) -> &partner::PartnerSim {
        &self.partner
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults_mut() = faults;
    }

    /// When each `/v1/*` request arrived (time since the sandbox started; the last
    /// 200,000), as the provider would count its clients' rate.
    pub fn request_times(&self) -> Vec<Duration> {
        self.shared.traffic().arrivals(false)
    }

    /// [`SandboxHandle::request_times`] of the polls alone (order status and order list).
    pub fn poll_times(&self) -> Vec<Duration> {
        self.shared.traffic().arrivals(true)
    }

    /// When the last 429 was answered, on the clock of [`SandboxHandle::request_times`].
    pub fn rate_limited_at(&self) -> Option<Duration> {
        self.shared.traffic().rate_limited_at()
    }

    pub fn set_kyc_verified(&self, v: bool) {
        self.shared.world().kyc_verified = v;
    }

    pub fn scenario(&self) -> Scenario {
        self.shared.world().scenario.clone()
    }

    /// Replaces the scenario knobs; `kyc_pending_checks` applies to users seen from now on,
    /// `link_pending_polls` to links made from now on.
    pub fn set_scenario(&self, scenario: Scenario) {
        self.shared.world().scenario = scenario;
    }

    pub fn conversion_rate(&self) -> Decimal {
        self.shared.world().conversion_rate
    }

    /// Moves the price (quotes and orders created from now on). Non-positive rates are
    /// refused.
    pub fn set_conversion_rate(&self, rate: Decimal) -> anyhow::Result<()> {
        anyhow::ensure!(rate > Decimal::ZERO, "conversion rate must be positive");
        self.shared.world().conversion_rate = rate;
        Ok(())
    }

    pub fn callbacks(&self) -> Callbacks {
        self.shared.world().callbacks.clone()
    }

    /// Replaces the callback settings; status changes from now on use them. Not validated
    /// (a URL that does not parse makes every send fail; rates act as clamped to `[0, 1]`).
    pub fn set_callbacks(&self, callbacks: Callbacks) {
        self.shared.world().callbacks = callbacks;
    }

    /// The user has paid on-ramp order `order_id` without a UTR (as
    /// `POST /sandbox/onramp/{order_id}/pay`). Fails for an unknown order, or one that
    /// expired or is past `fiatPending`.
    pub fn pay(&self, order_id: &str) -> anyhow::Result<()> {
        self.shared
            .world()
            .pay(order_id, self.shared.clock.now())
            .map(|_| ())
            .map_err(|err| anyhow::anyhow!("cannot pay order {order_id}: {}", err.message))
    }

    /// Graceful stop of the server task and the callback sender (in-flight requests
    /// finish; queued callbacks are not sent).
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Invalidate every access token (and refresh token too when `include_refresh`), as the
    /// provider does when they lapse: the next calls must log in again.
    pub fn expire_tokens(&self, include_refresh: bool) {
        self.shared.world().expire_tokens(include_refresh);
    }
}
