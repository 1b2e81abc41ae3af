//! Mint and redeem orders at the Partner API end to end: deposit request, confirmation,
//! the mint credit in the on-chain history; a redeem's verified transfer and reported payout;
//! refusals; routing; and interrupted or killed calls that are never repeated.

use rampd::sandbox::SandboxConfig;
use rampd::sandbox::partner::{Creating, PartnerSimConfig};
use rampd::storage::entities::{orders, processed_commands};
use rampd_domain::order::OrderState;
use rampd_e2e::{Backend, Stack, both, create_body, mint_body, wait_for, with_partner};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

async fn partner_stack(backend: Backend, partner: PartnerSimConfig) -> Stack {
    let sandbox = SandboxConfig {
        partner,
        ..Default::default()
    };
    Stack::start_with(backend, sandbox, with_partner).await
}

async fn mint_happy_path(backend: Backend) {
    let s = partner_stack(backend, PartnerSimConfig::default()).await;
    s.send("mint.create", &mint_body("m-1", "alice.ul")).await;
    let done = s.wait_state("m-1", OrderState::Completed).await;
    assert_eq!(done.order.provider.name.as_str(), "partner");
    assert!(
        done.order.provider_order_id.is_some(),
        "the deposit request id"
    );
    assert!(done.order.provider_transaction_id.is_some());
    let credit = done.order.tx_hash.clone().expect("the mint credit's hash");
    wait_for("three status events", || {
        (s.states_of("m-1").len() >= 3).then_some(())
    })
    .await;
    assert_eq!(s.states_of("m-1"), ["preparing", "processing", "completed"]);
    let ev = s
        .wait_event("completed", |e| {
            e["order_id"] == "m-1" && e["state"] == "completed"
        })
        .await;
    assert_eq!(
        ev["_subject"], "ramp.evt.acme.onramp.status_changed",
        "{ev}"
    );
    assert_eq!(ev["provider"], "partner");
    assert_eq!(ev["token"], "USBC");
    assert_eq!(ev["token_amount"], "25");
    assert_eq!(ev["tx_hash"], credit.as_str());
    assert!(ev.get("chain_id").is_none(), "{ev}");
    let hooks = wait_for("three webhooks", || {
        let h = s.receiver.received();
        (h.len() >= 3).then_some(h)
    })
    .await;
    assert!(hooks.iter().all(|h| h.verified));
    assert!(hooks.iter().all(|h| h.body["provider"] == "partner"));
    let stats = s.sandbox.partner().stats();
    assert_eq!((stats.deposit_requests, stats.confirmations), (1, 1));
    // The row names the provider (the payment-reference indexes are per provider).
    let row = orders::Entity::find_by_id(done.order.id.to_string())
        .one(&s.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.provider, "partner");
    // An on-ramp order of the same tenant still runs at Onmeta.
    s.create("o-1").await;
    let on = s.wait_order("o-1").await;
    assert_eq!(on.order.provider.name.as_str(), "onmeta");
    s.finish().await;
}
both!(mint_happy_path);

async fn a_rejected_deposit_fails_the_mint(backend: Backend) {
    let s = partner_stack(backend, PartnerSimConfig::default()).await;
    // The simulator refuses deposits to wallets whose name ends in `reject` (in a 201).
    s.send("mint.create", &mint_body("m-2", "bob.reject")).await;
    let failed = s.wait_state("m-2", OrderState::Failed).await;
    let reason = failed.order.reason.unwrap_or_default();
    assert!(reason.contains("Deposit not allowed"), "{reason}");
    let stats = s.sandbox.partner().stats();
    assert_eq!((stats.deposit_requests, stats.confirmations), (1, 0));
    s.finish().await;
}
both!(a_rejected_deposit_fails_the_mint);

