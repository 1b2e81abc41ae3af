//! Gauges read at scrape time from the shared database (and the dead-letter stream), so
//! every replica reports the same, correct totals: orders by state, flagged orders, outbox
//! backlog, due tasks and the oldest one's lag, webhook backlog, dead letters.

use std::fmt::Write;

use chrono::Utc;
use futures::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    Select,
};

use crate::storage::entities::{orders, outbox, scheduled_tasks as tasks, webhook_deliveries};

pub const ORDERS: &str = "rampd_orders";
pub const FLAGGED: &str = "rampd_orders_flagged";
pub const OUTBOX_BACKLOG: &str = "rampd_outbox_backlog";
pub const OUTBOX_OLDEST: &str = "rampd_outbox_oldest_age_seconds";
pub const TASKS_DUE: &str = "rampd_tasks_due";
pub const TASK_OLDEST_DUE: &str = "rampd_task_oldest_due_seconds";
pub const WEBHOOK_BACKLOG: &str = "rampd_webhook_backlog";
pub const DEAD_LETTERS: &str = "rampd_dead_letters";
pub const NATS_PENDING: &str = "rampd_nats_pending_commands";
pub const GAUGES_UP: &str = "rampd_gauges_up";

/// One gauge family in Prometheus text format.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.out, "{name}{labels} {value}");
        self
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The streams and consumers the NATS gauges read.
#[derive(Debug, Clone)]
pub struct NatsSources {
    pub command_stream: String,
    pub dead_letter_stream: String,
    /// The intake's durable consumers are `<consumer>-<tenant>` (and `<consumer>`, the
    /// single consumer of earlier versions).
    pub consumer: String,
}

/// What the NATS reads of one scrape found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NatsGauges {
    /// Messages on the dead-letter stream.
    pub dead_commands: u64,
    /// `(consumer, num_pending)` of each intake consumer: commands not yet delivered.
    pub pending: Vec<(String, u64)>,
}

/// Render every gauge read at scrape time: the database's, the dead-letter stream's and
/// the intake consumers' pending commands, and `rampd_gauges_up{source}` saying whether
/// each read worked. A failed read leaves its gauges out (never a made-up 0) and is
/// logged at WARN; `rampd_gauges_up` is always there, so an alert can tell "nothing
/// wrong" from "cannot tell".
pub async fn render(
    db: &DatabaseConnection,
    js: &async_nats::jetstream::Context,
    nats: &NatsSources,
) -> String {
    let database = database_gauges(db).await;
    if let Err(e) = &database {
        tracing::warn!(error = %e, "reading gauges from the database failed");
    }
    let from_nats = nats_gauges(js, nats).await;
    if let Err(e) = &from_nats {
        tracing::warn!(error = %e, "reading gauges from NATS failed");
    }
    compose(database, from_nats.ok(), &nats.command_stream)
}

