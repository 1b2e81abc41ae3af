//! Endpoint health: an endpoint that has failed continuously for the configured window is
//! disabled. Any success ends a failing streak; the streak starts at the first failure
//! after a success.

/// What to record after an attempt to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// Clear the failing streak (the attempt succeeded).
    Healthy,
    /// A streak starts now (epoch ms).
    StartFailing(i64),
    /// The streak goes on; nothing to write.
    StillFailing,
    /// Failing for longer than the window: disable the endpoint.
    Disable,
}

/// `failing_since` and `now` are epoch milliseconds; `window_ms` is the tolerated streak.
pub fn after_attempt(
    success: bool,
    failing_since: Option<i64>,
    now: i64,
    window_ms: i64,
) -> HealthChange {
    match (success, failing_since) {
        (true, _) => HealthChange::Healthy,
        (false, None) => HealthChange::StartFailing(now),
        (false, Some(since)) if now - since >= window_ms => HealthChange::Disable,
        (false, Some(_)) => HealthChange::StillFailing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn disables_only_after_a_continuous_window() {
        assert_eq!(
            after_attempt(false, None, 10, 5 * DAY),
            HealthChange::StartFailing(10)
        );
        assert_eq!(
            after_attempt(false, Some(10), 10 + 4 * DAY, 5 * DAY),
            HealthChange::StillFailing
        );
        assert_eq!(
            after_attempt(false, Some(10), 10 + 5 * DAY, 5 * DAY),
            HealthChange::Disable
        );
        assert_eq!(
            after_attempt(true, Some(10), 10 + 9 * DAY, 5 * DAY),
            HealthChange::Healthy
        );
    }
}
