//! The decision write path (`write.rs`) and leased claims (`lease.rs`), each case run
//! against a fresh SQLite file and a fresh PostgreSQL database.
//!
//! PostgreSQL: `RAMPD_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names an admin connection that may `CREATE DATABASE`; each test creates
//! `rampd_wt_<random>` and drops it at the end (also when the test panics).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::Notify;

use chrono::{DateTime, TimeZone, Utc};
use rampd_domain::chain_values::{TokenAmount, WalletAddress};
use rampd_domain::command::{OfframpRequest, PayoutAccount};
use rampd_domain::command::{OnrampRequest, PaymentMethod, User};
use rampd_domain::event::{CommandRejected, OrderEvent};
use rampd_domain::order::{
    self, Ctx, Decision, EventKind, Input, LinkResult, NextRun, Observation, Order, OrderPolicy,
    OrderRequest, OrderState, ProviderOrder, Quote, StatusReport, Urgency,
};
use rampd_domain::values::{
    BankAccountNumber, ChainFamily, ChainId, Email, EvmAddress, Ifsc, InrAmount, Pan, PersonName,
    Phone, TokenSymbol, UpiId, Utr,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use secrecy::SecretString;
use uuid::Uuid;

use super::entities::{
    order_events, orders, outbox, processed_commands, scheduled_tasks, webhook_deliveries,
};
use super::group_commit::GroupCommit;
use super::handoff::Handoff;
use super::lease::{OUTBOX, TASKS, claim};
use super::orders::load;
use super::test_db::{storage_cases, task_row};
use super::write::{
    CommandRecord, DRIVE, OwnedCommand, OwnedWrite, Write, WriteError, already_processed,
    commit_decision, commit_grouped, event_subject, inbox_id, record_unchanged, reschedule,
    reschedule_grouped,
};
use crate::config::EndpointConfig;
use crate::webhooks::Endpoints;

storage_cases!(
    optimistic_concurrency,
    duplicate_client_order_id,
    utr_in_use,
    tx_hash_in_use,
    successor_commits_with_its_predecessor,
    one_transaction_per_decision,
    failed_decision_writes_nothing,
    commit_releases_only_its_own_lease,
    reschedule_moves_only_the_task,
    rejection_recorded_once,
    lease_claims,
    grouped_decisions_commit_alone_when_one_conflicts,
    one_batch_moves_each_task_by_its_own_guard,
    one_apply_writes_many_plans_each_whole,
    a_command_reads_its_inbox_row_and_order_at_once,
    committed_events_are_handed_to_the_relay,
);

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

fn ctx(now: DateTime<Utc>) -> Ctx {
    Ctx {
        now,
        jitter: 0.5,
        policy: OrderPolicy::default(),
    }
}

fn request() -> OnrampRequest {
    OnrampRequest {
        user: User {
            email: Email::parse("asha@example.com").unwrap(),
            name: PersonName::parse("Asha Rao").unwrap(),
            phone: Phone::parse("9876543210").unwrap(),
            pan: Some(Pan::parse("ABCDE1234F").unwrap()),
        },
        fiat_amount: InrAmount::parse("1500").unwrap(),
        token: TokenSymbol::parse("USDT").unwrap(),
        chain_id: ChainId::new(137).unwrap(),
        token_address: None,
        receiver_address: EvmAddress::parse("0x1111111111111111111111111111111111111111").unwrap(),
        payment: PaymentMethod::Upi {
            upi_id: UpiId::parse("asha@okaxis").unwrap(),
        },
        max_price_change_pct: None,
    }
}

/// The `create` decision of a new order (in `Preparing`, one `status_changed` event).
fn new_order(tenant: &str, client_order_id: &str) -> Decision {
    order::create(
        Uuid::now_v7(),
        tenant,
        client_order_id,
        rampd_domain::provider::ProviderRef::default(),
        OrderRequest::Onramp(request()),
        &ctx(t0()),
    )
}

fn new_offramp(tenant: &str, client_order_id: &str) -> Decision {
    let wallet = |s: &str| WalletAddress::parse(ChainFamily::Evm, s).unwrap();
    let r = OfframpRequest {
        user: request().user,
        token: TokenSymbol::parse("USDT").unwrap(),
        chain_id: ChainId::new(137).unwrap(),
        token_amount: TokenAmount::parse("25.5").unwrap(),
        token_address: None,
        sender_address: wallet("0x3333333333333333333333333333333333333333"),
        refund_address: wallet("0x4444444444444444444444444444444444444444"),
        bank: PayoutAccount {
            account_number: BankAccountNumber::parse("50100012345678").unwrap(),
            account_name: PersonName::parse("Asha Rao").unwrap(),
            ifsc: Ifsc::parse("HDFC0001234").unwrap(),
        },
        max_price_change_pct: None,
    };
    order::create(
        Uuid::now_v7(),
        tenant,
        client_order_id,
        rampd_domain::provider::ProviderRef::default(),
        OrderRequest::Offramp(r),
        &ctx(t0()),
    )
}

fn utr(s: &str) -> Utr {
    Utr::parse(s).unwrap()
}

fn cmd<'a>(tenant: &'a str, command_id: &'a str, command_type: &'a str) -> CommandRecord<'a> {
    CommandRecord {
        tenant,
        command_id,
        command_type,
        fingerprint: None,
    }
}

fn write<'a>(
    expected_version: Option<i64>,
    decision: &'a Decision,
    command: Option<CommandRecord<'a>>,
    now: DateTime<Utc>,
) -> Write<'a> {
    Write {
        expected_version,
        decision,
        command,
        trace_ctx: Some(TRACE),
        now,
        release_lease: None,
    }
}

/// Commit a decision that must be refused, check that nothing at all was written, and
/// return the error.
async fn commit_refused(db: &DatabaseConnection, w: Write<'_>) -> WriteError {
    let before = everything(db).await;
    let err = commit_decision(db, w).await.unwrap_err();
    assert_eq!(
        everything(db).await,
        before,
        "a refused decision wrote something ({err:?})"
    );
    err
}

/// Two endpoints for `acme`, one for `globex`, registered in `db`.
async fn register_endpoints(db: &DatabaseConnection) {
    let ep = |id: &str, tenant: &str| EndpointConfig {
        id: id.into(),
        tenant: tenant.into(),
        url: format!("https://{tenant}.example.test/hooks/{id}"),
        secret: SecretString::from(SECRET),
        events: Vec::new(),
    };
    let eps = Endpoints::from_config(&[
        ep("ep-acme-1", "acme"),
        ep("ep-acme-2", "acme"),
        ep("ep-globex", "globex"),
    ])
    .expect("endpoints");
    eps.sync_declared(db, t0().timestamp_millis(), 0)
        .await
        .expect("endpoints registered");
}

fn endpoint_ids(tenant: &str) -> BTreeSet<String> {
    match tenant {
        "acme" => ["ep-acme-1", "ep-acme-2"].map(String::from).into(),
        "globex" => ["ep-globex"].map(String::from).into(),
        _ => BTreeSet::new(),
    }
}

/// Row counts of every table a decision writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    orders: u64,
    order_events: u64,
    outbox: u64,
    deliveries: u64,
    commands: u64,
    tasks: u64,
}

async fn counts(db: &DatabaseConnection) -> Counts {
    Counts {
        orders: orders::Entity::find().count(db).await.unwrap(),
        order_events: order_events::Entity::find().count(db).await.unwrap(),
        outbox: outbox::Entity::find().count(db).await.unwrap(),
        deliveries: webhook_deliveries::Entity::find().count(db).await.unwrap(),
        commands: processed_commands::Entity::find().count(db).await.unwrap(),
        tasks: scheduled_tasks::Entity::find().count(db).await.unwrap(),
    }
}

async fn order_row(db: &DatabaseConnection, id: &str) -> Option<orders::Model> {
    orders::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .unwrap()
}

async fn drive_task(db: &DatabaseConnection, order_id: &str) -> Option<scheduled_tasks::Model> {
    scheduled_tasks::Entity::find()
        .filter(scheduled_tasks::Column::OrderId.eq(order_id))
        .filter(scheduled_tasks::Column::Kind.eq(DRIVE))
        .one(db)
        .await
        .unwrap()
}

