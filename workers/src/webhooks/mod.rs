//! Signed webhook delivery to tenant endpoints (Standard Webhooks).

pub mod endpoints;
pub mod sender;
pub mod signature;

pub use endpoints::{Endpoint, Endpoints};
pub use signature::{WebhookSecret, signature_header, verify};
