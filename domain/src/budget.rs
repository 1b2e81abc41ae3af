//! A provider's request budget: a token bucket that a provider's 429 slows down.
//!
//! Pure: time comes in as `now`, a [`Duration`] since any fixed origin the caller keeps
//! (the shell passes a monotonic clock's elapsed time). Requests are paced, not burst:
//! the bucket holds a fiftieth of a second's requests (at least one) and refills at 80 %
//! of the rate. So no window of one second, wherever it starts, sees more than 82 % of
//! the rate leave (for rates of 2/s and more), and the provider, counting arrivals, still
//! sees no more than the rate when requests bunch on their way by up to 200 ms (a loaded
//! host, a connection pool: measured at 100,000 parked orders, a budget that allowed the
//! whole rate to leave arrived 14 % over it). The cost is a pace a fifth under the rate.
//!
//! A 429 pauses every caller until its `Retry-After` (1 s when the provider gave none)
//! and halves the current rate, down to a sixteenth of the configured one; each second
//! without a 429 then wins back a tenth of the configured rate (additive increase,
//! multiplicative decrease, as TCP does), so the budget settles just under what the
//! provider accepts instead of bouncing off it.

use std::time::Duration;

/// How long a 429 without `Retry-After` pauses the budget.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Configured requests per second.
    rate: f64,
    /// Current requests per second (`rate` unless a 429 lowered it).
    current: f64,
    tokens: f64,
    /// When `tokens` and `current` were last brought up to date.
    at: Duration,
    /// No request before this.
    paused_until: Duration,
}

impl Budget {
    /// A full bucket of `rate` requests per second (`rate > 0`).
    pub fn new(rate: f64, now: Duration) -> Self {
        assert!(
            rate.is_finite() && rate > 0.0,
            "a budget needs a positive rate"
        );
        Budget {
            rate,
            current: rate,
            tokens: burst(rate),
            at: now,
            paused_until: Duration::ZERO,
        }
    }

    /// Spend one request now, or say how long to wait before asking again.
    pub fn take(&mut self, now: Duration) -> Result<(), Duration> {
        self.refill(now);
        if now < self.paused_until {
            return Err(self.paused_until - now);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - self.tokens) / refill(self.current),
        ))
    }

    /// Requests that could be spent within `horizon` from now, waiting at most that
    /// (0 while paused): how many callers it is worth letting queue for tokens.
    pub fn available(&mut self, now: Duration, horizon: Duration) -> u64 {
        self.refill(now);
        if now < self.paused_until {
            return 0;
        }
        (self.tokens + horizon.as_secs_f64() * refill(self.current)).floor() as u64
    }

    /// The provider answered 429: pause everyone until `retry_after` (or
    /// [`DEFAULT_PAUSE`]) has passed and halve the rate. 429s that arrive together (the
    /// answers to requests already in flight) count once: the rate only drops again after
    /// the pause they set has ended.
    pub fn rate_limited(&mut self, now: Duration, retry_after: Option<Duration>) {
        self.refill(now);
        let until = now + retry_after.unwrap_or(DEFAULT_PAUSE);
        if now >= self.paused_until {
            self.current = (self.current / 2.0).max(self.rate / 16.0);
            self.tokens = self.tokens.min(burst(self.current));
        }
        self.paused_until = self.paused_until.max(until);
    }

    /// How long a 429's pause still lasts, if one does.
    pub fn paused_for(&self, now: Duration) -> Option<Duration> {
        (now < self.paused_until).then(|| self.paused_until - now)
    }

    /// Requests per second allowed now.
    pub fn current_rate(&self) -> f64 {
        self.current
    }

    fn refill(&mut self, now: Duration) {
        let Some(elapsed) = now.checked_sub(self.at) else {
            return; // a caller's clock read before ours: nothing has elapsed
        };
        let secs = elapsed.as_secs_f64();
        // Recovery happens only while not paused.
        let calm = now
            .saturating_sub(self.at.max(self.paused_until))
            .as_secs_f64();
        self.current = (self.current + calm * self.rate / 10.0).min(self.rate);
        self.tokens = (self.tokens + secs * refill(self.current)).min(burst(self.current));
        self.at = now;
    }
}

/// A fiftieth of a second's requests, at least one.
fn burst(rate: f64) -> f64 {
    (rate / 50.0).max(1.0)
}

/// Requests per second put back into the bucket: the pace, with a fifth of the rate kept
/// back for requests that bunch on their way.
fn refill(rate: f64) -> f64 {
    rate * PACE
}

