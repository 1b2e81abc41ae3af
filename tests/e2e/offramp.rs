//! Off-ramp orders end to end: crypto in, fiat out.
use rampd::sandbox::{Faults, SandboxConfig, Scenario};
use rampd_domain::order::OrderState;
use rampd_e2e::both;
use rampd_e2e::{Backend, Stack, evm_hash, offramp_body, wait_for};
use serde_json::json;

async fn offramp_happy_path(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create_offramp("off-1").await;

    // The user's instructions: where to send what, on which chain, by when.
    let ev = s
        .wait_event("awaiting_payment", |e| {
            e["order_id"] == "off-1" && e["state"] == "awaiting_payment"
        })
        .await;
    assert_eq!(ev["direction"], "offramp");
    assert_eq!(
        ev["_subject"], "ramp.evt.acme.offramp.status_changed",
        "{ev}"
    );
    let deposit = &ev["deposit"];
    assert!(
        deposit["address"].as_str().unwrap().starts_with("0x"),
        "{ev}"
    );
    assert_eq!(deposit["token"], "USDT");
    assert_eq!(deposit["chain_id"], 137);
    assert_eq!(deposit["token_amount"], "25.5");
    assert!(deposit["expires_at"].is_string());
    assert!(ev["fiat_amount"].is_string(), "quoted fiat amount: {ev}");
    assert!(ev.get("payment").is_none());
    let text = ev.to_string();
    for pii in [
        "off-1@example.com",
        "9876543210",
        "ABCDE1234F",
        "50100012345678",
    ] {
        assert!(!text.contains(pii), "event leaks {pii}");
    }

    // The hash is normalised before it is sent: upper case and spaces are accepted.
    let hash = evm_hash(0xabc);
    let sloppy = format!("  0x{}  ", hash[2..].to_uppercase());
    s.tx_hash("off-1", &sloppy).await;
    let done = s.wait_state("off-1", OrderState::Completed).await;
    assert_eq!(
        done.order.deposit_tx_hash.as_ref().map(|h| h.as_str()),
        Some(hash.as_str())
    );

    wait_for("six status events", || {
        (s.states_of("off-1").len() >= 6).then_some(())
    })
    .await;
    assert_eq!(
        s.states_of("off-1"),
        [
            "preparing",
            "awaiting_payment",
            "tx_hash_submitted",
            "processing",
            "paid_out",
            "completed"
        ]
    );
    let paid = s
        .wait_event("paid_out", |e| {
            e["order_id"] == "off-1" && e["state"] == "paid_out"
        })
        .await;
    assert!(paid["payout_reference"].is_string(), "{paid}");
    assert_eq!(paid["deposit_tx_hash"], hash.as_str());

    let hooks = wait_for("six webhooks", || {
        let h = s.receiver.received();
        (h.len() >= 6).then_some(h)
    })
    .await;
    assert!(hooks.iter().all(|h| h.verified));
    assert!(hooks.iter().all(|h| h.body["direction"] == "offramp"));

    let stats = s.sandbox.stats();
    assert_eq!(
        stats.offramp_orders_by_merchant_ref.values().sum::<u32>(),
        1
    );
    assert_eq!(stats.tx_hash_submissions_by_order.values().sum::<u32>(), 1);
    assert!(stats.orders_by_merchant_ref.is_empty(), "no on-ramp order");
    s.finish().await;
}
both!(offramp_happy_path);

async fn tx_hash_rules(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create_offramp("off-a").await;
    s.create_offramp("off-b").await;
    for id in ["off-a", "off-b"] {
        s.wait_state(id, OrderState::AwaitingPayment).await;
    }

    // Malformed for the order's chain: refused before anything reaches the provider.
    for (n, bad) in ["0x1234", &evm_hash(1)[2..], "not-a-hash"]
        .iter()
        .enumerate()
    {
        let body = json!({"command_id": format!("bad-{n}"), "order_id": "off-a", "tx_hash": bad});
        s.send("offramp.txhash", &body).await;
        let rej = s
            .wait_event("rejection", |e| e["command_id"] == format!("bad-{n}"))
            .await;
        assert_eq!(rej["code"], "invalid_tx_hash", "{rej}");
        assert_eq!(rej["_subject"], "ramp.evt.acme.offramp.command_rejected");
        assert!(
            !rej["reason"].as_str().unwrap().contains(bad),
            "echoes input"
        );
    }

    // A UTR is not an off-ramp command.
    let body = json!({"command_id": "utr-on-off", "order_id": "off-a", "utr": "412345678901"});
    s.send("onramp.utr", &body).await;
    let rej = s
        .wait_event("not applicable", |e| e["command_id"] == "utr-on-off")
        .await;
    assert_eq!(rej["code"], "not_applicable");

    // The same hash twice on one order: idempotent, submitted once.
    let hash = evm_hash(7);
    s.tx_hash("off-a", &hash).await;
    let body = json!({"command_id": "again", "order_id": "off-a", "tx_hash": hash.to_uppercase().replacen("0X", "0x", 1)});
    s.send("offramp.txhash", &body).await;
    s.wait_state("off-a", OrderState::Completed).await;

    // The same hash on another order: refused by the unique index.
    s.tx_hash("off-b", &hash).await;
    let rej = s
        .wait_event("tx hash in use", |e| {
            e["type"] == "command.rejected" && e["order_id"] == "off-b"
        })
        .await;
    assert_eq!(rej["code"], "tx_hash_in_use", "{rej}");
    let b = s.order("off-b").await.unwrap();
    assert_eq!(b.order.deposit_tx_hash, None);
    assert_eq!(b.order.state, OrderState::AwaitingPayment);

    let stats = s.sandbox.stats();
    assert_eq!(stats.tx_hash_submissions_by_order.values().sum::<u32>(), 1);
    s.finish().await;
}
both!(tx_hash_rules);

