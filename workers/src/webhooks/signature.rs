//! Standard Webhooks signing and verification (<https://www.standardwebhooks.com/>).
//!
//! Signed content is `"{webhook-id}.{webhook-timestamp}.{body}"` over the exact body
//! bytes; the signature is `v1,` + base64(HMAC-SHA256(secret, content)). A header may hold
//! several space-separated signatures (key rotation).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "whsec_";

/// A webhook signing key. `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(****)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secret must look like whsec_<base64>")]
    Format,
    #[error("webhook secret must decode to 24..=64 bytes")]
    Length,
}

impl WebhookSecret {
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s.trim().strip_prefix(PREFIX).ok_or(SecretError::Format)?;
        let bytes = B64.decode(b64).map_err(|_| SecretError::Format)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::Length);
        }
        Ok(WebhookSecret(bytes))
    }

    /// A fresh random 32-byte secret.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        WebhookSecret(bytes.to_vec())
    }

    /// The `whsec_…` text form (to show once to its owner; never log it).
    pub fn expose_text(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// One `v1,<base64>` signature.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            B64.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }
}

/// The `webhook-signature` header value for a set of active secrets.
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("timestamp outside the tolerance window")]
    Timestamp,
    #[error("no matching signature")]
    Signature,
}

/// Verify a received webhook: timestamp within `tolerance_secs` of `now`, and at least one
/// `v1` signature matching in constant time.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    if (now - timestamp).abs() > tolerance_secs {
        return Err(VerifyError::Timestamp);
    }
    for sig in signature_header.split_whitespace() {
        let Some(b64) = sig.strip_prefix("v1,") else {
            continue;
        };
        let Ok(raw) = B64.decode(b64) else { continue };
        if secret.mac(id, timestamp, body).verify_slice(&raw).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vector from the Standard Webhooks specification's reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_spec_vector() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TS, BODY), EXPECTED);
        assert_eq!(verify(&s, ID, TS, EXPECTED, BODY, TS + 10, 300), Ok(()));
    }

    #[test]
    fn rejects_tampering_old_timestamps_and_unknown_keys() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(
            verify(&s, ID, TS, EXPECTED, b"{}", TS, 300),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            verify(&s, ID, TS, EXPECTED, BODY, TS + 301, 300),
            Err(VerifyError::Timestamp)
        );
        let other = WebhookSecret::generate();
        assert_eq!(
            verify(&other, ID, TS, EXPECTED, BODY, TS, 300),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn several_signatures_verify_with_either_key() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        let header = signature_header(&[a.clone(), b.clone()], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&a, ID, TS, &header, BODY, TS, 300).is_ok());
        assert!(verify(&b, ID, TS, &header, BODY, TS, 300).is_ok());
    }

    #[test]
    fn secrets_parse_strictly_and_never_print() {
        assert_eq!(
            WebhookSecret::parse("abc").unwrap_err(),
            SecretError::Format
        );
        assert!(WebhookSecret::parse("whsec_AAAA").is_err());
        let g = WebhookSecret::generate();
        assert!(WebhookSecret::parse(&g.expose_text()).is_ok());
        assert!(!format!("{g:?}").contains(&g.expose_text()[6..]));
    }
}
