//! Handing a group commit's outbox rows straight to this process's relay.
//!
//! Without it, every committed event waits for the relay to find it: a wake-up, then a
//! claim (`UPDATE outbox … RETURNING`, the costliest statement per order after the task
//! claim), then the publish. With it, the rows a batch inserts are already leased when
//! they are written (to this worker, with a token of their own, as a claim round would
//! lease them), and once the batch has committed they go to the relay over a channel; the
//! relay publishes them and marks them published as it would claimed rows. No claim is
//! spent on them, and no scan is woken for them.
//!
//! Nothing is lost if the relay never gets to them (the process stops or dies first, or
//! the relay has stopped): the rows are in the database, and when their lease runs out
//! any relay's scan claims them like every other unpublished row. A publish may then
//! repeat; the stream's duplicate window drops the repeat by its `Nats-Msg-Id`, the
//! outbox id, as for any publish repeated after a crash.
//!
//! Rows that are not handed off (a batch written again with savepoints, a write alone,
//! or no relay in this process) are inserted unleased, and the relay is woken to scan.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::entities::outbox;

/// The relay's end of the handoff: batches of committed rows, in commit order.
pub type Handed = mpsc::UnboundedReceiver<Vec<outbox::Model>>;

/// The lease the rows of one batch are inserted under.
#[derive(Debug, Clone)]
pub struct OutboxLease {
    pub token: String,
    pub until: i64,
}

impl OutboxLease {
    /// `row`, leased under this lease.
    pub fn stamp(&self, mut row: outbox::Model) -> outbox::Model {
        row.lease_owner = Some(self.token.clone());
        row.lease_until = Some(self.until);
        row
    }
}

/// Where the group commit sends the outbox rows it committed. Cheap to clone.
#[derive(Clone, Default)]
pub struct Handoff {
    relay: Option<Relay>,
    /// Woken when rows were committed unleased, so that the relay scans for them.
    wake: Arc<Notify>,
}

#[derive(Clone)]
struct Relay {
    owner: String,
    lease_ms: i64,
    rows: mpsc::UnboundedSender<Vec<outbox::Model>>,
}

impl Handoff {
    /// Rows go to the relay that reads the returned end, leased to `owner` (this worker's
    /// id) for `lease_ms`; `wake` is the relay's wake-up for rows that were not handed.
    pub fn to_relay(owner: &str, lease_ms: i64, wake: Arc<Notify>) -> (Self, Handed) {
        let (rows, handed) = mpsc::unbounded_channel();
        let relay = Relay {
            owner: owner.to_string(),
            lease_ms,
            rows,
        };
        (
            Handoff {
                relay: Some(relay),
                wake,
            },
            handed,
        )
    }

    /// No relay to hand to: every row is inserted unleased and `wake` is woken.
    pub fn wake_only(wake: Arc<Notify>) -> Self {
        Handoff { relay: None, wake }
    }

    /// The lease for the rows of a batch written now, when there is a relay to hand them to.
    pub fn lease(&self, now_ms: i64) -> Option<OutboxLease> {
        self.relay.as_ref().map(|r| OutboxLease {
            token: format!("{}/{}", r.owner, Uuid::now_v7().simple()),
            until: now_ms + r.lease_ms,
        })
    }

    /// After a commit: hand `rows` to the relay when they were written under `lease`;
    /// otherwise (written unleased, or the relay has stopped) wake it to scan. A row
    /// leased to a stopped relay waits for its lease to run out.
    pub fn hand(&self, rows: Vec<outbox::Model>, lease: Option<&OutboxLease>) {
        if rows.is_empty() {
            return;
        }
        if let (Some(r), Some(lease)) = (&self.relay, lease) {
            let rows = rows.into_iter().map(|row| lease.stamp(row)).collect();
            if r.rows.send(rows).is_ok() {
                return;
            }
        }
        self.wake.notify_one();
    }

    /// After a commit: rows were written unleased; wake the relay to scan for them.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn row(id: &str) -> outbox::Model {
        crate::storage::plan::outbox_row(id.into(), "s".into(), "{}".into(), None, None, 1)
    }

    #[test]
    fn leases_name_the_owner_and_differ_per_batch() {
        let (h, _rx) = Handoff::to_relay("w1", 30_000, Arc::default());
        let (a, b) = (h.lease(1_000).unwrap(), h.lease(1_000).unwrap());
        assert!(a.token.starts_with("w1/") && a.token != b.token);
        assert_eq!(a.until, 31_000);
        let stamped = a.stamp(row("x"));
        assert_eq!(stamped.lease_owner.as_deref(), Some(a.token.as_str()));
        assert_eq!(stamped.lease_until, Some(31_000));
        assert!(Handoff::wake_only(Arc::default()).lease(1_000).is_none());
    }

    #[test]
    fn rows_reach_the_relay_in_order_and_a_stopped_relay_means_a_scan() {
        let wake = Arc::new(Notify::new());
        let (h, mut rx) = Handoff::to_relay("w1", 30_000, wake.clone());
        let lease = h.lease(1_000);
        h.hand(vec![row("a"), row("b")], lease.as_ref());
        h.hand(Vec::new(), lease.as_ref());
        h.hand(vec![row("c")], lease.as_ref());
        let ids = |v: Vec<outbox::Model>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(rx.try_recv().unwrap()), ["a", "b"]);
        assert_eq!(ids(rx.try_recv().unwrap()), ["c"]);
        assert!(rx.try_recv().is_err(), "an empty batch is not sent");
        // `notify_one` stores a permit that the first poll of `notified` takes.
        assert!(
            wake.notified().now_or_never().is_none(),
            "handed rows wake no scan"
        );
        h.hand(vec![row("unleased")], None);
        assert!(
            wake.notified().now_or_never().is_some(),
            "unleased rows mean a scan"
        );
        drop(rx);
        h.hand(vec![row("d")], lease.as_ref());
        assert!(
            wake.notified().now_or_never().is_some(),
            "a stopped relay means a scan"
        );
    }
}
