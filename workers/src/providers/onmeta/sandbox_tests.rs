//! The Onmeta connector against the sandbox over real HTTP on 127.0.0.1.

mod callbacks;
mod edge_cases;
mod offramp;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;

use crate::providers::{
    CreateOnrampRequest, LinkBankRequest, LinkStatus, LinkUpiRequest, OnmetaClient, OnmetaConfig,
    OnrampPayment, ProviderError, QuoteRequest, UtrOutcome,
};
use rampd_sandbox::{Faults, Sandbox, SandboxConfig, SandboxHandle};

const EMAIL: &str = "asha@example.com";
const UPI: &str = "asha@okhdfc";
const ACCOUNT: &str = "123456787315";
const TP: Option<&str> = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn start(config: SandboxConfig) -> SandboxHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn start_scenario(scenario: rampd_sandbox::Scenario) -> SandboxHandle {
    start(SandboxConfig {
        scenario,
        ..SandboxConfig::default()
    })
    .await
}

/// `PUT {base}{path}` with a JSON body (control API).
async fn put_control(sandbox: &SandboxHandle, path: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{}{path}", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// `GET {base}{path}` as JSON (control API).
async fn get_control<T: serde::de::DeserializeOwned>(sandbox: &SandboxHandle, path: &str) -> T {
    reqwest::Client::new()
        .get(format!("{}{path}", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn client_with(sandbox: &SandboxHandle, api_key: &str, timeout: Duration) -> OnmetaClient {
    OnmetaClient::new(OnmetaConfig {
        base_url: sandbox.base_url(),
        api_key: SecretString::from(api_key),
        timeout,
    })
    .unwrap()
}

fn client(sandbox: &SandboxHandle) -> OnmetaClient {
    client_with(sandbox, "sandbox-api-key", Duration::from_secs(10))
}

fn upi_link() -> LinkUpiRequest {
    LinkUpiRequest {
        name: "Asha Rao".into(),
        phone_country_code: "+91".into(),
        phone_number: "9876543210".into(),
        upi_id: UPI.into(),
    }
}

fn bank_link() -> LinkBankRequest {
    LinkBankRequest {
        name: "Asha Rao".into(),
        pan: "ABCDE1234F".into(),
        phone_country_code: "+91".into(),
        phone_number: "9876543210".into(),
        account_number: ACCOUNT.into(),
        account_name: "Asha Rao".into(),
        ifsc: "HDFC0000123".into(),
    }
}

fn upi_order(merchant_ref: &str) -> CreateOnrampRequest {
    CreateOnrampRequest {
        merchant_ref: merchant_ref.into(),
        token_symbol: "USDT".into(),
        token_address: Some("0xc2132d05d31c914a87c6611c10748aeb04b58e8f".into()),
        chain_id: 137,
        fiat_amount: dec("1000"),
        receiver_address: "0x64Dc21C25Ba5ec2637e1fA32a5db7A845b9Ec222".into(),
        payment: OnrampPayment::Upi {
            upi_id: UPI.into(),
            name: "Asha Rao".into(),
        },
    }
}

/// Logs in implicitly, links the UPI ID and creates one order.
async fn linked_order(c: &OnmetaClient, merchant_ref: &str) -> String {
    c.link_upi(EMAIL, &upi_link(), TP).await.unwrap();
    c.create_onramp_order(EMAIL, &upi_order(merchant_ref), TP)
        .await
        .unwrap()
        .order_id
}

#[tokio::test]
async fn upi_onramp_happy_path() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);

    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());
    let linked = c.link_upi(EMAIL, &upi_link(), TP).await.unwrap();
    assert_eq!(linked.status, LinkStatus::Linked);
    assert!(linked.reference.is_some());
    let upis = c.fetch_upis(EMAIL, None).await.unwrap();
    assert_eq!(upis.len(), 1);
    assert_eq!(upis[0].upi_id, UPI);

    let quote = c
        .buy_quote(
            EMAIL,
            &QuoteRequest {
                token_symbol: "USDT".into(),
                chain_id: 137,
                fiat_amount: dec("1000"),
            },
            TP,
        )
        .await
        .unwrap();
    assert_eq!(quote.conversion_rate, dec("88.50"));
    assert_eq!(quote.received_tokens, dec("11.299435"));
    assert_eq!(quote.quote_base_units, "11299435");
    assert!(quote.estimate_id.is_some());
    assert_eq!(quote.transaction_fee, Some(Decimal::ZERO));

    let order = c
        .create_onramp_order(EMAIL, &upi_order("rampd-1"), TP)
        .await
        .unwrap();
    assert_eq!(order.status, "fiatPending");
    assert_eq!(order.order_id.len(), 24);
    assert!(
        order
            .order_id
            .chars()
            .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
    );
    let qr = order.qr_string.clone().unwrap();
    assert_eq!(
        qr,
        format!(
            "upi://pay?pa=onmeta@sandbox&am=1000.00&tn={}",
            order.order_id
        )
    );
    assert_eq!(order.upi_deep_link.as_deref(), Some(qr.as_str()));
    assert!(order.bank_details.is_none());
    let expires_in = order.expires_at.unwrap() - chrono::Utc::now();
    assert!(
        expires_in > chrono::TimeDelta::minutes(170) && expires_in <= chrono::TimeDelta::hours(3)
    );

    // Before a UTR the order waits for the payment.
    assert_eq!(
        c.onramp_status(EMAIL, &order.order_id, TP)
            .await
            .unwrap()
            .status,
        "fiatPending"
    );

    assert_eq!(
        c.submit_utr(EMAIL, &order.order_id, "412345678901", TP)
            .await
            .unwrap(),
        UtrOutcome::Accepted
    );
    // The same UTR again is harmless.
    assert_eq!(
        c.submit_utr(EMAIL, &order.order_id, "412345678901", TP)
            .await
            .unwrap(),
        UtrOutcome::Accepted
    );

    let mut seen = Vec::new();
    loop {
        let status = c.onramp_status(EMAIL, &order.order_id, TP).await.unwrap();
        seen.push(status.status.clone());
        if status.status == "completed" {
            assert!(
                status
                    .tx_hash
                    .as_deref()
                    .is_some_and(|h| h.starts_with("0x") && h.len() == 66)
            );
            assert_eq!(status.transferred_amount, Some(dec("11.299435")));
            assert_eq!(status.reason, None);
            break;
        }
        assert!(seen.len() < 10, "never completed: {seen:?}");
    }
    assert_eq!(
        seen,
        ["fiatReceived", "orderReceived", "transferred", "completed"]
    );

    // A UTR on a completed order is "already success", not an error.
    assert_eq!(
        c.submit_utr(EMAIL, &order.order_id, "412345678901", TP)
            .await
            .unwrap(),
        UtrOutcome::AlreadySuccess
    );

    let stats = sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.get("rampd-1"), Some(&1));
    assert_eq!(
        stats.utr_submissions_by_order.get(&order.order_id),
        Some(&2)
    );
    assert_eq!(stats.logins, 1);
    assert_eq!(stats.refreshes, 0);
    assert_eq!(stats.create_calls, 1);
    assert_eq!(stats.status_calls, 5);
    sandbox.shutdown();
}

