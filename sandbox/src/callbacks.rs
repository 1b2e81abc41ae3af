//! Merchant callbacks (webhooks) as Onmeta sends them (`reference/providers.md` §1.5): on
//! every status change of an order the sandbox `POST`s the order's state to the configured
//! callback URL, signed with `X-Onmeta-Signature` = lowercase hex of
//! HMAC-SHA256(merchant API secret, exact body bytes). No timestamp, no event id, no retries.
//!
//! The world records a `Change` (a snapshot of the order, `state::callbacks`) while it mutates, under its lock;
//! one background task ([`sender`]) builds, signs and sends the bodies in the order they were
//! recorded, applying the fault knobs of [`Callbacks`].

mod body;
pub(crate) mod sender;

/// Callback settings. Settable at start ([`super::SandboxConfig::callbacks`]) and at run
/// time ([`super::SandboxHandle::set_callbacks`], `PUT /sandbox/callbacks`). Each status
/// change is sent with the settings in force when it happened. Rates are in `[0, 1]`.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Callbacks {
    /// Where to `POST` callbacks (the merchant's "Callback URL"); `None` (the default)
    /// turns callbacks off.
    pub url: Option<String>,
    /// The merchant API secret the signature is keyed with. Default `"sandbox-api-secret"`.
    pub secret: String,
    /// Share of callbacks never sent (counted in `callbacks_dropped`).
    pub drop_rate: f64,
    /// Every sent callback is sent this many extra times, with identical bytes and headers.
    pub repeat: u32,
    /// Each order's callback is held back and sent right after that order's next callback,
    /// so the two arrive swapped. A terminal callback (`completed`, `expired`, `refunded`)
    /// is never held; a callback held when the order reaches one is sent after it. A
    /// callback held by an order that never changes again is never sent.
    pub reorder: bool,
    /// Share of callbacks sent with a wrong signature (counted in `callbacks_mis_signed`).
    pub mis_sign_rate: f64,
    /// Wrap the body as `{"request_data": {...}}`, as the provider's samples are.
    pub wrap: bool,
    /// Lower-case every object key, recursively (`orderid`, `txnhash`, `eventtype`, ...), as
    /// the provider's samples spell them.
    pub lower_case_keys: bool,
}

impl Default for Callbacks {
    fn default() -> Self {
        Callbacks {
            url: None,
            secret: "sandbox-api-secret".to_owned(),
            drop_rate: 0.0,
            repeat: 0,
            reorder: false,
            mis_sign_rate: 0.0,
            wrap: false,
            lower_case_keys: false,
        }
    }
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("drop_rate", &self.drop_rate)
            .field("repeat", &self.repeat)
            .field("reorder", &self.reorder)
            .field("mis_sign_rate", &self.mis_sign_rate)
            .field("wrap", &self.wrap)
            .field("lower_case_keys", &self.lower_case_keys)
            .finish()
    }
}

/// Why a [`Callbacks`] value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbacksError {
    #[error("callbacks url must be an http:// or https:// URL")]
    Url,
    #[error("callbacks {0} must be a number in [0, 1]")]
    Rate(&'static str),
}

impl Callbacks {
    /// Whether callbacks are on (a URL is set).
    pub(crate) fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Checks the URL's shape and that the rates lie in `[0, 1]`.
    pub fn validate(&self) -> Result<(), CallbacksError> {
        if let Some(url) = &self.url {
            let ok = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(CallbacksError::Url);
            }
        }
        for (name, rate) in [
            ("drop_rate", self.drop_rate),
            ("mis_sign_rate", self.mis_sign_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(CallbacksError::Rate(name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_redact_and_validate() {
        let c = Callbacks::default();
        assert!(!c.enabled());
        assert_eq!(c.secret, "sandbox-api-secret");
        let c = Callbacks {
            url: Some("http://127.0.0.1:9/hook".into()),
            secret: "s3cr3t".into(),
            ..Callbacks::default()
        };
        assert!(c.enabled() && c.validate().is_ok());
        assert!(!format!("{c:?}").contains("s3cr3t"));
        // Missing fields take their defaults.
        let parsed: Callbacks = serde_json::from_str(r#"{"repeat": 2}"#).unwrap();
        assert_eq!(
            parsed,
            Callbacks {
                repeat: 2,
                ..Callbacks::default()
            }
        );
        for bad in ["ftp://x/y", "not a url", "http://"] {
            let c = Callbacks {
                url: Some(bad.into()),
                ..Callbacks::default()
            };
            assert_eq!(c.validate(), Err(CallbacksError::Url), "{bad}");
        }
        let c = Callbacks {
            drop_rate: 1.5,
            ..Callbacks::default()
        };
        assert_eq!(c.validate(), Err(CallbacksError::Rate("drop_rate")));
        let c = Callbacks {
            mis_sign_rate: f64::NAN,
            ..Callbacks::default()
        };
        assert_eq!(c.validate(), Err(CallbacksError::Rate("mis_sign_rate")));
    }
}
