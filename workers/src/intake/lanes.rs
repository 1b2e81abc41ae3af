//! Fair intake: one durable pull consumer per tenant ("lane") over the command stream.
//!
//! A single consumer is one FIFO for every tenant: 100,000 commands from one tenant ahead of
//! another tenant's payment hold that payment until they are all handled. With a lane per
//! tenant (filter `ramp.cmd.<tenant>.>`, durable name `<consumer>-<tenant>`), every tenant
//! has its own place in the stream. A lane handles up to `nats.lane_concurrency` commands
//! at once (one order's commands one after another, in stream order), and every command
//! also waits for a permit of one FIFO semaphore (`nats.intake_concurrency`), so busy
//! tenants take turns: a tenant's next command waits for at most one command of each other
//! busy tenant, whatever their backlog, and no tenant holds more than its lane's share.
//!
//! Lanes are found by asking the stream which subjects hold messages
//! (`STREAM.INFO` with a subjects filter) at start and every `nats.lane_discovery_ms`.
//! The lane of a subject is its first token after `ramp.cmd.` (a subject with a malformed
//! tenant gets a lane too, so that its messages are dead-lettered rather than left unread).
//! A new lane starts where the single consumer of earlier versions stood (its ack floor),
//! if that consumer exists, so an upgrade replays nothing but the unacknowledged tail
//! (which the inbox absorbs); otherwise at the start of the stream. Every replica creates
//! the same durable consumers, so replicas share each lane's messages.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, stream::Stream};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{NatsConfig, ms};
use crate::nats::CMD_SUBJECTS;
use crate::shared::Shared;

const PREFIX: &str = "ramp.cmd.";

/// The consumer filter of the lane that `subject` belongs to: `ramp.cmd.<token>.>`, or the
/// subject itself when nothing follows the token. `None` outside the command subjects.
pub fn lane_of(subject: &str) -> Option<String> {
    let rest = subject.strip_prefix(PREFIX)?;
    match rest.split_once('.') {
        Some((token, _)) if !token.is_empty() => Some(format!("{PREFIX}{token}.>")),
        None if !rest.is_empty() => Some(subject.to_string()),
        _ => None,
    }
}

/// The durable name of a lane: `<prefix>-<tenant>` for a well-formed tenant token, else
/// `<prefix>-x<16 hex of its SHA-256>` (durable names cannot hold every subject character).
pub fn durable_name(prefix: &str, lane: &str) -> String {
    let token = lane
        .strip_prefix(PREFIX)
        .map(|t| t.strip_suffix(".>").unwrap_or(t))
        .unwrap_or(lane);
    let plain = !token.is_empty()
        && token.len() <= 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        format!("{prefix}-{token}")
    } else {
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{prefix}-x{hex}")
    }
}

/// The lanes for `subjects` that `filter` admits and that are not served yet, in order,
/// without exceeding `max` lanes in all.
pub fn new_lanes<'a>(
    subjects: impl IntoIterator<Item = &'a str>,
    filter: &str,
    served: &BTreeSet<String>,
    max: usize,
) -> Vec<String> {
    let found: BTreeSet<String> = subjects
        .into_iter()
        .filter(|s| subject_matches(filter, s))
        .filter_map(lane_of)
        .filter(|l| !served.contains(l))
        .collect();
    found
        .into_iter()
        .take(max.saturating_sub(served.len()))
        .collect()
}

/// NATS subject matching: `*` is one token, a final `>` is one or more.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `nats.consumer_filter` chooses whole tenants: every command (`ramp.cmd.>`, the default)
/// or one tenant's (`ramp.cmd.<tenant>.>`), since each tenant's lane takes all of its
/// commands.
pub fn validate_filter(filter: Option<&str>) -> anyhow::Result<()> {
    let Some(f) = filter else { return Ok(()) };
    let tenant_wide = f == CMD_SUBJECTS
        || f == "ramp.cmd.*.>"
        || f.strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(".>"))
            .is_some_and(|t| !t.is_empty() && !t.contains(['.', '*', '>']));
    if tenant_wide {
        Ok(())
    } else {
        anyhow::bail!(
            "nats.consumer_filter {f:?} must select whole tenants: \"ramp.cmd.>\" or \"ramp.cmd.<tenant>.>\""
        )
    }
}

