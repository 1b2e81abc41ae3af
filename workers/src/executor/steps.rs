//! One provider step: turn an [`Action`] into connector calls and the result into an
//! [`Observation`]. Holds no order state; maps wire types to domain types.

use chrono::{DateTime, Utc};
use rampd_domain::command::PaymentMethod;
use rampd_domain::onramp::{
    Action, CallFailure, CollectAccount, FailureKind, FoundOrder, LinkResult, Observation,
    OnrampOrder, ProviderOrder, Quote,
};

use crate::providers::ProviderError;
use crate::providers::onmeta::{
    CreateOnrampRequest, LinkBankRequest, LinkStatus, LinkUpiRequest, OnmetaClient, OnrampPayment,
    QuoteRequest,
};

/// How many pages of recent orders a lookup reads before concluding "not created".
const LOOKUP_PAGES: u32 = 3;

pub async fn run(
    provider: &OnmetaClient,
    action: &Action,
    order: &OnrampOrder,
    now: DateTime<Utc>,
    trace: Option<&str>,
) -> Observation {
    match call(provider, action, order, now, trace).await {
        Ok(obs) => obs,
        Err(e) => Observation::CallFailed(failure(e)),
    }
}

fn failure(e: ProviderError) -> CallFailure {
    let retry_after = e.retry_after();
    let (kind, message) = match e {
        ProviderError::Retryable { reason, .. } => (FailureKind::Retryable, reason),
        ProviderError::RateLimited { .. } => (FailureKind::RateLimited, "rate limited".into()),
        ProviderError::Rejected { message, .. } => (FailureKind::Rejected, message),
        ProviderError::Unknown { detail } => (FailureKind::Unknown, detail),
    };
    CallFailure {
        kind,
        retry_after,
        message,
    }
}