/// The text of one scrape's gauges from what each read returned.
fn compose(
    database: Result<(String, u64), DbErr>,
    nats: Option<NatsGauges>,
    command_stream: &str,
) -> String {
    let (mut out, dead_webhooks) = match &database {
        Ok((text, dead)) => (text.clone(), Some(*dead)),
        Err(_) => (String::new(), None),
    };
    if dead_webhooks.is_some() || nats.is_some() {
        let mut f = Family::new(
            &mut out,
            DEAD_LETTERS,
            "Dead-lettered items: webhook deliveries that gave up, commands on the DLQ stream",
        );
        if let Some(n) = dead_webhooks {
            f.sample(DEAD_LETTERS, &[("kind", "webhook")], n as f64);
        }
        if let Some(n) = &nats {
            f.sample(DEAD_LETTERS, &[("kind", "command")], n.dead_commands as f64);
        }
    }
    if let Some(n) = &nats {
        let mut f = Family::new(
            &mut out,
            NATS_PENDING,
            "Commands in NATS not yet delivered to rampd, per intake consumer",
        );
        for (consumer, pending) in &n.pending {
            f.sample(
                NATS_PENDING,
                &[("stream", command_stream), ("consumer", consumer)],
                *pending as f64,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        GAUGES_UP,
        "1 when this scrape read its gauges from the source, 0 when the read failed (its gauges are then left out)",
    );
    let up = |ok: bool| if ok { 1.0 } else { 0.0 };
    f.sample(GAUGES_UP, &[("source", "database")], up(database.is_ok()));
    f.sample(GAUGES_UP, &[("source", "nats")], up(nats.is_some()));
    out
}

/// The dead-letter stream's size and the intake consumers' pending counts.
async fn nats_gauges(
    js: &async_nats::jetstream::Context,
    n: &NatsSources,
) -> anyhow::Result<NatsGauges> {
    let mut dead = js.get_stream(&n.dead_letter_stream).await?;
    let dead_commands = dead.info().await?.state.messages;
    let commands = js.get_stream(&n.command_stream).await?;
    let mut pending = Vec::new();
    let mut consumers = commands.consumers();
    let lane_prefix = format!("{}-", n.consumer);
    while let Some(info) = consumers.next().await {
        let info = info?;
        if info.name == n.consumer || info.name.starts_with(&lane_prefix) {
            pending.push((info.name.clone(), info.num_pending));
        }
    }
    pending.sort();
    Ok(NatsGauges {
        dead_commands,
        pending,
    })
}

/// Every gauge read from the database, and the number of dead webhook deliveries (whose
/// family is shared with the dead-letter stream's count).
async fn database_gauges(db: &DatabaseConnection) -> Result<(String, u64), DbErr> {
    let now = Utc::now().timestamp_millis();
    let mut out = String::new();

    let by_state: Vec<(String, String, i64)> = orders::Entity::find()
        .select_only()
        .column(orders::Column::Direction)
        .column(orders::Column::State)
        .column_as(Expr::col(orders::Column::Id).count(), "n")
        .group_by(orders::Column::Direction)
        .group_by(orders::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let mut f = Family::new(&mut out, ORDERS, "Orders by direction and state");
    for (direction, state, n) in &by_state {
        f.sample(
            ORDERS,
            &[("direction", direction), ("state", state)],
            *n as f64,
        );
    }

    let flagged: Vec<(String, i64)> = orders::Entity::find()
        .select_only()
        .column(orders::Column::Direction)
        .column_as(Expr::col(orders::Column::Id).count(), "n")
        .filter(orders::Column::Flagged.eq(true))
        .group_by(orders::Column::Direction)
        .into_tuple()
        .all(db)
        .await?;
    let mut f = Family::new(&mut out, FLAGGED, "Orders flagged for a person");
    for direction in ["onramp", "offramp"] {
        let n = flagged
            .iter()
            .find(|(d, _)| d == direction)
            .map_or(0, |r| r.1);
        f.sample(FLAGGED, &[("direction", direction)], n as f64);
    }

    let pending = outbox::Entity::find().filter(outbox::Column::PublishedAt.is_null());
    let (backlog, oldest) = count_and_earliest(db, pending, outbox::Column::CreatedAt).await?;
    Family::new(&mut out, OUTBOX_BACKLOG, "Events not yet published to NATS").sample(
        OUTBOX_BACKLOG,
        &[],
        backlog as f64,
    );
    Family::new(
        &mut out,
        OUTBOX_OLDEST,
        "Age of the oldest unpublished event",
    )
    .sample(OUTBOX_OLDEST, &[], age_secs(now, oldest));

    let due = tasks::Entity::find()
        .filter(tasks::Column::Status.eq("ready"))
        .filter(tasks::Column::RunAt.lte(now));
    let (due_count, oldest_due) = count_and_earliest(db, due, tasks::Column::RunAt).await?;
    Family::new(&mut out, TASKS_DUE, "Tasks due now (claimed or not)").sample(
        TASKS_DUE,
        &[],
        due_count as f64,
    );
    Family::new(
        &mut out,
        TASK_OLDEST_DUE,
        "How long the most overdue task has been due",
    )
    .sample(TASK_OLDEST_DUE, &[], age_secs(now, oldest_due));

    let webhooks_pending = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::Status.eq("pending"))
        .count(db)
        .await?;
    Family::new(
        &mut out,
        WEBHOOK_BACKLOG,
        "Webhook deliveries not yet delivered",
    )
    .sample(WEBHOOK_BACKLOG, &[], webhooks_pending as f64);

    let dead_webhooks = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::Status.eq("dead"))
        .count(db)
        .await?;
    Ok((out, dead_webhooks))
}

/// How many rows `q` selects, and the smallest value of the epoch-ms column `at` among them.
async fn count_and_earliest<E>(
    db: &DatabaseConnection,
    q: Select<E>,
    at: E::Column,
) -> Result<(u64, Option<i64>), DbErr>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    let count = q.clone().count(db).await?;
    let earliest = q
        .select_only()
        .column_as(Expr::col(at).min(), "m")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    Ok((count, earliest))
}

fn age_secs(now: i64, oldest: Option<i64>) -> f64 {
    oldest.map_or(0.0, |t| Ord::max(now - t, 0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_is_said_not_hidden() {
        let nats = NatsGauges {
            dead_commands: 2,
            pending: vec![("rampd-acme".into(), 7)],
        };
        let all = compose(Ok(("db text\n".into(), 1)), Some(nats.clone()), "RAMP_CMD");
        assert!(all.starts_with("db text\n"), "{all}");
        for line in [
            "rampd_dead_letters{kind=\"webhook\"} 1",
            "rampd_dead_letters{kind=\"command\"} 2",
            "rampd_nats_pending_commands{stream=\"RAMP_CMD\",consumer=\"rampd-acme\"} 7",
            "rampd_gauges_up{source=\"database\"} 1",
            "rampd_gauges_up{source=\"nats\"} 1",
        ] {
            assert!(all.lines().any(|l| l == line), "{line} in {all}");
        }
        let no_db = compose(Err(DbErr::Custom("down".into())), Some(nats), "RAMP_CMD");
        assert!(!no_db.contains("db text"));
        assert!(
            !no_db.contains("kind=\"webhook\""),
            "no made-up zero: {no_db}"
        );
        assert!(no_db.contains("rampd_dead_letters{kind=\"command\"} 2"));
        assert!(no_db.contains("rampd_gauges_up{source=\"database\"} 0"));
        let nothing = compose(Err(DbErr::Custom("down".into())), None, "RAMP_CMD");
        assert!(!nothing.contains("rampd_dead_letters"), "{nothing}");
        assert!(nothing.contains("rampd_gauges_up{source=\"database\"} 0"));
        assert!(nothing.contains("rampd_gauges_up{source=\"nats\"} 0"));
        assert_eq!(nothing.matches("# TYPE").count(), 1, "{nothing}");
    }

    #[test]
    fn samples_are_prometheus_text() {
        let mut out = String::new();
        Family::new(&mut out, "x", "help")
            .sample("x", &[("state", "a\"b")], 2.0)
            .sample("x", &[], 0.5);
        assert_eq!(
            out,
            "# HELP x help\n# TYPE x gauge\nx{state=\"a\\\"b\"} 2\nx 0.5\n"
        );
        assert_eq!(age_secs(10_000, Some(4_000)), 6.0);
        assert_eq!(age_secs(10_000, None), 0.0);
    }
}