/// Everything the database holds, to prove that a failed write left no trace.
#[derive(Debug, PartialEq)]
struct Everything {
    orders: Vec<orders::Model>,
    order_events: Vec<order_events::Model>,
    outbox: Vec<outbox::Model>,
    deliveries: Vec<webhook_deliveries::Model>,
    commands: Vec<processed_commands::Model>,
    tasks: Vec<scheduled_tasks::Model>,
}

async fn all<E: EntityTrait>(db: &DatabaseConnection, by: E::Column) -> Vec<E::Model> {
    E::find().order_by_asc(by).all(db).await.unwrap()
}

async fn everything(db: &DatabaseConnection) -> Everything {
    Everything {
        orders: all::<orders::Entity>(db, orders::Column::Id).await,
        order_events: all::<order_events::Entity>(db, order_events::Column::Id).await,
        outbox: all::<outbox::Entity>(db, outbox::Column::Id).await,
        deliveries: all::<webhook_deliveries::Entity>(db, webhook_deliveries::Column::Id).await,
        commands: all::<processed_commands::Entity>(db, processed_commands::Column::Id).await,
        tasks: all::<scheduled_tasks::Entity>(db, scheduled_tasks::Column::Id).await,
    }
}

/// Row counts and the order's drive task, taken before a commit.
struct Before {
    counts: Counts,
    task: Option<scheduled_tasks::Model>,
}

async fn before_commit(db: &DatabaseConnection, order_id: &str) -> Before {
    Before {
        counts: counts(db).await,
        task: drive_task(db, order_id).await,
    }
}

/// Check that `d` (committed at `now`, by `command` if any) left exactly its rows: the
/// order, its history, its task, one outbox row per event, one delivery per event per
/// endpoint of the tenant (with the outbox payload as body) and the inbox row.
async fn assert_decision_written(
    db: &DatabaseConnection,
    before: Before,
    d: &Decision,
    inserted: bool,
    version: i64,
    command: Option<&CommandRecord<'_>>,
    now: DateTime<Utc>,
) {
    let o = &d.order;
    let id = o.id.to_string();
    let now_ms = now.timestamp_millis();
    let n_events = d.events.len() as u64;
    let eps = endpoint_ids(&o.tenant);
    let Before {
        counts: before,
        task: task_before,
    } = before;

    let after = counts(db).await;
    assert_eq!(after.orders, before.orders + u64::from(inserted), "orders");
    assert_eq!(
        after.order_events,
        before.order_events + d.history.len() as u64,
        "one order_events row per history entry"
    );
    assert_eq!(
        after.outbox,
        before.outbox + n_events,
        "one outbox row per event"
    );
    assert_eq!(
        after.deliveries,
        before.deliveries + n_events * eps.len() as u64,
        "one delivery per event per endpoint of the tenant"
    );
    assert_eq!(
        after.commands,
        before.commands + u64::from(command.is_some()),
        "inbox row iff a command caused the write"
    );

    // The order row.
    let row = order_row(db, &id).await.expect("order row");
    assert_eq!(row.version, version);
    assert_eq!(row.state, o.state.as_str());
    assert_eq!(row.tenant, o.tenant);
    assert_eq!(row.client_order_id, o.client_order_id);
    assert_eq!(row.utr.as_deref(), o.utr.as_ref().map(Utr::as_str));
    assert_eq!(row.provider_order_id, o.provider_order_id);
    assert_eq!(row.flagged, o.attention.is_some());
    assert_eq!(row.updated_at, now_ms);
    let stored = load(db, &id).await.unwrap().expect("load");
    assert_eq!(
        &stored.order, o,
        "orders.data round-trips the decided order"
    );
    assert_eq!(stored.version, version);

    // History: contiguous sequence numbers, the last rows are this decision's.
    let history = order_events::Entity::find()
        .filter(order_events::Column::OrderId.eq(id.clone()))
        .order_by_asc(order_events::Column::Seq)
        .all(db)
        .await
        .unwrap();
    let seqs: Vec<i32> = history.iter().map(|h| h.seq).collect();
    assert_eq!(seqs, (1..=history.len() as i32).collect::<Vec<_>>());
    assert_eq!(
        row.history_seq,
        history.len() as i32,
        "the order row holds its last history number"
    );
    let mine = &history[history.len() - d.history.len()..];
    for (row, h) in mine.iter().zip(&d.history) {
        assert_eq!(row.kind, h.kind);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&row.detail).unwrap(),
            h.detail
        );
        assert_eq!(row.command_id.as_deref(), command.map(|c| c.command_id));
        assert_eq!(row.trace_ctx.as_deref(), Some(TRACE));
        assert_eq!(row.created_at, now_ms);
        if h.kind == "state_changed" {
            assert_eq!(row.from_state.as_deref(), h.detail["from"].as_str());
            assert_eq!(row.to_state.as_deref(), h.detail["to"].as_str());
        }
    }

    // The drive task.
    let task = drive_task(db, &id).await;
    match d.next_run {
        NextRun::Keep => assert_eq!(task, task_before, "task untouched"),
        NextRun::At(t) => {
            let task = task.expect("drive task");
            assert_eq!(
                (task.status.as_str(), task.run_at, task.priority),
                ("ready", t.timestamp_millis(), d.urgency.rank()),
                "the task is due when the decision said, as urgent as it said"
            );
        }
        NextRun::Done => assert_eq!(task.expect("drive task").status, "done"),
    }

    // Outbox rows of this order, by event sequence.
    let outbox_rows = outbox::Entity::find()
        .filter(outbox::Column::OrderId.eq(id.clone()))
        .all(db)
        .await
        .unwrap();
    let mut by_seq: BTreeMap<i64, (OrderEvent, outbox::Model)> = BTreeMap::new();
    for r in outbox_rows {
        let ev: OrderEvent = serde_json::from_str(&r.payload).expect("outbox payload");
        assert!(
            by_seq.insert(ev.sequence, (ev, r)).is_none(),
            "event sequence repeated"
        );
    }
    let deliveries = webhook_deliveries::Entity::find()
        .filter(webhook_deliveries::Column::OrderId.eq(id.clone()))
        .all(db)
        .await
        .unwrap();
    for e in &d.events {
        let (ev, r) = by_seq.get(&e.seq).expect("outbox row for the event");
        assert_eq!(r.id, ev.event_id);
        assert_eq!(
            r.subject,
            event_subject(&o.tenant, o.direction(), &ev.event_type)
        );
        assert_eq!(r.published_at, None);
        assert_eq!(r.created_at, now_ms);
        assert_eq!(r.trace_ctx.as_deref(), Some(TRACE));
        assert_eq!(ev.tenant, o.tenant);
        assert_eq!(ev.rampd_order_id, id);
        assert_eq!(ev.order_id, o.client_order_id);
        assert_eq!(ev.occurred_at, now);
        assert_eq!(ev.command_id.as_deref(), command.map(|c| c.command_id));
        match &e.kind {
            EventKind::StatusChanged { from, to } => {
                assert_eq!(ev.state, to.as_str());
                assert_eq!(ev.previous_state.as_deref(), from.map(OrderState::as_str));
            }
            EventKind::AttentionNeeded { reason } | EventKind::PaymentRefRejected { reason } => {
                assert_eq!(ev.reason.as_deref(), Some(reason.as_str()));
            }
            EventKind::SuccessorCreated { successor } => {
                assert_eq!(ev.successor_order_id, Some(successor.to_string()));
            }
            EventKind::OperatorAction { reason, .. } => {
                assert!(ev.reason.as_deref().unwrap().ends_with(reason.as_str()));
            }
        }

        // Its webhook deliveries carry the outbox payload byte for byte.
        let mine: Vec<_> = deliveries
            .iter()
            .filter(|w| {
                serde_json::from_str::<OrderEvent>(&w.body)
                    .unwrap()
                    .event_id
                    == ev.event_id
            })
            .collect();
        let got: BTreeSet<String> = mine.iter().map(|w| w.endpoint_id.clone()).collect();
        assert_eq!(got, eps, "one delivery per endpoint of {}", o.tenant);
        assert_eq!(mine.len(), eps.len());
        for w in mine {
            assert_eq!(
                w.body.as_bytes(),
                r.payload.as_bytes(),
                "body == outbox payload"
            );
            assert_eq!(w.tenant, o.tenant);
            assert_eq!(
                w.url,
                format!("https://{}.example.test/hooks/{}", o.tenant, w.endpoint_id)
            );
            assert_eq!(w.event_type, ev.event_type);
            assert_eq!(w.status, "pending");
            assert_eq!(w.attempt, 0);
            assert_eq!(w.run_at, now_ms);
            assert_eq!(w.lease_owner, None);
            assert_eq!(w.delivered_at, None);
            assert_eq!(w.trace_ctx.as_deref(), Some(TRACE));
            assert!(w.id.starts_with("msg_"));
        }
    }

    // The inbox row.
    if let Some(c) = command {
        let p = processed_commands::Entity::find_by_id(c.inbox_id())
            .one(db)
            .await
            .unwrap()
            .expect("processed_commands row");
        assert_eq!(p.id, inbox_id(c.tenant, c.command_id));
        assert_eq!(p.tenant, c.tenant);
        assert_eq!(p.command_id, c.command_id);
        assert_eq!(p.command_type, c.command_type);
        assert_eq!(p.order_id.as_deref(), Some(id.as_str()));
        assert_eq!(p.outcome, "accepted");
        assert_eq!(p.reason, None);
        assert_eq!(p.processed_at, now_ms);
        assert!(already_processed(db, c.tenant, c.command_id).await.unwrap());
    }
}

