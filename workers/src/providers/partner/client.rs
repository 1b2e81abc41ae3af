//! The Partner API's HTTP client: one attempt per call, every failure classified
//! ([`ProviderError`]), answers parsed by [`super::wire`]. A bearer token and the tenant id
//! (in a header whose name the documents do not give, so it is configured) go with every
//! request. The API has no idempotency key: the callers write an intent before each
//! creating call (deposit, confirmation, fiat transfer) and never repeat one blindly.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::wire::{self, Confirmation, Deposit, FiatTransfer, Transfer, WireError, parse_errors};
use crate::providers::budget::RequestBudget;
use crate::providers::error::{ProviderError, RawResponse, truncate};
use crate::providers::transport::{Call, Transport, path_segment};

/// The provider's name in spans and metrics.
pub const PROVIDER: &str = "partner";

/// Most significant digits an amount may have: the API takes amounts as JSON numbers,
/// which are doubles on the other side; beyond this an amount could arrive rounded.
const MAX_AMOUNT_DIGITS: usize = 15;

pub struct PartnerConfig {
    pub base_url: String,
    pub token: SecretString,
    pub tenant_id: String,
    /// The header that carries the tenant id (e.g. `x-tenant-id`).
    pub tenant_header: String,
    pub timeout: Duration,
}

/// How the wallet to mint into is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalletIdentifierType {
    CustomNamespace,
    WalletAddress,
}

impl WalletIdentifierType {
    pub fn as_str(self) -> &'static str {
        match self {
            WalletIdentifierType::CustomNamespace => "CUSTOM NAMESPACE",
            WalletIdentifierType::WalletAddress => "WALLET ADDRESS",
        }
    }
}

/// A mint's deposit request; its confirmation repeats it.
#[derive(Clone, Debug, PartialEq)]
pub struct DepositRequest {
    pub amount: Decimal,
    pub token: String,
    pub wallet_identifier: String,
    pub wallet_identifier_type: WalletIdentifierType,
}

/// The payout of a redeem, reported against the user's on-chain transfer.
#[derive(Clone, Debug, PartialEq)]
pub struct FiatTransferRequest {
    /// Our order's reference (the initiator's tracking id).
    pub reference_id: String,
    pub fiat_amount: Decimal,
    pub token_symbol: String,
    pub fiat_symbol: String,
}

#[derive(Clone)]
pub struct PartnerClient {
    transport: Transport,
}

impl fmt::Debug for PartnerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerClient")
            .field("base_url", &self.transport.base_url())
            .finish_non_exhaustive()
    }
}

fn config_error(what: &str) -> ProviderError {
    ProviderError::Rejected {
        code: None,
        message: format!("{PROVIDER} config: {what}"),
    }
}

impl PartnerClient {
    pub fn new(config: PartnerConfig) -> Result<Self, ProviderError> {
        let name = HeaderName::from_bytes(config.tenant_header.trim().as_bytes())
            .map_err(|_| config_error("tenant_header is not a header name"))?;
        let tenant = HeaderValue::from_str(config.tenant_id.trim())
            .map_err(|_| config_error("tenant_id is not a valid header value"))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", config.token.expose_secret()))
            .map_err(|_| config_error("token is not a valid header value"))?;
        let mut headers = HeaderMap::new();
        headers.insert(name, tenant);
        headers.insert(AUTHORIZATION, bearer);
        Ok(PartnerClient {
            transport: Transport::new(PROVIDER, &config.base_url, config.timeout, headers)?,
        })
    }

    /// The same client, spending `budget` for every history check.
    pub fn with_budget(self, budget: RequestBudget) -> Self {
        PartnerClient {
            transport: self.transport.with_budget(budget),
        }
    }

    pub fn budget(&self) -> &RequestBudget {
        self.transport.budget()
    }

    /// `POST /transaction/deposit-requests`. A 201 may be a rejection
    /// ([`Deposit::Rejected`]): final, not retried.
    pub async fn deposit_request(
        &self,
        r: &DepositRequest,
        trace_ctx: Option<&str>,
    ) -> Result<Deposit, ProviderError> {
        const ENDPOINT: &str = "transaction/deposit-requests";
        let body = json!({
            "amount": number(r.amount)?,
            "token": r.token,
            "walletIdentifier": r.wallet_identifier,
            "walletIdentifierType": r.wallet_identifier_type.as_str(),
        });
        let raw = self
            .call(
                ENDPOINT,
                Method::POST,
                "/transaction/deposit-requests",
                Some(&body),
                false,
                trace_ctx,
            )
            .await?;
        success(ENDPOINT, &raw)?;
        wire::parse_deposit(body_text(&raw)).map_err(|e| not_understood(ENDPOINT, e))
    }

    /// `POST /transaction/confirmation-requests` with `confirm: YES` (`confirm` true) or
    /// `NO` (the upstream cancelled before confirmation). The 400 "Successfully
    /// Invalidated Confirmation Request" is [`Confirmation::Invalidated`], not an error.
    pub async fn confirm(
        &self,
        deposit_request_id: &str,
        r: &DepositRequest,
        confirm: bool,
        trace_ctx: Option<&str>,
    ) -> Result<Confirmation, ProviderError> {
        const ENDPOINT: &str = "transaction/confirmation-requests";
        let body = json!({
            "depositRequestId": deposit_request_id,
            "amount": number(r.amount)?,
            "token": r.token,
            "walletIdentifier": r.wallet_identifier,
            "walletIdentifierType": r.wallet_identifier_type.as_str(),
            "confirm": if confirm { "YES" } else { "NO" },
        });
        let raw = self
            .call(
                ENDPOINT,
                Method::POST,
                "/transaction/confirmation-requests",
                Some(&body),
                false,
                trace_ctx,
            )
            .await?;
        match wire::parse_confirmation(raw.status, body_text(&raw)) {
            Some(parsed) => parsed.map_err(|e| not_understood(ENDPOINT, e)),
            None => Err(failure(ENDPOINT, &raw)),
        }
    }

