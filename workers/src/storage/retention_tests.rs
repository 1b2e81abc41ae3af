//! Retention (issue 9, item 6) on SQLite and PostgreSQL: what is past retention goes, in
//! batches no larger than asked; what is within it, still open, or held for an operator
//! stays; `order_events` is never touched.

use std::collections::BTreeSet;

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};

use super::entities::webhook_deliveries::DELIVERED;
use super::entities::{
    order_events, outbox, provider_callbacks, scheduled_tasks as tasks,
    webhook_attempts as attempts, webhook_deliveries as deliveries,
};
use super::retention::{Cutoffs, Removed, prune_batch, prune_deliveries, prune_outbox};
use super::test_db::storage_cases;

const NOW: i64 = 1_763_700_000_000;
const DAY: i64 = 24 * 3600 * 1000;

fn cutoffs() -> Cutoffs {
    Cutoffs {
        outbox_published_before: NOW - 7 * DAY,
        tasks_done_before: NOW - 7 * DAY,
        delivered_before: NOW - 7 * DAY,
        dead_before: NOW - 30 * DAY,
        callbacks_before: NOW - 30 * DAY,
        now: NOW,
    }
}

async fn add_outbox(db: &DatabaseConnection, id: &str, published_at: Option<i64>) {
    outbox::Entity::insert(outbox::ActiveModel {
        id: Set(id.into()),
        subject: Set("ramp.evt.acme.onramp.status_changed".into()),
        payload: Set("{}".into()),
        order_id: Set(Some("ord-1".into())),
        trace_ctx: Set(None),
        created_at: Set(NOW - 60 * DAY),
        published_at: Set(published_at),
        attempts: Set(0),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
}

async fn add_task(
    db: &DatabaseConnection,
    id: &str,
    status: &str,
    run_at: i64,
    lease: Option<i64>,
) {
    tasks::Entity::insert(tasks::ActiveModel {
        id: Set(id.into()),
        order_id: Set(format!("order-{id}")),
        kind: Set("drive".into()),
        status: Set(status.into()),
        run_at: Set(run_at),
        priority: Set(0),
        attempt: Set(0),
        lease_owner: Set(lease.map(|_| "w/1".to_string())),
        lease_until: Set(lease),
        last_error: Set(None),
        trace_ctx: Set(None),
        created_at: Set(run_at),
        updated_at: Set(run_at),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
}

/// A delivery in `status`, finished (delivered or dead) at `at`, with `tries` attempts.
async fn add_delivery(db: &DatabaseConnection, id: &str, status: &str, at: i64, tries: i32) {
    deliveries::Entity::insert(deliveries::ActiveModel {
        id: Set(id.into()),
        order_id: Set("ord-1".into()),
        tenant: Set("acme".into()),
        endpoint_id: Set("e1".into()),
        url: Set("https://hooks.example/in".into()),
        event_type: Set("order.status_changed".into()),
        body: Set("{}".into()),
        status: Set(status.into()),
        attempt: Set(tries),
        run_at: Set(at),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        trace_ctx: Set(None),
        created_at: Set(at - 1_000),
        delivered_at: Set((status == "delivered").then_some(at)),
        dead_at: Set((status == "dead").then_some(at)),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    for n in 1..=tries {
        attempts::Entity::insert(attempts::ActiveModel {
            id: Set(format!("{id}-try-{n}")),
            delivery_id: Set(id.into()),
            endpoint_id: Set("e1".into()),
            attempt: Set(n),
            started_at: Set(at - 1_000 + n as i64),
            latency_ms: Set(3),
            status_code: Set(Some(500)),
            error_kind: Set(None),
            response_excerpt: Set(None),
        })
        .exec_without_returning(db)
        .await
        .unwrap();
    }
}

async fn add_history(db: &DatabaseConnection, seq: i32) {
    order_events::Entity::insert(order_events::ActiveModel {
        id: NotSet,
        order_id: Set("ord-1".into()),
        seq: Set(seq),
        kind: Set("transition".into()),
        from_state: Set(None),
        to_state: Set(Some("preparing".into())),
        detail: Set("{}".into()),
        command_id: Set(None),
        trace_ctx: Set(None),
        created_at: Set(NOW - 90 * DAY),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
}

async fn add_callback(db: &DatabaseConnection, id: &str, received_at: i64) {
    provider_callbacks::Entity::insert(provider_callbacks::ActiveModel {
        id: Set(id.into()),
        provider: Set("onmeta".into()),
        provider_order_id: Set(format!("po-{id}")),
        order_id: Set(None),
        direction: Set("onramp".into()),
        status: Set("fiatPending".into()),
        outcome: Set("unknown_order".into()),
        received_at: Set(received_at),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
}

async fn outbox_ids(db: &DatabaseConnection) -> BTreeSet<String> {
    let rows = outbox::Entity::find().all(db).await.unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

async fn task_ids(db: &DatabaseConnection) -> BTreeSet<String> {
    let rows = tasks::Entity::find().all(db).await.unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

async fn delivery_ids(db: &DatabaseConnection) -> BTreeSet<String> {
    let rows = deliveries::Entity::find().all(db).await.unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

async fn attempt_owners(db: &DatabaseConnection) -> BTreeSet<String> {
    let rows = attempts::Entity::find().all(db).await.unwrap();
    rows.into_iter().map(|r| r.delivery_id).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn past_retention_goes_the_rest_stays(db: DatabaseConnection) {
    let db = &db;
    let c = cutoffs();
    add_outbox(db, "ob-old", Some(NOW - 8 * DAY)).await;
    add_outbox(db, "ob-recent", Some(NOW - 6 * DAY)).await;
    add_outbox(db, "ob-unpublished", None).await;
    add_task(db, "t-done-old", "done", NOW - 8 * DAY, None).await;
    add_task(
        db,
        "t-done-old-expired-lease",
        "done",
        NOW - 8 * DAY,
        Some(NOW - 1),
    )
    .await;
    add_task(
        db,
        "t-done-old-live-lease",
        "done",
        NOW - 8 * DAY,
        Some(NOW + 5_000),
    )
    .await;
    add_task(db, "t-done-recent", "done", NOW - 6 * DAY, None).await;
    add_task(db, "t-ready-old", "ready", NOW - 8 * DAY, None).await;
    add_delivery(db, "d-delivered-old", "delivered", NOW - 8 * DAY, 2).await;
    add_delivery(db, "d-delivered-recent", "delivered", NOW - 6 * DAY, 1).await;
    add_delivery(db, "d-dead-replayable", "dead", NOW - 8 * DAY, 8).await;
    add_delivery(db, "d-dead-old", "dead", NOW - 31 * DAY, 8).await;
    add_delivery(db, "d-pending-old", "pending", NOW - 40 * DAY, 3).await;
    add_delivery(db, "d-skipped-old", "skipped", NOW - 40 * DAY, 1).await;
    for seq in 1..=3 {
        add_history(db, seq).await;
    }
    add_callback(db, "cb-old", NOW - 31 * DAY).await;
    add_callback(db, "cb-recent", NOW - 29 * DAY).await;
    let history = order_events::Entity::find().all(db).await.unwrap();

    let removed = prune_batch(db, &c, 100).await.unwrap();
    assert_eq!(
        removed,
        Removed {
            outbox: 1,
            tasks: 2,
            deliveries: 2,
            attempts: 10,
            callbacks: 1,
        }
    );
    let callbacks: Vec<String> = provider_callbacks::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(callbacks, ["cb-recent"]);
    assert_eq!(outbox_ids(db).await, set(&["ob-recent", "ob-unpublished"]));
    assert_eq!(
        task_ids(db).await,
        set(&["t-done-old-live-lease", "t-done-recent", "t-ready-old"])
    );
    let kept = set(&[
        "d-delivered-recent",
        "d-dead-replayable",
        "d-pending-old",
        "d-skipped-old",
    ]);
    assert_eq!(delivery_ids(db).await, kept);
    assert_eq!(
        attempt_owners(db).await,
        kept,
        "attempts go with their delivery"
    );
    assert_eq!(attempts::Entity::find().count(db).await.unwrap(), 13);
    assert_eq!(order_events::Entity::find().all(db).await.unwrap(), history);

    // Nothing more to do.
    assert_eq!(prune_batch(db, &c, 100).await.unwrap(), Removed::default());
}

async fn batches_are_bounded(db: DatabaseConnection) {
    let db = &db;
    for i in 0..5 {
        add_outbox(db, &format!("ob-{i}"), Some(NOW - 8 * DAY - i)).await;
        add_delivery(db, &format!("d-{i}"), "delivered", NOW - 8 * DAY - i, 2).await;
    }
    add_outbox(db, "ob-unpublished", None).await;
    let before = NOW - 7 * DAY;
    let mut sizes = Vec::new();
    loop {
        let n = prune_outbox(db, before, 2).await.unwrap();
        sizes.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(sizes, [2, 2, 1, 0]);
    assert_eq!(outbox_ids(db).await, set(&["ob-unpublished"]));

    let mut sizes = Vec::new();
    loop {
        let (d, a) = prune_deliveries(db, DELIVERED, deliveries::Column::DeliveredAt, before, 2)
            .await
            .unwrap();
        assert_eq!(a, 2 * d);
        sizes.push(d);
        if d == 0 {
            break;
        }
    }
    assert_eq!(sizes, [2, 2, 1, 0]);
    assert!(delivery_ids(db).await.is_empty());
    assert_eq!(attempts::Entity::find().count(db).await.unwrap(), 0);
}

storage_cases!(past_retention_goes_the_rest_stays, batches_are_bounded);
