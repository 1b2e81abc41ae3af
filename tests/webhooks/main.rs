//! Webhook delivery end to end: the real worker and real HTTP receivers that answer as
//! scripted and check signatures with an independent Standard Webhooks verifier
//! (`support/verify.rs`, not rampd's signer). Every test runs on SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use rampd::config::{Config, EndpointConfig};
use rampd::sandbox::SandboxConfig;
use rampd::storage::entities::{
    webhook_attempts as attempts, webhook_deliveries as deliveries, webhook_endpoints as endpoints,
};
use rampd::webhooks::WebhookSecret;
use rampd::webhooks::admin::{DeliveryArgs, EndpointCmd, Selection, WebhooksCmd, execute};
use rampd_domain::order::OrderState;
use rampd_e2e::hooks::{DownPort, Hook, HookReceiver, Reply};
use rampd_e2e::{Backend, Stack, WAIT, both};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::SecretString;

mod endpoint_admin;

fn secret() -> String {
    WebhookSecret::generate().expose_text()
}

fn endpoint(id: &str, url: &str, secret: &str) -> EndpointConfig {
    EndpointConfig {
        id: id.into(),
        tenant: "acme".into(),
        url: url.into(),
        secret: SecretString::from(secret.to_string()),
        events: Vec::new(),
    }
}

/// Retries within a test's patience: 200 ms, then 400 ms.
fn quick_retries(cfg: &mut Config, max_attempts: i32) {
    cfg.webhooks.retry_schedule_ms = vec![200, 400];
    cfg.webhooks.max_attempts = max_attempts;
    cfg.webhooks.timeout_ms = 2_000;
}

async fn start(
    backend: Backend,
    endpoints: Vec<EndpointConfig>,
    tweak: impl FnOnce(&mut Config),
) -> Stack {
    Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        quick_retries(cfg, 8);
        cfg.webhooks.endpoints = endpoints;
        tweak(cfg);
    })
    .await
}

/// Poll an async condition until it yields `Some` (panics after [`WAIT`]).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries_of(s: &Stack, endpoint: &str) -> Vec<deliveries::Model> {
    deliveries::Entity::find()
        .filter(deliveries::Column::EndpointId.eq(endpoint))
        .order_by_asc(deliveries::Column::CreatedAt)
        .all(&s.db)
        .await
        .unwrap()
}

async fn attempts_of(s: &Stack, delivery: &str) -> Vec<attempts::Model> {
    attempts::Entity::find()
        .filter(attempts::Column::DeliveryId.eq(delivery))
        .order_by_asc(attempts::Column::StartedAt)
        .all(&s.db)
        .await
        .unwrap()
}

/// Wait until `n` deliveries to `endpoint` exist and all have `status`.
async fn all_in(s: &Stack, endpoint: &str, n: usize, status: &str) -> Vec<deliveries::Model> {
    eventually(
        &format!("{n} deliveries to {endpoint} {status}"),
        || async {
            let d = deliveries_of(s, endpoint).await;
            (d.len() >= n && d.iter().all(|d| d.status == status)).then_some(d)
        },
    )
    .await
}

async fn admin(s: &Stack, cmd: WebhooksCmd) -> String {
    execute(&s.db, &s.cfg, cmd).await.expect("admin command")
}

/// An order's first two events (`preparing`, `awaiting_payment`).
async fn order_awaiting_payment(s: &Stack, id: &str) {
    s.create(id).await;
    s.wait_state(id, OrderState::AwaitingPayment).await;
}

/// Wait until `n` webhooks of `order` were accepted.
async fn accepted_for(rx: &HookReceiver, order: &str, n: usize) -> Vec<Hook> {
    eventually(&format!("{n} webhooks of {order}"), || async {
        let h: Vec<_> = rx
            .accepted()
            .into_iter()
            .filter(|h| h.body["order_id"] == order)
            .collect();
        (h.len() >= n).then_some(h)
    })
    .await
}

