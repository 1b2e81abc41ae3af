//! Durable schedule arithmetic.
//!
//! Nothing here sleeps or keeps retry state in memory: the shell stores the attempt count
//! and `run_at` in the database and asks these functions for the next delay. Jitter is an
//! input in `[0, 1)` so results are reproducible in tests.

use std::time::Duration;

/// How often a live provider order is polled, and how errors back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// Lower bound of the normal status-poll interval (provider guidance: 10 s).
    pub interval_min: Duration,
    /// Upper bound of the normal status-poll interval (provider guidance: 15 s).
    pub interval_max: Duration,
    /// Shortest check of an order parked for the user's payment (no UTR or deposit hash
    /// yet). The user's payment reference, a provider callback or an operator wakes the
    /// order at once, so these checks only catch what the provider decides on its own
    /// (expiry, cancellation); they need not be frequent.
    pub parked_min: Duration,
    /// Longest check interval of a parked order: the interval grows with the time waited
    /// ([`parked_delay`]) up to this.
    pub parked_max: Duration,
    /// First delay after a failed call.
    pub backoff_base: Duration,
    /// Largest delay after repeated failures.
    pub backoff_cap: Duration,
    /// Largest `Retry-After` we honour; a longer one is clamped so an order is never
    /// parked for hours by one header.
    pub retry_after_cap: Duration,
    /// Consecutive failures after which the order is flagged for a person to look at.
    /// Polling still goes on.
    pub attention_after_errors: u32,
    /// Consecutive failed or inconclusive lookups of an interrupted create or submission
    /// after which the order is flagged. Lookups go on; the call is never repeated blind.
    pub attention_after_inconclusive_lookups: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            interval_min: Duration::from_secs(10),
            interval_max: Duration::from_secs(15),
            parked_min: Duration::from_secs(30),
            parked_max: Duration::from_secs(600),
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(300),
            retry_after_cap: Duration::from_secs(600),
            attention_after_errors: 20,
            attention_after_inconclusive_lookups: 5,
        }
    }
}

/// Clamp jitter to `[0, 1]` so a caller bug cannot produce a negative or huge delay.
fn unit(jitter: f64) -> f64 {
    if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    }
}

/// The next regular poll: uniformly inside `[interval_min, interval_max]`.
pub fn poll_delay(policy: &PollPolicy, jitter: f64) -> Duration {
    let (lo, hi) = ordered(policy.interval_min, policy.interval_max);
    lo + (hi - lo).mul_f64(unit(jitter))
}

/// The next check of an order parked for the user's payment, `waited` after it was
/// created: a quarter of the time waited so far, within `[parked_min, parked_max]`, so a
/// parked order is checked ever more slowly (30 s, 30 s, … 2.5 min after 10 min, 10 min
/// after 40 min with the defaults). Jitter takes up to a tenth off, so orders created
/// together spread out; the result never exceeds `parked_max`.
pub fn parked_delay(policy: &PollPolicy, waited: Duration, jitter: f64) -> Duration {
    let (lo, hi) = ordered(policy.parked_min, policy.parked_max);
    let base = (waited / 4).clamp(lo, hi);
    base - base.mul_f64(0.1 * unit(jitter))
}

/// Delay after the `failures`-th consecutive failure (1-based): exponential from
/// `backoff_base`, doubled each time, capped at `backoff_cap`, with "equal jitter" (half of
/// the delay fixed, half random) so a fleet of orders that failed together spreads out.
pub fn backoff_delay(policy: &PollPolicy, failures: u32, jitter: f64) -> Duration {
    capped_exponential(policy.backoff_base, policy.backoff_cap, failures, jitter)
}

/// The `n`-th (1-based) delay of a doubling schedule: `base`, `2·base`, `4·base`, …,
/// capped at `cap`, with "equal jitter" (half fixed, half random). Used for retries after
/// failures and for re-checks of something the user must finish (KYC).
pub fn capped_exponential(base: Duration, cap: Duration, n: u32, jitter: f64) -> Duration {
    let exp = n.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(cap);
    let half = raw / 2;
    half + half.mul_f64(unit(jitter))
}

/// Delay after a failure that may carry a provider `Retry-After`: never sooner than the
/// provider asked (up to `retry_after_cap`), never sooner than our own backoff.
pub fn retry_delay(
    policy: &PollPolicy,
    failures: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let ours = backoff_delay(policy, failures, jitter);
    match retry_after {
        Some(ra) => ours.max(ra.min(policy.retry_after_cap)),
        None => ours,
    }
}

