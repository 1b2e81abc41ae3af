//! What every loop of a running worker shares: connections, configuration and wake-ups.

use std::sync::Arc;

use async_nats::jetstream;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::config::Config;
use crate::providers::registry::Providers;
use crate::storage::group_commit::GroupCommit;
use crate::webhooks::Endpoints;

/// Wake-ups between the loops, so new work does not wait for the idle interval.
#[derive(Default)]
pub struct Wakers {
    pub tasks: Notify,
    /// Shared with the group commit, which wakes the relay for the rows it did not hand
    /// to it (`storage::handoff`).
    pub outbox: Arc<Notify>,
    pub webhooks: Notify,
}

/// What every loop of a worker shares.
#[derive(Clone)]
pub struct Shared {
    pub db: DatabaseConnection,
    /// The batching writer of order decisions (see [`crate::storage::group_commit`]).
    pub commits: GroupCommit,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub endpoints: Endpoints,
    /// Every configured provider (`providers::registry`).
    pub providers: Providers,
    pub cfg: Arc<Config>,
    pub wake: Arc<Wakers>,
    /// How the NATS streams found at start differ from the configured settings
    /// (`nats::Topology::drift`), for `/readyz`.
    pub stream_drift: Arc<Vec<String>>,
}

impl Shared {
    /// A decision committed through the group commit queued events: wake the webhook
    /// sender. (The group commit hands the events to the relay, or wakes it, itself.)
    pub fn wake_webhooks(&self) {
        self.wake.webhooks.notify_one();
    }

    pub fn wake_all(&self) {
        self.wake.tasks.notify_one();
        self.wake.outbox.notify_one();
        self.wake.webhooks.notify_one();
    }
}
