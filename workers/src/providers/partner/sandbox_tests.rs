//! The Partner API connector against the simulator: the contract both were written from.

use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;

use crate::providers::ProviderError;
use crate::providers::partner::client::{
    DepositRequest, FiatTransferRequest, PartnerClient, PartnerConfig, WalletIdentifierType,
};
use crate::providers::partner::history::{
    Expected, MintCheck, TransferCheck, mint_credit, verify_transfer,
};
use crate::providers::partner::wire::{Confirmation, Deposit};
use rampd_sandbox::partner::{PartnerSimConfig, PartnerStats};
use rampd_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

async fn sandbox() -> SandboxHandle {
    crate::tls::install_crypto();
    Sandbox::start(SandboxConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn client(s: &SandboxHandle, token: &str) -> PartnerClient {
    let cfg = PartnerSimConfig::default();
    PartnerClient::new(PartnerConfig {
        base_url: format!("{}/partner", s.base_url()),
        token: SecretString::from(token),
        tenant_id: cfg.tenant_id,
        tenant_header: cfg.tenant_header,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn good(s: &SandboxHandle) -> PartnerClient {
    client(s, &PartnerSimConfig::default().token)
}

fn mint(wallet: &str, amount: &str) -> DepositRequest {
    DepositRequest {
        amount: amount.parse().unwrap(),
        token: "THIS".into(),
        wallet_identifier: wallet.into(),
        wallet_identifier_type: WalletIdentifierType::CustomNamespace,
    }
}

#[tokio::test]
async fn a_mint_is_deposited_confirmed_and_then_seen_on_chain() {
    let s = sandbox().await;
    let c = good(&s);
    let r = mint("asha.wallet.ul", "25.5");
    let Deposit::Accepted {
        deposit_request_id: id,
        amount,
    } = c.deposit_request(&r, None).await.unwrap()
    else {
        panic!("accepted")
    };
    assert_eq!(amount, "25.5".parse::<Decimal>().unwrap());
    let Confirmation::Confirmed {
        payment_status,
        token_mint_status,
        transaction_id,
        ..
    } = c.confirm(&id, &r, true, None).await.unwrap()
    else {
        panic!("confirmed")
    };
    assert_eq!(payment_status.as_deref(), Some("APPROVED"));
    assert_eq!(token_mint_status.as_deref(), Some("PENDING"));
    assert!(transaction_id.is_some());

    let expected = Expected {
        to: "asha.wallet.ul",
        amount,
    };
    // The mint shows after one more history read (mint_after_reads = 1).
    let first = c.history("asha.wallet.ul", Some(&id), None).await.unwrap();
    assert_eq!(mint_credit(&first, expected, &[]), MintCheck::NotYet);
    let second = c.history("asha.wallet.ul", Some(&id), None).await.unwrap();
    let MintCheck::Credited(credit) = mint_credit(&second, expected, &[]) else {
        panic!("{second:?}")
    };
    assert_eq!(credit.amount, amount);

    // A second confirmation of the same request is invalidated, never a second mint.
    assert_eq!(
        c.confirm(&id, &r, true, None).await.unwrap(),
        Confirmation::Invalidated
    );
    let st = s.partner().stats();
    assert_eq!((st.deposit_requests, st.confirmations), (1, 1));
}

#[tokio::test]
async fn a_rejected_deposit_and_a_cancelled_one_end_without_a_mint() {
    let s = sandbox().await;
    let c = good(&s);
    let rejected = c
        .deposit_request(&mint("user.reject", "5"), None)
        .await
        .unwrap();
    assert!(
        matches!(&rejected, Deposit::Rejected { reason, .. } if reason == "Deposit not allowed"),
        "{rejected:?}"
    );
    let r = mint("ravi.wallet.ul", "5");
    let Deposit::Accepted {
        deposit_request_id: id,
        ..
    } = c.deposit_request(&r, None).await.unwrap()
    else {
        panic!("accepted")
    };
    assert_eq!(
        c.confirm(&id, &r, false, None).await.unwrap(),
        Confirmation::Invalidated,
        "confirm NO"
    );
    assert_eq!(
        c.confirm(&id, &r, true, None).await.unwrap(),
        Confirmation::Invalidated,
        "nothing after a cancellation"
    );
    let unknown = c
        .confirm("no-such-request", &r, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, ProviderError::Rejected { .. }),
        "{unknown:?}"
    );
    assert_eq!(
        s.partner().stats(),
        PartnerStats {
            deposit_requests: 2,
            deposits_rejected: 1,
            cancellations: 1,
            ..PartnerStats::default()
        }
    );
}

#[tokio::test]
async fn a_redeem_transfer_is_verified_and_its_payout_reported_once() {
    let s = sandbox().await;
    let c = good(&s);
    let treasury = "treasury.partner.ul";
    let hash = s
        .partner()
        .add_transfer("asha.wallet.ul", treasury, "10".parse().unwrap());
    let history = c.history(treasury, None, None).await.unwrap();
    let ten = Expected {
        to: treasury,
        amount: "10".parse().unwrap(),
    };
    assert!(matches!(
        verify_transfer(&history, &hash, ten),
        TransferCheck::Verified(_)
    ));
    let eleven = Expected {
        amount: "11".parse().unwrap(),
        ..ten
    };
    assert!(matches!(
        verify_transfer(&history, &hash, eleven),
        TransferCheck::Mismatch { .. }
    ));

    let payout = FiatTransferRequest {
        reference_id: "ord-7".into(),
        fiat_amount: "10.00".parse().unwrap(),
        token_symbol: "USBC".into(),
        fiat_symbol: "USD".into(),
    };
    let first = c.report_fiat_transfer(&hash, &payout, None).await.unwrap();
    let again = c.report_fiat_transfer(&hash, &payout, None).await.unwrap();
    assert_eq!(
        first.transaction_id, again.transaction_id,
        "a repeat is a no-op"
    );
    assert_eq!(s.partner().stats().fiat_transfers, 1);

    let wrong = FiatTransferRequest {
        token_symbol: "THIS".into(),
        ..payout
    };
    let e = c
        .report_fiat_transfer(&hash, &wrong, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ProviderError::Rejected { message, .. } if message == "token symbol is incorrect"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_nothing_is_deposited() {
    let s = sandbox().await;
    let e = client(&s, "wrong")
        .deposit_request(&mint("a.ul", "1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ProviderError::Retryable { reason, .. } if reason.contains("HTTP 401")),
        "{e:?}"
    );
    let other_header = PartnerClient::new(PartnerConfig {
        base_url: format!("{}/partner", s.base_url()),
        token: SecretString::from(PartnerSimConfig::default().token),
        tenant_id: PartnerSimConfig::default().tenant_id,
        tenant_header: "x-partner-tenant".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let e = other_header
        .deposit_request(&mint("a.ul", "1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ProviderError::Rejected { message, .. } if message == "Tenant Id is missing in Headers"),
        "{e:?}"
    );
    assert_eq!(s.partner().stats().deposit_requests, 0);
}