/// Serve every tenant's lane until `shutdown`, finding new tenants as they appear.
pub async fn run(shared: Shared, stream: Stream, shutdown: CancellationToken) {
    let cfg = shared.cfg.nats.clone();
    let permits = Arc::new(Semaphore::new(cfg.intake_concurrency.max(1)));
    let filter = cfg
        .consumer_filter
        .clone()
        .unwrap_or_else(|| CMD_SUBJECTS.to_string());
    let mut served: BTreeSet<String> = BTreeSet::new();
    let mut lanes = JoinSet::new();
    let mut warned_full = false;
    while !shutdown.is_cancelled() {
        match discover(&stream, &filter, &served, cfg.max_lanes).await {
            Ok((fresh, more)) => {
                for lane in fresh {
                    match consumer(&stream, &cfg, &lane).await {
                        Ok(c) => {
                            tracing::info!(lane, "serving a new tenant's commands");
                            served.insert(lane);
                            lanes.spawn(super::run(
                                shared.clone(),
                                c,
                                permits.clone(),
                                shutdown.clone(),
                            ));
                        }
                        Err(e) => {
                            tracing::warn!(lane, error = %e, "tenant consumer unavailable; retrying")
                        }
                    }
                }
                if more && !warned_full {
                    tracing::warn!(
                        max_lanes = cfg.max_lanes,
                        "more tenants than nats.max_lanes: the others' commands wait"
                    );
                    warned_full = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "command stream unavailable; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(ms(cfg.lane_discovery_ms)) => {}
        }
    }
    while lanes.join_next().await.is_some() {}
}

/// Lanes to start now, and whether `max_lanes` left some out.
async fn discover(
    stream: &Stream,
    filter: &str,
    served: &BTreeSet<String>,
    max: usize,
) -> anyhow::Result<(Vec<String>, bool)> {
    let mut subjects = Vec::new();
    let mut listed = stream.info_with_subjects(filter).await?;
    while let Some(s) = listed.next().await {
        subjects.push(s?.0);
    }
    let mut fresh = new_lanes(
        subjects.iter().map(String::as_str),
        filter,
        served,
        usize::MAX,
    );
    let room = max.saturating_sub(served.len());
    let more = fresh.len() > room;
    fresh.truncate(room);
    Ok((fresh, more))
}

/// The lane's durable consumer, created if it does not exist yet.
async fn consumer(
    stream: &Stream,
    cfg: &NatsConfig,
    lane: &str,
) -> anyhow::Result<jetstream::consumer::PullConsumer> {
    let name = durable_name(&cfg.consumer, lane);
    if let Ok(existing) = stream.get_consumer(&name).await {
        return Ok(existing);
    }
    // Where the single consumer of earlier versions stood, if it is still there.
    let deliver_policy = match stream
        .get_consumer::<jetstream::consumer::pull::Config>(&cfg.consumer)
        .await
    {
        Ok(mut legacy) => match legacy.info().await {
            Ok(info) => DeliverPolicy::ByStartSequence {
                start_sequence: info.ack_floor.stream_sequence + 1,
            },
            Err(_) => DeliverPolicy::All,
        },
        Err(_) => DeliverPolicy::All,
    };
    Ok(stream
        .get_or_create_consumer(
            &name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ms(cfg.ack_wait_ms),
                max_deliver: cfg.max_deliver,
                max_ack_pending: 1024,
                filter_subject: lane.to_string(),
                deliver_policy,
                ..Default::default()
            },
        )
        .await?)
}

/// How long a lane waits after its pull stream broke before pulling again.
pub(super) const RESUBSCRIBE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_the_tenant_token() {
        assert_eq!(
            lane_of("ramp.cmd.acme.onramp.create").as_deref(),
            Some("ramp.cmd.acme.>")
        );
        assert_eq!(
            lane_of("ramp.cmd.acme.order.cancel").as_deref(),
            Some("ramp.cmd.acme.>")
        );
        // A subject with a malformed tenant has a lane too: its messages are dead-lettered.
        assert_eq!(
            lane_of("ramp.cmd.bad$tenant.onramp.create").as_deref(),
            Some("ramp.cmd.bad$tenant.>")
        );
        assert_eq!(
            lane_of("ramp.cmd.lonely").as_deref(),
            Some("ramp.cmd.lonely")
        );
        assert_eq!(lane_of("ramp.evt.acme.x"), None);
        assert_eq!(lane_of("ramp.cmd."), None);
        assert_eq!(lane_of("ramp.cmd..x"), None);
    }

    #[test]
    fn durable_names_are_readable_or_hashed() {
        assert_eq!(durable_name("rampd", "ramp.cmd.acme.>"), "rampd-acme");
        assert_eq!(durable_name("rampd", "ramp.cmd.t_1-b.>"), "rampd-t_1-b");
        let odd = durable_name("rampd", "ramp.cmd.bad$tenant.>");
        assert!(
            odd.starts_with("rampd-x") && odd.len() == "rampd-x".len() + 16,
            "{odd}"
        );
        assert_ne!(odd, durable_name("rampd", "ramp.cmd.bad%tenant.>"));
        assert_eq!(
            durable_name("rampd", "ramp.cmd.lonely"),
            "rampd-lonely",
            "a bare token names the same tenant"
        );
    }

    #[test]
    fn new_lanes_respect_the_filter_what_is_served_and_the_cap() {
        let subjects = [
            "ramp.cmd.acme.onramp.create",
            "ramp.cmd.acme.onramp.utr",
            "ramp.cmd.beta.offramp.create",
            "ramp.cmd.zeta.order.cancel",
        ];
        let none = BTreeSet::new();
        assert_eq!(
            new_lanes(subjects, "ramp.cmd.>", &none, 10),
            ["ramp.cmd.acme.>", "ramp.cmd.beta.>", "ramp.cmd.zeta.>"]
        );
        assert_eq!(
            new_lanes(subjects, "ramp.cmd.acme.>", &none, 10),
            ["ramp.cmd.acme.>"]
        );
        assert_eq!(
            new_lanes(subjects, "ramp.cmd.*.offramp.*", &none, 10),
            ["ramp.cmd.beta.>"]
        );
        let served: BTreeSet<String> = ["ramp.cmd.acme.>".to_string()].into();
        assert_eq!(
            new_lanes(subjects, "ramp.cmd.>", &served, 10),
            ["ramp.cmd.beta.>", "ramp.cmd.zeta.>"]
        );
        assert_eq!(
            new_lanes(subjects, "ramp.cmd.>", &served, 2),
            ["ramp.cmd.beta.>"]
        );
        assert!(new_lanes(subjects, "ramp.cmd.>", &served, 1).is_empty());
    }

    #[test]
    fn the_filter_selects_whole_tenants() {
        for ok in [
            None,
            Some("ramp.cmd.>"),
            Some("ramp.cmd.*.>"),
            Some("ramp.cmd.acme.>"),
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "ramp.cmd.*.onramp.*",
            "ramp.cmd.acme.onramp.>",
            "ramp.evt.>",
            "ramp.cmd.>.x",
        ] {
            assert!(validate_filter(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn subject_matching() {
        assert!(subject_matches("ramp.cmd.>", "ramp.cmd.a.b"));
        assert!(!subject_matches("ramp.cmd.>", "ramp.cmd"));
        assert!(subject_matches("ramp.cmd.*.x", "ramp.cmd.a.x"));
        assert!(!subject_matches("ramp.cmd.*.x", "ramp.cmd.a.y"));
        assert!(subject_matches("ramp.cmd.a", "ramp.cmd.a"));
        assert!(!subject_matches("ramp.cmd.a", "ramp.cmd.a.b"));
    }
}
