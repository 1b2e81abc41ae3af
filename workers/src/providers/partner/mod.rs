//! The stablecoin Partner API (provider-docs 002 = v2.8.0, 004 = v2.5.0; facts and gaps in
//! `providers.md` §4). Mint: deposit request → confirmation request → the mint credit seen
//! in the on-chain history. Redeem: the user's transfer verified in that history → the
//! tenant pays fiat → the payout reported with the fiat-transfer PUT.
//!
//! This module holds the connector's wire formats ([`wire`]) and what it concludes from
//! the on-chain history ([`history`]), both pure. The HTTP client and the order machine's
//! step plan for this provider come with the provider seam (issue 11).

pub mod history;
pub mod wire;
