//! The webhook sender: claims due deliveries with a lease, sends each once, records the
//! outcome. The body and `webhook-id` were fixed when the delivery row was written; only
//! the timestamp and the signatures (one `v1,` per live secret) are made per attempt.
//!
//! Concurrency is bounded twice: overall (`webhooks.concurrency`, the shared pool) and per
//! endpoint (`webhooks.concurrency_per_endpoint`, per replica). A claim takes only
//! deliveries within their endpoint's remaining room ([`Sender::claim_due`]), so a slow
//! endpoint holds at most its own share of the pool and never starves the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rampd_domain::webhooks::health::after_attempt;
use rampd_domain::webhooks::{AttemptResult, RetryPolicy, Verdict, judge};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_util::sync::CancellationToken;

use super::endpoints::{self, Endpoint};
use super::http::{Outgoing, WebhookHttp};
use super::outcome::{self, Attempt, SKIPPED};
use super::signature_header;
use crate::pool::{self, LeasedWork};
use crate::shared::{Shared, Wakers};
use crate::storage::entities::webhook_deliveries as deliveries;
use crate::storage::lease::{DELIVERIES, claim, claimable, released, take};
use crate::telemetry::{self, spans};
use tracing::Instrument;

/// A claimed delivery and its endpoint as it was read for this claim (`None`: removed).
pub struct Claimed {
    delivery: deliveries::Model,
    endpoint: Arc<Option<Endpoint>>,
}

impl LeasedWork for Sender {
    type Item = Claimed;

    /// Claim due deliveries, then read each of their endpoints (with its live secrets)
    /// once for all of them, not once per delivery.
    async fn claim(&self, room: u64) -> Result<Vec<Claimed>, DbErr> {
        let rows = self.claim_due(room).await?;
        let now = Utc::now().timestamp_millis();
        let vault = self.shared.endpoints.vault();
        let mut loaded: HashMap<String, Arc<Option<Endpoint>>> = HashMap::new();
        let mut claimed = Vec::with_capacity(rows.len());
        for delivery in rows {
            let endpoint = match loaded.get(&delivery.endpoint_id) {
                Some(e) => e.clone(),
                None => {
                    let e = endpoints::load(&self.shared.db, vault, &delivery.endpoint_id, now);
                    let e = Arc::new(e.await?);
                    loaded.insert(delivery.endpoint_id.clone(), e.clone());
                    e
                }
            };
            claimed.push(Claimed { delivery, endpoint });
        }
        Ok(claimed)
    }

    async fn process(
        &self,
        Claimed {
            delivery: d,
            endpoint,
        }: Claimed,
    ) {
        let slot = Slot {
            inflight: self.inflight.clone(),
            endpoint: d.endpoint_id.clone(),
            per: self.per_endpoint(),
            wake: self.shared.wake.clone(),
        };
        let span = spans::webhook(
            &d.id,
            &d.order_id,
            &d.endpoint_id,
            d.attempt + 1,
            &d.event_type,
            d.trace_ctx.as_deref(),
            &d.url,
        );
        if let Err(e) = self.attempt(d, &endpoint, slot).instrument(span).await {
            tracing::warn!(error = %e, "recording a webhook attempt failed");
        }
    }

    fn due_at(c: &Claimed) -> i64 {
        c.delivery.run_at
    }
}

#[derive(Clone)]
pub struct Sender {
    shared: Shared,
    http: WebhookHttp,
    policy: Arc<RetryPolicy>,
    /// Deliveries in flight per endpoint on this replica.
    inflight: Arc<Mutex<HashMap<String, usize>>>,
    /// What the last claims that left out endpoints at their bound found.
    searches: Arc<Mutex<Searches>>,
}

/// The last claim that left out the endpoints at their bound and found nothing: which
/// endpoints it left out (sorted) and when.
///
/// Such a claim reads past every due delivery of the endpoints it leaves out: with one
/// endpoint's backlog of thousands, every wake-up and every freed slot paid for a scan of
/// it (14 ms a claim at 10,000 orders, most of PostgreSQL's time). The same search is
/// therefore not repeated within `executor.idle_ms`: a delivery to another endpoint waits
/// at most that long while some endpoint is saturated (or less: claims that leave nothing
/// out take due deliveries of any endpoint in order).
#[derive(Debug, Default)]
struct Searches {
    futile: Option<(Vec<String>, Instant)>,
}