async fn call(
    p: &OnmetaClient,
    action: &Action,
    o: &OnrampOrder,
    now: DateTime<Utc>,
    trace: Option<&str>,
) -> Result<Observation, ProviderError> {
    let user = &o.request.user;
    let email = user.email.expose();
    Ok(match action {
        Action::CheckKyc => Observation::Kyc {
            verified: p.kyc_status(email, trace).await?,
        },
        Action::EnsurePaymentMethod => {
            Observation::PaymentMethod(ensure_payment_method(p, o, trace).await?)
        }
        Action::FetchQuote => {
            let q = p
                .buy_quote(
                    email,
                    &QuoteRequest {
                        token_symbol: o.request.token.as_str().to_string(),
                        chain_id: o.request.chain_id.get(),
                        fiat_amount: o.request.fiat_amount.value(),
                    },
                    trace,
                )
                .await?;
            Observation::Quoted(Quote {
                received_tokens: q.received_tokens,
                conversion_rate: q.conversion_rate,
                quoted_at: now,
            })
        }
        Action::CreateOrder => {
            let payment = match &o.request.payment {
                PaymentMethod::Upi { upi_id } => OnrampPayment::Upi {
                    upi_id: upi_id.expose().to_string(),
                    name: user.name.expose().to_string(),
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
                    email,
                    &CreateOnrampRequest {
                        merchant_ref: o.id.to_string(),
                        token_symbol: o.request.token.as_str().to_string(),
                        token_address: o
                            .request
                            .token_address
                            .as_ref()
                            .map(|a| a.as_str().to_string()),
                        chain_id: o.request.chain_id.get(),
                        fiat_amount: o.request.fiat_amount.value(),
                        receiver_address: o.request.receiver_address.as_str().to_string(),
                        payment,
                    },
                    trace,
                )
                .await?;
            Observation::Created(ProviderOrder {
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
            })
        }
        Action::FindProviderOrder => Observation::Lookup(find(p, o, trace).await?),
        Action::SubmitUtr(utr) => {
            let id = o.provider_order_id.as_deref().unwrap_or_default();
            // "Order already success" is an answer, not an error: the status poll follows.
            p.submit_utr(email, id, utr.as_str(), trace).await?;
            Observation::UtrAccepted
        }
        Action::PollStatus => {
            let id = o.provider_order_id.as_deref().unwrap_or_default();
            let s = p.onramp_status(email, id, trace).await?;
            Observation::Status {
                raw: s.status,
                tx_hash: s.tx_hash,
            }
        }
        Action::Expire | Action::Nothing => {
            unreachable!("the executor handles {action:?} without a provider call")
        }
    })
}

/// Make sure the user's payment method is linked: reuse a linked one, report a pending
/// one, link it otherwise.
async fn ensure_payment_method(
    p: &OnmetaClient,
    o: &OnrampOrder,
    trace: Option<&str>,
) -> Result<LinkResult, ProviderError> {
    let user = &o.request.user;
    let email = user.email.expose();
    let outcome = match &o.request.payment {
        PaymentMethod::Upi { upi_id } => {
            let linked = p.fetch_upis(email, trace).await?;
            if let Some(u) = linked
                .iter()
                .find(|u| u.upi_id.eq_ignore_ascii_case(upi_id.expose()))
            {
                return Ok(link_status(u.status.as_deref(), u.reason.as_deref()));
            }
            p.link_upi(
                email,
                &LinkUpiRequest {
                    name: user.name.expose().to_string(),
                    phone_country_code: user.phone.country_code().to_string(),
                    phone_number: user.phone.expose().to_string(),
                    upi_id: upi_id.expose().to_string(),
                },
                trace,
            )
            .await?
        }
        PaymentMethod::Imps {
            account_number,
            account_name,
            ifsc,
        } => {
            let linked = p.fetch_banks(email, trace).await?;
            let last4 = account_number.last4();
            if let Some(b) = linked.iter().find(|b| {
                b.masked_account_number.ends_with(last4)
                    && b.ifsc
                        .as_deref()
                        .is_none_or(|i| i.eq_ignore_ascii_case(ifsc.as_str()))
            }) {
                return Ok(link_status(b.status.as_deref(), b.reason.as_deref()));
            }
            let Some(pan) = &user.pan else {
                return Ok(LinkResult::Failed(
                    "PAN is required to link a bank account".into(),
                ));
            };
            p.link_bank(
                email,
                &LinkBankRequest {
                    name: user.name.expose().to_string(),
                    pan: pan.expose().to_string(),
                    phone_country_code: user.phone.country_code().to_string(),
                    phone_number: user.phone.expose().to_string(),
                    account_number: account_number.expose().to_string(),
                    account_name: account_name.expose().to_string(),
                    ifsc: ifsc.as_str().to_string(),
                },
                trace,
            )
            .await?
        }
    };
    Ok(match outcome.status {
        LinkStatus::Linked => LinkResult::Linked,
        LinkStatus::Pending => LinkResult::Pending,
        LinkStatus::Failed(why) => LinkResult::Failed(why),
        LinkStatus::NameMismatch => {
            LinkResult::Failed("the account holder's name does not match the KYC name".into())
        }
    })
}

fn link_status(status: Option<&str>, reason: Option<&str>) -> LinkResult {
    match status.map(str::to_ascii_lowercase).as_deref() {
        None | Some("success") | Some("linked") | Some("verified") | Some("active") => {
            LinkResult::Linked
        }
        Some("pending") => LinkResult::Pending,
        Some(other) => LinkResult::Failed(reason.unwrap_or(other).to_string()),
    }
}

/// Look the order up at the provider: by our merchant reference before the provider order
/// id is known, by that id after.
async fn find(
    p: &OnmetaClient,
    o: &OnrampOrder,
    trace: Option<&str>,
) -> Result<Option<FoundOrder>, ProviderError> {
    let email = o.request.user.email.expose();
    let ours = o.id.to_string();
    for page in 0..LOOKUP_PAGES {
        let orders = p.recent_orders(email, page * 10, trace).await?;
        let hit = orders.iter().find(|r| match &o.provider_order_id {
            Some(id) => &r.order_id == id,
            None => r.merchant_ref.as_deref() == Some(ours.as_str()),
        });
        if let Some(r) = hit {
            return Ok(Some(FoundOrder {
                order: ProviderOrder {
                    provider_order_id: r.order_id.clone(),
                    upi_deep_link: None,
                    qr_string: None,
                    bank: None,
                    expires_at: None,
                },
                status: r.status.clone(),
                utr: r.utr.clone(),
            }));
        }
        if orders.len() < 10 {
            break;
        }
    }
    Ok(None)
}
