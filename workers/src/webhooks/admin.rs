//! `rampd webhooks …`: endpoint management and replay, straight against the database.
//! Secrets are printed once, when created or rotated, and never again.

use chrono::{DateTime, Utc};
use rampd_domain::webhooks::events::{DisabledReason, ENDPOINT_DISABLED, EndpointDisabled};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use secrecy::SecretString;

use super::address_guard::literal_ip_refused;
use super::endpoints::{self, DISABLED, ENABLED, EndpointSpec, event_types, secret_or_generate};
use super::outcome::{DEAD, PENDING, SKIPPED, disable_endpoint, emit};
use super::vault::Vault;
use crate::config::Config;
use crate::storage::begin_write;
use crate::storage::entities::{
    orders, webhook_attempts as attempts, webhook_deliveries as deliveries,
    webhook_endpoints as eps,
};
use crate::storage::lease::{DELIVERIES, released};

#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCmd {
    /// Manage tenant endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Send deliveries again: same `webhook-id`, same body, a fresh retry ladder.
    Replay(DeliveryArgs),
    /// Show deliveries and every attempt (status or error, latency, response excerpt).
    Deliveries(DeliveryArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum EndpointCmd {
    /// Add an endpoint. Prints its id and its secret (shown this once).
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        url: String,
        /// Comma-separated event types: `*`, `order.*`, `order.status_changed`, …
        #[arg(long, default_value = "*")]
        events: String,
        /// Endpoint id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Use this `whsec_…` secret instead of generating one.
        #[arg(long, env = "RAMPD_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret_arg)]
        secret: Option<SecretString>,
    },
    /// List endpoints (never their secrets).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Stop sending to an endpoint; its deliveries are held until it is enabled.
    Disable { id: String },
    /// Send to an endpoint again. Tells how many deliveries it missed; `--replay` sends them.
    Enable {
        id: String,
        #[arg(long)]
        replay: bool,
    },
    /// Make a new current secret; the old one keeps signing beside it for the overlap.
    RotateSecret {
        id: String,
        /// Use this `whsec_…` secret instead of generating one.
        #[arg(long, env = "RAMPD_WEBHOOK_SECRET", hide_env_values = true, value_parser = secret_arg)]
        secret: Option<SecretString>,
        /// How long the previous secret keeps signing (default `webhooks.rotation_overlap_secs`).
        #[arg(long)]
        overlap_secs: Option<u64>,
    },
}

/// Which deliveries a command is about.
#[derive(Debug, clap::Args)]
pub struct DeliveryArgs {
    #[command(flatten)]
    pub what: Selection,
    /// With `--order`: the order id is the tenant's own (client) order id.
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Default, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// One delivery, by its `webhook-id` (`msg_…`).
    #[arg(long)]
    pub delivery: Option<String>,
    /// Every delivery of one order: its rampd order id, or with `--tenant` the client's.
    #[arg(long)]
    pub order: Option<String>,
    /// Every delivery dead-lettered at or after this time (RFC 3339).
    #[arg(long)]
    pub dead_since: Option<DateTime<Utc>>,
}

/// A secret from the command line, kept in a type that never prints it.
fn secret_arg(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_string()))
}

