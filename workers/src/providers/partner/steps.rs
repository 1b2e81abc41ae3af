//! The Partner plan's steps (`rampd_domain::order` Partner plan), for mints and redeems:
//! turn an [`Action`] into this connector's calls and their result into an
//! [`Observation`]. Holds no order state.
//!
//! Recovery of an interrupted call makes no call that could repeat it: an interrupted
//! deposit request is [`Lookup::Unanswerable`] (the API cannot read one back), and an
//! interrupted confirmation is answered by the history, where its mint credit carries
//! the deposit request id as memo.

use rampd_domain::command::{MintRequest, PartnerWallet, RedeemRequest};
use rampd_domain::order::{
    Action, ChainCheck, Intent, Lookup, Observation, Order, OrderRequest, OrderState, ProviderOrder,
};

use super::client::{DepositRequest, FiatTransferRequest, PartnerClient, WalletIdentifierType};
use super::history::{Expected, MintCheck, TransferCheck, credits, mint_credit, verify_transfer};
use super::wire::{Confirmation, Deposit, INVALIDATED};
use crate::providers::ProviderError;

/// The on-chain transactions other orders already settled with (the shell reads them from
/// storage): a mint never takes a credit another order holds.
pub trait Claims {
    fn held(&self, hashes: &[String]) -> impl Future<Output = Result<Vec<String>, ProviderError>>;
}

pub async fn call(
    p: &PartnerClient,
    action: &Action,
    o: &Order,
    claims: &impl Claims,
    trace: Option<&str>,
) -> Result<Observation, ProviderError> {
    match &o.request {
        OrderRequest::Mint(mint) => mint_step(p, action, o, mint, claims, trace).await,
        OrderRequest::Redeem(redeem) => redeem_step(p, action, o, redeem, trace).await,
        other => Err(refused(format!(
            "a {} order is not served by the Partner plan",
            other.kind().as_str()
        ))),
    }
}

async fn mint_step(
    p: &PartnerClient,
    action: &Action,
    o: &Order,
    mint: &MintRequest,
    claims: &impl Claims,
    trace: Option<&str>,
) -> Result<Observation, ProviderError> {
    let deposit = deposit_of(mint);
    let deposit_id = o.provider_order_id.as_deref();
    Ok(match (action, deposit_id) {
        (Action::CreateOrder, _) => match p.deposit_request(&deposit, trace).await? {
            Deposit::Accepted {
                deposit_request_id,
                amount,
            } if amount == deposit.amount => Observation::Created(ProviderOrder {
                provider_order_id: deposit_request_id,
                ..Default::default()
            }),
            // Confirming it would mint another amount than the order's.
            Deposit::Accepted { amount, .. } => {
                return Err(refused(format!(
                    "the deposit request stands for {amount}, not the {} asked",
                    deposit.amount
                )));
            }
            Deposit::Rejected { reason, .. } => return Err(refused(reason)),
        },
        (Action::Confirm, Some(id)) => match p.confirm(id, &deposit, true, trace).await? {
            Confirmation::Confirmed {
                request_id,
                transaction_id,
                ..
            } => Observation::Confirmed {
                transaction_id: transaction_id.unwrap_or(request_id),
            },
            Confirmation::Rejected { reason, .. } => return Err(refused(reason)),
            Confirmation::Invalidated => return Err(refused(INVALIDATED.into())),
        },
        (Action::Decline, Some(id)) => match p.confirm(id, &deposit, false, trace).await? {
            Confirmation::Rejected { .. } | Confirmation::Invalidated => Observation::Declined,
            // Answered like a YES: something is wrong; retried, and flagged if it lasts.
            Confirmation::Confirmed { .. } => {
                return Err(ProviderError::Unknown {
                    detail: "a decline was answered as a confirmation".into(),
                });
            }
        },
        (Action::FindProviderOrder, _) if o.intent == Some(Intent::CreateOrder) => {
            Observation::Lookup(Lookup::Unanswerable {
                evidence: "the Partner API has no endpoint to read a deposit request back".into(),
            })
        }
        (Action::FindProviderOrder | Action::PollStatus, Some(id)) => {
            Observation::Chain(credit(p, mint, id, claims, trace).await?)
        }
        (other, _) => {
            return Err(refused(format!(
                "{} is not a step of the Partner plan here",
                other.name()
            )));
        }
    })
}