fn delivery_ids(ds: &[deliveries::Model]) -> BTreeSet<String> {
    ds.iter().map(|d| d.id.clone()).collect()
}

fn ids(hooks: &[Hook]) -> BTreeSet<String> {
    hooks.iter().map(|h| h.webhook_id.clone()).collect()
}

// ---------------------------------------------------------------------------------------

/// Every state change arrives signed per the spec; the payload lets a receiver dedupe and
/// reorder; a rotation signs with old and new secret during the overlap, then only new.
async fn signatures_verify_independently_across_rotation(backend: Backend) {
    let (a, b, c) = (secret(), secret(), secret());
    let rx = HookReceiver::start(&[&a, &b, &c], Reply::Status(204)).await;
    let s = start(backend, vec![endpoint("e1", &rx.url, &a)], |_| {}).await;

    order_awaiting_payment(&s, "o-1").await;
    s.utr("o-1", "412345678901").await;
    s.wait_state("o-1", OrderState::Completed).await;
    let hooks = eventually("six webhooks", || async {
        let h = rx.accepted();
        (h.len() >= 6).then_some(h)
    })
    .await;
    let mut seqs = Vec::new();
    for h in &hooks {
        assert!(h.webhook_id.starts_with("msg_"), "{}", h.webhook_id);
        assert_eq!(
            h.verified_by,
            [true, false, false],
            "signed with the one secret"
        );
        assert_eq!(h.signature.split(' ').count(), 1);
        for k in ["event_id", "type", "order_id", "state", "sequence"] {
            assert!(!h.body[k].is_null(), "payload lacks {k}: {}", h.body);
        }
        assert_eq!(h.body["order_id"], "o-1");
        seqs.push(h.body["sequence"].as_i64().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    // The delivered body is byte-for-byte the stored one.
    let stored = deliveries_of(&s, "e1").await;
    for h in &hooks {
        let d = stored.iter().find(|d| d.id == h.webhook_id).unwrap();
        assert_eq!(d.body.as_bytes(), &h.raw[..]);
    }

    // Rotate to `b` with an hour of overlap: both sign.
    let out = admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::RotateSecret {
            id: "e1".into(),
            secret: Some(SecretString::from(b.clone())),
            overlap_secs: Some(3600),
        }),
    )
    .await;
    assert!(out.contains(&b), "the new secret is shown once");
    order_awaiting_payment(&s, "o-2").await;
    let during = accepted_for(&rx, "o-2", 2).await;
    for h in &during {
        assert_eq!(h.signature.split(' ').count(), 2);
        assert_eq!(h.verified_by, [true, true, false]);
    }

    // Rotate to `c` with no overlap: only `c` signs.
    admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::RotateSecret {
            id: "e1".into(),
            secret: Some(SecretString::from(c.clone())),
            overlap_secs: Some(0),
        }),
    )
    .await;
    order_awaiting_payment(&s, "o-3").await;
    let after = accepted_for(&rx, "o-3", 2).await;
    for h in &after {
        assert_eq!(h.verified_by, [false, false, true]);
    }
    // A restart with the config that still names `a` does not bring `a` back.
    let mut s = s;
    s.kill_worker().await;
    s.start_worker().await;
    order_awaiting_payment(&s, "o-4").await;
    for h in &accepted_for(&rx, "o-4", 2).await {
        assert_eq!(h.verified_by, [false, false, true]);
    }
    // The listing never shows a secret.
    let list = admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::List { tenant: None }),
    )
    .await;
    assert!(list.contains("e1") && list.contains("enabled"));
    for k in [&a, &b, &c] {
        assert!(!list.contains(k.as_str()));
    }
    s.finish().await;
}
both!(signatures_verify_independently_across_rotation);

