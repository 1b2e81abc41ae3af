//! What a write puts in the database, as data: the rows of one decision (or of one quiet
//! poll's reschedule), built without a database, so that many of them can be written
//! together by one statement per table ([`super::apply`]).
//!
//! A plan is pure: ids, the clock and the bodies are its inputs or are fixed when it is
//! built, never read while it is written, so writing it twice (a batch written again
//! after a batch-mate failed) writes the same rows.

use chrono::{DateTime, Utc};
use rampd_domain::Direction;
use rampd_domain::command_identity::Fingerprint;
use rampd_domain::event::{CommandRejected, order_event, subject_suffix};
use rampd_domain::order::{Decision, NextRun};
use uuid::Uuid;

use super::entities::{
    order_events, orders, outbox, processed_commands, scheduled_tasks, webhook_attempts,
};

/// The single task kind that drives an order forward.
pub const DRIVE: &str = "drive";

/// The command that caused a write, for the inbox.
#[derive(Debug, Clone)]
pub struct CommandRecord<'a> {
    pub tenant: &'a str,
    pub command_id: &'a str,
    pub command_type: &'a str,
    /// What the command said; `None` records it as unknown (see [`super::write::inbox_check`]).
    pub fingerprint: Option<&'a Fingerprint>,
}

impl CommandRecord<'_> {
    pub fn inbox_id(&self) -> String {
        inbox_id(self.tenant, self.command_id)
    }
}

pub fn inbox_id(tenant: &str, command_id: &str) -> String {
    format!("{tenant}:{command_id}")
}

pub struct Write<'a> {
    /// `None` inserts a new order.
    pub expected_version: Option<i64>,
    pub decision: &'a Decision,
    pub command: Option<CommandRecord<'a>>,
    pub trace_ctx: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// The lease token of the executor that made this decision; its lease on the order's
    /// task ends with the commit. Commands pass `None` and never touch a lease.
    pub release_lease: Option<&'a str>,
}

pub fn event_subject(tenant: &str, direction: Direction, event_type: &str) -> String {
    format!(
        "ramp.evt.{tenant}.{}.{}",
        direction.as_str(),
        subject_suffix(event_type)
    )
}

/// Everything one write puts in the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The orders written: the decision's own first, then the successor it creates.
    pub orders: Vec<OrderWrite>,
    /// History rows; `seq` holds the row's place among its order's new rows (1, 2, …):
    /// the apply adds the order's last stored number (`orders.history_seq` before it).
    pub history: Vec<order_events::Model>,
    /// Drive tasks to insert, or to update (`status`, `run_at`, `priority`,
    /// `updated_at`) where the order has one.
    pub tasks: Vec<scheduled_tasks::Model>,
    /// The lease to end on the order's drive task, and how to move the task.
    pub lease: Option<LeaseEnd>,
    /// Events for the outbox (NATS); those with a `delivery` also go to every endpoint of
    /// the tenant subscribed to their type.
    pub events: Vec<EventRow>,
    /// The inbox row of the command that caused the write.
    pub inbox: Option<processed_commands::Model>,
    /// Webhook attempts to record.
    pub attempts: Vec<webhook_attempts::Model>,
    /// A webhook delivery's state after an attempt.
    pub delivery: Option<DeliveryOutcome>,
}

/// A delivery's state after an attempt, written where the lease `lease_owner` still
/// holds it (else the delivery is another replica's now and this changes nothing), and
/// the end of that lease. `run_at` and `delivered_at` change only where given.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcome {
    pub id: String,
    pub lease_owner: String,
    pub attempt: i32,
    pub status: String,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub run_at: Option<i64>,
    pub delivered_at: Option<i64>,
}

/// One order row: inserted when `expected_version` is `None`, else updated where the stored
/// version is still `expected_version` (the row's `version` is then the new one).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderWrite {
    pub expected_version: Option<i64>,
    /// `history_seq` is the number of history rows this write adds: an inserted order's
    /// last number, or what an update adds to the stored one.
    pub row: orders::Model,
}

/// The end of the lease `token` holds on `order_id`'s drive task (nothing happens where
/// another holds it). With `moved`, the task's next run also moves, guarded by the task
/// row as it was claimed: a write to the task since (a command that wants the order
/// driven now) wins, and then only the lease ends.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseEnd {
    pub order_id: String,
    pub token: String,
    pub moved: Option<Move>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub run_at: i64,
    pub priority: i16,
    /// The task's `run_at` and `updated_at` as claimed.
    pub claimed_run_at: i64,
    pub claimed_updated_at: i64,
}

