//! The provider request budget (issue 12), measured where the provider would: at the
//! sandbox, which keeps the arrival time of every API request.

use std::time::Duration;

use rampd::sandbox::{Faults, SandboxConfig};
use rampd_domain::order::OrderState;
use rampd_e2e::both;
use rampd_e2e::{Backend, Stack, wait_for};

/// The most requests that arrived within any one second.
fn busiest_second(times: &[Duration]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|&&t| t < sorted[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Two replicas sharing a budget of 20 requests/s never send the provider more than 20
/// polls in any second, and every order still completes. Unbudgeted, these six parked
/// orders poll about a hundred times a second (every 40-80 ms each).
async fn the_budget_holds_across_two_replicas(backend: Backend) {
    let mut s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.provider.requests_per_sec = 20.0;
        cfg.provider.replicas = 2;
    })
    .await;
    s.add_replica().await;
    let orders: Vec<String> = (0..6).map(|i| format!("o-bud-{i}")).collect();
    for o in &orders {
        s.create(o).await;
    }
    for o in &orders {
        s.wait_state(o, OrderState::AwaitingPayment).await;
    }
    // Let the parked orders press on the budget for a while (at 20/s, three seconds).
    wait_for("60 polls", || {
        (s.sandbox.poll_times().len() >= 60).then_some(())
    })
    .await;
    for (i, o) in orders.iter().enumerate() {
        s.utr(o, &format!("6{:011}", i + 1)).await;
    }
    for o in &orders {
        s.wait_state(o, OrderState::Completed).await;
    }
    let polls = s.sandbox.poll_times();
    let busiest = busiest_second(&polls);
    assert!(busiest <= 20, "{busiest} polls in one second");
    assert_eq!(s.sandbox.stats().busiest_poll_second, busiest as u64);
    let stats = s.sandbox.stats();
    assert!(stats.orders_by_merchant_ref.values().all(|n| *n == 1));
    assert!(stats.utr_submissions_by_order.values().all(|n| *n == 1));
    s.finish().await;
}
both!(the_budget_holds_across_two_replicas);

/// One order's 429 with `Retry-After: 2` pauses every order of the provider: in the two
/// seconds after it, only requests already in flight arrive.
async fn a_429_slows_every_order_of_the_provider(backend: Backend) {
    let s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.provider.requests_per_sec = 1_000.0;
    })
    .await;
    let orders: Vec<String> = (0..4).map(|i| format!("o-429-{i}")).collect();
    for o in &orders {
        s.create(o).await;
    }
    for o in &orders {
        s.wait_state(o, OrderState::AwaitingPayment).await;
    }
    // Parked orders poll every 40-80 ms: dozens of requests a second between them.
    s.sandbox.set_faults(Faults {
        rate_limit_next_status: 1,
        retry_after_secs: 2,
        ..Faults::default()
    });
    let limited_at = wait_for("the 429", || s.sandbox.rate_limited_at()).await;
    wait_for("requests after the pause", || {
        let after = s.sandbox.request_times();
        after
            .iter()
            .any(|&t| t > limited_at + Duration::from_secs(2))
            .then_some(())
    })
    .await;
    let during = s
        .sandbox
        .request_times()
        .into_iter()
        .filter(|&t| t > limited_at && t < limited_at + Duration::from_millis(1_900))
        .count();
    assert!(
        during <= orders.len(),
        "{during} requests during the pause of a 429"
    );
    // And the orders go on afterwards.
    for (i, o) in orders.iter().enumerate() {
        s.utr(o, &format!("7{:011}", i + 1)).await;
    }
    for o in &orders {
        s.wait_state(o, OrderState::Completed).await;
    }
    s.finish().await;
}
both!(a_429_slows_every_order_of_the_provider);
