//! Onmeta's own webhooks to the merchant ("callbacks", `reference/providers.md` §1.5):
//! verifying the signature and reading the order and status out of the body.
//!
//! The signature is `hex(HMAC-SHA256(key = API secret, msg = body))`, taken by the sender
//! over its own JSON serialisation. It is checked against the raw request bytes, exactly
//! as received; the body is never re-serialised to check it (key order and number
//! formatting would differ). The comparison is constant-time (`Mac::verify_slice`).
//!
//! Bodies are read tolerantly, as the provider's samples differ from its tables: an
//! optional `{"request_data": {...}}` wrapper, and keys in camelCase or all lower case
//! (`txnHash` / `txnhash`). Only what the order machine needs is taken out; the rest (the
//! customer's name, email and phone among it) is never kept or logged.

use hmac::{Hmac, KeyInit, Mac};
use rampd_domain::Direction;
use rampd_domain::order::StatusReport;
use serde_json::{Map, Value};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-onmeta-signature";

/// What a verified callback says about one provider order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// `eventType` (or, in bodies without it, the side of the fields present).
    pub direction: Direction,
    pub provider_order_id: String,
    pub report: StatusReport,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("callback body is not a JSON object")]
    NotAnObject,
    #[error("callback body has no {0}")]
    Missing(&'static str),
    #[error("callback eventType {0:?} is neither onramp nor offramp")]
    UnknownEventType(String),
}

/// Is `signature` (hex, either case, surrounding spaces ignored) the HMAC of `body` under
/// one of `secrets`? Several secrets are accepted so that the API secret can be rotated:
/// the new one first, the old one until the provider signs with the new one.
pub fn verify<S: AsRef<[u8]>>(secrets: &[S], body: &[u8], signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature.trim()) else {
        return false;
    };
    secrets.iter().any(|secret| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_ref()).expect("HMAC accepts any key length");
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    })
}

/// Read a callback body (already verified).
pub fn parse(body: &[u8]) -> Result<Callback, CallbackError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| CallbackError::NotAnObject)?;
    let mut fields = value.as_object().ok_or(CallbackError::NotAnObject)?;
    if let Some(inner) = field(fields, "request_data") {
        fields = inner.as_object().ok_or(CallbackError::NotAnObject)?;
    }
    let text = |name: &'static str| {
        field(fields, name)
            .and_then(|v| match v {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
    };
    let direction = match text("eventType") {
        Some(t) if t.eq_ignore_ascii_case("onramp") => Direction::Onramp,
        Some(t) if t.eq_ignore_ascii_case("offramp") => Direction::Offramp,
        Some(t) => return Err(CallbackError::UnknownEventType(t)),
        None if field(fields, "buyTokenSymbol").is_some() => Direction::Onramp,
        None if field(fields, "sellTokenSymbol").is_some() => Direction::Offramp,
        None => return Err(CallbackError::Missing("eventType")),
    };
    let provider_order_id = text("orderId").ok_or(CallbackError::Missing("orderId"))?;
    let status = text("status").ok_or(CallbackError::Missing("status"))?;
    let report = match direction {
        Direction::Onramp => StatusReport {
            tx_hash: text("txnHash"),
            ..StatusReport::new(&status)
        },
        Direction::Offramp => StatusReport {
            tx_hash: text("txnHash"),
            payout_reference: text("transactionId"),
            refund_address: text("refundWalletAddress"),
            ..StatusReport::new(&status)
        },
    };
    Ok(Callback {
        direction,
        provider_order_id,
        report,
    })
}

