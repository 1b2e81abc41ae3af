//! Axum handlers: request parsing and response shapes of the Onmeta-style API. The rules
//! live in `state.rs`; faults and the API key check in `faults.rs`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde_json::{Value, json};

mod callbacks;
mod offramp;

use super::clock::Clock;
use super::faults;
use super::state::{ApiError, LinkKind, LinkState, Listed, NewOrder, Order, Payment};
use super::{Faults, Scenario, Shared};
use crate::json::{amount, mask_tail};

/// Orders per page of `GET /v1/orders/{skip}`.
const PAGE_SIZE: usize = 10;

/// The sandbox's collection account for IMPS orders.
const COLLECT_ACCOUNT_NAME: &str = "Onmeta Sandbox Collections";
const COLLECT_ACCOUNT_NUMBER: &str = "50200012345678";
const COLLECT_IFSC: &str = "HDFC0000001";
const COLLECT_BANK: &str = "HDFC Bank";

type St = State<Arc<Shared>>;
type ApiResult = Result<Value, ApiError>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
        .route("/v1/users/login", post(login))
        .route("/v1/users/refresh-token", get(refresh))
        .route("/v1/users/kyc-status", post(kyc_status))
        .route("/v1/users/upi/fetch", get(fetch_upis))
        .route("/v1/users/upi-link", post(link_upi))
        .route("/v1/users/bank/fetch", get(fetch_banks))
        .route("/v1/users/account-link", post(link_bank))
        .route("/v1/users/get-bank-status/{reference}", get(bank_status))
        .route("/v1/users/get-upi-status/{reference}", get(upi_status))
        .route("/v1/quote/fetch", post(quote))
        .route("/v1/quote/buy", post(quote))
        .route("/v1/orders/create", post(create_order))
        .route("/v1/orders/utr", post(submit_utr))
        .route("/v1/orders/status", post(order_status))
        .route("/v1/orders/{skip}", get(list_orders))
        .route("/v1/quote/sell", post(offramp::sell_quote))
        .route("/v1/offramp/orders/create", post(offramp::create))
        .route("/v1/offramp/orders/txnhash", post(offramp::submit_tx_hash))
        .route("/v1/offramp/orders/status", post(offramp::status))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            faults::layer,
        ));
    let control = Router::new()
        .route("/sandbox/stats", get(stats))
        .route("/sandbox/faults", get(get_faults).put(put_faults))
        .route("/sandbox/scenario", get(get_scenario).put(put_scenario))
        .route(
            "/sandbox/conversion-rate",
            get(get_conversion_rate).put(put_conversion_rate),
        )
        .route(
            "/sandbox/callbacks",
            get(callbacks::get_settings).put(callbacks::put_settings),
        )
        .route("/sandbox/onramp/{order_id}/pay", post(callbacks::pay));
    v1.merge(control).with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Envelope helpers
// ---------------------------------------------------------------------------------------------

pub(crate) fn error_response(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "success": false, "error": { "code": err.code, "message": err.message } });
    (status, axum::Json(body)).into_response()
}

fn respond(result: ApiResult) -> Response {
    match result {
        Ok(Value::Null) => axum::Json(json!({ "success": true, "error": {} })).into_response(),
        Ok(data) => {
            axum::Json(json!({ "success": true, "data": data, "error": {} })).into_response()
        }
        Err(err) => error_response(&err),
    }
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request("invalid JSON body")),
    }
}

fn opt_str(v: &Value, name: &str) -> Option<String> {
    match v.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn str_field(v: &Value, name: &str) -> Result<String, ApiError> {
    opt_str(v, name).ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

fn decimal_field(v: &Value, name: &str) -> Result<Decimal, ApiError> {
    let text =
        opt_str(v, name).ok_or_else(|| ApiError::bad_request(format!("{name} is required")))?;
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| ApiError::bad_request(format!("{name} must be a number")))
}

fn u64_field(v: &Value, name: &str) -> Result<u64, ApiError> {
    let text =
        opt_str(v, name).ok_or_else(|| ApiError::bad_request(format!("{name} is required")))?;
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{name} must be a positive integer")))
}

/// The token in `Authorization: Bearer <token>` (a bare token is accepted too).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        Some(_) => return None,
        None => value,
    };
    Some(token).filter(|t| !t.is_empty())
}

