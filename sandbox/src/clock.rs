//! Provider time: real time since the sandbox started, sped up by `time_scale`.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

/// All sandbox rules (token and order expiry) run on provider time, which advances
/// `scale` times faster than real time from the moment the sandbox started. Timestamps sent
/// to clients are converted back to real wall-clock time ([`Clock::to_wall`]), so a client
/// comparing `expiresAt` with its own clock sees the scaled deadline (3 h / scale).
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    started: Instant,
    started_wall: DateTime<Utc>,
    scale: f64,
}

impl Clock {
    pub(crate) fn new(scale: f64) -> Self {
        Clock {
            started: Instant::now(),
            started_wall: Utc::now(),
            scale,
        }
    }

    /// Current provider time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.started_wall + scaled(self.started.elapsed(), self.scale)
    }

    /// The real wall-clock instant at which provider time reads `provider`.
    pub(crate) fn to_wall(&self, provider: DateTime<Utc>) -> DateTime<Utc> {
        let provider_elapsed = (provider - self.started_wall)
            .num_microseconds()
            .unwrap_or(i64::MAX);
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let real_micros = (provider_elapsed as f64 / self.scale) as i64;
        self.started_wall + TimeDelta::microseconds(real_micros)
    }
}

/// `real * scale` as a chrono delta (saturating).
fn scaled(real: Duration, scale: f64) -> TimeDelta {
    let micros = real.as_secs_f64() * scale * 1_000_000.0;
    #[allow(clippy::cast_possible_truncation)]
    let micros = if micros.is_finite() && micros < i64::MAX as f64 {
        micros as i64
    } else {
        i64::MAX / 4
    };
    TimeDelta::microseconds(micros)
}

/// A configured provider-time duration as a chrono delta.
pub(crate) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_time_runs_faster_and_maps_back() {
        let clock = Clock::new(3600.0);
        let now = clock.now();
        assert!(now >= clock.started_wall);
        // One provider hour after start is one real second after start.
        let wall = clock.to_wall(clock.started_wall + TimeDelta::hours(1));
        assert_eq!(wall - clock.started_wall, TimeDelta::seconds(1));
        assert_eq!(
            scaled(Duration::from_millis(500), 2.0),
            TimeDelta::seconds(1)
        );
    }
}