/// `name` as written, else in any casing (`txnHash`, `txnhash`, `TxnHash`).
fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).or_else(|| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "merchant-api-secret";

    /// Computed by hand, outside this code, from the documented rule:
    /// `printf '%s' '{"orderId":"abc","status":"fiatReceived","eventType":"onramp"}' |
    ///  openssl dgst -sha256 -hmac merchant-api-secret`.
    const BODY: &str = r#"{"orderId":"abc","status":"fiatReceived","eventType":"onramp"}"#;
    const BODY_SIGNATURE: &str = "c6dd93d8268b46efc20ffd6c1d1c15244c9f99a4160b2bf5d0b38288b1ef4d14";

    #[test]
    fn the_documented_rule_gives_the_hand_computed_vector() {
        assert!(verify(&[SECRET], BODY.as_bytes(), BODY_SIGNATURE));
        assert!(verify(
            &[SECRET],
            BODY.as_bytes(),
            &BODY_SIGNATURE.to_uppercase()
        ));
        assert!(verify(
            &[SECRET],
            BODY.as_bytes(),
            &format!(" {BODY_SIGNATURE}\n")
        ));
    }

    #[test]
    fn a_wrong_signature_secret_or_body_is_refused() {
        let mut wrong = BODY_SIGNATURE.to_string();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert!(!verify(&[SECRET], BODY.as_bytes(), &wrong));
        assert!(!verify(
            &["another-secret"],
            BODY.as_bytes(),
            BODY_SIGNATURE
        ));
        assert!(!verify(&[SECRET], BODY.as_bytes(), ""));
        assert!(!verify(&[SECRET], BODY.as_bytes(), "not hex"));
        assert!(!verify(&[SECRET], BODY.as_bytes(), &BODY_SIGNATURE[..32]));
        let none: [&str; 0] = [];
        assert!(!verify(&none, BODY.as_bytes(), BODY_SIGNATURE));
    }

    #[test]
    fn a_re_serialised_body_does_not_verify() {
        // The same JSON, serialised differently (spacing, key order): a different message.
        let v: Value = serde_json::from_str(BODY).unwrap();
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        assert_ne!(pretty, BODY);
        assert!(!verify(&[SECRET], pretty.as_bytes(), BODY_SIGNATURE));
        let reordered = r#"{"eventType":"onramp","orderId":"abc","status":"fiatReceived"}"#;
        assert!(!verify(&[SECRET], reordered.as_bytes(), BODY_SIGNATURE));
    }

    #[test]
    fn the_previous_secret_still_verifies_during_a_rotation() {
        assert!(verify(
            &["new-secret", SECRET],
            BODY.as_bytes(),
            BODY_SIGNATURE
        ));
    }

    #[test]
    fn an_onramp_body_as_documented() {
        let body = br#"{"fiat":1500,"receiverWalletAddress":"0xabc","buyTokenSymbol":"USDC",
            "orderId":"65f0c0ffee","status":"completed","currency":"INR","chainId":137,
            "customer":{"id":"c1","name":"Asha Rao","email":"asha@example.com",
            "phone":{"countrycode":"+91","number":"9999999999"}},
            "txnHash":"0xfeed","transferredAmount":"16.9","eventType":"onramp",
            "metaData":{"conversionRate":88.5,"commission":1}}"#;
        let c = parse(body).unwrap();
        assert_eq!(c.direction, Direction::Onramp);
        assert_eq!(c.provider_order_id, "65f0c0ffee");
        assert_eq!(c.report.raw, "completed");
        assert_eq!(c.report.tx_hash.as_deref(), Some("0xfeed"));
        assert_eq!(c.report.payout_reference, None);
    }

    #[test]
    fn the_request_data_wrapper_and_lower_case_keys_are_read() {
        let body = br#"{"request_data":{"orderid":"65f0c0ffee","status":"transferred",
            "txnhash":"0xfeed","transferredamount":"16.9","eventtype":"onramp"}}"#;
        let c = parse(body).unwrap();
        assert_eq!(c.provider_order_id, "65f0c0ffee");
        assert_eq!(c.report.raw, "transferred");
        assert_eq!(c.report.tx_hash.as_deref(), Some("0xfeed"));
    }

    #[test]
    fn an_offramp_body_carries_the_payout_reference() {
        let body = br#"{"sellTokenSymbol":"USDT","senderWalletAddress":"0xabc",
            "orderId":"off-1","status":"PayoutSuccess","transactionId":"UTR998877",
            "txnHash":"0xbeef","eventType":"offramp","tds":"1.2"}"#;
        let c = parse(body).unwrap();
        assert_eq!(c.direction, Direction::Offramp);
        assert_eq!(c.report.raw, "PayoutSuccess");
        assert_eq!(c.report.payout_reference.as_deref(), Some("UTR998877"));
        assert_eq!(c.report.tx_hash.as_deref(), Some("0xbeef"));
    }

    #[test]
    fn the_side_is_inferred_from_the_fields_when_event_type_is_absent() {
        let on = parse(br#"{"buyTokenSymbol":"USDC","orderId":"a","status":"fiatPending"}"#);
        assert_eq!(on.unwrap().direction, Direction::Onramp);
        let off = parse(br#"{"sellTokenSymbol":"USDC","orderId":"b","status":"pending"}"#);
        assert_eq!(off.unwrap().direction, Direction::Offramp);
    }

    #[test]
    fn bodies_that_say_nothing_usable_are_refused() {
        assert_eq!(parse(b"[]"), Err(CallbackError::NotAnObject));
        assert_eq!(parse(b"not json"), Err(CallbackError::NotAnObject));
        assert_eq!(
            parse(br#"{"request_data":"x"}"#),
            Err(CallbackError::NotAnObject)
        );
        assert_eq!(
            parse(br#"{"eventType":"onramp","status":"completed"}"#),
            Err(CallbackError::Missing("orderId"))
        );
        assert_eq!(
            parse(br#"{"eventType":"onramp","orderId":"a","status":""}"#),
            Err(CallbackError::Missing("status"))
        );
        assert_eq!(
            parse(br#"{"eventType":"swap","orderId":"a","status":"x"}"#),
            Err(CallbackError::UnknownEventType("swap".into()))
        );
        assert_eq!(
            parse(br#"{"orderId":"a","status":"x"}"#),
            Err(CallbackError::Missing("eventType"))
        );
    }
}
