//! One lease runs an order's preparation (KYC, link, quote) and writes it once, with the
//! create call's intent; the create call follows in the same lease.

use rampd::sandbox::SandboxConfig;
use rampd::storage::entities::order_events;
use rampd_domain::order::OrderState;
use rampd_e2e::both;
use rampd_e2e::{Backend, Stack};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

async fn preparation_is_one_write(backend: Backend) {
    // A lease long enough that the machine's load cannot end the chain early.
    let s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.executor.lease_ms = 60_000;
    })
    .await;
    s.create("o-1").await;
    let o = s.wait_state("o-1", OrderState::AwaitingPayment).await;
    let rows = order_events::Entity::find()
        .filter(order_events::Column::OrderId.eq(o.order.id.to_string()))
        .order_by_asc(order_events::Column::Seq)
        .all(&s.db)
        .await
        .unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let prep = ["kyc_checked", "payment_method_linked", "quoted", "intent"];
    let at = kinds
        .iter()
        .position(|k| *k == "kyc_checked")
        .expect("KYC checked");
    assert_eq!(kinds[at..at + prep.len()], prep, "{kinds:?}");
    let written: Vec<i64> = rows[at..at + prep.len()]
        .iter()
        .map(|r| r.created_at)
        .collect();
    assert!(
        written.iter().all(|t| *t == written[0]),
        "the preparation steps are written together: {kinds:?} at {written:?}"
    );
    let created = &rows[at + prep.len()];
    assert_eq!(
        created.kind, "created",
        "the provider order follows: {kinds:?}"
    );
    assert!(created.created_at >= written[0]);
    assert_eq!(
        s.sandbox
            .stats()
            .orders_by_merchant_ref
            .values()
            .sum::<u32>(),
        1,
        "one provider order"
    );
    s.finish().await;
}
both!(preparation_is_one_write);
