//! One HTTP exchange with a provider, the same for every connector: the request budget
//! (and the pause after a 429), a client span per call (method, route template, status,
//! attempt, `error.type`), the call metrics, the trace headers, and a classified transport
//! failure. What the answer means is the connector's business ([`RawResponse`]).
//!
//! Nothing here logs a body, a header value or a URL's query: only the endpoint name,
//! status and latency, at debug level.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tracing::Instrument;

use super::attempt;
use super::budget::RequestBudget;
use super::error::{ProviderError, RawResponse, parse_retry_after, transport_error};
use crate::telemetry::{self, meters, spans};

/// How long one request waits for the provider budget before it is given up (and its
/// order rescheduled); short beside the step's timeout and lease.
const BUDGET_PATIENCE: Duration = Duration::from_secs(1);

/// A provider's HTTP client. Cheap to clone: one pooled client inside.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
    /// Every request waits for a token of this; a 429 slows it down.
    budget: RequestBudget,
}

struct Inner {
    /// The provider's name in spans and metrics.
    provider: &'static str,
    http: reqwest::Client,
    base_url: String,
    /// Sent with every request (an API key, a tenant id); marked sensitive.
    headers: HeaderMap,
}

/// One call: which endpoint (a route template, for spans and metrics), how, and whether it
/// spends a budget token (`polling`: the checks that grow with the number of live orders;
/// the calls a user's own action causes only wait out a 429 pause).
pub struct Call<'a> {
    pub endpoint: &'static str,
    pub method: Method,
    /// Appended to the base URL; its variable parts already percent-encoded.
    pub path: &'a str,
    pub body: Option<&'a Value>,
    pub bearer: Option<&'a SecretString>,
    pub polling: bool,
    /// The order's stored trace context, continued in the request's trace headers.
    pub trace_ctx: Option<&'a str>,
}

impl Transport {
    /// A pooled client for `base_url` (timeout from config, redirects never followed),
    /// sending `headers` with every request. The process must have installed the rustls
    /// crypto provider first.
    pub fn new(
        provider: &'static str,
        base_url: &str,
        timeout: Duration,
        mut headers: HeaderMap,
    ) -> Result<Self, ProviderError> {
        let config_error = |what: &str| ProviderError::Rejected {
            code: None,
            message: format!("{provider} config: {what}"),
        };
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        reqwest::Url::parse(&base_url).map_err(|_| config_error("base_url is not a valid URL"))?;
        headers.values_mut().for_each(|v| v.set_sensitive(true));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| config_error("could not build the HTTP client"))?;
        Ok(Transport {
            inner: Arc::new(Inner {
                provider,
                http,
                base_url,
                headers,
            }),
            budget: RequestBudget::unlimited(),
        })
    }

    /// The same client, spending `budget` for every request.
    pub fn with_budget(self, budget: RequestBudget) -> Self {
        Transport { budget, ..self }
    }

    pub fn budget(&self) -> &RequestBudget {
        &self.budget
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// One HTTP exchange, in its own client span and measured
    /// (`telemetry::meters::provider_call`). A 429 slows the budget down.
    pub async fn send(&self, call: Call<'_>) -> Result<RawResponse, ProviderError> {
        let endpoint = call.endpoint;
        let room = match call.polling {
            true => self.budget.acquire(BUDGET_PATIENCE).await,
            false => self.budget.await_pause(BUDGET_PATIENCE).await,
        };
        if let Err(wait) = room {
            tracing::debug!(
                endpoint,
                wait_ms = wait.as_millis() as u64,
                "over the provider budget; not sent"
            );
            return Err(ProviderError::OverBudget { wait });
        }
        let url = reqwest::Url::parse(&format!("{}{}", self.inner.base_url, call.path))
            .map_err(|_| ProviderError::unknown(endpoint, "not a URL"))?;
        let provider = self.inner.provider;
        let span = spans::provider_call(
            provider,
            call.method.as_str(),
            endpoint,
            attempt::current(),
            &url,
        );
        let started = Instant::now();
        let sent = self.exchange(url, &call).instrument(span.clone()).await;
        let (status, timed_out) = match &sent {
            Ok(raw) => (Some(raw.status), false),
            Err(e) => (None, e.to_string().contains("timed out")),
        };
        if let Ok(raw) = &sent
            && raw.status == 429
        {
            self.budget.rate_limited(raw.retry_after);
        }
        let outcome = meters::provider_outcome(status, timed_out);
        meters::provider_call(provider, endpoint, outcome, started.elapsed());
        span.record("rampd.outcome", outcome);
        if let Some(s) = status {
            span.record("http.response.status_code", s);
        }
        if outcome != "ok" {
            span.record("otel.status_code", "error");
            // The status code of an HTTP error, else what failed (semantic conventions).
            let error_type = status.map_or(outcome.to_string(), |s| s.to_string());
            span.record("error.type", error_type.as_str());
        }
        sent
    }

    async fn exchange(
        &self,
        url: reqwest::Url,
        call: &Call<'_>,
    ) -> Result<RawResponse, ProviderError> {
        let endpoint = call.endpoint;
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url)
            .headers(self.inner.headers.clone());
        if let Some(token) = call.bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| {
                    ProviderError::unknown(endpoint, "session token is not a valid header value")
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let trace = telemetry::outgoing_trace_ctx(call.trace_ctx);
        for (name, value) in telemetry::context::header_fields(trace.as_deref()) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                request = request.header(name, value);
            }
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }

        let started = Instant::now();
        let provider = self.inner.provider;
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let err = transport_error(endpoint, &err);
                tracing::debug!(provider, endpoint, latency_ms = elapsed_ms(started), error = %err, "provider call failed");
                return Err(err);
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .bytes()
            .await
            .map_err(|err| transport_error(endpoint, &err))?;
        tracing::debug!(
            provider,
            endpoint,
            status,
            latency_ms = elapsed_ms(started),
            "provider call"
        );
        Ok(RawResponse {
            status,
            retry_after,
            body: body.to_vec(),
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so that a provider
/// reference or a transaction hash can never change the request path.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
