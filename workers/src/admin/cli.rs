//! `rampd orders …` and `rampd tasks …`: the operator commands. They read and write the
//! database named by the config (`DATABASE_URL`), like the workers do; actions go through
//! [`super::actions`], so they are recorded and announced like any other decision.

use chrono::Utc;
use clap::{Args, Subcommand};
use rampd_domain::Direction;
use rampd_domain::order::{OperatorAction, OrderState};
use sea_orm::DatabaseConnection;

use super::actions::{self, Done, Operator};
use super::orders::{self, Filter, Summary, TaskView, Timeline};
use super::{duration, table};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum OrdersCmd {
    /// An order's timeline: state changes, commands, provider call outcomes, events and
    /// webhook deliveries, with times and trace ids.
    Show {
        /// The rampd order id or the client's order id.
        id: String,
        /// The tenant whose client order id `ID` is (needed when two tenants use it).
        #[arg(long)]
        tenant: Option<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Orders matching every filter given, least recently updated first.
    List {
        /// Only orders in this state.
        #[arg(long, value_parser = state_parser())]
        state: Option<OrderState>,
        /// Only this tenant's orders.
        #[arg(long)]
        tenant: Option<String>,
        /// Only orders of this direction.
        #[arg(long, value_parser = direction_parser())]
        direction: Option<Direction>,
        /// Only orders flagged for a person.
        #[arg(long)]
        flagged: bool,
        /// Live orders not updated for this long (e.g. `30m`, `2h`, `1d`, `1h30m`).
        #[arg(long, value_parser = duration::parse)]
        stuck_for: Option<std::time::Duration>,
        /// At most this many orders.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the order's next step (status poll or retry) now instead of when it is due.
    RetryNow {
        /// The rampd order id or the client's order id.
        id: String,
        #[command(flatten)]
        who: Who<false>,
    },
    /// Cancel the order, where its state allows it (as an `order.cancel` command would).
    Cancel {
        /// The rampd order id or the client's order id.
        id: String,
        #[command(flatten)]
        who: Who<true>,
    },
    /// Clear the attention flag of an order a person has checked.
    Resolve {
        /// The rampd order id or the client's order id.
        id: String,
        #[command(flatten)]
        who: Who<true>,
    },
}

/// Who acts and why; `REQUIRED` makes `--reason` mandatory.
#[derive(Debug, Args)]
pub struct Who<const REQUIRED: bool> {
    /// The tenant whose client order id `ID` is (needed when two tenants use it).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Who is acting (recorded in the order's history and event). Default: `$USER`.
    #[arg(long)]
    pub by: Option<String>,
    /// Why (recorded in the order's history and event).
    #[arg(long, required = REQUIRED)]
    pub reason: Option<String>,
}

impl<const R: bool> Who<R> {
    fn operator(&self, default_reason: &str) -> Operator {
        Operator {
            by: self
                .by
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .filter(|b| !b.trim().is_empty())
                .unwrap_or_else(|| "operator".into()),
            reason: self.reason.clone().unwrap_or_else(|| default_reason.into()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TasksCmd {
    /// Tasks not yet done, most overdue first.
    List {
        /// Only tasks that are due now.
        #[arg(long)]
        due: bool,
        /// At most this many tasks.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Run one `orders` command; returns whether it succeeded.
pub async fn orders(
    db: &DatabaseConnection,
    cfg: &Config,
    cmd: OrdersCmd,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    match cmd {
        OrdersCmd::Show { id, tenant, json } => {
            let o = orders::find(db, &id, tenant.as_deref()).await?;
            let t = orders::timeline(db, &o).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&t)?)?;
            } else {
                print_timeline(out, &t)?;
            }
        }
        OrdersCmd::List {
            state,
            tenant,
            direction,
            flagged,
            stuck_for,
            limit,
            json,
        } => {
            let f = Filter {
                state,
                tenant,
                direction,
                flagged,
                stuck_for,
                limit,
            };
            let list = orders::list(db, &f, Utc::now()).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                print_list(out, &list)?;
            }
        }
        OrdersCmd::RetryNow { id, who } => {
            let op = who.operator("manual retry");
            return act(db, cfg, &id, &who, OperatorAction::RetryNow, &op, out).await;
        }
        OrdersCmd::Cancel { id, who } => {
            let op = who.operator("");
            return act(db, cfg, &id, &who, OperatorAction::Cancel, &op, out).await;
        }
        OrdersCmd::Resolve { id, who } => {
            let op = who.operator("");
            return act(db, cfg, &id, &who, OperatorAction::Resolve, &op, out).await;
        }
    }
    Ok(true)
}

async fn act<const R: bool>(
    db: &DatabaseConnection,
    cfg: &Config,
    id: &str,
    who: &Who<R>,
    action: OperatorAction,
    op: &Operator,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    match actions::apply(db, cfg, id, who.tenant.as_deref(), action, op).await {
        Ok(Done::Applied { order_id, state }) => {
            writeln!(
                out,
                "order {order_id}: {} recorded by {} (state {state})",
                action.as_str(),
                op.by
            )?;
            Ok(true)
        }
        Ok(Done::Nothing { order_id, why }) => {
            writeln!(out, "order {order_id}: nothing done: {why}")?;
            Ok(true)
        }
        Err(actions::ActionError::Refused(r)) => {
            writeln!(out, "order {id}: {} refused: {r}", action.as_str())?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Run one `tasks` command.
pub async fn tasks(
    db: &DatabaseConnection,
    cmd: TasksCmd,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let TasksCmd::List { due, limit, json } = cmd;
    let now = Utc::now();
    let list = orders::tasks(db, due, now, limit).await?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(true);
    }
    let mut t = table::new([
        "ORDER", "KIND", "STATUS", "RUN AT", "DUE FOR", "ATTEMPT", "LEASE",
    ]);
    for task in &list {
        let run_at = task
            .run_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let due = overdue(task, now);
        let attempt = task.attempt.to_string();
        t.add_row([
            task.order_id.as_str(),
            &task.kind,
            &task.status,
            &run_at,
            &due,
            &attempt,
            task.lease_owner.as_deref().unwrap_or("-"),
        ]);
    }
    write!(out, "{}", table::render(&t))?;
    Ok(true)
}

/// `--state`: one of the order states, listed in `--help`.
fn state_parser() -> impl clap::builder::TypedValueParser<Value = OrderState> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(OrderState::ALL.map(|s| s.as_str()))
        .map(|s| OrderState::parse(&s).expect("a listed state"))
}

/// `--direction`: `onramp` or `offramp`.
fn direction_parser() -> impl clap::builder::TypedValueParser<Value = Direction> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["onramp", "offramp"])
        .map(|s| Direction::parse(&s).expect("a listed direction"))
}

fn overdue(t: &TaskView, now: chrono::DateTime<Utc>) -> String {
    match (now - t.run_at).to_std() {
        Ok(late) if late.as_secs() > 0 => duration::format(late),
        _ => "-".into(),
    }
}

fn print_list(out: &mut impl std::io::Write, list: &[Summary]) -> std::io::Result<()> {
    let mut t = table::new([
        "ID", "TENANT", "ORDER ID", "DIR", "STATE", "FLAG", "UPDATED", "TRACE",
    ]);
    for o in list {
        let updated = o
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        t.add_row([
            o.id.as_str(),
            &o.tenant,
            &o.order_id,
            &o.direction,
            &o.state,
            if o.flagged { "yes" } else { "" },
            &updated,
            o.trace_id.as_deref().unwrap_or("-"),
        ]);
    }
    write!(out, "{}", table::render(&t))?;
    writeln!(out, "{} order(s)", list.len())
}

fn print_timeline(out: &mut impl std::io::Write, t: &Timeline) -> std::io::Result<()> {
    let o = &t.order;
    writeln!(out, "{}", t.why)?;
    writeln!(out, "order      {} ({} / {})", o.id, o.tenant, o.order_id)?;
    writeln!(
        out,
        "direction  {}   state {}   version {}",
        o.direction, o.state, o.version
    )?;
    if o.flagged {
        writeln!(
            out,
            "ATTENTION  {}",
            o.attention.as_deref().unwrap_or("flagged")
        )?;
    }
    if let Some(r) = &o.reason {
        writeln!(out, "reason     {r}")?;
    }
    if let Some(p) = &o.predecessor {
        writeln!(out, "successor of {p}")?;
    }
    if let Some(n) = &o.successor {
        writeln!(out, "succeeded by {n}")?;
    }
    writeln!(
        out,
        "provider   {} {} {}",
        o.provider,
        o.provider_order_id.as_deref().unwrap_or("-"),
        o.provider_status.as_deref().unwrap_or("")
    )?;
    writeln!(out, "trace      {}", o.trace_id.as_deref().unwrap_or("-"))?;
    for task in &t.tasks {
        writeln!(
            out,
            "task       {} {} run_at {} attempt {}{}",
            task.kind,
            task.status,
            task.run_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            task.attempt,
            task.lease_owner
                .as_deref()
                .map(|l| format!(" leased by {l}"))
                .unwrap_or_default()
        )?;
    }
    writeln!(out)?;
    let mut events = table::new(["AT", "CATEGORY", "WHAT", "TRACE", "DETAIL"]);
    for e in &t.timeline {
        let at = e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        events.add_row([
            at.as_str(),
            e.category,
            &e.what,
            e.trace_id.as_deref().map(short).unwrap_or("-"),
            &compact(&e.detail),
        ]);
    }
    write!(out, "{}", table::render(&events))
}

fn short(trace: &str) -> &str {
    &trace[..trace.len().min(32)]
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) if m.is_empty() => String::new(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Orders {
        #[command(subcommand)]
        cmd: OrdersCmd,
    }

    fn parse(args: &[&str]) -> Result<OrdersCmd, clap::Error> {
        Orders::try_parse_from(std::iter::once("orders").chain(args.iter().copied())).map(|o| o.cmd)
    }

    #[test]
    fn parses_the_operator_commands() {
        match parse(&[
            "list",
            "--state",
            "awaiting_payment",
            "--flagged",
            "--stuck-for",
            "30m",
            "--json",
        ])
        .unwrap()
        {
            OrdersCmd::List {
                state,
                flagged,
                stuck_for,
                json,
                ..
            } => {
                assert_eq!(state, Some(OrderState::AwaitingPayment));
                assert!(flagged && json);
                assert_eq!(stuck_for, Some(std::time::Duration::from_secs(1800)));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["list", "--stuck-for", "30"]).is_err(),
            "a duration needs a unit"
        );
        assert!(parse(&["list", "--state", "lost"]).is_err());
        assert!(parse(&["list", "--direction", "sideways"]).is_err());
        match parse(&["resolve", "o-1", "--by", "alice", "--reason", "checked"]).unwrap() {
            OrdersCmd::Resolve { id, who } => {
                assert_eq!(id, "o-1");
                assert_eq!(who.operator("").by, "alice");
                assert_eq!(who.operator("").reason, "checked");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["resolve", "o-1", "--by", "alice"]).is_err(),
            "resolve needs a reason"
        );
        assert!(parse(&["cancel", "o-1"]).is_err(), "cancel needs a reason");
        match parse(&["retry-now", "o-1"]).unwrap() {
            OrdersCmd::RetryNow { who, .. } => {
                assert_eq!(who.operator("manual retry").reason, "manual retry")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["show", "o-1", "--json"]).unwrap(),
            OrdersCmd::Show { json: true, .. }
        ));
    }
}