#[tokio::test]
async fn imps_orders_need_a_linked_bank_and_get_collection_details() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    let mut request = upi_order("rampd-imps");
    request.payment = OnrampPayment::Imps {
        account_name: "Asha Rao".into(),
        account_number: ACCOUNT.into(),
        ifsc: "HDFC0000123".into(),
    };

    match c.create_onramp_order(EMAIL, &request, TP).await {
        Err(ProviderError::Rejected { code, message }) => {
            assert_eq!(code, Some(400));
            assert!(message.contains("not linked"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    assert_eq!(
        c.link_bank(EMAIL, &bank_link(), TP).await.unwrap().status,
        LinkStatus::Linked
    );
    // Linking the same account again is answered 406 "account already verified": linked.
    let again = c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    assert_eq!(again.status, LinkStatus::Linked);
    let banks = c.fetch_banks(EMAIL, TP).await.unwrap();
    assert_eq!(banks.len(), 1);
    assert_eq!(banks[0].masked_account_number, "XXXX7315");

    let order = c.create_onramp_order(EMAIL, &request, TP).await.unwrap();
    let bank = order.bank_details.unwrap();
    assert_eq!(bank.account_name, "Onmeta Sandbox Collections");
    assert_eq!(bank.account_number, "50200012345678");
    assert_eq!(bank.ifsc, "HDFC0000001");
    assert_eq!(bank.bank_name.as_deref(), Some("HDFC Bank"));
    assert!(order.upi_deep_link.is_none());
    assert!(order.expires_at.is_some());
    sandbox.shutdown();
}

#[tokio::test]
async fn rejections_are_permanent_and_explained() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);

    // No linked UPI yet.
    let err = c
        .create_onramp_order(EMAIL, &upi_order("r"), TP)
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("UPI ID is not linked"), "{err}");

    // KYC revoked: status says so, links and orders are refused.
    sandbox.set_kyc_verified(false);
    assert!(!c.kyc_status(EMAIL, TP).await.unwrap());
    let err = c.link_upi(EMAIL, &upi_link(), TP).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Rejected {
                code: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    sandbox.set_kyc_verified(true);

    // A malformed UTR and an unknown order.
    let order_id = linked_order(&c, "r2").await;
    let err = c
        .submit_utr(EMAIL, &order_id, "12-34", TP)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Rejected { .. }));
    let err = c
        .onramp_status(EMAIL, "ffffffffffffffffffffffff", TP)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Rejected {
                code: Some(404),
                ..
            }
        ),
        "{err:?}"
    );

    // Error messages carry no user data.
    let text = format!("{err} {err:?}");
    assert!(!text.contains(EMAIL) && !text.contains("sbx_") && !text.contains("sandbox-api-key"));
    sandbox.shutdown();
}

