//! The process-wide TLS provider.

/// Install ring as the process-wide TLS provider (deps.md §2). Idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
