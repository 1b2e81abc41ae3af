//! A scriptable webhook receiver for the delivery tests: answers each request as told
//! (status, `Retry-After`, a redirect, or holding the request until released), records
//! every request with its headers, and checks its signatures with the independent
//! [`verify`](crate::verify) against every secret it knows.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::watch;

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooMany(u64),
    /// 302 to this location.
    Redirect(String),
    /// Hold the request until [`HookReceiver::release`], then answer 204.
    Hold,
    /// Wait this long, then answer 204.
    Sleep(Duration),
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Value,
    pub raw: Vec<u8>,
    /// The answer given.
    pub status: u16,
    /// Per known secret (in the order given): does a signature verify with it?
    pub verified_by: Vec<bool>,
}

struct Inner {
    script: VecDeque<Reply>,
    default: Reply,
    secrets: Vec<String>,
    received: Vec<Hook>,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone)]
pub struct HookReceiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    release: watch::Sender<bool>,
    stop: watch::Sender<bool>,
}

/// A loopback port that is bound but not listening: connections to it are refused (a
/// receiver or server that is down), and no other process can take it while it is held,
/// so a receiver can later come up on it ([`HookReceiver::start_on`]).
pub struct DownPort(tokio::net::TcpSocket);

impl DownPort {
    pub fn new() -> DownPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        DownPort(socket)
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }
}

impl Default for DownPort {
    fn default() -> Self {
        Self::new()
    }
}

impl HookReceiver {
    pub async fn start(secrets: &[&str], default: Reply) -> HookReceiver {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        Self::serve(listener, secrets, default)
    }

    /// A receiver on a port that was down until now.
    pub async fn start_on(port: DownPort, secrets: &[&str], default: Reply) -> HookReceiver {
        Self::serve(port.0.listen(1024).unwrap(), secrets, default)
    }

    fn serve(listener: tokio::net::TcpListener, secrets: &[&str], default: Reply) -> HookReceiver {
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let (release, _) = watch::channel(false);
        let (stop, mut stopped) = watch::channel(false);
        let r = HookReceiver {
            url,
            inner: Arc::new(Mutex::new(Inner {
                script: VecDeque::new(),
                default,
                secrets: secrets.iter().map(|s| s.to_string()).collect(),
                received: Vec::new(),
                in_flight: 0,
                max_in_flight: 0,
            })),
            release,
            stop,
        };
        let app = axum::Router::new()
            .route("/hooks", post(receive))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        r
    }

    /// Answer the next requests like this, in order, then fall back to the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        self.inner.lock().unwrap().default = reply;
    }

    /// Let held requests (and later ones) through.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }

    pub fn received(&self) -> Vec<Hook> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Requests answered with 2xx.
    pub fn accepted(&self) -> Vec<Hook> {
        self.received()
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .collect()
    }

    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    pub fn in_flight(&self) -> usize {
        self.inner.lock().unwrap().in_flight
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn receive(State(r): State<HookReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let now = chrono::Utc::now().timestamp();
    let reply = {
        let mut i = r.inner.lock().unwrap();
        i.in_flight += 1;
        i.max_in_flight = i.max_in_flight.max(i.in_flight);
        i.script.pop_front().unwrap_or_else(|| i.default.clone())
    };
    let (status, mut extra) = match &reply {
        Reply::Status(s) => (*s, None),
        Reply::TooMany(secs) => (429, Some(("retry-after", secs.to_string()))),
        Reply::Redirect(to) => (302, Some(("location", to.clone()))),
        Reply::Hold => {
            let mut rx = r.release.subscribe();
            let _ = rx.wait_for(|open| *open).await;
            (204, None)
        }
        Reply::Sleep(d) => {
            tokio::time::sleep(*d).await;
            (204, None)
        }
    };
    {
        let mut i = r.inner.lock().unwrap();
        i.in_flight -= 1;
        let verified_by = i
            .secrets
            .iter()
            .map(|s| crate::verify::verify(s, &id, &ts, &sig, &body, now).is_ok())
            .collect();
        i.received.push(Hook {
            webhook_id: id,
            timestamp: ts,
            signature: sig,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw: body.to_vec(),
            status,
            verified_by,
        });
    }
    let mut resp = StatusCode::from_u16(status).unwrap().into_response();
    if let Some((k, v)) = extra.take() {
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}
