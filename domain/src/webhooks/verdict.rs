//! What one delivery attempt's result means for the delivery (Standard Webhooks status
//! semantics): 2xx delivered; 410 Gone disables the endpoint; everything else, including
//! 3xx (redirects are never followed), timeouts and refused addresses, is a failure that
//! goes down the retry ladder until it is dead-lettered.

use std::time::Duration;

use super::retry::RetryPolicy;

/// Why an attempt got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No response within the timeout.
    Timeout,
    /// Connecting, TLS or the exchange itself failed.
    Connect,
    /// The target resolved to an address that is not allowed (SSRF protection).
    AddressRefused,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connection_failed",
            FailureKind::AddressRefused => "address_refused",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Response { status: u16 },
    Failed(FailureKind),
}

impl AttemptResult {
    pub fn is_success(self) -> bool {
        matches!(self, AttemptResult::Response { status } if (200..300).contains(&status))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again after this delay.
    Retry(Duration),
    /// The ladder is exhausted.
    Dead,
    /// 410 Gone: the endpoint asks not to be called again.
    EndpointGone,
}

/// Judge attempt number `attempt` (1-based) of a delivery.
pub fn judge(
    result: AttemptResult,
    attempt: u32,
    retry_after: Option<Duration>,
    policy: &RetryPolicy,
    jitter: f64,
) -> Verdict {
    if result.is_success() {
        return Verdict::Delivered;
    }
    if result == (AttemptResult::Response { status: 410 }) {
        return Verdict::EndpointGone;
    }
    match policy.next_delay(attempt.max(1), retry_after, jitter) {
        Some(d) => Verdict::Retry(d),
        None => Verdict::Dead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16) -> AttemptResult {
        AttemptResult::Response { status }
    }

    #[test]
    fn status_semantics() {
        let p = RetryPolicy::default();
        for s in [200, 201, 204, 299] {
            assert_eq!(judge(resp(s), 1, None, &p, 0.5), Verdict::Delivered);
        }
        assert_eq!(judge(resp(410), 1, None, &p, 0.5), Verdict::EndpointGone);
        let five = Verdict::Retry(Duration::from_secs(5));
        for s in [301, 302, 307, 400, 404, 429, 500, 503] {
            assert_eq!(judge(resp(s), 1, None, &p, 0.5), five, "status {s}");
        }
        for k in [
            FailureKind::Timeout,
            FailureKind::Connect,
            FailureKind::AddressRefused,
        ] {
            assert_eq!(judge(AttemptResult::Failed(k), 1, None, &p, 0.5), five);
        }
    }

    #[test]
    fn the_last_attempt_dead_letters_and_410_wins_even_then() {
        let p = RetryPolicy::default();
        assert_eq!(judge(resp(500), 8, None, &p, 0.5), Verdict::Dead);
        assert_eq!(judge(resp(410), 8, None, &p, 0.5), Verdict::EndpointGone);
        assert_eq!(judge(resp(200), 8, None, &p, 0.5), Verdict::Delivered);
    }

    #[test]
    fn retry_after_reaches_the_verdict() {
        let p = RetryPolicy::default();
        assert_eq!(
            judge(resp(429), 1, Some(Duration::from_secs(40)), &p, 0.5),
            Verdict::Retry(Duration::from_secs(40))
        );
    }
}