impl Searches {
    /// Whether a claim leaving out `full` may find something: always when it leaves
    /// nothing out; otherwise unless the same claim found nothing less than `idle` ago.
    fn worth(&self, full: &[String], now: Instant, idle: Duration) -> bool {
        full.is_empty()
            || !self
                .futile
                .as_ref()
                .is_some_and(|(left_out, at)| left_out == full && now.duration_since(*at) < idle)
    }

    /// Record that a claim leaving out `full` found `found` deliveries.
    fn record(&mut self, full: Vec<String>, found: usize, now: Instant) {
        if !full.is_empty() {
            self.futile = (found == 0).then_some((full, now));
        }
    }
}

/// One in-flight delivery's place in its endpoint's bound; freed on drop.
///
/// Freeing a place of an endpoint that was at its bound wakes the sender: the last claim
/// may have come back empty only because of that bound, and the sender otherwise waits
/// for new deliveries or the idle interval (with one saturated endpoint and
/// `executor.idle_ms = 500`, deliveries went out about one bound's worth per interval).
struct Slot {
    inflight: Arc<Mutex<HashMap<String, usize>>>,
    endpoint: String,
    per: usize,
    wake: Arc<Wakers>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.endpoint) {
            let was_full = *n >= self.per;
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.endpoint);
            }
            if was_full {
                self.wake.webhooks.notify_one();
            }
        }
    }
}

impl Sender {
    pub fn new(shared: Shared) -> anyhow::Result<Self> {
        let w = &shared.cfg.webhooks;
        let http = WebhookHttp::new(
            w.address_policy()?,
            Duration::from_millis(w.timeout_ms),
            w.response_body_limit_bytes,
        )?;
        let policy = Arc::new(w.retry_policy());
        Ok(Sender {
            shared,
            http,
            policy,
            inflight: Arc::default(),
            searches: Arc::default(),
        })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = self.shared.cfg.clone();
        let wake = self.shared.wake.clone();
        let idle = Duration::from_millis(cfg.executor.idle_ms);
        let concurrency = cfg.webhooks.concurrency;
        pool::run(
            self,
            "webhooks",
            concurrency,
            idle,
            &wake.webhooks,
            shutdown,
        )
        .await;
    }

    /// See [`Searches::worth`].
    fn worth_searching(&self, full: &[String]) -> bool {
        let idle = Duration::from_millis(self.shared.cfg.executor.idle_ms);
        let searches = self.searches.lock().unwrap_or_else(|p| p.into_inner());
        searches.worth(full, Instant::now(), idle)
    }

    fn searched(&self, full: Vec<String>, found: usize) {
        let mut searches = self.searches.lock().unwrap_or_else(|p| p.into_inner());
        searches.record(full, found, Instant::now());
    }

    fn per_endpoint(&self) -> usize {
        self.shared.cfg.webhooks.concurrency_per_endpoint.max(1)
    }

    /// Claim due deliveries within each endpoint's remaining room.
    ///
    /// When every endpoint has room for the whole claim (or for as many as the claim is
    /// cut to), any due deliveries will do: they are claimed at once, in one statement
    /// (`lease::claim`). Only when that claim came back full and there is room left, so
    /// that more due deliveries may wait for endpoints with room, are candidates read
    /// first and claimed within each endpoint's remaining room. A claim that must leave
    /// out endpoints at their bound is skipped while the same one found nothing less than
    /// `executor.idle_ms` ago ([`Searches`]).
    async fn claim_due(&self, room: u64) -> Result<Vec<deliveries::Model>, DbErr> {
        let now = Utc::now().timestamp_millis();
        let lease = self.shared.cfg.webhooks.timeout_ms as i64 + 15_000;
        let per = self.per_endpoint();
        let mut used: HashMap<String, usize> = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let busiest = used.values().filter(|n| **n < per).max().copied();
        let direct = room.min((per - busiest.unwrap_or(0)) as u64);
        let owner = &self.shared.cfg.worker_id;
        let full = full_endpoints(&used, per);
        if !self.worth_searching(&full) {
            return Ok(Vec::new());
        }
        let mut rows = claim::<deliveries::Entity, _>(
            &self.shared.db,
            &DELIVERIES,
            with_room(&full),
            owner,
            now,
            lease,
            direct,
        )
        .await?;
        self.searched(full, rows.len());
        for r in &rows {
            *used.entry(r.endpoint_id.clone()).or_default() += 1;
        }
        let left = room - rows.len() as u64;
        let full = full_endpoints(&used, per);
        if rows.len() as u64 == direct && left > 0 && self.worth_searching(&full) {
            let chosen = self
                .claim_chosen(left, &mut used, with_room(&full), now, lease)
                .await?;
            self.searched(full, chosen.len());
            rows.extend(chosen);
        }
        let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for r in &rows {
            *m.entry(r.endpoint_id.clone()).or_default() += 1;
        }
        Ok(rows)
    }

