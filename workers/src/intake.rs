//! Command intake: the durable JetStream pull consumer on `ramp.cmd.>`.
//!
//! Each command is handled in one database transaction and acknowledged only after it
//! commits (DESIGN §2.2). A redelivered command finds its id in the inbox and is acked
//! without effect. An invalid command is answered with a `command_rejected` event naming
//! it. A message that cannot be answered at all (no ids, unknown subject), or that keeps
//! failing until `max_deliver`, is copied to `ramp.dlq.…` and terminated: it never loops.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use futures::StreamExt;
use rampd_domain::command::{Command, CommandIds, CommandName, parse_command, parse_ids};
use rampd_domain::event::{COMMAND_REJECTED, CommandRejected};
use rampd_domain::onramp::{self, Ctx, Input};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::app::Shared;
use crate::nats::traceparent_of;
use crate::storage::orders::load_by_client_id;
use crate::storage::write::{
    CommandRecord, Write, WriteError, already_processed, commit_decision, record_noop,
    record_rejection,
};

/// What to do with the message after handling.
#[derive(Debug)]
enum Outcome {
    Ack,
    Retry(Duration),
    DeadLetter(String),
}

/// Run until `shutdown`; reconnects the pull stream when it breaks.
pub async fn run(
    shared: Shared,
    consumer: jetstream::consumer::PullConsumer,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let stream = consumer
            .stream()
            .max_messages_per_batch(shared.cfg.nats.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match stream {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "command consumer unavailable; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = messages.next() => n,
            };
            match next {
                Some(Ok(msg)) => handle_message(&shared, msg).await,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "command stream error; re-subscribing");
                    break;
                }
                None => break,
            }
        }
    }
}

async fn handle_message(shared: &Shared, msg: jetstream::Message) {
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    let subject = msg.subject.to_string();
    let span = tracing::info_span!(
        "command",
        subject = %subject,
        delivered,
        command_id = tracing::field::Empty,
        order.client_id = tracing::field::Empty,
    );
    let outcome = match handle(
        shared,
        &subject,
        &msg.payload,
        msg.headers.as_ref(),
        delivered,
    )
    .instrument(span)
    .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(subject, delivered, error = %e, "command handling failed; will retry");
            Outcome::Retry(Duration::from_millis(500 * delivered.clamp(1, 20) as u64))
        }
    };
    let outcome = match outcome {
        Outcome::Retry(_) if delivered >= shared.cfg.nats.max_deliver => {
            Outcome::DeadLetter(format!("failed {delivered} deliveries"))
        }
        o => o,
    };
    let acked = match outcome {
        Outcome::Ack => msg.double_ack().await,
        Outcome::Retry(d) => msg.ack_with(AckKind::Nak(Some(d))).await,
        Outcome::DeadLetter(reason) => {
            tracing::warn!(subject, reason, "dead-lettering command");
            match dead_letter(shared, &msg, &reason).await {
                Ok(()) => msg.ack_with(AckKind::Term).await,
                Err(e) => {
                    tracing::error!(error = %e, "dead-letter publish failed; leaving for redelivery");
                    msg.ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await
                }
            }
        }
    };
    if let Err(e) = acked {
        // The inbox makes the redelivery harmless.
        tracing::warn!(subject, error = %e, "ack failed");
    }
}

async fn dead_letter(
    shared: &Shared,
    msg: &jetstream::Message,
    reason: &str,
) -> anyhow::Result<()> {
    let rest = msg
        .subject
        .strip_prefix("ramp.cmd.")
        .unwrap_or("unroutable");
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
    let mut headers = msg.headers.clone().unwrap_or_default();
    headers.insert("Rampd-Dead-Letter-Reason", reason);
    headers.insert("Rampd-Original-Subject", msg.subject.as_str());
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("dlq-{seq}").as_str(),
    );
    shared
        .js
        .publish_with_headers(format!("ramp.dlq.{rest}"), headers, msg.payload.clone())
        .await?
        .await?;
    Ok(())
}

/// Split `ramp.cmd.<tenant>.<command>`.
fn route(subject: &str) -> Option<(&str, CommandName)> {
    let rest = subject.strip_prefix("ramp.cmd.")?;
    let (tenant, cmd) = rest.split_once('.')?;
    let tenant_ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    tenant_ok.then_some(())?;
    Some((tenant, CommandName::parse(cmd)?))
}

async fn handle(
    shared: &Shared,
    subject: &str,
    body: &[u8],
    headers: Option<&async_nats::HeaderMap>,
    delivered: i64,
) -> anyhow::Result<Outcome> {
    let Some((tenant, name)) = route(subject) else {
        return Ok(Outcome::DeadLetter("unknown command subject".into()));
    };
    let ids = match parse_ids(body) {
        Ok(ids) => ids,
        Err(e) => return Ok(Outcome::DeadLetter(e.to_string())),
    };
    let trace = traceparent_of(headers);
    let record = CommandRecord {
        tenant,
        command_id: &ids.command_id,
        command_type: name.as_str(),
    };
    let span = tracing::Span::current();
    span.record("command_id", ids.command_id.as_str());
    span.record("order.client_id", ids.order_id.as_str());
    // A conflict means another replica (or a racing command) wrote first: start over.
    for _ in 0..5 {
        if already_processed(&shared.db, tenant, &ids.command_id).await? {
            tracing::debug!("duplicate command ignored");
            return Ok(Outcome::Ack);
        }
        let command = match parse_command(name, body, &shared.cfg.onramp.limits()) {
            Ok(c) => c,
            Err(e) => {
                reject(
                    shared,
                    &record,
                    &ids,
                    name,
                    e.code(),
                    &e.to_string(),
                    None,
                    trace.as_deref(),
                )
                .await?;
                return Ok(Outcome::Ack);
            }
        };
        match apply(
            shared,
            &record,
            &ids,
            name,
            command,
            trace.as_deref(),
            delivered,
        )
        .await
        {
            Err(WriteError::Conflict) => continue,
            Err(WriteError::UtrInUse) => {
                let msg = "this UTR is already recorded on another order";
                reject(
                    shared,
                    &record,
                    &ids,
                    name,
                    "utr_in_use",
                    msg,
                    None,
                    trace.as_deref(),
                )
                .await?;
                return Ok(Outcome::Ack);
            }
            Err(WriteError::Db(e)) => return Err(e.into()),
            Ok(o) => return Ok(o),
        }
    }
    Ok(Outcome::Retry(Duration::from_millis(200)))
}