/// An order as the tests track it: its last decided state and stored version.
struct Tracked {
    order: Order,
    version: i64,
}

/// Commit a new order's `create` decision and check what it wrote.
async fn insert_checked(
    db: &DatabaseConnection,
    d: &Decision,
    command: Option<CommandRecord<'_>>,
) -> Tracked {
    let before = before_commit(db, &d.order.id.to_string()).await;
    assert!(before.task.is_none());
    let v = commit_decision(db, write(None, d, command.clone(), t0()))
        .await
        .expect("insert order");
    assert_eq!(v, 1);
    assert_decision_written(db, before, d, true, 1, command.as_ref(), t0()).await;
    Tracked {
        order: d.order.clone(),
        version: v,
    }
}

/// Decide `input` on the tracked order, commit it at `now` and check what it wrote.
async fn apply_checked(
    db: &DatabaseConnection,
    t: &mut Tracked,
    input: Input,
    command: Option<CommandRecord<'_>>,
    now: DateTime<Utc>,
) -> Decision {
    let d = order::decide(&t.order, input, &ctx(now)).expect("decision accepted");
    let id = t.order.id.to_string();
    let before = before_commit(db, &id).await;
    let v = commit_decision(db, write(Some(t.version), &d, command.clone(), now))
        .await
        .expect("commit decision");
    assert_eq!(v, t.version + 1);
    assert_decision_written(db, before, &d, false, v, command.as_ref(), now).await;
    t.order = d.order.clone();
    t.version = v;
    d
}

fn observed(o: Observation) -> Input {
    Input::Observed(Box::new(o))
}

// ---------------------------------------------------------------------------------------
// 1. Optimistic concurrency
// ---------------------------------------------------------------------------------------

