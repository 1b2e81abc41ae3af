//! Onmeta wire format: request bodies and tolerant response parsing.
//!
//! The provider's examples drift in type and spelling (numbers as strings, `"true"` for
//! booleans, `txnhash` vs `transactionHash`, a `{"request_data": …}` wrapper, empty strings
//! for "no value"). So responses are unwrapped ([`envelope_data`]), their object keys are
//! lower-cased, and the private wire structs below read every field leniently: a field of an
//! unexpected shape becomes `None` instead of failing the whole answer. Required fields that
//! are missing make the answer `Unknown`.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::{
    CollectBankDetails, CreateOnrampRequest, CreatedOnrampOrder, LinkBankRequest, LinkOutcome,
    LinkStatus, LinkUpiRequest, LinkedBank, LinkedUpi, OnrampPayment, OnrampStatus, Quote,
    QuoteRequest, RecentOrder, UtrOutcome,
};
use crate::providers::error::{ProviderError, RawResponse, envelope_data};

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

pub(super) fn link_upi_body(email: &str, r: &LinkUpiRequest) -> Value {
    json!({
        "name": r.name,
        "email": email,
        "phone": { "countryCode": r.phone_country_code, "number": r.phone_number },
        "upiId": r.upi_id,
    })
}

pub(super) fn link_bank_body(email: &str, r: &LinkBankRequest) -> Value {
    json!({
        "name": r.name,
        "panNumber": r.pan,
        "email": email,
        "kycVerfied": true, // sic: the provider's spelling
        "bankDetails": {
            "accountNumber": r.account_number,
            "accountName": r.account_name,
            "ifsc": r.ifsc,
        },
        "phone": { "countryCode": r.phone_country_code, "number": r.phone_number },
    })
}

pub(super) fn quote_body(r: &QuoteRequest) -> Value {
    json!({
        "buyTokenSymbol": r.token_symbol,
        "chainId": r.chain_id,
        "fiatCurrency": "inr",
        "fiatAmount": decimal_json(r.fiat_amount),
    })
}

pub(super) fn create_order_body(r: &CreateOnrampRequest) -> Value {
    let mut body = json!({
        "buyTokenSymbol": r.token_symbol,
        "chainId": r.chain_id,
        "fiatCurrency": "inr",
        "fiatAmount": decimal_json(r.fiat_amount),
        "receiverAddress": r.receiver_address,
        "metaData": { "merchantRef": r.merchant_ref },
    });
    let map = body.as_object_mut().expect("object literal");
    if let Some(address) = &r.token_address {
        map.insert("buyTokenAddress".into(), json!(address));
    }
    match &r.payment {
        OnrampPayment::Upi { upi_id, name } => {
            map.insert("paymentMode".into(), json!("INR_UPI"));
            map.insert("upiId".into(), json!({ "upiId": upi_id, "name": name }));
        }
        OnrampPayment::Imps {
            account_name,
            account_number,
            ifsc,
        } => {
            map.insert("paymentMode".into(), json!("INR_IMPS"));
            map.insert(
                "bankDetails".into(),
                json!({ "accountName": account_name, "accountNumber": account_number, "ifsc": ifsc }),
            );
        }
    }
    body
}

/// A decimal as a JSON number when that number's text is exactly the decimal (integers and
/// ordinary amounts like `1000.50`), otherwise as a string. Never loses precision.
pub(crate) fn decimal_json(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0
        && let Some(i) = d.to_i64()
    {
        return Value::from(i);
    }
    let text = d.to_string();
    if let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
        && Decimal::from_str(&n.to_string()).ok() == Some(d)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

// ---------------------------------------------------------------------------------------------
// Lenient field readers
// ---------------------------------------------------------------------------------------------

/// Lower-cases every object key, recursively. When two keys collide (`txnHash`/`txnhash`),
/// the first non-null value wins.
pub(crate) fn lower_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                let k = k.to_ascii_lowercase();
                let v = lower_keys(v);
                match out.get(&k) {
                    Some(existing) if !existing.is_null() => {}
                    _ => {
                        out.insert(k, v);
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(lower_keys).collect()),
        other => other,
    }
}

/// Strings (trimmed, empty → `None`) and numbers (their JSON text) as a string.
pub(crate) fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A decimal from a JSON string or number. Strings are parsed as text (never through f64);
/// numbers use serde_json's text for them. Scientific notation is accepted.
pub(crate) fn value_decimal(v: &Value) -> Option<Decimal> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// `true`/`false` or the strings `"true"`/`"false"` in any case.
pub(crate) fn value_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") {
                Some(true)
            } else if s.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// RFC 3339 text, or epoch milliseconds/seconds as a number.
