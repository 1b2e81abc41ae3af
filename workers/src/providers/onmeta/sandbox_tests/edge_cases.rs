//! KYC, link and UTR edge cases: connector and sandbox over real HTTP.

use super::{
    EMAIL, TP, UPI, bank_link, client, get_control, linked_order, put_control, start,
    start_scenario, upi_link, upi_order,
};
use crate::providers::{LinkStatus, ProviderError, UtrOutcome, classify_link_status};
use rampd_sandbox::{Faults, SandboxConfig, Scenario};

#[tokio::test]
async fn kyc_details_list_outstanding_fulfilments() {
    let sandbox = start_scenario(Scenario {
        kyc_pending_checks: 2,
        ..Scenario::default()
    })
    .await;
    let c = client(&sandbox);
    let first = c.kyc_details(EMAIL, TP).await.unwrap();
    assert!(!first.verified);
    // ADDRESS_MAIN is listed twice and IDENTIFICATION_VERIFICATION is IN_PROGRESS (allowed).
    assert_eq!(first.missing, ["ADDRESS_MAIN", "DATE_OF_BIRTH"]);
    // Links are refused while KYC is pending.
    assert!(matches!(
        c.link_upi(EMAIL, &upi_link(), TP).await,
        Err(ProviderError::Rejected { .. })
    ));
    assert!(!c.kyc_status(EMAIL, TP).await.unwrap());
    let done = c.kyc_details(EMAIL, TP).await.unwrap();
    assert!(done.verified);
    assert!(done.missing.is_empty());
    assert_eq!(
        c.link_upi(EMAIL, &upi_link(), TP).await.unwrap().status,
        LinkStatus::Linked
    );
    // Revoked for everyone: not verified, nothing listed.
    sandbox.set_kyc_verified(false);
    let revoked = c.kyc_details(EMAIL, TP).await.unwrap();
    assert!(!revoked.verified && revoked.missing.is_empty());
    sandbox.shutdown();
}

#[tokio::test]
async fn pending_links_are_polled_until_linked() {
    let sandbox = start_scenario(Scenario {
        link_pending_polls: 2,
        ..Scenario::default()
    })
    .await;
    let c = client(&sandbox);

    let bank = c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    assert_eq!(bank.status, LinkStatus::Pending);
    let bank_ref = bank.reference.unwrap();
    let upi = c.link_upi(EMAIL, &upi_link(), TP).await.unwrap();
    assert_eq!(upi.status, LinkStatus::Pending);
    let upi_ref = upi.reference.unwrap();

    // Orders need a verified link.
    assert!(matches!(
        c.create_onramp_order(EMAIL, &upi_order("too-early"), TP)
            .await,
        Err(ProviderError::Rejected { .. })
    ));
    let listed = c.fetch_banks(EMAIL, TP).await.unwrap();
    assert_eq!(listed[0].status.as_deref(), Some("PENDING"));

    let mut bank_seen = Vec::new();
    let mut upi_seen = Vec::new();
    for _ in 0..3 {
        let b = c.bank_link_status(EMAIL, &bank_ref, TP).await.unwrap();
        assert_eq!(b.reference.as_deref(), Some(bank_ref.as_str()));
        bank_seen.push(b.status);
        upi_seen.push(c.upi_link_status(EMAIL, &upi_ref, TP).await.unwrap().status);
    }
    let want = [LinkStatus::Pending, LinkStatus::Pending, LinkStatus::Linked];
    assert_eq!(bank_seen, want);
    assert_eq!(upi_seen, want);
    let upis = c.fetch_upis(EMAIL, TP).await.unwrap();
    assert_eq!(
        classify_link_status(upis[0].status.as_deref(), upis[0].reason.as_deref()),
        LinkStatus::Linked
    );

    // Linking a verified account or UPI ID again: HTTP 406 "account already verified".
    for outcome in [
        c.link_bank(EMAIL, &bank_link(), TP).await.unwrap(),
        c.link_upi(EMAIL, &upi_link(), TP).await.unwrap(),
    ] {
        assert_eq!(outcome.status, LinkStatus::Linked);
        assert_eq!(outcome.reference, None);
    }
    linked_order(&c, "now-linked").await;

    // Unknown references and another user's references are not found.
    assert!(matches!(
        c.bank_link_status(EMAIL, "no-such-ref/../x", TP).await,
        Err(ProviderError::Rejected {
            code: Some(404),
            ..
        })
    ));
    assert!(matches!(
        c.upi_link_status("other@example.com", &upi_ref, TP).await,
        Err(ProviderError::Rejected {
            code: Some(404),
            ..
        })
    ));
    sandbox.shutdown();
}