/// The share of the rate requests leave at.
const PACE: f64 = 0.8;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Spend as fast as allowed from `from` to `to` (in 1 ms steps); returns the times
    /// of the requests made.
    fn spend(b: &mut Budget, from: u64, to: u64) -> Vec<u64> {
        let mut made = Vec::new();
        for t in from..to {
            while b.take(ms(t)).is_ok() {
                made.push(t);
            }
        }
        made
    }

    #[test]
    fn requests_are_paced_at_four_fifths_of_the_rate() {
        let mut b = Budget::new(200.0, ms(0));
        assert_eq!(b.available(ms(0), Duration::ZERO), 4);
        assert_eq!(b.available(ms(0), ms(500)), 84);
        let made = spend(&mut b, 0, 10_000);
        // 4 at once, then 160 per second for the 10 s.
        assert!((1_600..=1_604).contains(&made.len()), "{}", made.len());
        assert_eq!(made.iter().filter(|&&t| t == 0).count(), 4);
    }

    #[test]
    fn waiting_is_as_long_as_the_next_token_needs() {
        let mut b = Budget::new(20.0, ms(0));
        b.take(ms(0)).unwrap();
        // Refill is 16/s: a token every 62.5 ms.
        assert_eq!(b.take(ms(0)), Err(Duration::from_secs_f64(1.0 / 16.0)));
        assert!(b.take(ms(30)).is_err());
        assert_eq!(b.take(ms(63)), Ok(()));
        assert_eq!(b.available(ms(63), Duration::ZERO), 0);
    }

    #[test]
    fn a_slow_rate_still_allows_one_request() {
        let mut b = Budget::new(0.5, ms(0));
        assert_eq!(b.take(ms(0)), Ok(()));
        assert_eq!(b.take(ms(0)), Err(ms(2_500)));
    }

    #[test]
    fn a_429_pauses_everyone_until_retry_after_and_halves_the_rate() {
        let mut b = Budget::new(100.0, ms(0));
        b.rate_limited(ms(0), Some(Duration::from_secs(3)));
        assert_eq!(b.available(ms(1), ms(500)), 0);
        assert_eq!(b.take(ms(2_999)), Err(ms(1)));
        assert_eq!(b.paused_for(ms(2_000)), Some(ms(1_000)));
        assert_eq!(b.current_rate(), 50.0);
        // 429s from requests already in flight do not halve it again.
        b.rate_limited(ms(10), Some(Duration::from_secs(1)));
        assert_eq!(b.current_rate(), 50.0);
        assert!(b.take(ms(3_000)).is_ok());
        assert_eq!(b.paused_for(ms(3_000)), None);
        // Without Retry-After the pause is a second.
        b.rate_limited(ms(3_000), None);
        assert_eq!(b.current_rate(), 25.0);
        assert_eq!(b.take(ms(3_500)), Err(ms(500)));
    }

    #[test]
    fn the_rate_recovers_by_a_tenth_per_calm_second_up_to_the_configured_one() {
        let mut b = Budget::new(100.0, ms(0));
        b.rate_limited(ms(0), None);
        assert_eq!(b.current_rate(), 50.0);
        b.available(ms(1_000), Duration::ZERO); // still paused until 1 s: no recovery yet
        assert_eq!(b.current_rate(), 50.0);
        b.available(ms(3_000), Duration::ZERO);
        assert!(
            (b.current_rate() - 70.0).abs() < 1e-9,
            "{}",
            b.current_rate()
        );
        b.available(ms(60_000), Duration::ZERO);
        assert_eq!(b.current_rate(), 100.0);
    }

    #[test]
    fn the_rate_never_drops_below_a_sixteenth() {
        let mut b = Budget::new(160.0, ms(0));
        for t in 0..20 {
            b.rate_limited(ms(t), Some(ms(1)));
        }
        assert_eq!(b.current_rate(), 10.0);
    }

    #[test]
    fn a_clock_read_out_of_order_does_not_refill() {
        let mut b = Budget::new(10.0, ms(1_000));
        b.take(ms(1_000)).unwrap();
        assert!(b.take(ms(900)).is_err());
        assert_eq!(b.available(ms(900), Duration::ZERO), 0);
    }

    proptest! {
        /// Whatever the pattern of asks and 429s, no second (any window, not only whole
        /// seconds) holds more than 82 % of the rate's requests: room for them to bunch
        /// by 200 ms on their way and still arrive within the rate.
        #[test]
        fn no_second_exceeds_the_pace(
            rate in 2u32..300,
            asks in proptest::collection::vec((0u64..20, 0u32..5, any::<bool>()), 1..400),
        ) {
            let rate = f64::from(rate);
            let mut b = Budget::new(rate, ms(0));
            let mut t = 0;
            let mut made = Vec::new();
            for (step, n, limited) in asks {
                t += step;
                if limited {
                    b.rate_limited(ms(t), Some(ms(u64::from(n) * 10)));
                }
                for _ in 0..n * 20 {
                    if b.take(ms(t)).is_ok() {
                        made.push(t);
                    }
                }
            }
            let cap = (burst(rate) + refill(rate) + 1e-9).floor() as usize;
            prop_assert!(cap as f64 <= 0.82 * rate + 1.0);
            for (i, &start) in made.iter().enumerate() {
                let within = made[i..].iter().take_while(|&&x| x < start + 1_000).count();
                prop_assert!(within <= cap, "{within} requests in a second at rate {rate}");
            }
        }
    }
}
