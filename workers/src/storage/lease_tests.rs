//! The stale-candidate race on every leased queue (issue 9, item 2), on SQLite and
//! PostgreSQL.
//!
//! Replica A reads its candidates; before its guarded UPDATE runs, replica B claims the same
//! row, works on it and reschedules, finishes or publishes it. A's UPDATE, working from the
//! stale list, must win nothing: the lease primitive re-checks "still open and due" in the
//! UPDATE itself. Deterministic: the two phases of A's claim are called separately.

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter};

use super::entities::{outbox, scheduled_tasks as tasks, webhook_deliveries as deliveries};
use super::lease::{DELIVERIES, OUTBOX, TASKS, candidates, claim, released, take};
use super::test_db::{storage_cases, task_row};
use super::write::DRIVE;

const NOW: i64 = 1_763_700_000_000;
const LEASE: i64 = 30_000;

fn delivery(id: &str, run_at: i64) -> deliveries::ActiveModel {
    deliveries::ActiveModel {
        id: Set(id.into()),
        order_id: Set("ord-1".into()),
        tenant: Set("acme".into()),
        endpoint_id: Set("e1".into()),
        url: Set("https://hooks.example/in".into()),
        event_type: Set("order.status_changed".into()),
        body: Set("{}".into()),
        status: Set("pending".into()),
        attempt: Set(0),
        run_at: Set(run_at),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        trace_ctx: Set(None),
        created_at: Set(run_at),
        delivered_at: Set(None),
        dead_at: Set(None),
    }
}

/// What the webhook sender narrows a claim to: the deliveries it chose among the
/// candidates, still pending.
fn chosen(ids: &[&str]) -> Condition {
    Condition::all()
        .add(deliveries::Column::Id.is_in(ids.iter().copied()))
        .add(deliveries::Column::Status.eq("pending"))
}

/// B's attempt failed: the outcome ends B's lease and schedules the next attempt.
async fn reschedule_delivery(db: &DatabaseConnection, d: &deliveries::Model, run_at: i64) {
    let res = released(deliveries::Entity::update_many(), &DELIVERIES)
        .col_expr(deliveries::Column::Attempt, Expr::value(d.attempt + 1))
        .col_expr(deliveries::Column::RunAt, Expr::value(run_at))
        .filter(deliveries::Column::Id.eq(d.id.clone()))
        .filter(deliveries::Column::LeaseOwner.eq(d.lease_owner.clone()))
        .exec(db)
        .await
        .unwrap();
    assert_eq!(res.rows_affected, 1);
}

async fn stale_candidates_never_claim_a_rescheduled_delivery(db: DatabaseConnection) {
    let db = &db;
    deliveries::Entity::insert(delivery("msg_1", NOW - 1_000))
        .exec_without_returning(db)
        .await
        .unwrap();

    // A reads its candidates ...
    let stale = candidates::<deliveries::Entity, _>(db, &DELIVERIES, chosen(&["msg_1"]), NOW, 10)
        .await
        .unwrap();
    assert_eq!(stale, ["msg_1"]);
    // ... B claims, attempts and reschedules 30 s out ...
    let b =
        claim::<deliveries::Entity, _>(db, &DELIVERIES, chosen(&["msg_1"]), "b", NOW, LEASE, 10)
            .await
            .unwrap();
    assert_eq!(b.len(), 1);
    reschedule_delivery(db, &b[0], NOW + 30 + 30_000).await;
    // ... and A's UPDATE, 35 ms after B's attempt, wins nothing.
    let a = take::<deliveries::Entity, _>(
        db,
        &DELIVERIES,
        stale.clone(),
        chosen(&["msg_1"]),
        "a",
        NOW + 65,
        LEASE,
    )
    .await
    .unwrap();
    assert!(a.is_empty(), "claimed before its run_at: {a:?}");
    // Nor does a whole claim narrowed to that delivery (the sender's second phase).
    let a = claim::<deliveries::Entity, _>(
        db,
        &DELIVERIES,
        chosen(&["msg_1"]),
        "a",
        NOW + 65,
        LEASE,
        10,
    )
    .await
    .unwrap();
    assert!(a.is_empty(), "claimed before its run_at: {a:?}");

    // Once due it is claimable again, by either.
    let due = NOW + 30 + 30_000;
    let b =
        take::<deliveries::Entity, _>(db, &DELIVERIES, stale.clone(), chosen(&[]), "b", due, LEASE)
            .await
            .unwrap();
    assert!(b.is_empty(), "the narrowing still applies");
    let b =
        claim::<deliveries::Entity, _>(db, &DELIVERIES, chosen(&["msg_1"]), "b", due, LEASE, 10)
            .await
            .unwrap();
    assert_eq!((b.len(), b[0].attempt), (1, 1));

    // Delivered by B: a stale take finds nothing to claim, even after B's lease.
    released(deliveries::Entity::update_many(), &DELIVERIES)
        .col_expr(deliveries::Column::Status, Expr::value("delivered"))
        .col_expr(deliveries::Column::DeliveredAt, Expr::value(due + 10))
        .filter(deliveries::Column::Id.eq("msg_1"))
        .exec(db)
        .await
        .unwrap();
    let a = take::<deliveries::Entity, _>(
        db,
        &DELIVERIES,
        stale,
        Condition::all(),
        "a",
        due + LEASE + 1,
        LEASE,
    )
    .await
    .unwrap();
    assert!(a.is_empty(), "claimed a delivered delivery: {a:?}");
}

