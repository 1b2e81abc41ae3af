//! Tenant scoping in storage (issue 9, item 3), each case on a fresh SQLite file and a
//! fresh PostgreSQL database: the inbox's (tenant, command id) key and fingerprints,
//! including rows written before fingerprints existed.

use std::future::Future;

use rampd_domain::command::CommandName;
use rampd_domain::command_identity::Fingerprint;
use rampd_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};

use super::connect::{connect, migrate};
use super::entities::{orders, processed_commands};
use super::test_db::{PgDb, SqliteFile};
use super::write::{CommandRecord, Seen, inbox_check, record_unchanged};

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: Future<Output = ()>,
{
    let file = SqliteFile::new("rampd_ts");
    let db = connect(&file.url()).await.expect("connect sqlite");
    case(db.clone()).await;
    db.close().await.expect("close sqlite");
    drop(file);
}

async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(DatabaseConnection) -> Fut,
    Fut: Future<Output = ()>,
{
    let pg = PgDb::create("rampd_ts").await;
    case(pg.db.clone()).await;
    pg.drop_db().await;
}

/// Each case gets an unmigrated database and migrates it itself.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::on_sqlite(super::$case).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::on_postgres(super::$case).await;
                }
            }
        )*
    };
}

on_both_backends!(
    inbox_tells_repeats_from_reuses,
    fingerprints_migrate_over_existing_rows,
    history_numbers_migrate_over_existing_orders,
);

fn fp(body: &str) -> Fingerprint {
    Fingerprint::of(CommandName::OnrampUtr, body.as_bytes()).unwrap()
}

fn record<'a>(
    tenant: &'a str,
    command_id: &'a str,
    fingerprint: Option<&'a Fingerprint>,
) -> CommandRecord<'a> {
    CommandRecord {
        tenant,
        command_id,
        command_type: "onramp.utr",
        fingerprint,
    }
}

async fn noop(db: &DatabaseConnection, c: &CommandRecord<'_>) {
    record_unchanged(db, c, Some("ord-1"), None, None, chrono::Utc::now())
        .await
        .unwrap();
}

/// The inbox key is (tenant, command id); a repeat is told from a reuse by fingerprint.
async fn inbox_tells_repeats_from_reuses(db: DatabaseConnection) {
    migrate(&db).await.unwrap();
    let first = fp(r#"{"command_id":"c-1","order_id":"o","utr":"412345678901"}"#);
    let reordered = fp(r#"{"utr":"412345678901","order_id":"o","command_id":"c-1"}"#);
    let other = fp(r#"{"command_id":"c-1","order_id":"o","utr":"412345678902"}"#);
    let numeric = fp(r#"{"command_id":1,"order_id":"o","utr":"412345678901"}"#);
    let string = fp(r#"{"command_id":"1","order_id":"o","utr":"412345678901"}"#);

    let a = record("acme", "c-1", Some(&first));
    assert_eq!(inbox_check(&db, &a).await.unwrap(), Seen::New);
    noop(&db, &a).await;
    assert_eq!(inbox_check(&db, &a).await.unwrap(), Seen::Repeat);
    let again = record("acme", "c-1", Some(&reordered));
    assert_eq!(inbox_check(&db, &again).await.unwrap(), Seen::Repeat);
    let reused = record("acme", "c-1", Some(&other));
    assert_eq!(inbox_check(&db, &reused).await.unwrap(), Seen::Reused);

    // Another tenant's command with the same id is new, and records a row of its own.
    let b = record("globex", "c-1", Some(&other));
    assert_eq!(inbox_check(&db, &b).await.unwrap(), Seen::New);
    noop(&db, &b).await;
    assert_eq!(inbox_check(&db, &b).await.unwrap(), Seen::Repeat);
    assert_eq!(inbox_check(&db, &reused).await.unwrap(), Seen::Reused);
    assert_eq!(
        processed_commands::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .len(),
        2
    );

    // Numeric 1 and string "1" name the same command id but are different commands.
    let n = record("acme", "1", Some(&numeric));
    noop(&db, &n).await;
    let s = record("acme", "1", Some(&string));
    assert_eq!(inbox_check(&db, &s).await.unwrap(), Seen::Reused);
}

/// A database from before fingerprints keeps its inbox: old rows carry no fingerprint
/// and a repeat of their command id is a duplicate, as it always was.
async fn fingerprints_migrate_over_existing_rows(db: DatabaseConnection) {
    let migrations = Migrator::migrations();
    let mine = migrations
        .iter()
        .position(|m| m.name() == "m20261201_000031_h3_command_fingerprint")
        .expect("the fingerprint migration is registered");
    Migrator::up(&db, Some(mine as u32)).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO processed_commands \
         (id, tenant, command_id, command_type, order_id, outcome, reason, processed_at) \
         VALUES ('acme:old-1', 'acme', 'old-1', 'onramp.utr', 'ord-1', 'accepted', NULL, 1)",
    )
    .await
    .unwrap();
    migrate(&db).await.unwrap();

    let row = processed_commands::Entity::find_by_id("acme:old-1".to_string())
        .one(&db)
        .await
        .unwrap()
        .expect("the old row is carried over");
    assert_eq!(row.fingerprint, None);
    assert_eq!(row.outcome, "accepted");
    let any = fp(r#"{"command_id":"old-1","order_id":"o","utr":"412345678901"}"#);
    let repeat = record("acme", "old-1", Some(&any));
    assert_eq!(inbox_check(&db, &repeat).await.unwrap(), Seen::Repeat);
    assert_eq!(
        inbox_check(&db, &record("globex", "old-1", Some(&any)))
            .await
            .unwrap(),
        Seen::New
    );
}

/// A database from before `orders.history_seq`: each order's column starts at its last
/// history number, so its next rows follow on without a gap or a repeat.
async fn history_numbers_migrate_over_existing_orders(db: DatabaseConnection) {
    let migrations = Migrator::migrations();
    let mine = migrations
        .iter()
        .position(|m| m.name() == "m20261202_000071_orders_history_seq")
        .expect("the history_seq migration is registered");
    Migrator::up(&db, Some(mine as u32)).await.unwrap();
    for id in ["ord-1", "ord-2"] {
        db.execute_unprepared(&format!(
            "INSERT INTO orders (id, tenant, client_order_id, direction, state, data, \
             sm_version, version, provider, created_at, updated_at) \
             VALUES ('{id}', 'acme', 'c-{id}', 'onramp', 'preparing', '{{}}', 1, 3, 'onmeta', 1, 1)"
        ))
        .await
        .unwrap();
    }
    for seq in 1..=3 {
        db.execute_unprepared(&format!(
            "INSERT INTO order_events (order_id, seq, kind, detail, created_at) \
             VALUES ('ord-1', {seq}, 'state_changed', '{{}}', 1)"
        ))
        .await
        .unwrap();
    }
    migrate(&db).await.unwrap();

    let seq = |id: &'static str| {
        let db = db.clone();
        async move {
            orders::Entity::find_by_id(id.to_string())
                .one(&db)
                .await
                .unwrap()
                .expect("carried over")
                .history_seq
        }
    };
    assert_eq!(seq("ord-1").await, 3, "its last history number");
    assert_eq!(seq("ord-2").await, 0, "no history yet");
}
