//! `rampd webhooks endpoint update|delete|test`, `replay` of a delivery that waits for its
//! next retry, and `--json`, against the running worker and real receivers.

use rampd::webhooks::admin::{DeliveryArgs, EndpointCmd, Selection, WebhooksCmd, execute_as};
use rampd_e2e::hooks::{HookReceiver, Reply};
use rampd_e2e::{Backend, both};
use serde_json::Value;

use crate::{
    accepted_for, admin, deliveries_of, endpoint, eventually, order_awaiting_payment, secret, start,
};

async fn json(s: &rampd_e2e::Stack, cmd: WebhooksCmd) -> Value {
    let out = execute_as(&s.db, &s.cfg, cmd, true)
        .await
        .expect("admin command");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn one(delivery: &str) -> DeliveryArgs {
    DeliveryArgs {
        what: Selection {
            delivery: Some(delivery.into()),
            ..Default::default()
        },
        tenant: None,
    }
}

async fn update_delete_test_and_replay_waiting(backend: Backend) {
    let key = secret();
    let rx = HookReceiver::start(&[&key], Reply::Status(204)).await;
    let rx2 = HookReceiver::start(&[&key], Reply::Status(500)).await;
    // A retry waits ten minutes: only a replay sends it sooner.
    let s = start(backend, vec![endpoint("e1", &rx.url, &key)], |cfg| {
        cfg.webhooks.retry_schedule_ms = vec![600_000];
        cfg.webhooks.retry_jitter = 0.0;
    })
    .await;

    // test: a signed webhook.test through the normal delivery path.
    let out = json(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::Test { id: "e1".into() }),
    )
    .await;
    let test_id = out["delivery"].as_str().unwrap().to_string();
    assert!(test_id.starts_with("msg_"), "{out}");
    let hook = eventually("the test webhook", || async {
        rx.accepted().into_iter().find(|h| h.webhook_id == test_id)
    })
    .await;
    assert_eq!(hook.body["type"], "webhook.test");
    assert_eq!(hook.body["endpoint_id"], "e1");
    assert_eq!(
        hook.verified_by,
        [true],
        "signed with the endpoint's secret"
    );
    // The receiver answered; the outcome is recorded once its batch commits.
    let shown = eventually("the test delivery recorded as delivered", || async {
        let shown = json(&s, WebhooksCmd::Deliveries(one(&test_id))).await;
        (shown[0]["status"] == "delivered").then_some(shown)
    })
    .await;
    assert_eq!(shown[0]["attempts"][0]["status_code"], 204, "{shown}");

    // update: new URL and event filter.
    let out = admin(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::Update {
            id: "e1".into(),
            url: Some(rx2.url.clone()),
            events: Some("order.status_changed".into()),
        }),
    )
    .await;
    assert!(out.contains("declared in the config file"), "{out}");
    let listed = json(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::List { tenant: None }),
    )
    .await;
    assert_eq!(listed[0]["url"], rx2.url.as_str(), "{listed}");
    assert_eq!(
        listed[0]["events"],
        serde_json::json!(["order.status_changed"])
    );
    assert!(
        execute_as(
            &s.db,
            &s.cfg,
            WebhooksCmd::Endpoint(EndpointCmd::Update {
                id: "e1".into(),
                url: Some("http://10.1.2.3/hooks".into()),
                events: None,
            }),
            false
        )
        .await
        .is_err(),
        "a restricted address is refused"
    );

    // The new URL answers 500: the first delivery waits ten minutes for its retry.
    order_awaiting_payment(&s, "o-w").await;
    let waiting = eventually("a delivery waiting for its retry", || async {
        deliveries_of(&s, "e1")
            .await
            .into_iter()
            .find(|d| !d.order_id.is_empty() && d.status == "pending" && d.attempt == 1)
    })
    .await;
    assert!(rx.received().iter().all(|h| h.body["order_id"] != "o-w"));
    rx2.set_default(Reply::Status(204));
    let out = admin(&s, WebhooksCmd::Replay(one(&waiting.id))).await;
    assert!(
        out.contains("1 of them were waiting for their next retry"),
        "{out}"
    );
    eventually("the waiting delivery sent now", || async {
        rx2.accepted()
            .into_iter()
            .find(|h| h.webhook_id == waiting.id)
    })
    .await;
    accepted_for(&rx2, "o-w", 1).await;

    // delete: gone, with its unsent deliveries; new events make none for it.
    let out = json(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::Delete { id: "e1".into() }),
    )
    .await;
    assert_eq!(out["deleted"], true, "{out}");
    let listed = json(
        &s,
        WebhooksCmd::Endpoint(EndpointCmd::List { tenant: None }),
    )
    .await;
    assert_eq!(listed, serde_json::json!([]));
    assert!(
        deliveries_of(&s, "e1")
            .await
            .iter()
            .all(|d| d.status != "pending" && d.status != "skipped")
    );
    let kept = deliveries_of(&s, "e1").await.len();
    order_awaiting_payment(&s, "o-after").await;
    assert_eq!(
        deliveries_of(&s, "e1").await.len(),
        kept,
        "no deliveries for a deleted endpoint"
    );
    assert!(
        execute_as(
            &s.db,
            &s.cfg,
            WebhooksCmd::Endpoint(EndpointCmd::Test { id: "e1".into() }),
            false
        )
        .await
        .is_err()
    );
    s.finish().await;
}
both!(update_delete_test_and_replay_waiting);
