//! Onmeta wire format: request bodies and tolerant response parsing.
//!
//! The provider's examples drift in type and spelling (numbers as strings, `"true"` for
//! booleans, `txnhash` vs `transactionHash`, a `{"request_data": …}` wrapper, empty strings
//! for "no value"). So responses are unwrapped ([`envelope_data`]), their object keys are
//! lower-cased, and the private wire structs below read every field leniently: a field of an
//! unexpected shape becomes `None` instead of failing the whole answer. Required fields that
//! are missing make the answer `Unknown`.

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::{
    CollectBankDetails, CreateOfframpRequest, CreateOnrampRequest, CreatedOfframpOrder,
    CreatedOnrampOrder, KycStatus, LinkBankRequest, LinkOutcome, LinkStatus, LinkUpiRequest,
    LinkedBank, LinkedUpi, ListedOrder, OfframpStatus, OnrampPayment, OnrampStatus, OrderKind,
    OrderPage, Quote, QuoteRequest, RecentOrder, SellQuote, SellQuoteRequest, TxHashOutcome,
    UtrOutcome,
};
use crate::providers::error::{ProviderError, RawResponse, envelope_data};
pub(crate) use crate::providers::lenient::{decimal_json, value_decimal, value_string};

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

pub(super) fn sell_quote_body(r: &SellQuoteRequest) -> Value {
    let mut body = json!({
        "sellTokenSymbol": r.token_symbol,
        "chainId": r.chain_id,
        "fiatCurrency": "inr",
        "sellTokenAmount": decimal_json(r.sell_token_amount),
        "senderAddress": r.sender_address,
    });
    if let Some(address) = &r.token_address {
        body["sellTokenAddress"] = json!(address);
    }
    body
}

pub(super) fn create_offramp_body(r: &CreateOfframpRequest) -> Value {
    let mut body = json!({
        "bankDetails": { "accountNumber": r.account_number, "ifsc": r.ifsc },
        "chainId": r.chain_id,
        "sellTokenAmount": decimal_json(r.sell_token_amount),
        "fiatCurrency": "inr",
        "sellTokenSymbol": r.token_symbol,
        "senderWalletAddress": r.sender_wallet,
        "refundWalletAddress": r.refund_wallet,
        "metaData": { "merchantRef": r.merchant_ref },
    });
    if let Some(address) = &r.token_address {
        body["sellTokenAddress"] = json!(address);
    }
    body
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

/// A list of strings; anything else (or non-string entries) is dropped.
fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items.iter().filter_map(value_string).collect(),
        Some(other) => value_string(&other).into_iter().collect(),
        None => Vec::new(),
    })
}

fn de_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_decimal))
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
    list_in(endpoint, envelope_data(endpoint, raw)?)
}

/// The list in `data` (already unwrapped from the envelope).
fn list_in(endpoint: &str, data: Value) -> Result<Vec<Value>, ProviderError> {
    match lower_keys(data) {
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

/// A lower-cased JSON object read by field name, where each field may go by several names
/// (`txnhash`, `transactionhash`, …): the first name holding a usable value wins. Unlike
/// serde aliases this never fails when a reply carries two spellings at once.
struct Fields(Map<String, Value>);

impl Fields {
    fn of(value: Value) -> Self {
        match lower_keys(value) {
            Value::Object(map) => Fields(map),
            _ => Fields(Map::new()),
        }
    }

    fn from_reply(endpoint: &str, raw: &RawResponse) -> Result<Self, ProviderError> {
        match lower_keys(envelope_data(endpoint, raw)?) {
            Value::Object(map) => Ok(Fields(map)),
            _ => Err(ProviderError::unknown(
                endpoint,
                "unexpected response shape",
            )),
        }
    }

    fn value(&self, names: &[&str]) -> Option<&Value> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .find(|v| !v.is_null())
    }

    fn string(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .find_map(value_string)
    }

    fn decimal(&self, names: &[&str]) -> Option<Decimal> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .find_map(value_decimal)
    }

    fn bool(&self, names: &[&str]) -> Option<bool> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .find_map(value_bool)
    }

    fn datetime(&self, names: &[&str]) -> Option<DateTime<Utc>> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .find_map(value_datetime)
    }
}