async fn optimistic_concurrency(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let d0 = new_order("acme", "oc-1");
    let id = d0.order.id.to_string();
    let create = cmd("acme", "cmd-oc-create", "onramp.create");
    assert_eq!(
        commit_decision(db, write(None, &d0, Some(create), t0()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(order_row(db, &id).await.unwrap().version, 1);

    // A decision on version 1 commits as version 2.
    let d1 = order::decide(
        &d0.order,
        observed(Observation::Kyc {
            verified: true,
            missing: vec![],
        }),
        &ctx(at(1)),
    )
    .unwrap();
    assert_eq!(
        commit_decision(db, write(Some(1), &d1, None, at(1)))
            .await
            .unwrap(),
        2
    );

    // Another decision taken on the stale version 1 (history, an event, a task change and
    // a command) is refused and leaves no trace.
    let stale = order::decide(&d0.order, Input::Cancel { reason: None }, &ctx(at(2))).unwrap();
    assert!(!stale.history.is_empty() && !stale.events.is_empty());
    assert_eq!(stale.next_run, NextRun::Done);
    let err = commit_refused(
        db,
        write(
            Some(1),
            &stale,
            Some(cmd("acme", "cmd-oc-cancel", "order.cancel")),
            at(2),
        ),
    )
    .await;
    assert!(matches!(err, WriteError::Conflict), "got {err:?}");
    let stored = load(db, &id).await.unwrap().unwrap();
    assert_eq!((stored.version, &stored.order), (2, &d1.order));
    assert_eq!(order_row(db, &id).await.unwrap().state, "preparing");
    assert!(
        !already_processed(db, "acme", "cmd-oc-cancel")
            .await
            .unwrap()
    );

    // A version from the future conflicts as well.
    let err = commit_refused(db, write(Some(7), &stale, None, at(2))).await;
    assert!(matches!(err, WriteError::Conflict), "got {err:?}");

    // Two writers racing on version 2: exactly one wins, the other conflicts and its
    // decision leaves nothing behind.
    let cancel = order::decide(&stored.order, Input::Cancel { reason: None }, &ctx(at(3))).unwrap();
    let submit = order::decide(
        &stored.order,
        Input::SubmitUtr {
            utr: utr("412345678901"),
        },
        &ctx(at(3)),
    )
    .unwrap();
    let (a, b) = tokio::join!(
        commit_decision(db, write(Some(2), &cancel, None, at(3))),
        commit_decision(db, write(Some(2), &submit, None, at(3))),
    );
    let winner = match (a, b) {
        (Ok(3), Err(WriteError::Conflict)) => &cancel,
        (Err(WriteError::Conflict), Ok(3)) => &submit,
        other => panic!("expected one winner and one conflict, got {other:?}"),
    };
    let stored = load(db, &id).await.unwrap().unwrap();
    assert_eq!((stored.version, &stored.order), (3, &winner.order));
    let history = order_events::Entity::find()
        .filter(order_events::Column::OrderId.eq(id.clone()))
        .count(db)
        .await
        .unwrap();
    assert_eq!(
        history as usize,
        d0.history.len() + d1.history.len() + winner.history.len()
    );
    let events = outbox::Entity::find()
        .filter(outbox::Column::OrderId.eq(id.clone()))
        .count(db)
        .await
        .unwrap();
    assert_eq!(
        events as usize,
        d0.events.len() + d1.events.len() + winner.events.len()
    );
}

// ---------------------------------------------------------------------------------------
// 2. Same (tenant, client_order_id)
// ---------------------------------------------------------------------------------------

async fn duplicate_client_order_id(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let first = new_order("acme", "dup-1");
    insert_checked(db, &first, None).await;

    // A second order (new id) under the same client order id.
    let second = new_order("acme", "dup-1");
    assert_ne!(first.order.id, second.order.id);
    let err = commit_refused(
        db,
        write(
            None,
            &second,
            Some(cmd("acme", "cmd-dup-2", "onramp.create")),
            t0(),
        ),
    )
    .await;
    assert!(matches!(err, WriteError::Conflict), "got {err:?}");
    assert!(!already_processed(db, "acme", "cmd-dup-2").await.unwrap());

    // The same create replayed (same order id too) is a conflict as well.
    let err = commit_refused(db, write(None, &first, None, t0())).await;
    assert!(matches!(err, WriteError::Conflict), "got {err:?}");

    // Another tenant may use the same client order id.
    insert_checked(db, &new_order("globex", "dup-1"), None).await;
    // And a tenant without endpoints gets no deliveries queued.
    let before = counts(db).await;
    let quiet = new_order("initech", "dup-quiet");
    commit_decision(db, write(None, &quiet, None, t0()))
        .await
        .unwrap();
    let after = counts(db).await;
    assert_eq!(after.outbox, before.outbox + quiet.events.len() as u64);
    assert_eq!(after.deliveries, before.deliveries);
}

// ---------------------------------------------------------------------------------------
// 3. A UTR belongs to one order
// ---------------------------------------------------------------------------------------

async fn utr_in_use(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let u = utr("412345678901");

    // Order A receives the UTR while still preparing; it is stored on the row.
    let mut a = insert_checked(db, &new_order("acme", "utr-a"), None).await;
    let da = apply_checked(
        db,
        &mut a,
        Input::SubmitUtr { utr: u.clone() },
        Some(cmd("acme", "cmd-utr-a", "onramp.utr")),
        at(1),
    )
    .await;
    assert_eq!(da.order.utr.as_ref(), Some(&u));
    let a_id = a.order.id.to_string();
    assert_eq!(
        order_row(db, &a_id).await.unwrap().utr.as_deref(),
        Some("412345678901")
    );

    // Order B gets the same UTR: its update is refused.
    let b = insert_checked(db, &new_order("acme", "utr-b"), None).await;
    let db_ = order::decide(&b.order, Input::SubmitUtr { utr: u.clone() }, &ctx(at(2))).unwrap();
    assert_eq!(db_.order.utr.as_ref(), Some(&u));
    let err = commit_refused(
        db,
        write(
            Some(b.version),
            &db_,
            Some(cmd("acme", "cmd-utr-b", "onramp.utr")),
            at(2),
        ),
    )
    .await;
    assert!(matches!(err, WriteError::UtrInUse), "got {err:?}");
    assert!(!already_processed(db, "acme", "cmd-utr-b").await.unwrap());

    // Order C is inserted already carrying the UTR: refused too.
    let c = new_order("globex", "utr-c");
    let dc = order::decide(&c.order, Input::SubmitUtr { utr: u.clone() }, &ctx(at(3))).unwrap();
    let err = commit_refused(db, write(None, &dc, None, at(3))).await;
    assert!(matches!(err, WriteError::UtrInUse), "got {err:?}");
    assert!(order_row(db, &c.order.id.to_string()).await.is_none());

    // B can still take a different UTR.
    let mut b = b;
    apply_checked(
        db,
        &mut b,
        Input::SubmitUtr {
            utr: utr("412345678902"),
        },
        None,
        at(4),
    )
    .await;
}

async fn tx_hash_in_use(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let hash = "0x00000000000000000000000000000000000000000000000000000000000000aa";

    let mut a = insert_checked(db, &new_offramp("acme", "tx-a"), None).await;
    apply_checked(
        db,
        &mut a,
        Input::SubmitTxHash { hash: hash.into() },
        Some(cmd("acme", "cmd-tx-a", "offramp.txhash")),
        at(1),
    )
    .await;
    let a_id = a.order.id.to_string();
    assert_eq!(
        order_row(db, &a_id)
            .await
            .unwrap()
            .deposit_tx_hash
            .as_deref(),
        Some(hash)
    );

    // The same hash on another order is refused by the unique index, and nothing of
    // that decision is written.
    let b = insert_checked(db, &new_offramp("acme", "tx-b"), None).await;
    let d = order::decide(
        &b.order,
        Input::SubmitTxHash { hash: hash.into() },
        &ctx(at(2)),
    )
    .unwrap();
    let err = commit_refused(
        db,
        write(
            Some(b.version),
            &d,
            Some(cmd("acme", "cmd-tx-b", "offramp.txhash")),
            at(2),
        ),
    )
    .await;
    assert!(matches!(err, WriteError::TxHashInUse), "got {err:?}");
    assert!(!already_processed(db, "acme", "cmd-tx-b").await.unwrap());
}

async fn successor_commits_with_its_predecessor(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let mut x = insert_checked(db, &new_order("acme", "late"), None).await;
    let late = x.order.expires_at + chrono::Duration::hours(1);
    apply_checked(db, &mut x, Input::DeadlinePassed, None, late).await;
    assert_eq!(x.order.state, OrderState::Expired);

    let u = utr("412345678901");
    let d = order::decide(&x.order, Input::SubmitUtr { utr: u.clone() }, &ctx(late)).unwrap();
    let successor = d.spawned.as_ref().expect("successor").order.clone();
    let before = counts(db).await;
    commit_decision(
        db,
        write(
            Some(x.version),
            &d,
            Some(cmd("acme", "cmd-late", "onramp.utr")),
            late,
        ),
    )
    .await
    .unwrap();
    let after = counts(db).await;
    // Both orders are written in one transaction and name each other; the UTR sits on
    // the successor only.
    let x_row = order_row(db, &x.order.id.to_string()).await.unwrap();
    let s_row = order_row(db, &successor.id.to_string()).await.unwrap();
    assert_eq!(x_row.state, "expired");
    assert_eq!(x_row.utr, None);
    assert_eq!(s_row.utr.as_deref(), Some("412345678901"));
    assert_eq!(s_row.client_order_id, "late:successor");
    assert_eq!(s_row.state, "preparing");
    assert_eq!(
        load(db, &successor.id.to_string())
            .await
            .unwrap()
            .unwrap()
            .order
            .predecessor,
        Some(x.order.id)
    );
    assert_eq!(
        load(db, &x_row.id).await.unwrap().unwrap().order.successor,
        Some(successor.id)
    );
    // successor_created (old order) + status_changed to preparing (new order)
    assert_eq!(after.outbox, before.outbox + 2);
    assert!(already_processed(db, "acme", "cmd-late").await.unwrap());
    let task: Option<scheduled_tasks::Model> = scheduled_tasks::Entity::find()
        .filter(scheduled_tasks::Column::OrderId.eq(successor.id.to_string()))
        .one(db)
        .await
        .unwrap();
    assert_eq!(task.map(|t| t.status).as_deref(), Some("ready"));

    // If the successor cannot be written (its UTR is in use), neither is the predecessor.
    let mut y = insert_checked(db, &new_order("acme", "late-2"), None).await;
    apply_checked(db, &mut y, Input::DeadlinePassed, None, late).await;
    let d = order::decide(&y.order, Input::SubmitUtr { utr: u }, &ctx(late)).unwrap();
    let err = commit_refused(db, write(Some(y.version), &d, None, late)).await;
    assert!(matches!(err, WriteError::UtrInUse), "got {err:?}");
}

// ---------------------------------------------------------------------------------------
// 4. One transaction per decision
// ---------------------------------------------------------------------------------------

async fn one_transaction_per_decision(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let create = cmd("acme", "cmd-tx-create", "onramp.create");
    assert!(
        !already_processed(db, "acme", "cmd-tx-create")
            .await
            .unwrap()
    );

    // Every step of an order's life; each commit is checked for exactly its rows.
    let d = new_order("acme", "tx-1");
    assert_eq!(d.events.len(), 1);
    let mut t = insert_checked(db, &d, Some(create.clone())).await;
    assert!(
        already_processed(db, "acme", "cmd-tx-create")
            .await
            .unwrap()
    );
    assert!(
        !already_processed(db, "globex", "cmd-tx-create")
            .await
            .unwrap()
    );
    assert!(!already_processed(db, "acme", "cmd-tx-other").await.unwrap());

    apply_checked(
        db,
        &mut t,
        observed(Observation::Kyc {
            verified: true,
            missing: vec![],
        }),
        None,
        at(1),
    )
    .await;
    apply_checked(
        db,
        &mut t,
        observed(Observation::PaymentMethod(LinkResult::Linked)),
        None,
        at(2),
    )
    .await;
    apply_checked(
        db,
        &mut t,
        observed(Observation::Quoted(Quote {
            token_amount: "16.9".parse().unwrap(),
            fiat_amount: "1500".parse().unwrap(),
            conversion_rate: "88.5".parse().unwrap(),
            quoted_at: at(3),
        })),
        None,
        at(3),
    )
    .await;
    let created = apply_checked(
        db,
        &mut t,
        observed(Observation::Created(ProviderOrder {
            provider_order_id: "65f0c0ffee0000000000beef".into(),
            upi_deep_link: Some("upi://pay?pa=x@y".into()),
            qr_string: None,
            bank: None,
            expires_at: None,
            deposit_address: None,
        })),
        None,
        at(4),
    )
    .await;
    assert_eq!(created.events.len(), 1);
    assert_eq!(t.order.state, OrderState::AwaitingPayment);

    // A command without events still records its inbox row.
    let submit = cmd("acme", "cmd-tx-utr", "onramp.utr");
    let d = apply_checked(
        db,
        &mut t,
        Input::SubmitUtr {
            utr: utr("498765432101"),
        },
        Some(submit),
        at(5),
    )
    .await;
    assert!(d.events.is_empty());
    assert!(already_processed(db, "acme", "cmd-tx-utr").await.unwrap());

    apply_checked(db, &mut t, observed(Observation::UtrAccepted), None, at(6)).await;
    // `expired` after a UTR: flagged and expired, two events in one decision.
    let d = apply_checked(
        db,
        &mut t,
        observed(Observation::Status(StatusReport::new("expired"))),
        None,
        at(7),
    )
    .await;
    assert_eq!(d.events.len(), 2);
    assert_eq!(t.order.state, OrderState::Expired);
    assert_eq!(t.version, 8);

    // An order of the other tenant goes to its endpoint only.
    insert_checked(
        db,
        &new_order("globex", "tx-2"),
        Some(cmd("globex", "cmd-tx-create", "onramp.create")),
    )
    .await;
    assert!(
        already_processed(db, "globex", "cmd-tx-create")
            .await
            .unwrap()
    );

    // Across everything: every delivery's body is its outbox payload, and each tenant's
    // deliveries went to its own endpoints only.
    let outbox_rows: BTreeMap<String, outbox::Model> = outbox::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let deliveries = webhook_deliveries::Entity::find().all(db).await.unwrap();
    assert_eq!(deliveries.len(), (1 + 1 + 1 + 2) * 2 + 1);
    for w in &deliveries {
        let ev: OrderEvent = serde_json::from_str(&w.body).unwrap();
        assert_eq!(outbox_rows[&ev.event_id].payload, w.body);
        assert!(endpoint_ids(&w.tenant).contains(&w.endpoint_id));
    }
}

/// A decision that fails late in its transaction (after the order, history, task, outbox
/// and deliveries were written: here on the inbox row) leaves nothing behind.
async fn failed_decision_writes_nothing(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let create = cmd("acme", "cmd-late-1", "onramp.create");
    let t = insert_checked(db, &new_order("acme", "late-1"), Some(create)).await;

    // Same command id again: the inbox insert (the last statement) is a duplicate.
    let d = order::decide(&t.order, Input::Cancel { reason: None }, &ctx(at(1))).unwrap();
    assert!(!d.events.is_empty());
    let err = commit_refused(
        db,
        write(
            Some(t.version),
            &d,
            Some(cmd("acme", "cmd-late-1", "order.cancel")),
            at(1),
        ),
    )
    .await;
    // Another writer recorded this command first: the caller re-checks the inbox.
    assert!(matches!(err, WriteError::Conflict), "got {err:?}");
}

/// The executor's commit ends its own lease on the drive task, and only its own.
async fn commit_releases_only_its_own_lease(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let mut t = insert_checked(db, &new_order("acme", "lease-1"), None).await;
    let id = t.order.id.to_string();
    let now = t0().timestamp_millis();

    let claimed = claim::<scheduled_tasks::Entity, _>(
        db,
        &TASKS,
        due_tasks(now),
        "exec-1",
        now,
        LEASE_MS,
        10,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].order_id, id);
    let token = claimed[0].lease_owner.clone().expect("token");

    // Someone else's token does not release the lease.
    let d = order::decide(
        &t.order,
        observed(Observation::Kyc {
            verified: true,
            missing: vec![],
        }),
        &ctx(at(1)),
    )
    .unwrap();
    let mut w = write(Some(t.version), &d, None, at(1));
    w.release_lease = Some("exec-2/0000");
    assert_eq!(commit_decision(db, w).await.unwrap(), 2);
    t.order = d.order.clone();
    t.version = 2;
    let task = drive_task(db, &id).await.unwrap();
    assert_eq!(task.lease_owner.as_deref(), Some(token.as_str()));
    assert_eq!(task.lease_until, Some(now + LEASE_MS));
    assert_eq!(task.run_at, at(1).timestamp_millis(), "rescheduled");

    // The holder's token does.
    let d = order::decide(
        &t.order,
        observed(Observation::PaymentMethod(LinkResult::Linked)),
        &ctx(at(2)),
    )
    .unwrap();
    let mut w = write(Some(t.version), &d, None, at(2));
    w.release_lease = Some(&token);
    assert_eq!(commit_decision(db, w).await.unwrap(), 3);
    let task = drive_task(db, &id).await.unwrap();
    assert_eq!((task.lease_owner, task.lease_until), (None, None));
    assert_eq!(
        (task.status.as_str(), task.run_at),
        ("ready", at(2).timestamp_millis())
    );
}

/// A decision that only moves the next run writes the leased task alone; a decision that
/// wrote the task meanwhile (a command wanting it run now) wins over it.
async fn reschedule_moves_only_the_task(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let t = insert_checked(db, &new_order("acme", "quiet-1"), None).await;
    let id = t.order.id.to_string();
    let now = t0().timestamp_millis();
    let events_before = outbox::Entity::find().count(db).await.unwrap();
    let history_before = order_events::Entity::find().count(db).await.unwrap();

    let claimed = claim_tasks(db, "exec-1", now, 10).await;
    let token = claimed[0].lease_owner.clone().unwrap();
    reschedule(db, &claimed[0], &token, at(15), Urgency::Moving)
        .await
        .unwrap();
    let task = drive_task(db, &id).await.unwrap();
    assert_eq!(task.run_at, at(15).timestamp_millis());
    assert_eq!((task.lease_owner, task.lease_until), (None, None));
    let row = orders::Entity::find_by_id(id.clone())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.version, t.version, "no order write");
    assert_eq!(
        outbox::Entity::find().count(db).await.unwrap(),
        events_before
    );
    assert_eq!(
        order_events::Entity::find().count(db).await.unwrap(),
        history_before
    );

    // Claimed again; a command then wants the order driven now (it writes the task).
    let claimed = claim_tasks(db, "exec-1", at(15).timestamp_millis(), 10).await;
    let token = claimed[0].lease_owner.clone().unwrap();
    let d = order::decide(&t.order, Input::Cancel { reason: None }, &ctx(at(16))).unwrap();
    assert_eq!(d.next_run, NextRun::Done);
    let d = Decision {
        next_run: NextRun::At(at(16)),
        ..d
    };
    commit_decision(db, write(Some(t.version), &d, None, at(16)))
        .await
        .unwrap();
    reschedule(db, &claimed[0], &token, at(30), Urgency::Moving)
        .await
        .unwrap();
    let task = drive_task(db, &id).await.unwrap();
    assert_eq!(
        task.run_at,
        at(16).timestamp_millis(),
        "the command's run wins"
    );
    assert_eq!(
        (task.lease_owner, task.lease_until),
        (None, None),
        "lease ended"
    );
}

/// A refused command: its inbox row and `command.rejected` event, once.
async fn rejection_recorded_once(db: DatabaseConnection) {
    let db = &db;
    let c = cmd("acme", "cmd-rej-1", "onramp.utr");
    let rejected = |event_id: String| CommandRejected {
        event_id,
        event_type: "command.rejected".into(),
        tenant: "acme".into(),
        command: "onramp.utr".into(),
        command_id: "cmd-rej-1".into(),
        order_id: "client-9".into(),
        code: "order_closed".into(),
        reason: "order is expired".into(),
        occurred_at: t0(),
    };
    let first = rejected(Uuid::now_v7().to_string());
    let before = counts(db).await;
    let rejection = Some(("onramp", &first));
    record_unchanged(
        db,
        &c,
        Some("ord-9"),
        rejection,
        Some(TRACE),
        first.occurred_at,
    )
    .await
    .unwrap();
    let after = counts(db).await;
    assert_eq!(after.commands, before.commands + 1);
    assert_eq!(after.outbox, before.outbox + 1);
    let p = processed_commands::Entity::find_by_id(c.inbox_id())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            p.outcome.as_str(),
            p.reason.as_deref(),
            p.order_id.as_deref()
        ),
        ("rejected", Some("order_closed"), Some("ord-9"))
    );
    let r = outbox::Entity::find_by_id(first.event_id.clone())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.subject, "ramp.evt.acme.onramp.command_rejected");
    assert_eq!(r.payload, serde_json::to_string(&first).unwrap());
    assert!(already_processed(db, "acme", "cmd-rej-1").await.unwrap());

    // The same command rejected again (a redelivery, with a new event id) changes nothing.
    let snapshot = everything(db).await;
    let again = rejected(Uuid::now_v7().to_string());
    let rejection = Some(("onramp", &again));
    record_unchanged(db, &c, Some("ord-9"), rejection, None, again.occurred_at)
        .await
        .unwrap();
    assert_eq!(everything(db).await, snapshot);

    // A no-op repeat is recorded once, without an event.
    let noop = cmd("acme", "cmd-noop-1", "onramp.utr");
    let before = counts(db).await;
    for _ in 0..2 {
        record_unchanged(db, &noop, Some("ord-9"), None, None, t0())
            .await
            .unwrap();
    }
    let after = counts(db).await;
    assert_eq!(after.commands, before.commands + 1);
    assert_eq!(after.outbox, before.outbox);
}

