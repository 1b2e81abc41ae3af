//! Trace and span ids on log lines, and which span fields a text line shows.
//!
//! The OpenTelemetry context of a span can only be read through the dispatcher, which is
//! not reachable while an event is being formatted. So [`TraceIdsLayer`] reads it when a
//! span is first entered and keeps the ids in the span's extensions, and
//! [`WithTraceIds`] puts them at the front of each JSON line.
//!
//! Spans carry OpenTelemetry's semantic-convention attributes (`otel.*`, `messaging.*`,
//! `http.*`, `url.*`, `server.port`) for the trace exporter. [`TextFields`] leaves them
//! out of text lines, which show a span's `rampd.*` fields (order, command, task, outcome)
//! and `server.address` and `error.type`; JSON lines keep every field.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
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

/// Text-line fields: `name=value` (values as `Debug`, so strings quoted), the message bare,
/// space-separated; the trace exporter's attributes are left out (see the module docs).
pub struct TextFields;

/// Fields only the trace exporter reads.
fn for_traces_only(name: &str) -> bool {
    ["otel.", "messaging.", "http.", "url."]
        .iter()
        .any(|p| name.starts_with(p))
        || name == "server.port"
}

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut v = TextVisitor {
            writer,
            seen: false,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    seen: bool,
    result: fmt::Result,
}

impl Visit for TextVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || for_traces_only(name) {
            return;
        }
        let sep = if self.seen { " " } else { "" };
        self.seen = true;
        self.result = match name {
            "message" => write!(self.writer, "{sep}{value:?}"),
            _ => write!(self.writer, "{sep}{name}={value:?}"),
        };
    }
}

/// Log lines written in memory, for tests that read what a subscriber printed: give a
/// clone to `with_writer(move || buf.clone())`, read them back with [`text`](Self::text).
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl LogBuffer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{LogBuffer, TextFields};

    /// A text line shows the event's fields and its spans' `rampd.*` fields, never the
    /// trace exporter's semantic-convention attributes.
    #[test]
    fn text_lines_leave_the_exporters_attributes_out() {
        let buf = LogBuffer::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .compact()
            .with_ansi(false)
            .fmt_fields(TextFields)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "command",
                otel.name = "process ramp.cmd.{tenant}.onramp.create",
                messaging.system = "nats",
                http.request.method = "POST",
                url.full = "http://127.0.0.1/v1/orders",
                server.address = "127.0.0.1",
                server.port = 4222,
                rampd.command.id = "c-1",
                rampd.order.client_id = tracing::field::Empty,
            );
            span.record("rampd.order.client_id", "o-1");
            let _in = span.enter();
            tracing::warn!(order.id = "01a2", attempts = 3, "provider call failed");
        });
        let line = buf.text();
        assert!(
            line.contains(
                "provider call failed order.id=\"01a2\" attempts=3 server.address=\"127.0.0.1\" \
                 rampd.command.id=\"c-1\" rampd.order.client_id=\"o-1\""
            ),
            "{line}"
        );
        for gone in ["otel.", "messaging.", "http.", "url.", "server.port"] {
            assert!(!line.contains(gone), "{gone} in {line}");
        }
    }
}
