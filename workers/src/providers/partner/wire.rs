//! The Partner API's bodies, parsed leniently where the documents drift: amounts come as
//! numbers or strings, ids typed `number` are UUIDs in the examples, and errors come in
//! three shapes (see [`parse_errors`]). Amounts are decimals, never floats.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use crate::providers::lenient::{value_decimal, value_string};

/// A body that does not say what the documents say it does.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("the Partner API answered with a body that is not JSON")]
    NotJson,
    #[error("the Partner API's answer has no `{0}`")]
    Missing(&'static str),
    #[error("the Partner API's `{field}` is not an amount: {value}")]
    BadAmount { field: &'static str, value: String },
}

/// One entry of an error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: String,
    pub message: String,
}

/// The entries of an error body, whichever of its documented shapes it has:
/// `{"errors":[{"type","message"}]}` (some entries say `error` instead of `message`),
/// `{"error":{"type","message"}}` (some 500s), and the business-user 400's array whose
/// `type` is itself an array of entries. Empty when the body has none of these.
pub fn parse_errors(body: &str) -> Vec<ApiError> {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match &v {
        Value::Object(o) => {
            if let Some(Value::Array(list)) = o.get("errors") {
                list.iter().for_each(|e| entries(e, &mut out));
            }
            if let Some(e) = o.get("error") {
                entries(e, &mut out);
            }
        }
        Value::Array(list) => list.iter().for_each(|e| entries(e, &mut out)),
        _ => {}
    }
    out
}

/// Collect `e` (an entry, or an entry whose `type` nests more entries).
fn entries(e: &Value, out: &mut Vec<ApiError>) {
    match e.get("type") {
        Some(Value::Array(nested)) => nested.iter().for_each(|n| entries(n, out)),
        kind => {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
            if let Some(message) = text("message").or_else(|| text("error")) {
                out.push(ApiError {
                    kind: kind.and_then(Value::as_str).unwrap_or_default().to_owned(),
                    message,
                });
            }
        }
    }
}

/// An amount sent as a JSON number or a string of one.
fn amount(v: Option<&Value>, field: &'static str) -> Result<Decimal, WireError> {
    match v {
        None | Some(Value::Null) => Err(WireError::Missing(field)),
        Some(v) => value_decimal(v).ok_or_else(|| WireError::BadAmount {
            field,
            value: v.as_str().map_or_else(|| v.to_string(), str::to_owned),
        }),
    }
}

/// An id typed `number` in the documents but a UUID in their examples: either is kept as
/// text.
fn id(v: Option<&Value>) -> Option<String> {
    value_string(v?)
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<Value>,
}

fn data(body: &str) -> Result<Value, WireError> {
    let env: Envelope = serde_json::from_str(body).map_err(|_| WireError::NotJson)?;
    env.data.ok_or(WireError::Missing("data"))
}

/// What a `POST /transaction/deposit-requests` that answered 201 says.
#[derive(Debug, Clone, PartialEq)]
pub enum Deposit {
    /// The request stands; it is confirmed next with this id.
    Accepted {
        deposit_request_id: String,
        amount: Decimal,
    },
    /// A 201 that is a rejection (the documented example: `statusStage: FINAL`,
    /// `status: "Rejected request due to validation failures"`, `rejectionReason`). Final:
    /// nothing is retried.
    Rejected { status: String, reason: String },
}

/// Parse a deposit request's 201. A rejection is a `rejectionReason` or a `status` that
/// says "Rejected"; the documents show no accepted example, so anything else with an id
/// is taken as accepted.
pub fn parse_deposit(body: &str) -> Result<Deposit, WireError> {
    let d = data(body)?;
    let status = text(d.get("status")).unwrap_or_default();
    let reason = text(d.get("rejectionReason"));
    if reason.is_some() || status.to_ascii_lowercase().contains("rejected") {
        return Ok(Deposit::Rejected {
            reason: reason.unwrap_or_else(|| status.clone()),
            status,
        });
    }
    Ok(Deposit::Accepted {
        deposit_request_id: id(d.get("depositRequestId"))
            .ok_or(WireError::Missing("depositRequestId"))?,
        amount: amount(d.get("amount"), "amount")?,
    })
}

/// The message of a 400 that ends a confirmation for good (after `confirm: "NO"`, or a
/// second confirmation of the same request).
pub const INVALIDATED: &str = "Successfully Invalidated Confirmation Request";

/// What a `POST /transaction/confirmation-requests` answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmation {
    /// Confirmed: the payment approved and the mint under way (`tokenMintStatus`).
    Confirmed {
        request_id: String,
        /// The provider's id of the mint transaction (not an on-chain hash).
        transaction_id: Option<String>,
        payment_status: Option<String>,
        token_mint_status: Option<String>,
        amount: Decimal,
    },
    /// Rejected in a 201 (a `rejectionReason`, or a status other than `COMPLETED`).
    Rejected { status: String, reason: String },
    /// The 400 "Successfully Invalidated Confirmation Request": the request can do
    /// nothing more. Terminal, never retried.
    Invalidated,
}

