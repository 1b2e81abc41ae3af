//! Telemetry: logs, traces and metrics.
//!
//! - Logs: `tracing-subscriber`, filtered by `RUST_LOG` (default `info`, chatty dependencies
//!   quieted), compact text or JSON (`RAMPD_LOG_FORMAT=json`). Every JSON line written
//!   inside a span carries that span's `trace_id` and `span_id` ([`logs`]).
//! - Traces: OpenTelemetry through `tracing-opentelemetry`. With JSON logs or an exporter,
//!   spans get W3C ids (so logs, stored rows and outgoing headers name the order's trace);
//!   they are exported over OTLP/HTTP protobuf only when an endpoint is configured with the
//!   standard variables
//!   (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
//!   `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` as usual;
//!   `OTEL_SDK_DISABLED=true` exports nothing; `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` may
//!   only name `http/protobuf`, the one protocol built in). The resource carries
//!   `service.version` and a `service.instance.id` per process.
//!   [`context`] carries trace context through NATS headers and database rows; [`spans`]
//!   builds the spans with their semantic-convention attributes.
//! - Metrics: [`meters`] (Prometheus, served by [`crate::admin::http`]).

pub mod context;
pub mod logs;
pub mod meters;
pub mod process;
pub mod spans;
pub mod warnings;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use context::{current_trace_ctx, outgoing_trace_ctx};

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpanExport {
    /// Ids only; nothing leaves the process.
    #[default]
    Off,
    /// OTLP/HTTP protobuf, endpoint and headers from the standard `OTEL_*` variables.
    FromEnv,
    /// OTLP/HTTP protobuf to this full URL (e.g. `http://127.0.0.1:4318/v1/traces`).
    Endpoint(String),
}

impl SpanExport {
    /// `FromEnv` when one of the standard endpoint variables is set, else `Off`; always
    /// `Off` under `OTEL_SDK_DISABLED=true` (the standard switch: spans keep their ids for
    /// logs and stored rows, nothing is exported).
    pub fn from_env() -> SpanExport {
        let var = |k: &str| std::env::var(k).ok();
        export_from(var("OTEL_SDK_DISABLED").as_deref(), |k| {
            var(k).is_some_and(|v| !v.trim().is_empty())
        })
    }
}

fn export_from(sdk_disabled: Option<&str>, set: impl Fn(&str) -> bool) -> SpanExport {
    if sdk_disabled.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return SpanExport::Off;
    }
    if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT") {
        SpanExport::FromEnv
    } else {
        SpanExport::Off
    }
}

/// The OTLP protocol `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`) names. Only `http/protobuf` (the default) is built in;
/// `http/json` and `grpc` are refused by name, so the setting never silently falls back.
fn otlp_protocol(traces: Option<&str>, any: Option<&str>) -> anyhow::Result<Protocol> {
    match traces.or(any).map(str::trim) {
        None | Some("") | Some("http/protobuf") => Ok(Protocol::HttpBinary),
        Some(other) => anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not built in; this build exports http/protobuf only"
        ),
    }
}

pub struct Options {
    /// The `RUST_LOG` default when it is unset, e.g. `info`.
    pub default_filter: String,
    pub json: bool,
    pub export: SpanExport,
    /// Where log lines go (stderr unless a test captures them).
    pub writer: BoxMakeWriter,
    /// Colour text lines with ANSI escapes (only on a terminal).
    pub ansi: bool,
}

impl Options {
    /// From the environment: `RUST_LOG`, `RAMPD_LOG_FORMAT`, `OTEL_*`.
    pub fn from_env(default_filter: &str) -> Options {
        Options {
            default_filter: default_filter.to_string(),
            json: std::env::var("RAMPD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")),
            export: SpanExport::from_env(),
            writer: BoxMakeWriter::new(std::io::stderr),
            ansi: use_ansi(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ),
        }
    }
}

/// Colours only on a terminal, and not when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>): a file, a pipe or a log collector gets plain text.
fn use_ansi(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Keeps the tracer provider; [`Telemetry::shutdown`] flushes the spans still queued.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export what is queued now (blocking; call from a blocking context or at exit).
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            eprintln!("rampd: flushing spans failed: {e}");
        }
    }

    /// Flush and stop the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("rampd: span exporter shutdown: {e}");
        }
    }
}

/// Install logging and tracing from the environment. A second call in one process keeps
/// the first subscriber (and returns a guard that holds nothing).
pub fn init(default_filter: &str) -> Telemetry {
    init_with(Options::from_env(default_filter)).unwrap_or_else(|e| {
        eprintln!("rampd: telemetry disabled: {e}");
        Telemetry::default()
    })
}

