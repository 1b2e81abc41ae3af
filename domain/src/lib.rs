//! rampd's functional core.
//!
//! Everything here is pure: no I/O, no clock reads, no randomness. Time and jitter come in
//! as arguments, so every decision can be replayed and tested. The imperative shell
//! (`workers/`) loads an order, asks this crate what to do, carries the effects out and
//! persists the outcome in one transaction.

pub mod budget;
pub mod chain_values;
pub mod command;
pub mod command_identity;
pub mod event;
pub mod order;
pub mod provider;
pub mod retry_after;
pub mod schedule;
pub mod supported_chains;
pub mod values;
pub mod webhooks;

use serde::{Deserialize, Serialize};

/// Which way the money flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Fiat in, crypto out.
    Onramp,
    /// Crypto in, fiat out.
    Offramp,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Onramp => "onramp",
            Direction::Offramp => "offramp",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        [Direction::Onramp, Direction::Offramp]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}
