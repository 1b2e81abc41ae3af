//! rampd: the imperative shell around `rampd-domain`.
//!
//! - [`intake`]: JetStream command consumer → one transaction per command.
//! - [`executor`]: leased tasks → provider calls → one transaction per outcome.
//! - [`pool`]: the claim-and-run loop the executor and the webhook sender share.
//! - [`relay`]: outbox → NATS events.
//! - [`webhooks`]: signed deliveries to tenant endpoints.
//! - [`retention`]: deletes finished work (never `order_events`) past its retention.
//! - [`providers`]: the provider connectors; [`sandbox`]: the provider simulator (the
//!   `rampd-sandbox` crate, re-exported).
//! - [`storage`]: schema entities, the decision write path, leased claims.
//! - [`admin`]: metrics and health endpoints, operator commands; [`telemetry`]: logs,
//!   traces, metrics.
//! - [`app`]: wiring; [`demo`]: the end-to-end demo; [`natsd`]: a private nats-server.

pub mod admin;
pub mod app;
pub mod bench;
pub mod callbacks;
pub mod config;
pub mod demo;
pub mod executor;
pub mod http_port;
pub mod intake;
pub mod nats;
pub mod natsd;
pub mod pool;
pub mod providers;
pub mod relay;
pub mod retention;
pub use rampd_sandbox as sandbox;
pub mod shared;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