/// Install logging and tracing as `opts` says.
pub fn init_with(opts: Options) -> anyhow::Result<Telemetry> {
    // The exporter's HTTP client needs the TLS provider (ring) in place.
    crate::tls::install_crypto();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},sqlx=warn,sea_orm=warn,sea_orm_migration=warn,async_nats=warn,hyper=warn,reqwest=warn",
            opts.default_filter
        ))
    });
    // A bad exporter setting must not cost the logs: keep the ids, export nothing.
    let provider = tracer_provider(&opts.export).or_else(|e| {
        eprintln!("rampd: span export disabled: {e}");
        tracer_provider(&SpanExport::Off)
    })?;
    // Spans of rampd itself reach OpenTelemetry whatever the log level says, when anything
    // shows their ids: an exporter or JSON logs. Otherwise (text logs, no exporter: the
    // demo, a developer's terminal) there is no OTel layer and stored rows keep the
    // upstream trace context (`traceparent` and `tracestate`) as it came.
    let traced = opts.json || opts.export != SpanExport::Off;
    let otel = traced.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("rampd"))
            // Names and ids carry the meaning; source locations, thread names and busy/idle
            // timings would only add attributes to every span.
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(Targets::new().with_target("rampd", tracing::Level::INFO))
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(opts.writer);
    let fmt = if opts.json {
        fmt.json()
            .event_format(logs::WithTraceIds(
                tracing_subscriber::fmt::format().json().flatten_event(true),
            ))
            .with_filter(filter)
            .boxed()
    } else {
        fmt.compact()
            .fmt_fields(logs::TextFields)
            .with_ansi(opts.ansi)
            .with_filter(filter)
            .boxed()
    };
    // Only JSON lines print the ids.
    let ids = opts.json.then_some(logs::TraceIdsLayer);
    let installed = tracing_subscriber::registry()
        .with(otel)
        .with(ids)
        .with(fmt)
        .try_init();
    Ok(match installed {
        Ok(()) => Telemetry {
            provider: Some(provider),
        },
        Err(_) => Telemetry::default(),
    })
}

fn tracer_provider(export: &SpanExport) -> anyhow::Result<SdkTracerProvider> {
    let mut resource = Resource::builder();
    let env_names_service = std::env::var("OTEL_SERVICE_NAME").is_ok()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if !env_names_service {
        resource = resource.with_service_name("rampd");
    }
    // The build's version, and one id per process (a replica restarted is a new instance),
    // unless `OTEL_RESOURCE_ATTRIBUTES` names them.
    let named = |key: &str| {
        std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains(&format!("{key}=")))
    };
    if !named("service.version") {
        resource = resource.with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
    }
    if !named("service.instance.id") {
        resource = resource.with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            uuid::Uuid::new_v4().to_string(),
        ));
    }
    let var = |k: &str| std::env::var(k).ok();
    let protocol = otlp_protocol(
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").as_deref(),
        var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref(),
    );
    // The sampler comes from OTEL_TRACES_SAMPLER(_ARG) (default: parent-based, always on).
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    let exporter = match export {
        // Nothing is exported: spans still get ids (for logs, stored rows and outgoing
        // headers), but only a trace an upstream marked sampled is recorded, and with no
        // exporter even that goes nowhere. Roots are not recorded: cheap.
        SpanExport::Off if std::env::var("OTEL_TRACES_SAMPLER").is_err() => {
            return Ok(builder
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
                .build());
        }
        SpanExport::Off => return Ok(builder.build()),
        SpanExport::FromEnv => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol?)
            .build()?,
        SpanExport::Endpoint(url) => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol?)
            .with_endpoint(url.clone())
            .build()?,
    };
    Ok(builder.with_batch_exporter(exporter).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_switch_and_the_endpoint_decide_export() {
        let endpoint = |k: &str| k == "OTEL_EXPORTER_OTLP_ENDPOINT";
        assert_eq!(export_from(None, endpoint), SpanExport::FromEnv);
        assert_eq!(export_from(Some("false"), endpoint), SpanExport::FromEnv);
        assert_eq!(export_from(Some("TRUE"), endpoint), SpanExport::Off);
        assert_eq!(export_from(None, |_| false), SpanExport::Off);
    }

    #[test]
    fn only_http_protobuf_is_built_in() {
        assert!(matches!(
            otlp_protocol(None, None),
            Ok(Protocol::HttpBinary)
        ));
        assert!(matches!(
            otlp_protocol(None, Some("http/protobuf")),
            Ok(Protocol::HttpBinary)
        ));
        let grpc = otlp_protocol(Some("grpc"), Some("http/protobuf")).unwrap_err();
        assert!(grpc.to_string().contains("grpc is not built in"), "{grpc}");
        assert!(otlp_protocol(None, Some("http/json")).is_err());
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_ansi(true, None));
        assert!(use_ansi(true, Some("".as_ref())));
        assert!(!use_ansi(true, Some("1".as_ref())));
        assert!(!use_ansi(false, None));
    }
}