#[tokio::test]
async fn unpaid_orders_expire_on_the_scaled_clock() {
    // 3 h of provider time pass in 300 ms; tokens are made long-lived to keep this about orders.
    let sandbox = start(SandboxConfig {
        time_scale: 36_000.0,
        access_token_ttl: Duration::from_secs(100_000 * 3600),
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&sandbox);
    c.link_upi(EMAIL, &upi_link(), TP).await.unwrap();
    let order = c
        .create_onramp_order(EMAIL, &upi_order("late"), TP)
        .await
        .unwrap();
    let expires_at = order.expires_at.unwrap();
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    assert!(left <= Duration::from_millis(300));
    tokio::time::sleep(left + Duration::from_millis(100)).await;

    let status = c.onramp_status(EMAIL, &order.order_id, TP).await.unwrap();
    assert_eq!(status.status, "expired");
    assert_eq!(status.reason.as_deref(), Some("order expired"));
    match c
        .submit_utr(EMAIL, &order.order_id, "412345678901", TP)
        .await
    {
        Err(ProviderError::Rejected { message, .. }) => assert_eq!(message, "order expired"),
        other => panic!("unexpected {other:?}"),
    }
    // The late UTR is accepted on a new order for the same amount.
    let fresh = c
        .create_onramp_order(EMAIL, &upi_order("late-2"), TP)
        .await
        .unwrap();
    assert_eq!(
        c.submit_utr(EMAIL, &fresh.order_id, "412345678901", TP)
            .await
            .unwrap(),
        UtrOutcome::Accepted
    );
    sandbox.shutdown();
}

#[tokio::test]
async fn rate_limits_and_outages_are_classified() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    let order_id = linked_order(&c, "faults").await;

    sandbox.set_faults(Faults {
        rate_limit_next_status: 1,
        fail_next_status: 2,
        retry_after_secs: 7,
        ..Faults::default()
    });
    for _ in 0..2 {
        let err = c.onramp_status(EMAIL, &order_id, TP).await.unwrap_err();
        assert!(matches!(err, ProviderError::Retryable { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(err.to_string().contains("503"), "{err}");
    }
    let err = c.onramp_status(EMAIL, &order_id, TP).await.unwrap_err();
    assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    // Budgets used up: back to normal.
    assert_eq!(
        c.onramp_status(EMAIL, &order_id, TP).await.unwrap().status,
        "fiatPending"
    );

    // Random faults at rate 1.
    sandbox.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let err = c.kyc_status(EMAIL, TP).await.unwrap_err();
    assert!(matches!(err, ProviderError::Retryable { .. }));
    sandbox.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 3,
        ..Faults::default()
    });
    assert_eq!(
        c.kyc_status(EMAIL, TP).await.unwrap_err().retry_after(),
        Some(Duration::from_secs(3))
    );
    sandbox.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let err = c.onramp_status(EMAIL, &order_id, TP).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unknown { .. }), "{err:?}");
    assert!(err.is_retryable());

    // An odd status is reported for that call only.
    sandbox.set_faults(Faults {
        unknown_status_rate: 1.0,
        ..Faults::default()
    });
    let odd = c.onramp_status(EMAIL, &order_id, TP).await.unwrap().status;
    assert_ne!(odd, "fiatPending");
    sandbox.set_faults(Faults::default());
    assert_eq!(
        c.onramp_status(EMAIL, &order_id, TP).await.unwrap().status,
        "fiatPending"
    );

    assert_eq!(sandbox.stats().faults_injected, 7);
    sandbox.shutdown();
}

