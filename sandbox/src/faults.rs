//! Fault injection for every `/v1/*` endpoint (never `/sandbox/*`).
//!
//! Order of checks per request: API key (401), latency, the deterministic order-status
//! faults (`fail_next_status`, `rate_limit_next_status`) and order-create faults
//! (`fail_next_create` → 503, `reject_2xx_next_create` → HTTP 200 with `success: false`),
//! then the random ones (`error_rate` → 503, `rate_limit_rate` → 429 with `Retry-After`).
//! Those short-circuit before the handler, so the call has no effect. "Status" and
//! "create" cover both the on-ramp and the off-ramp endpoints. `malformed_rate` runs the handler first and then
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

const STATUS_PATHS: &[&str] = &["/v1/orders/status", "/v1/offramp/orders/status"];
const CREATE_PATHS: &[&str] = &["/v1/orders/create", "/v1/offramp/orders/create"];
const PAYMENT_REF_PATHS: &[&str] = &["/v1/orders/utr", "/v1/offramp/orders/txnhash"];

/// The business error of `reject_2xx_next_create`.
const CREATE_REJECTION: &str = "order could not be created: daily transaction limit reached";

/// Statuses a real provider has been seen to send that no state machine knows.
const ODD_STATUSES: &[&str] = &[
    "fiatPENDING",
    "onHold",
    "PROCESSING",
    "under_review",
    "FiatReceived",
    "cryptoInit",
];

/// Off-ramp statuses no state machine knows (near-misses of the documented ones).
const ODD_OFFRAMP_STATUSES: &[&str] = &[
    "PayoutPending",
    "payoutsuccess",
    "onHold",
    "cryptoreceived",
    "under_review",
    "PAYOUT_FAILED",
];

/// Which kind of endpoint a request hits, for the deterministic faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Status,
    Create,
    /// A UTR or tx-hash submission.
    PaymentRef,
    /// A page of the user's order list, `GET /v1/orders/{skip}`.
    List,
    Other,
}

impl Call {
    fn of(path: &str) -> Self {
        if STATUS_PATHS.contains(&path) {
            Call::Status
        } else if CREATE_PATHS.contains(&path) {
            Call::Create
        } else if PAYMENT_REF_PATHS.contains(&path) {
            Call::PaymentRef
        } else if path
            .strip_prefix("/v1/orders/")
            .is_some_and(|skip| !skip.is_empty() && skip.bytes().all(|b| b.is_ascii_digit()))
        {
            Call::List
        } else {
            Call::Other
        }
    }
}

/// What to do with one request before it reaches its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    ServiceUnavailable,
    RateLimited {
        retry_after_secs: u64,
    },
    /// HTTP 200 with `success: false`.
    Rejected2xx,
}

/// Decides the pre-handler fault for a request, consuming deterministic budgets.
/// `roll` yields uniform numbers in `[0, 1)`.
pub(crate) fn decide(
    faults: &mut Faults,
    call: Call,
    mut roll: impl FnMut() -> f64,
) -> Option<Injected> {
    let is_status_call = call == Call::Status;
    if is_status_call && faults.fail_next_status > 0 {
        faults.fail_next_status -= 1;
        return Some(Injected::ServiceUnavailable);
    }
    if call == Call::Create && faults.fail_next_create > 0 {
        faults.fail_next_create -= 1;
        return Some(Injected::ServiceUnavailable);
    }
    if call == Call::List && faults.fail_next_lookup > 0 {
        faults.fail_next_lookup -= 1;
        return Some(Injected::ServiceUnavailable);
    }
    if call == Call::List && faults.fail_every_nth_lookup > 0 {
        faults.lookups_seen += 1;
        if faults
            .lookups_seen
            .is_multiple_of(faults.fail_every_nth_lookup)
        {
            return Some(Injected::ServiceUnavailable);
        }
    }
    if call == Call::Create && faults.reject_2xx_next_create > 0 {
        faults.reject_2xx_next_create -= 1;
        return Some(Injected::Rejected2xx);
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

pub(crate) fn odd_offramp_status() -> &'static str {
    ODD_OFFRAMP_STATUSES[rand::rng().random_range(0..ODD_OFFRAMP_STATUSES.len())]
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
        Injected::Rejected2xx => error_response(&ApiError {
            http: 200,
            code: 400,
            message: CREATE_REJECTION.to_owned(),
        }),
    }
}

/// Consumes one deterministic "answer this 2xx with garbage" budget for `call`, if any.
fn take_malformed(shared: &Shared, call: Call) -> bool {
    let mut faults = shared.faults_mut();
    let budget = match call {
        Call::Create => &mut faults.malformed_next_create,
        Call::PaymentRef => &mut faults.malformed_next_payment_ref,
        _ => return false,
    };
    let hit = *budget > 0;
    *budget = budget.saturating_sub(1);
    hit
}

