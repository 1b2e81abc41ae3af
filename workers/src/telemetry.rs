//! Logging setup. Structured logs (JSON with `RAMPD_LOG_FORMAT=json`), filtered by
//! `RUST_LOG` (default `info`, with chatty dependencies quieted).

use tracing_subscriber::EnvFilter;

pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default_filter},sqlx=warn,sea_orm=warn,sea_orm_migration=warn,async_nats=warn,hyper=warn,reqwest=warn"
        ))
    });
    let json = std::env::var("RAMPD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