/// The e-mail of the user whose access token the request carries.
fn user(shared: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    shared.world().authenticate(token, shared.clock.now())
}

pub(crate) fn rfc3339(clock: &Clock, provider_time: chrono::DateTime<chrono::Utc>) -> String {
    clock
        .to_wall(provider_time)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

async fn login(State(s): St, body: Bytes) -> Response {
    respond((|| {
        let email = str_field(&json_body(&body)?, "email")?;
        let tokens = s.world().login(&email, s.clock.now())?;
        Ok(json!({ "accessToken": tokens.access, "refreshToken": tokens.refresh }))
    })())
}

async fn refresh(State(s): St, headers: HeaderMap) -> Response {
    respond((|| {
        let token = bearer(&headers).ok_or_else(ApiError::unauthorized)?;
        let access = s.world().refresh(token, s.clock.now())?;
        Ok(json!({ "accessToken": access }))
    })())
}

async fn kyc_status(State(s): St, headers: HeaderMap) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let check = s.world().kyc_status(&email);
        // The provider's own example sends this boolean as a string. [INFER] Onmeta
        // documents no list of outstanding items; the sandbox sends bunq-style
        // `fulfillments` (provider-doc 003) while KYC is pending.
        let fulfillments: Vec<Value> = check
            .fulfillments
            .iter()
            .map(|f| json!({ "type": f.kind, "status": f.status, "all_status_allowed": f.allowed }))
            .collect();
        let mut data = json!({ "isKycVerified": check.verified.to_string() });
        if !fulfillments.is_empty() {
            data["fulfillments"] = Value::Array(fulfillments);
        }
        Ok(data)
    })())
}

async fn fetch_upis(State(s): St, headers: HeaderMap) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let list: Vec<Value> = s
            .world()
            .upis(&email)
            .into_iter()
            .map(|u| {
                let (status, reason) = u.state.wire();
                json!({ "upiId": u.upi_id, "name": u.name, "status": status,
                        "referenceId": u.reference, "reason": reason })
            })
            .collect();
        Ok(Value::Array(list))
    })())
}

async fn link_upi(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let v = json_body(&body)?;
        let upi_id = str_field(&v, "upiId")?;
        let name = str_field(&v, "name")?;
        let mut world = s.world();
        let link = world.link_upi(&email, &upi_id, &name)?;
        world.note_customer(&email, &name, phone(&v));
        Ok(link_json(&link.reference, &link.state))
    })())
}

async fn fetch_banks(State(s): St, headers: HeaderMap) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let list: Vec<Value> = s
            .world()
            .banks(&email)
            .into_iter()
            .map(|b| {
                let tail = mask_tail(&b.account_number).replace('*', "X");
                let (status, reason) = b.state.wire();
                json!({ "accountNumber": tail, "accountName": b.account_name, "ifsc": b.ifsc,
                        "referenceNumber": b.reference, "transactionId": b.transaction_id,
                        "status": status, "reason": reason })
            })
            .collect();
        Ok(Value::Array(list))
    })())
}

