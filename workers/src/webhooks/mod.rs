//! Signed webhook delivery to tenant endpoints (Standard Webhooks).
//!
//! - [`endpoints`]: the endpoint registry (database rows, config upsert, secrets).
//! - [`sender`]: the leased delivery loop; [`http`]: one attempt over the pooled client;
//!   [`address_guard`]: SSRF checks at connect time; [`outcome`]: recording an attempt.
//! - [`admin`]: `rampd webhooks …` (endpoints, rotation, enable/disable, replay).
//! - [`signature`]: Standard Webhooks signing; [`vault`]: secrets sealed at rest.

pub mod address_guard;
pub mod admin;
pub mod endpoints;
pub mod http;
pub mod outcome;
pub mod sender;
pub mod signature;
pub mod vault;

pub use endpoints::{Endpoint, Endpoints};
pub use signature::{WebhookSecret, signature_header, verify};

#[cfg(test)]
mod http_tests;