async fn an_invalidated_confirmation_fails_the_mint_and_is_not_retried(backend: Backend) {
    let partner = PartnerSimConfig {
        invalidate_confirmations: true,
        ..Default::default()
    };
    let s = partner_stack(backend, partner).await;
    s.send("mint.create", &mint_body("m-7", "finn.ul")).await;
    let failed = s.wait_state("m-7", OrderState::Failed).await;
    let reason = failed.order.reason.unwrap_or_default();
    assert!(
        reason.starts_with("confirmation_rejected: Successfully Invalidated"),
        "{reason}"
    );
    let stats = s.sandbox.partner().stats();
    assert_eq!((stats.deposit_requests, stats.confirmations), (1, 0));
    let history = s.history("m-7").await;
    let calls = history.iter().filter(|h| *h == "intent").count();
    assert_eq!(
        calls, 2,
        "one deposit and one confirmation intent: {history:?}"
    );
    s.finish().await;
}
both!(an_invalidated_confirmation_fails_the_mint_and_is_not_retried);

async fn a_lost_confirmation_answer_is_settled_from_the_history(backend: Backend) {
    let partner = PartnerSimConfig {
        lose_confirmation_answers: 1,
        ..Default::default()
    };
    let s = partner_stack(backend, partner).await;
    s.send("mint.create", &mint_body("m-3", "carol.ul")).await;
    // The confirmation was carried out but its answer lost: never sent again, the credit
    // in the history completes the order.
    let done = s.wait_state("m-3", OrderState::Completed).await;
    assert!(done.order.tx_hash.is_some());
    let history = s.history("m-3").await;
    assert!(
        history
            .iter()
            .any(|h| h == "credit_found_after_interrupted_confirmation"),
        "{history:?}"
    );
    let stats = s.sandbox.partner().stats();
    assert_eq!((stats.deposit_requests, stats.confirmations), (1, 1));
    s.finish().await;
}
both!(a_lost_confirmation_answer_is_settled_from_the_history);

async fn a_mint_never_takes_a_credit_another_order_holds(backend: Backend) {
    // Should the history not narrow to the memo, two mints of the same amount to the same
    // wallet see each other's credits; the second credit shows one read late.
    let partner = PartnerSimConfig {
        history_ignores_memo: true,
        ..Default::default()
    };
    let s = partner_stack(backend, partner).await;
    s.send("mint.create", &mint_body("m-8", "gina.ul")).await;
    let first = s.wait_state("m-8", OrderState::Completed).await;
    s.send("mint.create", &mint_body("m-9", "gina.ul")).await;
    let second = s.wait_state("m-9", OrderState::Completed).await;
    let (a, b) = (first.order.tx_hash.unwrap(), second.order.tx_hash.unwrap());
    assert_ne!(a, b, "each mint settles with its own credit");
    // The credit is held in the per-provider unique column, so no two orders share one.
    let row = orders::Entity::find_by_id(first.order.id.to_string())
        .one(&s.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.deposit_tx_hash.as_deref(),
        Some(a.to_ascii_lowercase().as_str())
    );
    let stats = s.sandbox.partner().stats();
    assert_eq!((stats.deposit_requests, stats.confirmations), (2, 2));
    s.finish().await;
}
both!(a_mint_never_takes_a_credit_another_order_holds);

