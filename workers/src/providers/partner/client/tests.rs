//! The client against a local HTTP server that answers as the documents do and records
//! what it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap as Headers, StatusCode, Uri};
use axum::routing::any;

use super::*;

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: Headers,
    body: Value,
}

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Serve `answer` (status, body) for every request; returns the recorder and the base URL.
async fn serve(answer: (u16, &'static str)) -> (Server, String) {
    let server = Server::default();
    let rec = server.clone();
    let app = Router::new().fallback(any(
        move |method: axum::http::Method, uri: Uri, headers: Headers, body: Bytes| {
            let rec = rec.clone();
            async move {
                rec.seen.lock().unwrap().push(Seen {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                (StatusCode::from_u16(answer.0).unwrap(), answer.1)
            }
        },
    ));
    let l = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (server, format!("http://{addr}/api/"))
}

const TOKEN: &str = "partner-secret-token-7f3a";

fn client(base_url: String) -> PartnerClient {
    crate::tls::install_crypto();
    PartnerClient::new(PartnerConfig {
        base_url,
        token: SecretString::from(TOKEN),
        tenant_id: "4e6cb408-8a22-4edc-ba0f-e0f8071efc64".into(),
        tenant_header: "x-tenant-id".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn deposit() -> DepositRequest {
    DepositRequest {
        amount: "25.50".parse().unwrap(),
        token: "THIS".into(),
        wallet_identifier: "digit_testsiveruserdigitte1_ul".into(),
        wallet_identifier_type: WalletIdentifierType::CustomNamespace,
    }
}

const REJECTED_DEPOSIT: &str = r#"{"data":{"amount":"25","token":"THIS","rejectionReason":"Deposit not allowed",
  "statusStage":"FINAL","status":"Rejected request due to validation failures",
  "depositRequestId":"5822e56e-1909-426f-a4be-1d49b15c781c"},"message":"Deposit request submitted successfully"}"#;

#[tokio::test]
async fn a_deposit_request_carries_token_tenant_and_amount_and_a_201_rejection_is_read() {
    let (server, url) = serve((201, REJECTED_DEPOSIT)).await;
    let got = client(url).deposit_request(&deposit(), None).await.unwrap();
    assert_eq!(
        got,
        Deposit::Rejected {
            status: "Rejected request due to validation failures".into(),
            reason: "Deposit not allowed".into()
        }
    );
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/api/transaction/deposit-requests");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    assert_eq!(
        seen.headers["x-tenant-id"],
        "4e6cb408-8a22-4edc-ba0f-e0f8071efc64"
    );
    assert_eq!(
        seen.body,
        json!({
            "amount": 25.5, "token": "THIS",
            "walletIdentifier": "digit_testsiveruserdigitte1_ul",
            "walletIdentifierType": "CUSTOM NAMESPACE",
        })
    );
}

#[tokio::test]
async fn a_confirmation_says_yes_or_no_and_the_invalidated_400_is_terminal() {
    let invalidated = r#"{"errors":[{"type":"catch","message":"Successfully Invalidated Confirmation Request. No further action possible for the same request."}]}"#;
    let (server, url) = serve((400, invalidated)).await;
    let c = client(url);
    let got = c
        .confirm("5822e56e", &deposit(), false, None)
        .await
        .unwrap();
    assert_eq!(got, Confirmation::Invalidated);
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.uri, "/api/transaction/confirmation-requests");
    assert_eq!(seen.body["confirm"], "NO");
    assert_eq!(seen.body["depositRequestId"], "5822e56e");
    c.confirm("5822e56e", &deposit(), true, None).await.unwrap();
    assert_eq!(server.seen.lock().unwrap()[1].body["confirm"], "YES");
}

#[tokio::test]
async fn a_400_is_the_providers_refusal_with_its_messages() {
    let failed =
        r#"{"errors":[{"type":"catch","message":"Initiation of deposit request got failed"}]}"#;
    let (_, url) = serve((400, failed)).await;
    let c = client(url);
    let e = c.confirm("x", &deposit(), true, None).await.unwrap_err();
    assert!(
        matches!(&e, ProviderError::Rejected { code: Some(400), message } if message == "Initiation of deposit request got failed"),
        "{e:?}"
    );
    let e = c.deposit_request(&deposit(), None).await.unwrap_err();
    assert!(matches!(e, ProviderError::Rejected { .. }), "{e:?}");
}

#[tokio::test]
async fn a_5xx_in_the_singular_error_shape_may_pass_and_names_the_endpoint() {
    let body = r#"{"error":{"type":"Internal server error","message":"An unexpected error occurred. Please try again later"}}"#;
    let (_, url) = serve((500, body)).await;
    let e = client(url)
        .deposit_request(&deposit(), None)
        .await
        .unwrap_err();
    let ProviderError::Retryable { reason, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        reason,
        "transaction/deposit-requests: HTTP 500 (An unexpected error occurred. Please try again later)"
    );
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_201_that_is_not_json_is_not_understood_not_a_success() {
    let (_, url) = serve((201, "<html>ok</html>")).await;
    let e = client(url)
        .deposit_request(&deposit(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Unknown { .. }), "{e:?}");
}

#[tokio::test]
async fn the_history_path_and_memo_are_encoded() {
    let body = r#"{"data":[{"trxId":"0xca6e","amount":"2000000000000000000","paymentType":"credit",
      "from":"itech.sheetalus.ul","to":"itech.punitus.ul","status":"Completed","isError":"0","revertReason":null}]}"#;
    let (server, url) = serve((200, body)).await;
    let got = client(url)
        .history("itech.punitus.ul", Some("order 7/a"), None)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].amount, Decimal::from(2));
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.uri,
        "/api/transactions/identifier/itech.punitus.ul/type/on-chain/history?memo=order%207%2Fa"
    );
}