#[tokio::test]
async fn name_mismatch_is_classified_everywhere() {
    let sandbox = start_scenario(Scenario {
        link_name_mismatch_next: 2,
        ..Scenario::default()
    })
    .await;
    let c = client(&sandbox);
    let upi = c.link_upi(EMAIL, &upi_link(), TP).await.unwrap();
    assert_eq!(upi.status, LinkStatus::NameMismatch);
    let bank = c.link_bank(EMAIL, &bank_link(), TP).await.unwrap();
    assert_eq!(bank.status, LinkStatus::NameMismatch);
    assert_eq!(
        c.upi_link_status(EMAIL, &upi.reference.unwrap(), TP)
            .await
            .unwrap()
            .status,
        LinkStatus::NameMismatch
    );
    let listed = c.fetch_upis(EMAIL, TP).await.unwrap();
    assert_eq!(listed[0].upi_id, UPI);
    assert_eq!(
        classify_link_status(listed[0].status.as_deref(), listed[0].reason.as_deref()),
        LinkStatus::NameMismatch
    );
    // The budget is used up: a new attempt (e.g. after the user fixed the name) links.
    assert_eq!(sandbox.scenario().link_name_mismatch_next, 0);
    assert_eq!(
        c.link_upi(EMAIL, &upi_link(), TP).await.unwrap().status,
        LinkStatus::Linked
    );
    assert_eq!(c.fetch_upis(EMAIL, TP).await.unwrap().len(), 1);
    sandbox.shutdown();
}

#[tokio::test]
async fn a_utr_accepted_on_one_order_is_refused_on_another() {
    let sandbox = start(SandboxConfig::default()).await;
    let c = client(&sandbox);
    let first = linked_order(&c, "utr-1").await;
    let second = c
        .create_onramp_order(EMAIL, &upi_order("utr-2"), TP)
        .await
        .unwrap()
        .order_id;
    c.submit_utr(EMAIL, &first, "412345678901", TP)
        .await
        .unwrap();
    // Live order holds it.
    let refused = c
        .submit_utr(EMAIL, &second, "412345678901", TP)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("already used on another order"),
        "{refused}"
    );
    // Completed order still holds it.
    let mut polls = 0;
    while c.onramp_status(EMAIL, &first, TP).await.unwrap().status != "completed" {
        polls += 1;
        assert!(polls < 10, "order never completed");
    }
    assert!(matches!(
        c.submit_utr(EMAIL, &second, "412345678901", TP).await,
        Err(ProviderError::Rejected { .. })
    ));
    // A fresh UTR is fine.
    assert_eq!(
        c.submit_utr(EMAIL, &second, "412345678902", TP)
            .await
            .unwrap(),
        UtrOutcome::Accepted
    );
    sandbox.shutdown();
}

#[tokio::test]
async fn scenario_and_rate_control_endpoints() {
    let sandbox = start(SandboxConfig::default()).await;
    let put = put_control(
        &sandbox,
        "/sandbox/scenario",
        r#"{"link_pending_polls": 3, "refund_next_offramp": 1}"#,
    )
    .await;
    assert!(put.status().is_success());
    let got: Scenario = get_control(&sandbox, "/sandbox/scenario").await;
    assert_eq!(
        got,
        Scenario {
            link_pending_polls: 3,
            refund_next_offramp: 1,
            ..Scenario::default()
        }
    );
    assert_eq!(sandbox.scenario(), got);
    let bad = put_control(
        &sandbox,
        "/sandbox/scenario",
        r#"{"kyc_pending_checks": -1}"#,
    )
    .await;
    assert_eq!(bad.status().as_u16(), 400);

    for (body, status) in [
        (r#"{"conversion_rate": "91.25"}"#, 200),
        (r#"{"conversion_rate": 0}"#, 400),
        (r#"{"rate": 1}"#, 400),
    ] {
        let put = put_control(&sandbox, "/sandbox/conversion-rate", body).await;
        assert_eq!(put.status().as_u16(), status, "{body}");
    }
    let got: serde_json::Value = get_control(&sandbox, "/sandbox/conversion-rate").await;
    assert_eq!(got["conversion_rate"], "91.25");
    assert_eq!(sandbox.conversion_rate(), super::dec("91.25"));

    // Create faults are part of the faults document.
    let put = put_control(
        &sandbox,
        "/sandbox/faults",
        r#"{"fail_next_create": 2, "reject_2xx_next_create": 1}"#,
    )
    .await;
    assert!(put.status().is_success());
    let faults: Faults = put.json().await.unwrap();
    assert_eq!(
        (faults.fail_next_create, faults.reject_2xx_next_create),
        (2, 1)
    );
    sandbox.shutdown();
}
