//! Tenant webhook endpoints, from configuration.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::signature::WebhookSecret;
use crate::config::EndpointConfig;

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub secrets: Vec<WebhookSecret>,
}

/// All configured endpoints; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Endpoints(Arc<Vec<Endpoint>>);

impl Endpoints {
    pub fn from_config(cfg: &[EndpointConfig]) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        for e in cfg {
            let secret = WebhookSecret::parse(e.secret.expose_secret())
                .map_err(|err| anyhow::anyhow!("webhook endpoint {}: {err}", e.id))?;
            if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
                anyhow::bail!("webhook endpoint {}: url must be http(s)", e.id);
            }
            if e.id.is_empty() || e.id.contains('.') {
                anyhow::bail!("webhook endpoint id must be non-empty and without '.'");
            }
            out.push(Endpoint {
                id: e.id.clone(),
                tenant: e.tenant.clone(),
                url: e.url.clone(),
                secrets: vec![secret],
            });
        }
        Ok(Endpoints(Arc::new(out)))
    }

    pub fn for_tenant<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.0.iter().filter(move |e| e.tenant == tenant)
    }

    pub fn get(&self, id: &str) -> Option<&Endpoint> {
        self.0.iter().find(|e| e.id == id)
    }
}
