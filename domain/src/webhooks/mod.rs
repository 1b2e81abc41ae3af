//! Webhook delivery rules, pure: the retry ladder, what an attempt's result means, endpoint
//! health, which target addresses are allowed, response excerpts, subscriptions and the
//! operational events. The shell (`workers/src/webhooks/`) does the HTTP and the writes.

pub mod address;
pub mod events;
pub mod excerpt;
pub mod health;
pub mod retry;
pub mod special_purpose;
pub mod subscription;
pub mod verdict;

pub use address::{AddressPolicy, IpNet};
pub use retry::RetryPolicy;
pub use subscription::EventTypes;
pub use verdict::{AttemptResult, FailureKind, Verdict, judge};