/// An endpoint added on the command line gets only the event types it asked for, signed
/// with the secret printed at creation.
async fn endpoint_added_by_command_with_an_event_filter(backend: Backend) {
    let rx = HookReceiver::start(&[], Reply::Status(200)).await;
    let s = start(backend, vec![], |_| {}).await;
    let out = admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::Add {
            tenant: "acme".into(),
            url: rx.url.clone(),
            events: "order.status_changed".into(),
            id: Some("cli-1".into()),
            secret: None,
        }),
    )
    .await;
    let printed = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("secret shown")
        .to_string();
    let refused = execute(
        &s.db,
        &s.cfg,
        WebhooksCmd::Endpoint(EndpointCmd::Add {
            tenant: "acme".into(),
            url: "http://10.1.2.3/hooks".into(),
            events: "*".into(),
            id: None,
            secret: None,
        }),
    )
    .await;
    assert!(refused.is_err(), "a private address is refused at add time");

    // A second endpoint that wants only attention events.
    let other = HookReceiver::start(&[], Reply::Status(200)).await;
    admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::Add {
            tenant: "acme".into(),
            url: other.url.clone(),
            events: "order.attention_needed".into(),
            id: Some("cli-2".into()),
            secret: None,
        }),
    )
    .await;

    order_awaiting_payment(&s, "o-cli").await;
    let hooks = eventually("two webhooks", || async {
        let h = rx.accepted();
        (h.len() >= 2).then_some(h)
    })
    .await;
    // Deliveries are written with the events they carry: none exist for `cli-2`.
    assert!(deliveries_of(&s, "cli-2").await.is_empty());
    assert!(other.received().is_empty());
    for h in &hooks {
        assert!(
            rampd_e2e::verify::verify(
                &printed,
                &h.webhook_id,
                &h.timestamp,
                &h.signature,
                &h.raw,
                chrono::Utc::now().timestamp()
            )
            .is_ok()
        );
        assert_eq!(h.body["type"], "order.status_changed");
    }
    s.finish().await;
}
both!(endpoint_added_by_command_with_an_event_filter);

/// A receiver that is down and comes back gets everything, and nothing twice under the
/// same id once it accepted it.
async fn receiver_down_then_back(backend: Backend) {
    let key = secret();
    let port = DownPort::new();
    let url = format!("http://127.0.0.1:{}/hooks", port.port());
    let s = start(backend, vec![endpoint("e1", &url, &key)], |_| {}).await;
    order_awaiting_payment(&s, "o-a").await;
    order_awaiting_payment(&s, "o-b").await;
    // Every delivery failed at least once: connection refused.
    let ds = eventually("failed attempts", || async {
        let ds = deliveries_of(&s, "e1").await;
        let mut failed = 0;
        for d in &ds {
            let a = attempts_of(&s, &d.id).await;
            if a.first()
                .is_some_and(|a| a.error_kind.as_deref() == Some("connection_failed"))
            {
                failed += 1;
            }
        }
        (ds.len() >= 4 && failed == ds.len()).then_some(ds)
    })
    .await;

    let rx = HookReceiver::start_on(port, &[&key], Reply::Status(204)).await;
    let done = all_in(&s, "e1", ds.len(), "delivered").await;
    let accepted = rx.accepted();
    let per_id = accepted.iter().fold(BTreeMap::new(), |mut m, h| {
        *m.entry(h.webhook_id.clone()).or_insert(0) += 1;
        m
    });
    assert_eq!(
        per_id.keys().cloned().collect::<BTreeSet<_>>(),
        delivery_ids(&done)
    );
    assert!(
        per_id.values().all(|n| *n == 1),
        "accepted twice: {per_id:?}"
    );
    // The success ended the endpoint's failing streak.
    let ep = endpoints::Entity::find_by_id("e1".to_string())
        .one(&s.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ep.status.as_str(), ep.failing_since), ("enabled", None));
    assert!(accepted.iter().all(|h| h.verified_by == [true]));
    for d in &done {
        let a = attempts_of(&s, &d.id).await;
        assert!(a.len() >= 2);
        assert_eq!(a.last().unwrap().status_code, Some(204));
        let numbers: Vec<i32> = a.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, (1..=a.len() as i32).collect::<Vec<_>>());
    }
    s.finish().await;
}
both!(receiver_down_then_back);

