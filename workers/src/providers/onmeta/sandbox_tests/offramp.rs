//! Off-ramp orders: connector and sandbox over real HTTP.

use std::time::Duration;

use super::{
    ACCOUNT, EMAIL, TP, bank_link, client, client_with, dec, linked_order, start, start_scenario,
};
use crate::providers::{
    CreateOfframpRequest, OnmetaClient, OrderKind, ProviderError, SellQuoteRequest, TxHashOutcome,
};
use rampd_sandbox::KNOWN_OFFRAMP_STATUSES;
use rampd_sandbox::{Faults, SandboxConfig, Scenario};

pub(super) const HASH: &str = "0x9f2c4a7e1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
const SENDER: &str = "0x64Dc21C25Ba5ec2637e1fA32a5db7A845b9Ec222";
const REFUND: &str = "0x1111222233334444555566667777888899990000";
fn sell(amount: &str) -> SellQuoteRequest {
    SellQuoteRequest {
        token_symbol: "USDT".into(),
        token_address: Some("0xc2132d05d31c914a87c6611c10748aeb04b58e8f".into()),
        chain_id: 137,
        sell_token_amount: dec(amount),
        sender_address: SENDER.into(),
    }
}

fn offramp(merchant_ref: &str) -> CreateOfframpRequest {
    CreateOfframpRequest {
        merchant_ref: merchant_ref.into(),
        account_number: ACCOUNT.into(),
        ifsc: "HDFC0000123".into(),
        chain_id: 137,
        sell_token_amount: dec("10"),
        token_symbol: "USDT".into(),
        token_address: Some("0xc2132d05d31c914a87c6611c10748aeb04b58e8f".into()),
        sender_wallet: SENDER.into(),
        refund_wallet: REFUND.into(),
    }
}

/// Links the payout account (logging in implicitly) and creates one off-ramp order.
pub(super) async fn linked_offramp(c: &OnmetaClient, merchant_ref: &str) -> String {
    c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    c.create_offramp_order(EMAIL, &offramp(merchant_ref), TP)
        .await
        .unwrap()
        .order_id
}

/// Polls until `done` (at most 10 polls); returns every status seen.
async fn poll_until(c: &OnmetaClient, order_id: &str, done: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some(done) {
        assert!(seen.len() < 10, "never reached {done}: {seen:?}");
        seen.push(c.offramp_status(EMAIL, order_id, TP).await.unwrap().status);
    }
    seen
}