async fn a_lost_deposit_answer_is_flagged_not_repeated(backend: Backend) {
    let partner = PartnerSimConfig {
        lose_deposit_answers: 1,
        ..Default::default()
    };
    let s = partner_stack(backend, partner).await;
    s.send("mint.create", &mint_body("m-4", "dave.ul")).await;
    let flagged = s
        .wait_event("attention", |e| {
            e["order_id"] == "m-4" && e["type"] == "order.attention_needed"
        })
        .await;
    let reason = flagged["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("interrupted deposit request"), "{reason}");
    let o = s.wait_order("m-4").await;
    assert_eq!(o.order.state, OrderState::Preparing);
    assert!(o.order.attention.is_some());
    let stats = s.sandbox.partner().stats();
    assert_eq!((stats.deposit_requests, stats.confirmations), (1, 0));
    // The person's way out: cancel (nothing was confirmed, so nothing was minted).
    s.send(
        "order.cancel",
        &serde_json::json!({"command_id": "m-4-cancel", "order_id": "m-4"}),
    )
    .await;
    s.wait_state("m-4", OrderState::Cancelled).await;
    assert_eq!(s.sandbox.partner().stats().deposit_requests, 1);
    s.finish().await;
}
both!(a_lost_deposit_answer_is_flagged_not_repeated);

async fn a_create_runs_only_at_a_provider_that_serves_it(backend: Backend) {
    let s = partner_stack(backend, PartnerSimConfig::default()).await;
    let rejected = |order_id: &'static str| {
        move |e: &serde_json::Value| e["type"] == "command.rejected" && e["order_id"] == order_id
    };
    let mut mint = mint_body("m-5", "erin.ul");
    mint["provider"] = "onmeta".into();
    s.send("mint.create", &mint).await;
    let r = s
        .wait_event("mint at onmeta refused", rejected("m-5"))
        .await;
    assert_eq!(r["code"], "invalid_field");
    assert_eq!(r["_subject"], "ramp.evt.acme.mint.command_rejected", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("does not serve mint orders"),
        "{r}"
    );
    let mut on = create_body("o-5", "o-5-create");
    on["provider"] = "partner".into();
    s.send("onramp.create", &on).await;
    let r = s
        .wait_event("onramp at partner refused", rejected("o-5"))
        .await;
    assert_eq!(r["code"], "invalid_field");
    let mut unknown = mint_body("m-6", "erin.ul");
    unknown["provider"] = "bunq".into();
    s.send("mint.create", &unknown).await;
    let r = s
        .wait_event("unknown provider refused", rejected("m-6"))
        .await;
    assert!(
        r["reason"].as_str().unwrap().contains("no provider bunq"),
        "{r}"
    );
    assert!(s.order("m-5").await.is_none() && s.order("o-5").await.is_none());
    assert_eq!(s.sandbox.partner().stats().deposit_requests, 0);
    s.finish().await;
}
both!(a_create_runs_only_at_a_provider_that_serves_it);

const TREASURY: &str = "treasury.acme.ul";

fn redeem_body(order_id: &str) -> serde_json::Value {
    serde_json::json!({
        "command_id": format!("{order_id}-create"),
        "order_id": order_id,
        "amount": "25",
        "token": "USBC",
        "wallet_identifier": TREASURY,
        "wallet_identifier_type": "custom_namespace",
        "fiat_amount": "25.00",
        "fiat_symbol": "USD",
        "transfer_method_id": "tm-ach-1"
    })
}