/// Two replicas share one database and race on every retry of a failing receiver: no
/// attempt is ever made before the `run_at` the previous attempt scheduled (issue 9,
/// item 2: a replica working from stale candidates sent retries back to back). Without
/// jitter, the next attempt's `run_at` is the previous attempt's outcome time plus the
/// ladder's delay, and that time is after the previous attempt started.
async fn two_replicas_never_retry_early(backend: Backend) {
    const DELAY_MS: i64 = 300;
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(500)).await;
    let mut s = start(backend, vec![endpoint("e1", &rx.url, &key)], |cfg| {
        cfg.webhooks.retry_schedule_ms = vec![DELAY_MS as u64];
        cfg.webhooks.retry_jitter = 0.0;
        cfg.webhooks.max_attempts = 4;
    })
    .await;
    s.add_replica().await;
    for i in 0..8 {
        s.create(&format!("o-race-{i}")).await;
    }
    for i in 0..8 {
        s.wait_state(&format!("o-race-{i}"), OrderState::AwaitingPayment)
            .await;
    }
    let n = deliveries_of(&s, "e1").await.len();
    assert!(n >= 16, "{n} deliveries");
    let dead = all_in(&s, "e1", n, "dead").await;
    for d in &dead {
        let a = attempts_of(&s, &d.id).await;
        let numbers: Vec<i32> = a.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, [1, 2, 3, 4], "attempts of {}", d.id);
        for w in a.windows(2) {
            assert!(
                w[1].started_at >= w[0].started_at + DELAY_MS,
                "{}: attempt {} came {} ms after attempt {}, {DELAY_MS} ms were due",
                d.id,
                w[1].attempt,
                w[1].started_at - w[0].started_at,
                w[0].attempt
            );
        }
    }
    s.finish().await;
}
both!(two_replicas_never_retry_early);

/// 429 with `Retry-After: 2`: the next attempt is not made before two seconds (the ladder
/// alone would retry after about 200 ms).
async fn retry_after_is_honoured(backend: Backend) {
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(204)).await;
    rx.script([Reply::TooMany(2)]);
    let s = start(backend, vec![endpoint("e1", &rx.url, &key)], |_| {}).await;
    order_awaiting_payment(&s, "o-429").await;
    let ds = all_in(&s, "e1", 2, "delivered").await;
    let mut throttled = 0;
    for d in &ds {
        let a = attempts_of(&s, &d.id).await;
        if a[0].status_code == Some(429) {
            throttled += 1;
            assert_eq!(a.len(), 2);
            assert_eq!(a[1].status_code, Some(204));
            assert!(
                a[1].started_at - a[0].started_at >= 2_000,
                "retried {} ms after a Retry-After of 2 s",
                a[1].started_at - a[0].started_at
            );
        }
    }
    assert_eq!(throttled, 1);
    s.finish().await;
}
both!(retry_after_is_honoured);

/// 410 disables the endpoint (with an event); deliveries wait while it is disabled;
/// enabling tells how many it missed, and `--replay` sends them.
async fn gone_disables_and_enable_replays(backend: Backend) {
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(410)).await;
    let s = start(backend, vec![endpoint("e1", &rx.url, &key)], |_| {}).await;
    order_awaiting_payment(&s, "o-gone").await;
    let ev = s
        .wait_event("endpoint disabled", |e| {
            e["type"] == "webhook.endpoint_disabled"
        })
        .await;
    assert_eq!(ev["endpoint_id"], "e1");
    assert_eq!(ev["reason"], "gone");
    assert_eq!(ev["_subject"], "ramp.evt.acme.webhook.endpoint_disabled");
    assert_eq!(ev["_headers"]["msg_id"], ev["event_id"]);
    let held = all_in(&s, "e1", 2, "skipped").await;
    // The first 410 disables; a delivery already in flight beside it may get one too.
    let sent = rx.received().len();
    assert!((1..=2).contains(&sent), "{sent} requests");

    order_awaiting_payment(&s, "o-later").await;
    let held = all_in(&s, "e1", held.len() + 2, "skipped").await;
    assert_eq!(rx.received().len(), sent, "nothing sent while disabled");

    rx.set_default(Reply::Status(204));
    let out = admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::Enable {
            id: "e1".into(),
            replay: false,
        }),
    )
    .await;
    assert!(
        out.contains(&format!("missed {} deliveries", held.len())),
        "{out}"
    );
    let out = admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::Enable {
            id: "e1".into(),
            replay: true,
        }),
    )
    .await;
    assert!(out.contains(&format!("{} deliveries", held.len())), "{out}");
    let done = all_in(&s, "e1", held.len(), "delivered").await;
    assert_eq!(ids(&rx.accepted()), delivery_ids(&done));
    s.finish().await;
}
both!(gone_disables_and_enable_replays);