/// An outbox row, and for an order event the delivery to every subscribed endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub outbox: outbox::Model,
    /// `(tenant, event type)` of an order event, delivered as webhooks; `None` for an
    /// event only published on NATS (a command's rejection).
    pub delivery: Option<(String, String)>,
}

impl Plan {
    /// The ids of the orders this plan writes (its decision's, a successor's, a task's).
    pub fn order_ids(&self) -> impl Iterator<Item = &str> {
        self.orders
            .iter()
            .map(|o| o.row.id.as_str())
            .chain(self.lease.iter().map(|l| l.order_id.as_str()))
    }

    /// A quiet poll: move the leased drive task of `task` to `run_at` and end the lease.
    pub fn reschedule(
        task: &scheduled_tasks::Model,
        token: &str,
        run_at: i64,
        priority: i16,
    ) -> Plan {
        Plan {
            lease: Some(LeaseEnd {
                order_id: task.order_id.clone(),
                token: token.to_string(),
                moved: Some(Move {
                    run_at,
                    priority,
                    claimed_run_at: task.run_at,
                    claimed_updated_at: task.updated_at,
                }),
            }),
            ..Plan::default()
        }
    }
}

/// The rows of `w`: its order (and a successor), their history, drive tasks and events,
/// the inbox row of its command, and the end of its lease. With `refusal`, the command
/// is recorded as rejected and its `command_rejected` event queued on
/// `ramp.evt.<tenant>.<direction>.command_rejected`. `new_id` names the tasks and events.
pub fn decision(
    w: &Write<'_>,
    refusal: Option<(&str, &CommandRejected)>,
    new_id: &mut impl FnMut() -> Uuid,
) -> Result<Plan, serde_json::Error> {
    let mut plan = Plan::default();
    let d = w.decision;
    order_rows(&mut plan, d, w.expected_version, w, new_id)?;
    if let Some(spawned) = &d.spawned {
        // A successor order is created in the same transaction as the decision that
        // names it: both orders exist, each pointing at the other, or neither does.
        order_rows(&mut plan, spawned, None, w, new_id)?;
    }
    let id = d.order.id.to_string();
    // A decision that schedules the task ends the lease after its task write; one that
    // keeps the task as it is only ends the lease.
    if let Some(token) = w.release_lease {
        plan.lease = Some(LeaseEnd {
            order_id: id.clone(),
            token: token.to_string(),
            moved: None,
        });
    }
    if let Some(c) = &w.command {
        let (outcome, code) = match refusal {
            None => ("accepted", None),
            Some((_, rejected)) => ("rejected", Some(rejected.code.as_str())),
        };
        plan.inbox = Some(inbox_row(c, Some(&id), outcome, code, now_ms(w)));
        if let Some((direction, rejected)) = refusal {
            plan.events.push(rejection_row(
                direction,
                rejected,
                Some(&id),
                w.trace_ctx,
                now_ms(w),
            )?);
        }
    }
    Ok(plan)
}

fn now_ms(w: &Write<'_>) -> i64 {
    w.now.timestamp_millis()
}

/// The transaction that settles the order, as the `deposit_tx_hash` column holds it (unique
/// per provider): the user's deposit, or a mint's credit (lower case), so no two orders
/// can claim the same transfer.
fn settling_tx(o: &rampd_domain::order::Order) -> Option<String> {
    match (&o.deposit_tx_hash, &o.request) {
        (Some(h), _) => Some(h.as_str().to_string()),
        (None, rampd_domain::order::OrderRequest::Mint(_)) => {
            o.tx_hash.as_deref().map(str::to_ascii_lowercase)
        }
        (None, _) => None,
    }
}

