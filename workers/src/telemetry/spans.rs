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

/// A JetStream command being processed (messaging consumer span). Continues the upstream
/// trace context (`traceparent`, `tracestate`) when the message carries one.
pub fn command(
    subject: &str,
    message_id: Option<&str>,
    delivered: i64,
    upstream: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        "command",
        otel.name = %format_args!("process {subject}"),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.destination.name = subject,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.message.id = message_id,
        subject = subject,
        delivered,
        command_id = Empty,
        order.client_id = Empty,
        outcome = Empty,
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
        command = command,
        outcome = Empty,
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
        order.id = order_id,
        kind = kind,
        action = Empty,
    );
    set_parent(&span, trace);
    span
}

/// One HTTP exchange with a provider (client span). `route` is the endpoint's template,
/// never the concrete path.
pub fn provider_call(provider: &str, method: &str, route: &str, attempt: u32) -> Span {
    tracing::info_span!(
        "provider.call",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "client",
        http.request.method = method,
        url.template = route,
        http.request.resend_count = attempt.saturating_sub(1),
        rampd.retry.attempt = attempt,
        provider = provider,
        http.response.status_code = Empty,
        outcome = Empty,
        otel.status_code = Empty,
    )
}

/// One outbox row published to NATS (messaging producer span).
pub fn publish(subject: &str, message_id: &str, trace: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format_args!("publish {subject}"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.destination.name = subject,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.message.id = message_id,
    );
    set_parent(&span, trace);
    span
}

/// One webhook attempt (HTTP client span). The URL is left out: tenants put tokens in it.
pub fn webhook(
    delivery_id: &str,
    order_id: &str,
    endpoint_id: &str,
    attempt: i32,
    event_type: &str,
    trace: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        "webhook.attempt",
        otel.name = "POST webhook",
        otel.kind = "client",
        http.request.method = "POST",
        url.template = "webhook",
        webhook.id = delivery_id,
        webhook.endpoint_id = endpoint_id,
        webhook.event_type = event_type,
        order.id = order_id,
        rampd.retry.attempt = attempt,
        http.response.status_code = Empty,
        outcome = Empty,
    );
    set_parent(&span, trace);
    span
}

/// An operator's admin command on an order.
pub fn admin(action: &str, order_id: &str, trace: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "admin",
        otel.name = %format_args!("admin {action}"),
        admin.action = action,
        order.id = order_id,
    );
    set_parent(&span, trace);
    span
}

/// Order attributes on the current span: id, tenant, direction, state before and after
/// a decision.
pub fn annotate_order(order_id: &str, tenant: &str, direction: &str, before: &str, after: &str) {
    let span = Span::current();
    span.set_attribute("order.id", order_id.to_string());
    span.set_attribute("tenant", tenant.to_string());
    span.set_attribute("direction", direction.to_string());
    span.set_attribute("order.state.before", before.to_string());
    span.set_attribute("order.state.after", after.to_string());
}

/// A provider callback being applied to an order, in the order's trace.
pub fn callback(provider: &str, order_id: &str, trace: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "callback",
        otel.name = %format_args!("callback {provider}"),
        provider = provider,
        order.id = order_id,
    );
    set_parent(&span, trace);
    span
}