#[tokio::test]
async fn offramp_happy_path() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();

    let quote = c.sell_quote(EMAIL, &sell("10"), TP).await.unwrap();
    // 10 × 88.50 − 5.00 fee.
    assert_eq!(quote.fiat_amount, dec("880"));
    assert_eq!(quote.conversion_rate, dec("88.50"));
    assert_eq!(quote.transaction_fee, Some(dec("5")));
    assert_eq!(quote.gas_fee, Some(dec("0")));

    let order = c
        .create_offramp_order(EMAIL, &offramp("rampd-off-1"), TP)
        .await
        .unwrap();
    assert_eq!(order.status, "cryptoInit");
    assert_eq!(order.fiat_amount, Some(dec("880")));
    assert_eq!(order.order_id.len(), 24);
    let deposit = order.deposit_address.clone();
    assert!(
        deposit.starts_with("0x") && deposit.len() == 42,
        "{deposit}"
    );
    assert!(order.expires_at.is_none());

    // Before the hash the order waits for the crypto, however often it is polled.
    for _ in 0..2 {
        let status = c.offramp_status(EMAIL, &order.order_id, TP).await.unwrap();
        assert_eq!(status.status, "pending");
        assert_eq!(status.deposit_address.as_deref(), Some(deposit.as_str()));
        assert_eq!(status.tx_hash, None);
        assert_eq!(status.payout_reference, None);
    }

    assert_eq!(
        c.submit_tx_hash(EMAIL, &order.order_id, HASH, TP)
            .await
            .unwrap(),
        TxHashOutcome::Accepted
    );
    // The same hash again: already received, not an error.
    assert_eq!(
        c.submit_tx_hash(EMAIL, &order.order_id, HASH, TP)
            .await
            .unwrap(),
        TxHashOutcome::AlreadyReceived
    );
    // A different hash afterwards: a 2xx rejection.
    let other = HASH.replace('9', "8");
    match c.submit_tx_hash(EMAIL, &order.order_id, &other, TP).await {
        Err(ProviderError::Rejected { code, message }) => {
            assert_eq!(code, Some(400));
            assert!(message.contains("different txnHash"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    let seen = poll_until(&c, &order.order_id, "completed").await;
    assert_eq!(
        seen,
        [
            "orderReceived",
            "CryptoReceived",
            "PayoutSuccess",
            "completed"
        ]
    );
    let done = c.offramp_status(EMAIL, &order.order_id, TP).await.unwrap();
    assert_eq!(done.status, "completed");
    assert_eq!(done.tx_hash.as_deref(), Some(HASH));
    assert!(
        done.payout_reference
            .as_deref()
            .is_some_and(|r| r.len() == 12)
    );
    assert_eq!(done.reason, None);
    assert_eq!(done.refund_address.as_deref(), Some(REFUND));

    let stats = sandbox.stats();
    assert_eq!(
        stats.offramp_orders_by_merchant_ref.get("rampd-off-1"),
        Some(&1)
    );
    assert!(stats.orders_by_merchant_ref.is_empty());
    assert_eq!(
        stats.tx_hash_submissions_by_order.get(&order.order_id),
        Some(&2)
    );
    assert_eq!(stats.create_calls, 1);
    assert_eq!(stats.status_calls, 7);
    sandbox.shutdown();
}

#[tokio::test]
async fn offramp_create_needs_kyc_and_a_linked_bank() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    let err = c
        .create_offramp_order(EMAIL, &offramp("no-bank"), TP)
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("not linked"), "{err}");

    c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    // Another account than the linked one.
    let mut other = offramp("other-account");
    other.account_number = "99887766554433".into();
    assert!(matches!(
        c.create_offramp_order(EMAIL, &other, TP).await,
        Err(ProviderError::Rejected { .. })
    ));
    sandbox.set_kyc_verified(false);
    let err = c
        .create_offramp_order(EMAIL, &offramp("no-kyc"), TP)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("KYC"), "{err}");
    // Too small to cover the fee.
    sandbox.set_kyc_verified(true);
    let mut tiny = offramp("tiny");
    tiny.sell_token_amount = dec("0.01");
    assert!(matches!(
        c.create_offramp_order(EMAIL, &tiny, TP).await,
        Err(ProviderError::Rejected { .. })
    ));
    // Unknown order.
    assert!(matches!(
        c.offramp_status(EMAIL, "ffffffffffffffffffffffff", TP)
            .await,
        Err(ProviderError::Rejected {
            code: Some(404),
            ..
        })
    ));
    assert!(sandbox.stats().offramp_orders_by_merchant_ref.is_empty());
    sandbox.shutdown();
}

#[tokio::test]
async fn refunded_offramp_reports_the_refund_wallet() {
    let sandbox = start_scenario(Scenario {
        refund_next_offramp: 1,
        ..Scenario::default()
    })
    .await;
    let c = client(&sandbox);
    let refunded = linked_offramp(&c, "refund-me").await;
    let normal = c
        .create_offramp_order(EMAIL, &offramp("normal"), TP)
        .await
        .unwrap()
        .order_id;
    assert_eq!(sandbox.scenario().refund_next_offramp, 0);

    c.submit_tx_hash(EMAIL, &refunded, HASH, TP).await.unwrap();
    assert_eq!(
        poll_until(&c, &refunded, "refunded").await,
        ["orderReceived", "refunded"]
    );
    let status = c.offramp_status(EMAIL, &refunded, TP).await.unwrap();
    assert_eq!(status.status, "refunded");
    assert_eq!(status.refund_address.as_deref(), Some(REFUND));
    assert!(status.reason.is_some_and(|r| r.contains("refund wallet")));
    assert_eq!(status.payout_reference, None);

    // The budget was used up: the next order pays out.
    c.submit_tx_hash(EMAIL, &normal, &HASH.replace('f', "e"), TP)
        .await
        .unwrap();
    assert_eq!(
        poll_until(&c, &normal, "completed").await.len(),
        4,
        "normal order path"
    );
    sandbox.shutdown();
}

