//! The tenant endpoint registry. Endpoints are rows of `webhook_endpoints` (with their
//! secrets in `webhook_endpoint_secrets`), managed by `rampd webhooks endpoint …`;
//! endpoints declared in config are upserted at start-up ([`Endpoints::sync_declared`]).
//!
//! The decision write path asks which endpoints an event goes to ([`subscribers`]) inside
//! the decision's own transaction, so an endpoint added by an operator takes effect with
//! the next state change on every replica.

use std::collections::HashMap;
use std::sync::Arc;

use rampd_domain::webhooks::EventTypes;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder,
};
use secrecy::{ExposeSecret, SecretString};

use super::signature::WebhookSecret;
use super::vault::Vault;
use crate::config::EndpointConfig;
use crate::storage::entities::{webhook_endpoint_secrets as secrets, webhook_endpoints as eps};
use crate::storage::{begin_write, is_unique_violation};

pub const ENABLED: &str = "enabled";
pub const DISABLED: &str = "disabled";

/// An endpoint as declared (config or command line), checked.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub id: String,
    pub tenant: String,
    pub url: reqwest::Url,
    pub event_types: EventTypes,
    pub secret: WebhookSecret,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("endpoint id must be non-empty, without '.' or whitespace")]
    Id,
    #[error("tenant must be non-empty, without '.', '*', '>' or whitespace")]
    Tenant,
    #[error("url must be an absolute http(s) URL without credentials")]
    Url,
    #[error(transparent)]
    Events(#[from] rampd_domain::webhooks::subscription::EventTypesError),
    #[error(transparent)]
    Secret(#[from] super::signature::SecretError),
}

impl EndpointSpec {
    pub fn parse(
        id: &str,
        tenant: &str,
        url: &str,
        event_types: &[String],
        secret: WebhookSecret,
    ) -> Result<Self, SpecError> {
        if id.is_empty() || id.contains('.') || id.contains(char::is_whitespace) {
            return Err(SpecError::Id);
        }
        if tenant.is_empty()
            || tenant.contains(['.', '*', '>'])
            || tenant.contains(char::is_whitespace)
        {
            return Err(SpecError::Tenant);
        }
        let url = reqwest::Url::parse(url).map_err(|_| SpecError::Url)?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(SpecError::Url);
        }
        Ok(EndpointSpec {
            id: id.to_string(),
            tenant: tenant.to_string(),
            url,
            event_types: EventTypes::try_from(event_types.to_vec())?,
            secret,
        })
    }
}

/// An endpoint the write path queues a delivery for.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: String,
    pub url: String,
    pub enabled: bool,
    pub events: EventTypes,
}

impl Subscriber {
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.matches(event_type)
    }
}

/// An endpoint ready to send to: its live secrets, current first.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub enabled: bool,
    pub failing_since: Option<i64>,
    pub secrets: Vec<WebhookSecret>,
}

/// The registry handle; holds the endpoints declared in config and the [`Vault`] for
/// their stored secrets. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    declared: Arc<Vec<EndpointSpec>>,
    vault: Vault,
}

