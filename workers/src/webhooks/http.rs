//! One webhook attempt over the shared, pooled HTTP client: sign, POST, read at most a
//! bounded part of the response, classify. Redirects are never followed (a 3xx is a
//! failed attempt), the whole exchange is bounded by the timeout, and target addresses
//! go through the [`address_guard`](super::address_guard).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rampd_domain::webhooks::excerpt::response_excerpt;
use rampd_domain::webhooks::retry::parse_retry_after;
use rampd_domain::webhooks::{AddressPolicy, AttemptResult, FailureKind};

use super::address_guard::{GuardedResolver, is_refusal, literal_ip_refused};

/// What is sent: the stored body and id, with this attempt's timestamp and signatures.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub webhook_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: &'a str,
    /// The trace context in stored form (see [`crate::telemetry::context`]).
    pub trace_ctx: Option<&'a str>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub result: AttemptResult,
    pub retry_after: Option<Duration>,
    /// Redacted start of the response body (see `rampd_domain::webhooks::excerpt`).
    pub excerpt: Option<String>,
    pub latency_ms: i64,
}

#[derive(Clone)]
pub struct WebhookHttp {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    body_limit: usize,
}

impl WebhookHttp {
    pub fn new(
        policy: AddressPolicy,
        timeout: Duration,
        body_limit: usize,
    ) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("rampd-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebhookHttp {
            client,
            policy,
            body_limit,
        })
    }

    pub async fn send(&self, o: &Outgoing<'_>) -> Sent {
        let started = Instant::now();
        let failed = |kind: FailureKind, started: Instant| Sent {
            result: AttemptResult::Failed(kind),
            retry_after: None,
            excerpt: None,
            latency_ms: started.elapsed().as_millis() as i64,
        };
        let Ok(url) = reqwest::Url::parse(o.url) else {
            return failed(FailureKind::Connect, started);
        };
        if literal_ip_refused(&self.policy, &url) {
            return failed(FailureKind::AddressRefused, started);
        }
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", o.webhook_id)
            .header("webhook-timestamp", o.timestamp.to_string())
            .header("webhook-signature", o.signature)
            .body(o.body.to_string());
        for (name, value) in crate::telemetry::context::header_fields(o.trace_ctx) {
            req = req.header(name, value);
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failed(classify(&e), started),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        // Read no more than the limit; the rest is dropped with the connection.
        let mut body = Vec::new();
        let mut read_failed = None;
        while body.len() < self.body_limit {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    read_failed = Some(classify(&e));
                    break;
                }
            }
        }
        body.truncate(self.body_limit);
        let latency_ms = started.elapsed().as_millis() as i64;
        let excerpt = (!body.is_empty()).then(|| response_excerpt(&body));
        let result = match read_failed {
            // A 2xx whose body then timed out is not a confirmed delivery.
            Some(kind) if (200..300).contains(&status) => AttemptResult::Failed(kind),
            _ => AttemptResult::Response { status },
        };
        Sent {
            result,
            retry_after,
            excerpt,
            latency_ms,
        }
    }
}

fn classify(e: &reqwest::Error) -> FailureKind {
    if is_refusal(e) {
        FailureKind::AddressRefused
    } else if e.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Connect
    }
}