/// A timeout, a redirect (not followed) and private addresses, also inside IPv6 forms
/// (never contacted), are each recorded as failed attempts.
async fn timeout_redirect_and_private_address_fail(backend: Backend) {
    let key = secret();
    let slow = HookReceiver::start(&[&key], Reply::Sleep(Duration::from_secs(5))).await;
    let target = HookReceiver::start(&[&key], Reply::Status(204)).await;
    let redirect = HookReceiver::start(&[&key], Reply::Redirect(target.url.clone())).await;
    let s = start(
        backend,
        vec![
            endpoint("e-slow", &slow.url, &key),
            endpoint("e-redirect", &redirect.url, &key),
            endpoint("e-private", "http://10.255.255.1:9/hooks", &key),
            // Loopback is allowed in the tests; loopback inside an IPv6 form is not.
            endpoint("e-v4-compat", "http://[::127.0.0.1]:9/hooks", &key),
            endpoint("e-6to4", "http://[2002:7f00:1::1]:9/hooks", &key),
        ],
        |cfg| {
            quick_retries(cfg, 2);
            cfg.webhooks.timeout_ms = 300;
        },
    )
    .await;
    order_awaiting_payment(&s, "o-fail").await;
    for (ep, want_status, want_error) in [
        ("e-slow", None, Some("timeout")),
        ("e-redirect", Some(302), None),
        ("e-private", None, Some("address_refused")),
        ("e-v4-compat", None, Some("address_refused")),
        ("e-6to4", None, Some("address_refused")),
    ] {
        let ds = all_in(&s, ep, 2, "dead").await;
        for d in &ds {
            let a = attempts_of(&s, &d.id).await;
            assert_eq!(a.len(), 2, "{ep}");
            for a in &a {
                assert_eq!(a.status_code, want_status, "{ep}");
                assert_eq!(a.error_kind.as_deref(), want_error, "{ep}");
            }
        }
    }
    assert!(target.received().is_empty(), "a redirect was followed");
    s.finish().await;
}
both!(timeout_redirect_and_private_address_fail);