async fn link_bank(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let v = json_body(&body)?;
        let pan = str_field(&v, "panNumber")?.to_ascii_uppercase();
        let pan_ok = pan.len() == 10
            && pan.bytes().take(5).all(|b| b.is_ascii_uppercase())
            && pan.bytes().skip(5).take(4).all(|b| b.is_ascii_digit())
            && pan.as_bytes()[9].is_ascii_uppercase();
        if !pan_ok {
            return Err(ApiError::bad_request("invalid panNumber"));
        }
        let bank = v.get("bankDetails").cloned().unwrap_or(Value::Null);
        let account_number = str_field(&bank, "accountNumber")?;
        let account_name = str_field(&bank, "accountName")?;
        let ifsc = str_field(&bank, "ifsc")?;
        let mut world = s.world();
        let link = world.link_bank(&email, &account_number, &account_name, &ifsc)?;
        let name = opt_str(&v, "name").unwrap_or(account_name);
        world.note_customer(&email, &name, phone(&v));
        Ok(link_json(&link.reference, &link.state))
    })())
}

/// `phone: {countryCode, number}` of a link request, for the callbacks' customer block.
fn phone(v: &Value) -> Option<(String, String)> {
    let phone = v.get("phone")?;
    Some((opt_str(phone, "countryCode")?, opt_str(phone, "number")?))
}

/// A link answer: `status` `SUCCESS`, `PENDING` or `FAILED` (with a reason).
fn link_json(reference: &str, state: &LinkState) -> Value {
    let (status, reason) = state.wire();
    json!({ "referenceNumber": reference, "status": status, "reason": reason })
}

async fn bank_status(State(s): St, headers: HeaderMap, Path(reference): Path<String>) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let view = s.world().link_status(&email, LinkKind::Bank, &reference)?;
        let (status, reason) = view.state.wire();
        Ok(
            json!({ "bankStatus": status, "transactionId": view.transaction_id,
                   "referenceId": view.reference, "reason": reason }),
        )
    })())
}

async fn upi_status(State(s): St, headers: HeaderMap, Path(reference): Path<String>) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let view = s.world().link_status(&email, LinkKind::Upi, &reference)?;
        let (status, reason) = view.state.wire();
        Ok(json!({ "upiStatus": status, "referenceId": view.reference, "reason": reason }))
    })())
}

// ---------------------------------------------------------------------------------------------
// Quotes and orders
// ---------------------------------------------------------------------------------------------

async fn quote(State(s): St, body: Bytes) -> Response {
    respond((|| {
        let v = json_body(&body)?;
        if let Some(currency) = opt_str(&v, "fiatCurrency")
            && !currency.eq_ignore_ascii_case("inr")
        {
            return Err(ApiError::bad_request("unsupported fiatCurrency"));
        }
        u64_field(&v, "chainId")?;
        let symbol = str_field(&v, "buyTokenSymbol")?;
        let amount = decimal_field(&v, "fiatAmount")?;
        let q = s.world().quote(&symbol, amount)?;
        Ok(json!({
            "quote": q.base_units,
            "receivedTokens": q.received_tokens.to_string(),
            "conversionRate": q.conversion_rate.to_string(),
            "estimateId": q.estimate_id,
            "gasPriceWei": "30000000000",
            "desiredOrder": { "base": { "gasCharge": { "currency": "inr", "value": "0.00" }, "transactionFee": 0 } },
            "transactionFee": 0,
        }))
    })())
}

fn parse_new_order(v: &Value) -> Result<NewOrder, ApiError> {
    let payment = match str_field(v, "paymentMode")?.to_ascii_uppercase().as_str() {
        "INR_UPI" => {
            let upi = v.get("upiId").cloned().unwrap_or(Value::Null);
            Payment::Upi {
                upi_id: str_field(&upi, "upiId")?,
                name: str_field(&upi, "name")?,
            }
        }
        "INR_IMPS" => {
            let bank = v.get("bankDetails").cloned().unwrap_or(Value::Null);
            Payment::Imps {
                account_name: str_field(&bank, "accountName")?,
                account_number: str_field(&bank, "accountNumber")?,
                ifsc: str_field(&bank, "ifsc")?,
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "unsupported paymentMode: use INR_UPI or INR_IMPS",
            ));
        }
    };
    Ok(NewOrder {
        token_symbol: str_field(v, "buyTokenSymbol")?,
        token_address: opt_str(v, "buyTokenAddress"),
        chain_id: u64_field(v, "chainId")?,
        fiat_amount: decimal_field(v, "fiatAmount")?,
        receiver_address: str_field(v, "receiverAddress")?,
        payment,
        merchant_ref: v.get("metaData").and_then(|m| opt_str(m, "merchantRef")),
    })
}