async fn redeem_happy_path(backend: Backend) {
    let s = partner_stack(backend, PartnerSimConfig::default()).await;
    s.send("redeem.create", &redeem_body("r-1")).await;
    s.wait_state("r-1", OrderState::AwaitingPayment).await;
    // The user sends the tokens on chain, then upstream sends the hash.
    let hash = s
        .sandbox
        .partner()
        .add_transfer("alice.ul", TREASURY, "25".parse().unwrap());
    s.tx_hash("r-1", &hash.to_uppercase().replace("0X", "0x"))
        .await;
    let ev = s
        .wait_event("payout instructions", |e| {
            e["order_id"] == "r-1" && e["state"] == "processing"
        })
        .await;
    assert_eq!(
        ev["_subject"], "ramp.evt.acme.offramp.status_changed",
        "{ev}"
    );
    assert_eq!(ev["payout"]["amount"], "25.00", "{ev}");
    assert_eq!(ev["payout"]["symbol"], "USD");
    assert_eq!(ev["payout"]["transfer_method_id"], "tm-ach-1");
    assert_eq!(ev["tx_hash"], hash.as_str());
    // The treasury pays and says so; rampd reports it to the provider.
    let payout = serde_json::json!({"command_id": "r-1-payout", "order_id": "r-1", "payout_reference": "ACH-77"});
    s.send("redeem.payout", &payout).await;
    let done = s.wait_state("r-1", OrderState::Completed).await;
    assert_eq!(done.order.payout_reference.as_deref(), Some("ACH-77"));
    assert!(done.order.provider_transaction_id.is_some());
    wait_for("five status events", || {
        (s.states_of("r-1").len() >= 5).then_some(())
    })
    .await;
    assert_eq!(
        s.states_of("r-1"),
        [
            "preparing",
            "awaiting_payment",
            "processing",
            "paid_out",
            "completed"
        ]
    );
    // The same payout again (another command) changes nothing; nothing is reported twice.
    let mut again = payout.clone();
    again["command_id"] = "r-1-payout-again".into();
    s.send("redeem.payout", &again).await;
    let deadline = std::time::Instant::now() + rampd_e2e::WAIT;
    let outcome = loop {
        let row = processed_commands::Entity::find()
            .filter(processed_commands::Column::CommandId.eq("r-1-payout-again"))
            .one(&s.db)
            .await
            .unwrap();
        if let Some(row) = row {
            break row.outcome;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the repeat was never handled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(outcome, "noop");
    assert_eq!(s.sandbox.partner().stats().fiat_transfers, 1);
    s.finish().await;
}
both!(redeem_happy_path);

async fn a_redeem_refuses_a_failed_transfer_and_flags_a_short_one(backend: Backend) {
    let s = partner_stack(backend, PartnerSimConfig::default()).await;
    let sim = s.sandbox.partner().clone();
    s.send("redeem.create", &redeem_body("r-2")).await;
    s.send("redeem.create", &redeem_body("r-3")).await;
    s.wait_state("r-2", OrderState::AwaitingPayment).await;
    s.wait_state("r-3", OrderState::AwaitingPayment).await;
    let reverted = sim.push_transfer(
        "alice.ul",
        TREASURY,
        "25".parse().unwrap(),
        "Completed",
        Some("out of gas".into()),
    );
    s.tx_hash("r-2", &reverted).await;
    let r = s
        .wait_event("tx_hash_rejected", |e| {
            e["order_id"] == "r-2" && e["type"] == "order.tx_hash_rejected"
        })
        .await;
    assert!(r["reason"].as_str().unwrap().contains("out of gas"), "{r}");
    let short = sim.add_transfer("bob.ul", TREASURY, "10".parse().unwrap());
    s.tx_hash("r-3", &short).await;
    let f = s
        .wait_event("attention", |e| {
            e["order_id"] == "r-3" && e["type"] == "order.attention_needed"
        })
        .await;
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("10 tokens sent, expected 25"),
        "{f}"
    );
    // Neither is paid out: no payout reported, both still waiting.
    for id in ["r-2", "r-3"] {
        let o = s.wait_order(id).await;
        assert_eq!(o.order.state, OrderState::AwaitingPayment, "{id}");
    }
    let early = serde_json::json!({"command_id": "r-3-payout", "order_id": "r-3", "payout_reference": "ACH-1"});
    s.send("redeem.payout", &early).await;
    let r = s
        .wait_event("early payout refused", |e| {
            e["order_id"] == "r-3" && e["type"] == "command.rejected"
        })
        .await;
    assert_eq!(r["code"], "not_applicable");
    assert_eq!(r["_subject"], "ramp.evt.acme.redeem.command_rejected");
    assert_eq!(sim.stats().fiat_transfers, 0);
    s.finish().await;
}
both!(a_redeem_refuses_a_failed_transfer_and_flags_a_short_one);

/// Stop the worker once `reached` says the provider carried a call out, while it holds
/// the answer; then start a new worker with answers flowing again.
async fn kill_after(
    s: &mut Stack,
    what: &str,
    reached: impl Fn(&rampd::sandbox::partner::PartnerStats) -> bool,
) {
    let sim = s.sandbox.partner().clone();
    wait_for(what, || reached(&sim.stats()).then_some(())).await;
    s.kill_worker().await;
    sim.hold_answers(None);
    s.start_worker().await;
}

fn hold(call: Creating) -> Option<(Creating, std::time::Duration)> {
    Some((call, std::time::Duration::from_secs(600)))
}

async fn a_worker_killed_after_each_creating_call_repeats_none(backend: Backend) {
    let mut s = partner_stack(backend, PartnerSimConfig::default()).await;
    let sim = s.sandbox.partner().clone();

    // After the deposit request: it cannot be read back, so it is flagged, not repeated.
    sim.hold_answers(hold(Creating::Deposit));
    s.send("mint.create", &mint_body("k-1", "kate.ul")).await;
    kill_after(&mut s, "deposit request", |st| st.deposit_requests >= 1).await;
    let flagged = s
        .wait_event("attention", |e| {
            e["order_id"] == "k-1" && e["type"] == "order.attention_needed"
        })
        .await;
    assert!(
        flagged["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted deposit request"),
        "{flagged}"
    );

    // After the confirmation: its credit in the history completes the order.
    sim.hold_answers(hold(Creating::Confirmation));
    s.send("mint.create", &mint_body("k-2", "liam.ul")).await;
    kill_after(&mut s, "confirmation", |st| st.confirmations >= 1).await;
    s.wait_state("k-2", OrderState::Completed).await;

    // After the payout report: made again, and the provider records it once.
    s.send("redeem.create", &redeem_body("k-3")).await;
    s.wait_state("k-3", OrderState::AwaitingPayment).await;
    let hash = sim.add_transfer("mia.ul", TREASURY, "25".parse().unwrap());
    s.tx_hash("k-3", &hash).await;
    s.wait_state("k-3", OrderState::Processing).await;
    sim.hold_answers(hold(Creating::FiatTransfer));
    let payout = serde_json::json!({"command_id": "k-3-payout", "order_id": "k-3", "payout_reference": "ACH-9"});
    s.send("redeem.payout", &payout).await;
    kill_after(&mut s, "payout report", |st| st.fiat_transfers >= 1).await;
    let done = s.wait_state("k-3", OrderState::Completed).await;
    assert!(done.order.provider_transaction_id.is_some());

    let stats = sim.stats();
    assert_eq!(stats.deposit_requests, 2, "one per mint");
    assert_eq!(stats.confirmations, 1, "never repeated");
    assert_eq!(stats.fiat_transfers, 1, "recorded once");
    let k1 = s.wait_order("k-1").await;
    assert_eq!(k1.order.state, OrderState::Preparing);
    s.finish().await;
}
both!(a_worker_killed_after_each_creating_call_repeats_none);

async fn orders_are_routed_by_tenant_and_by_command(backend: Backend) {
    let sandbox = SandboxConfig::default();
    let s = Stack::start_with(backend, sandbox, |cfg| {
        with_partner(cfg);
        // A second Partner account; the tenant's default is it.
        let rampd::config::NamedProvider::Partner(p) = cfg.providers["partner"].clone() else {
            unreachable!()
        };
        cfg.providers.insert(
            "partner-eu".into(),
            rampd::config::NamedProvider::Partner(p),
        );
        cfg.tenants.insert(
            "acme".into(),
            rampd::config::TenantConfig {
                provider: Some("partner-eu".into()),
            },
        );
    })
    .await;
    s.send("mint.create", &mint_body("t-1", "nora.ul")).await;
    let mut named = mint_body("t-2", "omar.ul");
    named["provider"] = "partner".into();
    s.send("mint.create", &named).await;
    // The tenant's default serves mints only: its on-ramp orders still go to Onmeta.
    s.create("t-3").await;
    let by_default = s.wait_state("t-1", OrderState::Completed).await;
    let by_name = s.wait_state("t-2", OrderState::Completed).await;
    let onramp = s.wait_order("t-3").await;
    assert_eq!(by_default.order.provider.name.as_str(), "partner-eu");
    assert_eq!(by_name.order.provider.name.as_str(), "partner");
    assert_eq!(onramp.order.provider.name.as_str(), "onmeta");
    s.finish().await;
}
both!(orders_are_routed_by_tenant_and_by_command);
