//! `rampd publish <command> --file FILE`: send one command the way an upstream service
//! does (subject `ramp.cmd.<tenant>.<command>`, `Nats-Msg-Id` `<tenant>.<command_id>`)
//! and print the events that answer it. For trying rampd out and for on-call checks; the
//! examples in `deploy/examples/` work as they are.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use futures::StreamExt;
use rampd_domain::command::CommandName;
use serde_json::Value;

/// The commands rampd takes (`ramp.cmd.<tenant>.<command>`).
pub const COMMANDS: [&str; 5] = [
    "onramp.create",
    "onramp.utr",
    "offramp.create",
    "offramp.txhash",
    "order.cancel",
];

#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The command; it is published on `ramp.cmd.<tenant>.<command>`.
    #[arg(value_parser = COMMANDS)]
    pub command: String,
    /// The command's JSON body, e.g. `deploy/examples/onramp.create.upi.json`; `-` reads
    /// standard input.
    #[arg(long, short)]
    pub file: PathBuf,
    /// The tenant the command is sent as.
    #[arg(long, default_value = "acme")]
    pub tenant: String,
    /// Send with this `command_id` (default: a fresh one, replacing the file's).
    #[arg(long)]
    pub command_id: Option<String>,
    /// Replace the body's `order_id` (to send the same example for another order).
    #[arg(long)]
    pub order_id: Option<String>,
    /// Print answering events for at most this many seconds.
    #[arg(long, default_value_t = 15)]
    pub wait: u64,
}

/// How a published command came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An event answered it: the order waits for the next step, or ended.
    Answered,
    /// Events about it arrived, but none that answers it before `--wait` ran out.
    Pending,
    /// The command was rejected.
    Rejected,
    /// JetStream already had this `Nats-Msg-Id` (a repeat within the duplicate window).
    Duplicate,
    /// Nothing about it arrived before `--wait` ran out.
    Silent,
}

impl Answer {
    pub fn success(self) -> bool {
        matches!(self, Answer::Answered | Answer::Pending)
    }
}

/// The body to send: the file's JSON object with its ids replaced as asked.
pub fn prepare(args: &PublishArgs) -> anyhow::Result<Value> {
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the command from stdin")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let mut body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.file.display()))?;
    let Some(obj) = body.as_object_mut() else {
        anyhow::bail!("{} is not a JSON object", args.file.display());
    };
    let command_id = args
        .command_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    obj.insert("command_id".into(), Value::String(command_id));
    if let Some(o) = &args.order_id {
        obj.insert("order_id".into(), Value::String(o.clone()));
    }
    Ok(body)
}

/// The states after which the order waits for whoever sent `command` (or for the
/// provider), so that the command has had its answer.
fn answered_by(command: CommandName, state: &str) -> bool {
    let next = match command {
        CommandName::OnrampCreate | CommandName::OfframpCreate => {
            &["awaiting_payment", "kyc_required"][..]
        }
        CommandName::MintCreate => &["processing"][..],
        CommandName::RedeemCreate => &["awaiting_payment"][..],
        CommandName::RedeemPayout => &["paid_out"][..],
        CommandName::OnrampUtr => &["utr_submitted"][..],
        CommandName::OfframpTxHash => &["tx_hash_submitted"][..],
        CommandName::OrderCancel => &[][..],
    };
    next.contains(&state)
        || matches!(
            state,
            "completed" | "failed" | "expired" | "cancelled" | "refunded"
        )
}