    /// Read up to `room` × 4 due candidates (`due`: the endpoints not at their bound),
    /// choose those within each endpoint's remaining room (`used`: in flight), and claim
    /// exactly those with the guarded lease update.
    async fn claim_chosen(
        &self,
        room: u64,
        used: &mut HashMap<String, usize>,
        due: Condition,
        now: i64,
        lease: i64,
    ) -> Result<Vec<deliveries::Model>, DbErr> {
        let per = self.per_endpoint();
        let candidates: Vec<(String, String)> = deliveries::Entity::find()
            .select_only()
            .column(deliveries::Column::Id)
            .column(deliveries::Column::EndpointId)
            .filter(due.clone().add(claimable(&DELIVERIES, now)))
            .order_by_asc(deliveries::Column::RunAt)
            .limit(room.min(256) * 4)
            .into_tuple()
            .all(&self.shared.db)
            .await?;
        let mut chosen = Vec::new();
        for (id, endpoint) in candidates {
            let n = used.entry(endpoint).or_default();
            if *n < per && (chosen.len() as u64) < room {
                *n += 1;
                chosen.push(id);
            }
        }
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        // The candidates may be stale by now (another replica may have attempted and
        // rescheduled one): `take` re-checks pending, due and free in its UPDATE.
        take::<deliveries::Entity, _>(
            &self.shared.db,
            &DELIVERIES,
            chosen,
            due,
            &self.shared.cfg.worker_id,
            now,
            lease,
        )
        .await
    }

    /// Send `d` once and record the outcome. `slot` (the delivery's place in its
    /// endpoint's bound) is freed as soon as the request is over: the bound is on requests
    /// to the endpoint, not on the wait for the outcome's group commit.
    async fn attempt(
        &self,
        d: deliveries::Model,
        endpoint: &Option<Endpoint>,
        slot: Slot,
    ) -> Result<(), DbErr> {
        let db = &self.shared.db;
        let started_at = Utc::now().timestamp_millis();
        let Some(endpoint) = endpoint.as_ref().filter(|e| e.enabled) else {
            // Disabled or removed: keep it for a replay when the endpoint is enabled.
            released(deliveries::Entity::update_many(), &DELIVERIES)
                .col_expr(deliveries::Column::Status, Expr::value(SKIPPED))
                .filter(deliveries::Column::Id.eq(d.id.clone()))
                .filter(deliveries::Column::LeaseOwner.eq(d.lease_owner.clone()))
                .exec(db)
                .await?;
            return Ok(());
        };
        let ts = Utc::now().timestamp();
        let signature = signature_header(&endpoint.secrets, &d.id, ts, d.body.as_bytes());
        let sent = self
            .http
            .send(&Outgoing {
                url: &endpoint.url,
                webhook_id: &d.id,
                timestamp: ts,
                signature: &signature,
                body: &d.body,
                trace_ctx: telemetry::outgoing_trace_ctx(d.trace_ctx.as_deref()).as_deref(),
            })
            .await;
        drop(slot);
        let number = d.attempt + 1;
        let verdict = judge(
            sent.result,
            number as u32,
            sent.retry_after,
            &self.policy,
            rand::random(),
        );
        let window = self.shared.cfg.webhooks.disable_after_secs as i64 * 1000;
        let health = after_attempt(
            sent.result.is_success(),
            endpoint.failing_since,
            Utc::now().timestamp_millis(),
            window,
        );
        tracing::debug!(
            webhook.id = %d.id,
            endpoint = %d.endpoint_id,
            attempt = number,
            result = ?sent.result,
            latency_ms = sent.latency_ms,
            "webhook attempt"
        );
        telemetry::meters::webhook_request(sent.result, sent.latency_ms);
        let verdict_name = match verdict {
            Verdict::Delivered => "delivered",
            Verdict::Retry(_) => "retry",
            Verdict::Dead => "dead",
            Verdict::EndpointGone => "gone",
        };
        telemetry::meters::webhook_attempt(verdict_name);
        tracing::Span::current().record("rampd.outcome", verdict_name);
        if let rampd_domain::webhooks::AttemptResult::Response { status } = sent.result {
            tracing::Span::current().record("http.response.status_code", status);
        }
        let recorded = outcome::record_grouped(
            &self.shared.commits,
            &Attempt {
                delivery: &d,
                number,
                started_at,
                sent: &sent,
                verdict,
                health,
                failing_since: endpoint.failing_since,
            },
        )
        .await?;
        if recorded.events > 0 {
            self.shared.wake.outbox.notify_one();
        }
        // Once committed (with the lease still ours: the dead-letter event was written).
        if verdict == Verdict::Dead && recorded.events > 0 {
            let last = match sent.result {
                AttemptResult::Response { status } => format!("HTTP {status}"),
                AttemptResult::Failed(kind) => kind.as_str().to_string(),
            };
            telemetry::warnings::webhook_dead_lettered(&delivery_ids(&d), number, &last);
        }
        if let Some(reason) = recorded.disabled {
            telemetry::warnings::endpoint_disabled(&delivery_ids(&d), reason.as_str());
        }
        Ok(())
    }
}

