//! Off-ramp handlers: sell quote, order create, tx-hash submission, status, and the
//! off-ramp rows of the order list. Response shapes follow `reference/providers.md` §1.2.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    ApiResult, St, decimal_field, json_body, opt_str, reply_after_create, respond, rfc3339,
    str_field, u64_field, user,
};
use crate::clock::Clock;
use crate::faults;
use crate::json::{amount, mask_tail};
use crate::state::{ApiError, NewOfframp, OfframpOrder, REFUND_REASON, TxHashAnswer};

fn check_currency(v: &Value) -> Result<(), ApiError> {
    match opt_str(v, "fiatCurrency") {
        Some(currency) if !currency.eq_ignore_ascii_case("inr") => {
            Err(ApiError::bad_request("unsupported fiatCurrency"))
        }
        _ => Ok(()),
    }
}

/// `POST /v1/quote/sell`: `fiatAmount = sellTokenAmount × conversionRate − transactionFee`.
pub(super) async fn sell_quote(State(s): St, body: Bytes) -> Response {
    respond((|| {
        let v = json_body(&body)?;
        check_currency(&v)?;
        u64_field(&v, "chainId")?;
        let symbol = str_field(&v, "sellTokenSymbol")?;
        let amount = decimal_field(&v, "sellTokenAmount")?;
        let q = s.world().sell_quote(&symbol, amount)?;
        Ok(json!({
            "sellTokens": q.sell_tokens.to_string(),
            "quote": q.base_units,
            "conversionRate": q.conversion_rate.to_string(),
            "transactionFee": q.transaction_fee.to_string(),
            "gasFee": "0",
            "fiatCurrency": "inr",
            "fiatAmount": q.fiat_amount.to_string(),
        }))
    })())
}

fn parse_new_offramp(v: &Value) -> Result<NewOfframp, ApiError> {
    check_currency(v)?;
    let bank = v.get("bankDetails").cloned().unwrap_or(Value::Null);
    Ok(NewOfframp {
        account_number: str_field(&bank, "accountNumber")?,
        ifsc: str_field(&bank, "ifsc")?,
        chain_id: u64_field(v, "chainId")?,
        sell_token_amount: decimal_field(v, "sellTokenAmount")?,
        token_symbol: str_field(v, "sellTokenSymbol")?,
        token_address: opt_str(v, "sellTokenAddress"),
        sender_wallet: str_field(v, "senderWalletAddress")?,
        refund_wallet: str_field(v, "refundWalletAddress")?,
        merchant_ref: v.get("metaData").and_then(|m| opt_str(m, "merchantRef")),
    })
}

/// `POST /v1/offramp/orders/create`.
pub(super) async fn create(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    let created: ApiResult = (|| {
        let email = user(&s, &headers)?;
        let new = parse_new_offramp(&json_body(&body)?)?;
        let o = s.world().create_offramp(&email, new, s.clock.now())?;
        s.after_create(&email);
        Ok(json!({
            "orderId": o.id,
            "receiverWalletAddress": o.deposit_address,
            "quote": o.quote.base_units,
            "fiatAmount": amount(o.quote.fiat_amount),
            "conversionRate": o.quote.conversion_rate.to_string(),
            "gasPriceWei": "30000000000",
            "gasUseEstimate": "65000",
            "chainId": o.request.chain_id,
            "paymentMode": "NEFT",
            "status": o.status,
            "createdAt": rfc3339(&s.clock, o.created_at),
        }))
    })();
    reply_after_create(&s, created).await
}

/// `POST /v1/offramp/orders/txnhash`. [INFER] The provider documents only
/// `{success: true}`; the sandbox adds `data.message` when the hash was already received.
pub(super) async fn submit_tx_hash(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let v = json_body(&body)?;
        let order_id = str_field(&v, "orderId")?;
        let hash = str_field(&v, "txnHash")?;
        match s
            .world()
            .submit_tx_hash(&email, &order_id, &hash, s.clock.now())?
        {
            TxHashAnswer::Accepted => Ok(Value::Null),
            TxHashAnswer::AlreadyReceived => {
                Ok(json!({ "message": "txnHash already received for this order" }))
            }
        }
    })())
}

fn status_json(clock: &Clock, o: &OfframpOrder, status: &str) -> Value {
    let reason = if status == "refunded" {
        REFUND_REASON
    } else {
        ""
    };
    json!({
        "orderId": o.id,
        "status": status,
        "reason": reason,
        "fiat": amount(o.quote.fiat_amount),
        "currency": "INR",
        "senderWalletAddress": o.request.sender_wallet,
        "receiverWalletAddress": o.deposit_address,
        "refundWalletAddress": o.request.refund_wallet,
        "sellTokenSymbol": o.request.token_symbol,
        "sellTokenAddress": o.request.token_address.clone().unwrap_or_default(),
        // The provider's example sends chainId as a string here.
        "chainId": o.request.chain_id.to_string(),
        "txnHash": o.tx_hash.clone().unwrap_or_default(),
        "transactionId": o.payout_reference.clone().unwrap_or_default(),
        "bankDetails": { "accountNumber": mask_tail(&o.request.account_number).replace('*', "X"),
                         "ifsc": o.request.ifsc.to_ascii_uppercase() },
        "created_at": rfc3339(clock, o.created_at),
        "updated_at": rfc3339(clock, o.updated_at),
    })
}

/// `POST /v1/offramp/orders/status`; `unknown_status_rate` swaps in an odd status for
/// that answer only.
pub(super) async fn status(State(s): St, headers: HeaderMap, body: Bytes) -> Response {
    respond((|| {
        let email = user(&s, &headers)?;
        let order_id = str_field(&json_body(&body)?, "orderId")?;
        let order = s.world().poll_offramp(&email, &order_id, s.clock.now())?;
        let status = if faults::chance(s.faults_snapshot().unknown_status_rate) {
            s.world().stats.faults_injected += 1;
            faults::odd_offramp_status()
        } else {
            order.reported_status()
        };
        Ok(status_json(&s.clock, &order, status))
    })())
}

/// An off-ramp row of `GET /v1/orders/{skip}`. [INFER] The provider documents this list
/// for on-ramp orders; the sandbox lists both kinds, told apart by `eventType` (the
/// discriminator of the provider's webhooks).
pub(super) fn listed_json(clock: &Clock, o: &OfframpOrder) -> Value {
    json!({
        "eventType": "offramp",
        "orderId": o.id,
        "status": o.reported_status(),
        "fiat": amount(o.quote.fiat_amount),
        "currency": "INR",
        "sellTokenSymbol": o.request.token_symbol,
        "chainId": o.request.chain_id,
        "receiverWalletAddress": o.deposit_address,
        "txnHash": o.tx_hash.clone().unwrap_or_default(),
        "createdAt": rfc3339(clock, o.created_at),
        "metaData": { "merchantRef": o.request.merchant_ref },
    })
}