async fn offramp_refund(backend: Backend) {
    let sandbox = SandboxConfig::with_scenario(Scenario {
        refund_next_offramp: 1,
        ..Scenario::default()
    });
    let s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create_offramp("off-r").await;
    s.wait_state("off-r", OrderState::AwaitingPayment).await;
    s.tx_hash("off-r", &evm_hash(9)).await;
    let done = s.wait_state("off-r", OrderState::Refunded).await;
    assert_eq!(done.order.reason.as_deref(), Some("provider_refunded"));
    let ev = s
        .wait_event("refunded", |e| {
            e["order_id"] == "off-r" && e["state"] == "refunded"
        })
        .await;
    assert_eq!(
        ev["refund_address"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("0x4444444444444444444444444444444444444444"),
        "{ev}"
    );
    assert_eq!(ev["reason"], "provider_refunded");
    s.finish().await;
}
both!(offramp_refund);

async fn offramp_without_hash_expires(backend: Backend) {
    let s = Stack::start_with(backend, SandboxConfig::default(), |cfg| {
        cfg.orders.deposit_window_secs = 1;
        cfg.orders.expiry_grace_secs = 0;
    })
    .await;
    s.create_offramp("off-x").await;
    let done = s.wait_state("off-x", OrderState::Expired).await;
    assert_eq!(done.order.reason.as_deref(), Some("deposit_window_elapsed"));
    assert!(
        done.order.provider_order_id.is_some(),
        "the provider was asked first"
    );
    // A hash after the end is refused.
    s.tx_hash("off-x", &evm_hash(3)).await;
    let rej = s
        .wait_event("closed", |e| {
            e["type"] == "command.rejected" && e["order_id"] == "off-x"
        })
        .await;
    assert_eq!(rej["code"], "order_closed");
    s.finish().await;
}
both!(offramp_without_hash_expires);

async fn offramp_unknown_status_flags_and_continues(backend: Backend) {
    let s = Stack::start(backend).await;
    s.create_offramp("off-u").await;
    s.wait_state("off-u", OrderState::AwaitingPayment).await;
    s.sandbox.set_faults(Faults {
        unknown_status_rate: 1.0,
        ..Faults::default()
    });
    s.tx_hash("off-u", &evm_hash(5)).await;
    let flagged = s
        .wait_event("attention", |e| {
            e["order_id"] == "off-u" && e["type"] == "order.attention_needed"
        })
        .await;
    assert!(
        flagged["reason"]
            .as_str()
            .unwrap()
            .contains("unknown provider status")
    );
    let o = s.order("off-u").await.unwrap();
    assert!(!o.order.state.is_terminal());
    s.sandbox.set_faults(Faults::default());
    s.wait_state("off-u", OrderState::Completed).await;
    s.finish().await;
}
both!(offramp_unknown_status_flags_and_continues);

async fn offramp_create_survives_a_crash(backend: Backend) {
    let sandbox = SandboxConfig::with_faults(Faults {
        respond_latency_create_ms: 800,
        ..Faults::default()
    });
    let mut s = Stack::start_with(backend, sandbox, |_| {}).await;
    s.create_offramp("off-c").await;
    s.kill_during_create("off-c").await;
    let o = s.wait_state("off-c", OrderState::AwaitingPayment).await;
    assert!(
        o.order
            .deposit
            .as_ref()
            .is_some_and(|d| d.address.starts_with("0x")),
        "deposit address recovered by lookup"
    );
    s.tx_hash("off-c", &evm_hash(11)).await;
    s.wait_state("off-c", OrderState::Completed).await;
    let stats = s.sandbox.stats();
    assert_eq!(stats.offramp_orders_by_merchant_ref.len(), 1);
    assert_eq!(
        stats.offramp_orders_by_merchant_ref.values().sum::<u32>(),
        1
    );
    s.finish().await;
}
both!(offramp_create_survives_a_crash);

async fn offramp_invalid_create_is_rejected(backend: Backend) {
    let s = Stack::start(backend).await;
    let mut body = offramp_body("off-bad", "c-bad");
    body["sender_address"] = json!("TJRabPrwbZy45sbavfcjinPJC18kjpRTv8");
    s.send("offramp.create", &body).await;
    let rej = s
        .wait_event("rejection", |e| e["command_id"] == "c-bad")
        .await;
    assert_eq!(rej["code"], "invalid_field");
    assert!(rej["reason"].as_str().unwrap().contains("sender_address"));
    assert!(s.order("off-bad").await.is_none());
    s.finish().await;
}
both!(offramp_invalid_create_is_rejected);
