//! Merchant callbacks over real HTTP: a tiny receiver on 127.0.0.1 records every request
//! (headers and raw body); tests wait for what they expect with a deadline, never a fixed
//! sleep. "Nothing else arrives" is shown with a later callback: the sandbox sends in
//! order, so once that one is in, every earlier one is too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::offramp::{HASH, linked_offramp};
use super::{EMAIL, TP, client, get_control, linked_order, put_control, start, upi_order};
use crate::providers::OnmetaClient;
use rampd_sandbox::{Callbacks, Progression, Sandbox, SandboxConfig, SandboxHandle};

const SECRET: &str = "merchant-test-secret";
const UTR: &str = "412345678901";
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn status(&self) -> String {
        let v = self.json();
        let inner = v.get("request_data").unwrap_or(&v);
        inner["status"].as_str().unwrap().to_owned()
    }

    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }

    /// Whether `X-Onmeta-Signature` is HMAC-SHA256(`secret`, raw body) in lowercase hex.
    fn signed_with(&self, secret: &str) -> bool {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&self.body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.header("x-onmeta-signature") == expected
    }
}

/// Records every request to `/hook` (answered 200) and `/refuse` (answered 500).
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// The receiver and its base URL.
    async fn start() -> (Receiver, String) {
        async fn record(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            r.hits.lock().unwrap().push(Hit { headers, body });
            StatusCode::OK
        }
        async fn refuse(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            r.hits.lock().unwrap().push(Hit { headers, body });
            StatusCode::INTERNAL_SERVER_ERROR
        }
        let receiver = Receiver::default();
        let app = Router::new()
            .route("/hook", post(record))
            .route("/refuse", post(refuse))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, base)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns all of them.
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        eventually(&format!("{n} callbacks"), || {
            let hits = self.hits();
            (hits.len() >= n).then_some(hits)
        })
        .await
    }

    fn statuses(&self) -> Vec<String> {
        self.hits().iter().map(Hit::status).collect()
    }
}

/// Checks `check` every few milliseconds until it yields, failing after [`TIMEOUT`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn settings(base: &str) -> Callbacks {
    Callbacks {
        url: Some(format!("{base}/hook")),
        secret: SECRET.into(),
        ..Callbacks::default()
    }
}

async fn start_with(callbacks: Callbacks) -> SandboxHandle {
    start(SandboxConfig {
        callbacks,
        ..SandboxConfig::default()
    })
    .await
}

/// Polls the on-ramp order until `done` (at most 10 polls); returns every status seen.
async fn poll_until(c: &OnmetaClient, order_id: &str, done: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some(done) {
        assert!(seen.len() < 10, "never reached {done}: {seen:?}");
        seen.push(c.onramp_status(EMAIL, order_id, TP).await.unwrap().status);
    }
    seen
}

