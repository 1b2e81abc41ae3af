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

/// Why a worker on `cfg` cannot start (it must not): the whole error chain.
async fn refusal(cfg: &rampd::config::Config, why: &str) -> String {
    let refused = Worker::start(cfg.clone()).await.err().expect(why);
    format!("{refused:#}")
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
    let down = rampd_e2e::hooks::DownPort::new();
    let mut cfg = config(
        format!("nats://127.0.0.1:{}, {}", down.port(), nats.url),
        &dir,
    );

    let text = refusal(&cfg, "no token, no connection").await;
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

/// Run `openssl` with `args` in `dir`; the test needs it (Debian's `openssl` package).
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package) runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the
/// CA, as PEM files in `dir`: `ca.pem`, `server.pem`/`server.key`, `client.pem`/`client.key`.
fn certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=rampd test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let ext_file = format!("{name}.ext");
        std::fs::write(dir.join(&ext_file), ext).unwrap();
        let subj = format!("/CN=rampd test {name}");
        let mut req = vec!["req", "-new", "-subj", &subj];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext_file,
                "-out",
                &pem,
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_connects_and_without_the_ca_is_refused() {
    capture();
    let dir = temp_dir();
    certificates(&dir);
    let file = |n: &str| dir.join(n).display().to_string();
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    // Mutual TLS: the server asks for a client certificate signed by the CA.
    let nats = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
        "--tlscacert",
        &ca,
        "--tlsverify",
    ])
    .await
    .unwrap();
    let mut cfg = config(nats.url.clone(), &dir);
    cfg.nats.tls_required = true;

    let text = refusal(
        &cfg,
        "the server's certificate is not trusted without the CA",
    )
    .await;
    assert!(
        text.contains("cannot connect to NATS at 127.0.0.1:") && text.contains("UnknownIssuer"),
        "{text}"
    );

    cfg.nats.tls_ca_file = Some(dir.join("ca.pem"));
    let text = refusal(&cfg, "the server requires a client certificate").await;
    assert!(
        text.contains("cannot connect to NATS") && text.contains("BadCertificate"),
        "{text}"
    );

    cfg.nats.tls_cert_file = Some(dir.join("client.pem"));
    cfg.nats.tls_key_file = Some(dir.join("client.key"));
    let worker = Worker::start(cfg).await.expect("mutual TLS connects");
    let ready: Value = reqwest::get(format!("http://{}/readyz", worker.admin_addr.unwrap()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    worker.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey_connects_and_its_seed_is_never_logged() {
    let cap = capture();
    let dir = temp_dir();
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let nats = NatsServer::start_with(&["-c", &conf.display().to_string()])
        .await
        .unwrap();
    let mut cfg = config(nats.url.clone(), &dir);
    cfg.nats.nkey_seed = Some(SecretString::from(
        nkeys::KeyPair::new_user().seed().unwrap(),
    ));
    assert!(
        Worker::start(cfg.clone()).await.is_err(),
        "another user's seed is refused"
    );

    cfg.nats.nkey_seed = Some(SecretString::from(seed.clone()));
    let worker = Worker::start(cfg).await.expect("the nkey is accepted");
    let client = async_nats::ConnectOptions::with_nkey(seed.clone())
        .connect(&nats.url)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_stream("RAMP_CMD").await.expect("streams created");
    worker.kill().await;
    assert!(!cap.logs().contains(&seed), "the seed is in a log line");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_password_connect_and_the_password_is_never_logged() {
    let cap = capture();
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let nats = NatsServer::start_with(&["--user", "rampd", "--pass", &password])
        .await
        .unwrap();
    let dir = temp_dir();
    let mut cfg = config(nats.url.clone(), &dir);
    cfg.nats.user = Some("rampd".into());
    cfg.nats.password = Some(SecretString::from("not-the-password"));
    assert!(
        Worker::start(cfg.clone()).await.is_err(),
        "a wrong password is refused"
    );
    cfg.nats.password = Some(SecretString::from(password.clone()));
    let worker = Worker::start(cfg).await.expect("the password is accepted");
    worker.kill().await;
    assert!(
        !cap.logs().contains(&password),
        "the password is in a log line"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A NATS JWT (decentralised auth) for `claims`, issued and signed by `issuer`.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        "iat": chrono::Utc::now().timestamp(),
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!("{header}.{}", b64.encode(claims.to_string()));
    let signature = b64.encode(issuer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creds_file_connects_and_a_missing_one_is_named() {
    let cap = capture();
    let dir = temp_dir();
    // Decentralised auth: an operator, its system account, an account with JetStream, a
    // user of that account.
    let operator = nkeys::KeyPair::new_operator();
    let system = nkeys::KeyPair::new_account();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "test operator",
        serde_json::json!({
            "type": "operator", "version": 2, "system_account": system.public_key(),
        }),
    );
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({ "type": "account", "version": 2 }),
    );
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "rampd",
        serde_json::json!({
            "type": "account", "version": 2,
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
            },
        }),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "rampd worker",
        serde_json::json!({ "type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1 }),
    );
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{ {sys}: {system_jwt}, {acc}: {account_jwt} }}\n",
            sys = system.public_key(),
            acc = account.public_key(),
        ),
    )
    .unwrap();
    let seed = user.seed().unwrap();
    let creds = dir.join("rampd.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .unwrap();
    let nats = NatsServer::start_with(&["-c", &conf.display().to_string()])
        .await
        .unwrap();
    let mut cfg = config(nats.url.clone(), &dir);

    cfg.nats.creds_file = Some(dir.join("missing.creds"));
    let text = refusal(&cfg, "no such file").await;
    assert!(
        text.contains("NATS credentials file") && text.contains("missing.creds"),
        "{text}"
    );
    cfg.nats.creds_file = None;
    assert!(
        Worker::start(cfg.clone()).await.is_err(),
        "without credentials, refused"
    );

    cfg.nats.creds_file = Some(creds);
    let worker = Worker::start(cfg)
        .await
        .expect("the creds file is accepted");
    let addr = worker.admin_addr.expect("admin port");
    let ready: Value = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    worker.kill().await;
    assert!(!cap.logs().contains(&seed), "the seed is in a log line");
    let _ = std::fs::remove_dir_all(&dir);
}
