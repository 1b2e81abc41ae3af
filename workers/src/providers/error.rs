//! How a provider call failed, classified for the caller's durable retry schedule.
//!
//! Connectors make exactly one attempt per call (plus an auth renewal); whether and when to
//! try again is decided by the task that called them, from the class below. Every message
//! here is built from the endpoint name, the HTTP status and the provider's own error
//! code/message only: never tokens, API keys, e-mails, phone numbers, PAN or account numbers.

use std::time::Duration;

use serde_json::Value;

/// Longest provider error message we keep; longer ones are cut (they end up in events).
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Transport failure, timeout, 5xx, or anything else that may succeed later.
    #[error("provider temporarily unavailable: {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// HTTP 429; `retry_after` comes from the `Retry-After` header (seconds or an HTTP-date) when sent.
    #[error("provider rate limit hit")]
    RateLimited { retry_after: Option<Duration> },
    /// The provider refused the request for good (4xx or a 2xx with `success: false`).
    #[error("provider rejected the request{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Rejected { code: Option<i64>, message: String },
    /// The provider answered but we cannot tell what happened (e.g. a 2xx that is not JSON).
    /// The outcome of a creating call is unknown: look the provider state up before retrying.
    #[error("provider response not understood: {detail}")]
    Unknown { detail: String },
    /// Not sent: the provider's request budget had no room within the wait allowed
    /// (`providers::budget`). Nothing happened at the provider.
    #[error("over the provider request budget; not sent")]
    OverBudget { wait: Duration },
}

impl ProviderError {
    /// The delay the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Retryable { retry_after, .. }
            | ProviderError::RateLimited { retry_after } => *retry_after,
            ProviderError::OverBudget { wait } => Some(*wait),
            ProviderError::Rejected { .. } | ProviderError::Unknown { .. } => None,
        }
    }

    /// `Rejected` is permanent; everything else may be retried by the caller's schedule.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::Rejected { .. })
    }

    pub(crate) fn unknown(endpoint: &str, what: impl std::fmt::Display) -> Self {
        ProviderError::Unknown {
            detail: format!("{endpoint}: {what}"),
        }
    }
}

/// One HTTP answer, reduced to what classification needs.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl RawResponse {
    #[cfg(test)]
    pub(crate) fn json(status: u16, body: &str) -> Self {
        RawResponse {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date in any of its three forms
/// (see [`rampd_domain::retry_after`]), counted from now.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    rampd_domain::retry_after::parse_retry_after(value, chrono::Utc::now())
}

/// Classifies a transport-level failure (no HTTP answer, or the body could not be read).
pub(crate) fn transport_error(endpoint: &str, err: &reqwest::Error) -> ProviderError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    ProviderError::Retryable {
        reason: format!("{endpoint}: {what}"),
        retry_after: None,
    }
}

/// Unwraps a provider answer into its `data` value, or classifies it as an error.
///
/// Accepted success shapes: `{success: true, data: …}`, `{"request_data": …}` and a bare
/// object (returned whole). A 2xx with `success: false` is a rejection; a 2xx that is not
/// JSON is `Unknown`. Status classes: 429 → `RateLimited`; 401, 408, 425 and 5xx →
/// `Retryable`; other 4xx → `Rejected` with the provider's code and message.
///
/// A 401 reaching this point has already survived a token refresh and a fresh login, so it
/// means our merchant credentials are wrong: an operator problem, not the order's, hence
/// retryable rather than a permanent rejection of the order.
pub(crate) fn envelope_data(endpoint: &str, raw: &RawResponse) -> Result<Value, ProviderError> {
    let status = raw.status;
    let parsed: Option<Value> = serde_json::from_slice(&raw.body).ok();
    match status {
        200..=299 => {
            let Some(value) = parsed else {
                return Err(ProviderError::unknown(
                    endpoint,
                    format_args!("HTTP {status} with a body that is not JSON"),
                ));
            };
            if is_false(value.get("success")) {
                let (code, message) = error_fields(&value);
                return Err(ProviderError::Rejected {
                    code,
                    message: message
                        .unwrap_or_else(|| format!("{endpoint}: rejected without a message")),
                });
            }
            Ok(unwrap_data(value))
        }
        429 => Err(ProviderError::RateLimited {
            retry_after: raw.retry_after,
        }),
        401 | 408 | 425 | 500..=599 => {
            let detail = parsed
                .as_ref()
                .and_then(|v| error_fields(v).1)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            Err(ProviderError::Retryable {
                reason: format!("{endpoint}: HTTP {status}{detail}"),
                retry_after: raw.retry_after,
            })
        }
        400..=499 => {
            let (code, message) = parsed.as_ref().map(error_fields).unwrap_or((None, None));
            Err(ProviderError::Rejected {
                code: code.or(Some(i64::from(status))),
                message: message.unwrap_or_else(|| format!("{endpoint}: HTTP {status}")),
            })
        }
        _ => Err(ProviderError::unknown(
            endpoint,
            format_args!("unexpected HTTP {status}"),
        )),
    }
}

