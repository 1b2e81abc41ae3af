//! The stablecoin Partner API (provider-docs 002 = v2.8.0, 004 = v2.5.0; facts and gaps in
//! `providers.md` §4). Mint: deposit request → confirmation request → the mint credit seen
//! in the on-chain history. Redeem: the user's transfer verified in that history → the
//! tenant pays fiat → the payout reported with the fiat-transfer PUT.
//!
//! [`client`] makes the calls; [`wire`] parses what they answer and [`history`] concludes
//! from the on-chain history, both pure; [`steps`] runs the order machine's Partner plan
//! (`rampd_domain::order`, `partner.rs`) on them, for mints and redeems.

pub mod client;
pub mod history;
#[cfg(test)]
mod sandbox_tests;
pub mod steps;
pub mod wire;
