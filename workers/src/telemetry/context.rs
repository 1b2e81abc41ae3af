//! W3C trace context (`traceparent` and `tracestate`) between spans, NATS headers, HTTP
//! requests and database rows. Both headers are read and written by OpenTelemetry's
//! [`TraceContextPropagator`]; nothing here parses or formats a `traceparent` by hand.
//!
//! One order is one trace: the span of the command that created the order continues the
//! upstream context (or starts a trace), and its own context is what the order, its task,
//! outbox and delivery rows store. Everything done later for the order (tasks, provider
//! calls, publishes, webhook attempts, later commands) starts a span whose parent is that
//! stored context. Without the tracing layer (e.g. a library user that installs no
//! subscriber) the helpers fall back to the upstream value, unchanged.
//!
//! The stored form (the `trace_ctx` columns, and the `Option<&str>` trace arguments in this
//! crate) is the `traceparent`, followed, when the context has a `tracestate`, by one space
//! and the `tracestate` value: `00-4bf9…4736-00f0…02b7-01 congo=t61rcWkgMzE`. A traceparent
//! has no space, so the split is unambiguous, and a row written before `tracestate` was
//! carried (a bare traceparent) is the same form with the second part absent.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The stored form of `cx`'s span context, when it is valid.
fn encode(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut fields);
    let mut stored = fields.remove(TRACEPARENT)?;
    if let Some(state) = fields.remove(TRACESTATE).filter(|s| !s.is_empty()) {
        stored.push(' ');
        stored.push_str(&state);
    }
    Some(stored)
}

/// The header fields a stored value holds (not yet validated).
fn fields(stored: &str) -> HashMap<String, String> {
    let (parent, state) = match stored.trim().split_once(' ') {
        Some((p, s)) => (p, Some(s.trim())),
        None => (stored.trim(), None),
    };
    let mut f = HashMap::from([(TRACEPARENT.to_string(), parent.to_string())]);
    if let Some(s) = state.filter(|s| !s.is_empty()) {
        f.insert(TRACESTATE.to_string(), s.to_string());
    }
    f
}

/// The remote context in header fields, when the propagator finds a valid one.
fn extract(fields: &HashMap<String, String>) -> Option<Context> {
    let cx = TraceContextPropagator::new().extract(fields);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The remote context a stored value names; a malformed `traceparent` gives `None`, a
/// malformed `tracestate` is dropped (the propagator's rule).
pub fn remote_context(stored: Option<&str>) -> Option<Context> {
    extract(&fields(stored?))
}

/// The stored form of a received context, checked and normalised by the propagator.
/// Several `tracestate` fields are one list, joined by commas (W3C Trace Context §3.3.1).
pub fn received<'a>(
    traceparent: Option<&str>,
    tracestate: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut f = HashMap::from([(TRACEPARENT.to_string(), traceparent?.to_string())]);
    let state: Vec<&str> = tracestate
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !state.is_empty() {
        f.insert(TRACESTATE.to_string(), state.join(","));
    }
    encode(&extract(&f)?)
}

/// The trace context a NATS message carries, in stored form.
pub fn from_nats(headers: Option<&async_nats::HeaderMap>) -> Option<String> {
    let h = headers?;
    received(
        h.get(TRACEPARENT).map(|v| v.as_str()),
        h.get_all(TRACESTATE).map(|v| v.as_str()),
    )
}

/// The header fields to send for a stored context: `traceparent`, and `tracestate` when
/// there is one. Nothing for a missing or malformed value.
pub fn header_fields(stored: Option<&str>) -> Vec<(&'static str, String)> {
    let Some(cx) = remote_context(stored) else {
        return Vec::new();
    };
    let mut f = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut f);
    [TRACEPARENT, TRACESTATE]
        .into_iter()
        .filter_map(|k| f.remove(k).filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect()
}