/// The executor narrows to drive tasks; being ready and due is the queue's business.
fn drive() -> Condition {
    Condition::all().add(tasks::Column::Kind.eq(DRIVE))
}

async fn stale_candidates_never_claim_a_rescheduled_or_done_task(db: DatabaseConnection) {
    let db = &db;
    tasks::Entity::insert(task_row("t1", "ready", NOW - 1_000))
        .exec_without_returning(db)
        .await
        .unwrap();
    let stale = candidates::<tasks::Entity, _>(db, &TASKS, drive(), NOW, 10)
        .await
        .unwrap();
    assert_eq!(stale, ["t1"]);
    // B drives the order and its commit schedules the next poll 10 s out.
    let b = claim::<tasks::Entity, _>(db, &TASKS, drive(), "b", NOW, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    released(tasks::Entity::update_many(), &TASKS)
        .col_expr(tasks::Column::RunAt, Expr::value(NOW + 10_000))
        .filter(tasks::Column::LeaseOwner.eq(b[0].lease_owner.clone()))
        .exec(db)
        .await
        .unwrap();
    let a = take::<tasks::Entity, _>(db, &TASKS, stale.clone(), drive(), "a", NOW + 5, LEASE)
        .await
        .unwrap();
    assert!(a.is_empty(), "claimed before its run_at: {a:?}");

    // B runs it when due and the order ends: done. A stale take never revives it.
    let b = claim::<tasks::Entity, _>(db, &TASKS, drive(), "b", NOW + 10_000, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    released(tasks::Entity::update_many(), &TASKS)
        .col_expr(tasks::Column::Status, Expr::value("done"))
        .filter(tasks::Column::LeaseOwner.eq(b[0].lease_owner.clone()))
        .exec(db)
        .await
        .unwrap();
    let a = take::<tasks::Entity, _>(db, &TASKS, stale, drive(), "a", NOW + 10_001, LEASE)
        .await
        .unwrap();
    assert!(a.is_empty(), "claimed a done task: {a:?}");
}

async fn stale_candidates_never_republish_an_outbox_row(db: DatabaseConnection) {
    let db = &db;
    outbox::Entity::insert(outbox::ActiveModel {
        id: Set("evt-1".into()),
        subject: Set("ramp.evt.acme.onramp.status_changed".into()),
        payload: Set("{}".into()),
        order_id: Set(None),
        trace_ctx: Set(None),
        created_at: Set(NOW - 1_000),
        published_at: Set(None),
        attempts: Set(0),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    // The relay claims every unpublished row: no narrowing of its own.
    let stale = candidates::<outbox::Entity, _>(db, &OUTBOX, Condition::all(), NOW, 10)
        .await
        .unwrap();
    assert_eq!(stale, ["evt-1"]);
    let b = claim::<outbox::Entity, _>(db, &OUTBOX, Condition::all(), "b", NOW, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    released(outbox::Entity::update_many(), &OUTBOX)
        .col_expr(outbox::Column::PublishedAt, Expr::value(NOW + 3))
        .filter(outbox::Column::Id.eq("evt-1"))
        .exec(db)
        .await
        .unwrap();
    let a = take::<outbox::Entity, _>(db, &OUTBOX, stale, Condition::all(), "a", NOW + 5, LEASE)
        .await
        .unwrap();
    assert!(a.is_empty(), "claimed a published row: {a:?}");
}

/// One claim takes at most `limit` rows, the oldest due first, and two claims never take
/// the same row.
async fn a_claim_takes_at_most_its_limit_oldest_first(db: DatabaseConnection) {
    let db = &db;
    for i in 0..10 {
        tasks::Entity::insert(task_row(&format!("t{i}"), "ready", NOW - 1_000 + i))
            .exec_without_returning(db)
            .await
            .unwrap();
    }
    let a = claim::<tasks::Entity, _>(db, &TASKS, drive(), "a", NOW, LEASE, 3)
        .await
        .unwrap();
    let ids: Vec<&str> = a.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t0", "t1", "t2"]);
    assert!(a.iter().all(|t| {
        t.lease_owner
            .as_deref()
            .is_some_and(|o| o.starts_with("a/"))
    }));
    let b = claim::<tasks::Entity, _>(db, &TASKS, drive(), "b", NOW, LEASE, 100)
        .await
        .unwrap();
    let ids: Vec<&str> = b.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t3", "t4", "t5", "t6", "t7", "t8", "t9"]);
}

/// When fewer tasks can be claimed than are due (a short provider budget), the most
/// urgent go first, whatever their age: a submitted payment (0) before a deadline check
/// (1) before a parked order (2); within one urgency, the oldest due first. A claim's limit holds across urgencies, and
/// tasks not yet due are never claimed, however urgent.
async fn a_claim_takes_the_most_urgent_due_tasks_first(db: DatabaseConnection) {
    let db = &db;
    for (id, priority, age) in [
        ("parked-old", 2, 9_000),
        ("deadline", 1, 5_000),
        ("paid-new", 0, 10),
        ("parked-new", 2, 100),
        ("paid-old", 0, 3_000),
        ("paid-later", 0, -5_000),
        ("parked-later", 2, -1),
    ] {
        let mut row = task_row(id, "ready", NOW - age);
        row.priority = Set(priority);
        tasks::Entity::insert(row)
            .exec_without_returning(db)
            .await
            .unwrap();
    }
    let first = claim::<tasks::Entity, _>(db, &TASKS, drive(), "a", NOW, LEASE, 2)
        .await
        .unwrap();
    let ids: Vec<&str> = first.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["paid-old", "paid-new"]);
    let second = claim::<tasks::Entity, _>(db, &TASKS, drive(), "b", NOW, LEASE, 2)
        .await
        .unwrap();
    let ids: Vec<&str> = second.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["deadline", "parked-old"]);
    let rest = claim::<tasks::Entity, _>(db, &TASKS, drive(), "c", NOW, LEASE, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = rest.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["parked-new"]);
}

storage_cases!(
    a_claim_takes_the_most_urgent_due_tasks_first,
    a_claim_takes_at_most_its_limit_oldest_first,
    stale_candidates_never_claim_a_rescheduled_delivery,
    stale_candidates_never_claim_a_rescheduled_or_done_task,
    stale_candidates_never_republish_an_outbox_row,
);

/// Many claimers at once on PostgreSQL (several pooled connections, `SKIP LOCKED` inner
/// selects overlapping): every row is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_share_a_row_on_postgres() {
    super::test_db::on_postgres(|db| async move {
        for i in 0..200 {
            deliveries::Entity::insert(delivery(&format!("d{i:03}"), NOW - 1_000 + i))
                .exec_without_returning(&db)
                .await
                .unwrap();
        }
        let claimers = (0..8).map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut won = Vec::new();
                loop {
                    let owner = format!("r{n}");
                    let rows = claim::<deliveries::Entity, _>(
                        &db,
                        &DELIVERIES,
                        Condition::all(),
                        &owner,
                        NOW,
                        LEASE,
                        7,
                    )
                    .await
                    .unwrap();
                    if rows.is_empty() {
                        return won;
                    }
                    won.extend(rows.into_iter().map(|d| d.id));
                }
            })
        });
        let mut all: Vec<String> = Vec::new();
        for c in claimers.collect::<Vec<_>>() {
            all.extend(c.await.unwrap());
        }
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!((total, all.len()), (200, 200), "claimed twice or missed");
    })
    .await;
}