/// The endpoints with `per` or more deliveries in flight (`used`), sorted.
fn full_endpoints(used: &HashMap<String, usize>, per: usize) -> Vec<String> {
    let mut full: Vec<String> = used
        .iter()
        .filter(|(_, n)| **n >= per)
        .map(|(k, _)| k.clone())
        .collect();
    full.sort_unstable();
    full
}

/// Deliveries to any endpoint but the `full` ones.
fn with_room(full: &[String]) -> Condition {
    match full.is_empty() {
        true => Condition::all(),
        false => Condition::all().add(deliveries::Column::EndpointId.is_not_in(full.to_vec())),
    }
}

/// The ids of `d` for its WARN lines.
pub(crate) fn delivery_ids(d: &deliveries::Model) -> telemetry::warnings::DeliveryIds<'_> {
    telemetry::warnings::DeliveryIds {
        delivery_id: &d.id,
        order_id: &d.order_id,
        tenant: &d.tenant,
        endpoint_id: &d.endpoint_id,
        trace: d.trace_ctx.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A claim that left out saturated endpoints and found nothing is not repeated for the
    /// same endpoints within the idle interval; any other claim is.
    #[test]
    fn a_futile_search_waits_out_the_idle_interval() {
        let idle = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut s = Searches::default();
        assert!(s.worth(&set(&["a"]), t0, idle));
        s.record(set(&["a"]), 0, t0);
        assert!(!s.worth(&set(&["a"]), t0 + idle / 2, idle));
        assert!(
            s.worth(&set(&["a"]), t0 + idle, idle),
            "due again after idle"
        );
        assert!(
            s.worth(&set(&["a", "b"]), t0, idle),
            "other endpoints left out"
        );
        assert!(s.worth(&[], t0, idle), "a claim leaving nothing out");

        // A claim leaving nothing out records nothing; one that found deliveries clears.
        s.record(Vec::new(), 0, t0);
        assert!(!s.worth(&set(&["a"]), t0, idle));
        s.record(set(&["a"]), 3, t0);
        assert!(s.worth(&set(&["a"]), t0, idle));
    }

    /// Freeing a place of an endpoint at its bound wakes the sender; freeing one below
    /// the bound does not.
    #[test]
    fn a_slot_freed_at_the_bound_wakes_the_sender() {
        use futures::FutureExt;
        let wake = Arc::new(Wakers::default());
        let inflight = Arc::new(Mutex::new(HashMap::from([("a".to_owned(), 2)])));
        let slot = || Slot {
            inflight: inflight.clone(),
            endpoint: "a".into(),
            per: 2,
            wake: wake.clone(),
        };
        drop(slot());
        assert!(
            wake.webhooks.notified().now_or_never().is_some(),
            "at the bound"
        );
        drop(slot());
        assert!(
            wake.webhooks.notified().now_or_never().is_none(),
            "below it"
        );
        assert!(inflight.lock().unwrap().is_empty());
    }

    #[test]
    fn full_endpoints_are_those_at_the_bound_sorted() {
        let used = HashMap::from([
            ("b".to_owned(), 2),
            ("a".to_owned(), 3),
            ("c".to_owned(), 1),
        ]);
        assert_eq!(full_endpoints(&used, 2), set(&["a", "b"]));
        assert!(full_endpoints(&used, 4).is_empty());
    }
}