/// A redeem's steps: verify the user's transfer in the wallet's history (nothing to ask
/// before its hash arrives, or once verified while the treasury pays), then report the
/// payout against it.
async fn redeem_step(
    p: &PartnerClient,
    action: &Action,
    o: &Order,
    redeem: &RedeemRequest,
    trace: Option<&str>,
) -> Result<Observation, ProviderError> {
    let hash = o.deposit_tx_hash.as_ref().map(|h| h.as_str());
    Ok(match (action, o.state, hash) {
        (Action::PollStatus, OrderState::AwaitingPayment, Some(hash)) => {
            let wallet = redeem.wallet.identifier();
            let history = p.history(wallet, None, trace).await?;
            let expected = Expected {
                to: wallet,
                amount: redeem.amount.value(),
            };
            Observation::Chain(match verify_transfer(&history, hash, expected) {
                TransferCheck::Verified(t) => ChainCheck::Settled { tx_hash: t.trx_id },
                TransferCheck::NotYet => ChainCheck::NotYet,
                TransferCheck::Failed { reason } => ChainCheck::Failed { reason },
                TransferCheck::Mismatch { what } => ChainCheck::Doubtful { evidence: what },
            })
        }
        (Action::PollStatus, _, _) => Observation::Chain(ChainCheck::NotYet),
        (Action::ReportPayout, _, Some(hash)) => {
            let request = FiatTransferRequest {
                reference_id: o.id.to_string(),
                fiat_amount: redeem.fiat.amount,
                token_symbol: redeem.token.as_str().to_string(),
                fiat_symbol: redeem.fiat.symbol.clone(),
            };
            let recorded = p.report_fiat_transfer(hash, &request, trace).await?;
            if recorded.fiat_amount != redeem.fiat.amount {
                return Err(ProviderError::Unknown {
                    detail: format!(
                        "the payout was recorded for {}, not {}",
                        recorded.fiat_amount, redeem.fiat.amount
                    ),
                });
            }
            Observation::PayoutRecorded {
                transaction_id: recorded.transaction_id,
            }
        }
        (other, _, _) => {
            return Err(refused(format!(
                "{} is not a step of the Partner plan here",
                other.name()
            )));
        }
    })
}

/// What the deposit request (and its confirmation, which repeats it) says.
fn deposit_of(mint: &MintRequest) -> DepositRequest {
    DepositRequest {
        amount: mint.amount.value(),
        token: mint.token.as_str().to_string(),
        wallet_identifier: mint.wallet.identifier().to_string(),
        wallet_identifier_type: match mint.wallet {
            PartnerWallet::CustomNamespace(_) => WalletIdentifierType::CustomNamespace,
            PartnerWallet::WalletAddress(_) => WalletIdentifierType::WalletAddress,
        },
    }
}

/// Look for the mint's credit in the wallet's history, narrowed to the deposit request's
/// memo, leaving out the credits other orders hold (should the memo not narrow it, an
/// earlier mint of the same amount to the same wallet is not taken for this one). More
/// than one credit alike is doubtful, never picked.
async fn credit(
    p: &PartnerClient,
    mint: &MintRequest,
    deposit_id: &str,
    claims: &impl Claims,
    trace: Option<&str>,
) -> Result<ChainCheck, ProviderError> {
    let wallet = mint.wallet.identifier();
    let history = p.history(wallet, Some(deposit_id), trace).await?;
    let expected = Expected {
        to: wallet,
        amount: mint.amount.value(),
    };
    // Only credits that fit are asked about: most polls find none, and ask nothing.
    let fitting: Vec<String> = credits(&history, expected)
        .map(|t| t.trx_id.to_ascii_lowercase())
        .collect();
    let held = match fitting.is_empty() {
        true => Vec::new(),
        false => claims.held(&fitting).await?,
    };
    Ok(match mint_credit(&history, expected, &held) {
        MintCheck::Credited(t) => ChainCheck::Settled { tx_hash: t.trx_id },
        MintCheck::NotYet => ChainCheck::NotYet,
        MintCheck::Ambiguous { candidates } => ChainCheck::Doubtful {
            evidence: format!("{candidates} completed credits of this amount carry its memo"),
        },
    })
}

fn refused(message: String) -> ProviderError {
    ProviderError::Rejected {
        code: None,
        message,
    }
}