#[tokio::test]
async fn the_fiat_transfer_is_put_against_the_hash() {
    let body = r#"{"data":{"transactionId":"5ea3eb51-8a02-415d-bf74-add22ed74803","referenceId":"ord-1",
      "tokenSymbol":"USBC","fiatSymbol":"USD","fiatAmount":5,"tokenAmount":1,"type":"BANK-BOOK"},
      "message":"fiat transaction status updated successfully."}"#;
    let (server, url) = serve((200, body)).await;
    let r = FiatTransferRequest {
        reference_id: "ord-1".into(),
        fiat_amount: "5.00".parse().unwrap(),
        token_symbol: "USBC".into(),
        fiat_symbol: "USD".into(),
    };
    let got = client(url)
        .report_fiat_transfer("0xABC/../x", &r, None)
        .await
        .unwrap();
    assert_eq!(got.transaction_id, "5ea3eb51-8a02-415d-bf74-add22ed74803");
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.uri,
        "/api/transaction/redeem/fiat-transfer/0xABC%2F..%2Fx"
    );
    assert_eq!(
        seen.body,
        json!({"referenceId":"ord-1","fiatAmount":5,"tokenSymbol":"USBC","fiatSymbol":"USD","type":"BANK-BOOK"})
    );
}

#[tokio::test]
async fn an_amount_a_double_cannot_carry_is_refused_before_sending() {
    let (server, url) = serve((201, REJECTED_DEPOSIT)).await;
    let mut r = deposit();
    r.amount = "1234567890.1234567".parse().unwrap();
    let e = client(url).deposit_request(&r, None).await.unwrap_err();
    assert!(matches!(e, ProviderError::Rejected { .. }), "{e:?}");
    assert!(server.seen.lock().unwrap().is_empty(), "nothing was sent");
}

#[test]
fn a_bad_tenant_header_is_a_config_error_and_the_token_is_never_shown() {
    crate::tls::install_crypto();
    let bad = PartnerClient::new(PartnerConfig {
        base_url: "http://127.0.0.1:1".into(),
        token: SecretString::from(TOKEN),
        tenant_id: "t".into(),
        tenant_header: "not a header".into(),
        timeout: Duration::from_secs(1),
    })
    .unwrap_err();
    assert!(bad.to_string().contains("tenant_header"), "{bad}");
    let c = client("http://127.0.0.1:1".into());
    assert!(!format!("{c:?}").contains(TOKEN));
}