fn ordered(a: Duration, b: Duration) -> (Duration, Duration) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Convert a std duration into a chrono one (saturating at ~292 years).
pub fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn poll_delay_spans_the_interval() {
        let p = PollPolicy::default();
        assert_eq!(poll_delay(&p, 0.0), Duration::from_secs(10));
        assert_eq!(poll_delay(&p, 1.0), Duration::from_secs(15));
        assert_eq!(poll_delay(&p, 0.5), Duration::from_millis(12_500));
        assert_eq!(poll_delay(&p, f64::NAN), Duration::from_secs(10));
        assert_eq!(poll_delay(&p, -3.0), Duration::from_secs(10));
    }

    #[test]
    fn parked_checks_slow_down_with_the_wait() {
        let p = PollPolicy::default();
        let at = |mins: u64, jitter| parked_delay(&p, Duration::from_secs(mins * 60), jitter);
        assert_eq!(at(0, 0.0), Duration::from_secs(30));
        assert_eq!(at(1, 0.0), Duration::from_secs(30));
        assert_eq!(at(10, 0.0), Duration::from_secs(150));
        assert_eq!(at(40, 0.0), Duration::from_secs(600));
        assert_eq!(at(600, 0.0), Duration::from_secs(600));
        // jitter takes up to a tenth off, never adds
        assert_eq!(at(10, 1.0), Duration::from_secs(135));
        assert_eq!(at(10, f64::NAN), Duration::from_secs(150));
        assert!(at(1000, 7.0) <= p.parked_max);
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let p = PollPolicy::default();
        // jitter 1.0 gives the full (un-halved) delay
        assert_eq!(backoff_delay(&p, 1, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(&p, 2, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(&p, 3, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_delay(&p, 9, 1.0), Duration::from_secs(300));
        assert_eq!(backoff_delay(&p, 1000, 1.0), Duration::from_secs(300));
        // jitter 0.0 gives half
        assert_eq!(backoff_delay(&p, 3, 0.0), Duration::from_secs(4));
        // attempt 0 behaves like the first failure
        assert_eq!(backoff_delay(&p, 0, 1.0), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let p = PollPolicy::default();
        assert_eq!(
            retry_delay(&p, 1, Some(Duration::from_secs(30)), 1.0),
            Duration::from_secs(30)
        );
        // our own backoff wins when longer
        assert_eq!(
            retry_delay(&p, 9, Some(Duration::from_secs(30)), 1.0),
            Duration::from_secs(300)
        );
        // an absurd header is clamped
        assert_eq!(
            retry_delay(&p, 1, Some(Duration::from_secs(86_400)), 1.0),
            Duration::from_secs(600)
        );
        assert_eq!(retry_delay(&p, 1, None, 1.0), Duration::from_secs(2));
    }

    proptest! {
        #[test]
        fn delays_stay_in_bounds(failures in 0u32..10_000, jitter in -2.0f64..3.0, ra in proptest::option::of(0u64..100_000)) {
            let p = PollPolicy::default();
            let d = poll_delay(&p, jitter);
            prop_assert!(d >= p.interval_min && d <= p.interval_max);
            let parked = parked_delay(&p, Duration::from_millis(u64::from(failures) * 997), jitter);
            prop_assert!(parked >= p.parked_min.mul_f64(0.9) && parked <= p.parked_max);
            let b = backoff_delay(&p, failures, jitter);
            prop_assert!(b <= p.backoff_cap && b >= p.backoff_base / 2);
            let r = retry_delay(&p, failures, ra.map(Duration::from_secs), jitter);
            prop_assert!(r >= b && r <= p.backoff_cap.max(p.retry_after_cap));
        }

        #[test]
        fn parked_checks_never_speed_up(secs in 0u64..100_000) {
            let p = PollPolicy::default();
            let wait = |s| parked_delay(&p, Duration::from_secs(s), 0.0);
            prop_assert!(wait(secs + 1) >= wait(secs));
        }

        #[test]
        fn backoff_never_shrinks_as_failures_grow(f in 1u32..64) {
            let p = PollPolicy::default();
            prop_assert!(backoff_delay(&p, f + 1, 1.0) >= backoff_delay(&p, f, 1.0));
        }
    }
}
