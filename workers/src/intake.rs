//! Command intake: the durable JetStream pull consumer on `ramp.cmd.>`.
//!
//! Each command's decision commits whole, in a savepoint of a group commit
//! ([`crate::storage::group_commit`]), and the command is acknowledged only after that
//! batch has committed (DESIGN §2.2). A redelivered command finds its id in the inbox and is acked
//! without effect. An invalid command is answered with a `command_rejected` event naming
//! it. A message that cannot be answered at all (no ids, unknown subject), or that keeps
//! failing until `max_deliver`, is copied to `ramp.dlq.…` and terminated: it never loops.
//! Each tenant has a consumer of its own, so that no tenant's backlog delays another's
//! commands ([`lanes`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use futures::StreamExt;
use rampd_domain::command::{
    Command, CommandError, CommandIds, CommandName, RejectCode, Target, parse_command_at, parse_ids,
};
use rampd_domain::command_identity::{Fingerprint, msg_id_fits};
use rampd_domain::event::{COMMAND_REJECTED, CommandRejected};
use rampd_domain::order::{self, Ctx};
use rampd_domain::provider::ProviderName;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

mod payment_refs;

use crate::shared::Shared;
use crate::storage::orders::{StoredOrder, load_for_command};
use crate::storage::write::{
    CommandRecord, OwnedCommand, OwnedWrite, Seen, WriteError, announce_rejection, commit_grouped,
    record_unchanged, seen,
};
use crate::telemetry::{self, meters};

/// What to do with the message after handling.
#[derive(Debug)]
enum Outcome {
    Ack,
    Retry(Duration),
    DeadLetter(String),
}

pub mod lanes;

/// Serve one lane (one tenant's commands, see [`lanes`]) until `shutdown`.
///
/// Commands of different orders are handled concurrently; commands of one order
/// (`order_id` of the body) one after another, in stream order ([`Serial`]). Every
/// command read holds a permit of its lane (`nats.lane_concurrency`) and one of the
/// intake-wide `permits` (`nats.intake_concurrency`) until it is handled: that bounds the
/// commands in memory, keeps one busy lane from taking every permit, and lets lanes take
/// turns at the permits (FIFO). The pull stream is opened again when it breaks; on `shutdown`,
/// commands being handled finish and those still queued behind them are left
/// unacknowledged, for redelivery.
async fn run(
    shared: Shared,
    consumer: jetstream::consumer::PullConsumer,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let serial = Serial::default();
    let lane_permits = Arc::new(Semaphore::new(shared.cfg.nats.lane_concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    'streams: while !shutdown.is_cancelled() {
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
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(lanes::RESUBSCRIBE) => continue,
                }
            }
        };
        loop {
            while running.try_join_next().is_some() {}
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break 'streams,
                p = permit_pair(&lane_permits, &permits) => match p {
                    Some(p) => p,
                    None => break 'streams, // closed: shutting down
                },
            };
            let next = tokio::select! {
                _ = shutdown.cancelled() => break 'streams,
                n = messages.next() => n,
            };
            match next {
                Some(Ok(msg)) => {
                    let ids = parse_ids(&msg.payload);
                    if let Some(first) = serial.admit(Held {
                        msg,
                        ids,
                        _permits: permit,
                    }) {
                        running.spawn(serial.clone().drain(shared.clone(), first));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "command stream error; re-subscribing");
                    break;
                }
                None => break,
            }
        }
    }
    serial.forget_queued();
    while running.join_next().await.is_some() {}
}

type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// A permit of the lane, then one of the intake; `None` once closed.
async fn permit_pair(lane: &Arc<Semaphore>, intake: &Arc<Semaphore>) -> Option<Permits> {
    let lane = lane.clone().acquire_owned().await.ok()?;
    let intake = intake.clone().acquire_owned().await.ok()?;
    Some((lane, intake))
}

/// A command read from the lane, its ids (read once, for its place in [`Serial`] and for
/// handling it), and the permits it holds until it is handled.
struct Held {
    msg: jetstream::Message,
    ids: Result<CommandIds, CommandError>,
    _permits: Permits,
}

/// The commands of each order in a lane that wait behind one being handled. An order is
/// "busy" while a task drains its queue; a command for a busy order joins the queue, a
/// command for any other order starts a task of its own.
#[derive(Clone, Default)]
struct Serial {
    busy: Arc<Mutex<HashMap<String, VecDeque<Held>>>>,
}

