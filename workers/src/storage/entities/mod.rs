//! sea-orm entities, one module per table of `rampd-migrations`.
//!
//! Conventions (same on PostgreSQL and SQLite): times are `i64` unix epoch milliseconds,
//! ids are `String`, JSON is a `String` holding serialized JSON, flags are `bool`.

pub mod order_events;
pub mod orders;
pub mod outbox;
pub mod processed_commands;
pub mod provider_callbacks;
pub mod scheduled_tasks;
pub mod webhook_attempts;
pub mod webhook_deliveries;
pub mod webhook_endpoint_secrets;
pub mod webhook_endpoints;
