//! Which provider serves an order, and which step plan its calls follow.
//!
//! An order records the provider (by the name it has in the configuration) when it is
//! created and never changes it. The [`Plan`] is that provider's kind: it says which calls
//! an order makes, in what order, and how an interrupted call is recovered
//! (`order::next_action` dispatches on it); the rules every plan shares (monotonic states,
//! terminal states absorb, intents before creating calls, unknown statuses flag) stay in
//! the order machine.

use serde::{Deserialize, Serialize};

use crate::values::ValueError;

/// A provider's name in the configuration (`[providers.<name>]`): 1–64 characters of
/// lower-case letters, digits, `-` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderName(String);

impl ProviderName {
    const FIELD: &'static str = "provider";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let b = s.as_bytes();
        let shape = b.first().is_some_and(u8::is_ascii_lowercase)
            && b.len() <= 64
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'));
        if !shape {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be 1-64 lower-case letters, digits, '-' or '_', starting with a letter",
            ));
        }
        Ok(ProviderName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderName {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        ProviderName::parse(&s)
    }
}

impl From<ProviderName> for String {
    fn from(n: ProviderName) -> String {
        n.0
    }
}

impl std::fmt::Display for ProviderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The step plan of a provider kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Onmeta-style ramps (providers.md §1): KYC, link, quote, create, the user's payment
    /// reference, status polls. Orders written before plans were recorded follow it.
    #[default]
    Onmeta,
    /// The stablecoin Partner API (providers.md §4): deposit request, confirmation, the
    /// mint credit seen in the on-chain history.
    Partner,
}

impl Plan {
    pub const ALL: [Plan; 2] = [Plan::Onmeta, Plan::Partner];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Onmeta => "onmeta",
            Plan::Partner => "partner",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        Plan::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The kinds of order this plan can carry.
    pub fn serves(self, kind: RequestKind) -> bool {
        match self {
            Plan::Onmeta => matches!(kind, RequestKind::Onramp | RequestKind::Offramp),
            Plan::Partner => matches!(kind, RequestKind::Mint | RequestKind::Redeem),
        }
    }
}

/// The kind of order a create command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    Onramp,
    Offramp,
    Mint,
    Redeem,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Onramp => "onramp",
            RequestKind::Offramp => "offramp",
            RequestKind::Mint => "mint",
            RequestKind::Redeem => "redeem",
        }
    }
}

/// The provider an order runs at: its configured name and its plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRef {
    pub name: ProviderName,
    pub plan: Plan,
}

impl Default for ProviderRef {
    /// Orders written before providers were named ran at the one Onmeta provider, which
    /// the configuration still calls `onmeta` unless told otherwise.
    fn default() -> Self {
        ProviderRef {
            name: ProviderName("onmeta".into()),
            plan: Plan::Onmeta,
        }
    }
}

