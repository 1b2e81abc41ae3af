//! A Standard Webhooks verifier written from the specification
//! (<https://www.standardwebhooks.com/>, "Verifying webhook authenticity"), independent of
//! rampd's own signer: `ring::hmac` directly, the `whsec_` prefix stripped and the rest
//! base64-decoded, signed content `"{id}.{timestamp}.{body}"`, each space-separated
//! `v1,<base64>` signature compared in constant time, timestamps outside ±5 min refused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

pub const TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    BadSecret,
    BadTimestamp,
    Stale,
    NoMatch,
}

/// Verify one received webhook against one `whsec_…` secret at `now` (unix seconds).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or(Refused::BadSecret)?;
    let ts: i64 = timestamp.parse().map_err(|_| Refused::BadTimestamp)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(Refused::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    for sig in signatures.split(' ') {
        let Some((version, b64)) = sig.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        let Ok(raw) = STANDARD.decode(b64) else {
            continue;
        };
        // `hmac::verify` compares in constant time.
        if hmac::verify(&key, &content, &raw).is_ok() {
            return Ok(());
        }
    }
    Err(Refused::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The specification's example.
    #[test]
    fn spec_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = "1614265330";
        let body = br#"{"test": 2432232314}"#;
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(verify(secret, id, ts, sig, body, 1614265330), Ok(()));
        assert_eq!(
            verify(secret, id, ts, &format!("v1,AAAA {sig}"), body, 1614265330),
            Ok(())
        );
        assert_eq!(
            verify(secret, id, ts, sig, b"{}", 1614265330),
            Err(Refused::NoMatch)
        );
        assert_eq!(
            verify(secret, id, ts, sig, body, 1614265330 + 301),
            Err(Refused::Stale)
        );
        assert_eq!(
            verify("nope", id, ts, sig, body, 1614265330),
            Err(Refused::BadSecret)
        );
    }
}