// ---------------------------------------------------------------------------------------
// 5. Leased claims
// ---------------------------------------------------------------------------------------

const LEASE_MS: i64 = 30_000;
const NOW_MS: i64 = 1_763_700_000_000;

/// The executor's notion of a due task.
fn due_tasks(now_ms: i64) -> Condition {
    Condition::all()
        .add(scheduled_tasks::Column::Status.eq("ready"))
        .add(scheduled_tasks::Column::Kind.eq(DRIVE))
        .add(scheduled_tasks::Column::RunAt.lte(now_ms))
}

async fn claim_tasks(
    db: &DatabaseConnection,
    owner: &str,
    now_ms: i64,
    limit: u64,
) -> Vec<scheduled_tasks::Model> {
    claim::<scheduled_tasks::Entity, _>(
        db,
        &TASKS,
        due_tasks(now_ms),
        owner,
        now_ms,
        LEASE_MS,
        limit,
    )
    .await
    .unwrap_or_else(|e| panic!("claim by {owner}: {e}"))
}

fn ids(rows: &[scheduled_tasks::Model]) -> BTreeSet<String> {
    rows.iter().map(|r| r.id.clone()).collect()
}

/// Every claimed row carries this round's token and lease, in the returned models and in
/// the table.
async fn assert_leased(
    db: &DatabaseConnection,
    rows: &[scheduled_tasks::Model],
    owner: &str,
    now_ms: i64,
) {
    let tokens: BTreeSet<_> = rows.iter().map(|r| r.lease_owner.clone()).collect();
    assert!(tokens.len() <= 1, "one token per claim round: {tokens:?}");
    for r in rows {
        let token = r.lease_owner.as_deref().expect("lease owner");
        assert!(token.starts_with(&format!("{owner}/")), "token {token}");
        assert_eq!(r.lease_until, Some(now_ms + LEASE_MS));
        assert!(
            r.status == "ready" && r.run_at <= now_ms,
            "claimed a row not due"
        );
        let stored = scheduled_tasks::Entity::find_by_id(r.id.clone())
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&stored, r);
    }
    let run_ats: Vec<i64> = rows.iter().map(|r| r.run_at).collect();
    assert!(run_ats.is_sorted(), "oldest due first");
}

