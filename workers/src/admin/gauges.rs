//! Gauges read at scrape time from the shared database (and the dead-letter stream), so
//! every replica reports the same, correct totals: orders by state, flagged orders, outbox
//! backlog, due tasks and the oldest one's lag, webhook backlog, dead letters.

use std::fmt::Write;

use chrono::Utc;
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

/// Render every database gauge.
pub async fn render(
    db: &DatabaseConnection,
    js: &async_nats::jetstream::Context,
    dead_letter_stream: &str,
) -> Result<String, DbErr> {
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
    let mut f = Family::new(
        &mut out,
        DEAD_LETTERS,
        "Dead-lettered items: webhook deliveries that gave up, commands on the DLQ stream",
    );
    f.sample(DEAD_LETTERS, &[("kind", "webhook")], dead_webhooks as f64);
    // The stream is shared by every replica; a NATS hiccup leaves the sample out.
    if let Ok(mut stream) = js.get_stream(dead_letter_stream).await
        && let Ok(info) = stream.info().await
    {
        f.sample(
            DEAD_LETTERS,
            &[("kind", "command")],
            info.state.messages as f64,
        );
    }
    Ok(out)
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
