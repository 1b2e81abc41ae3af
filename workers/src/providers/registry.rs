//! The provider seam: every configured provider by name, each a [`Connector`] whose plan
//! the order machine follows. The executor finds an order's connector by the name the
//! order recorded; intake chooses the provider of a new order (`provider::choose`).

use std::collections::HashMap;
use std::sync::Arc;

use rampd_domain::provider::{self, Plan, ProviderName, ProviderRef, RequestKind};
use secrecy::ExposeSecret;

use super::budget::RequestBudget;
use super::onmeta::{OnmetaClient, OnmetaConfig};
use super::partner::client::{PartnerClient, PartnerConfig};
use crate::config::{Config, NamedProvider, PartnerProviderConfig, ProviderConfig, ms};

/// One provider's client, by kind.
#[derive(Clone)]
pub enum Connector {
    Onmeta(OnmetaClient),
    Partner(PartnerClient),
}

impl Connector {
    pub fn plan(&self) -> Plan {
        match self {
            Connector::Onmeta(_) => Plan::Onmeta,
            Connector::Partner(_) => Plan::Partner,
        }
    }
}

/// Every configured provider.
#[derive(Clone)]
pub struct Providers {
    connectors: Arc<HashMap<ProviderName, Connector>>,
    /// Names and plans, sorted by name (what `provider::choose` reads).
    plans: Arc<Vec<(ProviderName, Plan)>>,
    tenants: Arc<HashMap<String, ProviderName>>,
    /// `[provider]`'s name: orders stored before orders named their provider ran there.
    primary: ProviderName,
    /// `[provider]`'s budget: the one the executor's claims follow (see `claim_budget`).
    primary_budget: RequestBudget,
}

impl Providers {
    /// Build every client of `cfg`: `[provider]` under its `name`, and `[providers.*]`.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Providers> {
        let mut connectors = HashMap::new();
        let primary = name(&cfg.provider.name, "provider.name")?;
        let onmeta = onmeta_client(&cfg.provider)?;
        let primary_budget = onmeta.budget().clone();
        connectors.insert(primary.clone(), Connector::Onmeta(onmeta));
        for (raw, p) in &cfg.providers {
            let key = name(raw, "a [providers.<name>] table")?;
            let connector = match p {
                NamedProvider::Onmeta(c) => Connector::Onmeta(onmeta_client(c)?),
                NamedProvider::Partner(c) => Connector::Partner(partner_client(raw, c)?),
            };
            if connectors.insert(key, connector).is_some() {
                anyhow::bail!(
                    "provider {raw} is configured twice ([provider] and [providers.{raw}])"
                );
            }
        }
        let mut tenants = HashMap::new();
        for (tenant, t) in &cfg.tenants {
            if let Some(p) = &t.provider {
                let p = name(p, &format!("tenants.{tenant}.provider"))?;
                if !connectors.contains_key(&p) {
                    anyhow::bail!("tenants.{tenant}.provider names {p}, which is not configured");
                }
                tenants.insert(tenant.clone(), p);
            }
        }
        let mut plans: Vec<_> = connectors
            .iter()
            .map(|(n, c)| (n.clone(), c.plan()))
            .collect();
        plans.sort();
        Ok(Providers {
            connectors: Arc::new(connectors),
            plans: Arc::new(plans),
            tenants: Arc::new(tenants),
            primary,
            primary_budget,
        })
    }

    /// The connector of the provider an order recorded. An order stored before orders
    /// named their provider reads as `ProviderRef::default()`'s `onmeta`: it ran at
    /// `[provider]`, whatever that is called now.
    pub fn get(&self, name: &ProviderName) -> Option<&Connector> {
        self.connectors.get(name).or_else(|| {
            (*name == ProviderRef::default().name)
                .then(|| self.connectors.get(&self.primary))
                .flatten()
        })
    }

    /// The provider a new order of `kind` for `tenant` runs at (`provider::choose`).
    pub fn choose(
        &self,
        tenant: &str,
        kind: RequestKind,
        named: Option<&ProviderName>,
    ) -> Result<ProviderRef, String> {
        provider::choose(&self.plans, self.tenants.get(tenant), kind, named)
    }

    /// The budget that decides how many waiting orders a claim takes: `[provider]`'s. The
    /// orders that wait and make calls while they do (parked for a payment or KYC) are
    /// Onmeta's; the one Partner order that waits, a redeem before its hash arrives, makes
    /// no call until then. Every connector still spends its own budget on each call, and a
    /// call over it is deferred without being made. (Per-provider claims would need the
    /// provider on the task row.)
    pub fn claim_budget(&self) -> &RequestBudget {
        &self.primary_budget
    }
}

fn name(raw: &str, what: &str) -> anyhow::Result<ProviderName> {
    ProviderName::parse(raw).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

fn onmeta_client(c: &ProviderConfig) -> anyhow::Result<OnmetaClient> {
    Ok(OnmetaClient::new(OnmetaConfig {
        base_url: c.base_url.clone(),
        api_key: c.api_key.expose_secret().to_string().into(),
        timeout: ms(c.timeout_ms),
    })?
    .with_budget(RequestBudget::share(c.requests_per_sec, c.replicas)))
}

fn partner_client(name: &str, c: &PartnerProviderConfig) -> anyhow::Result<PartnerClient> {
    if !(c.requests_per_sec.is_finite() && c.requests_per_sec >= 0.0) || c.replicas == 0 {
        anyhow::bail!("providers.{name}: requests_per_sec must be >= 0 and replicas >= 1");
    }
    Ok(PartnerClient::new(PartnerConfig {
        base_url: c.base_url.clone(),
        token: c.token.clone(),
        tenant_id: c.tenant_id.clone(),
        tenant_header: c.tenant_header.clone(),
        timeout: ms(c.timeout_ms),
    })
    .map_err(|e| anyhow::anyhow!("providers.{name}: {e}"))?
    .with_budget(RequestBudget::share(c.requests_per_sec, c.replicas)))
}
