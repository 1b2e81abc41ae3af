//! Who a command is: its tenant-scoped message id and the fingerprint of its body.
//!
//! JetStream drops a repeated `Nats-Msg-Id` inside the stream's duplicate window, and the
//! window is stream-wide: a bare `command_id` as message id would let one tenant's
//! command suppress another's. So the contract scopes the message id by tenant:
//! `Nats-Msg-Id = <tenant>.<command_id>`. The separator `.` occurs in neither part (tenant
//! ids are `[A-Za-z0-9_-]{1,64}`, command ids refuse `.`), so the scoped id names exactly
//! one (tenant, command id) pair.
//!
//! A command id is an idempotency key: a repeat with the same body is harmless, a repeat
//! with another body is refused. [`Fingerprint`] is what "the same body" means.

use sha2::{Digest, Sha256};

use crate::command::CommandName;

/// The `Nats-Msg-Id` the contract requires for a command: `<tenant>.<command_id>`.
pub fn scoped_msg_id(tenant: &str, command_id: &str) -> String {
    format!("{tenant}.{command_id}")
}

/// Whether a command's `Nats-Msg-Id` is the one the contract requires of it. A command
/// without one is accepted (rampd's inbox deduplicates by tenant and command id; only
/// JetStream's publish-side dedup is lost). One that is present must be exactly
/// [`scoped_msg_id`] of the subject's tenant and the body's command id: anything else
/// (a bare command id, another tenant's scope) is refused, so that a message id that could
/// collide with another tenant's is always visible.
pub fn msg_id_fits(msg_id: Option<&str>, tenant: &str, command_id: &str) -> bool {
    match msg_id {
        None => true,
        Some(id) => id
            .strip_prefix(tenant)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| rest == command_id),
    }
}

/// SHA-256 over a command's canonical form, as 64 lowercase hex digits.
///
/// The canonical form is the command name, a NUL byte, then the body's JSON value
/// re-serialised canonically: object keys sorted by their UTF-8 bytes, no whitespace,
/// strings escaped as `serde_json` escapes them, numbers as `serde_json` prints them. So
/// key order and whitespace do not matter (a client that re-serialises its command on a
/// retry sends the same command), but every value and its JSON type do: `"command_id": 123`
/// and `"command_id": "123"` are different bodies, as are `" 123"` and `"123"`, even
/// though each pair names the same command id. The tenant is not part of it: the inbox
/// that stores it is keyed by tenant already.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a body that is JSON (the shell has parsed its ids already);
    /// `None` when it is not.
    pub fn of(name: CommandName, body: &[u8]) -> Option<Fingerprint> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let mut canonical = Vec::with_capacity(body.len());
        canonical.extend_from_slice(name.as_str().as_bytes());
        canonical.push(0);
        write_canonical(&value, &mut canonical);
        let digest = Sha256::digest(&canonical);
        Some(Fingerprint(
            digest.iter().map(|b| format!("{b:02x}")).collect(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            out.extend_from_slice(v.to_string().as_bytes())
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(body: &str) -> Fingerprint {
        Fingerprint::of(CommandName::OnrampUtr, body.as_bytes()).unwrap()
    }

    #[test]
    fn scoped_message_ids_fit_only_their_tenant_and_command() {
        assert_eq!(scoped_msg_id("acme", "c-1"), "acme.c-1");
        assert!(msg_id_fits(Some("acme.c-1"), "acme", "c-1"));
        assert!(msg_id_fits(None, "acme", "c-1"));
        for bad in [
            "c-1",
            "globex.c-1",
            "acme.c-2",
            "acme.",
            "acmec-1",
            "acme.c-1.x",
            "",
        ] {
            assert!(!msg_id_fits(Some(bad), "acme", "c-1"), "{bad}");
        }
        // A tenant that is a prefix of another does not match it.
        assert!(!msg_id_fits(Some("acme-eu.c-1"), "acme", "c-1"));
        assert!(!msg_id_fits(Some("acme.c-1"), "acme-eu", "c-1"));
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_fingerprint() {
        let a = fp(r#"{"command_id":"c","order_id":"o","utr":"412345678901"}"#);
        let b = fp(r#"{ "utr": "412345678901",
                        "order_id": "o", "command_id": "c" }"#);
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        let nested_a = fp(r#"{"u":{"b":1,"a":[2,{"y":1,"x":0}]}}"#);
        let nested_b = fp(r#"{"u":{"a":[2,{"x":0,"y":1}],"b":1}}"#);
        assert_eq!(nested_a, nested_b);
    }

    #[test]
    fn every_value_and_its_json_type_count() {
        let base = fp(r#"{"command_id":"123","order_id":"o","utr":"412345678901"}"#);
        for other in [
            r#"{"command_id":123,"order_id":"o","utr":"412345678901"}"#,
            r#"{"command_id":" 123","order_id":"o","utr":"412345678901"}"#,
            r#"{"command_id":"123","order_id":"o","utr":"412345678902"}"#,
            r#"{"command_id":"123","order_id":"o","utr":"412345678901","x":null}"#,
            r#"{"command_id":"123","order_id":"o2","utr":"412345678901"}"#,
        ] {
            assert_ne!(fp(other), base, "{other}");
        }
        // Array order is meaningful.
        assert_ne!(fp(r#"{"a":[1,2]}"#), fp(r#"{"a":[2,1]}"#));
    }

    #[test]
    fn the_command_name_is_part_of_the_fingerprint() {
        let body = br#"{"command_id":"c","order_id":"o"}"#;
        assert_ne!(
            Fingerprint::of(CommandName::OrderCancel, body),
            Fingerprint::of(CommandName::OnrampUtr, body)
        );
        assert_eq!(Fingerprint::of(CommandName::OrderCancel, b"not json"), None);
    }
}