/// One order's row, history, drive task and events.
fn order_rows(
    plan: &mut Plan,
    d: &Decision,
    expected_version: Option<i64>,
    w: &Write<'_>,
    new_id: &mut impl FnMut() -> Uuid,
) -> Result<(), serde_json::Error> {
    let o = &d.order;
    let now = now_ms(w);
    let id = o.id.to_string();
    let trace_ctx = w.trace_ctx.map(str::to_string);
    let command_id = w.command.as_ref().map(|c| c.command_id.to_string());
    plan.orders.push(OrderWrite {
        expected_version,
        row: orders::Model {
            id: id.clone(),
            tenant: o.tenant.clone(),
            client_order_id: o.client_order_id.clone(),
            direction: o.direction().as_str().into(),
            state: o.state.as_str().into(),
            data: serde_json::to_string(o)?,
            sm_version: o.sm_version,
            version: expected_version.map_or(1, |v| v + 1),
            provider: o.provider.name.to_string(),
            provider_order_id: o.provider_order_id.clone(),
            utr: o.utr.as_ref().map(|u| u.as_str().to_string()),
            deposit_tx_hash: settling_tx(o),
            flagged: o.attention.is_some(),
            trace_ctx: trace_ctx.clone(),
            created_at: now,
            updated_at: now,
            history_seq: i32::try_from(d.history.len()).unwrap_or(i32::MAX),
        },
    });
    for (place, h) in (1..).zip(&d.history) {
        let (from, to) = match h.transition {
            Some((from, to)) => (Some(from.as_str().into()), Some(to.as_str().into())),
            None => (None, None),
        };
        plan.history.push(order_events::Model {
            id: 0,
            order_id: id.clone(),
            seq: place,
            kind: h.kind.to_string(),
            from_state: from,
            to_state: to,
            detail: h.detail.to_string(),
            command_id: command_id.clone(),
            trace_ctx: trace_ctx.clone(),
            created_at: now,
        });
    }
    let task = match d.next_run {
        NextRun::Keep => None,
        NextRun::At(t) => Some(("ready", t.timestamp_millis())),
        NextRun::Done => Some(("done", now)),
    };
    if let Some((status, run_at)) = task {
        plan.tasks.push(scheduled_tasks::Model {
            id: new_id().to_string(),
            order_id: id.clone(),
            kind: DRIVE.into(),
            status: status.into(),
            run_at,
            priority: d.urgency.rank(),
            attempt: 0,
            lease_owner: None,
            lease_until: None,
            last_error: None,
            trace_ctx: trace_ctx.clone(),
            created_at: now,
            updated_at: now,
        });
    }
    for e in &d.events {
        let event = order_event(
            o,
            e.seq,
            &e.kind,
            new_id().to_string(),
            w.now,
            w.command.as_ref().map(|c| c.command_id),
        );
        // The JSON bytes are fixed here and never rebuilt, so retries resend the same
        // body under the same id.
        let body = serde_json::to_string(&event)?;
        plan.events.push(EventRow {
            outbox: outbox_row(
                event.event_id,
                event_subject(&event.tenant, event.direction, &event.event_type),
                body,
                Some(&id),
                w.trace_ctx,
                now,
            ),
            delivery: Some((event.tenant, event.event_type)),
        });
    }
    Ok(())
}

/// An unpublished outbox row.
pub fn outbox_row(
    id: String,
    subject: String,
    payload: String,
    order_id: Option<&str>,
    trace_ctx: Option<&str>,
    now: i64,
) -> outbox::Model {
    outbox::Model {
        id,
        subject,
        payload,
        order_id: order_id.map(str::to_string),
        trace_ctx: trace_ctx.map(str::to_string),
        created_at: now,
        published_at: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
        last_error: None,
    }
}

/// `rejected` as an outbox row on `ramp.evt.<tenant>.<direction>.command_rejected`.
pub fn rejection_row(
    direction: &str,
    rejected: &CommandRejected,
    order_id: Option<&str>,
    trace_ctx: Option<&str>,
    now: i64,
) -> Result<EventRow, serde_json::Error> {
    let body = serde_json::to_string(rejected)?;
    let subject = format!("ramp.evt.{}.{direction}.command_rejected", rejected.tenant);
    Ok(EventRow {
        outbox: outbox_row(
            rejected.event_id.clone(),
            subject,
            body,
            order_id,
            trace_ctx,
            now,
        ),
        delivery: None,
    })
}

/// The inbox row of `c`.
pub fn inbox_row(
    c: &CommandRecord<'_>,
    order_id: Option<&str>,
    outcome: &str,
    reason: Option<&str>,
    now: i64,
) -> processed_commands::Model {
    processed_commands::Model {
        id: c.inbox_id(),
        tenant: c.tenant.to_string(),
        command_id: c.command_id.to_string(),
        command_type: c.command_type.to_string(),
        order_id: order_id.map(str::to_string),
        outcome: outcome.to_string(),
        reason: reason.map(str::to_string),
        processed_at: now,
        fingerprint: c.fingerprint.map(|f| f.as_str().to_string()),
    }
}