/// The claims' plans on PostgreSQL, cached as generic plans while the tables are empty
/// (as a fresh deployment's are, and kept as the tables grow), look the chosen rows up
/// by key: no sequential scan. Found with `auto_explain` in the benchmark: the claim's
/// `id = ANY(<ids>)` was cached as a scan of the whole table (guard-free) or as a bitmap
/// of every pending delivery ANDed with the ids (guarded), 2.5 CPU ms per order at 10,000
/// orders; through `rampd_ids` it was 0.4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claim_plans_cached_on_empty_tables_look_rows_up_by_key() {
    super::test_db::on_postgres(|db| async move {
        for (sql, args) in [
            claim_sql::<deliveries::Entity, _>(&DELIVERIES, Condition::all()),
            claim_sql::<tasks::Entity, _>(&TASKS, drive()),
            claim_sql::<outbox::Entity, _>(&OUTBOX, Condition::all()),
        ] {
            let plan = super::test_db::generic_plan(&db, &sql, &args).await;
            assert!(!plan.contains("Seq Scan"), "{sql}\n{plan}");
            assert!(plan.contains("_pkey"), "{sql}\n{plan}");
        }
    })
    .await;
}

/// The tasks claim's plan reads the due tasks in claim order from the index, one urgency
/// after the other, and stops at the limit: no sort and no bitmap, whatever the planner
/// knows of the table: empty, full but never analysed (a fresh deployment's first
/// minutes), and analysed. Seen in the benchmark at 10,000 orders, before the table was
/// first analysed: the cached plan was a bitmap of every index entry of a ready task due
/// by now, dead ones included (16,000 entries for 160 claimable tasks), then a sort; 1.0
/// ms of PostgreSQL time per order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_task_claim_plans_read_in_claim_order() {
    use sea_orm::ConnectionTrait;
    super::test_db::on_postgres(|db| async move {
        // The benchmark's table halfway through: most orders parked (not due), some done,
        // 250 in motion, 150 of those leased.
        let fill = format!(
            "INSERT INTO scheduled_tasks (id, order_id, kind, status, run_at, priority, \
             attempt, lease_until, created_at, updated_at) \
             SELECT 't' || g, 'o' || g, '{DRIVE}', \
               CASE WHEN g <= 1000 THEN 'done' ELSE 'ready' END, \
               CASE WHEN g <= 1250 THEN {NOW} - g ELSE {NOW} + g END, \
               CASE WHEN g <= 1250 THEN 0 ELSE 2 END, 0, \
               CASE WHEN g BETWEEN 1000 AND 1150 THEN {NOW} + {LEASE} END, {NOW}, {NOW} \
             FROM generate_series(1, 10000) g"
        );
        for step in ["", fill.as_str(), "ANALYZE scheduled_tasks"] {
            if !step.is_empty() {
                db.execute_unprepared(step).await.expect(step);
            }
            for narrow in [
                drive(),
                drive().add(tasks::Column::Priority.eq(0)),
                drive().add(tasks::Column::Priority.gt(0)),
            ] {
                let (sql, args) = claim_sql::<tasks::Entity, _>(&TASKS, narrow);
                let plan = super::test_db::generic_plan(&db, &sql, &args).await;
                let context = format!("after {step:?}:\n{sql}\n{plan}");
                assert!(!plan.contains("Sort"), "{context}");
                assert!(!plan.contains("Bitmap"), "{context}");
                assert!(!plan.contains("Seq Scan"), "{context}");
                assert!(
                    plan.contains("Index Scan using ix_scheduled_tasks_status_priority_run_at"),
                    "{context}"
                );
            }
        }
    })
    .await;
}

/// A PostgreSQL claim of 16 rows of `E` and its values as SQL literals.
fn claim_sql<E, C>(cols: &super::lease::LeaseColumns<C>, narrow: Condition) -> (String, String)
where
    E: EntityTrait<Column = C>,
    C: sea_orm::ColumnTrait,
{
    use sea_orm::{DbBackend, QueryTrait};
    let update =
        super::lease::claim_update::<E, C>(DbBackend::Postgres, cols, narrow, "a", NOW, LEASE, 16);
    let stmt = update.build(DbBackend::Postgres);
    let args: Vec<String> = stmt
        .values
        .iter()
        .flat_map(|v| v.0.iter())
        .map(|v| match v {
            sea_orm::Value::String(Some(s)) => format!("'{}'", s.replace('\'', "''")),
            sea_orm::Value::BigInt(Some(n)) => n.to_string(),
            sea_orm::Value::BigUnsigned(Some(n)) => n.to_string(),
            sea_orm::Value::Int(Some(n)) => n.to_string(),
            sea_orm::Value::SmallInt(Some(n)) => n.to_string(),
            other => panic!("a claim value of an unexpected kind: {other:?}"),
        })
        .collect();
    (stmt.sql, args.join(", "))
}
