//! Operability end to end: the order's trace (received over OTLP/HTTP), redaction of
//! secrets and personal data in logs and spans, the metrics and health endpoints, and
//! every admin command. A binary of its own, because the tracing subscriber it installs
//! is process-wide.

mod admin;
mod capture;
mod commands;
mod dlq;
mod metrics;
mod nats_setup;
mod publish;
mod trace;
mod warnings;
