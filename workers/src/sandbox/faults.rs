//! Fault injection for every `/v1/*` endpoint (never `/sandbox/*`).
//!
//! Order of checks per request: API key (401), latency, the deterministic order-status
//! faults (`fail_next_status`, `rate_limit_next_status`), then the random ones (`error_rate`
//! → 503, `rate_limit_rate` → 429 with `Retry-After`). Those short-circuit before the
//! handler, so the call has no effect. `malformed_rate` runs the handler first and then
//! replaces a 2xx body with non-JSON, so the caller cannot tell what happened (as with a
//! reply garbled by a proxy). `unknown_status_rate` is applied by the status handler.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use super::Faults;
use super::Shared;
use super::routes::error_response;
use super::state::ApiError;

pub(crate) const STATUS_PATH: &str = "/v1/orders/status";
pub(crate) const CREATE_PATH: &str = "/v1/orders/create";

/// Statuses a real provider has been seen to send that no state machine knows.
const ODD_STATUSES: &[&str] = &[
    "fiatPENDING",
    "onHold",
    "PROCESSING",
    "under_review",
    "FiatReceived",
    "cryptoInit",
];

/// What to do with one request before it reaches its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    ServiceUnavailable,
    RateLimited { retry_after_secs: u64 },
}

/// Decides the pre-handler fault for a request, consuming deterministic budgets.
/// `roll` yields uniform numbers in `[0, 1)`.
pub(crate) fn decide(
    faults: &mut Faults,
    is_status_call: bool,
    mut roll: impl FnMut() -> f64,
) -> Option<Injected> {
    if is_status_call && faults.fail_next_status > 0 {
        faults.fail_next_status -= 1;
        return Some(Injected::ServiceUnavailable);
    }
    if is_status_call && faults.rate_limit_next_status > 0 {
        faults.rate_limit_next_status -= 1;
        return Some(Injected::RateLimited {
            retry_after_secs: faults.retry_after_secs,
        });
    }
    if faults.error_rate > 0.0 && roll() < faults.error_rate {
        return Some(Injected::ServiceUnavailable);
    }
    if faults.rate_limit_rate > 0.0 && roll() < faults.rate_limit_rate {
        return Some(Injected::RateLimited {
            retry_after_secs: faults.retry_after_secs,
        });
    }
    None
}

/// Rolls against `rate` (in `[0, 1]`).
pub(crate) fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::rng().random::<f64>() < rate
}

pub(crate) fn odd_status() -> &'static str {
    ODD_STATUSES[rand::rng().random_range(0..ODD_STATUSES.len())]
}

fn injected_response(injected: Injected) -> Response {
    match injected {
        Injected::ServiceUnavailable => {
            error_response(&ApiError::new(503, "service temporarily unavailable"))
        }
        Injected::RateLimited { retry_after_secs } => {
            let mut response = error_response(&ApiError::new(429, "too many requests"));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    }
}

/// Axum middleware for `/v1/*`: API key check, counters and faults.
pub(crate) async fn layer(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let key_ok = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == shared.api_key);
    if !key_ok {
        return error_response(&ApiError::new(401, "invalid api key"));
    }

    let path = request.uri().path().to_owned();
    let is_status = path == STATUS_PATH;
    let faults = {
        let mut world = shared.world();
        if is_status {
            world.stats.status_calls += 1;
        } else if path == CREATE_PATH {
            world.stats.create_calls += 1;
        }
        drop(world);
        shared.faults_snapshot()
    };

    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }

    let injected = {
        let mut faults = shared.faults_mut();
        let mut rng = rand::rng();
        decide(&mut faults, is_status, || rng.random::<f64>())
    };
    if let Some(injected) = injected {
        shared.world().stats.faults_injected += 1;
        return injected_response(injected);
    }

    let response = next.run(request).await;
    if response.status().is_success() && chance(faults.malformed_rate) {
        shared.world().stats.faults_injected += 1;
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>upstream hiccup</body></html>",
        )
            .into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_status_faults_are_consumed_in_order() {
        let mut faults = Faults {
            fail_next_status: 1,
            rate_limit_next_status: 1,
            retry_after_secs: 9,
            ..Faults::default()
        };
        // Other endpoints are not affected.
        assert_eq!(decide(&mut faults, false, || 0.5), None);
        assert_eq!(
            decide(&mut faults, true, || 0.5),
            Some(Injected::ServiceUnavailable)
        );
        assert_eq!(
            decide(&mut faults, true, || 0.5),
            Some(Injected::RateLimited {
                retry_after_secs: 9
            })
        );
        assert_eq!(decide(&mut faults, true, || 0.5), None);
    }

    #[test]
    fn random_faults_follow_their_rates() {
        let mut faults = Faults {
            error_rate: 0.3,
            rate_limit_rate: 0.3,
            retry_after_secs: 2,
            ..Faults::default()
        };
        assert_eq!(
            decide(&mut faults, false, || 0.1),
            Some(Injected::ServiceUnavailable)
        );
        let mut rolls = [0.9, 0.1].into_iter();
        assert_eq!(
            decide(&mut faults, false, || rolls.next().unwrap()),
            Some(Injected::RateLimited {
                retry_after_secs: 2
            })
        );
        assert_eq!(decide(&mut faults, false, || 0.9), None);
        assert_eq!(decide(&mut Faults::default(), true, || 0.0), None);
    }

    #[test]
    fn odd_statuses_are_not_known_ones() {
        for _ in 0..20 {
            let s = odd_status();
            assert!(
                ![
                    "fiatPending",
                    "fiatReceived",
                    "orderReceived",
                    "InProgress",
                    "transferred",
                    "completed",
                    "expired"
                ]
                .contains(&s)
            );
        }
    }
}