/// Header fields that start a new, sampled trace: what a client of rampd (the demo, the
/// benchmark) sends with a command of its own.
pub fn new_trace_fields() -> Vec<(&'static str, String)> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    // A v4 UUID is random and never zero in either half.
    let id = uuid::Uuid::new_v4().as_u128();
    let sc = SpanContext::new(
        TraceId::from(id),
        SpanId::from(id as u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    header_fields(encode(&Context::new().with_remote_span_context(sc)).as_deref())
}

/// The stored form of `span`'s context, when it has a valid OpenTelemetry context.
pub fn trace_ctx_of(span: &Span) -> Option<String> {
    encode(&span.context())
}

/// The stored form of the current span's context.
pub fn current_trace_ctx() -> Option<String> {
    trace_ctx_of(&Span::current())
}

/// What to send on an outgoing call or message: the current span's context, else the
/// stored one.
pub fn outgoing_trace_ctx(stored: Option<&str>) -> Option<String> {
    current_trace_ctx().or_else(|| stored.map(str::to_string))
}

/// Make `span` a child of the context `stored` names. Must be called before the span is
/// first entered; a missing or malformed value leaves the span where it is.
pub fn set_parent(span: &Span, stored: Option<&str>) {
    if let Some(cx) = remote_context(stored) {
        let _ = span.set_parent(cx);
    }
}

/// The 32-hex trace id of a stored context.
pub fn trace_id(stored: &str) -> Option<String> {
    remote_context(Some(stored)).map(|cx| cx.span().span_context().trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_bare_traceparent_as_stored_before_still_works() {
        let cx = remote_context(Some(TP)).expect("valid");
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(sc.trace_state().header(), "");
        assert_eq!(
            trace_id(TP).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(header_fields(Some(TP)), [("traceparent", TP.to_string())]);
        assert!(remote_context(Some("00-nope")).is_none());
        assert!(remote_context(None).is_none());
        assert!(header_fields(Some("00-nope")).is_empty());
        // Without a tracing layer there is no span context: the stored value is used.
        assert_eq!(outgoing_trace_ctx(Some(TP)).as_deref(), Some(TP));
    }

    #[test]
    fn tracestate_is_stored_and_sent_with_the_traceparent() {
        let stored = format!("{TP} congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
        let cx = remote_context(Some(&stored)).expect("valid");
        assert_eq!(
            cx.span().span_context().trace_state().get("congo"),
            Some("t61rcWkgMzE")
        );
        assert_eq!(encode(&cx).as_deref(), Some(stored.as_str()));
        assert_eq!(
            header_fields(Some(&stored)),
            [
                ("traceparent", TP.to_string()),
                (
                    "tracestate",
                    "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_string()
                ),
            ]
        );
        assert_eq!(
            trace_id(&stored).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // The trace id is the second dash-separated part of the stored form, as before.
        assert_eq!(
            stored.split('-').nth(1),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn received_context_is_checked_by_the_propagator() {
        // Both headers, several tracestate fields joined into one list.
        assert_eq!(
            received(Some(TP), ["a=1", " b=2 "]).as_deref(),
            Some(format!("{TP} a=1,b=2").as_str())
        );
        assert_eq!(received(Some(TP), []).as_deref(), Some(TP));
        // A malformed tracestate is dropped, the traceparent kept.
        assert_eq!(
            received(Some(TP), ["not a list member"]).as_deref(),
            Some(TP)
        );
        // No or a malformed traceparent: nothing, whatever the tracestate says.
        assert_eq!(received(None, ["a=1"]), None);
        for bad in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(received(Some(bad), []), None, "{bad}");
        }
        // Unknown flags are cleared; a later version's extra fields are tolerated.
        assert_eq!(
            received(Some(&TP.replace("-01", "-03")), []).as_deref(),
            Some(TP)
        );
        assert_eq!(
            received(Some(&format!("{}-extra", TP.replacen("00", "01", 1))), []).as_deref(),
            Some(TP)
        );
    }

    #[test]
    fn a_new_trace_is_fresh_and_valid() {
        let a = new_trace_fields();
        let b = new_trace_fields();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].0, "traceparent");
        assert!(received(Some(&a[0].1), []).is_some(), "{a:?}");
        assert!(a[0].1.ends_with("-01"), "sampled");
        assert_ne!(trace_id(&a[0].1), trace_id(&b[0].1));
    }

    #[test]
    fn nats_headers_carry_both_fields() {
        let mut h = async_nats::HeaderMap::new();
        h.insert("traceparent", TP);
        h.insert("tracestate", "congo=t61rcWkgMzE");
        h.append("tracestate", "rojo=00f067aa0ba902b7");
        assert_eq!(
            from_nats(Some(&h)).as_deref(),
            Some(format!("{TP} congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").as_str())
        );
        let mut h = async_nats::HeaderMap::new();
        h.insert("tracestate", "congo=t61rcWkgMzE");
        assert_eq!(from_nats(Some(&h)), None);
        assert_eq!(from_nats(None), None);
    }

    #[test]
    fn a_child_span_keeps_the_stored_tracestate() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let stored = format!("{TP} congo=t61rcWkgMzE");
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("child");
            set_parent(&span, Some(&stored));
            let _in = span.enter();
            let mine = current_trace_ctx().expect("the span has a context");
            let (parent, state) = mine.split_once(' ').expect("a tracestate");
            assert_eq!(state, "congo=t61rcWkgMzE");
            assert_eq!(trace_id(parent), trace_id(TP));
            assert_ne!(parent, TP, "the child's own span id");
            let sent = header_fields(outgoing_trace_ctx(Some(TP)).as_deref());
            assert_eq!(sent[1], ("tracestate", "congo=t61rcWkgMzE".to_string()));
        });
    }
}
