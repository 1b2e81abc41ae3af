//! NATS plumbing: connection, idempotent stream/consumer setup, trace headers.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_nats::ServerAddr;
use async_nats::jetstream::{self, stream};
use secrecy::ExposeSecret;

use crate::config::{Config, NatsConfig};

pub const CMD_SUBJECTS: &str = "ramp.cmd.>";
pub const EVT_SUBJECTS: &str = "ramp.evt.>";
pub const DLQ_SUBJECTS: &str = "ramp.dlq.>";

/// The servers of a NATS URL list: comma-separated, as NATS clients conventionally take
/// them (`nats://a:4222,nats://b:4222`; a bare `host:port` means `nats://`). The client
/// connects to one of them and learns the rest of the cluster from it.
pub fn servers(urls: &str) -> anyhow::Result<Vec<ServerAddr>> {
    let list: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if list.is_empty() {
        anyhow::bail!("NATS URL is empty");
    }
    list.iter()
        .enumerate()
        .map(|(i, u)| {
            u.parse::<ServerAddr>().map_err(|e| {
                let shown = crate::telemetry::warnings::nats_servers(u);
                anyhow::anyhow!(
                    "NATS URL {} of the list ({shown}) does not parse: {e}",
                    i + 1
                )
            })
        })
        .collect()
}

/// Connection options with the credentials and TLS settings of `cfg` (never logged), and
/// its server order.
pub async fn options(cfg: &NatsConfig) -> anyhow::Result<async_nats::ConnectOptions> {
    let mut o = async_nats::ConnectOptions::new();
    if cfg.servers_in_order {
        o = o.retain_servers_order();
    }
    if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
        o = o.user_and_password(user.clone(), password.expose_secret().to_string());
    }
    if let Some(token) = &cfg.token {
        o = o.token(token.expose_secret().to_string());
    }
    if let Some(seed) = &cfg.nkey_seed {
        o = o.nkey(seed.expose_secret().to_string());
    }
    if let Some(path) = &cfg.creds_file {
        o = o
            .credentials_file(path)
            .await
            .map_err(|e| anyhow::anyhow!("NATS credentials file {}: {e}", path.display()))?;
    }
    if cfg.tls_required {
        o = o.require_tls(true);
    }
    if let Some(ca) = &cfg.tls_ca_file {
        o = o.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
        o = o.add_client_certificate(cert.clone(), key.clone());
    }
    Ok(o)
}

/// Connect as worker `cfg.worker_id` to any server of `cfg.nats_url`. Disconnects,
/// reconnects and server or client errors are logged at WARN
/// (`telemetry::warnings::nats_event`).
pub async fn connect(cfg: &Config) -> anyhow::Result<async_nats::Client> {
    let servers = servers(&cfg.nats_url)?;
    let worker = Arc::new(cfg.worker_id.clone());
    let server = Arc::new(crate::telemetry::warnings::nats_servers(&cfg.nats_url));
    let seen_connected = Arc::new(AtomicBool::new(false));
    options(&cfg.nats)
        .await?
        .name(format!("rampd {}", cfg.worker_id))
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let (worker, server, seen) = (worker.clone(), server.clone(), seen_connected.clone());
            async move {
                crate::telemetry::warnings::nats_event(&event, &seen, &worker, &server);
            }
        })
        .connect(servers)
        .await
        .map_err(|e| {
            let at = crate::telemetry::warnings::nats_servers(&cfg.nats_url);
            anyhow::anyhow!("cannot connect to NATS at {at}: {e}")
        })
}

fn stream_config(name: &str, subject: &str, cfg: &NatsConfig, max_age: Duration) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![subject.to_string()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
        max_age,
        num_replicas: cfg.stream_replicas,
        ..Default::default()
    }
}

/// How an existing stream's settings differ from those rampd would create it with, as
/// `setting stored (configured …)` phrases; empty when they agree.
pub fn drift(found: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |what: &str, found: String, wanted: String| {
        if found != wanted {
            out.push(format!("{what} {found} (configured {wanted})"));
        }
    };
    differs(
        "subjects",
        found.subjects.join(","),
        wanted.subjects.join(","),
    );
    differs(
        "storage",
        format!("{:?}", found.storage).to_lowercase(),
        format!("{:?}", wanted.storage).to_lowercase(),
    );
    differs(
        "num_replicas",
        found.num_replicas.max(1).to_string(),
        wanted.num_replicas.max(1).to_string(),
    );
    differs(
        "duplicate_window",
        humantime::format_duration(found.duplicate_window).to_string(),
        humantime::format_duration(wanted.duplicate_window).to_string(),
    );
    differs(
        "max_age",
        humantime::format_duration(found.max_age).to_string(),
        humantime::format_duration(wanted.max_age).to_string(),
    );
    out
}