async fn lease_claims(db: DatabaseConnection) {
    let db = &db;
    let mut all_due = BTreeSet::new();
    // Several rounds of the race, each on 20 fresh due rows.
    for round in 0..5 {
        scheduled_tasks::Entity::delete_many()
            .exec(db)
            .await
            .unwrap();
        let mut rows = Vec::new();
        all_due.clear();
        for i in 0..20 {
            let id = format!("r{round}-due-{i:02}");
            all_due.insert(id.clone());
            rows.push(task_row(&id, "ready", NOW_MS - 1_000 * (20 - i)));
        }
        // Not due: in the future, or not ready.
        for i in 0..3 {
            rows.push(task_row(
                &format!("r{round}-future-{i}"),
                "ready",
                NOW_MS + 3_600_000 + i,
            ));
        }
        rows.push(task_row(&format!("r{round}-done"), "done", NOW_MS - 50_000));
        scheduled_tasks::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .unwrap();

        let (a, b) = tokio::join!(
            claim_tasks(db, "worker-a", NOW_MS, 15),
            claim_tasks(db, "worker-b", NOW_MS, 15),
        );
        assert!(a.len() <= 15 && b.len() <= 15);
        let (ia, ib) = (ids(&a), ids(&b));
        assert_eq!((ia.len(), ib.len()), (a.len(), b.len()), "no duplicates");
        assert!(
            ia.is_disjoint(&ib),
            "round {round}: both claimed {:?}",
            ia.intersection(&ib)
        );
        let won: BTreeSet<String> = ia.union(&ib).cloned().collect();
        assert!(won.is_subset(&all_due), "only due rows: {won:?}");
        // Every candidate of either claimer ended up leased by one of them.
        assert!(
            (15..=20).contains(&won.len()),
            "round {round}: claimed {} rows",
            won.len()
        );
        assert_leased(db, &a, "worker-a", NOW_MS).await;
        assert_leased(db, &b, "worker-b", NOW_MS).await;

        // A third claimer at the same moment gets exactly what is left.
        let c = claim_tasks(db, "worker-c", NOW_MS, 100).await;
        assert_leased(db, &c, "worker-c", NOW_MS).await;
        let ic = ids(&c);
        assert!(ic.is_disjoint(&won));
        assert_eq!(
            ic,
            all_due.difference(&won).cloned().collect::<BTreeSet<_>>()
        );
    }

    // All 20 are now under a live lease: nothing to claim, up to and including the
    // moment the leases end.
    assert!(claim_tasks(db, "worker-d", NOW_MS, 100).await.is_empty());
    assert!(
        claim_tasks(db, "worker-d", NOW_MS + LEASE_MS - 1, 100)
            .await
            .is_empty()
    );
    assert!(
        claim_tasks(db, "worker-d", NOW_MS + LEASE_MS, 100)
            .await
            .is_empty()
    );

    // A live lease on a single row keeps it out while the expired ones come back.
    let later = NOW_MS + LEASE_MS + 1;
    let live_id = all_due.iter().next().unwrap().clone();
    scheduled_tasks::Entity::update_many()
        .col_expr(
            scheduled_tasks::Column::LeaseOwner,
            Expr::value("ghost/1".to_owned()),
        )
        .col_expr(
            scheduled_tasks::Column::LeaseUntil,
            Expr::value(later + 60_000),
        )
        .filter(scheduled_tasks::Column::Id.eq(live_id.clone()))
        .exec(db)
        .await
        .unwrap();
    let e = claim_tasks(db, "worker-e", later, 100).await;
    assert_leased(db, &e, "worker-e", later).await;
    let mut expected = all_due.clone();
    expected.remove(&live_id);
    assert_eq!(ids(&e), expected, "expired leases are claimable again");
    let ghost = scheduled_tasks::Entity::find_by_id(live_id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ghost.lease_owner.as_deref(), Some("ghost/1"));

    // The future and finished rows were never claimed.
    let untouched = scheduled_tasks::Entity::find()
        .filter(scheduled_tasks::Column::Id.is_not_in(all_due.iter().cloned()))
        .all(db)
        .await
        .unwrap();
    assert_eq!(untouched.len(), 4);
    assert!(untouched.iter().all(|r| r.lease_owner.is_none()));
    // Once due, a future row is claimable.
    let future_at = NOW_MS + 3_600_000;
    let f = claim_tasks(db, "worker-f", future_at, 100).await;
    assert!(f.iter().any(|r| r.id.ends_with("future-0")));
    assert!(f.iter().all(|r| !r.id.ends_with("future-1")));
}

