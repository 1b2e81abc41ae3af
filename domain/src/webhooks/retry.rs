//! The durable retry ladder of a webhook delivery.
//!
//! The first attempt runs as soon as the delivery row is written. After the n-th failed
//! attempt the next one is due `schedule[n-1]` later (the last step repeats if
//! `max_attempts` asks for more attempts than the schedule has steps), spread by ±`jitter`
//! so that a fleet of deliveries that failed together does not come back together. A
//! receiver's `Retry-After` can push the next attempt later, up to `retry_after_cap`, never
//! earlier than the ladder. After `max_attempts` attempts the delivery is dead-lettered.

use std::time::Duration;

pub use crate::retry_after::parse_retry_after;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delays after the 1st, 2nd, … failed attempt.
    pub schedule: Vec<Duration>,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// Relative spread of each delay: 0.2 means ±20 %.
    pub jitter: f64,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

/// Immediately, then about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
pub const DEFAULT_SCHEDULE_SECS: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            schedule: DEFAULT_SCHEDULE_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            max_attempts: 8,
            jitter: 0.2,
            retry_after_cap: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `attempts_made` attempts failed, or `None`
    /// when that was the last one. `jitter` is a random number in `[0, 1)` supplied by the
    /// caller (values outside are clamped).
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if attempts_made == 0 {
            return Some(Duration::ZERO);
        }
        if attempts_made >= self.max_attempts {
            return None;
        }
        let step = self
            .schedule
            .get(attempts_made as usize - 1)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::ZERO);
        let j = if jitter.is_nan() {
            0.5
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let spread = self.jitter.clamp(0.0, 1.0);
        let ours = step.mul_f64(1.0 + spread * (2.0 * j - 1.0));
        Some(match retry_after {
            Some(ra) => ours.max(ra.min(self.retry_after_cap)),
            None => ours,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn follows_the_documented_ladder_without_jitter() {
        let p = RetryPolicy::default();
        let ladder: Vec<_> = (0..8).map(|n| p.next_delay(n, None, 0.5)).collect();
        assert_eq!(
            ladder,
            [0, 5, 300, 1800, 7200, 18000, 36000, 36000].map(|s| Some(S(s)))
        );
        assert_eq!(p.next_delay(8, None, 0.5), None);
        assert_eq!(p.next_delay(50, None, 0.5), None);
    }

    #[test]
    fn jitter_spreads_by_twenty_percent() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(2, None, 0.0), Some(S(240)));
        assert_eq!(p.next_delay(2, None, 1.0), Some(S(360)));
        assert_eq!(p.next_delay(2, None, f64::NAN), Some(S(300)));
        assert_eq!(p.next_delay(2, None, 7.0), Some(S(360)));
    }

    #[test]
    fn retry_after_pushes_later_within_the_cap_never_earlier() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(1, Some(S(120)), 0.5), Some(S(120)));
        assert_eq!(p.next_delay(3, Some(S(1)), 0.5), Some(S(1800)));
        assert_eq!(p.next_delay(1, Some(S(86_400)), 0.5), Some(S(3600)));
    }

    #[test]
    fn more_attempts_than_steps_repeat_the_last_step() {
        let p = RetryPolicy {
            schedule: vec![S(1), S(2)],
            max_attempts: 5,
            ..RetryPolicy::default()
        };
        let ladder: Vec<_> = (1..6).map(|n| p.next_delay(n, None, 0.5)).collect();
        assert_eq!(
            ladder,
            [Some(S(1)), Some(S(2)), Some(S(2)), Some(S(2)), None]
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after(" 30 ", now), Some(S(30)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(S(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    proptest! {
        #[test]
        fn delays_stay_within_jitter_and_cap(n in 1u32..8, j in -1.0f64..2.0, ra in proptest::option::of(0u64..100_000)) {
            let p = RetryPolicy::default();
            let step = p.schedule[n as usize - 1];
            let d = p.next_delay(n, ra.map(S), j).unwrap();
            prop_assert!(d >= step.mul_f64(0.8));
            prop_assert!(d <= step.mul_f64(1.2).max(p.retry_after_cap));
        }
    }
}