fn created_json(clock: &Clock, o: &Order) -> Value {
    let mut data = json!({
        "orderId": o.id,
        "pgOrderId": "",
        "status": o.status,
        "fiatAmount": amount(o.request.fiat_amount),
        "fiatCurrency": "INR",
        "buyTokenSymbol": o.request.token_symbol,
        "chainId": o.request.chain_id,
        "receiverAddress": o.request.receiver_address,
        "createdAt": rfc3339(clock, o.created_at),
        "expiresAt": rfc3339(clock, o.expires_at),
    });
    let map = data.as_object_mut().expect("object literal");
    if o.is_upi() {
        let upi = o.upi_string();
        map.insert("upiCode".into(), json!(upi));
        map.insert(
            "redirect_actions".into(),
            json!({ "qr_checkout_string": upi, "deepLinks": [{ "name": "UPI", "url": upi, "imageUrl": "" }] }),
        );
        map.insert(
            "paymentDetails".into(),
            json!({ "upiCode": "onmeta@sandbox" }),
        );
    } else {
        map.insert(
            "paymentDetails".into(),
            json!({ "accountName": COLLECT_ACCOUNT_NAME, "accountNumber": COLLECT_ACCOUNT_NUMBER,
                    "ifsc": COLLECT_IFSC, "bankName": COLLECT_BANK }),
        );
    }
    data
}

async fn create_order(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    let created = (|| {
        let email = user(&s, &headers)?;
        let new = parse_new_order(&json_body(&body)?)?;
        let order = s.world().create_order(&email, new, s.clock.now())?;
        s.after_create(&email);
        Ok(created_json(&s.clock, &order))
    })();
    reply_after_create(&s, created).await
}

/// Answers a create, first sleeping `respond_latency_create_ms` when an order was made.
async fn reply_after_create(s: &Shared, created: ApiResult) -> Response {
    let delay = s.faults_snapshot().respond_latency_create_ms;
    if created.is_ok() && delay > 0 {
        // The order exists; the caller may give up before this reply arrives.
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    respond(created)
}

async fn submit_utr(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let v = json_body(&body)?;
        let order_id = str_field(&v, "orderId")?;
        let utr = str_field(&v, "utr")?;
        s.world()
            .submit_utr(&email, &order_id, &utr, s.clock.now())?;
        Ok(Value::Null)
    })())
}

fn status_json(clock: &Clock, o: &Order, status: &str) -> Value {
    let wei = o
        .transferred_amount
        .map(|a| {
            let decimals = if matches!(
                o.request.token_symbol.to_ascii_uppercase().as_str(),
                "USDT" | "USDC" | "USDC.E"
            ) {
                6
            } else {
                18
            };
            (a * Decimal::from(10u64.pow(decimals)))
                .trunc()
                .normalize()
                .to_string()
        })
        .unwrap_or_default();
    let reason = if status == "expired" {
        "order expired"
    } else {
        ""
    };
    json!({
        "orderId": o.id,
        "status": status,
        "reason": reason,
        "transactionHash": o.tx_hash.clone().unwrap_or_default(),
        "explorerUrl": o.tx_hash.as_ref().map(|h| format!("https://polygonscan.com/tx/{h}")).unwrap_or_default(),
        "transferredAmount": o.transferred_amount.map(|a| a.to_string()).unwrap_or_default(),
        "transferredAmountWei": wei,
        "fiat": amount(o.request.fiat_amount),
        "receiverWalletAddress": o.request.receiver_address,
        "buyTokenSymbol": o.request.token_symbol,
        "buyTokenAddress": o.request.token_address.clone().unwrap_or_default(),
        "currency": "INR",
        "chainId": o.request.chain_id,
        "created_at": rfc3339(clock, o.created_at),
        "updated_at": rfc3339(clock, o.updated_at),
    })
}

