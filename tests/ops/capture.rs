//! Process-wide telemetry for this test binary: the global tracing subscriber (installed
//! once: it is process-wide) exporting spans over OTLP/HTTP protobuf to a local receiver,
//! and JSON log lines captured in memory. Tests tell their data apart by trace id and by
//! the unique values they put in their orders.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use rampd::telemetry::{self, Options, SpanExport, Telemetry};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// One exported span, decoded.
#[derive(Debug, Clone)]
pub struct SpanRec {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    pub attrs: HashMap<String, String>,
    /// `(trace_id, span_id)` of each link.
    pub links: Vec<(String, String)>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl SpanRec {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

pub struct Capture {
    spans: Arc<Mutex<Vec<SpanRec>>>,
    logs: Arc<Mutex<Vec<u8>>>,
    telemetry: Telemetry,
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// The one capture of this process (started on first use).
pub fn capture() -> &'static Capture {
    CAPTURE.get_or_init(|| {
        let spans: Arc<Mutex<Vec<SpanRec>>> = Arc::default();
        let addr = start_receiver(spans.clone());
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = logs.clone();
        let telemetry = telemetry::init_with(Options {
            default_filter: "debug".into(),
            json: true,
            export: SpanExport::Endpoint(format!("http://{addr}/v1/traces")),
            writer: BoxMakeWriter::new(move || LogSink(sink.clone())),
            ansi: false,
        })
        .expect("telemetry starts");
        Capture {
            spans,
            logs,
            telemetry,
        }
    })
}

impl Capture {
    /// Export queued spans now (the batch processor would within seconds anyway).
    pub async fn flush(&'static self) {
        tokio::task::spawn_blocking(move || self.telemetry.flush())
            .await
            .unwrap();
    }

    pub fn spans(&self) -> Vec<SpanRec> {
        self.spans.lock().unwrap().clone()
    }

    pub fn spans_of_trace(&self, trace_id: &str) -> Vec<SpanRec> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An OTLP/HTTP protobuf receiver on its own thread and runtime, so it outlives the
/// runtime of any one test.
fn start_receiver(store: Arc<Mutex<Vec<SpanRec>>>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new()
                .route("/v1/traces", post(receive))
                .with_state(store);
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

async fn receive(
    State(store): State<Arc<Mutex<Vec<SpanRec>>>>,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut out = store.lock().unwrap();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(SpanRec {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attrs: attrs(&s.attributes),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    status: s.status.map_or(0, |st| st.code),
                });
            }
        }
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}
