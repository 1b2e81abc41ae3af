//! This replica's share of a provider's request budget ([`rampd_domain::budget::Budget`]
//! on a monotonic clock).
//!
//! The total across replicas stays within `provider.requests_per_sec` by division: each
//! replica spends at most `requests_per_sec / provider.replicas`. That needs no
//! coordination at run time (no shared counter on the hot path, nothing to fail), at the
//! price of the operator keeping `replicas` in step with the deployment (the Kubernetes
//! example sets both from one value); a replica count set too high only under-spends.
//!
//! Every polling request to the provider (status, order list, link status: what grows
//! with the number of live orders) waits for a token ([`RequestBudget::acquire`]); the
//! requests a user's own action causes spend none but wait out a 429's pause
//! ([`RequestBudget::await_pause`]). A request that would wait longer than a second is
//! not made: it fails as `OverBudget`, which the order machine takes as "the same step
//! later", with no record and no failure counted (nothing was sent). Which orders get the tokens when there
//! are too few is decided before that: the executor claims only as many due tasks as
//! there are tokens ([`RequestBudget::available`]), most urgent first (`lease::TASKS`). A
//! 429 from the provider slows this replica's whole budget ([`RequestBudget::rate_limited`]),
//! not just the order that got it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampd_domain::budget::Budget;

#[derive(Clone, Default)]
pub struct RequestBudget {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    origin: Instant,
    bucket: Mutex<Budget>,
}

impl std::fmt::Debug for RequestBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("RequestBudget(unlimited)"),
            Some(i) => write!(f, "RequestBudget({}/s)", i.lock().current_rate()),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

impl RequestBudget {
    /// No budget: every request goes at once.
    pub fn unlimited() -> Self {
        RequestBudget::default()
    }

    /// This replica's share of `total_per_sec` shared by `replicas` (0 = no budget).
    pub fn share(total_per_sec: f64, replicas: u32) -> Self {
        if total_per_sec <= 0.0 {
            return RequestBudget::unlimited();
        }
        let share = total_per_sec / f64::from(replicas.max(1));
        RequestBudget {
            inner: Some(Arc::new(Inner {
                origin: Instant::now(),
                bucket: Mutex::new(Budget::new(share, Duration::ZERO)),
            })),
        }
    }

    /// Wait for a token, at most `patience`. When the budget cannot give one in that
    /// time (a 429's pause, or more callers than tokens), returns how long it would have
    /// been: the request is not made, and the caller reschedules its order as for a 429,
    /// so that no step waits past its lease.
    pub async fn acquire(&self, patience: Duration) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let give_up = inner.now() + patience;
        loop {
            let now = inner.now();
            let wait = match inner.lock().take(now) {
                Ok(()) => return Ok(()),
                Err(wait) => wait,
            };
            if now + wait > give_up {
                return Err(wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Wait out a 429's pause, at most `patience` (for requests that spend no token but
    /// must not hit a provider that asked everyone to slow down); `Err` as for
    /// [`RequestBudget::acquire`].
    pub async fn await_pause(&self, patience: Duration) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let paused = inner.lock().paused_for(inner.now());
        match paused {
            None => Ok(()),
            Some(wait) if wait > patience => Err(wait),
            Some(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
        }
    }

    /// Whether there is a budget at all.
    pub fn is_limited(&self) -> bool {
        self.inner.is_some()
    }

    /// Requests that can be made within `horizon`, waiting at most that (`u64::MAX`
    /// without a budget).
    pub fn available(&self, horizon: Duration) -> u64 {
        match &self.inner {
            None => u64::MAX,
            Some(inner) => inner.lock().available(inner.now(), horizon),
        }
    }

    /// The provider answered 429: pause and slow every request of this replica.
    pub fn rate_limited(&self, retry_after: Option<Duration>) {
        if let Some(inner) = &self.inner {
            let mut bucket = inner.lock();
            bucket.rate_limited(inner.now(), retry_after);
            tracing::warn!(
                rate_per_sec = bucket.current_rate(),
                retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
                "provider rate-limited us; every order's requests slow down"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn acquire_waits_for_the_share_of_this_replica() {
        // 40/s over 2 replicas: 20/s here, paced at 16/s.
        let b = RequestBudget::share(40.0, 2);
        assert_eq!(b.available(Duration::ZERO), 1);
        assert_eq!(b.available(Duration::from_millis(500)), 9);
        let start = tokio::time::Instant::now();
        for _ in 0..20 {
            b.acquire(Duration::from_secs(1)).await.unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(990), "{took:?}");
        assert_eq!(
            RequestBudget::unlimited().available(Duration::ZERO),
            u64::MAX
        );
        assert_eq!(
            RequestBudget::share(0.0, 3).available(Duration::ZERO),
            u64::MAX
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_spend_no_token_still_wait_out_a_pause() {
        let b = RequestBudget::share(100.0, 1);
        b.await_pause(Duration::ZERO).await.unwrap();
        b.rate_limited(Some(Duration::from_millis(500)));
        assert!(b.await_pause(Duration::from_millis(100)).await.is_err());
        let start = tokio::time::Instant::now();
        b.await_pause(Duration::from_secs(1)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_stops_every_caller_until_retry_after() {
        let b = RequestBudget::share(100.0, 1);
        b.rate_limited(Some(Duration::from_secs(2)));
        assert_eq!(b.available(Duration::from_secs(1)), 0);
        // Not worth waiting for within a second: refused at once, with the time to wait.
        let start = tokio::time::Instant::now();
        let wait = b.acquire(Duration::from_secs(1)).await.unwrap_err();
        assert!(wait > Duration::from_secs(1), "{wait:?}");
        assert_eq!(start.elapsed(), Duration::ZERO);
        b.acquire(Duration::from_secs(3)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(2));
    }
}