/// Parse a confirmation's answer: its 201, or the 400 that invalidates it. `None` for any
/// other answer (an error the caller classifies by status code and [`parse_errors`]).
pub fn parse_confirmation(status: u16, body: &str) -> Option<Result<Confirmation, WireError>> {
    if status == 400 {
        let invalidated = parse_errors(body)
            .iter()
            .any(|e| e.message.starts_with(INVALIDATED));
        return invalidated.then_some(Ok(Confirmation::Invalidated));
    }
    if !(200..300).contains(&status) {
        return None;
    }
    Some(confirmed(body))
}

fn confirmed(body: &str) -> Result<Confirmation, WireError> {
    let d = data(body)?;
    let status = text(d.get("status")).unwrap_or_default();
    if let Some(reason) = text(d.get("rejectionReason")) {
        return Ok(Confirmation::Rejected { status, reason });
    }
    if !status.eq_ignore_ascii_case("COMPLETED") {
        return Ok(Confirmation::Rejected {
            reason: format!("confirmation status {status:?}"),
            status,
        });
    }
    let inner = d.get("data");
    let inner_text = |k: &str| text(inner.and_then(|i| i.get(k)));
    Ok(Confirmation::Confirmed {
        request_id: id(d.get("requestId")).ok_or(WireError::Missing("requestId"))?,
        transaction_id: inner_text("transactionId"),
        payment_status: inner_text("paymentStatus"),
        token_mint_status: inner_text("tokenMintStatus"),
        amount: amount(d.get("amount"), "amount")?,
    })
}

/// The 200 of `PUT /transaction/redeem/fiat-transfer/{transactionHash}`: it carries no
/// status; its `transactionId` is what is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct FiatTransfer {
    pub transaction_id: String,
    pub reference_id: Option<String>,
    pub fiat_amount: Decimal,
    pub token_amount: Option<Decimal>,
}

pub fn parse_fiat_transfer(body: &str) -> Result<FiatTransfer, WireError> {
    let d = data(body)?;
    Ok(FiatTransfer {
        transaction_id: id(d.get("transactionId")).ok_or(WireError::Missing("transactionId"))?,
        reference_id: id(d.get("referenceId")),
        fiat_amount: amount(d.get("fiatAmount"), "fiatAmount")?,
        token_amount: amount(d.get("tokenAmount"), "tokenAmount").ok(),
    })
}

/// Decimal places of on-chain amounts in the history (`"2000000000000000000"` is 2).
pub const TOKEN_DECIMALS: u32 = 18;

/// One entry of `GET /transactions/identifier/{identifier}/type/on-chain/history`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub trx_id: String,
    /// In tokens (the base units divided by 10^18).
    pub amount: Decimal,
    pub from: String,
    pub to: String,
    pub status: String,
    pub payment_type: Option<String>,
    /// `isError` other than `"0"`.
    pub is_error: bool,
    pub revert_reason: Option<String>,
}

/// The entries of a history answer (`{"data":[…]}`).
pub fn parse_history(body: &str) -> Result<Vec<Transfer>, WireError> {
    let Value::Array(list) = data(body)? else {
        return Err(WireError::Missing("data[]"));
    };
    list.iter().map(transfer).collect()
}

fn transfer(e: &Value) -> Result<Transfer, WireError> {
    let is_error = match e.get("isError") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => s.trim() != "0",
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(Value::Bool(b)) => *b,
        Some(_) => true,
    };
    Ok(Transfer {
        trx_id: text(e.get("trxId")).ok_or(WireError::Missing("trxId"))?,
        amount: base_units(e.get("amount"))?,
        from: text(e.get("from")).unwrap_or_default(),
        to: text(e.get("to")).unwrap_or_default(),
        status: text(e.get("status")).unwrap_or_default(),
        payment_type: text(e.get("paymentType")),
        is_error,
        revert_reason: text(e.get("revertReason")),
    })
}

/// An on-chain amount in base units (a string or number of digits) as tokens.
fn base_units(v: Option<&Value>) -> Result<Decimal, WireError> {
    let raw = match v {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        None | Some(Value::Null) => return Err(WireError::Missing("amount")),
        Some(other) => other.to_string(),
    };
    let bad = || WireError::BadAmount {
        field: "amount",
        value: raw.clone(),
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let units: i128 = raw.parse().map_err(|_| bad())?;
    Decimal::try_from_i128_with_scale(units, TOKEN_DECIMALS)
        .map(|d| d.normalize())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests;
