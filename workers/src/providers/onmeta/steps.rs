//! The Onmeta plan's steps: turn an [`Action`] into this connector's calls and their
//! result into an [`Observation`]. Holds no order state; maps wire types to domain types.

use chrono::{DateTime, Utc};
use rampd_domain::command::{OfframpRequest, OnrampRequest, PaymentMethod};
use rampd_domain::order::{
    Action, CollectAccount, FoundOrder, LinkResult, Lookup, Observation, Order, OrderRequest,
    ProviderOrder, Quote, StatusReport,
};

use super::lookup::{Next, Outcome, Search, Sought};
use super::{
    CreateOfframpRequest, CreateOnrampRequest, LinkBankRequest, LinkOutcome, LinkStatus,
    LinkUpiRequest, OnmetaClient, OnrampPayment, OrderKind, QuoteRequest, SellQuoteRequest,
    classify_link_status,
};
use crate::providers::ProviderError;

pub async fn call(
    p: &OnmetaClient,
    action: &Action,
    o: &Order,
    now: DateTime<Utc>,
    trace: Option<&str>,
) -> Result<Observation, ProviderError> {
    let Some(user) = o.request.user() else {
        return Err(not_ours(o));
    };
    let email = user.email.expose();
    let provider_id = o.provider_order_id.as_deref().unwrap_or_default();
    Ok(match (action, &o.request) {
        (Action::CheckKyc, _) => {
            let kyc = p.kyc_details(email, trace).await?;
            Observation::Kyc {
                verified: kyc.verified,
                missing: kyc.missing,
            }
        }
        (Action::EnsurePaymentMethod, r) => {
            Observation::PaymentMethod(link_result(ensure_linked(p, r, trace).await?))
        }
        (Action::PollLink(reference), OrderRequest::Onramp(r)) => {
            let outcome = match r.payment {
                PaymentMethod::Upi { .. } => p.upi_link_status(email, reference, trace).await?,
                PaymentMethod::Imps { .. } => p.bank_link_status(email, reference, trace).await?,
            };
            Observation::PaymentMethod(link_result(outcome))
        }
        (Action::PollLink(reference), OrderRequest::Offramp(_)) => Observation::PaymentMethod(
            link_result(p.bank_link_status(email, reference, trace).await?),
        ),
        (Action::FetchQuote, OrderRequest::Onramp(r)) => {
            let q = p
                .buy_quote(
                    email,
                    &QuoteRequest {
                        token_symbol: r.token.as_str().to_string(),
                        chain_id: r.chain_id.get(),
                        fiat_amount: r.fiat_amount.value(),
                    },
                    trace,
                )
                .await?;
            Observation::Quoted(Quote {
                token_amount: q.received_tokens,
                fiat_amount: r.fiat_amount.value(),
                conversion_rate: q.conversion_rate,
                quoted_at: now,
            })
        }
        (Action::FetchQuote, OrderRequest::Offramp(r)) => {
            let q = p
                .sell_quote(
                    email,
                    &SellQuoteRequest {
                        token_symbol: r.token.as_str().to_string(),
                        token_address: r.token_address.as_ref().map(|a| a.as_str().to_string()),
                        chain_id: r.chain_id.get(),
                        sell_token_amount: r.token_amount.value(),
                        sender_address: r.sender_address.as_str().to_string(),
                    },
                    trace,
                )
                .await?;
            Observation::Quoted(Quote {
                token_amount: r.token_amount.value(),
                fiat_amount: q.fiat_amount,
                conversion_rate: q.conversion_rate,
                quoted_at: now,
            })
        }
        (Action::CreateOrder, OrderRequest::Onramp(r)) => {
            Observation::Created(create_onramp(p, o, r, trace).await?)
        }
        (Action::CreateOrder, OrderRequest::Offramp(r)) => {
            let created = p
                .create_offramp_order(
                    email,
                    &CreateOfframpRequest {
                        merchant_ref: o.id.to_string(),
                        account_number: r.bank.account_number.expose().to_string(),
                        ifsc: r.bank.ifsc.as_str().to_string(),
                        chain_id: r.chain_id.get(),
                        sell_token_amount: r.token_amount.value(),
                        token_symbol: r.token.as_str().to_string(),
                        token_address: r.token_address.as_ref().map(|a| a.as_str().to_string()),
                        sender_wallet: r.sender_address.as_str().to_string(),
                        refund_wallet: r.refund_address.as_str().to_string(),
                    },
                    trace,
                )
                .await?;
            Observation::Created(ProviderOrder {
                provider_order_id: created.order_id,
                expires_at: created.expires_at,
                deposit_address: Some(created.deposit_address),
                ..Default::default()
            })
        }
        (Action::FindProviderOrder, _) => Observation::Lookup(find(p, o, email, trace).await?),
        (Action::SubmitUtr(utr), _) => {
            // "Order already success" is an answer, not an error: the status poll follows.
            p.submit_utr(email, provider_id, utr.as_str(), trace)
                .await?;
            Observation::UtrAccepted
        }
        (Action::SubmitTxHash(hash), _) => {
            // The same hash again is an answer too ("already received").
            p.submit_tx_hash(email, provider_id, hash.as_str(), trace)
                .await?;
            Observation::TxHashAccepted
        }
        (Action::PollStatus, OrderRequest::Onramp(_)) => {
            let s = p.onramp_status(email, provider_id, trace).await?;
            Observation::Status(StatusReport {
                tx_hash: s.tx_hash,
                ..StatusReport::new(&s.status)
            })
        }
        (Action::PollStatus, OrderRequest::Offramp(_)) => {
            let s = p.offramp_status(email, provider_id, trace).await?;
            Observation::Status(StatusReport {
                raw: s.status,
                tx_hash: s.tx_hash,
                payout_reference: s.payout_reference,
                refund_address: s.refund_address,
            })
        }
        (_, OrderRequest::Mint(_) | OrderRequest::Redeem(_))
        | (Action::Confirm | Action::Decline | Action::ReportPayout, _) => {
            return Err(not_ours(o));
        }
        (Action::Expire | Action::Nothing, _) => {
            unreachable!("the executor handles {action:?} without a provider call")
        }
    })
}

