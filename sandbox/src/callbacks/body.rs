//! Callback bodies and their signature. Field names follow `reference/providers.md` §1.5;
//! amounts are exact (decimal strings, `fiat` a JSON number as in the status answers).
//! [INFER] `metaData.merchantRef` echoes the merchant's reference given at create, as the
//! order list does.

use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::Callbacks;
use crate::clock::Clock;
use crate::json::amount;
use crate::routes::rfc3339;
use crate::state::{Change, Customer, OfframpOrder, Order, Snapshot, token_decimals};

type HmacSha256 = Hmac<Sha256>;

/// Country of every sandbox order.
const COUNTRY: &str = "IN";

/// The body as sent: the snapshot's JSON with `wrap` and `lower_case_keys` applied,
/// serialised compactly.
pub(crate) fn body_bytes(clock: &Clock, change: &Change) -> Result<Vec<u8>, serde_json::Error> {
    let body = match &change.snapshot {
        Snapshot::On {
            order,
            conversion_rate,
        } => onramp_json(clock, order, *conversion_rate, &change.customer),
        Snapshot::Off { order } => offramp_json(clock, order, &change.customer),
    };
    serde_json::to_vec(&shape(body, &change.settings))
}

/// Applies `lower_case_keys` and `wrap`.
fn shape(body: Value, settings: &Callbacks) -> Value {
    let body = if settings.lower_case_keys {
        lower_case_keys(body)
    } else {
        body
    };
    if settings.wrap {
        json!({ "request_data": body })
    } else {
        body
    }
}

fn lower_case_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_lowercase(), lower_case_keys(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_case_keys).collect()),
        other => other,
    }
}

/// Lowercase hex of HMAC-SHA256(`secret`, `body`).
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(body);
    Some(
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

fn customer_json(clock: &Clock, c: &Customer) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "phone": { "countrycode": c.phone_country_code, "number": c.phone_number },
        "createdat": rfc3339(clock, c.created_at),
    })
}

/// `amount` in the token's base units.
fn base_units(amount: Decimal, token_symbol: &str) -> String {
    amount
        .checked_mul(Decimal::from(10u64.pow(token_decimals(token_symbol))))
        .map(|d| d.trunc().normalize().to_string())
        .unwrap_or_default()
}

fn onramp_json(clock: &Clock, o: &Order, rate: Decimal, customer: &Customer) -> Value {
    let mut meta = json!({
        "conversionRate": rate.to_string(),
        "commission": "0",
        "paymentMode": if o.is_upi() { "INR_UPI" } else { "INR_IMPS" },
        "country": COUNTRY,
    });
    if let Some(merchant_ref) = &o.request.merchant_ref {
        meta["merchantRef"] = json!(merchant_ref);
    }
    let mut body = json!({
        "fiat": amount(o.request.fiat_amount),
        "receiverWalletAddress": o.request.receiver_address,
        "buyTokenSymbol": o.request.token_symbol,
        "buyTokenAddress": o.request.token_address.clone().unwrap_or_default(),
        "orderId": o.id,
        "status": o.status,
        "currency": "INR",
        "chainId": o.request.chain_id,
        "customer": customer_json(clock, customer),
        "createdAt": rfc3339(clock, o.created_at),
        "eventType": "onramp",
        "metaData": meta,
    });
    if let Some(hash) = &o.tx_hash {
        body["txnHash"] = json!(hash);
    }
    if let Some(amount) = o.transferred_amount {
        body["transferredAmount"] = json!(amount.to_string());
        body["transferredAmountWei"] = json!(base_units(amount, &o.request.token_symbol));
    }
    body
}

fn offramp_json(clock: &Clock, o: &OfframpOrder, customer: &Customer) -> Value {
    let mut meta = json!({
        "conversionRate": o.quote.conversion_rate.to_string(),
        "commission": o.quote.transaction_fee.to_string(),
        "country": COUNTRY,
    });
    if let Some(merchant_ref) = &o.request.merchant_ref {
        meta["merchantRef"] = json!(merchant_ref);
    }
    let mut body = json!({
        "fiat": amount(o.quote.fiat_amount),
        "senderWalletAddress": o.request.sender_wallet,
        "sellTokenSymbol": o.request.token_symbol,
        "sellTokenAddress": o.request.token_address.clone().unwrap_or_default(),
        "chainId": o.request.chain_id,
        "orderId": o.id,
        "status": o.reported_status(),
        "currency": "INR",
        "created_at": rfc3339(clock, o.created_at),
        "updated_at": rfc3339(clock, o.updated_at),
        "customer": customer_json(clock, customer),
        "eventType": "offramp",
        "metaData": meta,
    });
    if let Some(hash) = &o.tx_hash {
        body["txnHash"] = json!(hash);
    }
    if let Some(payout) = &o.payout_reference {
        body["transactionId"] = json!(payout);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?").as_deref(),
            Some("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn shapes_wrap_and_lower_case_recursively() {
        let body = json!({ "orderId": "a", "customer": { "phone": { "countryCode": "+91" } },
                           "list": [{ "txnHash": "0x" }] });
        let plain = Callbacks::default();
        assert_eq!(shape(body.clone(), &plain), body);
        let both = Callbacks {
            wrap: true,
            lower_case_keys: true,
            ..Callbacks::default()
        };
        assert_eq!(
            shape(body, &both),
            json!({ "request_data": { "orderid": "a",
                    "customer": { "phone": { "countrycode": "+91" } },
                    "list": [{ "txnhash": "0x" }] } })
        );
    }

    #[test]
    fn base_units_follow_token_decimals() {
        assert_eq!(base_units(Decimal::new(1_068_666, 6), "USDC"), "1068666");
        assert_eq!(
            base_units(Decimal::new(15, 1), "MATIC"),
            "1500000000000000000"
        );
    }
}
