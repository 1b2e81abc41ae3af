//! Operations: the admin HTTP port ([`http`]: metrics, health) with its database gauges
//! ([`gauges`]), and the operator commands ([`cli`]: `rampd orders …`, `rampd tasks …`)
//! built on [`orders`] (read) and [`actions`] (cancel, resolve, retry now).

pub mod actions;
pub mod callbacks;
pub mod cli;
pub mod commands;
pub mod dlq;
pub mod duration;
pub mod gauges;
pub mod http;
pub mod orders;
pub mod publish;
pub mod table;
