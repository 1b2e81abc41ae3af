//! The WARN lines on-call reads, each with the ids to follow up (order id and the order's
//! trace id where there is an order) and never personal data: provider calls that failed
//! for good, orders flagged for a person, webhook deliveries dead-lettered, endpoints
//! disabled, NATS disconnects and reconnects, `/readyz` turning not-ready.
//!
//! Texts that may quote a provider or a tenant's endpoint (provider error messages, the
//! evidence behind a flag, response bodies) are left out: those are in the order's
//! timeline (`rampd orders show`), which on-call opens by the id on the line.

use std::sync::atomic::{AtomicBool, Ordering};

use rampd_domain::order::{Decision, EventKind};

use super::context::{current_trace_ctx, trace_id};
use crate::providers::ProviderError;

/// The order's 32-hex trace id: from its stored trace context, else the current span's.
pub fn order_trace_id(stored: Option<&str>) -> Option<String> {
    stored
        .and_then(trace_id)
        .or_else(|| current_trace_ctx().as_deref().and_then(trace_id))
}

/// What a provider failure says without quoting the provider: the endpoint and HTTP status
/// or transport failure for a retryable one, the provider's error code for a rejection.
pub fn provider_error_summary(e: &ProviderError) -> String {
    match e {
        // "endpoint: HTTP 503 (provider's message)" or "endpoint: timed out".
        ProviderError::Retryable { reason, .. } => {
            reason.split(" (").next().unwrap_or(reason).to_string()
        }
        ProviderError::RateLimited { .. } => "rate limited (HTTP 429)".into(),
        ProviderError::Rejected { code, .. } => match code {
            Some(c) => format!("rejected (code {c})"),
            None => "rejected".into(),
        },
        // "endpoint: what could not be read" (the second part may quote the body).
        ProviderError::Unknown { detail } => format!(
            "{}: answer not understood",
            detail.split(": ").next().unwrap_or("provider")
        ),
        ProviderError::OverBudget { .. } => "over the request budget; not sent".into(),
    }
}

/// A provider step of an order failed. Rejections (the provider refused for good) and
/// answers that cannot be understood are WARN; failures that the order's durable retry
/// schedule takes care of are DEBUG (they are counted in `rampd_provider_calls_total`, and
/// the order is flagged, with a WARN of its own, after `attention_after_errors` of them in
/// a row); a call held back by the request budget is not a failure.
pub fn provider_call_failed(order_id: &str, trace: Option<&str>, action: &str, e: &ProviderError) {
    let error = provider_error_summary(e);
    let trace_id = order_trace_id(trace);
    match e {
        ProviderError::Rejected { .. } | ProviderError::Unknown { .. } => tracing::warn!(
            target: "rampd::provider",
            action,
            order.id = order_id,
            order.trace_id = trace_id.as_deref(),
            error,
            "provider call failed for good; the order goes on as its state machine says"
        ),
        ProviderError::Retryable { .. } | ProviderError::RateLimited { .. } => tracing::debug!(
            target: "rampd::provider",
            action,
            order.id = order_id,
            order.trace_id = trace_id.as_deref(),
            error,
            "provider call failed; retried on the order's schedule"
        ),
        ProviderError::OverBudget { .. } => {}
    }
}

/// The reason an order is flagged, without the evidence after the first `": "` (which may
/// quote the provider): e.g. "20 consecutive provider failures", "unknown provider status
/// \"weird\"", "interrupted create unconfirmed after 5 failed or inconclusive calls; not
/// repeated".
pub fn attention_summary(reason: &str) -> &str {
    reason.split(": ").next().unwrap_or(reason)
}

/// A committed decision that flags its order (or its successor) for a person. The trace id
/// is that of `trace_ctx` (the order's stored trace context), else the current span's.
pub fn committed(d: &Decision, trace_ctx: Option<&str>) {
    let trace_id = order_trace_id(trace_ctx);
    for decision in std::iter::once(d).chain(d.spawned.as_deref()) {
        for e in &decision.events {
            if let EventKind::AttentionNeeded { reason } = &e.kind {
                let o = &decision.order;
                tracing::warn!(
                    target: "rampd::orders",
                    tenant = %o.tenant,
                    order.id = %o.id,
                    order.trace_id = trace_id.as_deref(),
                    direction = o.direction().as_str(),
                    state = o.state.as_str(),
                    reason = attention_summary(reason),
                    "order flagged for attention (rampd orders show ID has the evidence)"
                );
            }
        }
    }
}

/// The ids a webhook WARN line carries.
pub struct DeliveryIds<'a> {
    pub delivery_id: &'a str,
    pub order_id: &'a str,
    pub tenant: &'a str,
    pub endpoint_id: &'a str,
    pub trace: Option<&'a str>,
}

/// A webhook delivery gave up after its last attempt (`last`: `HTTP 500`, `timeout`, …).
pub fn webhook_dead_lettered(ids: &DeliveryIds<'_>, attempts: i32, last: &str) {
    tracing::warn!(
        target: "rampd::webhooks",
        tenant = ids.tenant,
        order.id = ids.order_id,
        order.trace_id = order_trace_id(ids.trace).as_deref(),
        webhook.id = ids.delivery_id,
        endpoint = ids.endpoint_id,
        attempts,
        last_result = last,
        "webhook delivery dead-lettered (replay it with rampd webhooks replay)"
    );
}

/// An endpoint was disabled after this delivery's attempt (`reason`: gone, failing).
pub fn endpoint_disabled(ids: &DeliveryIds<'_>, reason: &str) {
    tracing::warn!(
        target: "rampd::webhooks",
        endpoint = ids.endpoint_id,
        tenant = ids.tenant,
        reason,
        order.id = ids.order_id,
        order.trace_id = order_trace_id(ids.trace).as_deref(),
        webhook.id = ids.delivery_id,
        "webhook endpoint disabled; its deliveries are held until it is enabled"
    );
}