impl Serial {
    /// Queue `held` behind its order's commands, or hand it back to be handled now. A
    /// command whose order cannot be read is handled at once (it is refused or
    /// dead-lettered, touching no order).
    fn admit(&self, held: Held) -> Option<(Option<String>, Held)> {
        let Some(key) = held.ids.as_ref().ok().map(|ids| ids.order_id.clone()) else {
            return Some((None, held));
        };
        let mut busy = self.busy.lock().expect("intake queue lock");
        match busy.get_mut(&key) {
            Some(queue) => {
                queue.push_back(held);
                None
            }
            None => {
                busy.insert(key.clone(), Default::default());
                Some((Some(key), held))
            }
        }
    }

    /// Handle `first`, then every command queued behind it for the same order.
    async fn drain(self, shared: Shared, (key, first): (Option<String>, Held)) {
        let mut held = first;
        loop {
            handle_message(&shared, held.msg, held.ids).await;
            let Some(key) = &key else { return };
            let mut busy = self.busy.lock().expect("intake queue lock");
            match busy.get_mut(key).and_then(|q| q.pop_front()) {
                Some(next) => held = next,
                None => {
                    busy.remove(key);
                    return;
                }
            }
        }
    }

    /// At shutdown: drop what waits (unacknowledged, so it is redelivered).
    fn forget_queued(&self) {
        for queue in self.busy.lock().expect("intake queue lock").values_mut() {
            queue.clear();
        }
    }
}

async fn handle_message(
    shared: &Shared,
    msg: jetstream::Message,
    ids: Result<CommandIds, CommandError>,
) {
    let info = msg.info().ok();
    let delivered = info.as_ref().map_or(1, |i| i.delivered);
    let subject = msg.subject.to_string();
    let headers = msg.headers.as_ref();
    let span = telemetry::spans::command(
        &subject,
        headers
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str()),
        delivered,
        telemetry::context::from_nats(headers).as_deref(),
        info.as_ref().map(|i| i.consumer),
        &telemetry::spans::Server::of(&shared.nats),
    );
    let outcome = match handle(
        shared,
        &subject,
        &msg.payload,
        ids,
        msg.headers.as_ref(),
        delivered,
    )
    .instrument(span)
    .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(subject, delivered, error = %e, "command handling failed; will retry");
            meters::command(route(&subject).map_or("unknown", |r| r.1.as_str()), "error");
            Outcome::Retry(Duration::from_millis(500 * delivered.clamp(1, 20) as u64))
        }
    };
    let outcome = match outcome {
        Outcome::Retry(_) if delivered >= shared.cfg.nats.max_deliver => {
            Outcome::DeadLetter(format!("failed {delivered} deliveries"))
        }
        o => o,
    };
    meters_for_outcome(&subject, &outcome);
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

/// One command being handled.
struct Incoming<'a> {
    record: CommandRecord<'a>,
    ids: &'a CommandIds,
    name: CommandName,
    trace: Option<&'a str>,
    delivered: i64,
}

/// What a command came to.
enum Verdict {
    /// The order changed; everything is committed.
    Committed,
    /// A repeat that changes nothing.
    Unchanged { order_id: String },
    /// Refused with a stable code; answered with `command_rejected`.
    Refused {
        code: RejectCode,
        reason: String,
        order_id: Option<String>,
    },
    /// The order it names is not there (yet): ask again shortly.
    NotYet,
    /// Refused, and the order flagged for it; everything is committed (see
    /// [`payment_refs`]).
    Contested,
}

