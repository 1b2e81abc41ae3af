//! One tenant's backlog does not hold another tenant's commands (issue 9, item 5): each
//! tenant has a consumer of its own and busy tenants take turns.

use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use futures::StreamExt;
use rampd::sandbox::SandboxConfig;
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, both, wait_for};
use serde_json::json;

/// Malformed commands the flooding tenant sends ahead of the other tenant's orders.
const FLOOD: usize = 400;

async fn a_flood_from_one_tenant_does_not_delay_another(backend: Backend) {
    let mut s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.nats.consumer_filter = None; // every tenant
    })
    .await;
    // Queue everything while no worker runs, the flood first.
    s.kill_worker().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut sub = s.client.subscribe("ramp.evt.>").await.unwrap();
    s.client.flush().await.unwrap();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            log.lock().unwrap().push(msg.subject.to_string());
        }
    });
    let mut acks = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let id = format!("flood-{i}");
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("flood.{id}").as_str(),
        );
        let body = json!({"command_id": id, "order_id": id, "fiat_amount": "not money"});
        acks.push(
            s.js.publish_with_headers(
                "ramp.cmd.flood.onramp.create",
                headers,
                body.to_string().into(),
            )
            .await
            .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    for i in 0..3 {
        s.create(&format!("o-fair-{i}")).await;
    }
    s.start_worker().await;

    for i in 0..3 {
        // Taken in; the order may already be past `preparing` (one lease prepares it).
        s.wait_order(&format!("o-fair-{i}")).await;
    }
    let first_acme = wait_for("acme's first event", || {
        seen.lock()
            .unwrap()
            .iter()
            .position(|subj| subj.starts_with("ramp.evt.acme."))
    })
    .await;
    let flood_before = seen.lock().unwrap()[..first_acme]
        .iter()
        .filter(|subj| subj.starts_with("ramp.evt.flood."))
        .count();
    eprintln!("{flood_before} flood commands answered before acme's first");
    assert!(
        flood_before < FLOOD / 4,
        "{flood_before} of {FLOOD} flood commands were answered before acme's first command"
    );
    // Nothing of the flood is lost: every command is answered.
    wait_for("every flood command answered", || {
        let n = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|subj| subj.starts_with("ramp.evt.flood."))
            .count();
        (n >= FLOOD).then_some(())
    })
    .await;
    for i in 0..3 {
        s.utr(&format!("o-fair-{i}"), &format!("41234567890{i}"))
            .await;
        s.wait_state(&format!("o-fair-{i}"), OrderState::Completed)
            .await;
    }
    s.finish().await;
}
both!(a_flood_from_one_tenant_does_not_delay_another);
