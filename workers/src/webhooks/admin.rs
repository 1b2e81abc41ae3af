//! `rampd webhooks …`: endpoint management and replay, straight against the database.
//! Secrets are printed once, when created or rotated, and never again.

use chrono::{DateTime, Utc};
use rampd_domain::webhooks::events::{
    DisabledReason, ENDPOINT_DISABLED, EndpointDisabled, WEBHOOK_TEST, WebhookTest,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
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
    webhook_endpoint_secrets as secrets, webhook_endpoints as eps,
};
use crate::storage::lease::{DELIVERIES, released};
use crate::webhooks::WebhookSecret;

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
        /// The tenant whose events the endpoint receives.
        #[arg(long)]
        tenant: String,
        /// Where deliveries are POSTed (HTTPS; restricted networks only when allowed).
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
        /// Only this tenant's endpoints.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Stop sending to an endpoint; its deliveries are held until it is enabled.
    Disable {
        /// The endpoint id.
        id: String,
    },
    /// Send to an endpoint again. Tells how many deliveries it missed; `--replay` sends them.
    Enable {
        /// The endpoint id.
        id: String,
        /// Also send the deliveries held while it was disabled.
        #[arg(long)]
        replay: bool,
    },
    /// Change an endpoint's URL or the event types it receives. Deliveries not yet sent go
    /// to the new URL.
    Update {
        /// The endpoint id.
        id: String,
        /// The new URL.
        #[arg(long, required_unless_present = "events")]
        url: Option<String>,
        /// The new comma-separated event types: `*`, `order.*`, `order.status_changed`, …
        #[arg(long)]
        events: Option<String>,
    },
    /// Delete an endpoint, its secrets and the deliveries it has not been sent yet
    /// (delivered and dead-lettered ones stay, for their retention time).
    Delete {
        /// The endpoint id.
        id: String,
    },
    /// Send the endpoint a signed `webhook.test` event now, through the normal delivery
    /// path (retries, attempts and `rampd webhooks deliveries` as for any delivery).
    Test {
        /// The endpoint id.
        id: String,
    },
    /// Make a new current secret; the old one keeps signing beside it for the overlap.
    RotateSecret {
        /// The endpoint id.
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
    execute_as(db, cfg, cmd, false).await
}

/// Run one command; returns what to print: text, or with `json` one JSON value (the
/// endpoints or deliveries listed, or what an action did).
pub async fn execute_as(
    db: &DatabaseConnection,
    cfg: &Config,
    cmd: WebhooksCmd,
    json: bool,
) -> anyhow::Result<String> {
    let (text, value) = run(db, cfg, cmd, json).await?;
    Ok(match value {
        Some(v) if json => serde_json::to_string_pretty(&v)?,
        _ => text,
    })
}