impl Endpoints {
    /// Check the config-declared endpoints (nothing is written yet).
    pub fn from_config(cfg: &[EndpointConfig]) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        for e in cfg {
            let secret = WebhookSecret::parse(e.secret.expose_secret())
                .map_err(|err| anyhow::anyhow!("webhook endpoint {}: {err}", e.id))?;
            let spec = EndpointSpec::parse(&e.id, &e.tenant, &e.url, &e.events, secret)
                .map_err(|err| anyhow::anyhow!("webhook endpoint {:?}: {err}", e.id))?;
            out.push(spec);
        }
        Ok(Endpoints {
            declared: Arc::new(out),
            vault: Vault::default(),
        })
    }

    /// Store (and read) secrets through `vault`.
    pub fn with_vault(mut self, vault: Vault) -> Self {
        self.vault = vault;
        self
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn declared(&self) -> &[EndpointSpec] {
        &self.declared
    }

    /// Upsert the config-declared endpoints: new ones are created enabled; existing ones
    /// take the declared tenant, URL and event types but keep their enabled/disabled state
    /// (an endpoint disabled for failing stays disabled until an operator enables it). A
    /// secret the endpoint never had is a rotation: the old one keeps signing for
    /// `overlap_ms`. A secret it had before is left alone, so a rotation made with
    /// `rampd webhooks endpoint rotate-secret` survives a restart with the old config.
    pub async fn sync_declared(
        &self,
        db: &DatabaseConnection,
        now: i64,
        overlap_ms: i64,
    ) -> Result<(), DbErr> {
        for spec in self.declared.iter() {
            match upsert(db, &self.vault, spec, "config", now, overlap_ms).await {
                // Another replica starting at the same moment inserted it first.
                Err(e) if is_unique_violation(&e) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Check that every stored secret opens with the configured key, and seal the ones
    /// stored as plain text when a key is configured. Run at start-up.
    pub async fn seal_stored(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        for row in secrets::Entity::find().all(db).await? {
            let secret = self
                .vault
                .open(&row.endpoint_id, &row.secret)
                .map_err(|e| anyhow::anyhow!("endpoint {}: {e}", row.endpoint_id))?;
            if self.vault.seals() && !Vault::is_sealed(&row.secret) {
                secrets::Entity::update_many()
                    .col_expr(
                        secrets::Column::Secret,
                        Expr::value(self.vault.seal(&row.endpoint_id, &secret)),
                    )
                    .filter(secrets::Column::Id.eq(row.id.clone()))
                    .filter(secrets::Column::Secret.eq(row.secret.clone()))
                    .exec(db)
                    .await?;
            }
        }
        if !self.vault.seals() {
            tracing::warn!("webhook secrets are stored unsealed; set webhooks.secrets_key");
        }
        Ok(())
    }
}

/// Every endpoint of each of `tenants`, disabled ones included (their deliveries are
/// recorded as skipped, to be replayed when they are enabled again), in one read. Read
/// inside the transaction that queues the deliveries; [`Subscriber::wants`] picks the
/// ones for each event.
pub async fn subscribers(
    db: &impl ConnectionTrait,
    tenants: &[&str],
) -> Result<HashMap<String, Vec<Subscriber>>, DbErr> {
    let mut out: HashMap<String, Vec<Subscriber>> = HashMap::new();
    if tenants.is_empty() {
        return Ok(out);
    }
    let rows = eps::Entity::find()
        .filter(eps::Column::Tenant.is_in(tenants.iter().copied()))
        .order_by_asc(eps::Column::Id)
        .all(db)
        .await?;
    for r in rows {
        out.entry(r.tenant.clone()).or_default().push(Subscriber {
            enabled: r.status == ENABLED,
            events: event_types(&r),
            id: r.id,
            url: r.url,
        });
    }
    Ok(out)
}

pub fn event_types(row: &eps::Model) -> EventTypes {
    serde_json::from_str(&row.event_types).unwrap_or_default()
}

/// Insert or update one endpoint (see [`Endpoints::sync_declared`]), in one transaction.
pub async fn upsert(
    db: &DatabaseConnection,
    vault: &Vault,
    spec: &EndpointSpec,
    source: &str,
    now: i64,
    overlap_ms: i64,
) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    let types =
        serde_json::to_string(&spec.event_types).map_err(|e| DbErr::Custom(e.to_string()))?;
    let existing = eps::Entity::find_by_id(spec.id.clone()).one(&txn).await?;
    if existing.is_none() {
        eps::Entity::insert(eps::ActiveModel {
            id: Set(spec.id.clone()),
            tenant: Set(spec.tenant.clone()),
            url: Set(spec.url.to_string()),
            event_types: Set(types),
            status: Set(ENABLED.into()),
            disabled_reason: Set(None),
            disabled_at: Set(None),
            failing_since: Set(None),
            source: Set(source.into()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        insert_secret(&txn, vault, &spec.id, &spec.secret, now).await?;
    } else {
        eps::Entity::update_many()
            .col_expr(eps::Column::Tenant, Expr::value(spec.tenant.clone()))
            .col_expr(eps::Column::Url, Expr::value(spec.url.to_string()))
            .col_expr(eps::Column::EventTypes, Expr::value(types))
            .col_expr(eps::Column::UpdatedAt, Expr::value(now))
            .filter(eps::Column::Id.eq(spec.id.clone()))
            .exec(&txn)
            .await?;
        // Only a secret this endpoint never had is rotated in: a config file that still
        // names a secret an operator has since rotated out does not bring it back.
        let known = secrets::Entity::find()
            .filter(secrets::Column::EndpointId.eq(spec.id.clone()))
            .all(&txn)
            .await?;
        let text = spec.secret.expose_text();
        let had = known.iter().any(|k| {
            vault
                .open(&spec.id, &k.secret)
                .is_ok_and(|s| s.expose_text() == text)
        });
        if !had {
            rotate_in(&txn, vault, &spec.id, &spec.secret, now, overlap_ms).await?;
        }
    }
    txn.commit().await
}

async fn insert_secret(
    db: &impl ConnectionTrait,
    vault: &Vault,
    endpoint_id: &str,
    secret: &WebhookSecret,
    now: i64,
) -> Result<(), DbErr> {
    secrets::Entity::insert(secrets::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        endpoint_id: Set(endpoint_id.to_string()),
        secret: Set(vault.seal(endpoint_id, secret)),
        created_at: Set(now),
        expires_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Make `secret` the current one. Every older secret signs until `now + overlap_ms` at
/// the latest (one rotated out earlier keeps its earlier expiry).
pub async fn rotate_in(
    db: &impl ConnectionTrait,
    vault: &Vault,
    endpoint_id: &str,
    secret: &WebhookSecret,
    now: i64,
    overlap_ms: i64,
) -> Result<(), DbErr> {
    let until = now + overlap_ms;
    secrets::Entity::update_many()
        .col_expr(secrets::Column::ExpiresAt, Expr::value(until))
        .filter(secrets::Column::EndpointId.eq(endpoint_id))
        .filter(
            Condition::any()
                .add(secrets::Column::ExpiresAt.is_null())
                .add(secrets::Column::ExpiresAt.gt(until)),
        )
        .exec(db)
        .await?;
    insert_secret(db, vault, endpoint_id, secret, now).await
}

/// The secrets of an endpoint that sign at `now`: the current one and those rotated out
/// whose overlap has not ended.
pub fn live_secrets(endpoint_id: &str, now: i64) -> sea_orm::Select<secrets::Entity> {
    secrets::Entity::find()
        .filter(secrets::Column::EndpointId.eq(endpoint_id))
        .filter(
            Condition::any()
                .add(secrets::Column::ExpiresAt.is_null())
                .add(secrets::Column::ExpiresAt.gt(now)),
        )
}

/// Load an endpoint with the secrets that sign at `now`.
pub async fn load(
    db: &impl ConnectionTrait,
    vault: &Vault,
    id: &str,
    now: i64,
) -> Result<Option<Endpoint>, DbErr> {
    let Some(row) = eps::Entity::find_by_id(id.to_string()).one(db).await? else {
        return Ok(None);
    };
    let keys = live_secrets(id, now)
        .order_by_desc(secrets::Column::CreatedAt)
        .all(db)
        .await?;
    // Every stored secret was checked at start-up (`seal_stored`); one that cannot be
    // opened now is left out rather than failing the delivery.
    let secrets = keys
        .iter()
        .filter_map(|k| vault.open(id, &k.secret).ok())
        .collect();
    Ok(Some(Endpoint {
        enabled: row.status == ENABLED,
        id: row.id,
        tenant: row.tenant,
        url: row.url,
        failing_since: row.failing_since,
        secrets,
    }))
}

/// A secret given on the command line or generated: shown once to its owner.
pub fn secret_or_generate(given: Option<&SecretString>) -> Result<WebhookSecret, SpecError> {
    match given {
        Some(s) => Ok(WebhookSecret::parse(s.expose_secret())?),
        None => Ok(WebhookSecret::generate()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        id: &str,
        tenant: &str,
        url: &str,
        events: &[&str],
    ) -> Result<EndpointSpec, SpecError> {
        let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        EndpointSpec::parse(id, tenant, url, &events, WebhookSecret::generate())
    }

    #[test]
    fn specs_parse_or_say_why() {
        let ok = parse("ep-1", "acme", "https://hooks.example.com/rampd", &[]).unwrap();
        assert!(ok.event_types.matches("order.status_changed"));
        assert!(parse("ep-1", "acme", "http://127.0.0.1:9/h", &["order.*"]).is_ok());
        for (id, tenant, url, events, why) in [
            ("", "acme", "https://x.example/h", &[][..], "id"),
            ("a.b", "acme", "https://x.example/h", &[], "id"),
            ("ep", "", "https://x.example/h", &[], "tenant"),
            ("ep", "ac.me", "https://x.example/h", &[], "tenant"),
            ("ep", "acme", "ftp://x.example/h", &[], "url"),
            ("ep", "acme", "https://user:pw@x.example/h", &[], "url"),
            ("ep", "acme", "not a url", &[], "url"),
            ("ep", "acme", "https://x.example/h", &["Order"], "events"),
        ] {
            let err = parse(id, tenant, url, events).unwrap_err();
            let ok = matches!(
                (&err, why),
                (SpecError::Id, "id")
                    | (SpecError::Tenant, "tenant")
                    | (SpecError::Url, "url")
                    | (SpecError::Events(_), "events")
            );
            assert!(ok, "{id} {tenant} {url}: {err}");
        }
    }

    #[test]
    fn config_endpoints_are_checked_and_secrets_never_print() {
        let cfg = |url: &str| EndpointConfig {
            id: "ep".into(),
            tenant: "acme".into(),
            url: url.into(),
            secret: SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
            events: vec![],
        };
        let eps = Endpoints::from_config(&[cfg("https://x.example/h")]).unwrap();
        assert!(!format!("{eps:?}").contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(Endpoints::from_config(&[cfg("x.example/h")]).is_err());
    }
}
