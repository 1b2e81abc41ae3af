//! `rampd dlq list|show|replay`: the commands intake dead-lettered (`ramp.dlq.…`, stream
//! `nats.dead_letter_stream`, RAMP_DLQ): those it could not answer at all (no ids, an
//! unknown subject) and those that kept failing until `nats.max_deliver`. A dead letter
//! keeps the command's payload and headers, with `Rampd-Dead-Letter-Reason` and
//! `Rampd-Original-Subject` added.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::StreamMessage};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;

pub const REASON: &str = "Rampd-Dead-Letter-Reason";
pub const ORIGINAL: &str = "Rampd-Original-Subject";

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// Dead-lettered commands, newest first: sequence, time, subject, reason, ids.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print a JSON array instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter by its sequence in the dead-letter stream: headers and body (the
    /// user's details and payment data redacted unless `--raw`).
    Show {
        /// Its sequence (the first column of `rampd dlq list`).
        seq: u64,
        /// Print the body exactly as received (it may hold personal data).
        #[arg(long)]
        raw: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Publish a dead letter again on its original subject, then remove it from the
    /// dead-letter stream. It goes without `Nats-Msg-Id`, so JetStream's duplicate window
    /// (which has the original's) does not drop it; rampd's inbox still makes a repeat of
    /// a command it handled harmless.
    Replay {
        /// Its sequence (the first column of `rampd dlq list`).
        seq: u64,
        /// Keep it in the dead-letter stream after publishing it.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Debug, Serialize)]
pub struct DeadLetter {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub original_subject: String,
    pub reason: Option<String>,
    pub tenant: Option<String>,
    pub command_id: Option<String>,
    pub order_id: Option<String>,
    pub bytes: usize,
}

fn header(h: &HeaderMap, k: &str) -> Option<String> {
    h.get(k).map(|v| v.as_str().to_string())
}

impl DeadLetter {
    fn of(m: &StreamMessage) -> DeadLetter {
        let body: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let original = header(&m.headers, ORIGINAL).unwrap_or_else(|| {
            m.subject
                .as_str()
                .replacen("ramp.dlq.", "ramp.cmd.", 1)
                .to_string()
        });
        let tenant = original
            .strip_prefix("ramp.cmd.")
            .and_then(|r| r.split('.').next())
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let nanos = m.time.unix_timestamp_nanos();
        DeadLetter {
            seq: m.sequence,
            at: DateTime::from_timestamp_nanos(nanos as i64),
            subject: m.subject.to_string(),
            original_subject: original,
            reason: header(&m.headers, REASON),
            tenant,
            command_id: text("command_id"),
            order_id: text("order_id"),
            bytes: m.payload.len(),
        }
    }
}

/// The body with the user's details and payment data left out.
fn redacted(payload: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(mut m)) => {
            for k in ["user", "bank", "payment", "utr", "tx_hash"] {
                if let Some(v) = m.get_mut(k) {
                    *v = Value::String("[redacted]".into());
                }
            }
            Value::Object(m)
        }
        Ok(other) => other,
        Err(_) => Value::String(format!("[{} bytes, not JSON]", payload.len())),
    }
}

/// Run one `dlq` command; returns whether it succeeded.
pub async fn run(
    js: &jetstream::Context,
    stream: &str,
    cmd: DlqCmd,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| anyhow::anyhow!("dead-letter stream {stream}: {e}"))?;
    match cmd {
        DlqCmd::List {
            tenant,
            limit,
            json,
        } => {
            let info = s.get_info().await?;
            let (first, last) = (info.state.first_sequence, info.state.last_sequence);
            let mut found = Vec::new();
            let mut seq = last;
            while seq >= first && seq > 0 && found.len() < limit {
                // A sequence may have been deleted (replayed): skip it.
                if let Ok(m) = s.get_raw_message(seq).await {
                    let d = DeadLetter::of(&m);
                    if tenant.is_none() || d.tenant == tenant {
                        found.push(d);
                    }
                }
                seq -= 1;
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&found)?)?;
            } else {
                for d in &found {
                    writeln!(
                        out,
                        "{}  {}  {}  {}  command_id {}  order_id {}",
                        d.seq,
                        d.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        d.original_subject,
                        d.reason.as_deref().unwrap_or("-"),
                        d.command_id.as_deref().unwrap_or("-"),
                        d.order_id.as_deref().unwrap_or("-")
                    )?;
                }
                writeln!(out, "{} dead letter(s)", found.len())?;
            }
            Ok(true)
        }
        DlqCmd::Show { seq, raw, json } => {
            let m = s
                .get_raw_message(seq)
                .await
                .map_err(|e| anyhow::anyhow!("no dead letter {seq} in {stream}: {e}"))?;
            let d = DeadLetter::of(&m);
            let body = if raw {
                Value::String(String::from_utf8_lossy(&m.payload).into_owned())
            } else {
                redacted(&m.payload)
            };
            let headers: serde_json::Map<String, Value> = m
                .headers
                .iter()
                .map(|(k, v)| {
                    let vs: Vec<&str> = v.iter().map(|x| x.as_str()).collect();
                    (k.to_string(), Value::String(vs.join(", ")))
                })
                .collect();
            if json {
                let mut v = serde_json::to_value(&d)?;
                v["headers"] = Value::Object(headers);
                v["body"] = body;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(
                    out,
                    "dead letter {} at {} from {}",
                    d.seq,
                    d.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    d.original_subject
                )?;
                writeln!(out, "reason  {}", d.reason.as_deref().unwrap_or("-"))?;
                for (k, v) in &headers {
                    writeln!(out, "header  {k}: {}", v.as_str().unwrap_or(""))?;
                }
                match body {
                    Value::String(t) => writeln!(out, "body    {t}")?,
                    other => writeln!(out, "body    {other}")?,
                }
            }
            Ok(true)
        }
        DlqCmd::Replay { seq, keep } => {
            let m = s
                .get_raw_message(seq)
                .await
                .map_err(|e| anyhow::anyhow!("no dead letter {seq} in {stream}: {e}"))?;
            let d = DeadLetter::of(&m);
            let mut headers = HeaderMap::new();
            for (k, v) in m.headers.iter() {
                let name = k.to_string();
                if name.starts_with("Rampd-") || name.eq_ignore_ascii_case("Nats-Msg-Id") {
                    continue;
                }
                for x in v {
                    headers.append(name.as_str(), x.as_str());
                }
            }
            let ack = js
                .publish_with_headers(d.original_subject.clone(), headers, m.payload.clone())
                .await?
                .await?;
            if !keep {
                s.delete_message(seq).await?;
            }
            writeln!(
                out,
                "dead letter {seq} published again on {} ({} seq {}){}",
                d.original_subject,
                ack.stream,
                ack.sequence,
                if keep {
                    ""
                } else {
                    "; removed from the dead-letter stream"
                }
            )?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_redacts_personal_data() {
        let body = br#"{"command_id":"c-1","order_id":"o-1","user":{"email":"a@example.com"},"utr":"512345678901"}"#;
        let v = redacted(body);
        assert_eq!(v["command_id"], "c-1");
        assert_eq!(v["user"], "[redacted]");
        assert_eq!(v["utr"], "[redacted]");
        assert!(!v.to_string().contains("a@example.com"));
        assert_eq!(redacted(b"not json"), "[8 bytes, not JSON]");
    }
}