/// The streams as rampd found them at start.
pub struct Topology {
    /// The command stream, whose per-tenant consumers the intake creates.
    pub commands: stream::Stream,
    /// For each stream whose settings differ from the configured ones: `NAME: what`.
    /// rampd never rewrites a stream; an operator does (`deploy/nats/`).
    pub drift: Vec<String>,
}

/// Create the command, event and dead-letter streams if they do not exist yet, with
/// `nats.stream_replicas` replicas. A stream that exists is used as it is: when its
/// settings differ from the configured ones, that is logged once at WARN and reported on
/// `/readyz`, never rewritten. Safe to call from every replica at every start.
pub async fn ensure_topology(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> anyhow::Result<Topology> {
    let week = Duration::from_secs(7 * 24 * 3600);
    let month = Duration::from_secs(30 * 24 * 3600);
    let mut drift = Vec::new();
    let commands = ensure(
        js,
        "command",
        stream_config(&cfg.command_stream, CMD_SUBJECTS, cfg, week),
        &mut drift,
    )
    .await?;
    let events = stream_config(&cfg.event_stream, EVT_SUBJECTS, cfg, week);
    ensure(js, "event", events, &mut drift).await?;
    let dead = stream_config(&cfg.dead_letter_stream, DLQ_SUBJECTS, cfg, month);
    ensure(js, "dead-letter", dead, &mut drift).await?;
    Ok(Topology { commands, drift })
}

/// One stream of [`ensure_topology`]: created as `config` if missing; otherwise how it
/// differs is logged and added to `drift`.
async fn ensure(
    js: &jetstream::Context,
    role: &str,
    config: stream::Config,
    drift_out: &mut Vec<String>,
) -> anyhow::Result<stream::Stream> {
    let name = config.name.clone();
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("{role} stream {name}: {e}");
    let stream = js
        .get_or_create_stream(config.clone())
        .await
        .map_err(|e| failed(&e))?;
    // The stream's info as the server answered the get or the create.
    let differences = drift(&stream.cached_info().config, &config);
    if !differences.is_empty() {
        let what = differences.join(", ");
        tracing::warn!(
            target: "rampd::nats",
            stream = %name,
            differences = %what,
            "stream exists with other settings than configured; rampd leaves it as it is \
             (deploy/nats/README.md shows how to change it)"
        );
        drift_out.push(format!("{name}: {what}"));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_is_split_on_commas() {
        let list = servers("nats://a:4222, nats://b:4223 ,c:4224").unwrap();
        let shown: Vec<String> = list
            .iter()
            .map(|s| format!("{}:{}", s.host(), s.port()))
            .collect();
        assert_eq!(shown, ["a:4222", "b:4223", "c:4224"]);
        assert_eq!(servers("nats://only:4222").unwrap().len(), 1);
    }

    #[test]
    fn a_bad_url_list_is_refused_without_its_credentials() {
        assert!(servers(" , ").is_err());
        let err = servers("nats://rampd:s3cret@a:4222,nats://rampd:s3cret@b:notaport")
            .unwrap_err()
            .to_string();
        assert!(err.contains("URL 2 of the list"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn drift_names_each_setting_that_differs() {
        let cfg = NatsConfig {
            stream_replicas: 3,
            ..NatsConfig::default()
        };
        let wanted = stream_config(
            "RAMP_CMD",
            CMD_SUBJECTS,
            &cfg,
            Duration::from_secs(7 * 86400),
        );
        assert!(drift(&wanted, &wanted).is_empty());
        let found = stream::Config {
            num_replicas: 1,
            max_age: Duration::from_secs(3600),
            ..wanted.clone()
        };
        assert_eq!(
            drift(&found, &wanted),
            [
                "num_replicas 1 (configured 3)",
                "max_age 1h (configured 7days)"
            ]
        );
        // A stream stored with replicas unset is one replica.
        let one = stream_config(
            "RAMP_CMD",
            CMD_SUBJECTS,
            &NatsConfig::default(),
            wanted.max_age,
        );
        let unset = stream::Config {
            num_replicas: 0,
            ..one.clone()
        };
        assert!(drift(&unset, &one).is_empty());
    }

    #[test]
    fn credentials_are_one_kind_and_replicas_in_range() {
        use secrecy::SecretString;
        assert!(NatsConfig::default().validate().is_ok());
        let two = NatsConfig {
            token: Some(SecretString::from("t")),
            nkey_seed: Some(SecretString::from("SU")),
            ..NatsConfig::default()
        };
        assert!(two.validate().is_err());
        let no_user = NatsConfig {
            password: Some(SecretString::from("p")),
            ..NatsConfig::default()
        };
        assert!(no_user.validate().is_err());
        let replicas = NatsConfig {
            stream_replicas: 7,
            ..NatsConfig::default()
        };
        assert!(replicas.validate().is_err());
        let debug = format!(
            "{:?}",
            NatsConfig {
                user: Some("rampd".into()),
                password: Some(SecretString::from("s3cret")),
                ..NatsConfig::default()
            }
        );
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
