//! Webhook secrets at rest. With `webhooks.secrets_key` set, every secret is stored sealed
//! with AES-256-GCM (`enc1:` + base64 of nonce ‖ ciphertext ‖ tag, the endpoint id as
//! associated data, so a sealed secret cannot be moved to another endpoint). Without a
//! key they are stored as `whsec_…` text. Both forms are read, so a key can be introduced
//! later: [`Vault::seal_stored`] seals the plaintext rows at start-up.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

use super::signature::WebhookSecret;

const SEALED: &str = "enc1:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("webhooks.secrets_key must be the base64 of 32 random bytes")]
    Key,
    #[error("a stored webhook secret is sealed, but webhooks.secrets_key is not set")]
    NoKey,
    #[error("a stored webhook secret cannot be opened with webhooks.secrets_key")]
    Open,
    #[error("a stored webhook secret is malformed")]
    Malformed,
}

/// Seals and opens stored secrets; cheap to clone. `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct Vault {
    key: Option<std::sync::Arc<LessSafeKey>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault(sealing: {})", self.key.is_some())
    }
}

impl Vault {
    pub fn new(key: Option<&SecretString>) -> Result<Vault, VaultError> {
        let Some(key) = key else {
            return Ok(Vault::default());
        };
        let raw = B64
            .decode(key.expose_secret().trim())
            .map_err(|_| VaultError::Key)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| VaultError::Key)?;
        Ok(Vault {
            key: Some(std::sync::Arc::new(LessSafeKey::new(unbound))),
        })
    }

    /// A fresh random key (the base64 of 32 random bytes), e.g. for a throwaway database.
    pub fn generate_key() -> SecretString {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .expect("the OS random source works");
        SecretString::from(B64.encode(raw))
    }

    pub fn seals(&self) -> bool {
        self.key.is_some()
    }

    /// The stored form of `secret` for `endpoint_id`.
    pub fn seal(&self, endpoint_id: &str, secret: &WebhookSecret) -> String {
        let text = secret.expose_text();
        let Some(key) = &self.key else {
            return text;
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the OS random source works");
        let mut buf = text.into_bytes();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(endpoint_id.as_bytes()),
            &mut buf,
        )
        .expect("AES-GCM seals any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{SEALED}{}", B64.encode(out))
    }

    /// Read a stored secret (sealed or plain).
    pub fn open(&self, endpoint_id: &str, stored: &str) -> Result<WebhookSecret, VaultError> {
        let Some(b64) = stored.strip_prefix(SEALED) else {
            return WebhookSecret::parse(stored).map_err(|_| VaultError::Malformed);
        };
        let key = self.key.as_ref().ok_or(VaultError::NoKey)?;
        let raw = B64.decode(b64).map_err(|_| VaultError::Malformed)?;
        if raw.len() < NONCE_LEN {
            return Err(VaultError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Malformed)?;
        let mut buf = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(endpoint_id.as_bytes()), &mut buf)
            .map_err(|_| VaultError::Open)?;
        let text = std::str::from_utf8(plain).map_err(|_| VaultError::Malformed)?;
        WebhookSecret::parse(text).map_err(|_| VaultError::Malformed)
    }

    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::from(B64.encode([7u8; 32]))
    }

    #[test]
    fn generated_keys_are_valid_and_differ() {
        let (a, b) = (Vault::generate_key(), Vault::generate_key());
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(Vault::new(Some(&a)).unwrap().seals());
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint_and_key() {
        let v = Vault::new(Some(&key())).unwrap();
        let s = WebhookSecret::generate();
        let stored = v.seal("ep-1", &s);
        assert!(Vault::is_sealed(&stored));
        assert!(!stored.contains(&s.expose_text()[6..]));
        assert_eq!(
            v.open("ep-1", &stored).unwrap().expose_text(),
            s.expose_text()
        );
        assert_ne!(v.seal("ep-1", &s), stored, "a fresh nonce each time");
        assert_eq!(v.open("ep-2", &stored).unwrap_err(), VaultError::Open);
        let other = Vault::new(Some(&SecretString::from(B64.encode([8u8; 32])))).unwrap();
        assert_eq!(other.open("ep-1", &stored).unwrap_err(), VaultError::Open);
        assert_eq!(
            Vault::default().open("ep-1", &stored).unwrap_err(),
            VaultError::NoKey
        );
        assert_eq!(
            v.open("ep-1", "enc1:AAAA").unwrap_err(),
            VaultError::Malformed
        );
    }

    #[test]
    fn plaintext_rows_read_with_or_without_a_key() {
        let s = WebhookSecret::generate();
        let plain = Vault::default().seal("ep", &s);
        assert_eq!(plain, s.expose_text());
        for v in [Vault::default(), Vault::new(Some(&key())).unwrap()] {
            assert_eq!(v.open("ep", &plain).unwrap().expose_text(), s.expose_text());
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        for bad in ["", "nope", &B64.encode([1u8; 16])] {
            assert_eq!(
                Vault::new(Some(&SecretString::from(bad.to_string()))).unwrap_err(),
                VaultError::Key
            );
        }
        assert!(
            !format!("{:?}", Vault::new(Some(&key())).unwrap()).contains(&B64.encode([7u8; 32]))
        );
    }
}
