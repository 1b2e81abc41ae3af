//! How rampd meets its NATS: a URL list, credentials that never reach the logs, and
//! streams that exist with other settings (reported, never rewritten).

use std::time::Duration;

use async_nats::jetstream::stream;
use rampd::app::Worker;
use rampd::natsd::NatsServer;
use rampd_e2e::{test_config, wait_for};
use secrecy::SecretString;
use serde_json::Value;

use crate::capture::capture;

/// A worker config on a SQLite file of its own and `nats_url`.
fn config(nats_url: String, dir: &std::path::Path) -> rampd::config::Config {
    let mut cfg = test_config("acme");
    cfg.database_url = format!("sqlite://{}/rampd.db", dir.display());
    cfg.nats_url = nats_url;
    cfg.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rampd-nats-setup-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_connects_and_is_never_logged() {
    let cap = capture();
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let nats = NatsServer::start_with(&["--auth", &token]).await.unwrap();
    let dir = temp_dir();
    // A list whose first server is down: the client goes on to the next.
    let down = rampd::natsd::free_port().unwrap();
    let mut cfg = config(format!("nats://127.0.0.1:{down}, {}", nats.url), &dir);

    let refused = Worker::start(cfg.clone())
        .await
        .err()
        .expect("no token, no connection");
    let text = format!("{refused:#}");
    assert!(
        text.contains("cannot connect to NATS at 127.0.0.1:"),
        "{text}"
    );

    cfg.nats.token = Some(SecretString::from(token.clone()));
    let worker = Worker::start(cfg).await.expect("the token is accepted");
    let client = async_nats::ConnectOptions::with_token(token.clone())
        .connect(&nats.url)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream("RAMP_CMD").await.expect("streams created");
    assert_eq!(s.info().await.unwrap().config.num_replicas, 1);
    worker.kill().await;
    assert!(!cap.logs().contains(&token), "the token is in a log line");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_other_settings_is_reported_not_rewritten() {
    capture();
    let nats = NatsServer::start().await.unwrap();
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    // An operator created the event stream by hand, keeping events one hour.
    js.create_stream(stream::Config {
        name: "RAMP_EVT".into(),
        subjects: vec!["ramp.evt.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = temp_dir();
    let worker = Worker::start(config(nats.url.clone(), &dir)).await.unwrap();
    let line = wait_for("the stream WARN", || {
        capture()
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["level"] == "WARN"
                    && v["stream"] == "RAMP_EVT"
                    && v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("stream exists with other settings"))
            })
    })
    .await;
    assert_eq!(
        line["differences"], "max_age 1h (configured 7days)",
        "{line}"
    );
    let addr = worker.admin_addr.expect("admin port");
    let ready: Value = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["streams"], "RAMP_EVT: max_age 1h (configured 7days)");
    let mut evt = js.get_stream("RAMP_EVT").await.unwrap();
    assert_eq!(
        evt.info().await.unwrap().config.max_age,
        Duration::from_secs(3600),
        "left as the operator made it"
    );
    let mut cmd = js.get_stream("RAMP_CMD").await.unwrap();
    assert_eq!(
        cmd.info().await.unwrap().config.max_age,
        Duration::from_secs(7 * 86400)
    );
    worker.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
