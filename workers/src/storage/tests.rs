//! Schema tests against a fresh SQLite file and a fresh PostgreSQL database.
//!
//! PostgreSQL: `RAMPD_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names an admin connection that may `CREATE DATABASE`; each test creates
//! `rampd_mig_<random>` and drops it at the end.

use std::time::Duration;

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, Statement,
};

use super::connect::{
    begin_write, connect, is_sqlite, is_unique_violation, migrate, migrations_pending,
};
use super::entities::{
    order_events, orders, outbox, processed_commands, scheduled_tasks, webhook_deliveries,
};
use super::test_db::{PgDb, SqliteFile};

/// Every migration the crate ships (counted, so adding one needs no edit here).
fn migration_count() -> u64 {
    use rampd_migrations::MigratorTrait;
    rampd_migrations::Migrator::migrations().len() as u64
}

fn order(
    id: &str,
    client_order_id: &str,
    provider_order_id: Option<&str>,
    utr: Option<&str>,
) -> orders::ActiveModel {
    orders::ActiveModel {
        id: Set(id.to_owned()),
        tenant: Set("tenant-a".to_owned()),
        client_order_id: Set(client_order_id.to_owned()),
        direction: Set("onramp".to_owned()),
        state: Set("created".to_owned()),
        data: Set(r#"{"amount":"100.00"}"#.to_owned()),
        sm_version: Set(1),
        version: Set(1),
        provider: Set("onmeta".to_owned()),
        provider_order_id: Set(provider_order_id.map(str::to_owned)),
        utr: Set(utr.map(str::to_owned)),
        deposit_tx_hash: Set(None),
        // Left to the column default (false).
        flagged: NotSet,
        trace_ctx: Set(None),
        created_at: Set(1_763_700_000_000),
        updated_at: Set(1_763_700_000_000),
        // Left to the column default (0).
        history_seq: NotSet,
    }
}

async fn expect_unique_violation<A>(db: &DatabaseConnection, am: A, what: &str)
where
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    let err: DbErr = am
        .insert(db)
        .await
        .expect_err(&format!("{what}: duplicate accepted"));
    assert!(
        is_unique_violation(&err),
        "{what}: unexpected error {err:?}"
    );
}

async fn migrations_applied(db: &DatabaseConnection) -> u64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM seaql_migrations",
        ))
        .await
        .expect("count migrations")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n") as u64
}