async fn run(
    db: &DatabaseConnection,
    cfg: &Config,
    cmd: WebhooksCmd,
    json: bool,
) -> anyhow::Result<(String, Option<serde_json::Value>)> {
    use serde_json::json as j;
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
            let secret = spec.secret.expose_text();
            Ok((
                format!(
                    "endpoint {id} added for tenant {tenant}\nsecret: {secret}\n(store it now: it is not shown again)"
                ),
                Some(j!({"endpoint": id, "tenant": tenant, "secret": secret})),
            ))
        }
        WebhooksCmd::Endpoint(EndpointCmd::List { tenant }) if json => {
            Ok((String::new(), Some(list_json(db, tenant, now).await?)))
        }
        WebhooksCmd::Endpoint(EndpointCmd::List { tenant }) => {
            Ok((list(db, tenant, now).await?, None))
        }
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
            Ok((
                format!("endpoint {id} disabled; its deliveries are held until it is enabled"),
                Some(j!({"endpoint": id, "status": DISABLED})),
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
                Ok((
                    format!(
                        "endpoint {id} enabled; {n} deliveries it missed while disabled are queued again"
                    ),
                    Some(j!({"endpoint": id, "status": ENABLED, "missed": n, "queued": n})),
                ))
            } else {
                let n = deliveries::Entity::find().filter(missed).count(db).await?;
                Ok((
                    format!(
                        "endpoint {id} enabled; it missed {n} deliveries while disabled{}",
                        if n > 0 {
                            format!(
                                " (send them with `rampd webhooks endpoint enable {id} --replay`)"
                            )
                        } else {
                            String::new()
                        }
                    ),
                    Some(j!({"endpoint": id, "status": ENABLED, "missed": n, "queued": 0})),
                ))
            }
        }
        WebhooksCmd::Endpoint(EndpointCmd::Update { id, url, events }) => {
            let row = find(db, &id).await?;
            let url = url.unwrap_or_else(|| row.url.clone());
            let events: Vec<String> = match events {
                Some(e) => e.split(',').map(|s| s.trim().to_string()).collect(),
                None => event_types(&row).as_list().to_vec(),
            };
            let spec =
                EndpointSpec::parse(&id, &row.tenant, &url, &events, WebhookSecret::generate())?;
            if literal_ip_refused(&cfg.webhooks.address_policy()?, &spec.url) {
                anyhow::bail!(
                    "{url} is a restricted address; allow its network in webhooks.allow_networks first"
                );
            }
            let types = serde_json::to_string(&spec.event_types)?;
            let txn = begin_write(db).await?;
            eps::Entity::update_many()
                .col_expr(eps::Column::Url, Expr::value(spec.url.to_string()))
                .col_expr(eps::Column::EventTypes, Expr::value(types))
                .col_expr(eps::Column::UpdatedAt, Expr::value(now))
                .filter(eps::Column::Id.eq(id.clone()))
                .exec(&txn)
                .await?;
            // Deliveries not sent yet go to the new URL.
            deliveries::Entity::update_many()
                .col_expr(deliveries::Column::Url, Expr::value(spec.url.to_string()))
                .filter(deliveries::Column::EndpointId.eq(id.clone()))
                .filter(deliveries::Column::Status.is_in([PENDING, SKIPPED]))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            let list = spec.event_types.as_list().to_vec();
            let note = if row.source == "config" {
                " (it is declared in the config file too: change it there, or a restart undoes this)"
            } else {
                ""
            };
            Ok((
                format!(
                    "endpoint {id} updated: url {} events {}{note}",
                    spec.url,
                    list.join(",")
                ),
                Some(j!({"endpoint": id, "url": spec.url.to_string(), "events": list})),
            ))
        }
        WebhooksCmd::Endpoint(EndpointCmd::Delete { id }) => {
            let row = find(db, &id).await?;
            let txn = begin_write(db).await?;
            let unsent = deliveries::Entity::delete_many()
                .filter(deliveries::Column::EndpointId.eq(id.clone()))
                .filter(deliveries::Column::Status.is_in([PENDING, SKIPPED]))
                .exec(&txn)
                .await?
                .rows_affected;
            secrets::Entity::delete_many()
                .filter(secrets::Column::EndpointId.eq(id.clone()))
                .exec(&txn)
                .await?;
            eps::Entity::delete_by_id(id.clone()).exec(&txn).await?;
            txn.commit().await?;
            let note = if row.source == "config" {
                " (it is declared in the config file: remove it there, or a restart adds it again)"
            } else {
                ""
            };
            Ok((
                format!(
                    "endpoint {id} deleted with {unsent} deliveries it had not been sent{note}"
                ),
                Some(j!({"endpoint": id, "deleted": true, "unsent_deleted": unsent})),
            ))
        }
        WebhooksCmd::Endpoint(EndpointCmd::Test { id }) => {
            let row = find(db, &id).await?;
            if row.status != ENABLED {
                anyhow::bail!("endpoint {id} is disabled; enable it first");
            }
            let delivery = queue_test(db, &row, now).await?;
            Ok((
                format!(
                    "webhook.test queued for endpoint {id} as delivery {delivery}; follow it with `rampd webhooks deliveries --delivery {delivery}`"
                ),
                Some(j!({"endpoint": id, "delivery": delivery, "event_type": WEBHOOK_TEST})),
            ))
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
            Ok((
                format!(
                    "endpoint {id}: new secret {}\n(store it now: it is not shown again)\nthe previous secret keeps signing until {}",
                    secret.expose_text(),
                    until.to_rfc3339()
                ),
                Some(j!({
                    "endpoint": id,
                    "secret": secret.expose_text(),
                    "previous_signs_until": until,
                })),
            ))
        }
        WebhooksCmd::Replay(args) => {
            let (what, filter) = selected(db, &args).await?;
            let n = requeue(db, filter.clone(), now).await?;
            let waiting = send_waiting_now(db, filter, now).await?;
            Ok((
                format!(
                    "{} deliveries queued again ({what}){}",
                    n + waiting,
                    if waiting > 0 {
                        format!(", {waiting} of them were waiting for their next retry")
                    } else {
                        String::new()
                    }
                ),
                Some(j!({"queued": n + waiting, "were_waiting": waiting, "selection": what})),
            ))
        }
        WebhooksCmd::Deliveries(args) if json => {
            let (_, filter) = selected(db, &args).await?;
            Ok((String::new(), Some(show_json(db, filter).await?)))
        }
        WebhooksCmd::Deliveries(args) => {
            let (_, filter) = selected(db, &args).await?;
            Ok((show(db, filter).await?, None))
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

/// The deliveries `filter` selects, oldest first, each with its attempts, oldest first.
async fn deliveries_with_attempts(
    db: &DatabaseConnection,
    filter: Condition,
) -> anyhow::Result<Vec<(deliveries::Model, Vec<attempts::Model>)>> {
    let rows = deliveries::Entity::find()
        .filter(filter)
        .order_by_asc(deliveries::Column::CreatedAt)
        .all(db)
        .await?;
    if rows.is_empty() {
        anyhow::bail!("no such deliveries");
    }
    let mut all = Vec::with_capacity(rows.len());
    for d in rows {
        let tries = attempts::Entity::find()
            .filter(attempts::Column::DeliveryId.eq(d.id.clone()))
            .order_by_asc(attempts::Column::StartedAt)
            .all(db)
            .await?;
        all.push((d, tries));
    }
    Ok(all)
}

/// Deliveries with their attempts, oldest first. The response excerpts were bounded and
/// redacted when stored.
async fn show(db: &DatabaseConnection, filter: Condition) -> anyhow::Result<String> {
    let ms = rfc3339_ms;
    let mut out = String::new();
    for (d, tries) in deliveries_with_attempts(db, filter).await? {
        out.push_str(&format!(
            "{}  endpoint {}  {}  {}  attempts {}  created {}\n",
            d.id,
            d.endpoint_id,
            d.event_type,
            d.status,
            d.attempt,
            ms(d.created_at)
        ));
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

/// [`show`] as JSON: an array of deliveries, each with its `attempts`.
async fn show_json(
    db: &DatabaseConnection,
    filter: Condition,
) -> anyhow::Result<serde_json::Value> {
    let ms = |t: i64| DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default();
    let mut all = Vec::new();
    for (d, tries) in deliveries_with_attempts(db, filter).await? {
        let tries: Vec<_> = tries
            .into_iter()
            .map(|a| {
                serde_json::json!({
                    "attempt": a.attempt,
                    "started_at": ms(a.started_at),
                    "status_code": a.status_code,
                    "error": a.error_kind,
                    "latency_ms": a.latency_ms,
                    "response_excerpt": a.response_excerpt,
                })
            })
            .collect();
        all.push(serde_json::json!({
            "id": d.id,
            "endpoint": d.endpoint_id,
            "order_id": d.order_id,
            "event_type": d.event_type,
            "status": d.status,
            "attempt": d.attempt,
            "created_at": ms(d.created_at),
            "next_attempt_at": (d.status == PENDING).then(|| ms(d.run_at)),
            "dead_at": d.dead_at.map(ms),
            "attempts": tries,
        }));
    }
    Ok(serde_json::Value::Array(all))
}

/// [`list`] as JSON: an array of endpoints (never their secrets).
async fn list_json(
    db: &DatabaseConnection,
    tenant: Option<String>,
    now: i64,
) -> anyhow::Result<serde_json::Value> {
    let mut q = eps::Entity::find()
        .order_by_asc(eps::Column::Tenant)
        .order_by_asc(eps::Column::Id);
    if let Some(t) = tenant {
        q = q.filter(eps::Column::Tenant.eq(t));
    }
    let mut all = Vec::new();
    for e in q.all(db).await? {
        let live = endpoints::live_secrets(&e.id, now).count(db).await?;
        let at = |t: i64| DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default();
        all.push(serde_json::json!({
            "id": e.id,
            "tenant": e.tenant,
            "url": e.url,
            "status": e.status,
            "disabled_reason": e.disabled_reason,
            "failing_since": e.failing_since.map(at),
            "secrets": live,
            "events": event_types(&e).as_list(),
        }));
    }
    Ok(serde_json::Value::Array(all))
}

/// Queue a `webhook.test` delivery for `ep`, due now; returns its `webhook-id`. The sender
/// signs and sends it like any other delivery.
async fn queue_test(db: &DatabaseConnection, ep: &eps::Model, now: i64) -> anyhow::Result<String> {
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let body = serde_json::to_value(WebhookTest {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: WEBHOOK_TEST.into(),
        tenant: ep.tenant.clone(),
        endpoint_id: ep.id.clone(),
        occurred_at: DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default(),
    })?;
    deliveries::Entity::insert(deliveries::ActiveModel {
        id: Set(id.clone()),
        order_id: Set(String::new()),
        tenant: Set(ep.tenant.clone()),
        endpoint_id: Set(ep.id.clone()),
        url: Set(ep.url.clone()),
        event_type: Set(WEBHOOK_TEST.into()),
        body: Set(body.to_string()),
        status: Set(PENDING.into()),
        attempt: Set(0),
        run_at: Set(now),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        trace_ctx: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
        dead_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(id)
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

/// Send matching deliveries that wait for their next retry now, with a fresh ladder. One
/// being attempted (leased) is left alone.
async fn send_waiting_now(
    db: &DatabaseConnection,
    filter: Condition,
    now: i64,
) -> anyhow::Result<u64> {
    let free = Condition::any()
        .add(deliveries::Column::LeaseUntil.is_null())
        .add(deliveries::Column::LeaseUntil.lt(now));
    let res = deliveries::Entity::update_many()
        .col_expr(deliveries::Column::Attempt, Expr::value(0))
        .col_expr(deliveries::Column::RunAt, Expr::value(now))
        .filter(filter)
        .filter(deliveries::Column::Status.eq(PENDING))
        .filter(deliveries::Column::RunAt.gt(now))
        .filter(free)
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