/// A dead-lettered delivery raises an event on NATS and can be replayed: by id, by order,
/// or everything dead since a time. The replay keeps the `webhook-id` and body.
async fn dead_letters_and_replay(backend: Backend) {
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(500)).await;
    let s = start(backend, vec![endpoint("e1", &rx.url, &key)], |cfg| {
        quick_retries(cfg, 3);
    })
    .await;
    let before = chrono::Utc::now();
    order_awaiting_payment(&s, "o-d1").await;
    order_awaiting_payment(&s, "o-d2").await;
    let dead = all_in(&s, "e1", 4, "dead").await;
    for d in &dead {
        assert_eq!(attempts_of(&s, &d.id).await.len(), 3);
        let ev = s
            .wait_event("dead-letter event", |e| {
                e["type"] == "webhook.delivery_dead_lettered" && e["webhook_id"] == d.id.as_str()
            })
            .await;
        assert_eq!(ev["attempts"], 3);
        assert_eq!(ev["last_status"], 500);
        assert!(ev.get("body").is_none());
    }
    // Every attempt is on record, found by the client's order id.
    let shown = admin(
        &s,
        WebhooksCmd::Deliveries(DeliveryArgs {
            what: Selection {
                order: Some("o-d1".into()),
                ..Default::default()
            },
            tenant: Some("acme".into()),
        }),
    )
    .await;
    assert_eq!(shown.matches("HTTP 500").count(), 2 * 3, "{shown}");
    assert!(shown.contains("#3 "), "{shown}");
    let all_dead = admin(
        &s,
        WebhooksCmd::Deliveries(DeliveryArgs {
            what: Selection {
                dead_since: Some(before),
                ..Default::default()
            },
            tenant: None,
        }),
    )
    .await;
    assert!(dead.iter().all(|d| all_dead.contains(&d.id)), "{all_dead}");
    rx.set_default(Reply::Status(204));

    // One delivery by id.
    let first = dead[0].clone();
    let out = admin(
        &s,
        WebhooksCmd::Replay(DeliveryArgs {
            what: Selection {
                delivery: Some(first.id.clone()),
                ..Default::default()
            },
            tenant: None,
        }),
    )
    .await;
    assert!(out.starts_with("1 deliveries"), "{out}");
    eventually("replayed delivery", || async {
        rx.accepted()
            .iter()
            .find(|h| h.webhook_id == first.id)
            .map(|h| assert_eq!(h.raw, first.body.as_bytes()))
    })
    .await;

    // One order's deliveries.
    let o2: Vec<_> = dead
        .iter()
        .filter(|d| d.order_id != first.order_id)
        .cloned()
        .collect();
    admin(
        &s,
        WebhooksCmd::Replay(DeliveryArgs {
            what: Selection {
                order: Some(o2[0].order_id.clone()),
                ..Default::default()
            },
            tenant: None,
        }),
    )
    .await;
    // Everything else dead since the start.
    admin(
        &s,
        WebhooksCmd::Replay(DeliveryArgs {
            what: Selection {
                dead_since: Some(before),
                ..Default::default()
            },
            tenant: None,
        }),
    )
    .await;
    all_in(&s, "e1", 4, "delivered").await;
    assert_eq!(ids(&rx.accepted()), delivery_ids(&dead));
    s.finish().await;
}
both!(dead_letters_and_replay);

/// A worker killed in the middle of a retry ladder: a new worker carries on from the
/// recorded attempt, with the same `webhook-id`.
async fn worker_restart_mid_ladder(backend: Backend) {
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(503)).await;
    let mut s = start(backend, vec![endpoint("e1", &rx.url, &key)], |cfg| {
        cfg.webhooks.retry_schedule_ms = vec![300, 1_500];
    })
    .await;
    order_awaiting_payment(&s, "o-r").await;
    let ds = eventually("two attempts each", || async {
        let ds = deliveries_of(&s, "e1").await;
        let mut ok = ds.len() >= 2;
        for d in &ds {
            ok &= d.attempt >= 2;
        }
        ok.then_some(ds)
    })
    .await;
    s.kill_worker().await;
    rx.set_default(Reply::Status(204));
    s.start_worker().await;
    let done = all_in(&s, "e1", ds.len(), "delivered").await;
    for d in &done {
        let a = attempts_of(&s, &d.id).await;
        assert!(a.len() >= 3);
        let numbers: Vec<i32> = a.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, (1..=a.len() as i32).collect::<Vec<_>>());
        let got: Vec<_> = rx
            .received()
            .into_iter()
            .filter(|h| h.webhook_id == d.id)
            .collect();
        // Every recorded attempt reached the receiver (a request cut off by the kill may
        // have reached it without a record).
        assert!(got.len() >= a.len());
        assert!(got.iter().all(|h| h.raw == d.body.as_bytes()));
        assert_eq!(got.iter().filter(|h| h.status == 204).count(), 1);
    }
    s.finish().await;
}
both!(worker_restart_mid_ladder);