#[tokio::test]
async fn lost_offramp_create_is_found_by_merchant_ref() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    // An on-ramp order in the same list.
    let onramp = linked_order(&c, "on-1").await;

    sandbox.set_faults(Faults {
        respond_latency_create_ms: 1_500,
        ..Faults::default()
    });
    let impatient = client_with(&sandbox, "sandbox-api-key", Duration::from_millis(300));
    let err = impatient
        .create_offramp_order(EMAIL, &offramp("off-crash"), TP)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Retryable { .. }), "{err:?}");
    sandbox.set_faults(Faults::default());

    let recent = c
        .recent_orders(EMAIL, 0, TP)
        .await
        .unwrap()
        .orders()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(recent.len(), 2);
    let found = recent
        .iter()
        .find(|o| o.merchant_ref.as_deref() == Some("off-crash"))
        .expect("order created despite the lost reply");
    assert_eq!(found.kind, OrderKind::Offramp);
    assert_eq!(found.status, "pending");
    assert_eq!(found.tx_hash, None);
    let on = recent.iter().find(|o| o.order_id == onramp).unwrap();
    assert_eq!(on.kind, OrderKind::Onramp);

    // A tx-hash submission whose reply was lost shows in the list too.
    c.submit_tx_hash(EMAIL, &found.order_id, HASH, TP)
        .await
        .unwrap();
    let recent = c
        .recent_orders(EMAIL, 0, TP)
        .await
        .unwrap()
        .orders()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(recent[0].tx_hash.as_deref(), Some(HASH));
    assert_eq!(recent[0].kind, OrderKind::Offramp);
    sandbox.shutdown();
}

#[tokio::test]
async fn price_moves_and_failed_creates_make_quotes_stale() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    let first = c.sell_quote(EMAIL, &sell("10"), TP).await.unwrap();

    // The create fails twice (no order made); meanwhile the price moves.
    sandbox.set_faults(Faults {
        fail_next_create: 2,
        ..Faults::default()
    });
    for _ in 0..2 {
        let err = c
            .create_offramp_order(EMAIL, &offramp("stale"), TP)
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Retryable { .. }), "{err:?}");
    }
    assert!(sandbox.stats().offramp_orders_by_merchant_ref.is_empty());
    sandbox.set_conversion_rate(dec("87.25")).unwrap();
    assert!(sandbox.set_conversion_rate(dec("0")).is_err());
    assert_eq!(sandbox.conversion_rate(), dec("87.25"));

    let second = c.sell_quote(EMAIL, &sell("10"), TP).await.unwrap();
    assert_eq!(second.fiat_amount, dec("867.50"));
    assert_ne!(second.fiat_amount, first.fiat_amount);
    // The order is priced at create time, not at the first quote.
    let order = c
        .create_offramp_order(EMAIL, &offramp("stale"), TP)
        .await
        .unwrap();
    assert_eq!(order.fiat_amount, Some(dec("867.50")));
    let stats = sandbox.stats();
    assert_eq!(stats.offramp_orders_by_merchant_ref.get("stale"), Some(&1));
    assert_eq!(stats.create_calls, 3);
    assert_eq!(stats.faults_injected, 2);
    sandbox.shutdown();
}

#[tokio::test]
async fn creates_rejected_inside_a_2xx() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    c.link_upi(EMAIL, &super::upi_link(), TP).await.unwrap();
    sandbox.set_faults(Faults {
        reject_2xx_next_create: 2,
        ..Faults::default()
    });
    let off = c
        .create_offramp_order(EMAIL, &offramp("r-off"), TP)
        .await
        .unwrap_err();
    let on = c
        .create_onramp_order(EMAIL, &super::upi_order("r-on"), TP)
        .await
        .unwrap_err();
    for err in [off, on] {
        assert!(
            matches!(&err, ProviderError::Rejected { code: Some(400), message } if message.contains("limit")),
            "{err:?}"
        );
    }
    let stats = sandbox.stats();
    assert!(stats.offramp_orders_by_merchant_ref.is_empty());
    assert!(stats.orders_by_merchant_ref.is_empty());
    // Budget used up.
    c.create_offramp_order(EMAIL, &offramp("r-off"), TP)
        .await
        .unwrap();
    sandbox.shutdown();
}

#[tokio::test]
async fn offramp_status_faults_and_odd_statuses() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    let order_id = linked_offramp(&c, "faulty").await;
    sandbox.set_faults(Faults {
        fail_next_status: 1,
        ..Faults::default()
    });
    assert!(matches!(
        c.offramp_status(EMAIL, &order_id, TP).await,
        Err(ProviderError::Retryable { .. })
    ));
    sandbox.set_faults(Faults {
        unknown_status_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..5 {
        let odd = c.offramp_status(EMAIL, &order_id, TP).await.unwrap().status;
        assert!(!KNOWN_OFFRAMP_STATUSES.contains(&odd.as_str()), "{odd}");
    }
    // Odd statuses are not persisted.
    sandbox.set_faults(Faults::default());
    assert_eq!(
        c.offramp_status(EMAIL, &order_id, TP).await.unwrap().status,
        "pending"
    );
    assert_eq!(sandbox.stats().faults_injected, 6);
    sandbox.shutdown();
}
