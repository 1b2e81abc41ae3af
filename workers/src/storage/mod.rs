//! Persistence: sea-orm entities, connecting, migrating, the decision write path and
//! leased claims.

pub mod apply;
pub mod connect;
pub mod entities;
pub mod group_commit;
pub mod handoff;
pub mod lease;
pub mod many_rows;
pub mod orders;
pub mod plan;
pub mod retention;
pub mod write;
pub mod write_error;

pub use connect::{
    Create, OpenError, begin_write, connect, is_sqlite, is_unique_violation, migrate,
    migrations_pending, open, redact_url,
};

#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod tenant_scoping_tests;
#[cfg(test)]
pub(crate) mod test_db;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;