pub(crate) fn value_datetime(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|d| d.with_timezone(&Utc)),
        Value::Number(n) => {
            let n = n.as_i64()?;
            // Heuristic: values this large are milliseconds.
            if n > 100_000_000_000 {
                Utc.timestamp_millis_opt(n).single()
            } else {
                Utc.timestamp_opt(n, 0).single()
            }
        }
        _ => None,
    }
}

fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_string))
}

fn de_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_decimal))
}

fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_bool))
}

fn de_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_datetime))
}

/// A nested object that may be absent, null or of the wrong shape (→ `None`).
fn de_nested<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| serde_json::from_value(v).ok()))
}

/// A list whose unreadable entries are skipped.
fn de_list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// Unwraps the envelope, lower-cases keys and reads the wire struct.
fn wire<T: serde::de::DeserializeOwned>(
    endpoint: &str,
    raw: &RawResponse,
) -> Result<T, ProviderError> {
    let data = lower_keys(envelope_data(endpoint, raw)?);
    serde_json::from_value(data)
        .map_err(|_| ProviderError::unknown(endpoint, "unexpected response shape"))
}

fn required<T>(endpoint: &str, field: &str, v: Option<T>) -> Result<T, ProviderError> {
    v.ok_or_else(|| ProviderError::unknown(endpoint, format_args!("response lacks `{field}`")))
}

/// The list in `data`, which may be the array itself or an object holding one.
fn data_list(endpoint: &str, raw: &RawResponse) -> Result<Vec<Value>, ProviderError> {
    match lower_keys(envelope_data(endpoint, raw)?) {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => map
            .into_iter()
            .find_map(|(_, v)| match v {
                Value::Array(items) => Some(items),
                _ => None,
            })
            .ok_or_else(|| ProviderError::unknown(endpoint, "response holds no list")),
        _ => Err(ProviderError::unknown(endpoint, "response holds no list")),
    }
}

// ---------------------------------------------------------------------------------------------
// Wire structs (keys already lower-cased)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct WireTokens {
    #[serde(
        default,
        rename = "accesstoken",
        alias = "access_token",
        deserialize_with = "de_string"
    )]
    access: Option<String>,
    #[serde(
        default,
        rename = "refreshtoken",
        alias = "refresh_token",
        deserialize_with = "de_string"
    )]
    refresh: Option<String>,
}

#[derive(Deserialize)]
struct WireKyc {
    #[serde(
        default,
        rename = "iskycverified",
        alias = "kycverified",
        deserialize_with = "de_bool"
    )]
    verified: Option<bool>,
}