/// `POST /sandbox/onramp/{order_id}/pay`: HTTP status and JSON body.
async fn pay(sandbox: &SandboxHandle, order_id: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/sandbox/onramp/{order_id}/pay",
            sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Every key of `v`, at any depth.
fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(keys(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(keys).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn onramp_callbacks_follow_every_status_change_signed() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start_with(settings(&base)).await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-on-1").await;
    c.submit_utr(EMAIL, &id, UTR, TP).await.unwrap();
    poll_until(&c, &id, "completed").await;

    let hits = receiver.wait_for(5).await;
    let statuses: Vec<_> = hits.iter().map(Hit::status).collect();
    assert_eq!(
        statuses,
        [
            "fiatPending",
            "fiatReceived",
            "orderReceived",
            "transferred",
            "completed"
        ]
    );
    for hit in &hits {
        assert_eq!(hit.header("content-type"), "application/json");
        assert_eq!(hit.header("accept"), "application/json");
        assert!(hit.signed_with(SECRET), "{hit:?}");
        assert!(!hit.signed_with("sandbox-api-secret"));
        assert!(!hit.headers.contains_key("x-onmeta-timestamp"));
        // Compact JSON: re-serialising the parsed body gives the same bytes.
        assert_eq!(serde_json::to_vec(&hit.json()).unwrap(), hit.body.to_vec());
        let v = hit.json();
        assert_eq!(v["eventType"], "onramp");
        assert_eq!(v["orderId"], id.as_str());
        assert_eq!(v["currency"], "INR");
        assert_eq!(v["chainId"], 137);
        assert_eq!(v["fiat"], 1000);
        assert_eq!(v["buyTokenSymbol"], "USDT");
        assert_eq!(
            v["buyTokenAddress"],
            "0xc2132d05d31c914a87c6611c10748aeb04b58e8f"
        );
        assert_eq!(
            v["receiverWalletAddress"],
            "0x64Dc21C25Ba5ec2637e1fA32a5db7A845b9Ec222"
        );
        assert!(v["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(
            v["metaData"],
            json!({ "conversionRate": "88.50", "commission": "0", "paymentMode": "INR_UPI",
                    "country": "IN", "merchantRef": "cb-on-1" })
        );
        let customer = &v["customer"];
        assert_eq!(customer["email"], EMAIL);
        assert_eq!(customer["name"], "Asha Rao");
        assert_eq!(
            customer["phone"],
            json!({ "countrycode": "+91", "number": "9876543210" })
        );
        assert_eq!(customer["id"].as_str().map(str::len), Some(24));
        assert!(customer["createdat"].is_string());
    }
    // The transfer is known from `transferred` on.
    for hit in &hits[..3] {
        let v = hit.json();
        assert!(v.get("txnHash").is_none() && v.get("transferredAmount").is_none());
    }
    let (transferred, completed) = (hits[3].json(), hits[4].json());
    assert!(
        transferred["txnHash"]
            .as_str()
            .is_some_and(|h| h.len() == 66)
    );
    assert_eq!(transferred["txnHash"], completed["txnHash"]);
    assert_eq!(completed["transferredAmount"], "11.299435");
    assert_eq!(completed["transferredAmountWei"], "11299435");

    let stats = sandbox.stats();
    assert_eq!(
        (
            stats.callbacks_sent,
            stats.callbacks_dropped,
            stats.callbacks_mis_signed,
            stats.callbacks_failed
        ),
        (5, 0, 0, 0)
    );
    sandbox.shutdown();
}

#[tokio::test]
async fn offramp_callbacks_carry_hash_and_payout_reference() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start_with(settings(&base)).await;
    let c = client(&sandbox);
    let id = linked_offramp(&c, "cb-off-1").await;
    c.submit_tx_hash(EMAIL, &id, HASH, TP).await.unwrap();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("completed") {
        assert!(seen.len() < 10, "{seen:?}");
        seen.push(c.offramp_status(EMAIL, &id, TP).await.unwrap().status);
    }

    let hits = receiver.wait_for(5).await;
    let statuses: Vec<_> = hits.iter().map(Hit::status).collect();
    assert_eq!(
        statuses,
        [
            "pending",
            "orderReceived",
            "CryptoReceived",
            "PayoutSuccess",
            "completed"
        ]
    );
    for hit in &hits {
        assert!(hit.signed_with(SECRET));
        let v = hit.json();
        assert_eq!(v["eventType"], "offramp");
        assert_eq!(v["orderId"], id.as_str());
        assert_eq!(v["fiat"], 880);
        assert_eq!(v["currency"], "INR");
        assert_eq!(v["sellTokenSymbol"], "USDT");
        assert_eq!(
            v["senderWalletAddress"],
            "0x64Dc21C25Ba5ec2637e1fA32a5db7A845b9Ec222"
        );
        assert!(v["created_at"].is_string() && v["updated_at"].is_string());
        assert_eq!(v["customer"]["name"], "Asha Rao");
        assert_eq!(
            v["metaData"],
            json!({ "conversionRate": "88.50", "commission": "5.00", "country": "IN",
                    "merchantRef": "cb-off-1" })
        );
    }
    // Created before the hash was submitted; paid out from `PayoutSuccess` on.
    assert!(hits[0].json().get("txnHash").is_none());
    assert!(hits[1..].iter().all(|h| h.json()["txnHash"] == HASH));
    assert!(
        hits[..3]
            .iter()
            .all(|h| h.json().get("transactionId").is_none())
    );
    let payout = hits[3].json()["transactionId"].clone();
    assert!(payout.as_str().is_some_and(|r| r.len() == 12));
    assert_eq!(hits[4].json()["transactionId"], payout);
    sandbox.shutdown();
}

#[tokio::test]
async fn bodies_can_be_wrapped_and_lower_cased() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start_with(Callbacks {
        wrap: true,
        lower_case_keys: true,
        ..settings(&base)
    })
    .await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-shape").await;
    let hit = receiver.wait_for(1).await.remove(0);
    assert!(hit.signed_with(SECRET));
    let v = hit.json();
    assert_eq!(v.as_object().unwrap().len(), 1);
    let inner = &v["request_data"];
    assert_eq!(inner["orderid"], id.as_str());
    assert_eq!(inner["eventtype"], "onramp");
    assert_eq!(inner["metadata"]["merchantref"], "cb-shape");
    assert_eq!(inner["customer"]["phone"]["countrycode"], "+91");
    assert!(keys(&v).iter().all(|k| *k == k.to_lowercase()), "{v}");

    // Wrapped only.
    sandbox.set_callbacks(Callbacks {
        wrap: true,
        ..settings(&base)
    });
    sandbox.pay(&id).unwrap();
    let v = receiver.wait_for(2).await[1].json();
    assert_eq!(v["request_data"]["orderId"], id.as_str());
    assert_eq!(v["request_data"]["status"], "fiatReceived");

    // Lower-cased only.
    sandbox.set_callbacks(Callbacks {
        lower_case_keys: true,
        ..settings(&base)
    });
    c.onramp_status(EMAIL, &id, TP).await.unwrap();
    let hit = receiver.wait_for(3).await.remove(2);
    assert!(hit.signed_with(SECRET));
    let v = hit.json();
    assert!(v.get("request_data").is_none());
    assert_eq!(v["orderid"], id.as_str());
    assert_eq!(v["status"], "orderReceived");
    sandbox.shutdown();
}

#[tokio::test]
async fn repeat_sends_identical_copies() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start_with(Callbacks {
        repeat: 2,
        ..settings(&base)
    })
    .await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-repeat").await;
    // A later callback (sent once) shows that no fourth copy follows.
    sandbox.set_callbacks(settings(&base));
    sandbox.pay(&id).unwrap();
    let hits = receiver.wait_for(4).await;
    assert_eq!(hits.len(), 4);
    for copy in &hits[1..3] {
        assert_eq!(copy.body, hits[0].body);
        assert_eq!(copy.headers, hits[0].headers);
    }
    assert!(hits[0].signed_with(SECRET));
    assert_eq!(hits[0].status(), "fiatPending");
    assert_eq!(hits[3].status(), "fiatReceived");
    assert_eq!(sandbox.stats().callbacks_sent, 4);
    sandbox.shutdown();
}