/// Publish `body` as `args.command` and write the events that answer it, one JSON object a
/// line, until one answers it or `args.wait` runs out.
pub async fn publish(
    client: &async_nats::Client,
    args: &PublishArgs,
    body: &Value,
    out: &mut impl std::io::Write,
) -> anyhow::Result<Answer> {
    let command = CommandName::parse(&args.command)
        .with_context(|| format!("unknown command {}", args.command))?;
    let tenant = &args.tenant;
    let command_id = body["command_id"].as_str().unwrap_or_default().to_string();
    let order_id = body["order_id"].as_str().map(str::to_string);
    // Listen first, so that no answer is missed.
    let mut events = client.subscribe(format!("ramp.evt.{tenant}.>")).await?;
    client.flush().await?;
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = HeaderMap::new();
    let msg_id = rampd_domain::command_identity::scoped_msg_id(tenant, &command_id);
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
    let subject = format!("ramp.cmd.{tenant}.{}", command.as_str());
    let ack = js
        .publish_with_headers(subject.clone(), headers, body.to_string().into())
        .await
        .with_context(|| format!("publishing on {subject}"))?
        .await
        .with_context(|| {
            format!("publishing on {subject} (no stream takes it: has a worker run on this NATS?)")
        })?;
    if ack.duplicate {
        writeln!(
            out,
            "{subject}: command {command_id} was published before (Nats-Msg-Id {msg_id}); \
             JetStream dropped this repeat. Leave out --command-id to send a new command."
        )?;
        return Ok(Answer::Duplicate);
    }
    writeln!(
        out,
        "published {} command_id {command_id} order_id {} (stream {} seq {})",
        subject,
        order_id.as_deref().unwrap_or("-"),
        ack.stream,
        ack.sequence
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    let mut last_state: Option<String> = None;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some(msg)) = next else { break };
        let Ok(ev) = serde_json::from_slice::<Value>(&msg.payload) else {
            continue;
        };
        let ours = ev["command_id"].as_str() == Some(command_id.as_str());
        let same_order = order_id.is_some() && ev["order_id"].as_str() == order_id.as_deref();
        if !ours && !same_order {
            continue;
        }
        writeln!(out, "{} {}", msg.subject, ev)?;
        let kind = ev["type"].as_str().unwrap_or_default();
        if ours && (kind == "command.rejected" || kind.ends_with("_rejected")) {
            return Ok(Answer::Rejected);
        }
        if let Some(state) = ev["state"].as_str() {
            last_state = Some(state.to_string());
            if kind == "order.status_changed" && answered_by(command, state) {
                return Ok(Answer::Answered);
            }
        }
    }
    let follow = match &order_id {
        Some(o) => format!("; follow it with `rampd orders show {o} --tenant {tenant}`"),
        None => String::new(),
    };
    Ok(match last_state {
        Some(state) => {
            writeln!(
                out,
                "no answer within {}s; the order is {state}{follow}",
                args.wait
            )?;
            Answer::Pending
        }
        None => {
            writeln!(
                out,
                "nothing answered within {}s: is a worker running on this NATS, taking tenant {tenant}'s commands?",
                args.wait
            )?;
            Answer::Silent
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: &str) -> PublishArgs {
        PublishArgs {
            command: "onramp.create".into(),
            file: PathBuf::from(file),
            tenant: "acme".into(),
            command_id: None,
            order_id: None,
            wait: 1,
        }
    }

    #[test]
    fn fresh_command_ids_unless_given() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/onramp.create.upi.json"
        );
        let a = prepare(&args(example)).unwrap();
        let b = prepare(&args(example)).unwrap();
        assert_ne!(a["command_id"], "0197a1b2-0001-7000-8000-000000000001");
        assert_ne!(a["command_id"], b["command_id"]);
        assert_eq!(a["order_id"], "acme-order-1001");
        let mut given = args(example);
        given.command_id = Some("c-7".into());
        given.order_id = Some("o-7".into());
        let c = prepare(&given).unwrap();
        assert_eq!(
            (&c["command_id"], &c["order_id"]),
            (&"c-7".into(), &"o-7".into())
        );
        assert_eq!(c["fiat_amount"], "1500.00");
        assert!(prepare(&args("/nonexistent.json")).is_err());
    }

    #[test]
    fn what_answers_a_command() {
        assert!(answered_by(CommandName::OnrampCreate, "awaiting_payment"));
        assert!(!answered_by(CommandName::OnrampCreate, "preparing"));
        assert!(answered_by(CommandName::OnrampUtr, "utr_submitted"));
        assert!(!answered_by(CommandName::OnrampUtr, "awaiting_payment"));
        assert!(answered_by(CommandName::OrderCancel, "cancelled"));
        assert!(answered_by(CommandName::OfframpTxHash, "failed"));
    }
}