/// An order this connector's plan does not carry (a configuration mistake, never a
/// provider's answer): refused without a call.
fn not_ours(o: &Order) -> ProviderError {
    ProviderError::Rejected {
        code: None,
        message: format!(
            "a {} order is not served by the Onmeta plan",
            o.request.kind().as_str()
        ),
    }
}

async fn create_onramp(
    p: &OnmetaClient,
    o: &Order,
    r: &OnrampRequest,
    trace: Option<&str>,
) -> Result<ProviderOrder, ProviderError> {
    let payment = match &r.payment {
        PaymentMethod::Upi { upi_id } => OnrampPayment::Upi {
            upi_id: upi_id.expose().to_string(),
            name: r.user.name.expose().to_string(),
        },
        PaymentMethod::Imps {
            account_number,
            account_name,
            ifsc,
        } => OnrampPayment::Imps {
            account_name: account_name.expose().to_string(),
            account_number: account_number.expose().to_string(),
            ifsc: ifsc.as_str().to_string(),
        },
    };
    let created = p
        .create_onramp_order(
            r.user.email.expose(),
            &CreateOnrampRequest {
                merchant_ref: o.id.to_string(),
                token_symbol: r.token.as_str().to_string(),
                token_address: r.token_address.as_ref().map(|a| a.as_str().to_string()),
                chain_id: r.chain_id.get(),
                fiat_amount: r.fiat_amount.value(),
                receiver_address: r.receiver_address.as_str().to_string(),
                payment,
            },
            trace,
        )
        .await?;
    Ok(ProviderOrder {
        provider_order_id: created.order_id,
        upi_deep_link: created.upi_deep_link,
        qr_string: created.qr_string,
        bank: created.bank_details.map(|b| CollectAccount {
            account_name: b.account_name,
            account_number: b.account_number,
            ifsc: b.ifsc,
            bank_name: b.bank_name,
        }),
        expires_at: created.expires_at,
        deposit_address: None,
    })
}

fn link_result(outcome: LinkOutcome) -> LinkResult {
    match outcome.status {
        LinkStatus::Linked => LinkResult::Linked,
        LinkStatus::Pending => LinkResult::Pending {
            reference: outcome.reference,
        },
        LinkStatus::Failed(why) => LinkResult::Failed(why),
        LinkStatus::NameMismatch => LinkResult::NameMismatch,
    }
}

/// The bank account an order pays from (IMPS on-ramp) or out to (off-ramp).
struct BankToLink<'a> {
    account_number: &'a str,
    last4: &'a str,
    account_name: &'a str,
    ifsc: &'a str,
}