#[tokio::test]
async fn dropped_callbacks_are_counted_not_sent() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start_with(Callbacks {
        drop_rate: 1.0,
        ..settings(&base)
    })
    .await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-drop").await;
    c.submit_utr(EMAIL, &id, UTR, TP).await.unwrap();
    poll_until(&c, &id, "completed").await;
    eventually("5 dropped callbacks", || {
        (sandbox.stats().callbacks_dropped == 5).then_some(())
    })
    .await;

    sandbox.set_callbacks(settings(&base));
    let later = c
        .create_onramp_order(EMAIL, &upi_order("cb-drop-2"), TP)
        .await
        .unwrap()
        .order_id;
    let hits = receiver.wait_for(1).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].json()["orderId"], later.as_str());
    let stats = sandbox.stats();
    assert_eq!((stats.callbacks_sent, stats.callbacks_dropped), (1, 5));
    sandbox.shutdown();
}

#[tokio::test]
async fn mis_signed_callbacks_do_not_verify() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start_with(Callbacks {
        mis_sign_rate: 1.0,
        ..settings(&base)
    })
    .await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-mis-sign").await;
    sandbox.set_callbacks(settings(&base));
    sandbox.pay(&id).unwrap();
    let hits = receiver.wait_for(2).await;
    let signature = hits[0].header("x-onmeta-signature");
    assert!(
        signature.len() == 64
            && signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert!(!hits[0].signed_with(SECRET));
    assert!(hits[1].signed_with(SECRET));
    let stats = sandbox.stats();
    assert_eq!((stats.callbacks_mis_signed, stats.callbacks_sent), (1, 2));
    sandbox.shutdown();
}

