//! One helper that spawns an isolated stack for an end-to-end test: a fresh database
//! (SQLite file or PostgreSQL database), a private nats-server on a random port, the
//! sandbox provider, a verifying webhook receiver, and the worker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use futures::StreamExt;
use rampd::app::{Worker, install_crypto};
use rampd::config::{Config, EndpointConfig};
use rampd::demo::receiver::Receiver;
use rampd::natsd::NatsServer;
use rampd::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use rampd::storage::{self, orders::StoredOrder};
use rampd::webhooks::WebhookSecret;
use rampd_domain::order::OrderState;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use serde_json::{Value, json};

pub mod hooks;
pub mod verify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Run an async test body once per backend: `both!(name);` expects `async fn name(Backend)`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    };
}

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Stack {
    pub backend: Backend,
    pub tenant: String,
    pub cfg: Config,
    pub db: DatabaseConnection,
    pub nats: NatsServer,
    /// With [`Stack::start_clustered`]: the other nodes of the NATS cluster (`nats` is
    /// node `n0`); the worker and the upstream client know every node.
    pub peers: Vec<NatsServer>,
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub sandbox: SandboxHandle,
    pub receiver: Receiver,
    pub worker: Option<Worker>,
    /// More replicas sharing the same database and NATS.
    pub replicas: Vec<Worker>,
    events: Arc<Mutex<Vec<Value>>>,
    dead_letters: Arc<Mutex<Vec<Value>>>,
    pg_admin: Option<(String, String)>,
    sqlite_dir: Option<std::path::PathBuf>,
}

fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Config for fast, deterministic-enough tests: tight polls and short leases.
pub fn test_config(tenant: &str) -> Config {
    let mut cfg = Config {
        worker_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
        ..Config::default()
    };
    cfg.provider.timeout_ms = 1_000;
    cfg.executor.lease_ms = 3_000;
    cfg.executor.idle_ms = 50;
    cfg.orders.poll_interval_min_ms = 40;
    cfg.orders.poll_interval_max_ms = 80;
    cfg.orders.parked_poll_min_ms = 40;
    cfg.orders.parked_poll_max_ms = 80;
    cfg.orders.backoff_base_ms = 50;
    cfg.orders.backoff_cap_ms = 500;
    cfg.orders.retry_after_cap_ms = 2_000;
    cfg.nats.ack_wait_ms = 5_000;
    cfg.nats.max_deliver = 3;
    cfg.nats.consumer_filter = Some(format!("ramp.cmd.{tenant}.>"));
    // The test receivers listen on loopback.
    cfg.webhooks.allow_networks = vec!["127.0.0.0/8".into(), "::1/128".into()];
    cfg
}

