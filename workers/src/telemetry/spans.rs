//! The spans of an order's trace, with OpenTelemetry semantic-convention attributes.
//!
//! Nothing secret or personal goes into a span: ids, subjects, route templates, states and
//! status codes only (never bodies, URLs with queries, emails, phones, PANs, account
//! numbers, UPI ids, tokens or keys).

use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use opentelemetry::trace::TraceContextExt;

use super::context::set_parent;

/// `url` without what may be secret: user and password, query and fragment.
pub fn redacted_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// The NATS server a span's message went through (`server.address`, `server.port`).
#[derive(Debug, Clone, Default)]
pub struct Server {
    pub address: String,
    pub port: u16,
}

impl Server {
    /// The server `client` is connected to now.
    pub fn of(client: &async_nats::Client) -> Server {
        let info = client.server_info();
        Server {
            address: info.host,
            port: info.port,
        }
    }
}

/// A subject with its tenant token as `{tenant}` (`ramp.cmd.{tenant}.onramp.create`), for
/// span names: one name per kind of message, not one per tenant.
pub fn destination_template(subject: &str) -> String {
    let mut parts: Vec<&str> = subject.split('.').collect();
    if parts.len() > 3 && parts[0] == "ramp" && matches!(parts[1], "cmd" | "evt") {
        parts[2] = "{tenant}";
    }
    parts.join(".")
}

/// A JetStream command being processed (messaging consumer span). Continues the upstream
/// trace context (`traceparent`, `tracestate`) when the message carries one.
pub fn command(
    subject: &str,
    message_id: Option<&str>,
    delivered: i64,
    upstream: Option<&str>,
    consumer: Option<&str>,
    server: &Server,
) -> Span {
    let template = destination_template(subject);
    let span = tracing::info_span!(
        "command",
        otel.name = %format_args!("process {template}"),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = subject,
        messaging.destination.template = %template,
        messaging.consumer.group.name = consumer,
        server.address = %server.address,
        server.port = server.port,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.message.id = message_id,
        rampd.nats.delivered = delivered,
        rampd.command.id = Empty,
        rampd.order.client_id = Empty,
    );
    set_parent(&span, upstream);
    span
}

/// A command applied to an existing order: a child of the order's trace, linked to the
/// command's own (upstream) context. One span per attempt: an attempt whose write lost to a
/// concurrent one carries `outcome = "conflict"` and no order state; the attempt that
/// commits carries the state before and after.
pub fn order_command(command: &str, order_trace: Option<&str>, upstream: &Span) -> Span {
    let span = tracing::info_span!(
        "order.command",
        otel.name = %format_args!("apply {command}"),
        rampd.command = command,
        rampd.outcome = Empty,
    );
    set_parent(&span, order_trace);
    let command = upstream.context().span().span_context().clone();
    if command.is_valid() {
        span.add_link(command);
    }
    span
}

/// One run of an order's task.
pub fn task(order_id: &str, kind: &str, trace: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "task",
        otel.name = %format_args!("task {kind}"),
        rampd.order.id = order_id,
        rampd.task.kind = kind,
        rampd.action = Empty,
    );
    set_parent(&span, trace);
    span
}

/// One HTTP exchange with a provider (client span). `route` is the endpoint's template,
/// never the concrete path.
pub fn provider_call(
    provider: &str,
    method: &str,
    route: &str,
    attempt: u32,
    url: &reqwest::Url,
) -> Span {
    tracing::info_span!(
        "provider.call",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "client",
        http.request.method = method,
        url.template = route,
        url.full = %redacted_url(url),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        error.r#type = Empty,
        http.request.resend_count = attempt.saturating_sub(1),
        rampd.retry.attempt = attempt,
        rampd.provider = provider,
        http.response.status_code = Empty,
        rampd.outcome = Empty,
        otel.status_code = Empty,
    )
}

/// One outbox row published to NATS (messaging producer span).
pub fn publish(subject: &str, message_id: &str, trace: Option<&str>, server: &Server) -> Span {
    let template = destination_template(subject);
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("publish {template}"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = subject,
        messaging.destination.template = %template,
        server.address = %server.address,
        server.port = server.port,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.message.id = message_id,
    );
    set_parent(&span, trace);
    span
}

/// One webhook attempt (HTTP client span). The URL is left out (tenants put tokens in
/// its path and query), its host and port are not.
pub fn webhook(
    delivery_id: &str,
    order_id: &str,
    endpoint_id: &str,
    attempt: i32,
    event_type: &str,
    trace: Option<&str>,
    url: &str,
) -> Span {
    let url = reqwest::Url::parse(url).ok();
    let host = url.as_ref().and_then(|u| u.host_str().map(str::to_string));
    let port = url.as_ref().and_then(reqwest::Url::port_or_known_default);
    let span = tracing::info_span!(
        "webhook.attempt",
        otel.name = "POST webhook",
        otel.kind = "client",
        http.request.method = "POST",
        url.template = "webhook",
        server.address = host,
        server.port = port,
        rampd.webhook.delivery_id = delivery_id,
        rampd.webhook.endpoint_id = endpoint_id,
        rampd.webhook.event_type = event_type,
        rampd.order.id = order_id,
        rampd.retry.attempt = attempt,
        http.response.status_code = Empty,
        rampd.outcome = Empty,
    );
    set_parent(&span, trace);
    span
}

/// An operator's admin command on an order.
pub fn admin(action: &str, order_id: &str, trace: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "admin",
        otel.name = %format_args!("admin {action}"),
        rampd.admin.action = action,
        rampd.order.id = order_id,
    );
    set_parent(&span, trace);
    span
}

/// Order attributes on the current span (namespaced `rampd.*`): id, tenant, direction,
/// state before and after a decision.
pub fn annotate_order(order_id: &str, tenant: &str, direction: &str, before: &str, after: &str) {
    let span = Span::current();
    span.set_attribute("rampd.order.id", order_id.to_string());
    span.set_attribute("rampd.tenant", tenant.to_string());
    span.set_attribute("rampd.order.direction", direction.to_string());
    span.set_attribute("rampd.order.state.before", before.to_string());
    span.set_attribute("rampd.order.state.after", after.to_string());
}

/// A provider callback being applied to an order, in the order's trace.
pub fn callback(provider: &str, order_id: &str, trace: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "callback",
        otel.name = %format_args!("callback {provider}"),
        rampd.provider = provider,
        rampd.order.id = order_id,
    );
    set_parent(&span, trace);
    span
}

#[cfg(test)]
mod tests {
    use super::{destination_template, redacted_url};

    #[test]
    fn a_span_url_keeps_no_credentials_query_or_fragment() {
        let url =
            reqwest::Url::parse("https://u:p@api.example.test:8443/v1/orders?key=s#f").unwrap();
        assert_eq!(
            redacted_url(&url),
            "https://api.example.test:8443/v1/orders"
        );
    }

    #[test]
    fn span_names_carry_the_subject_template_not_the_tenant() {
        let t = destination_template;
        assert_eq!(
            t("ramp.cmd.acme.onramp.create"),
            "ramp.cmd.{tenant}.onramp.create"
        );
        assert_eq!(
            t("ramp.evt.globex.offramp.status_changed"),
            "ramp.evt.{tenant}.offramp.status_changed"
        );
        assert_eq!(t("ramp.dlq.ramp.cmd.acme.x"), "ramp.dlq.ramp.cmd.acme.x");
        assert_eq!(t("ramp.cmd.acme"), "ramp.cmd.acme");
    }
}