async fn handle(
    shared: &Shared,
    subject: &str,
    body: &[u8],
    ids: Result<CommandIds, CommandError>,
    headers: Option<&async_nats::HeaderMap>,
    delivered: i64,
) -> anyhow::Result<Outcome> {
    let Some((tenant, name)) = route(subject) else {
        return Ok(Outcome::DeadLetter("unknown command subject".into()));
    };
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => return Ok(Outcome::DeadLetter(e.to_string())),
    };
    let trace = telemetry::context::from_nats(headers);
    let msg_id = headers
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str());
    let fingerprint = Fingerprint::of(name, body);
    let incoming = Incoming {
        record: CommandRecord {
            tenant,
            command_id: &ids.command_id,
            command_type: name.as_str(),
            fingerprint: fingerprint.as_ref(),
        },
        ids: &ids,
        name,
        trace: trace.as_deref(),
        delivered,
    };
    let span = tracing::Span::current();
    span.record("rampd.command.id", ids.command_id.as_str());
    span.record("rampd.order.client_id", ids.order_id.as_str());
    if !msg_id_fits(msg_id, tenant, &ids.command_id) {
        refuse_msg_id(shared, &incoming).await?;
        return Ok(Outcome::Ack);
    }
    // A conflict means another replica (or a racing command) wrote first: start over.
    for _ in 0..5 {
        let target = load_for_command(
            &shared.db,
            &incoming.record.inbox_id(),
            tenant,
            &ids.order_id,
        )
        .await?;
        match seen(
            target.inbox.as_ref().map(Option::as_deref),
            &incoming.record,
        ) {
            Seen::New => {}
            Seen::Repeat => {
                tracing::debug!("duplicate command ignored");
                meters::command(name.as_str(), "duplicate");
                return Ok(Outcome::Ack);
            }
            Seen::Reused => {
                refuse_reused_id(shared, &incoming).await?;
                return Ok(Outcome::Ack);
            }
        }
        let verdict = match parse_command_at(name, body, &shared.cfg.orders.limits()) {
            Err(e) => Verdict::Refused {
                code: e.code(),
                reason: e.to_string(),
                order_id: None,
            },
            Ok((command, named)) => {
                match apply(shared, &incoming, command, named, target.order).await {
                    Ok(v) => v,
                    Err(WriteError::Conflict) => continue,
                    Err(WriteError::UtrInUse) => Verdict::Refused {
                        code: RejectCode::UtrInUse,
                        reason: "this UTR is already recorded on another order".into(),
                        order_id: None,
                    },
                    Err(WriteError::TxHashInUse) => Verdict::Refused {
                        code: RejectCode::TxHashInUse,
                        reason: "this transaction hash is already recorded on another order".into(),
                        order_id: None,
                    },
                    Err(WriteError::Db(e)) => return Err(e.into()),
                }
            }
        };
        return Ok(conclude(shared, &incoming, verdict).await?);
    }
    Ok(Outcome::Retry(Duration::from_millis(200)))
}

/// Decide the command on its order (`existing`, as read with the inbox row): a command
/// on an existing order runs in a span of the order's trace; a create runs in the
/// command's span, whose context the new order stores.
async fn apply(
    shared: &Shared,
    inc: &Incoming<'_>,
    command: Command,
    named: Option<ProviderName>,
    existing: Option<StoredOrder>,
) -> Result<Verdict, WriteError> {
    let Some(stored) = &existing else {
        return decide_and_commit(shared, inc, command, named, existing).await;
    };
    let span = telemetry::spans::order_command(
        inc.name.as_str(),
        stored.trace_ctx.as_deref(),
        &tracing::Span::current(),
    );
    let result = decide_and_commit(shared, inc, command, named, existing)
        .instrument(span.clone())
        .await;
    if let Err(WriteError::Conflict) = result {
        // Another writer (the order's own poll, another replica) committed between our
        // load and our write. This attempt changed nothing and has no state to report; the
        // caller decides again, in a new span of the order's trace.
        span.record("rampd.outcome", "conflict");
    }
    result
}