impl Stack {
    pub async fn start(backend: Backend) -> Stack {
        Self::start_with(backend, SandboxConfig::default(), |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        sandbox: SandboxConfig,
        tweak: impl FnOnce(&mut Config),
    ) -> Stack {
        let nats = NatsServer::start().await.expect("nats-server on PATH");
        Self::start_on(backend, sandbox, nats, Vec::new(), tweak).await
    }

    /// A stack on a three-node NATS cluster (whose streams have three replicas unless
    /// `tweak` says otherwise).
    pub async fn start_clustered(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Stack {
        let cluster = rampd::natsd::NatsCluster::start(3)
            .await
            .expect("a three-node NATS cluster");
        let mut nodes = cluster.nodes.into_iter();
        let first = nodes.next().unwrap();
        Self::start_on(
            backend,
            SandboxConfig::default(),
            first,
            nodes.collect(),
            |cfg| {
                cfg.nats.stream_replicas = 3;
                tweak(cfg)
            },
        )
        .await
    }

    /// Every NATS node's client URL, comma-separated.
    pub fn nats_urls(&self) -> String {
        std::iter::once(&self.nats)
            .chain(&self.peers)
            .map(|n| n.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn start_on(
        backend: Backend,
        sandbox: SandboxConfig,
        nats: NatsServer,
        peers: Vec<NatsServer>,
        tweak: impl FnOnce(&mut Config),
    ) -> Stack {
        install_crypto();
        let tenant = "acme".to_string();
        let (database_url, pg_admin, sqlite_dir) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir()
                    .join(format!("rampd-e2e-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).unwrap();
                (
                    format!("sqlite://{}/rampd.db", dir.display()),
                    None,
                    Some(dir),
                )
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("rampd_e2e_{}", uuid::Uuid::new_v4().simple());
                let conn = storage::connect(&admin)
                    .await
                    .expect("PostgreSQL reachable (DATABASE_URL)");
                conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                let (base, _) = admin.rsplit_once('/').unwrap();
                (format!("{base}/{name}"), Some((admin, name)), None)
            }
        };
        let sandbox = Sandbox::start(sandbox, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let secret = WebhookSecret::generate();
        let receiver = Receiver::start(secret.clone()).await.unwrap();
        let mut cfg = test_config(&tenant);
        cfg.database_url = database_url;
        cfg.nats_url = std::iter::once(&nats)
            .chain(&peers)
            .map(|n| n.url.as_str())
            .collect::<Vec<_>>()
            .join(",");
        cfg.provider.base_url = sandbox.base_url();
        cfg.webhooks.endpoints = vec![EndpointConfig {
            id: "e1".into(),
            tenant: tenant.clone(),
            url: receiver.url.clone(),
            secret: SecretString::from(secret.expose_text()),
            events: Vec::new(),
        }];
        tweak(&mut cfg);
        let worker = Worker::start(cfg.clone()).await.expect("worker starts");
        let db = storage::connect(&cfg.database_url).await.unwrap();
        let client = async_nats::connect(rampd::nats::servers(&cfg.nats_url).unwrap())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let events = collect(&client, format!("ramp.evt.{tenant}.>")).await;
        let dead_letters = collect(&client, "ramp.dlq.>".to_string()).await;
        Stack {
            backend,
            tenant,
            cfg,
            db,
            nats,
            peers,
            client,
            js,
            sandbox,
            receiver,
            worker: Some(worker),
            replicas: Vec::new(),
            events,
            dead_letters,
            pg_admin,
            sqlite_dir,
        }
    }

    /// Publish a command body on `ramp.cmd.<tenant>.<command>` with the contract's
    /// `Nats-Msg-Id`, `<tenant>.<msg_id>` (`msg_id` is normally the body's command id).
    pub async fn send_with_id(
        &self,
        command: &str,
        body: &Value,
        msg_id: &str,
        traceparent: Option<&str>,
    ) {
        let trace: Vec<_> = traceparent
            .map(|tp| ("traceparent", tp))
            .into_iter()
            .collect();
        self.send_with_headers(command, body, msg_id, &trace).await
    }

    /// [`Self::send_with_id`] with extra headers (e.g. `traceparent` and `tracestate`).
    pub async fn send_with_headers(
        &self,
        command: &str,
        body: &Value,
        msg_id: &str,
        extra: &[(&str, &str)],
    ) {
        let mut headers = HeaderMap::new();
        let scoped = rampd_domain::command_identity::scoped_msg_id(&self.tenant, msg_id);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, scoped.as_str());
        for (name, value) in extra {
            headers.insert(*name, *value);
        }
        self.js
            .publish_with_headers(
                format!("ramp.cmd.{}.{command}", self.tenant),
                headers,
                body.to_string().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Publish a command as `tenant` with exactly `msg_id` as `Nats-Msg-Id` (none when
    /// `None`), and return the stream's acknowledgement (its `duplicate` flag says whether
    /// JetStream dropped the message as a repeat).
    pub async fn send_raw(
        &self,
        tenant: &str,
        command: &str,
        body: &Value,
        msg_id: Option<&str>,
    ) -> async_nats::jetstream::publish::PublishAck {
        let mut headers = HeaderMap::new();
        if let Some(id) = msg_id {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        }
        self.js
            .publish_with_headers(
                format!("ramp.cmd.{tenant}.{command}"),
                headers,
                body.to_string().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap()
    }

    /// Start collecting the events of another tenant (`ramp.evt.<tenant>.>`); the
    /// stack's own tenant is collected from the start ([`Stack::events`]).
    pub async fn collect_events_of(&self, tenant: &str) -> Arc<Mutex<Vec<Value>>> {
        collect(&self.client, format!("ramp.evt.{tenant}.>")).await
    }

    /// An order of any tenant, by the tenant's order id.
    pub async fn order_of(&self, tenant: &str, order_id: &str) -> Option<StoredOrder> {
        storage::orders::load_by_client_id(&self.db, tenant, order_id)
            .await
            .unwrap()
    }

    pub async fn send(&self, command: &str, body: &Value) {
        let id = body["command_id"].as_str().unwrap_or("no-id").to_string();
        self.send_with_id(command, body, &id, None).await;
    }

    pub async fn create(&self, order_id: &str) {
        self.send(
            "onramp.create",
            &create_body(order_id, &format!("{order_id}-create")),
        )
        .await;
    }

    pub async fn utr(&self, order_id: &str, utr: &str) {
        let body = json!({"command_id": format!("{order_id}-utr-{utr}"), "order_id": order_id, "utr": utr});
        self.send("onramp.utr", &body).await;
    }

    pub async fn create_offramp(&self, order_id: &str) {
        self.send(
            "offramp.create",
            &offramp_body(order_id, &format!("{order_id}-create")),
        )
        .await;
    }

    pub async fn tx_hash(&self, order_id: &str, hash: &str) {
        let body = json!({"command_id": format!("{order_id}-tx-{}", hash.trim()), "order_id": order_id, "tx_hash": hash});
        self.send("offramp.txhash", &body).await;
    }

    /// The kinds of an order's history rows (`order_events`), oldest first.
    pub async fn history(&self, order_id: &str) -> Vec<String> {
        let Some(o) = self.order(order_id).await else {
            return Vec::new();
        };
        use rampd::storage::entities::order_events;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        order_events::Entity::find()
            .filter(order_events::Column::OrderId.eq(o.order.id.to_string()))
            .order_by_asc(order_events::Column::Seq)
            .all(&self.db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect()
    }

    /// Events of one order (by client order id), in arrival order.
    pub fn events_of(&self, order_id: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["order_id"] == order_id)
            .collect()
    }

    pub async fn order(&self, order_id: &str) -> Option<StoredOrder> {
        storage::orders::load_by_client_id(&self.db, &self.tenant, order_id)
            .await
            .unwrap()
    }

    /// Wait until the order exists, in whatever state (panics after [`WAIT`]).
    pub async fn wait_order(&self, order_id: &str) -> StoredOrder {
        let start = Instant::now();
        loop {
            if let Some(o) = self.order(order_id).await {
                return o;
            }
            assert!(
                start.elapsed() <= WAIT,
                "order {order_id} was never taken in"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Wait until the order reaches `state` (panics after [`WAIT`] with what it saw).
    pub async fn wait_state(&self, order_id: &str, state: OrderState) -> StoredOrder {
        let start = Instant::now();
        loop {
            let o = self.order(order_id).await;
            if let Some(o) = &o
                && o.order.state == state
            {
                return o.clone();
            }
            if start.elapsed() > WAIT {
                panic!(
                    "order {order_id} did not reach {state:?}; last seen {:?}",
                    o.map(|o| (o.order.state, o.order.reason))
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Events received on NATS so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    pub fn dead_letters(&self) -> Vec<Value> {
        self.dead_letters.lock().unwrap().clone()
    }

    /// Wait until an event matching `pred` arrived on NATS.
    pub async fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || self.events().into_iter().find(|e| pred(e))).await
    }

    /// Status-change events of one order, in arrival order.
    pub fn states_of(&self, order_id: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["type"] == "order.status_changed" && e["order_id"] == order_id)
            .map(|e| e["state"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn kill_worker(&mut self) {
        if let Some(w) = self.worker.take() {
            w.kill().await;
        }
    }

    /// Kill the worker while the provider holds its create reply (start the stack with
    /// `respond_latency_create_ms`), check the order is still preparing (only its intent
    /// is on record), lift the fault and start a new worker.
    pub async fn kill_during_create(&mut self, order_id: &str) {
        wait_for("create call", || {
            (self.sandbox.stats().create_calls >= 1).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.kill_worker().await;
        self.sandbox.set_faults(rampd::sandbox::Faults::default());
        assert_eq!(
            self.order(order_id).await.unwrap().order.state,
            OrderState::Preparing
        );
        self.start_worker().await;
    }

    pub async fn start_worker(&mut self) {
        let mut cfg = self.cfg.clone();
        cfg.worker_id = format!("test-{}", uuid::Uuid::new_v4().simple());
        self.worker = Some(Worker::start(cfg).await.expect("worker restarts"));
    }

    /// Start one more replica on the same database, NATS consumer and provider.
    pub async fn add_replica(&mut self) {
        self.add_replica_with(|_| {}).await
    }

    /// [`Stack::add_replica`] with its config changed by `tweak` (say, another NATS node).
    pub async fn add_replica_with(&mut self, tweak: impl FnOnce(&mut Config)) {
        let mut cfg = self.cfg.clone();
        cfg.worker_id = format!("replica-{}", uuid::Uuid::new_v4().simple());
        tweak(&mut cfg);
        self.replicas
            .push(Worker::start(cfg).await.expect("replica starts"));
    }

    /// Stop everything and drop the test database.
    pub async fn finish(mut self) {
        for r in self.replicas.drain(..) {
            r.shutdown(Duration::from_secs(5)).await;
        }
        if let Some(w) = self.worker.take() {
            w.shutdown(Duration::from_secs(5)).await;
        }
        self.sandbox.shutdown();
        self.receiver.stop();
        self.db.clone().close().await.ok();
        if let Some((admin, name)) = self.pg_admin.take()
            && let Ok(conn) = storage::connect(&admin).await
        {
            {
                let _ = conn
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
        if let Some(dir) = self.sqlite_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Poll `f` until it returns `Some` (panics after [`WAIT`]).
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn collect(client: &async_nats::Client, subject: String) -> Arc<Mutex<Vec<Value>>> {
    let store: Arc<Mutex<Vec<Value>>> = Arc::default();
    let mut sub = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let s = store.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let mut v: Value = serde_json::from_slice(&msg.payload)
                .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&msg.payload)}));
            if let Some(h) = &msg.headers {
                let hv = |k: &str| h.get(k).map(|v| v.as_str().to_string());
                v["_headers"] = json!({"traceparent": hv("traceparent"), "msg_id": hv("Nats-Msg-Id"), "reason": hv("Rampd-Dead-Letter-Reason")});
            }
            v["_subject"] = json!(msg.subject.as_str());
            s.lock().unwrap().push(v);
        }
    });
    store
}

pub fn create_body(order_id: &str, command_id: &str) -> Value {
    json!({
        "command_id": command_id,
        "order_id": order_id,
        "user": {"email": format!("{order_id}@example.com"), "name": "Asha Rao", "phone": "9876543210", "pan": "ABCDE1234F"},
        "fiat_amount": "1500.00",
        "token": "USDT",
        "chain_id": 137,
        "receiver_address": "0x1111111111111111111111111111111111111111",
        "payment": {"mode": "upi", "upi_id": format!("{order_id}@okaxis")}
    })
}

/// An off-ramp create for 25.5 USDT on Polygon, paid out to a bank account.
pub fn offramp_body(order_id: &str, command_id: &str) -> Value {
    json!({
        "command_id": command_id,
        "order_id": order_id,
        "user": {"email": format!("{order_id}@example.com"), "name": "Asha Rao", "phone": "9876543210", "pan": "ABCDE1234F"},
        "token": "USDT",
        "chain_id": 137,
        "token_amount": "25.5",
        "sender_address": "0x3333333333333333333333333333333333333333",
        "refund_address": "0x4444444444444444444444444444444444444444",
        "bank": {"account_number": "50100012345678", "account_name": "Asha Rao", "ifsc": "HDFC0001234"}
    })
}

/// A `mint.create` of 25 USBC to the namespace `wallet`, at the provider the tenant's
/// configuration chooses.
pub fn mint_body(order_id: &str, wallet: &str) -> Value {
    json!({
        "command_id": format!("{order_id}-create"),
        "order_id": order_id,
        "amount": "25",
        "token": "USBC",
        "wallet_identifier": wallet,
        "wallet_identifier_type": "custom_namespace"
    })
}

/// Add the sandbox's Partner API as provider `partner` (call from a `tweak`, after which
/// `cfg.provider.base_url` is the sandbox's).
pub fn with_partner(cfg: &mut Config) {
    let partner = rampd::config::PartnerProviderConfig {
        base_url: format!("{}/partner", cfg.provider.base_url),
        timeout_ms: cfg.provider.timeout_ms,
        ..Default::default()
    };
    cfg.providers.insert(
        "partner".into(),
        rampd::config::NamedProvider::Partner(partner),
    );
}

/// A well-formed EVM transaction hash, distinct per `n`.
pub fn evm_hash(n: u64) -> String {
    format!("0x{n:064x}")
}