    /// The on-chain history of `identifier` (a namespace or address), narrowed to `memo`
    /// when given. Spends a budget token: it is the check that repeats while orders wait.
    pub async fn history(
        &self,
        identifier: &str,
        memo: Option<&str>,
        trace_ctx: Option<&str>,
    ) -> Result<Vec<Transfer>, ProviderError> {
        const ENDPOINT: &str = "transactions/identifier/{identifier}/type/on-chain/history";
        let mut path = format!(
            "/transactions/identifier/{}/type/on-chain/history",
            path_segment(identifier)
        );
        if let Some(memo) = memo {
            path.push_str("?memo=");
            path.push_str(&path_segment(memo));
        }
        let raw = self
            .call(ENDPOINT, Method::GET, &path, None, true, trace_ctx)
            .await?;
        success(ENDPOINT, &raw)?;
        wire::parse_history(body_text(&raw)).map_err(|e| not_understood(ENDPOINT, e))
    }

    /// `PUT /transaction/redeem/fiat-transfer/{transactionHash}`: the tenant paid the fiat.
    /// Its 200 has no status; the `transactionId` is what to record.
    pub async fn report_fiat_transfer(
        &self,
        tx_hash: &str,
        r: &FiatTransferRequest,
        trace_ctx: Option<&str>,
    ) -> Result<FiatTransfer, ProviderError> {
        const ENDPOINT: &str = "transaction/redeem/fiat-transfer/{transactionHash}";
        let body = json!({
            "referenceId": r.reference_id,
            "fiatAmount": number(r.fiat_amount)?,
            "tokenSymbol": r.token_symbol,
            "fiatSymbol": r.fiat_symbol,
            "type": "BANK-BOOK",
        });
        let path = format!(
            "/transaction/redeem/fiat-transfer/{}",
            path_segment(tx_hash)
        );
        let raw = self
            .call(ENDPOINT, Method::PUT, &path, Some(&body), false, trace_ctx)
            .await?;
        success(ENDPOINT, &raw)?;
        wire::parse_fiat_transfer(body_text(&raw)).map_err(|e| not_understood(ENDPOINT, e))
    }

    /// One call; `polling` ones spend a budget token, the others only wait out a 429
    /// pause.
    async fn call(
        &self,
        endpoint: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        polling: bool,
        trace_ctx: Option<&str>,
    ) -> Result<RawResponse, ProviderError> {
        self.transport
            .send(Call {
                endpoint,
                method,
                path,
                body,
                bearer: None,
                polling,
                trace_ctx,
            })
            .await
    }
}

/// An amount as a JSON number, refused rather than rounded when a double cannot carry it.
fn number(d: Decimal) -> Result<Value, ProviderError> {
    let d = d.normalize();
    let digits = d.mantissa().unsigned_abs().to_string().len();
    if digits > MAX_AMOUNT_DIGITS {
        return Err(ProviderError::Rejected {
            code: None,
            message: format!("amount {d} has more digits than the Partner API can take"),
        });
    }
    serde_json::from_str(&d.to_string())
        .map_err(|_| ProviderError::unknown("amount", "not a JSON number"))
}

fn body_text(raw: &RawResponse) -> &str {
    std::str::from_utf8(&raw.body).unwrap_or_default()
}

fn not_understood(endpoint: &str, e: WireError) -> ProviderError {
    ProviderError::unknown(endpoint, e)
}

fn success(endpoint: &str, raw: &RawResponse) -> Result<(), ProviderError> {
    match raw.status {
        200..=299 => Ok(()),
        _ => Err(failure(endpoint, raw)),
    }
}

/// A non-2xx answer, classified: 429 rate limited; 401 (our token), 408, 425 and 5xx may
/// pass; other 4xx are the provider's refusal, with its messages.
fn failure(endpoint: &str, raw: &RawResponse) -> ProviderError {
    let status = raw.status;
    let messages: Vec<String> = parse_errors(body_text(raw))
        .into_iter()
        .map(|e| e.message)
        .collect();
    let said = (!messages.is_empty()).then(|| truncate(&messages.join("; ")));
    match status {
        429 => ProviderError::RateLimited {
            retry_after: raw.retry_after,
        },
        401 | 408 | 425 | 500..=599 => ProviderError::Retryable {
            reason: format!(
                "{endpoint}: HTTP {status}{}",
                said.map(|m| format!(" ({m})")).unwrap_or_default()
            ),
            retry_after: raw.retry_after,
        },
        400..=499 => ProviderError::Rejected {
            code: Some(i64::from(status)),
            message: said.unwrap_or_else(|| format!("{endpoint}: HTTP {status}")),
        },
        _ => ProviderError::unknown(endpoint, format_args!("unexpected HTTP {status}")),
    }
}

#[cfg(test)]
mod tests;