/// One endpoint that holds every request does not starve another: the slow one has at
/// most its per-endpoint share in flight while the fast one gets everything.
async fn slow_endpoint_does_not_starve_others(backend: Backend) {
    let key = secret();
    let slow = HookReceiver::start(&[&key], Reply::Hold).await;
    let fast = HookReceiver::start(&[&key], Reply::Status(204)).await;
    let s = start(
        backend,
        vec![
            endpoint("e-slow", &slow.url, &key),
            endpoint("e-fast", &fast.url, &key),
        ],
        |cfg| {
            cfg.webhooks.timeout_ms = 60_000;
            cfg.webhooks.concurrency = 4;
            cfg.webhooks.concurrency_per_endpoint = 2;
        },
    )
    .await;
    for i in 0..4 {
        order_awaiting_payment(&s, &format!("o-{i}")).await;
    }
    let n = 8;
    all_in(&s, "e-fast", n, "delivered").await;
    assert_eq!(fast.accepted().len(), n);
    eventually("the slow endpoint's share in flight", || async {
        (slow.in_flight() == 2).then_some(())
    })
    .await;
    assert_eq!(slow.max_in_flight(), 2);
    slow.release();
    all_in(&s, "e-slow", n, "delivered").await;
    assert!(slow.max_in_flight() <= 2);
    s.finish().await;
}
both!(slow_endpoint_does_not_starve_others);

/// An endpoint failing continuously for `disable_after_secs` is disabled, with an event;
/// its later deliveries are held.
async fn failing_endpoint_is_disabled_after_the_window(backend: Backend) {
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(500)).await;
    let s = start(backend, vec![endpoint("e1", &rx.url, &key)], |cfg| {
        cfg.webhooks.disable_after_secs = 1;
    })
    .await;
    order_awaiting_payment(&s, "o-h").await;
    let ev = s
        .wait_event("endpoint disabled", |e| {
            e["type"] == "webhook.endpoint_disabled"
        })
        .await;
    assert_eq!(ev["reason"], "failing");
    assert!(ev["failing_since"].is_string());
    let held = all_in(&s, "e1", 2, "skipped").await;
    for d in &held {
        assert!(!attempts_of(&s, &d.id).await.is_empty());
    }
    let list = admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::List { tenant: None }),
    )
    .await;
    assert!(list.contains("disabled (failing)"), "{list}");
    s.finish().await;
}
both!(failing_endpoint_is_disabled_after_the_window);

/// With `webhooks.secrets_key` the stored secrets are sealed (no `whsec_` text in the
/// database; rows stored before the key are sealed at start-up), deliveries still verify,
/// and a worker without the key refuses to start.
async fn secrets_are_sealed_at_rest(backend: Backend) {
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(204)).await;
    let mut s = start(backend, vec![endpoint("e1", &rx.url, &key)], |_| {}).await;
    let db = s.db.clone();
    let stored = || async {
        rampd::storage::entities::webhook_endpoint_secrets::Entity::find()
            .all(&db)
            .await
            .unwrap()
    };
    assert!(stored().await.iter().all(|r| r.secret == key));

    s.kill_worker().await;
    s.cfg.webhooks.secrets_key = Some(SecretString::from(
        "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_string(),
    ));
    s.start_worker().await;
    let rows = stored().await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows.iter()
            .all(|r| r.secret.starts_with("enc1:") && !r.secret.contains(&key[6..]))
    );
    order_awaiting_payment(&s, "o-sealed").await;
    for h in &accepted_for(&rx, "o-sealed", 2).await {
        assert_eq!(h.verified_by, [true]);
    }

    s.kill_worker().await;
    let mut without = s.cfg.clone();
    without.webhooks.secrets_key = None;
    assert!(rampd::app::Worker::start(without).await.is_err());
    s.start_worker().await;
    s.finish().await;
}
both!(secrets_are_sealed_at_rest);
