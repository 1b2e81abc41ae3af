//! rampd on a three-node NATS cluster with three-replica streams (issue 15): two replicas,
//! the command stream's leader node killed mid-run and restarted, then the event
//! stream's. Every order completes with one provider order and one UTR submission, its
//! events are gap-free and without repeats, and every event reached the webhook endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{self, DeliverPolicy};
use futures::StreamExt;
use rampd::natsd::NatsServer;
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, WAIT, create_body};
use serde_json::{Value, json};

const ORDERS: usize = 12;

/// Publish a command until JetStream acknowledges it: during a leader election, or while
/// a one-replica stream's node is down, a publish fails or goes unanswered. The
/// `Nats-Msg-Id` makes a repeat that did land harmless.
async fn publish_retrying(
    js: &async_nats::jetstream::Context,
    tenant: &str,
    command: &str,
    body: &Value,
) {
    let id = body["command_id"].as_str().unwrap();
    let scoped = rampd_domain::command_identity::scoped_msg_id(tenant, id);
    let start = Instant::now();
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, scoped.as_str());
        let subject = format!("ramp.cmd.{tenant}.{command}");
        let sent = js
            .publish_with_headers(subject, headers, body.to_string().into())
            .await;
        if let Ok(ack) = sent
            && ack.await.is_ok()
        {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{command} {id} was never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The UTRs of `orders` (by their place in the run), published in the background.
fn pay(s: &Stack, orders: Vec<(usize, String)>) -> tokio::task::JoinHandle<()> {
    let (js, tenant) = (s.js.clone(), s.tenant.clone());
    tokio::spawn(async move {
        for (n, id) in orders {
            let body = json!({"command_id": format!("{id}-utr"), "order_id": id, "utr": format!("4123456789{n:02}")});
            publish_retrying(&js, &tenant, "onramp.utr", &body).await;
        }
    })
}

/// The node leading `stream`'s replicas, as an index (0 is `s.nats`, then `s.peers`).
async fn leader_of(s: &Stack, stream: &str) -> usize {
    let start = Instant::now();
    loop {
        if let Ok(st) = s.js.get_stream(stream).await
            && let Some(leader) = st
                .cached_info()
                .cluster
                .as_ref()
                .and_then(|c| c.leader.clone())
            && let Some(i) = leader.strip_prefix('n').and_then(|n| n.parse().ok())
        {
            return i;
        }
        assert!(start.elapsed() < WAIT, "{stream} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node(s: &mut Stack, i: usize) -> &mut NatsServer {
    match i {
        0 => &mut s.nats,
        i => &mut s.peers[i - 1],
    }
}

/// Every message of the event stream, read from its start. Reading can fail while the
/// stream elects a leader after the kills; it is then tried again.
async fn stored_events(s: &Stack) -> Vec<Value> {
    let start = Instant::now();
    loop {
        match read_events(&s.js).await {
            Ok(events) => return events,
            Err(e) => assert!(
                start.elapsed() < WAIT,
                "the event stream cannot be read: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_events(js: &async_nats::jetstream::Context) -> anyhow::Result<Vec<Value>> {
    let stream = js.get_stream("RAMP_EVT").await?;
    let total = stream.cached_info().state.messages as usize;
    let c = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut out = Vec::with_capacity(total);
    let mut msgs = c.messages().await?;
    while out.len() < total {
        let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the consumer ended"))??;
        out.push(serde_json::from_slice(&m.payload)?);
    }
    Ok(out)
}

/// What is still wrong with the stored events of `orders`: a repeat (never allowed), a
/// gap in an order's sequence, or an order whose `completed` event is not there yet.
fn missing_events(events: &[Value], orders: &[String]) -> Option<String> {
    let mut by_order: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut event_ids = BTreeSet::new();
    let mut completed = BTreeSet::new();
    for e in events {
        assert!(
            event_ids.insert(e["event_id"].as_str().unwrap()),
            "a repeated event: {e}"
        );
        let Some(order) = e["order_id"].as_str() else {
            continue;
        };
        if let Some(seq) = e["sequence"].as_i64() {
            by_order.entry(order).or_default().push(seq);
        }
        if e["state"] == "completed" {
            completed.insert(order);
        }
    }
    for id in orders {
        let mut seqs = by_order.remove(id.as_str()).unwrap_or_default();
        seqs.sort_unstable();
        let want: Vec<i64> = (1..=seqs.last().copied().unwrap_or(0)).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] != w[1]),
            "{id}: an event sequence stored twice: {seqs:?}"
        );
        if seqs != want || !completed.contains(id.as_str()) {
            return Some(format!(
                "{id}: stored sequences {seqs:?}, completed: {}",
                completed.contains(id.as_str())
            ));
        }
    }
    None
}

/// Ask `/readyz` until it answers `code`; its body.
async fn readyz_until(admin: std::net::SocketAddr, code: u16) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://{admin}/readyz")).await
            && r.status().as_u16() == code
        {
            return r.json().await.unwrap();
        }
        assert!(start.elapsed() < WAIT, "/readyz never answered {code}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The run: creates, then the command stream's leader node stops while half the orders
/// pay and starts again, then the event stream's while the other half pay.
async fn run(backend: Backend, replicas: usize) {
    let mut s = Stack::start_clustered(backend, |cfg| {
        cfg.nats.stream_replicas = replicas;
        cfg.nats.servers_in_order = true;
        cfg.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let admin = s.worker.as_ref().unwrap().admin_addr.unwrap();
    // The second replica lists the nodes from n1 on, so the two use different nodes.
    let rotated = [&s.peers[0], &s.peers[1], &s.nats]
        .map(|n| n.url.clone())
        .join(",");
    s.add_replica_with(|cfg| cfg.nats_url = rotated).await;
    let on = |w: &rampd::app::Worker| w.shared.nats.server_info().server_name;
    assert_eq!(on(s.worker.as_ref().unwrap()), "n0");
    assert_eq!(on(&s.replicas[0]), "n1");
    let ids: Vec<String> = (0..ORDERS).map(|i| format!("o-cl-{i}")).collect();
    for id in &ids {
        let body = create_body(id, &format!("{id}-create"));
        publish_retrying(&s.js, &s.tenant, "onramp.create", &body).await;
    }
    let mut halves = ids.iter().cloned().enumerate().collect::<Vec<_>>();
    let second = halves.split_off(ORDERS / 2);
    for (stream, half) in [("RAMP_CMD", halves), ("RAMP_EVT", second)] {
        let leader = leader_of(&s, stream).await;
        eprintln!("stopping node n{leader}, the leader of {stream}");
        node(&mut s, leader).stop().await;
        let paying = pay(&s, half);
        if replicas == 1 && stream == "RAMP_CMD" {
            // Its only replica is gone: no command can flow, and the worker says so.
            let ready = readyz_until(admin, 503).await;
            assert!(
                ready["commands"]
                    .as_str()
                    .unwrap()
                    .starts_with("unavailable"),
                "{ready}"
            );
        }
        node(&mut s, leader).restart().await.unwrap();
        paying.await.unwrap();
        readyz_until(admin, 200).await;
    }

    for id in &ids {
        s.wait_state(id, OrderState::Completed).await;
    }
    let stats = s.sandbox.stats();
    assert_eq!(stats.orders_by_merchant_ref.len(), ORDERS, "{stats:?}");
    assert!(
        stats.orders_by_merchant_ref.values().all(|n| *n == 1),
        "one provider order each: {:?}",
        stats.orders_by_merchant_ref
    );
    assert!(
        stats.utr_submissions_by_order.values().all(|n| *n == 1)
            && stats.utr_submissions_by_order.len() == ORDERS,
        "one UTR submission each: {:?}",
        stats.utr_submissions_by_order
    );

    // Every order's events end up in the stream once each, numbered without a gap, up to
    // `completed`. A publish that failed during an election is retried by the relay
    // after its backoff, so a later event of the order can be stored before it: wait
    // until nothing is missing.
    let start = Instant::now();
    let events = loop {
        let events = stored_events(&s).await;
        match missing_events(&events, &ids) {
            None => break events,
            Some(problem) => assert!(start.elapsed() < WAIT, "{problem}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Every order event reached the webhook endpoint, verified.
    let order_events: BTreeSet<String> = events
        .iter()
        .filter(|e| e["sequence"].is_i64())
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let start = Instant::now();
    loop {
        let hooks = s.receiver.received();
        let delivered: BTreeSet<String> = hooks
            .iter()
            .filter(|h| h.verified)
            .filter_map(|h| h.body["event_id"].as_str().map(str::to_string))
            .collect();
        let missing = order_events.difference(&delivered).count();
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "{missing} events never reached the webhook endpoint"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replica_streams_survive_losing_their_leaders() {
    run(Backend::Postgres, 3).await
}

/// One-replica streams are down with their node: orders pause, then finish by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_streams_pause_with_their_node_and_lose_nothing() {
    run(Backend::Postgres, 1).await
}