/// The whole schema check, identical on both backends.
async fn exercise(db: &DatabaseConnection) {
    // Fresh database: everything pending, and asking does not create anything.
    assert!(migrations_pending(db).await.unwrap());
    assert!(migrations_pending(db).await.unwrap());

    migrate(db).await.expect("first migrate");
    assert!(!migrations_pending(db).await.unwrap());
    assert_eq!(migrations_applied(db).await, migration_count());

    // Migrating again is a no-op.
    migrate(db).await.expect("second migrate");
    assert!(!migrations_pending(db).await.unwrap());
    assert_eq!(migrations_applied(db).await, migration_count());

    // --- orders ---
    let o1 = order("ord-1", "client-1", Some("pv-1"), Some("UTR0001"))
        .insert(db)
        .await
        .expect("insert order");
    assert!(!o1.flagged, "flagged defaults to false");
    let read = orders::Entity::find_by_id("ord-1".to_owned())
        .one(db)
        .await
        .unwrap()
        .expect("order row");
    assert_eq!(read, o1);
    assert_eq!(read.version, 1);
    assert_eq!(read.created_at, 1_763_700_000_000);

    // Same (tenant, client_order_id).
    expect_unique_violation(
        db,
        order("ord-2", "client-1", None, None),
        "tenant+client_order_id",
    )
    .await;
    // Same (provider, provider_order_id).
    expect_unique_violation(
        db,
        order("ord-2", "client-2", Some("pv-1"), None),
        "provider+provider_order_id",
    )
    .await;
    // Same (provider, utr).
    expect_unique_violation(
        db,
        order("ord-2", "client-2", None, Some("UTR0001")),
        "provider+utr",
    )
    .await;
    // Same primary key.
    expect_unique_violation(db, order("ord-1", "client-9", None, None), "orders.id").await;
    // Same client_order_id for another tenant is fine.
    let mut other_tenant = order("ord-t", "client-1", None, None);
    other_tenant.tenant = Set("tenant-b".to_owned());
    other_tenant.insert(db).await.expect("other tenant");
    // Several orders without a UTR or provider order id.
    for i in 2..5 {
        order(&format!("ord-{i}"), &format!("client-{i}"), None, None)
            .insert(db)
            .await
            .expect("NULL utr / provider_order_id may repeat");
    }
    assert_eq!(orders::Entity::find().count(db).await.unwrap(), 5);

    // Optimistic update through the entity.
    let mut am: orders::ActiveModel = read.into();
    am.state = Set("pending".to_owned());
    am.version = Set(2);
    am.flagged = Set(true);
    let updated = am.update(db).await.expect("update order");
    assert_eq!(
        (updated.state.as_str(), updated.version, updated.flagged),
        ("pending", 2, true)
    );

    // --- order_events ---
    let event = |seq: i32| order_events::ActiveModel {
        id: NotSet,
        order_id: Set("ord-1".to_owned()),
        seq: Set(seq),
        kind: Set("transition".to_owned()),
        from_state: Set(Some("created".to_owned())),
        to_state: Set(Some("pending".to_owned())),
        detail: Set("{}".to_owned()),
        command_id: Set(Some("cmd-1".to_owned())),
        trace_ctx: Set(Some(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )),
        created_at: Set(1_763_700_000_001),
    };
    let e1 = event(1).insert(db).await.expect("insert event 1");
    let e2 = event(2).insert(db).await.expect("insert event 2");
    assert!(
        e1.id >= 1 && e2.id > e1.id,
        "auto-increment ids: {} {}",
        e1.id,
        e2.id
    );
    let res = order_events::Entity::insert(event(3))
        .exec(db)
        .await
        .expect("insert event 3");
    assert!(res.last_insert_id > e2.id);
    assert_eq!(
        order_events::Entity::find_by_id(e1.id)
            .one(db)
            .await
            .unwrap(),
        Some(e1.clone())
    );
    expect_unique_violation(db, event(1), "order_events order_id+seq").await;

    // --- processed_commands ---
    let cmd = processed_commands::ActiveModel {
        id: Set("tenant-a:cmd-1".to_owned()),
        tenant: Set("tenant-a".to_owned()),
        command_id: Set("cmd-1".to_owned()),
        command_type: Set("create_order".to_owned()),
        order_id: Set(Some("ord-1".to_owned())),
        outcome: Set("accepted".to_owned()),
        reason: Set(None),
        processed_at: Set(1_763_700_000_002),
        fingerprint: Set(None),
    };
    let c = cmd.clone().insert(db).await.expect("insert command");
    assert_eq!(
        processed_commands::Entity::find_by_id("tenant-a:cmd-1".to_owned())
            .one(db)
            .await
            .unwrap(),
        Some(c)
    );
    expect_unique_violation(db, cmd, "processed_commands.id").await;

    // --- scheduled_tasks ---
    let task = |id: &str| scheduled_tasks::ActiveModel {
        id: Set(id.to_owned()),
        order_id: Set("ord-1".to_owned()),
        kind: Set("poll".to_owned()),
        status: Set("pending".to_owned()),
        run_at: Set(1_763_700_060_000),
        priority: NotSet,
        attempt: NotSet,
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        trace_ctx: Set(None),
        created_at: Set(1_763_700_000_003),
        updated_at: Set(1_763_700_000_003),
    };
    let t = task("task-1").insert(db).await.expect("insert task");
    assert_eq!(t.attempt, 0, "attempt defaults to 0");
    assert_eq!(
        scheduled_tasks::Entity::find_by_id("task-1".to_owned())
            .one(db)
            .await
            .unwrap(),
        Some(t)
    );
    expect_unique_violation(db, task("task-2"), "scheduled_tasks order_id+kind").await;
    let mut expiry = task("task-3");
    expiry.kind = Set("expire".to_owned());
    expiry.lease_owner = Set(Some("worker-1".to_owned()));
    expiry.lease_until = Set(Some(1_763_700_030_000));
    expiry
        .insert(db)
        .await
        .expect("other kind for the same order");

    // --- outbox ---
    let msg = outbox::ActiveModel {
        id: Set("msg-1".to_owned()),
        subject: Set("ramp.evt.order.created".to_owned()),
        payload: Set(r#"{"order_id":"ord-1"}"#.to_owned()),
        order_id: Set(Some("ord-1".to_owned())),
        trace_ctx: Set(None),
        created_at: Set(1_763_700_000_004),
        published_at: Set(None),
        attempts: NotSet,
        lease_owner: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
    };
    let m = msg.insert(db).await.expect("insert outbox");
    assert_eq!(m.attempts, 0, "attempts defaults to 0");
    assert_eq!(
        outbox::Entity::find_by_id("msg-1".to_owned())
            .one(db)
            .await
            .unwrap(),
        Some(m)
    );

    // --- webhook_deliveries ---
    let delivery = webhook_deliveries::ActiveModel {
        id: Set("msg_2p9yTnQq".to_owned()),
        order_id: Set("ord-1".to_owned()),
        tenant: Set("tenant-a".to_owned()),
        endpoint_id: Set("ep-1".to_owned()),
        url: Set("https://example.test/hooks".to_owned()),
        event_type: Set("order.completed".to_owned()),
        body: Set(r#"{"type":"order.completed"}"#.to_owned()),
        status: Set("pending".to_owned()),
        attempt: NotSet,
        run_at: Set(1_763_700_000_005),
        lease_owner: Set(None),
        lease_until: Set(None),
        last_status: Set(Some(503)),
        last_error: Set(Some("503 Service Unavailable".to_owned())),
        trace_ctx: Set(None),
        created_at: Set(1_763_700_000_005),
        delivered_at: Set(None),
        dead_at: Set(None),
    };
    let d = delivery.insert(db).await.expect("insert delivery");
    assert_eq!(d.attempt, 0, "attempt defaults to 0");
    assert_eq!(d.last_status, Some(503));
    assert_eq!(
        webhook_deliveries::Entity::find_by_id("msg_2p9yTnQq".to_owned())
            .one(db)
            .await
            .unwrap(),
        Some(d)
    );

    // A write transaction commits and rolls back on both backends.
    let txn = begin_write(db).await.expect("begin_write");
    order("ord-tx", "client-tx", None, None)
        .insert(&txn)
        .await
        .expect("insert in txn");
    txn.rollback().await.expect("rollback");
    assert!(
        orders::Entity::find_by_id("ord-tx".to_owned())
            .one(db)
            .await
            .unwrap()
            .is_none()
    );
    let txn = begin_write(db).await.expect("begin_write");
    order("ord-tx", "client-tx", None, None)
        .insert(&txn)
        .await
        .expect("insert in txn");
    txn.commit().await.expect("commit");
    assert!(
        orders::Entity::find_by_id("ord-tx".to_owned())
            .one(db)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_schema() {
    let file = SqliteFile::new("rampd_mig");
    assert!(!file.path.exists());
    let db = connect(&file.url()).await.expect("connect sqlite");
    assert!(file.path.exists(), "database file created");
    assert!(is_sqlite(&db));
    assert_eq!(db.get_database_backend(), DbBackend::Sqlite);
    exercise(&db).await;
    db.close().await.unwrap();

    // Reopening finds the schema current.
    let db = connect(&file.url()).await.expect("reconnect sqlite");
    assert!(!migrations_pending(&db).await.unwrap());
    assert_eq!(orders::Entity::find().count(&db).await.unwrap(), 6);
    db.close().await.unwrap();
    drop(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema() {
    let pg = PgDb::create("rampd_mig").await;
    assert!(!is_sqlite(&pg.db));
    exercise(&pg.db).await;
    pg.drop_db().await;
}

async fn pragma(conn: &impl ConnectionTrait, name: &str) -> String {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA {name}"),
        ))
        .await
        .expect("pragma")
        .expect("pragma row");
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
        .expect("pragma value")
}

/// Connections in use are not pinged when handed out (only those idle for
/// `PING_IF_IDLE_FOR` are), so a connection the server dropped while it sat in the pool
/// fails one statement, which its caller retries; the ping on its return closes it, and
/// the pool then works again with fresh connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_recovers_from_sessions_the_server_ended() {
    let pg = PgDb::create("rampd_mig").await;
    let select = || pg.db.execute_unprepared("SELECT 1");
    select().await.expect("the pool works");
    let broken = pg.terminate_sessions().await;
    assert!(broken >= 1, "the pool held a session");
    let mut failed = 0;
    while select().await.is_err() {
        failed += 1;
        assert!(
            failed <= broken,
            "{failed} statements failed after {broken} sessions ended: the pool keeps broken \
             connections"
        );
    }
    for _ in 0..3 {
        select().await.expect("the pool works again");
    }
    pg.drop_db().await;
}

/// Every pooled SQLite connection carries the PRAGMAs, and the pool holds 8 of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pragmas_on_every_connection() {
    let file = SqliteFile::new("rampd_mig");
    let db = connect(&file.url()).await.expect("connect sqlite");
    assert_eq!(
        db.get_sqlite_connection_pool()
            .options()
            .get_max_connections(),
        super::connect::SQLITE_MAX_CONNECTIONS
    );
    // Hold 8 distinct connections at once (each open transaction pins one).
    let mut txns = Vec::new();
    for _ in 0..super::connect::SQLITE_MAX_CONNECTIONS {
        txns.push(sea_orm::TransactionTrait::begin(&db).await.expect("begin"));
    }
    for txn in &txns {
        assert_eq!(pragma(txn, "journal_mode").await, "wal");
        assert_eq!(pragma(txn, "busy_timeout").await, "5000");
        assert_eq!(pragma(txn, "synchronous").await, "1", "NORMAL");
        assert_eq!(pragma(txn, "foreign_keys").await, "1");
    }
    for txn in txns {
        txn.rollback().await.unwrap();
    }
    db.close().await.unwrap();
    drop(file);
}

/// `begin_write` on SQLite takes the write lock at BEGIN: a second writer waits for the
/// first to commit instead of failing later with SQLITE_BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_begin_write_is_immediate() {
    let file = SqliteFile::new("rampd_mig");
    let db = connect(&file.url()).await.expect("connect sqlite");
    migrate(&db).await.unwrap();

    let first = begin_write(&db).await.expect("first writer");
    let db2 = db.clone();
    let second = tokio::spawn(async move {
        let txn = begin_write(&db2).await.expect("second writer");
        let n = orders::Entity::find().count(&txn).await.unwrap();
        order("ord-2", "client-2", None, None)
            .insert(&txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        n
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "second BEGIN IMMEDIATE must wait for the lock"
    );
    order("ord-1", "client-1", None, None)
        .insert(&first)
        .await
        .unwrap();
    first.commit().await.unwrap();
    // The second writer started after the first committed, so it saw its row.
    assert_eq!(second.await.unwrap(), 1);
    assert_eq!(orders::Entity::find().count(&db).await.unwrap(), 2);
    db.close().await.unwrap();
    drop(file);
}

/// `sqlite::memory:` works with a multi-connection pool: all connections share one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory() {
    let db = connect("sqlite::memory:").await.expect("connect memory");
    migrate(&db).await.unwrap();
    order("ord-1", "client-1", None, None)
        .insert(&db)
        .await
        .unwrap();
    let a = sea_orm::TransactionTrait::begin(&db).await.unwrap();
    let b = sea_orm::TransactionTrait::begin(&db).await.unwrap();
    assert_eq!(orders::Entity::find().count(&a).await.unwrap(), 1);
    assert_eq!(orders::Entity::find().count(&b).await.unwrap(), 1);
    a.rollback().await.unwrap();
    b.rollback().await.unwrap();
    db.close().await.unwrap();
}

async fn concurrent_migrate(db: &DatabaseConnection) {
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { migrate(&db).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().expect("concurrent migrate");
    }
    assert!(!migrations_pending(db).await.unwrap());
    assert_eq!(migrations_applied(db).await, migration_count());
}

/// Replicas starting together may all run `migrate`; they serialize instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_serialize() {
    let file = SqliteFile::new("rampd_mig");
    let db = connect(&file.url()).await.expect("connect sqlite");
    concurrent_migrate(&db).await;
    db.close().await.unwrap();
    drop(file);

    let pg = PgDb::create("rampd_mig").await;
    concurrent_migrate(&pg.db).await;
    pg.drop_db().await;
}