async fn order_status(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let order_id = str_field(&json_body(&body)?, "orderId")?;
        let order = s.world().poll_status(&email, &order_id, s.clock.now())?;
        let odd = faults::chance(s.faults_snapshot().unknown_status_rate);
        let status = if odd {
            s.world().stats.faults_injected += 1;
            faults::odd_status()
        } else {
            order.status.as_str()
        };
        Ok(status_json(&s.clock, &order, status))
    })())
}

async fn list_orders(State(s): St, headers: HeaderMap, Path(skip): Path<String>) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let skip: usize = skip
            .parse()
            .map_err(|_| ApiError::bad_request("skip must be a non-negative integer"))?;
        let orders = s
            .world()
            .list_orders(&email, skip, PAGE_SIZE, s.clock.now());
        let list: Vec<Value> = orders
            .iter()
            .map(|listed| {
                let o = match listed {
                    Listed::On(o) => o,
                    Listed::Off(o) => return offramp::listed_json(&s.clock, o),
                };
                let mut item = json!({
                    "eventType": "onramp",
                    "orderId": o.id,
                    "status": o.status,
                    "fiat": amount(o.request.fiat_amount),
                    "currency": "INR",
                    "buyTokenSymbol": o.request.token_symbol,
                    "chainId": o.request.chain_id,
                    "receiverWalletAddress": o.request.receiver_address,
                    "paymentMode": if o.is_upi() { "INR_UPI" } else { "INR_IMPS" },
                    "createdAt": rfc3339(&s.clock, o.created_at),
                    "metaData": { "merchantRef": o.request.merchant_ref },
                });
                if let Some(utr) = &o.utr {
                    item["paymentDetails"] = json!({ "source": "UTR", "reference": utr });
                }
                item
            })
            .collect();
        Ok(Value::Array(list))
    })())
}

// ---------------------------------------------------------------------------------------------
// Control endpoints
// ---------------------------------------------------------------------------------------------

async fn stats(State(s): St) -> Response {
    axum::Json(s.stats()).into_response()
}

async fn get_faults(State(s): St) -> Response {
    axum::Json(s.faults_snapshot()).into_response()
}

async fn get_scenario(State(s): St) -> Response {
    axum::Json(s.world().scenario.clone()).into_response()
}

async fn put_scenario(State(s): St, body: Bytes) -> Response {
    match serde_json::from_slice::<Scenario>(&body) {
        Ok(scenario) => {
            s.world().scenario = scenario.clone();
            axum::Json(scenario).into_response()
        }
        Err(_) => error_response(&ApiError::bad_request("invalid Scenario JSON")),
    }
}

async fn get_conversion_rate(State(s): St) -> Response {
    let rate = s.world().conversion_rate;
    axum::Json(json!({ "conversion_rate": rate.to_string() })).into_response()
}

/// `{"conversion_rate": "90.10"}` (a string or a number); must be positive.
async fn put_conversion_rate(State(s): St, body: Bytes) -> Response {
    let rate = json_body(&body).and_then(|v| decimal_field(&v, "conversion_rate"));
    match rate {
        Ok(rate) if rate > Decimal::ZERO => {
            s.world().conversion_rate = rate;
            axum::Json(json!({ "conversion_rate": rate.to_string() })).into_response()
        }
        Ok(_) => error_response(&ApiError::bad_request("conversion_rate must be positive")),
        Err(err) => error_response(&err),
    }
}

async fn put_faults(State(s): St, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            *s.faults_mut() = faults.clone();
            axum::Json(faults).into_response()
        }
        Err(_) => error_response(&ApiError::bad_request("invalid Faults JSON")),
    }
}
