//! Reading orders for operators: find one (by rampd id or client order id), its timeline,
//! and filtered lists. Read-only; nothing here prints personal data (the order's request,
//! with the user's contact and payment details, is never shown).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rampd_domain::Direction;
use rampd_domain::order::OrderState;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::storage::entities::{
    order_events, orders, outbox, processed_commands, scheduled_tasks as tasks, webhook_deliveries,
};
use crate::telemetry::context::trace_id;

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("no order {0}")]
    NotFound(String),
    #[error("client order id {id} exists for several tenants ({tenants}); pass --tenant")]
    Ambiguous { id: String, tenants: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Find an order by its rampd id, else by the client's order id (within `tenant` if given).
pub async fn find(
    db: &DatabaseConnection,
    id: &str,
    tenant: Option<&str>,
) -> Result<orders::Model, FindError> {
    if let Some(o) = orders::Entity::find_by_id(id.to_string()).one(db).await?
        && tenant.is_none_or(|t| t == o.tenant)
    {
        return Ok(o);
    }
    let mut q = orders::Entity::find().filter(orders::Column::ClientOrderId.eq(id));
    if let Some(t) = tenant {
        q = q.filter(orders::Column::Tenant.eq(t));
    }
    let mut found = q.limit(10).all(db).await?;
    match found.len() {
        0 => Err(FindError::NotFound(id.to_string())),
        1 => Ok(found.remove(0)),
        _ => Err(FindError::Ambiguous {
            id: id.to_string(),
            tenants: found
                .iter()
                .map(|o| o.tenant.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// What an operator sees of an order (no personal data).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub tenant: String,
    pub order_id: String,
    pub direction: String,
    pub state: String,
    pub flagged: bool,
    pub attention: Option<String>,
    pub reason: Option<String>,
    pub provider: String,
    pub provider_order_id: Option<String>,
    pub provider_status: Option<String>,
    pub version: i64,
    /// The expired order whose late UTR this order took over, or the order that took over
    /// this one's.
    pub predecessor: Option<String>,
    pub successor: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub trace_id: Option<String>,
}

impl Summary {
    pub fn of(o: &orders::Model) -> Summary {
        let data: Value = serde_json::from_str(&o.data).unwrap_or(Value::Null);
        let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
        Summary {
            id: o.id.clone(),
            tenant: o.tenant.clone(),
            order_id: o.client_order_id.clone(),
            direction: o.direction.clone(),
            state: o.state.clone(),
            flagged: o.flagged,
            attention: text("attention"),
            reason: text("reason"),
            provider: o.provider.clone(),
            provider_order_id: o.provider_order_id.clone(),
            provider_status: text("provider_status"),
            version: o.version,
            predecessor: text("predecessor"),
            successor: text("successor"),
            created_at: at(o.created_at),
            updated_at: at(o.updated_at),
            trace_id: trace_of(o.trace_ctx.as_deref()),
        }
    }
}

/// The order's drive task as an operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub order_id: String,
    pub kind: String,
    pub status: String,
    pub run_at: DateTime<Utc>,
    pub attempt: i32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl TaskView {
    pub fn of(t: &tasks::Model) -> TaskView {
        TaskView {
            order_id: t.order_id.clone(),
            kind: t.kind.clone(),
            status: t.status.clone(),
            run_at: at(t.run_at),
            attempt: t.attempt,
            lease_owner: t.lease_owner.clone(),
            lease_until: t.lease_until.map(at),
            last_error: t.last_error.clone(),
        }
    }
}

/// One line of an order's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    /// `state`, `command`, `provider`, `operator`, `step`, `event` or `webhook`.
    pub category: &'static str,
    pub what: String,
    pub detail: Value,
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// One line: why the order is where it is (see [`why`]).
    pub why: String,
    pub order: Summary,
    pub tasks: Vec<TaskView>,
    pub timeline: Vec<Entry>,
}

/// History kinds that record a provider call's outcome.
const PROVIDER_KINDS: [&str; 15] = [
    "kyc_checked",
    "payment_method_linked",
    "payment_method_link_pending",
    "payment_method_link_failed",
    "quoted",
    "created",
    "found_after_interrupted_create",
    "not_found_after_interrupted_create",
    "payment_ref_submitted",
    "payment_ref_found_after_interrupted_submit",
    "payment_ref_not_found_after_interrupted_submit",
    "provider_has_payment_ref",
    "provider_status",
    "unknown_provider_status",
    "provider_call_failed",
];

/// Everything that happened to an order, oldest first: its history (state changes,
/// provider call outcomes, operator actions), the commands that named it (also the
/// refused ones), the events published for it and its webhook deliveries.
pub async fn timeline(db: &DatabaseConnection, o: &orders::Model) -> Result<Timeline, DbErr> {
    let mut entries = Vec::new();
    let history = order_events::Entity::find()
        .filter(order_events::Column::OrderId.eq(o.id.clone()))
        .order_by_asc(order_events::Column::Seq)
        .all(db)
        .await?;
    for h in history {
        let detail: Value = serde_json::from_str(&h.detail).unwrap_or(Value::Null);
        let (category, what) = match (&h.from_state, &h.to_state) {
            (Some(from), Some(to)) => ("state", format!("{from} -> {to}")),
            _ if h.kind == "operator_action" => ("operator", h.kind.clone()),
            // The order's own creation (the provider's order creation names its id).
            _ if h.kind == "created" && detail.get("provider_order_id").is_none() => {
                ("step", "order created".to_string())
            }
            _ if PROVIDER_KINDS.contains(&h.kind.as_str()) => ("provider", h.kind.clone()),
            _ => ("step", h.kind.clone()),
        };
        let mut detail = detail;
        if let (Some(c), Some(map)) = (&h.command_id, detail.as_object_mut()) {
            map.insert("command_id".into(), json!(c));
        }
        entries.push(Entry {
            at: at(h.created_at),
            category,
            what,
            detail,
            trace_id: trace_of(h.trace_ctx.as_deref()),
        });
    }
    let commands = processed_commands::Entity::find()
        .filter(processed_commands::Column::OrderId.eq(o.id.clone()))
        .all(db)
        .await?;
    for c in commands {
        entries.push(Entry {
            at: at(c.processed_at),
            category: "command",
            what: format!("{} {}", c.command_type, c.outcome),
            detail: without_nulls(json!({ "command_id": c.command_id, "reason": c.reason })),
            trace_id: None,
        });
    }
    let events = outbox::Entity::find()
        .filter(outbox::Column::OrderId.eq(o.id.clone()))
        .all(db)
        .await?;
    for e in events {
        let body: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
        entries.push(Entry {
            at: at(e.created_at),
            category: "event",
            what: format!(
                "{} {}",
                body["type"].as_str().unwrap_or("event"),
                body["state"].as_str().unwrap_or("")
            )
            .trim_end()
            .to_string(),
            detail: without_nulls(json!({
                "event_id": e.id,
                "command_id": body["command_id"],
                "subject": e.subject,
                "sequence": body["sequence"],
                "published_at": e.published_at.map(at),
                "attempts": e.attempts,
            })),
            trace_id: trace_of(e.trace_ctx.as_deref()),
        });
    }
    let deliveries = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::OrderId.eq(o.id.clone()))
        .all(db)
        .await?;
    for d in deliveries {
        entries.push(Entry {
            at: at(d.created_at),
            category: "webhook",
            what: format!("{} {}", d.event_type, d.status),
            detail: without_nulls(json!({
                "webhook_id": d.id,
                "endpoint": d.endpoint_id,
                "attempts": d.attempt,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "next_attempt_at": (d.status == "pending").then(|| at(d.run_at)),
                "delivered_at": d.delivered_at.map(at),
            })),
            trace_id: trace_of(d.trace_ctx.as_deref()),
        });
    }
    name_command_traces(&mut entries);
    // Stable: equal times keep their source order (history by seq first).
    entries.sort_by_key(|e| e.at);
    let tasks = tasks::Entity::find()
        .filter(tasks::Column::OrderId.eq(o.id.clone()))
        .all(db)
        .await?;
    let mut t = Timeline {
        why: String::new(),
        order: Summary::of(o),
        tasks: tasks.iter().map(TaskView::of).collect(),
        timeline: entries,
    };
    t.why = why(&t);
    Ok(t)
}

/// Why the order is where it is, in one line: its state and since when, what it waits
/// for, when its next step runs, and its last failure.
pub fn why(t: &Timeline) -> String {
    let o = &t.order;
    let ts = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let arrow = format!("-> {}", o.state);
    let since = t
        .timeline
        .iter()
        .rev()
        .find(|e| e.category == "state" && e.what.ends_with(&arrow))
        .map_or(o.created_at, |e| e.at);
    let ended = OrderState::parse(&o.state).is_some_and(|s| s.is_terminal());
    let waiting = if o.flagged {
        format!(
            "waiting for a person: {}",
            o.attention.as_deref().unwrap_or("flagged")
        )
    } else if ended {
        format!(
            "ended{}",
            o.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    } else {
        match o.state.as_str() {
            "preparing" => {
                "preparing the provider order (login, KYC, payment method, quote, create)".into()
            }
            "kyc_required" => "waiting for the user to finish KYC".into(),
            "awaiting_payment" if o.direction == "offramp" => {
                "waiting for the user's tokens and transaction hash".into()
            }
            "awaiting_payment" => "waiting for the user's payment and UTR".into(),
            other => format!(
                "waiting for the provider (status {})",
                o.provider_status.as_deref().unwrap_or(other)
            ),
        }
    };
    let mut line = format!("{} since {}: {waiting}", o.state, ts(since));
    match t.tasks.iter().find(|k| k.status != "done") {
        Some(k) => {
            line.push_str(&format!("; next step ({}) at {}", k.kind, ts(k.run_at)));
            if let Some(owner) = &k.lease_owner {
                line.push_str(&format!(", running on {owner}"));
            }
        }
        None if !ended => line.push_str("; no step scheduled"),
        None => {}
    }
    if let Some(f) = t
        .timeline
        .iter()
        .rev()
        .find(|e| e.what == "provider_call_failed")
    {
        let part = |k: &str| {
            f.detail
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        line.push_str(&format!(
            "; last failure {} {} {}: {}",
            ts(f.at),
            part("action"),
            part("kind"),
            part("message")
        ));
    }
    line
}

/// Drop the keys that have no value, so the timeline shows what is known.
fn without_nulls(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
    v
}

/// The inbox keeps no trace context; a command's trace is the one its history rows or its
/// events (a refusal's, too) were written with.
fn name_command_traces(entries: &mut [Entry]) {
    let command_of = |e: &Entry| e.detail.get("command_id")?.as_str().map(str::to_string);
    let traces: HashMap<String, String> = entries
        .iter()
        .filter(|e| e.category != "command")
        .filter_map(|e| Some((command_of(e)?, e.trace_id.clone()?)))
        .collect();
    for e in entries.iter_mut().filter(|e| e.category == "command") {
        e.trace_id = command_of(e).and_then(|c| traces.get(&c).cloned());
    }
}

/// `orders list` filters; all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<OrderState>,
    pub tenant: Option<String>,
    pub direction: Option<Direction>,
    pub flagged: bool,
    /// Live (not terminal) orders untouched for at least this long.
    pub stuck_for: Option<Duration>,
    pub limit: u64,
}

/// States after which nothing happens to an order.
pub fn terminal_states() -> Vec<&'static str> {
    OrderState::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str())
        .collect()
}

pub async fn list(
    db: &DatabaseConnection,
    f: &Filter,
    now: DateTime<Utc>,
) -> Result<Vec<Summary>, DbErr> {
    let mut cond = Condition::all();
    if let Some(s) = &f.state {
        cond = cond.add(orders::Column::State.eq(s.as_str()));
    }
    if let Some(t) = &f.tenant {
        cond = cond.add(orders::Column::Tenant.eq(t.clone()));
    }
    if let Some(d) = &f.direction {
        cond = cond.add(orders::Column::Direction.eq(d.as_str()));
    }
    if f.flagged {
        cond = cond.add(orders::Column::Flagged.eq(true));
    }
    if let Some(d) = f.stuck_for {
        let cutoff = now.timestamp_millis() - d.as_millis() as i64;
        cond = cond
            .add(orders::Column::State.is_not_in(terminal_states()))
            .add(orders::Column::UpdatedAt.lte(cutoff));
    }
    let rows = orders::Entity::find()
        .filter(cond)
        .order_by_asc(orders::Column::UpdatedAt)
        .limit(f.limit.max(1))
        .all(db)
        .await?;
    Ok(rows.iter().map(Summary::of).collect())
}

/// Tasks not done, most overdue first.
pub async fn tasks(
    db: &DatabaseConnection,
    due_only: bool,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<TaskView>, DbErr> {
    let mut q = tasks::Entity::find().filter(tasks::Column::Status.ne("done"));
    if due_only {
        q = q.filter(tasks::Column::RunAt.lte(now.timestamp_millis()));
    }
    let rows = q
        .order_by_asc(tasks::Column::RunAt)
        .limit(limit.max(1))
        .all(db)
        .await?;
    Ok(rows.iter().map(TaskView::of).collect())
}

pub fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn trace_of(trace_ctx: Option<&str>) -> Option<String> {
    trace_ctx.and_then(trace_id)
}

#[cfg(test)]
mod why_tests {
    use super::*;

    fn t(state: &str, flagged: bool) -> Timeline {
        let at0 = Utc.timestamp_millis_opt(1_764_547_200_000).unwrap();
        Timeline {
            why: String::new(),
            order: Summary {
                id: "r-1".into(),
                tenant: "acme".into(),
                order_id: "o-1".into(),
                direction: "onramp".into(),
                state: state.into(),
                flagged,
                attention: flagged.then(|| "utr_reused".into()),
                reason: None,
                provider: "onmeta".into(),
                provider_order_id: None,
                provider_status: Some("fiatReceived".into()),
                version: 3,
                predecessor: None,
                successor: None,
                created_at: at0,
                updated_at: at0,
                trace_id: None,
            },
            tasks: vec![TaskView {
                order_id: "r-1".into(),
                kind: "drive".into(),
                status: "pending".into(),
                run_at: at0 + chrono::Duration::seconds(90),
                attempt: 2,
                lease_owner: None,
                lease_until: None,
                last_error: None,
            }],
            timeline: vec![
                Entry {
                    at: at0 + chrono::Duration::seconds(10),
                    category: "state",
                    what: format!("preparing -> {state}"),
                    detail: Value::Null,
                    trace_id: None,
                },
                Entry {
                    at: at0 + chrono::Duration::seconds(30),
                    category: "provider",
                    what: "provider_call_failed".into(),
                    detail: json!({"action": "poll_status", "kind": "Transient", "message": "HTTP 503"}),
                    trace_id: None,
                },
            ],
        }
    }

    #[test]
    fn one_line_says_why() {
        assert_eq!(
            why(&t("processing", false)),
            "processing since 2025-12-01T00:00:10Z: waiting for the provider (status fiatReceived); \
             next step (drive) at 2025-12-01T00:01:30Z; \
             last failure 2025-12-01T00:00:30Z poll_status Transient: HTTP 503"
        );
        assert!(why(&t("awaiting_payment", true)).contains(": waiting for a person: utr_reused;"));
        let mut ended = t("completed", false);
        ended.tasks.clear();
        ended.timeline.pop();
        assert_eq!(why(&ended), "completed since 2025-12-01T00:00:10Z: ended");
        let mut stuck = t("kyc_required", false);
        stuck.tasks.clear();
        assert!(why(&stuck).contains("waiting for the user to finish KYC; no step scheduled;"));
    }
}