const TX_HASH_KEYS: &[&str] = &["txnhash", "transactionhash", "txhash"];

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

/// One bunq-style onboarding item. `status` is `null` (not started), `FULFILLED` or
/// `IN_PROGRESS`; it is satisfied when its status is in `all_status_allowed` (default
/// `[FULFILLED]`).
#[derive(Deserialize)]
struct WireFulfillment {
    #[serde(default, rename = "type", deserialize_with = "de_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "de_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    all_status_allowed: Vec<String>,
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

/// KYC with outstanding fulfilments. `verified` is `isKycVerified`; when the reply lacks it
/// but carries a fulfilment list, the user counts as verified iff nothing is outstanding.
pub(super) fn kyc_details(raw: &RawResponse) -> Result<KycStatus, ProviderError> {
    const EP: &str = "users/kyc-status";
    let f = Fields::from_reply(EP, raw)?;
    const LIST_KEYS: &[&str] = &[
        "fulfillments",
        "fulfilments",
        "all_fulfillment",
        "all_fulfilment",
    ];
    let list = f.value(LIST_KEYS).cloned().or_else(|| {
        let nested = Fields::of(f.value(&["additionalfulfillmentparameter"])?.clone());
        nested.value(LIST_KEYS).cloned()
    });
    let missing = list.as_ref().map(outstanding).unwrap_or_default();
    let verified = match f.bool(&["iskycverified", "kycverified"]) {
        Some(v) => v,
        None if list.is_some() => missing.is_empty(),
        None => return Err(ProviderError::unknown(EP, "response lacks `isKycVerified`")),
    };
    Ok(KycStatus { verified, missing })
}

/// The types of unsatisfied fulfilments, deduplicated by type in first-seen order. A type
/// listed twice is outstanding when any of its entries is unsatisfied. Unreadable entries
/// (no `type`) are skipped.
fn outstanding(list: &Value) -> Vec<String> {
    let Value::Array(items) = list else {
        return Vec::new();
    };
    let mut missing: Vec<String> = Vec::new();
    for item in items {
        let Ok(w) = serde_json::from_value::<WireFulfillment>(item.clone()) else {
            continue;
        };
        let Some(kind) = w.kind else { continue };
        let satisfied = match &w.status {
            None => false,
            Some(status) if w.all_status_allowed.is_empty() => {
                status.eq_ignore_ascii_case("FULFILLED")
            }
            Some(status) => w
                .all_status_allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(status)),
        };
        if !satisfied && !missing.iter().any(|m| m.eq_ignore_ascii_case(&kind)) {
            missing.push(kind);
        }
    }
    missing
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

/// Maps a provider link status (any case) and its reason to [`LinkStatus`]; the single place
/// this mapping lives (link calls, link-status calls, and for callers reading the fetch
/// lists). Missing or unrecognised statuses count as pending: the caller confirms later.
///
/// [INFER] Name mismatch is not a documented status. A failed status whose reason mentions
/// the name and a (mis)match or difference (case-insensitive: "Name does not match KYC",
/// "name mismatch", "beneficiary name differs") is [`LinkStatus::NameMismatch`], as is a
/// status that itself says `NAME_MISMATCH`.
pub fn classify_link_status(status: Option<&str>, reason: Option<&str>) -> LinkStatus {
    let Some(status) = status.map(str::trim).filter(|s| !s.is_empty()) else {
        return LinkStatus::Pending;
    };
    let lower = status.to_ascii_lowercase();
    if lower.contains("mismatch") && lower.contains("name") {
        return LinkStatus::NameMismatch;
    }
    match lower.as_str() {
        "success" | "successful" | "verified" | "linked" | "active" | "approved" | "completed" => {
            LinkStatus::Linked
        }
        "failed" | "failure" | "rejected" | "declined" | "error" | "invalid" => {
            if reason.is_some_and(is_name_mismatch) {
                LinkStatus::NameMismatch
            } else {
                LinkStatus::Failed(reason.unwrap_or(status).to_owned())
            }
        }
        _ => LinkStatus::Pending,
    }
}

fn is_name_mismatch(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("name") && (r.contains("match") || r.contains("differ"))
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
        status: classify_link_status(status.as_deref(), w.reason.as_deref()),
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

pub(super) fn sell_quote(raw: &RawResponse) -> Result<SellQuote, ProviderError> {
    const EP: &str = "quote/sell";
    let f = Fields::from_reply(EP, raw)?;
    Ok(SellQuote {
        fiat_amount: required(EP, "fiatAmount", f.decimal(&["fiatamount"]))?,
        conversion_rate: required(EP, "conversionRate", f.decimal(&["conversionrate"]))?,
        transaction_fee: f.decimal(&["transactionfee"]),
        gas_fee: f.decimal(&["gasfee"]),
    })
}

pub(super) fn created_offramp(raw: &RawResponse) -> Result<CreatedOfframpOrder, ProviderError> {
    const EP: &str = "offramp/orders/create";
    let f = Fields::from_reply(EP, raw)?;
    Ok(CreatedOfframpOrder {
        order_id: required(EP, "orderId", f.string(&["orderid"]))?,
        deposit_address: required(
            EP,
            "receiverWalletAddress",
            f.string(&["receiverwalletaddress", "receiveraddress"]),
        )?,
        fiat_amount: f.decimal(&["fiatamount", "fiat"]),
        status: f
            .string(&["status"])
            .unwrap_or_else(|| "cryptoInit".to_owned()),
        expires_at: f.datetime(&["expiresat", "expires_at"]),
    })
}

/// [INFER] The provider documents only `{success:true}` for this call. "Already received"
/// is recognised from the message text: a success note containing "already", or a
/// rejection containing "already received". A rejection for a *different* hash (e.g.
/// "order already has a different txnHash") stays a rejection.
pub(super) fn tx_hash(raw: &RawResponse) -> Result<TxHashOutcome, ProviderError> {
    const EP: &str = "offramp/orders/txnhash";
    match envelope_data(EP, raw) {
        Ok(data) => {
            let note = Fields::of(data).string(&["message"]).unwrap_or_default();
            Ok(if note.to_ascii_lowercase().contains("already") {
                TxHashOutcome::AlreadyReceived
            } else {
                TxHashOutcome::Accepted
            })
        }
        Err(ProviderError::Rejected { message, .. })
            if message.to_ascii_lowercase().contains("already received") =>
        {
            Ok(TxHashOutcome::AlreadyReceived)
        }
        Err(err) => Err(err),
    }
}

pub(super) fn offramp_status(raw: &RawResponse) -> Result<OfframpStatus, ProviderError> {
    const EP: &str = "offramp/orders/status";
    let f = Fields::from_reply(EP, raw)?;
    Ok(OfframpStatus {
        status: required(EP, "status", f.string(&["status"]))?,
        reason: f.string(&["reason"]),
        tx_hash: f.string(TX_HASH_KEYS),
        deposit_address: f.string(&["receiverwalletaddress"]),
        payout_reference: f.string(&["transactionid", "payoutreference"]),
        refund_address: f.string(&["refundwalletaddress", "refundaddress"]),
    })
}

/// Whether a listed order is an off-ramp one; see [`RecentOrder::kind`].
fn order_kind(f: &Fields) -> OrderKind {
    match f.string(&["eventtype", "ordertype", "kind"]) {
        Some(k) if k.to_ascii_lowercase().contains("off") => OrderKind::Offramp,
        Some(_) => OrderKind::Onramp,
        None if f
            .string(&[
                "selltokensymbol",
                "senderwalletaddress",
                "refundwalletaddress",
            ])
            .is_some() =>
        {
            OrderKind::Offramp
        }
        None => OrderKind::Onramp,
    }
}

/// One page of the order list. A `data` that is not a list (or is `null`) is an error, not
/// an empty page: "no orders" must be said, never inferred from a reply we cannot read. A
/// row without an order id is kept as [`ListedOrder::Unreadable`].
pub(super) fn recent_orders(raw: &RawResponse) -> Result<OrderPage, ProviderError> {
    const ENDPOINT: &str = "orders/list";
    let data = envelope_data(ENDPOINT, raw)?;
    if data.is_null() {
        return Err(ProviderError::unknown(ENDPOINT, "response holds no list"));
    }
    let rows = list_in(ENDPOINT, data)?
        .into_iter()
        .map(|v| listed_order(v).map_or(ListedOrder::Unreadable, ListedOrder::Readable))
        .collect();
    Ok(OrderPage { rows })
}

fn listed_order(v: Value) -> Option<RecentOrder> {
    let f = Fields::of(v.clone());
    let w = serde_json::from_value::<WireRecentOrder>(v).ok()?;
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
        kind: order_kind(&f),
        tx_hash: f.string(TX_HASH_KEYS),
        created_at: f.datetime(&["createdat", "created_at"]),
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

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
            assert_eq!(kyc_details(&ok(body)).unwrap().verified, want, "{body}");
        }
        assert!(matches!(
            kyc_details(&ok(r#"{"success":true,"data":{"isKycVerified":"maybe"}}"#)),
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
        assert_eq!(o.status, LinkStatus::NameMismatch);
        let o = link(
            "x",
            &ok(r#"{"success":true,"data":{"status":"Failed","reason":"account closed"}}"#),
        )
        .unwrap();
        assert_eq!(o.status, LinkStatus::Failed("account closed".into()));

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
        let page = recent_orders(&ok(body)).unwrap();
        let orders: Vec<_> = page.orders().collect();
        assert_eq!(orders.len(), 3);
        assert_eq!(orders[0].merchant_ref.as_deref(), Some("rampd-2"));
        assert_eq!(orders[0].utr.as_deref(), Some("412345678901"));
        assert_eq!(orders[1].utr, None);
        assert_eq!(orders[2].order_id, "cccccccccccccccccccccccc");
        assert_eq!(orders[2].merchant_ref, None);
    }

    #[test]
    fn recent_orders_keep_unreadable_rows_and_dates() {
        let body = r#"{"success":true,"data":[
            {"orderId":"aaaaaaaaaaaaaaaaaaaaaaaa","status":"fiatPending","createdAt":"2026-12-01T08:00:00.000Z"},
            {"status":"fiatPending","metaData":{"merchantRef":"rampd-1"}},
            "garbage",
            {"orderId":"bbbbbbbbbbbbbbbbbbbbbbbb","created_at":1764576000000}
        ]}"#;
        let page = recent_orders(&ok(body)).unwrap();
        assert_eq!(page.rows.len(), 4, "no row is dropped");
        assert_eq!(page.rows[1], ListedOrder::Unreadable, "no order id");
        assert_eq!(page.rows[2], ListedOrder::Unreadable);
        let orders: Vec<_> = page.orders().collect();
        assert_eq!(
            orders[0].created_at.unwrap().to_rfc3339(),
            "2026-12-01T08:00:00+00:00"
        );
        assert_eq!(orders[1].created_at.unwrap().timestamp(), 1_764_576_000);
    }

    #[test]
    fn a_null_or_missing_order_list_is_an_error_not_an_empty_page() {
        for body in [
            r#"{"success":true,"data":null}"#,
            r#"{"success":true}"#,
            r#"{"success":true,"data":"none"}"#,
            "<html>upstream hiccup</html>",
        ] {
            assert!(
                matches!(recent_orders(&ok(body)), Err(ProviderError::Unknown { .. })),
                "{body}"
            );
        }
        let empty = recent_orders(&ok(r#"{"success":true,"data":[]}"#)).unwrap();
        assert!(empty.rows.is_empty());
    }

    #[test]
    fn kyc_details_lists_outstanding_fulfilments() {
        // Sandbox shape: string boolean, duplicates, IN_PROGRESS allowed for some items.
        let body = r#"{"success":true,"data":{"isKycVerified":"false","fulfillments":[
            {"type":"ADDRESS_MAIN","status":null,"all_status_allowed":["FULFILLED"]},
            {"type":"DATE_OF_BIRTH","status":null,"all_status_allowed":["FULFILLED"]},
            {"type":"EMAIL","status":"FULFILLED","all_status_allowed":["FULFILLED","IN_PROGRESS"]},
            {"type":"ADDRESS_MAIN","status":null,"all_status_allowed":["FULFILLED"]},
            {"type":"IDENTIFICATION_VERIFICATION","status":"IN_PROGRESS","all_status_allowed":["FULFILLED","IN_PROGRESS"]},
            {"type":"PHONE_NUMBER","status":"IN_PROGRESS"},
            {"status":null}
        ]}}"#;
        let k = kyc_details(&ok(body)).unwrap();
        assert!(!k.verified);
        assert_eq!(k.missing, ["ADDRESS_MAIN", "DATE_OF_BIRTH", "PHONE_NUMBER"]);

        // bunq's own names, nested, mixed key case, no isKycVerified: verified iff complete.
        let body = r#"{"data":{"AdditionalFulfillmentParameter":{"All_Fulfillment":[
            {"Type":"ADDRESS_POSTAL","Status":"in_progress","All_Status_Allowed":["FULFILLED"]}]}}}"#;
        let k = kyc_details(&ok(body)).unwrap();
        assert_eq!(
            (k.verified, k.missing),
            (false, vec!["ADDRESS_POSTAL".to_owned()])
        );
        let body = r#"{"data":{"all_fulfillment":[{"type":"EMAIL","status":"FULFILLED"}]}}"#;
        assert!(kyc_details(&ok(body)).unwrap().verified);

        // Plain KYC replies: nothing listed.
        let k = kyc_details(&ok(r#"{"success":true,"data":{"isKycVerified":true}}"#)).unwrap();
        assert_eq!((k.verified, k.missing.len()), (true, 0));
        let k = kyc_details(&ok(
            r#"{"request_data":{"iskycverified":"TRUE","fulfillments":"n/a"}}"#,
        ))
        .unwrap();
        assert_eq!((k.verified, k.missing.len()), (true, 0));
        assert!(matches!(
            kyc_details(&ok(r#"{"success":true,"data":{}}"#)),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn link_status_classification() {
        use LinkStatus::*;
        for (status, reason, want) in [
            (Some("SUCCESS"), None, Linked),
            (Some(" verified "), None, Linked),
            (Some("PENDING"), None, Pending),
            (None, Some("name mismatch"), Pending),
            (Some(""), None, Pending),
            (Some("in_review"), None, Pending),
            (
                Some("FAILED"),
                Some("Name does not match KYC"),
                NameMismatch,
            ),
            (
                Some("failed"),
                Some("beneficiary NAME differs from KYC"),
                NameMismatch,
            ),
            (Some("Rejected"), Some("name mismatch"), NameMismatch),
            (Some("NAME_MISMATCH"), None, NameMismatch),
            (
                Some("failed"),
                Some("invalid ifsc"),
                Failed("invalid ifsc".into()),
            ),
            (Some("failed"), None, Failed("failed".into())),
        ] {
            assert_eq!(
                classify_link_status(status, reason),
                want,
                "{status:?} {reason:?}"
            );
        }
        // Link replies use the same mapping, whichever field carries the status.
        let o = link(
            "users/get-bank-status",
            &ok(r#"{"success":true,"data":{"bankStatus":"failed","reason":"Name as per bank does not match KYC name","referenceId":"r9"}}"#),
        )
        .unwrap();
        assert_eq!(o.status, NameMismatch);
        assert_eq!(o.reference.as_deref(), Some("r9"));
        let o = link(
            "users/get-upi-status",
            &ok(r#"{"data":{"UPISTATUS":"Pending"}}"#),
        )
        .unwrap();
        assert_eq!(o.status, Pending);
    }

    #[test]
    fn sell_quote_tolerates_type_drift() {
        let q = sell_quote(&ok(
            r#"{"success":true,"data":{"sellTokens":"10","conversionRate":88.5,"transactionFee":"5.00","gasFee":0,"fiatCurrency":"inr","fiatAmount":"880.00"}}"#,
        ))
        .unwrap();
        assert_eq!(q.fiat_amount, dec!(880.00));
        assert_eq!(q.conversion_rate, dec!(88.5));
        assert_eq!(q.transaction_fee, Some(dec!(5)));
        assert_eq!(q.gas_fee, Some(Decimal::ZERO));
        let q = sell_quote(&ok(
            r#"{"request_data":{"FiatAmount":880,"ConversionRate":"88.50"}}"#,
        ))
        .unwrap();
        assert_eq!((q.fiat_amount, q.transaction_fee), (dec!(880), None));
        assert!(matches!(
            sell_quote(&ok(r#"{"success":true,"data":{"conversionRate":"88.5"}}"#)),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn offramp_bodies() {
        let body = sell_quote_body(&SellQuoteRequest {
            token_symbol: "USDT".into(),
            token_address: None,
            chain_id: 137,
            sell_token_amount: dec!(10.5),
            sender_address: "0xabc".into(),
        });
        assert_eq!(body["sellTokenAmount"], json!(10.5));
        assert_eq!(body["senderAddress"], "0xabc");
        assert!(body.get("sellTokenAddress").is_none());

        let body = create_offramp_body(&CreateOfframpRequest {
            merchant_ref: "rampd-off-1".into(),
            account_number: "123456787315".into(),
            ifsc: "HDFC0000123".into(),
            chain_id: 137,
            sell_token_amount: dec!(10),
            token_symbol: "USDT".into(),
            token_address: Some("0xc2132d05d31c914a87c6611c10748aeb04b58e8f".into()),
            sender_wallet: "0xs".into(),
            refund_wallet: "0xr".into(),
        });
        assert_eq!(body["metaData"]["merchantRef"], "rampd-off-1");
        assert_eq!(
            body["bankDetails"],
            json!({"accountNumber":"123456787315","ifsc":"HDFC0000123"})
        );
        assert_eq!(
            body["sellTokenAddress"],
            "0xc2132d05d31c914a87c6611c10748aeb04b58e8f"
        );
        assert_eq!(body["refundWalletAddress"], "0xr");
        assert_eq!(body["senderWalletAddress"], "0xs");
        assert_eq!(body["chainId"], 137);
    }

    #[test]
    fn created_offramp_needs_a_deposit_address() {
        let o = created_offramp(&ok(
            r#"{"success":true,"data":{"orderId":"aaaaaaaaaaaaaaaaaaaaaaaa","receiverWalletAddress":"0xdep","quote":"10000000","fiatAmount":"880.00","chainId":"137","paymentMode":"NEFT","status":"cryptoInit"}}"#,
        ))
        .unwrap();
        assert_eq!(o.deposit_address, "0xdep");
        assert_eq!(o.fiat_amount, Some(dec!(880.00)));
        assert_eq!(o.status, "cryptoInit");
        assert!(o.expires_at.is_none());
        let o = created_offramp(&ok(r#"{"orderid":"x","receiveraddress":"0xd"}"#)).unwrap();
        assert_eq!((o.status.as_str(), o.fiat_amount), ("cryptoInit", None));
        for body in [
            r#"{"success":true,"data":{"orderId":"x","fiatAmount":1}}"#,
            r#"{"success":true,"data":{"orderId":"x","receiverWalletAddress":""}}"#,
            r#"{"success":true,"data":{"receiverWalletAddress":"0xd"}}"#,
        ] {
            assert!(
                matches!(
                    created_offramp(&ok(body)),
                    Err(ProviderError::Unknown { .. })
                ),
                "{body}"
            );
        }
        let rejected =
            ok(r#"{"success":false,"error":{"code":400,"message":"bank account is not linked"}}"#);
        assert!(matches!(
            created_offramp(&rejected),
            Err(ProviderError::Rejected { .. })
        ));
    }

    #[test]
    fn tx_hash_outcomes() {
        assert_eq!(
            tx_hash(&ok(r#"{"success":true,"error":{}}"#)).unwrap(),
            TxHashOutcome::Accepted
        );
        assert_eq!(
            tx_hash(&ok(
                r#"{"success":true,"data":{"message":"txnHash already received for this order"}}"#
            ))
            .unwrap(),
            TxHashOutcome::AlreadyReceived
        );
        let already = r#"{"success":false,"error":{"code":400,"message":"Crypto already received for this order"}}"#;
        assert_eq!(
            tx_hash(&RawResponse::json(400, already)).unwrap(),
            TxHashOutcome::AlreadyReceived
        );
        let different = r#"{"success":false,"error":{"code":400,"message":"order already has a different txnHash"}}"#;
        assert!(matches!(
            tx_hash(&ok(different)),
            Err(ProviderError::Rejected { .. })
        ));
        assert!(matches!(
            tx_hash(&RawResponse::json(503, "")),
            Err(ProviderError::Retryable { .. })
        ));
    }

    #[test]
    fn offramp_status_fields_and_drift() {
        let s = offramp_status(&ok(
            r#"{"success":true,"data":{"fiat":880,"senderWalletAddress":"0xs","receiverWalletAddress":"0xdep","orderId":"o","status":"PayoutSuccess","chainId":"137","reason":"","txnHash":"0xh","transactionId":"PAYOUT123","refundWalletAddress":"0xr"}}"#,
        ))
        .unwrap();
        assert_eq!(
            s,
            OfframpStatus {
                status: "PayoutSuccess".into(),
                reason: None,
                tx_hash: Some("0xh".into()),
                deposit_address: Some("0xdep".into()),
                payout_reference: Some("PAYOUT123".into()),
                refund_address: Some("0xr".into()),
            }
        );
        // Webhook-style wrapper, other spellings, both hash keys at once.
        let s = offramp_status(&ok(
            r#"{"request_data":{"STATUS":"refunded","reason":"amount mismatch","transactionHash":"","txnhash":"0xh2","TransactionId":12345}}"#,
        ))
        .unwrap();
        assert_eq!(s.status, "refunded");
        assert_eq!(s.reason.as_deref(), Some("amount mismatch"));
        assert_eq!(s.tx_hash.as_deref(), Some("0xh2"));
        assert_eq!(s.payout_reference.as_deref(), Some("12345"));
        assert!(matches!(
            offramp_status(&ok(r#"{"success":true,"data":{"reason":"x"}}"#)),
            Err(ProviderError::Unknown { .. })
        ));
    }

    #[test]
    fn recent_orders_tell_kinds_apart() {
        let body = r#"{"success":true,"data":[
            {"orderId":"a","status":"pending","eventType":"offramp","metaData":{"merchantRef":"off-1"},"txnHash":"0xh"},
            {"orderId":"b","status":"fiatPending","eventType":"onramp"},
            {"orderId":"c","status":"orderReceived","sellTokenSymbol":"USDT","transactionHash":"0xc","txnhash":"0xc"},
            {"orderId":"d","status":"completed","OrderType":"OFFRAMP"},
            {"orderId":"e","status":"expired"}
        ]}"#;
        let orders: Vec<_> = recent_orders(&ok(body))
            .unwrap()
            .orders()
            .cloned()
            .collect();
        let kinds: Vec<_> = orders.iter().map(|o| o.kind).collect();
        use OrderKind::*;
        assert_eq!(kinds, [Offramp, Onramp, Offramp, Offramp, Onramp]);
        assert_eq!(orders[0].tx_hash.as_deref(), Some("0xh"));
        assert_eq!(orders[0].merchant_ref.as_deref(), Some("off-1"));
        assert_eq!(orders[2].tx_hash.as_deref(), Some("0xc"));
        assert_eq!(orders[4].tx_hash, None);
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