async fn apply(
    shared: &Shared,
    record: &CommandRecord<'_>,
    ids: &CommandIds,
    name: CommandName,
    command: Command,
    trace: Option<&str>,
    delivered: i64,
) -> Result<Outcome, WriteError> {
    let now = Utc::now();
    let ctx = Ctx {
        now,
        jitter: rand::random(),
        policy: shared.cfg.onramp.policy(),
    };
    let existing = load_by_client_id(&shared.db, record.tenant, &ids.order_id).await?;
    let (decision, expected_version) = match (command, existing) {
        (Command::CreateOnramp(_), Some(stored)) => {
            let msg = format!("order {} already exists", ids.order_id);
            reject(
                shared,
                record,
                ids,
                name,
                "order_exists",
                &msg,
                Some(&stored.order.id.to_string()),
                trace,
            )
            .await?;
            return Ok(Outcome::Ack);
        }
        (Command::CreateOnramp(req), None) => {
            let d = onramp::create(Uuid::now_v7(), record.tenant, &ids.order_id, req, &ctx);
            tracing::info!(order.id = %d.order.id, "on-ramp order created");
            (d, None)
        }
        (_, None) if delivered < 3 => {
            // The create may still be in flight on another replica: ask again shortly.
            return Ok(Outcome::Retry(Duration::from_secs(1)));
        }
        (_, None) => {
            let msg = format!("no order {} for this tenant", ids.order_id);
            reject(
                shared,
                record,
                ids,
                name,
                "order_not_found",
                &msg,
                None,
                trace,
            )
            .await?;
            return Ok(Outcome::Ack);
        }
        (cmd, Some(stored)) => {
            let input = match cmd {
                Command::SubmitUtr { utr } => Input::SubmitUtr { utr },
                Command::Cancel { reason } => Input::Cancel { reason },
                Command::CreateOnramp(_) => unreachable!("handled above"),
            };
            match onramp::decide(&stored.order, input, &ctx) {
                Err(rej) => {
                    let id = stored.order.id.to_string();
                    reject(
                        shared,
                        record,
                        ids,
                        name,
                        rej.code,
                        &rej.message,
                        Some(&id),
                        trace,
                    )
                    .await?;
                    return Ok(Outcome::Ack);
                }
                Ok(d) if d.is_noop() => {
                    record_noop(&shared.db, record, &stored.order.id.to_string(), now).await?;
                    return Ok(Outcome::Ack);
                }
                Ok(d) => (d, Some(stored.version)),
            }
        }
    };
    commit_decision(
        &shared.db,
        &shared.endpoints,
        Write {
            expected_version,
            decision: &decision,
            command: Some(record.clone()),
            trace_ctx: trace,
            now,
            release_lease: None,
        },
    )
    .await?;
    shared.wake_all();
    Ok(Outcome::Ack)
}

#[allow(clippy::too_many_arguments)]
async fn reject(
    shared: &Shared,
    record: &CommandRecord<'_>,
    ids: &CommandIds,
    name: CommandName,
    code: &str,
    reason: &str,
    order_id: Option<&str>,
    trace: Option<&str>,
) -> Result<(), sea_orm::DbErr> {
    tracing::info!(code, "command rejected");
    let event = CommandRejected {
        event_id: Uuid::now_v7().to_string(),
        event_type: COMMAND_REJECTED.into(),
        tenant: record.tenant.to_string(),
        command: name.as_str().into(),
        command_id: ids.command_id.clone(),
        order_id: ids.order_id.clone(),
        code: code.into(),
        reason: reason.into(),
        occurred_at: Utc::now(),
    };
    let direction = match name {
        CommandName::OnrampCreate | CommandName::OnrampUtr => "onramp",
        CommandName::OrderCancel => "order",
    };
    record_rejection(&shared.db, record, direction, &event, order_id, trace).await?;
    shared.wake_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_subjects() {
        assert_eq!(
            route("ramp.cmd.acme.onramp.create"),
            Some(("acme", CommandName::OnrampCreate))
        );
        assert_eq!(
            route("ramp.cmd.acme.order.cancel"),
            Some(("acme", CommandName::OrderCancel))
        );
        assert_eq!(route("ramp.cmd.acme.onramp.delete"), None);
        assert_eq!(route("ramp.cmd..onramp.create"), None);
        assert_eq!(route("ramp.evt.acme.onramp.create"), None);
    }
}