#[derive(Deserialize)]
struct WireUpi {
    #[serde(
        default,
        rename = "upiid",
        alias = "upi",
        deserialize_with = "de_string"
    )]
    upi_id: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    status: Option<String>,
    #[serde(default, rename = "referenceid", deserialize_with = "de_string")]
    reference_id: Option<String>,
    #[serde(default, rename = "referencenumber", deserialize_with = "de_string")]
    reference_number: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct WireBank {
    #[serde(default, rename = "accountnumber", deserialize_with = "de_string")]
    account_number: Option<String>,
    #[serde(default, rename = "accountname", deserialize_with = "de_string")]
    account_name: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    ifsc: Option<String>,
    #[serde(default, rename = "referencenumber", deserialize_with = "de_string")]
    reference_number: Option<String>,
    #[serde(default, rename = "referenceid", deserialize_with = "de_string")]
    reference_id: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct WireLink {
    #[serde(default, rename = "referencenumber", deserialize_with = "de_string")]
    reference_number: Option<String>,
    #[serde(default, rename = "referenceid", deserialize_with = "de_string")]
    reference_id: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    status: Option<String>,
    #[serde(default, rename = "upistatus", deserialize_with = "de_string")]
    upi_status: Option<String>,
    #[serde(default, rename = "bankstatus", deserialize_with = "de_string")]
    bank_status: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct WireQuote {
    #[serde(default, rename = "receivedtokens", deserialize_with = "de_decimal")]
    received_tokens: Option<Decimal>,
    #[serde(default, rename = "conversionrate", deserialize_with = "de_decimal")]
    conversion_rate: Option<Decimal>,
    #[serde(default, deserialize_with = "de_string")]
    quote: Option<String>,
    #[serde(default, rename = "estimateid", deserialize_with = "de_string")]
    estimate_id: Option<String>,
    #[serde(default, rename = "transactionfee", deserialize_with = "de_decimal")]
    transaction_fee: Option<Decimal>,
    #[serde(default, rename = "desiredorder", deserialize_with = "de_nested")]
    desired_order: Option<WireDesiredOrder>,
}

#[derive(Deserialize)]
struct WireDesiredOrder {
    #[serde(default, deserialize_with = "de_nested")]
    base: Option<WireDesiredBase>,
}

#[derive(Deserialize)]
struct WireDesiredBase {
    #[serde(default, rename = "transactionfee", deserialize_with = "de_decimal")]
    transaction_fee: Option<Decimal>,
}

#[derive(Deserialize)]
struct WireCreated {
    #[serde(default, rename = "orderid", deserialize_with = "de_string")]
    order_id: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    status: Option<String>,
    #[serde(default, rename = "upicode", deserialize_with = "de_string")]
    upi_code: Option<String>,
    #[serde(default, rename = "redirect_actions", deserialize_with = "de_nested")]
    redirect_actions: Option<WireRedirect>,
    #[serde(default, rename = "paymentdetails", deserialize_with = "de_nested")]
    payment_details: Option<WirePaymentDetails>,
    #[serde(default, rename = "expiresat", deserialize_with = "de_datetime")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "expires_at", deserialize_with = "de_datetime")]
    expires_at_snake: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct WireRedirect {
    #[serde(default, deserialize_with = "de_string")]
    qr_checkout_string: Option<String>,
    #[serde(default, rename = "deeplinks", deserialize_with = "de_list")]
    deep_links: Vec<WireDeepLink>,
}

#[derive(Deserialize)]
struct WireDeepLink {
    #[serde(default, deserialize_with = "de_string")]
    url: Option<String>,
}

#[derive(Deserialize)]
struct WirePaymentDetails {
    #[serde(default, rename = "accountname", deserialize_with = "de_string")]
    account_name: Option<String>,
    #[serde(default, rename = "accountnumber", deserialize_with = "de_string")]
    account_number: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    ifsc: Option<String>,
    #[serde(default, rename = "bankname", deserialize_with = "de_string")]
    bank_name: Option<String>,
    #[serde(default, rename = "upicode", deserialize_with = "de_string")]
    upi_code: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    source: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    reference: Option<String>,
}

#[derive(Deserialize)]
struct WireStatus {
    #[serde(default, deserialize_with = "de_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    reason: Option<String>,
    #[serde(default, rename = "transactionhash", deserialize_with = "de_string")]
    transaction_hash: Option<String>,
    #[serde(default, rename = "txnhash", deserialize_with = "de_string")]
    txn_hash: Option<String>,
    #[serde(default, rename = "txhash", deserialize_with = "de_string")]
    tx_hash: Option<String>,
    #[serde(default, rename = "transferredamount", deserialize_with = "de_decimal")]
    transferred_amount: Option<Decimal>,
}

#[derive(Deserialize)]
struct WireRecentOrder {
    #[serde(default, rename = "orderid", deserialize_with = "de_string")]
    order_id: Option<String>,
    #[serde(default, rename = "_id", deserialize_with = "de_string")]
    mongo_id: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    status: Option<String>,
    #[serde(default, rename = "metadata", deserialize_with = "de_nested")]
    meta_data: Option<WireMetaData>,
    #[serde(default, rename = "paymentdetails", deserialize_with = "de_nested")]
    payment_details: Option<WirePaymentDetails>,
}

#[derive(Deserialize)]
struct WireMetaData {
    #[serde(default, rename = "merchantref", deserialize_with = "de_string")]
    merchant_ref: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Response parsers
// ---------------------------------------------------------------------------------------------

/// Login and refresh: `(accessToken, refreshToken?)`.
pub(super) fn tokens(
    endpoint: &str,
    raw: &RawResponse,
) -> Result<(SecretString, Option<SecretString>), ProviderError> {
    let w: WireTokens = wire(endpoint, raw)?;
    let access = required(endpoint, "accessToken", w.access)?;
    Ok((
        SecretString::from(access),
        w.refresh.map(SecretString::from),
    ))
}

pub(super) fn kyc(raw: &RawResponse) -> Result<bool, ProviderError> {
    let w: WireKyc = wire("users/kyc-status", raw)?;
    required("users/kyc-status", "isKycVerified", w.verified)
}

pub(super) fn upis(raw: &RawResponse) -> Result<Vec<LinkedUpi>, ProviderError> {
    Ok(data_list("users/upi/fetch", raw)?
        .into_iter()
        .filter_map(|v| serde_json::from_value::<WireUpi>(v).ok())
        .filter_map(|w| {
            Some(LinkedUpi {
                upi_id: w.upi_id?,
                name: w.name,
                status: w.status,
                reference_id: w.reference_id.or(w.reference_number),
                reason: w.reason,
            })
        })
        .collect())
}

pub(super) fn banks(raw: &RawResponse) -> Result<Vec<LinkedBank>, ProviderError> {
    Ok(data_list("users/bank/fetch", raw)?
        .into_iter()
        .filter_map(|v| serde_json::from_value::<WireBank>(v).ok())
        .filter_map(|w| {
            Some(LinkedBank {
                masked_account_number: w.account_number?,
                account_name: w.account_name,
                ifsc: w.ifsc,
                reference_number: w.reference_number.or(w.reference_id),
                status: w.status,
                reason: w.reason,
            })
        })
        .collect())
}

fn is_already_linked(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already verified") || m.contains("already linked")
}

/// Maps a link status string (any case) to [`LinkStatus`]. Unrecognised values count as
/// pending: the caller confirms with `fetch_upis`/`fetch_banks`.
pub(crate) fn link_status(status: Option<&str>, reason: Option<&str>) -> LinkStatus {
    let Some(status) = status else {
        return LinkStatus::Pending;
    };
    match status.trim().to_ascii_lowercase().as_str() {
        "success" | "successful" | "verified" | "linked" | "active" | "approved" | "completed" => {
            LinkStatus::Linked
        }
        "failed" | "failure" | "rejected" | "declined" | "error" | "invalid" => {
            LinkStatus::Failed(reason.unwrap_or(status).to_owned())
        }
        _ => LinkStatus::Pending,
    }
}

/// UPI and bank link answers. HTTP 406 ("account already verified") means linked.
pub(super) fn link(endpoint: &str, raw: &RawResponse) -> Result<LinkOutcome, ProviderError> {
    if raw.status == 406 {
        return Ok(LinkOutcome {
            reference: None,
            status: LinkStatus::Linked,
        });
    }
    let data = match envelope_data(endpoint, raw) {
        Ok(data) => lower_keys(data),
        Err(ProviderError::Rejected { message, .. }) if is_already_linked(&message) => {
            return Ok(LinkOutcome {
                reference: None,
                status: LinkStatus::Linked,
            });
        }
        Err(err) => return Err(err),
    };
    let w: WireLink = serde_json::from_value(data)
        .map_err(|_| ProviderError::unknown(endpoint, "unexpected response shape"))?;
    let status = w.status.or(w.upi_status).or(w.bank_status);
    Ok(LinkOutcome {
        reference: w.reference_number.or(w.reference_id),
        status: link_status(status.as_deref(), w.reason.as_deref()),
    })
}

pub(super) fn quote(raw: &RawResponse) -> Result<Quote, ProviderError> {
    const EP: &str = "quote/fetch";
    let w: WireQuote = wire(EP, raw)?;
    Ok(Quote {
        received_tokens: required(EP, "receivedTokens", w.received_tokens)?,
        conversion_rate: required(EP, "conversionRate", w.conversion_rate)?,
        quote_base_units: required(EP, "quote", w.quote)?,
        estimate_id: w.estimate_id,
        transaction_fee: w
            .transaction_fee
            .or_else(|| w.desired_order?.base?.transaction_fee),
    })
}

pub(super) fn created_order(raw: &RawResponse) -> Result<CreatedOnrampOrder, ProviderError> {
    const EP: &str = "orders/create";
    let w: WireCreated = wire(EP, raw)?;
    let order_id = required(EP, "orderId", w.order_id)?;
    let (qr_string, first_deep_link) = match w.redirect_actions {
        Some(r) => (
            r.qr_checkout_string,
            r.deep_links.into_iter().find_map(|l| l.url),
        ),
        None => (None, None),
    };
    let payment_upi_code = w.payment_details.as_ref().and_then(|p| p.upi_code.clone());
    let upi_deep_link = first_deep_link.or(w.upi_code).or_else(|| {
        // `paymentDetails.upiCode` is sometimes a bare VPA; only use it when it is a link.
        payment_upi_code.filter(|c| c.contains("://"))
    });
    let bank_details = w.payment_details.and_then(|p| {
        Some(CollectBankDetails {
            account_number: p.account_number?,
            account_name: p.account_name.unwrap_or_default(),
            ifsc: p.ifsc.unwrap_or_default(),
            bank_name: p.bank_name,
        })
    });
    Ok(CreatedOnrampOrder {
        order_id,
        status: w.status.unwrap_or_else(|| "fiatPending".to_owned()),
        upi_deep_link,
        qr_string,
        bank_details,
        expires_at: w.expires_at.or(w.expires_at_snake),
    })
}

pub(super) fn utr(raw: &RawResponse) -> Result<UtrOutcome, ProviderError> {
    match envelope_data("orders/utr", raw) {
        Ok(_) => Ok(UtrOutcome::Accepted),
        Err(ProviderError::Rejected { message, .. })
            if message.to_ascii_lowercase().contains("already success") =>
        {
            Ok(UtrOutcome::AlreadySuccess)
        }
        Err(err) => Err(err),
    }
}

pub(super) fn status(raw: &RawResponse) -> Result<OnrampStatus, ProviderError> {
    const EP: &str = "orders/status";
    let w: WireStatus = wire(EP, raw)?;
    Ok(OnrampStatus {
        status: required(EP, "status", w.status)?,
        reason: w.reason,
        tx_hash: w.transaction_hash.or(w.txn_hash).or(w.tx_hash),
        transferred_amount: w.transferred_amount,
    })
}

pub(super) fn recent_orders(raw: &RawResponse) -> Result<Vec<RecentOrder>, ProviderError> {
    Ok(data_list("orders/list", raw)?
        .into_iter()
        .filter_map(|v| serde_json::from_value::<WireRecentOrder>(v).ok())
        .filter_map(|w| {
            let utr = w
                .payment_details
                .filter(|p| {
                    p.source
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case("utr"))
                })
                .and_then(|p| p.reference);
            Some(RecentOrder {
                order_id: w.order_id.or(w.mongo_id)?,
                merchant_ref: w.meta_data.and_then(|m| m.merchant_ref),
                status: w.status.unwrap_or_default(),
                utr,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    /// `Decimal` literal, parsed from its text.
    macro_rules! dec {
        ($s:literal) => {
            Decimal::from_str(stringify!($s)).unwrap()
        };
    }

    fn ok(body: &str) -> RawResponse {
        RawResponse::json(200, body)
    }

    #[test]
    fn tokens_from_login() {
        let (access, refresh) = tokens(
            "users/login",
            &ok(r#"{"success":true,"data":{"accessToken":"a.b.c","refreshToken":"r.s.t"},"error":{}}"#),
        )
        .unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(access.expose_secret(), "a.b.c");
        assert_eq!(refresh.unwrap().expose_secret(), "r.s.t");

        let (_, refresh) = tokens(
            "users/refresh-token",
            &ok(r#"{"success":true,"data":{"accessToken":"x"}}"#),
        )
        .unwrap();
        assert!(refresh.is_none());

        let err = tokens("users/login", &ok(r#"{"success":true,"data":{}}"#)).unwrap_err();
        assert!(matches!(err, ProviderError::Unknown { .. }));
    }

    #[test]
    fn kyc_accepts_bools_and_strings() {
        for (body, want) in [
            (r#"{"success":true,"data":{"isKycVerified":"true"}}"#, true),
            (
                r#"{"success":true,"data":{"isKycVerified":"FALSE"}}"#,
                false,
            ),
            (
                r#"{"success":true,"data":{"isKycVerified":" True "}}"#,
                true,
            ),
            (r#"{"success":true,"data":{"isKycVerified":false}}"#, false),
            (r#"{"success":true,"data":{"iskycverified":true}}"#, true),
        ] {
            assert_eq!(kyc(&ok(body)).unwrap(), want, "{body}");
        }
        assert!(matches!(
            kyc(&ok(r#"{"success":true,"data":{"isKycVerified":"maybe"}}"#)),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn lenient_decimals() {
        assert_eq!(value_decimal(&json!("318.9209")), Some(dec!(318.9209)));
        assert_eq!(
            value_decimal(&json!(" 94.06664552 ")),
            Some(dec!(94.06664552))
        );
        assert_eq!(value_decimal(&json!(0.1)), Some(dec!(0.1)));
        assert_eq!(value_decimal(&json!(30000)), Some(dec!(30000)));
        assert_eq!(value_decimal(&json!("1e-7")), Some(dec!(0.0000001)));
        assert_eq!(value_decimal(&json!("")), None);
        assert_eq!(value_decimal(&json!("abc")), None);
        assert_eq!(value_decimal(&json!(null)), None);
        // A long decimal string keeps every digit (never goes through f64).
        assert_eq!(
            value_decimal(&json!("1.123456789012345678901234567")),
            Some(dec!(1.123456789012345678901234567))
        );
    }

    #[test]
    fn decimal_json_is_exact() {
        assert_eq!(decimal_json(dec!(1000)), json!(1000));
        assert_eq!(decimal_json(dec!(1000.00)), json!(1000));
        assert_eq!(decimal_json(dec!(1000.50)), json!(1000.5));
        assert_eq!(
            decimal_json(dec!(1.123456789012345678901234567)),
            json!("1.123456789012345678901234567")
        );
    }

    #[test]
    fn quote_with_mixed_number_types() {
        let body = r#"{"success":true,"data":{"gasPriceWei":"30139505131","quote":"318920900",
            "estimateId":"c49fb713-df5f-43b7-a2b4-a886eb907894",
            "desiredOrder":{"base":{"gasCharge":{"currency":"inr","value":"0.18"},"transactionFee":0}},
            "receivedTokens":"318.9209","conversionRate":94.06664552},"error":{}}"#;
        let q = quote(&ok(body)).unwrap();
        assert_eq!(q.received_tokens, dec!(318.9209));
        assert_eq!(q.conversion_rate, dec!(94.06664552));
        assert_eq!(q.quote_base_units, "318920900");
        assert_eq!(
            q.estimate_id.as_deref(),
            Some("c49fb713-df5f-43b7-a2b4-a886eb907894")
        );
        assert_eq!(q.transaction_fee, Some(Decimal::ZERO));

        let q = quote(&ok(r#"{"data":{"quote":318920900,"receivedTokens":318.9209,"conversionRate":"88.5","transactionFee":"1.25"}}"#))
            .unwrap();
        assert_eq!(q.quote_base_units, "318920900");
        assert_eq!(q.transaction_fee, Some(dec!(1.25)));

        assert!(matches!(
            quote(&ok(r#"{"success":true,"data":{"quote":"1"}}"#)),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn created_upi_order() {
        let body = r#"{"success":true,"data":{"orderId":"6890c8c1b59b98cfb19a7b8f","pgOrderId":"","upiCode":"",
            "redirect_actions":{"qr_checkout_string":"upi://pay?pa=x@bank&am=1000.00&tn=6890",
              "deepLinks":[{"name":"Phonepe","url":"phonepe://pay?pa=x@bank"},{"name":"QR","url":"upi://pay?pa=x@bank"}]},
            "paymentDetails":{"upiCode":"jana2311108098@janabank"}},"error":{}}"#;
        let o = created_order(&ok(body)).unwrap();
        assert_eq!(o.order_id, "6890c8c1b59b98cfb19a7b8f");
        assert_eq!(o.status, "fiatPending");
        assert_eq!(o.upi_deep_link.as_deref(), Some("phonepe://pay?pa=x@bank"));
        assert_eq!(
            o.qr_string.as_deref(),
            Some("upi://pay?pa=x@bank&am=1000.00&tn=6890")
        );
        assert!(o.bank_details.is_none());
        assert!(o.expires_at.is_none());
    }

    #[test]
    fn created_imps_order_with_expiry() {
        let body = r#"{"success":true,"data":{"orderId":"0123456789abcdef01234567","status":"fiatPending",
            "paymentDetails":{"accountName":"Onmeta Sandbox Collections","accountNumber":"50200012345678",
              "ifsc":"HDFC0000001","bankName":"HDFC Bank"},
            "expiresAt":"2026-01-01T03:00:00Z"}}"#;
        let o = created_order(&ok(body)).unwrap();
        let bank = o.bank_details.unwrap();
        assert_eq!(bank.account_number, "50200012345678");
        assert_eq!(bank.ifsc, "HDFC0000001");
        assert_eq!(bank.bank_name.as_deref(), Some("HDFC Bank"));
        assert_eq!(
            o.expires_at.unwrap().to_rfc3339(),
            "2026-01-01T03:00:00+00:00"
        );
        assert!(o.upi_deep_link.is_none());

        // The upiCode is used when there are no deep links.
        let o = created_order(&ok(
            r#"{"data":{"orderId":"x","upiCode":"upi://pay?pa=a@b"}}"#,
        ))
        .unwrap();
        assert_eq!(o.upi_deep_link.as_deref(), Some("upi://pay?pa=a@b"));

        assert!(matches!(
            created_order(&ok(r#"{"success":true,"data":{"status":"fiatPending"}}"#)),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn create_body_shapes() {
        let mut req = CreateOnrampRequest {
            merchant_ref: "rampd-1".into(),
            token_symbol: "USDT".into(),
            token_address: Some("0xc2132d05d31c914a87c6611c10748aeb04b58e8f".into()),
            chain_id: 137,
            fiat_amount: dec!(1000.50),
            receiver_address: "0xabc".into(),
            payment: OnrampPayment::Upi {
                upi_id: "a@ok".into(),
                name: "A".into(),
            },
        };
        let body = create_order_body(&req);
        assert_eq!(body["paymentMode"], "INR_UPI");
        assert_eq!(body["upiId"], json!({"upiId":"a@ok","name":"A"}));
        assert_eq!(body["metaData"]["merchantRef"], "rampd-1");
        assert_eq!(body["fiatAmount"], json!(1000.5));
        assert_eq!(body["fiatCurrency"], "inr");
        assert_eq!(body["chainId"], 137);
        assert!(body.get("bankDetails").is_none());

        req.payment = OnrampPayment::Imps {
            account_name: "A".into(),
            account_number: "1234".into(),
            ifsc: "HDFC0000123".into(),
        };
        req.token_address = None;
        let body = create_order_body(&req);
        assert_eq!(body["paymentMode"], "INR_IMPS");
        assert_eq!(body["bankDetails"]["accountNumber"], "1234");
        assert!(body.get("upiId").is_none());
        assert!(body.get("buyTokenAddress").is_none());
    }

    #[test]
    fn link_bank_body_shape() {
        let body = link_bank_body(
            "a@example.com",
            &LinkBankRequest {
                name: "A".into(),
                pan: "ABCDE1234F".into(),
                phone_country_code: "+91".into(),
                phone_number: "9999999999".into(),
                account_number: "1234567890".into(),
                account_name: "A".into(),
                ifsc: "HDFC0000123".into(),
            },
        );
        assert_eq!(body["kycVerfied"], true);
        assert_eq!(body["panNumber"], "ABCDE1234F");
        assert_eq!(body["bankDetails"]["ifsc"], "HDFC0000123");
        assert_eq!(body["phone"]["countryCode"], "+91");
    }

    #[test]
    fn link_outcomes() {
        let o = link(
            "x",
            &ok(r#"{"success":true,"data":{"referenceNumber":"ref-1","status":"SUCCESS"}}"#),
        )
        .unwrap();
        assert_eq!(o.status, LinkStatus::Linked);
        assert_eq!(o.reference.as_deref(), Some("ref-1"));
        let o = link(
            "x",
            &ok(r#"{"success":true,"data":{"referenceNumber":"r","status":"pending"}}"#),
        )
        .unwrap();
        assert_eq!(o.status, LinkStatus::Pending);
        let o = link(
            "x",
            &ok(r#"{"success":true,"data":{"status":"Failed","reason":"name mismatch"}}"#),
        )
        .unwrap();
        assert_eq!(o.status, LinkStatus::Failed("name mismatch".into()));

        // 406 "account already verified" is success.
        let raw = RawResponse::json(
            406,
            r#"{"success":false,"error":{"code":406,"message":"account already verified"}}"#,
        );
        assert_eq!(link("x", &raw).unwrap().status, LinkStatus::Linked);
        let raw = RawResponse::json(
            400,
            r#"{"success":false,"error":{"code":400,"message":"Account already verified"}}"#,
        );
        assert_eq!(link("x", &raw).unwrap().status, LinkStatus::Linked);

        // Other rejections stay errors.
        let raw = RawResponse::json(
            400,
            r#"{"success":false,"error":{"code":400,"message":"KYC not verified"}}"#,
        );
        assert!(matches!(
            link("x", &raw),
            Err(ProviderError::Rejected { .. })
        ));
        // A 2xx that is really a rejection.
        let raw = ok(r#"{"success":false,"error":{"code":400,"message":"invalid ifsc"}}"#);
        assert!(matches!(
            link("x", &raw),
            Err(ProviderError::Rejected {
                code: Some(400),
                ..
            })
        ));
    }

    #[test]
    fn fetch_lists() {
        let u = upis(&ok(
            r#"{"success":true,"data":[{"upiId":"a@ok","name":"A","status":"SUCCESS","referenceId":"r1","reason":""},{"name":"no id"}]}"#,
        ))
        .unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].upi_id, "a@ok");
        assert_eq!(u[0].reason, None);

        let b = banks(&ok(
            r#"{"success":true,"data":[{"accountNumber":"XXXX7315","accountName":"A","ifsc":"HDFC0000123","referenceNumber":"r","status":"SUCCESS"}]}"#,
        ))
        .unwrap();
        assert_eq!(b[0].masked_account_number, "XXXX7315");
        assert_eq!(b[0].status.as_deref(), Some("SUCCESS"));
        assert!(
            banks(&ok(r#"{"success":true,"data":[]}"#))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn utr_outcomes() {
        assert_eq!(
            utr(&ok(r#"{"success":true,"error":{}}"#)).unwrap(),
            UtrOutcome::Accepted
        );
        let already = r#"{"success":false,"error":{"code":400,"message":"Order already success, can't update UTR"}}"#;
        assert_eq!(utr(&ok(already)).unwrap(), UtrOutcome::AlreadySuccess);
        assert_eq!(
            utr(&RawResponse::json(400, already)).unwrap(),
            UtrOutcome::AlreadySuccess
        );
        let expired = r#"{"success":false,"error":{"code":400,"message":"order expired"}}"#;
        assert!(matches!(
            utr(&RawResponse::json(400, expired)),
            Err(ProviderError::Rejected { .. })
        ));
    }

    #[test]
    fn status_envelopes_and_key_variants() {
        let s = status(&ok(
            r#"{"success":true,"data":{"status":"fiatPending","reason":"","transactionHash":"","transferredAmount":"","fiat":100}}"#,
        ))
        .unwrap();
        assert_eq!(
            s,
            OnrampStatus {
                status: "fiatPending".into(),
                reason: None,
                tx_hash: None,
                transferred_amount: None
            }
        );

        // Webhook-style wrapper with lower-case keys.
        let s = status(&ok(
            r#"{"request_data":{"status":"completed","txnhash":"0xabc","transferredamount":"1.068666"}}"#,
        ))
        .unwrap();
        assert_eq!(s.status, "completed");
        assert_eq!(s.tx_hash.as_deref(), Some("0xabc"));
        assert_eq!(s.transferred_amount, Some(dec!(1.068666)));

        // Bare object, camelCase txnHash, numeric amount, exact-case status kept.
        let s = status(&ok(
            r#"{"status":"InProgress","txnHash":"0xdef","transferredAmount":2.5}"#,
        ))
        .unwrap();
        assert_eq!(s.status, "InProgress");
        assert_eq!(s.tx_hash.as_deref(), Some("0xdef"));
        assert_eq!(s.transferred_amount, Some(dec!(2.5)));

        // Both spellings at once do not break parsing.
        let s = status(&ok(r#"{"data":{"status":"transferred","transactionHash":"0x1","txnhash":"0x1","TransferredAmount":"3"}}"#))
            .unwrap();
        assert_eq!(s.tx_hash.as_deref(), Some("0x1"));

        assert!(matches!(
            status(&ok(r#"{"success":true,"data":{"reason":"x"}}"#)),
            Err(ProviderError::Unknown { .. })
        ));
        assert!(matches!(
            status(&ok("not json")),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn recent_orders_with_merchant_ref_and_utr() {
        let body = r#"{"success":true,"data":[
            {"orderId":"aaaaaaaaaaaaaaaaaaaaaaaa","status":"fiatReceived","metaData":{"merchantRef":"rampd-2"},
             "paymentDetails":{"source":"UTR","reference":"412345678901"}},
            {"orderId":"bbbbbbbbbbbbbbbbbbbbbbbb","status":"fiatPending","metaData":{"merchantRef":"rampd-1"},
             "paymentDetails":{"upiCode":"x@y"}},
            {"_id":"cccccccccccccccccccccccc","status":"expired"}
        ]}"#;
        let orders = recent_orders(&ok(body)).unwrap();
        assert_eq!(orders.len(), 3);
        assert_eq!(orders[0].merchant_ref.as_deref(), Some("rampd-2"));
        assert_eq!(orders[0].utr.as_deref(), Some("412345678901"));
        assert_eq!(orders[1].utr, None);
        assert_eq!(orders[2].order_id, "cccccccccccccccccccccccc");
        assert_eq!(orders[2].merchant_ref, None);
    }

    #[test]
    fn datetimes() {
        assert!(value_datetime(&json!("2026-01-01T00:00:00.000Z")).is_some());
        assert_eq!(
            value_datetime(&json!(1_767_225_600_000_i64)),
            value_datetime(&json!(1_767_225_600_i64))
        );
        assert!(value_datetime(&json!("tomorrow")).is_none());
    }
}