#[tokio::test]
async fn sessions_refresh_then_log_in_again() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());
    assert_eq!((sandbox.stats().logins, sandbox.stats().refreshes), (1, 0));

    // The access token dies: one 401, a refresh, and the call is repeated.
    sandbox.expire_tokens(false);
    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());
    assert_eq!((sandbox.stats().logins, sandbox.stats().refreshes), (1, 1));

    // Both tokens die: the refresh is refused too, so the client logs in again.
    sandbox.expire_tokens(true);
    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());
    assert_eq!((sandbox.stats().logins, sandbox.stats().refreshes), (2, 1));

    // Cached session: no further auth traffic.
    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());
    assert_eq!((sandbox.stats().logins, sandbox.stats().refreshes), (2, 1));
    sandbox.shutdown();
}

#[tokio::test]
async fn tokens_expire_on_the_scaled_clock() {
    // One provider hour is 100 ms: the client's cached token goes stale at the sandbox.
    let sandbox = start(SandboxConfig {
        time_scale: 36_000.0,
        ..SandboxConfig::default()
    })
    .await;
    let c = client(&sandbox);
    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());
    let stats = sandbox.stats();
    // Refresh tokens live 24 provider hours (2.4 s here), so a refresh did the job.
    assert_eq!(stats.logins + stats.refreshes, 2, "{stats:?}");
    sandbox.shutdown();
}

#[tokio::test]
async fn wrong_api_key_is_not_an_order_failure() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client_with(&sandbox, "wrong-key", Duration::from_secs(5));
    let err = c.kyc_status(EMAIL, TP).await.unwrap_err();
    assert!(matches!(err, ProviderError::Retryable { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong-key"));
    sandbox.shutdown();
}

#[tokio::test]
async fn lost_create_reply_is_found_by_merchant_ref() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    c.link_upi(EMAIL, &upi_link(), TP).await.unwrap();

    // The provider creates the order but its reply is slower than our timeout.
    sandbox.set_faults(Faults {
        respond_latency_create_ms: 1_500,
        ..Faults::default()
    });
    let impatient = client_with(&sandbox, "sandbox-api-key", Duration::from_millis(300));
    let err = impatient
        .create_onramp_order(EMAIL, &upi_order("rampd-crash"), TP)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Retryable { .. }), "{err:?}");
    sandbox.set_faults(Faults::default());

    // Recovery: look the order up before creating again.
    let recent = c
        .recent_orders(EMAIL, 0, TP)
        .await
        .unwrap()
        .orders()
        .cloned()
        .collect::<Vec<_>>();
    let found = recent
        .iter()
        .find(|o| o.merchant_ref.as_deref() == Some("rampd-crash"))
        .expect("order created despite the lost reply");
    assert_eq!(found.status, "fiatPending");
    assert_eq!(found.utr, None);
    assert_eq!(
        sandbox.stats().orders_by_merchant_ref.get("rampd-crash"),
        Some(&1)
    );

    // After a UTR the listing shows it, so a UTR submission can be recovered too.
    c.submit_utr(EMAIL, &found.order_id, "412345678901", TP)
        .await
        .unwrap();
    let recent = c
        .recent_orders(EMAIL, 0, TP)
        .await
        .unwrap()
        .orders()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(recent[0].utr.as_deref(), Some("412345678901"));
    sandbox.shutdown();
}