/// Run one command; returns what to print.
pub async fn execute(
    db: &DatabaseConnection,
    cfg: &Config,
    cmd: WebhooksCmd,
) -> anyhow::Result<String> {
    let now = Utc::now().timestamp_millis();
    let overlap_default = cfg.webhooks.rotation_overlap_secs;
    let vault = Vault::new(cfg.webhooks.secrets_key.as_ref())?;
    match cmd {
        WebhooksCmd::Endpoint(EndpointCmd::Add {
            tenant,
            url,
            events,
            id,
            secret,
        }) => {
            let secret = secret_or_generate(secret.as_ref())?;
            let id = id.unwrap_or_else(|| {
                format!("ep_{}", &uuid::Uuid::now_v7().simple().to_string()[..20])
            });
            let events: Vec<String> = events.split(',').map(|s| s.trim().to_string()).collect();
            let spec = EndpointSpec::parse(&id, &tenant, &url, &events, secret)?;
            if literal_ip_refused(&cfg.webhooks.address_policy()?, &spec.url) {
                anyhow::bail!(
                    "{url} is a restricted address; allow its network in webhooks.allow_networks first"
                );
            }
            if eps::Entity::find_by_id(id.clone()).one(db).await?.is_some() {
                anyhow::bail!("endpoint {id} already exists");
            }
            endpoints::upsert(db, &vault, &spec, "cli", now, 0).await?;
            Ok(format!(
                "endpoint {id} added for tenant {tenant}\nsecret: {}\n(store it now: it is not shown again)",
                spec.secret.expose_text()
            ))
        }
        WebhooksCmd::Endpoint(EndpointCmd::List { tenant }) => list(db, tenant, now).await,
        WebhooksCmd::Endpoint(EndpointCmd::Disable { id }) => {
            let row = find(db, &id).await?;
            let txn = begin_write(db).await?;
            if disable_endpoint(&txn, &id, DisabledReason::Operator, now).await? {
                let ev = EndpointDisabled {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    event_type: ENDPOINT_DISABLED.into(),
                    tenant: row.tenant.clone(),
                    endpoint_id: id.clone(),
                    reason: DisabledReason::Operator,
                    failing_since: None,
                    occurred_at: Utc::now(),
                };
                emit(&txn, &ev, None, None, now).await?;
            }
            txn.commit().await?;
            Ok(format!(
                "endpoint {id} disabled; its deliveries are held until it is enabled"
            ))
        }
        WebhooksCmd::Endpoint(EndpointCmd::Enable { id, replay }) => {
            find(db, &id).await?;
            eps::Entity::update_many()
                .col_expr(eps::Column::Status, Expr::value(ENABLED))
                .col_expr(
                    eps::Column::DisabledReason,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(eps::Column::DisabledAt, Expr::value(Option::<i64>::None))
                .col_expr(eps::Column::FailingSince, Expr::value(Option::<i64>::None))
                .col_expr(eps::Column::UpdatedAt, Expr::value(now))
                .filter(eps::Column::Id.eq(id.clone()))
                .exec(db)
                .await?;
            let missed = Condition::all()
                .add(deliveries::Column::EndpointId.eq(id.clone()))
                .add(deliveries::Column::Status.eq(SKIPPED));
            if replay {
                let n = requeue(db, missed, now).await?;
                Ok(format!(
                    "endpoint {id} enabled; {n} deliveries it missed while disabled are queued again"
                ))
            } else {
                let n = deliveries::Entity::find().filter(missed).count(db).await?;
                Ok(format!(
                    "endpoint {id} enabled; it missed {n} deliveries while disabled{}",
                    if n > 0 {
                        format!(" (send them with `rampd webhooks endpoint enable {id} --replay`)")
                    } else {
                        String::new()
                    }
                ))
            }
        }
        WebhooksCmd::Endpoint(EndpointCmd::RotateSecret {
            id,
            secret,
            overlap_secs,
        }) => {
            find(db, &id).await?;
            let secret = secret_or_generate(secret.as_ref())?;
            let overlap = overlap_secs.unwrap_or(overlap_default) as i64 * 1000;
            let txn = begin_write(db).await?;
            endpoints::rotate_in(&txn, &vault, &id, &secret, now, overlap).await?;
            txn.commit().await?;
            let until = DateTime::<Utc>::from_timestamp_millis(now + overlap).unwrap_or_default();
            Ok(format!(
                "endpoint {id}: new secret {}\n(store it now: it is not shown again)\nthe previous secret keeps signing until {}",
                secret.expose_text(),
                until.to_rfc3339()
            ))
        }
        WebhooksCmd::Replay(args) => {
            let (what, filter) = selected(db, &args).await?;
            let n = requeue(db, filter, now).await?;
            Ok(format!("{n} deliveries queued again ({what})"))
        }
        WebhooksCmd::Deliveries(args) => {
            let (_, filter) = selected(db, &args).await?;
            show(db, filter).await
        }
    }
}

/// The deliveries `args` name, and how to say so.
async fn selected(
    db: &DatabaseConnection,
    args: &DeliveryArgs,
) -> anyhow::Result<(String, Condition)> {
    let w = &args.what;
    if args.tenant.is_some() && w.order.is_none() {
        anyhow::bail!("--tenant goes with --order (the client's order id)");
    }
    Ok(match (&w.delivery, &w.order, w.dead_since) {
        (Some(d), _, _) => (
            format!("delivery {d}"),
            Condition::all().add(deliveries::Column::Id.eq(d.clone())),
        ),
        (_, Some(o), _) => (
            format!("order {o}"),
            of_order(db, o, args.tenant.as_deref()).await?,
        ),
        (_, _, Some(since)) => (
            format!("dead-lettered since {}", since.to_rfc3339()),
            Condition::all()
                .add(deliveries::Column::Status.eq(DEAD))
                .add(deliveries::Column::DeadAt.gte(since.timestamp_millis())),
        ),
        _ => anyhow::bail!("give --delivery, --order or --dead-since"),
    })
}

fn rfc3339_ms(t: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(t)
        .unwrap_or_default()
        .to_rfc3339()
}

/// The deliveries of one order: by rampd order id, or by the tenant's client order id.
async fn of_order(
    db: &DatabaseConnection,
    order: &str,
    tenant: Option<&str>,
) -> anyhow::Result<Condition> {
    let ids: Vec<String> = match tenant {
        None => vec![order.to_string()],
        Some(t) => {
            orders::Entity::find()
                .select_only()
                .column(orders::Column::Id)
                .filter(orders::Column::Tenant.eq(t))
                .filter(orders::Column::ClientOrderId.eq(order))
                .into_tuple()
                .all(db)
                .await?
        }
    };
    if ids.is_empty() {
        anyhow::bail!("no order {order} for tenant {}", tenant.unwrap_or_default());
    }
    Ok(Condition::all().add(deliveries::Column::OrderId.is_in(ids)))
}

/// Deliveries with their attempts, oldest first. The response excerpts were bounded and
/// redacted when stored.
async fn show(db: &DatabaseConnection, filter: Condition) -> anyhow::Result<String> {
    let ms = rfc3339_ms;
    let mut out = String::new();
    let rows = deliveries::Entity::find()
        .filter(filter)
        .order_by_asc(deliveries::Column::CreatedAt)
        .all(db)
        .await?;
    if rows.is_empty() {
        anyhow::bail!("no such deliveries");
    }
    for d in rows {
        out.push_str(&format!(
            "{}  endpoint {}  {}  {}  attempts {}  created {}\n",
            d.id,
            d.endpoint_id,
            d.event_type,
            d.status,
            d.attempt,
            ms(d.created_at)
        ));
        let tries = attempts::Entity::find()
            .filter(attempts::Column::DeliveryId.eq(d.id.clone()))
            .order_by_asc(attempts::Column::StartedAt)
            .all(db)
            .await?;
        for a in tries {
            let result = match (a.status_code, &a.error_kind) {
                (Some(c), _) => format!("HTTP {c}"),
                (None, Some(k)) => k.clone(),
                (None, None) => "-".into(),
            };
            out.push_str(&format!(
                "  #{} {} {} {} ms  {}\n",
                a.attempt,
                ms(a.started_at),
                result,
                a.latency_ms,
                a.response_excerpt.as_deref().unwrap_or("")
            ));
        }
    }
    Ok(out)
}

async fn find(db: &DatabaseConnection, id: &str) -> anyhow::Result<eps::Model> {
    eps::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no webhook endpoint {id}"))
}

/// Queue matching deliveries again with a fresh ladder, keeping id and body. A delivery
/// already pending is left alone (it may be in flight).
async fn requeue(db: &DatabaseConnection, filter: Condition, now: i64) -> anyhow::Result<u64> {
    let res = released(deliveries::Entity::update_many(), &DELIVERIES)
        .col_expr(deliveries::Column::Status, Expr::value(PENDING))
        .col_expr(deliveries::Column::Attempt, Expr::value(0))
        .col_expr(deliveries::Column::RunAt, Expr::value(now))
        .col_expr(deliveries::Column::DeadAt, Expr::value(Option::<i64>::None))
        .filter(filter)
        .filter(deliveries::Column::Status.ne(PENDING))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

async fn list(db: &DatabaseConnection, tenant: Option<String>, now: i64) -> anyhow::Result<String> {
    let mut q = eps::Entity::find()
        .order_by_asc(eps::Column::Tenant)
        .order_by_asc(eps::Column::Id);
    if let Some(t) = tenant {
        q = q.filter(eps::Column::Tenant.eq(t));
    }
    let mut t = crate::admin::table::new([
        "ID",
        "TENANT",
        "STATUS",
        "FAILING SINCE",
        "SECRETS",
        "EVENTS",
        "URL",
    ]);
    for e in q.all(db).await? {
        let live = endpoints::live_secrets(&e.id, now).count(db).await?;
        let status = match (&e.status[..], &e.disabled_reason) {
            (DISABLED, Some(r)) => format!("disabled ({r})"),
            (s, _) => s.to_string(),
        };
        let failing = e.failing_since.map_or_else(|| "-".to_string(), rfc3339_ms);
        t.add_row([
            e.id.as_str(),
            &e.tenant,
            &status,
            &failing,
            &live.to_string(),
            &event_types(&e).as_list().join(","),
            &e.url,
        ]);
    }
    Ok(crate::admin::table::render(&t))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: WebhooksCmd,
    }

    fn parse(args: &[&str]) -> Result<WebhooksCmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("rampd-webhooks").chain(args.iter().copied()))
            .map(|c| c.cmd)
    }

    #[test]
    fn command_line_shapes() {
        Cli::command().debug_assert();
        assert!(matches!(
            parse(&["replay", "--order", "o-1", "--tenant", "acme"]),
            Ok(WebhooksCmd::Replay(DeliveryArgs {
                tenant: Some(_),
                ..
            }))
        ));
        assert!(matches!(
            parse(&["replay", "--dead-since", "2026-11-21T00:00:00Z"]),
            Ok(WebhooksCmd::Replay(DeliveryArgs {
                what: Selection {
                    dead_since: Some(_),
                    ..
                },
                ..
            }))
        ));
        for bad in [
            &["replay"][..],
            &["replay", "--delivery", "msg_1", "--order", "o-1"],
            &["replay", "--dead-since", "yesterday"],
            &["deliveries"],
            &["endpoint", "add", "--url", "https://x.example/h"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let add = parse(&[
            "endpoint",
            "add",
            "--tenant",
            "acme",
            "--url",
            "https://x.example/h",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .unwrap();
        assert!(!format!("{add:?}").contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(matches!(
            parse(&["endpoint", "enable", "ep-1", "--replay"]),
            Ok(WebhooksCmd::Endpoint(EndpointCmd::Enable {
                replay: true,
                ..
            }))
        ));
    }
}