/// A batch of decisions of several orders (group commit): one on a stale version
/// (conflict) and one whose UTR another order holds are refused alone and leave no trace;
/// the others commit whole, each with its history, task, events and inbox row.
async fn grouped_decisions_commit_alone_when_one_conflicts(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let group = GroupCommit::start(db.clone(), 1);
    let u = utr("412345678901");
    let mut holder = insert_checked(db, &new_order("acme", "g-holder"), None).await;
    apply_checked(
        db,
        &mut holder,
        Input::SubmitUtr { utr: u.clone() },
        None,
        at(1),
    )
    .await;
    let stale = insert_checked(db, &new_order("acme", "g-stale"), None).await;
    let wants_utr = insert_checked(db, &new_order("acme", "g-utr"), None).await;
    let fine = insert_checked(db, &new_order("acme", "g-fine"), None).await;
    let before = counts(db).await;

    let kyc = || {
        observed(Observation::Kyc {
            verified: true,
            missing: vec![],
        })
    };
    let grouped = |expected: i64, d: Decision, command: Option<&str>| {
        let command = command.map(|id| OwnedCommand::of(&cmd("acme", id, "onramp.utr")));
        let w = OwnedWrite {
            expected_version: Some(expected),
            decision: d,
            command,
            trace_ctx: Some(TRACE.into()),
            now: at(2),
            release_lease: None,
        };
        commit_grouped(&group, w)
    };
    let d_stale = order::decide(&stale.order, kyc(), &ctx(at(2))).unwrap();
    let d_utr = order::decide(
        &wants_utr.order,
        Input::SubmitUtr { utr: u.clone() },
        &ctx(at(2)),
    )
    .unwrap();
    let d_fine = order::decide(&fine.order, kyc(), &ctx(at(2))).unwrap();
    let d_new = new_order("acme", "g-new");
    let new_id = d_new.order.id.to_string();
    let new = commit_grouped(
        &group,
        OwnedWrite {
            expected_version: None,
            decision: d_new,
            command: Some(OwnedCommand::of(&cmd("acme", "cmd-g-new", "onramp.create"))),
            trace_ctx: None,
            now: at(2),
            release_lease: None,
        },
    );
    let (stale_r, utr_r, fine_r, new_r) = tokio::join!(
        grouped(stale.version + 7, d_stale, None),
        grouped(wants_utr.version, d_utr, Some("cmd-g-utr")),
        grouped(fine.version, d_fine.clone(), Some("cmd-g-fine")),
        new,
    );
    assert!(
        matches!(stale_r.1, Err(WriteError::Conflict)),
        "{:?}",
        stale_r.1
    );
    assert!(
        matches!(utr_r.1, Err(WriteError::UtrInUse)),
        "{:?}",
        utr_r.1
    );
    assert_eq!(fine_r.1.unwrap(), fine.version + 1);
    assert_eq!(fine_r.0, d_fine, "the decision is handed back");
    assert_eq!(new_r.1.unwrap(), 1);

    // The refused ones left nothing; the others wrote everything.
    assert_eq!(
        load(db, &stale.order.id.to_string())
            .await
            .unwrap()
            .unwrap()
            .version,
        stale.version
    );
    assert_eq!(
        order_row(db, &wants_utr.order.id.to_string())
            .await
            .unwrap()
            .utr,
        None
    );
    assert!(!already_processed(db, "acme", "cmd-g-utr").await.unwrap());
    assert!(already_processed(db, "acme", "cmd-g-fine").await.unwrap());
    assert!(already_processed(db, "acme", "cmd-g-new").await.unwrap());
    let stored = load(db, &fine.order.id.to_string()).await.unwrap().unwrap();
    assert_eq!(stored.order, d_fine.order);
    assert!(order_row(db, &new_id).await.is_some());
    let after = counts(db).await;
    assert_eq!(after.orders, before.orders + 1);
    assert_eq!(after.commands, before.commands + 2);
    assert!(after.order_events > before.order_events && after.outbox > before.outbox);
}

/// Moves sent together commit together; a task a command wrote meanwhile keeps the
/// command's run and only loses its lease; the others move.
async fn one_batch_moves_each_task_by_its_own_guard(db: DatabaseConnection) {
    let now = 1_000_000;
    for id in ["a", "b", "c"] {
        scheduled_tasks::Entity::insert(task_row(id, "ready", now))
            .exec(&db)
            .await
            .unwrap();
    }
    let due = Condition::all().add(scheduled_tasks::Column::RunAt.lte(now));
    let claimed = claim::<scheduled_tasks::Entity, _>(&db, &TASKS, due, "exec", now, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // A command wants "b" driven now.
    scheduled_tasks::Entity::update_many()
        .col_expr(scheduled_tasks::Column::RunAt, Expr::value(now + 5))
        .col_expr(scheduled_tasks::Column::UpdatedAt, Expr::value(now + 5))
        .filter(scheduled_tasks::Column::Id.eq("b"))
        .exec(&db)
        .await
        .unwrap();
    let group = GroupCommit::start(db.clone(), 1);
    let later = DateTime::from_timestamp_millis(now + 15_000).unwrap();
    let moves = claimed.iter().map(|t| {
        let group = &group;
        async move {
            reschedule_grouped(
                group,
                t,
                t.lease_owner.as_deref().unwrap(),
                later,
                Urgency::Moving,
            )
            .await
        }
    });
    for result in futures::future::join_all(moves).await {
        result.unwrap();
    }
    for (id, run_at) in [("a", now + 15_000), ("b", now + 5), ("c", now + 15_000)] {
        let t = scheduled_tasks::Entity::find_by_id(id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.run_at, run_at, "{id}");
        assert_eq!((t.lease_owner, t.lease_until), (None, None), "{id}");
    }
}

/// Plans written by one `apply`: two decisions of one order go one after the other (the
/// second, made on the first's version, sees it and numbers its history after it); a plan
/// on a stale version is refused before any of its rows is written; a new order and
/// another order's decision commit beside them.
async fn one_apply_writes_many_plans_each_whole(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let mut twice = insert_checked(db, &new_order("acme", "p-twice"), None).await;
    let stale = insert_checked(db, &new_order("globex", "p-stale"), None).await;
    let other = insert_checked(db, &new_order("acme", "p-other"), None).await;
    let before = counts(db).await;
    let kyc = || {
        observed(Observation::Kyc {
            verified: true,
            missing: vec![],
        })
    };
    let first = order::decide(&twice.order, kyc(), &ctx(at(1))).unwrap();
    let cancel = Input::Cancel {
        reason: Some("changed mind".into()),
    };
    let second = order::decide(&first.order, cancel, &ctx(at(1))).unwrap();
    let d_stale = order::decide(&stale.order, kyc(), &ctx(at(1))).unwrap();
    let d_other = order::decide(&other.order, kyc(), &ctx(at(1))).unwrap();
    let d_new = new_order("acme", "p-new");
    let create = cmd("acme", "cmd-p-new", "onramp.create");
    let plan = |expected, d: &Decision, c: Option<CommandRecord<'_>>| {
        super::plan::decision(&write(expected, d, c, at(1)), None, &mut Uuid::now_v7).unwrap()
    };
    let plans = [
        plan(Some(twice.version), &first, None),
        plan(Some(stale.version + 3), &d_stale, None),
        plan(Some(twice.version + 1), &second, None),
        plan(None, &d_new, Some(create)),
        plan(Some(other.version), &d_other, None),
    ];
    let txn = super::begin_write(db).await.unwrap();
    let results = super::apply::apply(&txn, &plans.iter().collect::<Vec<_>>(), None)
        .await
        .expect("no statement fails");
    txn.commit().await.unwrap();
    let results: Vec<_> = results
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect();
    assert_eq!(
        results,
        [
            Ok(twice.version + 1),
            Err(WriteError::Conflict.to_string()),
            Ok(twice.version + 2),
            Ok(1),
            Ok(other.version + 1),
        ]
    );

    // The order written twice holds the second decision, its history both, in order.
    twice.order = second.order.clone();
    let stored = load(db, &twice.order.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.order, stored.version), (second.order.clone(), 3));
    let seqs: Vec<(i32, String)> = order_events::Entity::find()
        .filter(order_events::Column::OrderId.eq(twice.order.id.to_string()))
        .order_by_asc(order_events::Column::Seq)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.seq, h.kind))
        .collect();
    let kinds: Vec<(i32, String)> = [&new_order("acme", "p-twice"), &first, &second]
        .iter()
        .flat_map(|d| d.history.iter().map(|h| h.kind.to_string()))
        .enumerate()
        .map(|(i, k)| (i as i32 + 1, k))
        .collect();
    assert_eq!(seqs, kinds, "history numbered without gaps, in write order");
    // The stale plan wrote nothing; the others everything.
    let stale_now = load(db, &stale.order.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stale_now.order, stale_now.version), (stale.order, 1));
    let after = counts(db).await;
    let live = [&first, &second, &new_order("acme", "p-new"), &d_other];
    let history: usize = live.iter().map(|d| d.history.len()).sum();
    let events: usize = live.iter().map(|d| d.events.len()).sum();
    assert_eq!(after.order_events, before.order_events + history as u64);
    assert_eq!(after.outbox, before.outbox + events as u64);
    // acme has two endpoints subscribed to everything.
    assert_eq!(after.deliveries, before.deliveries + 2 * events as u64);
    assert!(already_processed(db, "acme", "cmd-p-new").await.unwrap());
}