/// `/readyz` gave another answer than the one before: WARN when the worker stops being
/// ready (with what is not), INFO when it is ready again. Before the first answer
/// (`previous` is `None`) only a not-ready one is logged.
pub fn readiness_changed(
    worker: &str,
    previous: Option<bool>,
    ready: bool,
    detail: &serde_json::Value,
) {
    match (previous, ready) {
        (Some(true) | None, false) => tracing::warn!(
            target: "rampd::admin",
            worker,
            database = detail["database"].as_str(),
            nats = detail["nats"].as_str(),
            commands = detail["commands"].as_str(),
            migrations = detail["migrations"].as_str(),
            "not ready: /readyz answers 503 until the database, NATS, the command stream and \
             migrations are all fine"
        ),
        (Some(false), true) => tracing::info!(target: "rampd::admin", worker, "ready again"),
        _ => {}
    }
}

/// How a NATS connection event is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsLine {
    Info(&'static str),
    Warn(&'static str),
}

/// The line for `event`; `seen_connected` remembers whether this client connected before
/// (its first `Connected` is the start, later ones are reconnects).
pub fn nats_line(event: &async_nats::Event, seen_connected: &AtomicBool) -> NatsLine {
    use async_nats::Event;
    match event {
        Event::Connected if !seen_connected.swap(true, Ordering::Relaxed) => {
            NatsLine::Info("connected to NATS")
        }
        Event::Connected => NatsLine::Warn("NATS reconnected"),
        Event::Disconnected => NatsLine::Warn("NATS disconnected; reconnecting"),
        Event::LameDuckMode => NatsLine::Warn("NATS server is shutting down (lame duck mode)"),
        Event::SlowConsumer(_) => NatsLine::Warn("NATS slow consumer: messages were dropped"),
        Event::ServerError(_) => NatsLine::Warn("NATS server error"),
        Event::ClientError(_) => NatsLine::Warn("NATS client error"),
        Event::Draining => NatsLine::Info("NATS connection draining"),
        Event::Closed => NatsLine::Info("NATS connection closed"),
    }
}

/// Log a NATS connection event of the client of `worker` connected to `server`.
pub fn nats_event(
    event: &async_nats::Event,
    seen_connected: &AtomicBool,
    worker: &str,
    server: &str,
) {
    let detail = match event {
        async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_) => {
            Some(event.to_string())
        }
        _ => None,
    };
    match nats_line(event, seen_connected) {
        NatsLine::Info(m) => {
            tracing::info!(target: "rampd::nats", worker, server.address = server, "{m}")
        }
        NatsLine::Warn(m) => tracing::warn!(
            target: "rampd::nats",
            worker,
            server.address = server,
            error = detail.as_deref(),
            "{m}"
        ),
    }
}

/// `host:port` of each server in a NATS URL list (`nats://user:pass@a:4222,b:4222`),
/// without credentials.
pub fn nats_servers(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let u = u.trim();
            let with_scheme = if u.contains("://") {
                u.to_string()
            } else {
                format!("nats://{u}")
            };
            match reqwest::Url::parse(&with_scheme) {
                Ok(p) => format!(
                    "{}:{}",
                    p.host_str().unwrap_or("?"),
                    p.port().unwrap_or(4222)
                ),
                Err(_) => "?".to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn provider_summaries_quote_nothing_from_the_provider() {
        let retry = ProviderError::Retryable {
            reason: "order_status: HTTP 503 (upi zeb@okbank down)".into(),
            retry_after: None,
        };
        assert_eq!(provider_error_summary(&retry), "order_status: HTTP 503");
        let transport = ProviderError::Retryable {
            reason: "kyc_details: timed out".into(),
            retry_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(provider_error_summary(&transport), "kyc_details: timed out");
        let rejected = ProviderError::Rejected {
            code: Some(422),
            message: "account 550012349876 is closed".into(),
        };
        assert_eq!(provider_error_summary(&rejected), "rejected (code 422)");
        let unknown = ProviderError::Unknown {
            detail: "create_order: invalid type: string \"zeb@example.com\"".into(),
        };
        assert_eq!(
            provider_error_summary(&unknown),
            "create_order: answer not understood"
        );
    }

    #[test]
    fn flag_reasons_lose_their_evidence() {
        assert_eq!(
            attention_summary("20 consecutive provider failures"),
            "20 consecutive provider failures"
        );
        assert_eq!(
            attention_summary(
                "interrupted create unconfirmed after 5 failed or inconclusive calls; \
                 not repeated: lookup call failed (Rejected): no user zeb@example.com"
            ),
            "interrupted create unconfirmed after 5 failed or inconclusive calls; not repeated"
        );
    }

    #[test]
    fn the_first_connect_is_info_and_later_ones_are_reconnects() {
        let seen = AtomicBool::new(false);
        use async_nats::Event;
        assert_eq!(
            nats_line(&Event::Connected, &seen),
            NatsLine::Info("connected to NATS")
        );
        assert!(matches!(
            nats_line(&Event::Disconnected, &seen),
            NatsLine::Warn(_)
        ));
        assert_eq!(
            nats_line(&Event::Connected, &seen),
            NatsLine::Warn("NATS reconnected")
        );
        assert!(matches!(
            nats_line(&Event::Closed, &seen),
            NatsLine::Info(_)
        ));
    }

    #[test]
    fn nats_servers_drop_credentials() {
        assert_eq!(
            nats_servers("nats://u:secret@10.0.0.1:4222, nats://b.example"),
            "10.0.0.1:4222,b.example:4222"
        );
        assert_eq!(nats_servers("localhost:4333"), "localhost:4333");
    }
}
