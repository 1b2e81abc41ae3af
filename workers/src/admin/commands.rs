//! `rampd commands show ID`: what became of a command, by its `command_id`: the inbox row
//! (outcome, reason, order) and the `command.rejected` events that answered it (a command
//! refused for its envelope, such as a wrong `Nats-Msg-Id` or a reused id, has only those).

use chrono::{DateTime, Utc};
use clap::Subcommand;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::Value;

use crate::storage::entities::{orders, outbox, processed_commands as inbox};

#[derive(Debug, Subcommand)]
pub enum CommandsCmd {
    /// A command by its `command_id`: outcome, reason, order, and the rejections sent.
    Show {
        /// The command's `command_id`.
        id: String,
        /// Only this tenant's command with that id.
        #[arg(long)]
        tenant: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct Seen {
    tenant: String,
    command_id: String,
    command: String,
    outcome: String,
    reason: Option<String>,
    /// The rampd order id and the client's order id.
    order: Option<String>,
    order_id: Option<String>,
    order_state: Option<String>,
    processed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct Found {
    inbox: Vec<Seen>,
    /// `command.rejected` events that name the command (while the outbox keeps them).
    rejections: Vec<Value>,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Run one `commands` command; returns whether the command was found.
pub async fn run(
    db: &DatabaseConnection,
    cmd: CommandsCmd,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let CommandsCmd::Show { id, tenant, json } = cmd;
    let mut q = inbox::Entity::find().filter(inbox::Column::CommandId.eq(id.clone()));
    if let Some(t) = &tenant {
        q = q.filter(inbox::Column::Tenant.eq(t.clone()));
    }
    let mut seen = Vec::new();
    for row in q.order_by_asc(inbox::Column::ProcessedAt).all(db).await? {
        let order = match &row.order_id {
            Some(o) => orders::Entity::find_by_id(o.clone()).one(db).await?,
            None => None,
        };
        seen.push(Seen {
            tenant: row.tenant,
            command_id: row.command_id,
            command: row.command_type,
            outcome: row.outcome,
            reason: row.reason,
            order: row.order_id,
            order_id: order.as_ref().map(|o| o.client_order_id.clone()),
            order_state: order.map(|o| o.state),
            processed_at: at(row.processed_at),
        });
    }
    // The events are stored as compact JSON: find the rejections that name this id.
    let needle = format!("\"command_id\":{}", serde_json::to_string(&id)?);
    let mut rejections = Vec::new();
    for e in outbox::Entity::find()
        .filter(outbox::Column::Subject.like("%.command_rejected"))
        .filter(outbox::Column::Payload.contains(&needle))
        .order_by_asc(outbox::Column::CreatedAt)
        .all(db)
        .await?
    {
        let body: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
        if body["command_id"] == id.as_str()
            && tenant.as_deref().is_none_or(|t| body["tenant"] == t)
        {
            rejections.push(body);
        }
    }
    let found = !seen.is_empty() || !rejections.is_empty();
    if json {
        let f = Found {
            inbox: seen,
            rejections,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&f)?)?;
        return Ok(found);
    }
    if !found {
        writeln!(
            out,
            "no command {id}{} in the inbox or among the rejections kept",
            tenant
                .map(|t| format!(" for tenant {t}"))
                .unwrap_or_default()
        )?;
        return Ok(false);
    }
    for s in &seen {
        writeln!(
            out,
            "command {} {} (tenant {}) {} at {}{}",
            s.command_id,
            s.command,
            s.tenant,
            s.outcome,
            s.processed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            s.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )?;
        match (&s.order, &s.order_id) {
            (Some(o), Some(client)) => writeln!(
                out,
                "  order {o} ({client}), now {}",
                s.order_state.as_deref().unwrap_or("?")
            )?,
            (Some(o), None) => writeln!(out, "  order {o}")?,
            _ => writeln!(out, "  no order")?,
        }
    }
    for r in &rejections {
        writeln!(
            out,
            "rejected {} {} (tenant {}) at {}: {} {}",
            r["command_id"].as_str().unwrap_or(""),
            r["command"].as_str().unwrap_or(""),
            r["tenant"].as_str().unwrap_or(""),
            r["occurred_at"].as_str().unwrap_or(""),
            r["code"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or("")
        )?;
    }
    Ok(true)
}