/// Axum middleware for `/v1/*`: API key check, counters and faults.
pub(crate) async fn layer(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let call = Call::of(request.uri().path());
    shared
        .traffic()
        .arrived(matches!(call, Call::Status | Call::List));
    let key_ok = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == shared.api_key);
    if !key_ok {
        return error_response(&ApiError::new(401, "invalid api key"));
    }

    let faults = {
        let mut world = shared.world();
        match call {
            Call::Status => world.stats.status_calls += 1,
            Call::Create => world.stats.create_calls += 1,
            Call::PaymentRef | Call::List | Call::Other => {}
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
        decide(&mut faults, call, || rng.random::<f64>())
    };
    if let Some(injected) = injected {
        shared.world().stats.faults_injected += 1;
        if matches!(injected, Injected::RateLimited { .. }) {
            shared.traffic().rate_limited();
        }
        return injected_response(injected);
    }

    let response = next.run(request).await;
    let garble_now = response.status().is_success() && take_malformed(&shared, call);
    if garble_now || (response.status().is_success() && chance(faults.malformed_rate)) {
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
        assert_eq!(decide(&mut faults, Call::Other, || 0.5), None);
        assert_eq!(
            decide(&mut faults, Call::Status, || 0.5),
            Some(Injected::ServiceUnavailable)
        );
        assert_eq!(
            decide(&mut faults, Call::Status, || 0.5),
            Some(Injected::RateLimited {
                retry_after_secs: 9
            })
        );
        assert_eq!(decide(&mut faults, Call::Status, || 0.5), None);
    }

    #[test]
    fn deterministic_create_faults_hit_creates_only() {
        let mut faults = Faults {
            fail_next_create: 1,
            reject_2xx_next_create: 1,
            ..Faults::default()
        };
        assert_eq!(decide(&mut faults, Call::Status, || 0.5), None);
        assert_eq!(
            decide(&mut faults, Call::Create, || 0.5),
            Some(Injected::ServiceUnavailable)
        );
        assert_eq!(
            decide(&mut faults, Call::Create, || 0.5),
            Some(Injected::Rejected2xx)
        );
        assert_eq!(decide(&mut faults, Call::Create, || 0.5), None);
        assert_eq!(Call::of("/v1/offramp/orders/create"), Call::Create);
        assert_eq!(Call::of("/v1/offramp/orders/status"), Call::Status);
        assert_eq!(Call::of("/v1/orders/0"), Call::List);
        assert_eq!(Call::of("/v1/orders/120"), Call::List);
        assert_eq!(Call::of("/v1/orders/currencies"), Call::Other);
        assert_eq!(Call::of("/v1/orders/utr"), Call::PaymentRef);
        assert_eq!(Call::of("/v1/offramp/orders/txnhash"), Call::PaymentRef);
    }

    #[test]
    fn failed_lookups_hit_list_pages_only() {
        let mut faults = Faults {
            fail_next_lookup: 2,
            ..Faults::default()
        };
        assert_eq!(decide(&mut faults, Call::Create, || 0.5), None);
        assert_eq!(decide(&mut faults, Call::Status, || 0.5), None);
        for _ in 0..2 {
            assert_eq!(
                decide(&mut faults, Call::List, || 0.5),
                Some(Injected::ServiceUnavailable)
            );
        }
        assert_eq!(decide(&mut faults, Call::List, || 0.5), None);
        let mut faults = Faults {
            fail_every_nth_lookup: 3,
            ..Faults::default()
        };
        let failed: Vec<bool> = (0..7)
            .map(|_| decide(&mut faults, Call::List, || 0.5).is_some())
            .collect();
        assert_eq!(failed, [false, false, true, false, false, true, false]);
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
            decide(&mut faults, Call::Other, || 0.1),
            Some(Injected::ServiceUnavailable)
        );
        let mut rolls = [0.9, 0.1].into_iter();
        assert_eq!(
            decide(&mut faults, Call::Other, || rolls.next().unwrap()),
            Some(Injected::RateLimited {
                retry_after_secs: 2
            })
        );
        assert_eq!(decide(&mut faults, Call::Other, || 0.9), None);
        assert_eq!(decide(&mut Faults::default(), Call::Status, || 0.0), None);
    }

    use crate::scenario::KNOWN_OFFRAMP_STATUSES;

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
            let s = odd_offramp_status();
            assert!(!KNOWN_OFFRAMP_STATUSES.contains(&s), "{s}");
        }
    }
}