/// Decide the command against its order and commit the decision. A create runs at the
/// provider it names (`named`), else the tenant's, else the only one that serves its kind
/// (`Providers::choose`); a command on an existing order ignores `named`: an order never
/// changes provider.
async fn decide_and_commit(
    shared: &Shared,
    inc: &Incoming<'_>,
    command: Command,
    named: Option<ProviderName>,
    existing: Option<StoredOrder>,
) -> Result<Verdict, WriteError> {
    let now = Utc::now();
    let ctx = Ctx {
        now,
        jitter: rand::random(),
        policy: shared.cfg.orders.policy(),
    };
    let order_id = &inc.ids.order_id;
    let (decision, base) = match (command.target(), existing) {
        (Target::New(_), Some(stored)) => {
            return Ok(Verdict::Refused {
                code: RejectCode::OrderExists,
                reason: format!("order {order_id} already exists"),
                order_id: Some(stored.order.id.to_string()),
            });
        }
        (Target::New(req), None) => {
            let tenant = inc.record.tenant;
            let provider = match shared.providers.choose(tenant, req.kind(), named.as_ref()) {
                Ok(p) => p,
                Err(reason) => {
                    return Ok(Verdict::Refused {
                        code: RejectCode::InvalidField,
                        reason: format!("invalid provider: {reason}"),
                        order_id: None,
                    });
                }
            };
            let d = order::create(Uuid::now_v7(), tenant, order_id, provider, *req, &ctx);
            tracing::info!(order.id = %d.order.id, direction = d.order.direction().as_str(), provider = %d.order.provider.name, "order created");
            (d, None)
        }
        // The create may still be in flight on another replica.
        (_, None) if inc.delivered < 3 => return Ok(Verdict::NotYet),
        (_, None) => {
            return Ok(Verdict::Refused {
                code: RejectCode::OrderNotFound,
                reason: format!("no order {order_id} for this tenant"),
                order_id: None,
            });
        }
        (Target::Existing(input), Some(stored)) => {
            let id = stored.order.id.to_string();
            match order::decide(&stored.order, input, &ctx) {
                Err(rej) => {
                    return Ok(Verdict::Refused {
                        code: rej.code,
                        reason: rej.message,
                        order_id: Some(id),
                    });
                }
                Ok(d) if d.is_noop() => return Ok(Verdict::Unchanged { order_id: id }),
                Ok(d) => (d, Some(stored)),
            }
        }
    };
    let expected_version = base.as_ref().map(|b| b.version);
    let trace = telemetry::outgoing_trace_ctx(inc.trace);
    let (decision, committed) = commit_grouped(
        &shared.commits,
        OwnedWrite {
            expected_version,
            decision,
            command: Some(OwnedCommand::of(&inc.record)),
            trace_ctx: trace,
            now,
            release_lease: None,
        },
    )
    .await;
    match (committed, base) {
        (Ok(_), _) => {}
        (Err(e @ (WriteError::UtrInUse | WriteError::TxHashInUse)), Some(base)) => {
            let held = payment_refs::Held {
                base: &base,
                attempted: &decision,
                error: &e,
            };
            return match payment_refs::contested(shared, inc, held, &ctx).await? {
                Some(verdict) => Ok(verdict),
                None => Err(e),
            };
        }
        (Err(e), _) => return Err(e),
    }
    if let Some(next) = &decision.spawned {
        tracing::info!(order.id = %next.order.id, predecessor = %decision.order.id, "successor order created for a late UTR");
    }
    Ok(Verdict::Committed)
}

/// Record what did not change an order (a no-op, a refusal with its event) and choose
/// how to answer the message.
async fn conclude(
    shared: &Shared,
    inc: &Incoming<'_>,
    verdict: Verdict,
) -> Result<Outcome, sea_orm::DbErr> {
    let now = Utc::now();
    meters::command(inc.name.as_str(), verdict.label());
    let trace = telemetry::outgoing_trace_ctx(inc.trace);
    match verdict {
        Verdict::Committed => {
            // Its events went through the group commit, which sees to the relay.
            shared.wake.tasks.notify_one();
            shared.wake_webhooks();
            return Ok(Outcome::Ack);
        }
        Verdict::Contested => {}
        Verdict::NotYet => return Ok(Outcome::Retry(Duration::from_secs(1))),
        Verdict::Unchanged { order_id } => {
            record_unchanged(
                &shared.db,
                &inc.record,
                Some(&order_id),
                None,
                trace.as_deref(),
                now,
            )
            .await?;
        }
        Verdict::Refused {
            code,
            reason,
            order_id,
        } => {
            tracing::info!(code = code.as_str(), "command rejected");
            let event = rejected_event(inc, code, reason, now);
            let rejection = Some((direction(inc.name), &event));
            record_unchanged(
                &shared.db,
                &inc.record,
                order_id.as_deref(),
                rejection,
                trace.as_deref(),
                now,
            )
            .await?;
        }
    }
    shared.wake_all();
    Ok(Outcome::Ack)
}