#[tokio::test]
async fn reorder_swaps_pairs_and_flushes_on_terminal_status() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start(SandboxConfig {
        callbacks: Callbacks {
            reorder: true,
            ..settings(&base)
        },
        progression: Progression {
            in_progress: Some(3),
            transferred: 4,
            completed: 5,
            ..Progression::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-reorder").await;
    c.submit_utr(EMAIL, &id, UTR, TP).await.unwrap();
    poll_until(&c, &id, "completed").await;
    receiver.wait_for(6).await;
    // Produced fiatPending, fiatReceived, orderReceived, InProgress, transferred, completed;
    // the held `transferred` is flushed after the terminal `completed`.
    assert_eq!(
        receiver.statuses(),
        [
            "fiatReceived",
            "fiatPending",
            "InProgress",
            "orderReceived",
            "completed",
            "transferred"
        ]
    );
    sandbox.shutdown();
}

#[tokio::test]
async fn expiry_sends_a_callback_and_cannot_be_paid() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start(SandboxConfig {
        callbacks: Callbacks {
            reorder: true,
            ..settings(&base)
        },
        order_expiry: Duration::from_millis(200),
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-expiry").await;
    // Polling settles the expiry once the deadline passed.
    let deadline = Instant::now() + TIMEOUT;
    while c.onramp_status(EMAIL, &id, TP).await.unwrap().status != "expired" {
        assert!(Instant::now() < deadline, "the order never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The held `fiatPending` follows the terminal `expired`.
    receiver.wait_for(2).await;
    assert_eq!(receiver.statuses(), ["expired", "fiatPending"]);
    assert!(sandbox.pay(&id).is_err());
    let (status, body) = pay(&sandbox, &id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["message"], "order expired");
    sandbox.shutdown();
}

#[tokio::test]
async fn paid_orders_progress_without_a_utr() {
    let (receiver, base) = Receiver::start().await;
    let sandbox = start_with(settings(&base)).await;
    let c = client(&sandbox);
    let id = linked_order(&c, "cb-pay").await;
    assert_eq!(
        c.onramp_status(EMAIL, &id, TP).await.unwrap().status,
        "fiatPending"
    );
    let (status, body) = pay(&sandbox, &id).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "orderId": id, "status": "fiatReceived" }));
    let hits = receiver.wait_for(2).await;
    assert_eq!(hits[1].status(), "fiatReceived");
    assert!(hits[1].signed_with(SECRET));
    // Paid once only; unknown orders are not found.
    assert_eq!(pay(&sandbox, &id).await.0, 409);
    assert_eq!(pay(&sandbox, "0123456789abcdef01234567").await.0, 404);

    let seen = poll_until(&c, &id, "completed").await;
    assert_eq!(seen, ["orderReceived", "transferred", "completed"]);
    receiver.wait_for(5).await;
    assert_eq!(
        receiver.statuses(),
        [
            "fiatPending",
            "fiatReceived",
            "orderReceived",
            "transferred",
            "completed"
        ]
    );
    assert!(!sandbox.stats().utr_submissions_by_order.contains_key(&id));

    // The handle does the same.
    let other = c
        .create_onramp_order(EMAIL, &upi_order("cb-pay-2"), TP)
        .await
        .unwrap()
        .order_id;
    sandbox.pay(&other).unwrap();
    assert!(sandbox.pay(&other).is_err());
    assert_eq!(
        c.onramp_status(EMAIL, &other, TP).await.unwrap().status,
        "orderReceived"
    );
    sandbox.shutdown();
}

#[tokio::test]
async fn settings_endpoint_validation_and_failed_sends() {
    let (receiver, base) = Receiver::start().await;
    let bad = SandboxConfig {
        callbacks: Callbacks {
            drop_rate: 2.0,
            ..Callbacks::default()
        },
        ..SandboxConfig::default()
    };
    assert!(
        Sandbox::start(bad, "127.0.0.1:0".parse().unwrap())
            .await
            .is_err()
    );

    let sandbox = start(SandboxConfig::default()).await;
    assert_eq!(sandbox.callbacks(), Callbacks::default());
    let got: Callbacks = get_control(&sandbox, "/sandbox/callbacks").await;
    assert_eq!(got, Callbacks::default());
    let put = put_control(
        &sandbox,
        "/sandbox/callbacks",
        &json!({ "url": format!("{base}/refuse"), "secret": SECRET, "repeat": 1 }).to_string(),
    )
    .await;
    assert_eq!(put.status(), 200);
    let want = Callbacks {
        url: Some(format!("{base}/refuse")),
        repeat: 1,
        ..settings(&base)
    };
    assert_eq!(sandbox.callbacks(), want);
    let got: Callbacks = get_control(&sandbox, "/sandbox/callbacks").await;
    assert_eq!(got, want);
    for body in [
        r#"{"url": "ftp://example.com/x"}"#,
        r#"{"mis_sign_rate": -0.5}"#,
        "not json",
    ] {
        let put = put_control(&sandbox, "/sandbox/callbacks", body).await;
        assert_eq!(put.status(), 400, "{body}");
    }
    assert_eq!(sandbox.callbacks(), want);

    // A receiver answering 500: both copies are sent and counted as failed, no retry.
    let c = client(&sandbox);
    linked_order(&c, "cb-refused").await;
    eventually("2 failed callbacks", || {
        (sandbox.stats().callbacks_failed == 2).then_some(())
    })
    .await;
    assert_eq!(receiver.hits().len(), 2);
    let stats: rampd_sandbox::SandboxStats = get_control(&sandbox, "/sandbox/stats").await;
    assert_eq!((stats.callbacks_sent, stats.callbacks_failed), (2, 2));
    sandbox.shutdown();
}