#[tokio::test]
async fn recent_orders_page_newest_first() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    c.link_upi(EMAIL, &upi_link(), TP).await.unwrap();
    for i in 0..12 {
        c.create_onramp_order(EMAIL, &upi_order(&format!("page-{i}")), None)
            .await
            .unwrap();
    }
    let first = c
        .recent_orders(EMAIL, 0, None)
        .await
        .unwrap()
        .orders()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(first.len(), 10);
    assert_eq!(first[0].merchant_ref.as_deref(), Some("page-11"));
    let rest = c
        .recent_orders(EMAIL, 10, None)
        .await
        .unwrap()
        .orders()
        .cloned()
        .collect::<Vec<_>>();
    let refs: Vec<_> = rest
        .iter()
        .filter_map(|o| o.merchant_ref.as_deref())
        .collect();
    assert_eq!(refs, ["page-1", "page-0"]);
    // Another user sees none of them.
    assert!(
        c.recent_orders("other@example.com", 0, None)
            .await
            .unwrap()
            .orders()
            .cloned()
            .collect::<Vec<_>>()
            .is_empty()
    );
    sandbox.shutdown();
}

#[tokio::test]
async fn control_endpoints_and_shutdown() {
    let sandbox = start(SandboxConfig::default()).await;
    let http = reqwest::Client::new();
    let base = sandbox.base_url();
    assert!(base.starts_with("http://127.0.0.1:"));

    let faults = Faults {
        fail_next_status: 3,
        ..Faults::default()
    };
    let put = http
        .put(format!("{base}/sandbox/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    // Partial JSON is fine: missing fields take their defaults.
    let put = put_control(&sandbox, "/sandbox/faults", r#"{"latency_ms": 1}"#).await;
    assert!(put.status().is_success());
    let got: Faults = get_control(&sandbox, "/sandbox/faults").await;
    assert_eq!(got.latency_ms, 1);
    assert_eq!(got.fail_next_status, 0);

    let c = client(&sandbox);
    c.kyc_status(EMAIL, None).await.unwrap();
    let stats: rampd_sandbox::SandboxStats = get_control(&sandbox, "/sandbox/stats").await;
    assert_eq!(stats.logins, 1);

    // /v1 needs the API key; /sandbox does not.
    let denied = http
        .post(format!("{base}/v1/users/login"))
        .json(&serde_json::json!({"email": EMAIL}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 401);

    sandbox.shutdown();
    let mut stopped = false;
    for _ in 0..50 {
        if reqwest::Client::new()
            .get(format!("{base}/sandbox/stats"))
            .send()
            .await
            .is_err()
        {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped, "server still answering after shutdown");
}

/// Headers the connector sends: API key everywhere, bearer on user calls, traceparent and
/// tracestate.
#[tokio::test]
async fn connector_sends_auth_and_trace_headers() {
    use axum::http::HeaderMap;
    use axum::routing::post;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let seen: Arc<Mutex<Vec<(String, HeaderMap)>>> = Arc::default();
    let record = |path: &'static str, reply: serde_json::Value| {
        let seen = seen.clone();
        post(move |headers: HeaderMap| async move {
            seen.lock().unwrap().push((path.to_owned(), headers));
            axum::Json(reply)
        })
    };
    let app = axum::Router::new()
        .route(
            "/v1/users/login",
            record(
                "login",
                serde_json::json!({"success":true,"data":{"accessToken":"AT","refreshToken":"RT"}}),
            ),
        )
        .route(
            "/v1/users/kyc-status",
            record(
                "kyc",
                serde_json::json!({"success":true,"data":{"isKycVerified":true}}),
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let c = OnmetaClient::new(OnmetaConfig {
        base_url: format!("http://{addr}"),
        api_key: SecretString::from("k-123"),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    // The stored trace context carries a tracestate: both headers go out.
    let tc = format!("{} congo=t61rcWkgMzE", TP.unwrap());
    assert!(c.kyc_status(EMAIL, Some(&tc)).await.unwrap());

    let seen = seen.lock().unwrap();
    let (path, login) = &seen[0];
    assert_eq!(path, "login");
    assert_eq!(login["x-api-key"], "k-123");
    assert!(login.get("authorization").is_none());
    assert_eq!(login["traceparent"], TP.unwrap());
    assert_eq!(login["tracestate"], "congo=t61rcWkgMzE");
    let (path, kyc) = &seen[1];
    assert_eq!(path, "kyc");
    assert_eq!(kyc["x-api-key"], "k-123");
    assert_eq!(kyc["authorization"], "Bearer AT");
    assert_eq!(kyc["traceparent"], TP.unwrap());
    assert_eq!(kyc["tracestate"], "congo=t61rcWkgMzE");
}
