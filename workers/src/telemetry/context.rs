//! W3C trace context between spans, NATS headers and database rows.
//!
//! One order is one trace: the span of the command that created the order continues the
//! upstream `traceparent` (or starts a trace), and its own `traceparent` is what the order,
//! its task, outbox and delivery rows store. Everything done later for the order (tasks,
//! provider calls, publishes, webhook attempts, later commands) starts a span whose parent
//! is that stored context. Without the tracing layer (e.g. a library user that installs no
//! subscriber) the helpers fall back to the upstream value, unchanged.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::nats::valid_traceparent;

/// The `traceparent` of `span`, when it has a valid OpenTelemetry context.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The `traceparent` of the current span.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

/// What to send on an outgoing call or message: the current span's context, else the
/// stored one.
pub fn outgoing_traceparent(stored: Option<&str>) -> Option<String> {
    current_traceparent().or_else(|| stored.map(str::to_string))
}

/// The remote context a stored or received `traceparent` names.
pub fn remote_context(traceparent: Option<&str>) -> Option<opentelemetry::Context> {
    let tp = valid_traceparent(traceparent?)?;
    let carrier = HashMap::from([("traceparent".to_string(), tp)]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Make `span` a child of the context `traceparent` names. Must be called before the span
/// is first entered; a missing or malformed value leaves the span where it is.
pub fn set_parent(span: &Span, traceparent: Option<&str>) {
    if let Some(cx) = remote_context(traceparent) {
        let _ = span.set_parent(cx);
    }
}

/// Trace ids are stored as full `traceparent` values; this is the 32-hex trace id part.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1).filter(|t| t.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_and_names_the_trace() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = remote_context(Some(tp)).expect("valid");
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(trace_id(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(remote_context(Some("00-nope")).is_none());
        assert!(remote_context(None).is_none());
        // Without a tracing layer there is no span context: the stored value is used.
        assert_eq!(outgoing_traceparent(Some(tp)).as_deref(), Some(tp));
    }
}