/// Which provider serves a new order of `kind` for a tenant: the one the command names,
/// else the tenant's default, else the only configured provider whose plan serves the
/// kind. The answer is refused (with why, naming no secret) when the named provider is
/// unknown or does not serve the kind, or when several could and none is chosen.
pub fn choose(
    configured: &[(ProviderName, Plan)],
    tenant_default: Option<&ProviderName>,
    kind: RequestKind,
    named: Option<&ProviderName>,
) -> Result<ProviderRef, String> {
    let find = |n: &ProviderName| configured.iter().find(|(name, _)| name == n);
    let serving = |(name, plan): &(ProviderName, Plan)| {
        plan.serves(kind).then(|| ProviderRef {
            name: name.clone(),
            plan: *plan,
        })
    };
    if let Some(n) = named {
        let Some(p) = find(n) else {
            return Err(format!("no provider {n} is configured"));
        };
        return serving(p).ok_or_else(|| {
            format!(
                "provider {n} ({}) does not serve {} orders",
                p.1.as_str(),
                kind.as_str()
            )
        });
    }
    if let Some(chosen) = tenant_default.and_then(find).and_then(serving) {
        return Ok(chosen);
    }
    let mut candidates = configured.iter().filter_map(serving);
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Ok(only),
        (None, _) => Err(format!(
            "no configured provider serves {} orders",
            kind.as_str()
        )),
        (Some(_), Some(_)) => Err(format!(
            "several providers serve {} orders: name one in `provider`",
            kind.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ProviderName {
        ProviderName::parse(s).unwrap()
    }

    #[test]
    fn choosing_a_provider() {
        let one_each = [
            (name("onmeta"), Plan::Onmeta),
            (name("partner"), Plan::Partner),
        ];
        let pick = |tenant: Option<&str>, kind, named: Option<&str>| {
            choose(
                &one_each,
                tenant.map(name).as_ref(),
                kind,
                named.map(name).as_ref(),
            )
            .map(|r| r.name.to_string())
        };
        use RequestKind::*;
        // The only one that serves the kind.
        assert_eq!(pick(None, Onramp, None).unwrap(), "onmeta");
        assert_eq!(pick(None, Mint, None).unwrap(), "partner");
        // A tenant default of another kind does not stand in the way.
        assert_eq!(pick(Some("partner"), Offramp, None).unwrap(), "onmeta");
        // Named: must exist and serve the kind.
        assert_eq!(pick(None, Mint, Some("partner")).unwrap(), "partner");
        let e = pick(None, Mint, Some("onmeta")).unwrap_err();
        assert_eq!(e, "provider onmeta (onmeta) does not serve mint orders");
        let e = pick(None, Onramp, Some("bunq")).unwrap_err();
        assert_eq!(e, "no provider bunq is configured");
        // Several of a kind: the tenant's default, or the command must name one.
        let two = [
            (name("onmeta"), Plan::Onmeta),
            (name("partner-us"), Plan::Partner),
            (name("partner-eu"), Plan::Partner),
        ];
        let r = choose(&two, Some(&name("partner-eu")), Mint, None).unwrap();
        assert_eq!(r.name.as_str(), "partner-eu");
        let e = choose(&two, None, Mint, None).unwrap_err();
        assert!(e.contains("several providers serve mint"), "{e}");
        let e = choose(&one_each[..1], None, Mint, None).unwrap_err();
        assert_eq!(e, "no configured provider serves mint orders");
    }

    #[test]
    fn names() {
        for ok in ["onmeta", "partner-eu", "p_2", "a"] {
            assert_eq!(ProviderName::parse(ok).unwrap().as_str(), ok);
        }
        let long = "a".repeat(65);
        for bad in ["", "Onmeta", "2nd", "-x", "par tner", "x.y", long.as_str()] {
            assert!(ProviderName::parse(bad).is_err(), "{bad:?}");
        }
        let n: ProviderName = serde_json::from_str("\"partner\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"partner\"");
        assert!(serde_json::from_str::<ProviderName>("\"Bad\"").is_err());
    }

    #[test]
    fn plans_serve_their_kinds_only() {
        use RequestKind::*;
        assert!(Plan::Onmeta.serves(Onramp) && Plan::Onmeta.serves(Offramp));
        assert!(!Plan::Onmeta.serves(Mint));
        assert!(Plan::Partner.serves(Mint) && Plan::Partner.serves(Redeem));
        assert!(!Plan::Onmeta.serves(Redeem));
        assert!(!Plan::Partner.serves(Onramp) && !Plan::Partner.serves(Offramp));
        for p in Plan::ALL {
            assert_eq!(Plan::parse(p.as_str()), Some(p));
        }
        assert_eq!(Plan::parse("bunq"), None);
    }

    #[test]
    fn orders_without_a_provider_are_onmeta() {
        let r = ProviderRef::default();
        assert_eq!((r.name.as_str(), r.plan), ("onmeta", Plan::Onmeta));
    }
}