/// Make sure the user's payment method (on-ramp) or payout account (off-ramp) is linked:
/// reuse a linked one, report a pending one, link it otherwise. Linking is idempotent by
/// this lookup, so it needs no intent of its own.
async fn ensure_linked(
    p: &OnmetaClient,
    request: &OrderRequest,
    trace: Option<&str>,
) -> Result<LinkOutcome, ProviderError> {
    let Some(user) = request.user() else {
        return Ok(LinkOutcome {
            reference: None,
            status: LinkStatus::Failed("this order has no user to link for".into()),
        });
    };
    let email = user.email.expose();
    let bank = match request {
        OrderRequest::Onramp(OnrampRequest {
            payment: PaymentMethod::Upi { upi_id },
            ..
        }) => {
            let linked = p.fetch_upis(email, trace).await?;
            if let Some(u) = linked
                .iter()
                .find(|u| u.upi_id.eq_ignore_ascii_case(upi_id.expose()))
            {
                return Ok(LinkOutcome {
                    reference: u.reference_id.clone(),
                    status: classify_link_status(u.status.as_deref(), u.reason.as_deref()),
                });
            }
            return p
                .link_upi(
                    email,
                    &LinkUpiRequest {
                        name: user.name.expose().to_string(),
                        phone_country_code: user.phone.country_code().to_string(),
                        phone_number: user.phone.expose().to_string(),
                        upi_id: upi_id.expose().to_string(),
                    },
                    trace,
                )
                .await;
        }
        OrderRequest::Onramp(OnrampRequest {
            payment:
                PaymentMethod::Imps {
                    account_number,
                    account_name,
                    ifsc,
                },
            ..
        }) => BankToLink {
            account_number: account_number.expose(),
            last4: account_number.last4(),
            account_name: account_name.expose(),
            ifsc: ifsc.as_str(),
        },
        OrderRequest::Offramp(OfframpRequest { bank, .. }) => BankToLink {
            account_number: bank.account_number.expose(),
            last4: bank.account_number.last4(),
            account_name: bank.account_name.expose(),
            ifsc: bank.ifsc.as_str(),
        },
        OrderRequest::Mint(_) | OrderRequest::Redeem(_) => {
            unreachable!("a Partner order has no user (returned above)")
        }
    };
    let linked = p.fetch_banks(email, trace).await?;
    if let Some(b) = linked.iter().find(|b| {
        b.masked_account_number.ends_with(bank.last4)
            && b.ifsc
                .as_deref()
                .is_none_or(|i| i.eq_ignore_ascii_case(bank.ifsc))
    }) {
        return Ok(LinkOutcome {
            reference: b.reference_number.clone(),
            status: classify_link_status(b.status.as_deref(), b.reason.as_deref()),
        });
    }
    let Some(pan) = &user.pan else {
        return Ok(LinkOutcome {
            reference: None,
            status: LinkStatus::Failed("PAN is required to link a bank account".into()),
        });
    };
    p.link_bank(
        email,
        &LinkBankRequest {
            name: user.name.expose().to_string(),
            pan: pan.expose().to_string(),
            phone_country_code: user.phone.country_code().to_string(),
            phone_number: user.phone.expose().to_string(),
            account_number: bank.account_number.to_string(),
            account_name: bank.account_name.to_string(),
            ifsc: bank.ifsc.to_string(),
        },
        trace,
    )
    .await
}

/// Look the order up at the provider: by our merchant reference before the provider order
/// id is known, by that id after, reading the user's order list until the search is
/// complete or inconclusive (see [`crate::providers::onmeta::lookup`]), going on from where
/// an earlier attempt stopped. A page that fails before this attempt read anything fails
/// the call; after, the attempt is inconclusive with its progress. An off-ramp order found
/// after an interrupted create is read once more for its deposit address, which the order
/// list does not carry.
async fn find(
    p: &OnmetaClient,
    o: &Order,
    email: &str,
    trace: Option<&str>,
) -> Result<Lookup, ProviderError> {
    let kind = match o.request {
        OrderRequest::Onramp(_) => OrderKind::Onramp,
        OrderRequest::Offramp(_) => OrderKind::Offramp,
        OrderRequest::Mint(_) | OrderRequest::Redeem(_) => return Err(not_ours(o)),
    };
    let sought = match &o.provider_order_id {
        Some(id) => Sought::ProviderId(id.clone()),
        None => Sought::MerchantRef(o.id.to_string()),
    };
    let mut search = Search::new(kind, sought, o.created_at).resume(o.lookup_progress.as_ref());
    let mut read = 0;
    let outcome = loop {
        let page = match p.recent_orders(email, search.skip(), trace).await {
            Ok(page) => page,
            // Nothing new read: an ordinary failed call (it may carry a Retry-After).
            Err(e) if read == 0 => return Err(e),
            // Keep what this attempt read: the next lookup goes on from here.
            Err(e) => {
                return Ok(Lookup::Inconclusive {
                    evidence: format!("an order-list page failed after {read} pages: {e}"),
                    progress: Some(search.progress()),
                });
            }
        };
        read += 1;
        if let Next::Done(outcome) = search.page(&page) {
            break outcome;
        }
    };
    let r = match outcome {
        Outcome::Found(r) => r,
        Outcome::NotFound => return Ok(Lookup::NotFound),
        Outcome::Inconclusive(evidence) => {
            return Ok(Lookup::Inconclusive {
                evidence,
                progress: None,
            });
        }
    };
    let mut order = ProviderOrder {
        provider_order_id: r.order_id.clone(),
        ..Default::default()
    };
    let payment_ref = match kind {
        OrderKind::Onramp => r.utr,
        OrderKind::Offramp => r.tx_hash,
    };
    if kind == OrderKind::Offramp && o.provider_order_id.is_none() {
        order.deposit_address = p
            .offramp_status(email, &r.order_id, trace)
            .await?
            .deposit_address;
    }
    Ok(Lookup::Found(Box::new(FoundOrder {
        order,
        status: r.status,
        payment_ref,
    })))
}
