//! The HTTP attempt against real local servers: the address guard at connect time, the
//! response size cap and excerpt, `Retry-After`, redirects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rampd_domain::webhooks::{AddressPolicy, AttemptResult, FailureKind};

use super::http::{Outgoing, WebhookHttp};

/// A server on 127.0.0.1 answering every POST with `reply`; counts requests.
async fn server(reply: (StatusCode, HeaderMap, String)) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hooks",
        post(move || {
            let reply = reply.clone();
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                reply
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    (port, hits)
}

fn loopback() -> AddressPolicy {
    AddressPolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
    }
}

async fn send(http: &WebhookHttp, url: &str) -> super::http::Sent {
    http.send(&Outgoing {
        url,
        webhook_id: "msg_1",
        timestamp: 1,
        signature: "v1,x",
        body: "{}",
        trace_ctx: None,
    })
    .await
}

fn client(policy: AddressPolicy) -> WebhookHttp {
    crate::app::install_crypto();
    WebhookHttp::new(policy, Duration::from_secs(5), 1024).unwrap()
}

#[tokio::test]
async fn names_resolving_to_restricted_addresses_are_refused_at_connect_time() {
    let (port, hits) = server((StatusCode::NO_CONTENT, HeaderMap::new(), String::new())).await;
    // `localhost` resolves to loopback: refused by the resolver without an allow-list…
    let strict = client(AddressPolicy::default());
    for url in [
        format!("http://localhost:{port}/hooks"),
        format!("http://127.0.0.1:{port}/hooks"),
        format!("http://[::ffff:127.0.0.1]:{port}/hooks"),
    ] {
        let sent = send(&strict, &url).await;
        assert_eq!(
            sent.result,
            AttemptResult::Failed(FailureKind::AddressRefused),
            "{url}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was contacted");
    // …and reaches the server when loopback is allowed.
    let open = client(loopback());
    let sent = send(&open, &format!("http://localhost:{port}/hooks")).await;
    assert_eq!(sent.result, AttemptResult::Response { status: 204 });
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// IPv6 literals that carry a restricted IPv4 address, or lie in a special-purpose block,
/// are refused before any connect, even with loopback allowed as the tests allow it.
#[tokio::test]
async fn ipv6_literals_carrying_restricted_ipv4_are_refused_before_connecting() {
    let open = client(AddressPolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
    });
    for host in [
        "[::127.0.0.1]",
        "[::10.0.0.1]",
        "[2002:7f00:1::1]",
        "[::ffff:0:7f00:1]",
        "[100::1]",
        "[64:ff9b::7f00:1]",
        "[2001:0:4136:e378:8000:63bf:3f57:fdf2]",
    ] {
        let url = format!("http://{host}:9/hooks");
        let sent = send(&open, &url).await;
        assert_eq!(
            sent.result,
            AttemptResult::Failed(FailureKind::AddressRefused),
            "{url}"
        );
    }
}

#[tokio::test]
async fn bodies_are_capped_redacted_and_retry_after_read() {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", "7".parse().unwrap());
    let body = format!("slow down asha@example.com {}", "x".repeat(100_000));
    let (port, _) = server((StatusCode::TOO_MANY_REQUESTS, headers, body)).await;
    let sent = send(
        &client(loopback()),
        &format!("http://127.0.0.1:{port}/hooks"),
    )
    .await;
    assert_eq!(sent.result, AttemptResult::Response { status: 429 });
    assert_eq!(sent.retry_after, Some(Duration::from_secs(7)));
    let excerpt = sent.excerpt.unwrap();
    assert!(excerpt.starts_with("slow down [redacted] xxx"), "{excerpt}");
    assert!(excerpt.chars().count() <= 256);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (target, target_hits) =
        server((StatusCode::NO_CONTENT, HeaderMap::new(), String::new())).await;
    let mut headers = HeaderMap::new();
    headers.insert(
        "location",
        format!("http://127.0.0.1:{target}/hooks").parse().unwrap(),
    );
    let (port, _) = server((StatusCode::TEMPORARY_REDIRECT, headers, String::new())).await;
    let sent = send(
        &client(loopback()),
        &format!("http://127.0.0.1:{port}/hooks"),
    )
    .await;
    assert_eq!(sent.result, AttemptResult::Response { status: 307 });
    assert_eq!(target_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn sequential_attempts_reuse_one_pooled_connection() {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use axum::extract::ConnectInfo;

    let peers: Arc<Mutex<BTreeSet<SocketAddr>>> = Arc::default();
    let seen = peers.clone();
    let app = axum::Router::new().route(
        "/hooks",
        post(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().insert(peer);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await
    });
    let http = client(loopback());
    for _ in 0..5 {
        let sent = send(&http, &format!("http://127.0.0.1:{port}/hooks")).await;
        assert_eq!(sent.result, AttemptResult::Response { status: 204 });
    }
    assert_eq!(peers.lock().unwrap().len(), 1, "one connection, reused");
}

#[tokio::test]
async fn retry_after_dates_are_read_in_every_http_form() {
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    for date in [
        at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        at.format("%A, %d-%b-%y %H:%M:%S GMT").to_string(),
        at.format("%a %b %e %H:%M:%S %Y").to_string(),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", date.parse().unwrap());
        let (port, _) = server((StatusCode::SERVICE_UNAVAILABLE, headers, String::new())).await;
        let sent = send(
            &client(loopback()),
            &format!("http://127.0.0.1:{port}/hooks"),
        )
        .await;
        let wait = sent.retry_after.unwrap_or_else(|| panic!("{date}"));
        assert!(
            wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600),
            "{date}: {wait:?}"
        );
    }
}

#[tokio::test]
async fn the_trace_context_goes_out_with_its_tracestate() {
    use std::sync::Mutex;

    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/hooks",
        post(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(headers);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let http = client(loopback());
    let url = format!("http://127.0.0.1:{port}/hooks");
    for stored in [format!("{tp} congo=t61rcWkgMzE"), tp.to_string()] {
        let sent = http
            .send(&Outgoing {
                url: &url,
                webhook_id: "msg_1",
                timestamp: 1,
                signature: "v1,x",
                body: "{}",
                trace_ctx: Some(&stored),
            })
            .await;
        assert_eq!(sent.result, AttemptResult::Response { status: 204 });
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["traceparent"], tp);
    assert_eq!(seen[0]["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(seen[1]["traceparent"], tp);
    assert!(
        seen[1].get("tracestate").is_none(),
        "none stored, none sent"
    );
}