/// The `command_rejected` event answering `inc`.
fn rejected_event(
    inc: &Incoming<'_>,
    code: RejectCode,
    reason: String,
    now: chrono::DateTime<Utc>,
) -> CommandRejected {
    CommandRejected {
        event_id: Uuid::now_v7().to_string(),
        event_type: COMMAND_REJECTED.into(),
        tenant: inc.record.tenant.to_string(),
        command: inc.name.as_str().into(),
        command_id: inc.ids.command_id.clone(),
        order_id: inc.ids.order_id.clone(),
        code: code.as_str().into(),
        reason,
        occurred_at: now,
    }
}

/// The `<direction>` part of a command's rejection subject.
fn direction(name: CommandName) -> &'static str {
    match name {
        CommandName::OnrampCreate | CommandName::OnrampUtr => "onramp",
        CommandName::MintCreate => "mint",
        CommandName::RedeemCreate | CommandName::RedeemPayout => "redeem",
        CommandName::OfframpCreate | CommandName::OfframpTxHash => "offramp",
        CommandName::OrderCancel => "order",
    }
}

/// Refuse a command whose `Nats-Msg-Id` is not `<tenant>.<command_id>`: answer it with
/// `command_rejected` / `msg_id_mismatch`, count it and warn (naming neither the message
/// id nor the body). Nothing goes to the inbox: the refusal is of the envelope, so the
/// command id stays free for the same command sent with the right message id.
async fn refuse_msg_id(shared: &Shared, inc: &Incoming<'_>) -> Result<(), sea_orm::DbErr> {
    tracing::warn!(
        tenant = inc.record.tenant,
        command = inc.name.as_str(),
        "command refused: its Nats-Msg-Id is not <tenant>.<command_id>"
    );
    meters::command(inc.name.as_str(), "msg_id_mismatch");
    announce(
        shared,
        inc,
        RejectCode::MsgIdMismatch,
        "Nats-Msg-Id must be <tenant>.<command_id> of this command",
    )
    .await
}

/// Refuse a command whose id this tenant used before for a different body (an
/// idempotency key sent with other parameters). The inbox keeps the first command's row;
/// the refusal is announced only, and every delivery of the reused id is answered.
async fn refuse_reused_id(shared: &Shared, inc: &Incoming<'_>) -> Result<(), sea_orm::DbErr> {
    tracing::info!(
        code = RejectCode::CommandIdReused.as_str(),
        "command rejected: its id was used before for a different command"
    );
    meters::command(inc.name.as_str(), "rejected");
    announce(
        shared,
        inc,
        RejectCode::CommandIdReused,
        "this command_id was used before for a different command; send a new command_id",
    )
    .await
}

/// Answer `inc` with a `command_rejected` event that is not recorded in the inbox.
async fn announce(
    shared: &Shared,
    inc: &Incoming<'_>,
    code: RejectCode,
    reason: &str,
) -> Result<(), sea_orm::DbErr> {
    let now = Utc::now();
    let event = rejected_event(inc, code, reason.into(), now);
    let trace = telemetry::outgoing_trace_ctx(inc.trace);
    announce_rejection(
        &shared.db,
        direction(inc.name),
        &event,
        trace.as_deref(),
        now,
    )
    .await?;
    shared.wake_all();
    Ok(())
}

impl Verdict {
    fn label(&self) -> &'static str {
        match self {
            Verdict::Committed => "accepted",
            Verdict::Unchanged { .. } => "unchanged",
            Verdict::Refused { .. } => "rejected",
            Verdict::NotYet => "not_yet",
            Verdict::Contested => "rejected",
        }
    }
}

/// Count dead letters (the other outcomes are counted where they are known).
fn meters_for_outcome(subject: &str, outcome: &Outcome) {
    if let Outcome::DeadLetter(_) = outcome {
        let command = route(subject).map_or("unknown", |(_, name)| name.as_str());
        meters::command(command, "dead_lettered");
    }
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
        assert_eq!(
            route("ramp.cmd.acme.offramp.txhash"),
            Some(("acme", CommandName::OfframpTxHash))
        );
        assert_eq!(route("ramp.cmd.acme.onramp.delete"), None);
        assert_eq!(route("ramp.cmd..onramp.create"), None);
        assert_eq!(route("ramp.evt.acme.onramp.create"), None);
    }
}