/// The read before a command is decided: its inbox row and its order, by tenant, in one
/// query; nothing of another tenant's.
async fn a_command_reads_its_inbox_row_and_order_at_once(db: DatabaseConnection) {
    use super::orders::load_for_command;
    let db = &db;
    register_endpoints(db).await;
    let create = cmd("acme", "cmd-r-1", "onramp.create");
    let mine = insert_checked(db, &new_order("acme", "r-1"), Some(create.clone())).await;
    let id = |c: &CommandRecord<'_>| c.inbox_id();

    let t = load_for_command(db, &id(&create), "acme", "r-1")
        .await
        .unwrap();
    assert_eq!(
        t.inbox,
        Some(None),
        "the row is there, without a fingerprint"
    );
    let stored = t.order.expect("acme's order");
    assert_eq!((stored.order, stored.version), (mine.order, 1));

    let next = cmd("acme", "cmd-r-2", "onramp.utr");
    let t = load_for_command(db, &id(&next), "acme", "r-1")
        .await
        .unwrap();
    assert!(t.inbox.is_none() && t.order.is_some());
    let theirs = cmd("globex", "cmd-r-1", "onramp.create");
    let t = load_for_command(db, &id(&theirs), "globex", "r-1")
        .await
        .unwrap();
    assert!(t.inbox.is_none() && t.order.is_none(), "nothing of acme's");
}

/// The WARN of a committed flag names the order's trace from its stored context, also
/// where no span carries one (text logs without an exporter).
#[test]
fn a_flag_warning_names_the_stored_trace_without_a_span() {
    let buf = crate::telemetry::logs::LogBuffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut d = new_order("acme", "flag-1");
    d.events.push(order::Emitted {
        seq: 2,
        kind: EventKind::AttentionNeeded {
            reason: "1 consecutive provider failures: create_order: HTTP 503".into(),
        },
    });
    tracing::subscriber::with_default(subscriber, || {
        crate::telemetry::warnings::committed(&d, Some(TRACE));
    });
    let text = buf.text();
    assert!(text.contains("order flagged for attention"), "{text}");
    assert!(
        text.contains("order.trace_id=\"0af7651916cd43dd8448eb211c80319c\"")
            || text.contains("order.trace_id=0af7651916cd43dd8448eb211c80319c"),
        "{text}"
    );
    assert!(!text.contains("HTTP 503"), "the evidence stays out: {text}");
}

/// `d` on `expected`, through `group`.
async fn grouped(
    group: &GroupCommit,
    expected: i64,
    d: Decision,
) -> (Decision, Result<i64, WriteError>) {
    let w = OwnedWrite {
        expected_version: Some(expected),
        decision: d,
        command: None,
        trace_ctx: None,
        now: at(2),
        release_lease: None,
    };
    commit_grouped(group, w).await
}

/// The unpublished outbox rows of `order_id`, oldest first.
async fn unpublished(db: &DatabaseConnection, order_id: &str) -> Vec<outbox::Model> {
    outbox::Entity::find()
        .filter(outbox::Column::OrderId.eq(order_id))
        .filter(outbox::Column::PublishedAt.is_null())
        .order_by_asc(outbox::Column::CreatedAt)
        .all(db)
        .await
        .unwrap()
}

/// With a relay to hand to, a batch's committed events reach it over the channel, stored
/// leased to it, so that no scan claims them while the lease lasts, and any scan does once
/// it has run out; a decision refused for a conflict hands nothing and wakes nothing.
/// Without a relay, the events are stored unleased and the relay is woken to scan.
async fn committed_events_are_handed_to_the_relay(db: DatabaseConnection) {
    let db = &db;
    register_endpoints(db).await;
    let handed_order = insert_checked(db, &new_order("acme", "h-handed"), None).await;
    let stale = insert_checked(db, &new_order("acme", "h-stale"), None).await;
    let scanned = insert_checked(db, &new_order("acme", "h-scanned"), None).await;
    // What the inserts queued is not this test's.
    outbox::Entity::update_many()
        .col_expr(outbox::Column::PublishedAt, Expr::value(1))
        .exec(db)
        .await
        .unwrap();
    // A cancel: a state change, so events.
    let cancel = || Input::Cancel { reason: None };
    let claim_at = |now_ms: i64| {
        claim::<outbox::Entity, _>(db, &OUTBOX, Condition::all(), "other", now_ms, 1_000, 100)
    };

    let wake = Arc::new(Notify::new());
    let (handoff, mut handed) = Handoff::to_relay("w1", 30_000, wake.clone());
    let group = GroupCommit::start_with(db.clone(), 1, handoff);
    let d = order::decide(&handed_order.order, cancel(), &ctx(at(2))).unwrap();
    let d_stale = order::decide(&stale.order, cancel(), &ctx(at(2))).unwrap();
    let before = Utc::now().timestamp_millis();
    let (ok, refused) = tokio::join!(
        grouped(&group, handed_order.version, d),
        grouped(&group, stale.version + 7, d_stale),
    );
    ok.1.unwrap();
    assert!(matches!(refused.1, Err(WriteError::Conflict)));
    // Handed before the writes' results were sent back.
    let mut got = handed.try_recv().expect("the written decision's rows");
    assert!(
        handed.try_recv().is_err(),
        "one batch of rows, the written decision's"
    );
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut stored = unpublished(db, &handed_order.order.id.to_string()).await;
    stored.sort_by(|a, b| a.id.cmp(&b.id));
    assert!(!stored.is_empty());
    assert_eq!(got, stored, "handed as stored, leased");
    for row in &got {
        assert!(row.lease_owner.as_deref().unwrap().starts_with("w1/"));
        assert!(row.lease_until.unwrap() >= before + 30_000);
    }
    assert!(
        unpublished(db, &stale.order.id.to_string())
            .await
            .is_empty()
    );
    assert!(
        wake.notified().now_or_never().is_none(),
        "handed rows wake no scan"
    );
    assert!(
        claim_at(before).await.unwrap().is_empty(),
        "leased to the relay"
    );
    let late = claim_at(got[0].lease_until.unwrap() + 1).await.unwrap();
    assert_eq!(
        late.len(),
        got.len(),
        "claimed by a scan once the lease ran out"
    );

    let wake = Arc::new(Notify::new());
    let group = GroupCommit::start_with(db.clone(), 1, Handoff::wake_only(wake.clone()));
    let d = order::decide(&scanned.order, cancel(), &ctx(at(2))).unwrap();
    grouped(&group, scanned.version, d).await.1.unwrap();
    assert!(
        wake.notified().now_or_never().is_some(),
        "the relay is woken"
    );
    let stored = unpublished(db, &scanned.order.id.to_string()).await;
    assert!(!stored.is_empty() && stored.iter().all(|r| r.lease_owner.is_none()));
    assert_eq!(claim_at(before).await.unwrap().len(), stored.len());
}
