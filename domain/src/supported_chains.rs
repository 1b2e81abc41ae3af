//! The chains orders may be placed on: the operator's allow-list (the chains the provider
//! account has tokens enabled on, Onmeta `GET /v1/tokens`), limited to chains whose address
//! and hash formats rampd knows, since every address and hash of an order is validated
//! against its chain's family.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::{ChainFamily, ChainId};

/// A non-empty set of chains, each of a family rampd knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u64>", into = "Vec<u64>")]
pub struct SupportedChains(Vec<ChainId>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupportedChainsError {
    #[error("name at least one chain id")]
    Empty,
    #[error("{0} is not a chain id whose address and hash formats rampd knows")]
    Unknown(u64),
}

impl SupportedChains {
    pub fn new(ids: impl IntoIterator<Item = u64>) -> Result<Self, SupportedChainsError> {
        let mut chains = Vec::new();
        for id in ids {
            let chain = ChainId::new(id)
                .ok()
                .filter(|c| c.family().is_some())
                .ok_or(SupportedChainsError::Unknown(id))?;
            chains.push(chain);
        }
        if chains.is_empty() {
            return Err(SupportedChainsError::Empty);
        }
        chains.sort();
        chains.dedup();
        Ok(SupportedChains(chains))
    }

    pub fn contains(&self, chain: ChainId) -> bool {
        self.0.binary_search(&chain).is_ok()
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(ChainId::get)
    }
}

impl Default for SupportedChains {
    /// Every chain whose family rampd knows; an operator narrows it to the chains the
    /// provider account has enabled.
    fn default() -> Self {
        let mut all = ChainId::KNOWN_EVM.to_vec();
        all.extend([ChainId::TRON, ChainId::SOLANA, ChainId::BITCOIN]);
        all.sort();
        SupportedChains(all)
    }
}

impl TryFrom<Vec<u64>> for SupportedChains {
    type Error = SupportedChainsError;
    fn try_from(ids: Vec<u64>) -> Result<Self, Self::Error> {
        Self::new(ids)
    }
}

impl From<SupportedChains> for Vec<u64> {
    fn from(c: SupportedChains) -> Vec<u64> {
        c.ids().collect()
    }
}

impl fmt::Display for SupportedChains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&ids.join(", "))
    }
}

/// Why a chain cannot carry an order, if it cannot: not on the allow-list, or (for an
/// on-ramp, whose receiver is an EVM address) not an EVM chain.
pub fn refuse_chain(
    chains: &SupportedChains,
    chain: ChainId,
    needs: Option<ChainFamily>,
) -> Option<&'static str> {
    if !chains.contains(chain) {
        return Some("not a chain this deployment's provider supports");
    }
    match needs {
        Some(family) if chain.family() != Some(family) => {
            Some("an on-ramp delivers to an EVM address; this chain is not an EVM chain")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_every_chain_of_a_known_family() {
        let d = SupportedChains::default();
        for id in [1, 10, 56, 137, 8453, 42161, 11155111, 728126428, 101, 8332] {
            assert!(d.contains(ChainId::new(id).unwrap()), "{id}");
        }
        for id in [2, 999999, 12345678901234567890] {
            assert!(!d.contains(ChainId::new(id).unwrap()), "{id}");
        }
        assert!(
            d.ids()
                .all(|id| ChainId::new(id).unwrap().family().is_some())
        );
    }

    #[test]
    fn parses_an_allow_list_of_known_chains_only() {
        let c = SupportedChains::new([137, 56, 137]).unwrap();
        assert_eq!(c.ids().collect::<Vec<_>>(), vec![56, 137]);
        assert!(!c.contains(ChainId::ETHEREUM));
        assert_eq!(
            SupportedChains::new([137, 999999]),
            Err(SupportedChainsError::Unknown(999999))
        );
        assert_eq!(
            SupportedChains::new([0]),
            Err(SupportedChainsError::Unknown(0))
        );
        assert_eq!(SupportedChains::new([]), Err(SupportedChainsError::Empty));
        let from_config: SupportedChains = serde_json::from_str("[80002, 137]").unwrap();
        assert_eq!(from_config.to_string(), "137, 80002");
        assert!(serde_json::from_str::<SupportedChains>("[12345678901234567890]").is_err());
    }

    #[test]
    fn refusals() {
        let c = SupportedChains::new([137, 728126428]).unwrap();
        let evm = Some(ChainFamily::Evm);
        assert_eq!(refuse_chain(&c, ChainId::POLYGON, evm), None);
        assert!(refuse_chain(&c, ChainId::ETHEREUM, evm).is_some());
        assert!(refuse_chain(&c, ChainId::new(12345678901234567890).unwrap(), None).is_some());
        assert!(refuse_chain(&c, ChainId::TRON, evm).is_some());
        assert_eq!(refuse_chain(&c, ChainId::TRON, None), None);
    }
}
