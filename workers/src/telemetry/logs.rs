//! Trace and span ids on log lines.
//!
//! The OpenTelemetry context of a span can only be read through the dispatcher, which is
//! not reachable while an event is being formatted. So [`TraceIdsLayer`] reads it when a
//! span is first entered and keeps the ids in the span's extensions, and
//! [`WithTraceIds`] puts them at the front of each JSON line.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::span::Id;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Hex trace and span id of a span, kept in its extensions.
#[derive(Debug, Clone)]
struct TraceIds {
    trace_id: String,
    span_id: String,
}

pub struct TraceIdsLayer;

impl<S> tracing_subscriber::Layer<S> for TraceIdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let cx =
            tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(id, d));
        let Some(cx) = cx else { return };
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            span.extensions_mut().insert(TraceIds {
                trace_id: sc.trace_id().to_string(),
                span_id: sc.span_id().to_string(),
            });
        }
    }
}

/// A JSON event format with `trace_id` and `span_id` of the current span first.
pub struct WithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = ctx
            .lookup_current()
            .and_then(|s| s.extensions().get::<TraceIds>().cloned());
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match (ids, line.strip_prefix('{')) {
            (Some(ids), Some(rest)) => write!(
                writer,
                "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",{rest}",
                ids.trace_id, ids.span_id
            ),
            _ => writer.write_str(&line),
        }
    }
}
