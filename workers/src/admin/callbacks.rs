//! `rampd callbacks list`: the provider callbacks rampd received, newest first; by
//! default the ones for orders it does not know, which a person should look at (a
//! provider order of ours that rampd lost track of, or a misrouted callback).

use chrono::{DateTime, Utc};
use clap::Subcommand;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::storage::entities::provider_callbacks::{self as rows, UNKNOWN_ORDER};

#[derive(Debug, Subcommand)]
pub enum CallbacksCmd {
    /// Received callbacks, newest first.
    List {
        /// Only callbacks with this outcome (`all`: every one).
        #[arg(long, default_value = UNKNOWN_ORDER,
              value_parser = ["unknown_order", "applied", "no_change", "wrong_direction", "all"])]
        outcome: String,
        /// At most this many callbacks.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct Received {
    received_at: DateTime<Utc>,
    provider: String,
    provider_order_id: String,
    order_id: Option<String>,
    direction: String,
    status: String,
    outcome: String,
}

/// Run one `callbacks` command.
pub async fn run(
    db: &DatabaseConnection,
    cmd: CallbacksCmd,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let CallbacksCmd::List {
        outcome,
        limit,
        json,
    } = cmd;
    let mut q = rows::Entity::find();
    if outcome != "all" {
        q = q.filter(rows::Column::Outcome.eq(outcome));
    }
    let list: Vec<Received> = q
        .order_by_desc(rows::Column::ReceivedAt)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|r| Received {
            received_at: DateTime::from_timestamp_millis(r.received_at).unwrap_or_default(),
            provider: r.provider,
            provider_order_id: r.provider_order_id,
            order_id: r.order_id,
            direction: r.direction,
            status: r.status,
            outcome: r.outcome,
        })
        .collect();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(true);
    }
    let mut t = super::table::new([
        "RECEIVED",
        "PROVIDER",
        "PROVIDER ORDER",
        "SIDE",
        "STATUS",
        "OUTCOME",
        "ORDER",
    ]);
    for r in &list {
        let received = r
            .received_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        t.add_row([
            received.as_str(),
            &r.provider,
            &r.provider_order_id,
            &r.direction,
            &r.status,
            &r.outcome,
            r.order_id.as_deref().unwrap_or("-"),
        ]);
    }
    write!(out, "{}", super::table::render(&t))?;
    Ok(true)
}
