//! SSRF protection at connect time. The HTTP client resolves host names through
//! [`GuardedResolver`], which drops every address the [`AddressPolicy`] refuses, so the
//! check applies to the very addresses the connection is made to: a DNS answer cannot
//! rebind a checked name to a private address afterwards. URLs with a literal IP address
//! never reach a resolver; [`literal_ip_refused`] checks those before sending.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rampd_domain::webhooks::AddressPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Every address the target resolved to is in a restricted range.
#[derive(Debug, thiserror::Error)]
#[error("webhook target resolves only to restricted addresses")]
pub struct AddressRefused;

pub struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| policy.permits(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// `true` when `url` names a literal IP address the policy refuses.
pub fn literal_ip_refused(policy: &AddressPolicy, url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| !policy.permits(ip))
}

/// Was this request refused by the resolver?
pub fn is_refusal(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<AddressRefused>() {
            return true;
        }
        source = e.source();
    }
    false
}