fn is_false(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("false"),
        _ => false,
    }
}

/// `(error.code, error.message)` from an error envelope; also accepts a top-level `message`
/// and an `error` that is a plain string.
fn error_fields(v: &Value) -> (Option<i64>, Option<String>) {
    let err = v.get("error");
    let code = err.and_then(|e| e.get("code")).and_then(|c| match c {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let message = err
        .and_then(|e| match e {
            Value::String(s) => Some(s.as_str()),
            other => other.get("message").and_then(Value::as_str),
        })
        .or_else(|| v.get("message").and_then(Value::as_str))
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(truncate);
    (code, message)
}

/// `s`, cut to the longest provider message we keep.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_MESSAGE_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push('…');
        out
    }
}

fn unwrap_data(value: Value) -> Value {
    match value {
        Value::Object(mut map) => {
            if let Some(data) = map.remove("data").filter(|d| !d.is_null()) {
                data
            } else if let Some(data) = map.remove("request_data").filter(|d| !d.is_null()) {
                data
            } else {
                Value::Object(map)
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_envelope_yields_data() {
        let raw = RawResponse::json(200, r#"{"success":true,"data":{"a":1},"error":{}}"#);
        assert_eq!(
            envelope_data("x", &raw).unwrap(),
            serde_json::json!({"a":1})
        );
    }

    #[test]
    fn wrapper_and_bare_object_are_accepted() {
        let raw = RawResponse::json(200, r#"{"request_data":{"status":"completed"}}"#);
        assert_eq!(envelope_data("x", &raw).unwrap()["status"], "completed");
        let raw = RawResponse::json(200, r#"{"status":"completed"}"#);
        assert_eq!(envelope_data("x", &raw).unwrap()["status"], "completed");
    }

    #[test]
    fn two_hundred_with_success_false_is_rejected() {
        let raw = RawResponse::json(
            200,
            r#"{"success":false,"error":{"code":400,"message":"Order already success, can't update UTR"}}"#,
        );
        match envelope_data("orders/utr", &raw) {
            Err(ProviderError::Rejected { code, message }) => {
                assert_eq!(code, Some(400));
                assert!(message.contains("already success"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let raw = RawResponse::json(201, r#"{"success":"false"}"#);
        assert!(matches!(
            envelope_data("x", &raw),
            Err(ProviderError::Rejected { code: None, .. })
        ));
    }

    #[test]
    fn unparseable_two_hundred_is_unknown() {
        let raw = RawResponse::json(200, "<html>oops</html>");
        let err = envelope_data("orders/status", &raw).unwrap_err();
        assert!(matches!(err, ProviderError::Unknown { .. }));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("orders/status"));
    }

    #[test]
    fn status_classes() {
        let mut raw = RawResponse::json(429, "");
        raw.retry_after = parse_retry_after("7");
        let err = envelope_data("x", &raw).unwrap_err();
        assert!(matches!(err, ProviderError::RateLimited { .. }));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

        for status in [500, 502, 503, 504, 408] {
            let err = envelope_data("x", &RawResponse::json(status, "bad gateway")).unwrap_err();
            assert!(matches!(err, ProviderError::Retryable { .. }), "{status}");
            assert!(err.is_retryable());
        }

        let raw = RawResponse::json(
            400,
            r#"{"success":false,"error":{"code":400,"message":"UPI ID not linked"}}"#,
        );
        let err = envelope_data("x", &raw).unwrap_err();
        assert!(!err.is_retryable());
        match err {
            ProviderError::Rejected { code, message } => {
                assert_eq!(code, Some(400));
                assert_eq!(message, "UPI ID not linked");
            }
            other => panic!("unexpected {other:?}"),
        }

        let err = envelope_data("x", &RawResponse::json(404, "Not Found")).unwrap_err();
        assert!(matches!(
            err,
            ProviderError::Rejected {
                code: Some(404),
                ..
            }
        ));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        // HTTP-dates were ignored before; a date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = chrono::Utc::now() + chrono::Duration::seconds(120);
        let imf = soon.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let got = parse_retry_after(&imf).expect("an IMF-fixdate");
        assert!(
            got > Duration::from_secs(110) && got <= Duration::from_secs(120),
            "{got:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "x".repeat(1000);
        let raw = RawResponse::json(
            400,
            &format!(r#"{{"success":false,"error":{{"message":"{long}"}}}}"#),
        );
        match envelope_data("x", &raw).unwrap_err() {
            ProviderError::Rejected { message, .. } => {
                assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
