//! Onmeta-style INR on-ramp connector (see `reference/providers.md` §1).
//!
//! One attempt per call: the caller's durable task schedule owns retries. The only retry
//! made here is the auth renewal: on a 401 the user's session is refreshed (or, if the
//! refresh token is refused too, the user logs in again) and the call is repeated once.
//!
//! Creating calls (`create_onramp_order`, `submit_utr`, `link_*`) are not idempotent at the
//! provider. After an error whose outcome is unclear (`Retryable`, `Unknown`), look the state
//! up (`recent_orders` by merchant reference, `fetch_upis`, `fetch_banks`) before calling again.

pub mod callback;
pub mod lookup;
mod parse;
#[cfg(test)]
mod sandbox_tests;
pub mod steps;

pub use parse::classify_link_status;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::budget::RequestBudget;
use super::error::{ProviderError, RawResponse};
use super::transport::{Call, Transport, path_segment};

/// The provider's name in spans, metrics and the `orders.provider` column.
pub const PROVIDER: &str = "onmeta";

/// The endpoints that spend the request budget: the checks that grow with the number of
/// live orders (status polls, order-list lookups, link-status polls). The calls a user's
/// own action causes (KYC check, linking, quote, create, the payment reference) spend no
/// token, so a crowd of parked orders never makes a paying user wait; they do wait out
/// the pause after a 429, like every request.
const POLLING: [&str; 5] = [
    "orders/status",
    "offramp/orders/status",
    "orders/list",
    "users/get-bank-status",
    "users/get-upi-status",
];

/// Lifetime Onmeta gives an access token.
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Renew this long before the access token runs out.
const RENEW_EARLY: Duration = Duration::from_secs(60);
/// Above this many cached sessions, idle ones are dropped when a new user appears (and
/// then only once the cache has doubled since the last sweep: see [`Sessions`]).
const SESSION_CACHE_SOFT_LIMIT: usize = 4096;

#[derive(Clone, Debug)]
pub struct OnmetaConfig {
    pub base_url: String,
    pub api_key: SecretString,
    pub timeout: Duration,
}

// ---------------------------------------------------------------------------------------------
// Request and response types (plain types; the domain layer maps them).
// ---------------------------------------------------------------------------------------------

/// A UPI ID linked to the user at the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkedUpi {
    pub upi_id: String,
    pub name: Option<String>,
    pub status: Option<String>,
    pub reference_id: Option<String>,
    pub reason: Option<String>,
}

/// A bank account linked to the user; the provider only returns the masked number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedBank {
    /// As the provider masks it, e.g. `"XXXX7315"`.
    pub masked_account_number: String,
    pub account_name: Option<String>,
    pub ifsc: Option<String>,
    pub reference_number: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct LinkUpiRequest {
    pub name: String,
    pub phone_country_code: String,
    pub phone_number: String,
    pub upi_id: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct LinkBankRequest {
    pub name: String,
    pub pan: String,
    pub phone_country_code: String,
    pub phone_number: String,
    pub account_number: String,
    pub account_name: String,
    pub ifsc: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkOutcome {
    pub reference: Option<String>,
    pub status: LinkStatus,
}

/// Where a bank or UPI link stands. Produced only by [`classify_link_status`], so the
/// mapping from the provider's words lives in one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    Linked,
    Pending,
    /// With the provider's reason (or its raw status when it gave none).
    Failed(String),
    /// The third-party check found that the account holder's name does not match the KYC
    /// name ([INFER] recognised from the reason text; see [`classify_link_status`]). The
    /// user must link an account in their own name; retrying the same one will not help.
    NameMismatch,
}

/// The user's KYC state with the onboarding items still outstanding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KycStatus {
    pub verified: bool,
    /// Outstanding fulfilment types (e.g. `"ADDRESS_MAIN"`), deduplicated, in the order the
    /// provider listed them. Empty when the provider sent no fulfilment list.
    pub missing: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteRequest {
    pub token_symbol: String,
    pub chain_id: u64,
    pub fiat_amount: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub received_tokens: Decimal,
    pub conversion_rate: Decimal,
    /// Token amount in base units, as the provider sent it.
    pub quote_base_units: String,
    pub estimate_id: Option<String>,
    pub transaction_fee: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOnrampRequest {
    /// rampd's own reference, sent as `metaData.merchantRef`; used to find the order after a
    /// crash (see [`OnmetaClient::recent_orders`]).
    pub merchant_ref: String,
    pub token_symbol: String,
    pub token_address: Option<String>,
    pub chain_id: u64,
    pub fiat_amount: Decimal,
    pub receiver_address: String,
    pub payment: OnrampPayment,
}

#[derive(Clone, PartialEq, Eq)]
pub enum OnrampPayment {
    /// `paymentMode: "INR_UPI"`; the UPI ID must be linked first.
    Upi { upi_id: String, name: String },
    /// `paymentMode: "INR_IMPS"`; the bank account must be linked first.
    Imps {
        account_name: String,
        account_number: String,
        ifsc: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedOnrampOrder {
    pub order_id: String,
    /// Raw provider status; `"fiatPending"` when the provider sent none.
    pub status: String,
    pub upi_deep_link: Option<String>,
    pub qr_string: Option<String>,
    /// Where the user sends an IMPS transfer (the provider's collection account).
    pub bank_details: Option<CollectBankDetails>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The provider's collection account for IMPS pay-ins (not user data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectBankDetails {
    pub account_name: String,
    pub account_number: String,
    pub ifsc: String,
    pub bank_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UtrOutcome {
    Accepted,
    /// The provider says the order already succeeded ("Order already success, can't update
    /// UTR"): not an error, re-poll the status.
    AlreadySuccess,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnrampStatus {
    /// Raw provider status, exact case (mapping is the domain's job).
    pub status: String,
    pub reason: Option<String>,
    pub tx_hash: Option<String>,
    pub transferred_amount: Option<Decimal>,
}

/// Which way an order moves money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderKind {
    /// Fiat in, crypto out.
    Onramp,
    /// Crypto in, fiat out.
    Offramp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentOrder {
    pub order_id: String,
    pub merchant_ref: Option<String>,
    pub status: String,
    /// The UTR the provider holds for this order (`paymentDetails.reference` when
    /// `source == "UTR"`).
    pub utr: Option<String>,
    /// [INFER] The provider documents `GET /v1/orders/{skip}` for on-ramp orders only; we
    /// assume it lists off-ramp orders too, told apart by `eventType`/`orderType` (or, when
    /// neither is sent, by off-ramp-only fields such as `sellTokenSymbol`). Orders without
    /// any of these count as on-ramp.
    pub kind: OrderKind,
    /// The on-chain hash the provider holds for this order (`txnHash`/`transactionHash`):
    /// for an off-ramp order, the user's deposit transaction we submitted.
    pub tx_hash: Option<String>,
    /// When the provider created it (`createdAt`/`created_at`), if the row says.
    pub created_at: Option<DateTime<Utc>>,
}

/// One page of `GET /v1/orders/{skip}`, in the provider's order (newest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderPage {
    pub rows: Vec<ListedOrder>,
}

/// A row of the order list. A row we cannot read is kept as such, never dropped: it might
/// be the order a lookup is looking for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListedOrder {
    Readable(RecentOrder),
    Unreadable,
}

impl OrderPage {
    /// The readable rows, owned.
    pub fn into_orders(self) -> Vec<RecentOrder> {
        self.rows
            .into_iter()
            .filter_map(|r| match r {
                ListedOrder::Readable(o) => Some(o),
                ListedOrder::Unreadable => None,
            })
            .collect()
    }

    /// The readable rows.
    pub fn orders(&self) -> impl Iterator<Item = &RecentOrder> {
        self.rows.iter().filter_map(|r| match r {
            ListedOrder::Readable(o) => Some(o),
            ListedOrder::Unreadable => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SellQuoteRequest {
    pub token_symbol: String,
    pub token_address: Option<String>,
    pub chain_id: u64,
    pub sell_token_amount: Decimal,
    /// The wallet the tokens will come from (`senderAddress`).
    pub sender_address: String,
}

/// Token → INR quote. Valid for 30 s at the provider; the order's amount is recomputed at
/// create time (see [`CreatedOfframpOrder::fiat_amount`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SellQuote {
    /// INR the user receives, fees already deducted.
    pub fiat_amount: Decimal,
    /// INR per token.
    pub conversion_rate: Decimal,
    pub transaction_fee: Option<Decimal>,
    pub gas_fee: Option<Decimal>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct CreateOfframpRequest {
    /// rampd's own reference, sent as `metaData.merchantRef`; used to find the order after a
    /// crash (see [`OnmetaClient::recent_orders`]).
    pub merchant_ref: String,
    /// The payout account; it must be linked (and verified) first.
    pub account_number: String,
    pub ifsc: String,
    pub chain_id: u64,
    pub sell_token_amount: Decimal,
    pub token_symbol: String,
    pub token_address: Option<String>,
    /// The user's wallet the tokens come from.
    pub sender_wallet: String,
    /// Where the provider returns the tokens if it refunds the order.
    pub refund_wallet: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedOfframpOrder {
    pub order_id: String,
    /// The provider's deposit address (`receiverWalletAddress`): where the user sends the
    /// tokens. Always present: a reply without it is `ProviderError::Unknown`.
    pub deposit_address: String,
    /// INR the provider will pay out, recomputed at create time.
    pub fiat_amount: Option<Decimal>,
    /// Raw provider status; `"cryptoInit"` when the provider sent none.
    pub status: String,
    /// The provider documents no off-ramp expiry; kept for when a reply carries one.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxHashOutcome {
    Accepted,
    /// The provider already holds this hash for the order, or already received the crypto:
    /// not an error, re-poll the status.
    AlreadyReceived,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfframpStatus {
    /// Raw provider status, exact case (mapping is the domain's job).
    pub status: String,
    pub reason: Option<String>,
    /// The user's deposit transaction (`txnHash`).
    pub tx_hash: Option<String>,
    /// `receiverWalletAddress`.
    pub deposit_address: Option<String>,
    /// The bank payout reference (`transactionId`), sent from `PayoutSuccess` on.
    pub payout_reference: Option<String>,
    /// `refundWalletAddress`; [INFER] where a `refunded` order's tokens went.
    pub refund_address: Option<String>,
}

// Debug impls that never print PII (UPI IDs, phone numbers, PAN, account numbers).

/// Shows only the last four characters: `"****7315"`.
pub(crate) fn mask_tail(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("****{tail}")
}

/// Shows only the PSP handle of a UPI ID: `"***@okhdfc"`.
pub(crate) fn mask_upi(s: &str) -> String {
    match s.rfind('@') {
        Some(at) => format!("***{}", &s[at..]),
        None => "***".to_owned(),
    }
}

impl fmt::Debug for LinkedUpi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedUpi")
            .field("upi_id", &mask_upi(&self.upi_id))
            .field("status", &self.status)
            .field("reference_id", &self.reference_id)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LinkUpiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkUpiRequest")
            .field("upi_id", &mask_upi(&self.upi_id))
            .field("phone_number", &mask_tail(&self.phone_number))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LinkBankRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkBankRequest")
            .field("account_number", &mask_tail(&self.account_number))
            .field("ifsc", &self.ifsc)
            .field("pan", &"****")
            .field("phone_number", &mask_tail(&self.phone_number))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CreateOfframpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateOfframpRequest")
            .field("merchant_ref", &self.merchant_ref)
            .field("account_number", &mask_tail(&self.account_number))
            .field("ifsc", &self.ifsc)
            .field("chain_id", &self.chain_id)
            .field("sell_token_amount", &self.sell_token_amount)
            .field("token_symbol", &self.token_symbol)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OnrampPayment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnrampPayment::Upi { upi_id, .. } => f
                .debug_struct("Upi")
                .field("upi_id", &mask_upi(upi_id))
                .finish_non_exhaustive(),
            OnrampPayment::Imps {
                account_number,
                ifsc,
                ..
            } => f
                .debug_struct("Imps")
                .field("account_number", &mask_tail(account_number))
                .field("ifsc", ifsc)
                .finish_non_exhaustive(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Onmeta API client. Cheap to clone: one pooled HTTP client and one session cache inside.
#[derive(Clone)]
pub struct OnmetaClient {
    inner: Arc<Inner>,
    /// HTTP, the request budget, spans and metrics (`x-api-key` on every request).
    transport: Transport,
}

struct Inner {
    /// Per-user sessions keyed by e-mail. Each slot has its own async lock so that one user's
    /// concurrent calls share a single login/refresh.
    sessions: Mutex<Sessions>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Session>>>;

/// The per-user session slots, swept of idle, stale sessions when a new user appears and
/// the cache has reached `sweep_at`. After a sweep, `sweep_at` is twice what is left (at
/// least the soft limit), so that sweeps stay amortised O(1) per new user even when every
/// cached session is fresh (100,000 users within the hour would otherwise make each new
/// user scan them all).
#[derive(Default)]
struct Sessions {
    slots: HashMap<String, Slot>,
    sweep_at: usize,
}

impl Sessions {
    fn slot(&mut self, email: &str) -> Slot {
        if let Some(slot) = self.slots.get(email) {
            return slot.clone();
        }
        if self.slots.len() >= self.sweep_at.max(SESSION_CACHE_SOFT_LIMIT) {
            // Drop sessions nobody is using and that would need renewing anyway.
            self.slots.retain(|_, slot| match slot.try_lock() {
                Ok(session) => session.as_ref().is_some_and(Session::fresh),
                Err(_) => true,
            });
            self.sweep_at = 2 * self.slots.len();
        }
        self.slots.entry(email.to_owned()).or_default().clone()
    }
}

struct Session {
    access: SecretString,
    refresh: Option<SecretString>,
    renew_at: Instant,
}

impl Session {
    fn new(access: SecretString, refresh: Option<SecretString>) -> Self {
        Session {
            access,
            refresh,
            renew_at: Instant::now() + ACCESS_TOKEN_TTL - RENEW_EARLY,
        }
    }

    fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

impl fmt::Debug for OnmetaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnmetaClient")
            .field("base_url", &self.transport.base_url())
            .finish_non_exhaustive()
    }
}

/// Why a refresh did not produce a session.
enum RefreshFailure {
    /// The provider refused the refresh token: log in again.
    Refused,
    Other(ProviderError),
}

impl OnmetaClient {
    /// Builds the pooled HTTP client (timeout from config, redirects never followed).
    /// The process must have installed the rustls crypto provider first
    /// (`rustls::crypto::ring::default_provider().install_default()`).
    pub fn new(config: OnmetaConfig) -> Result<Self, ProviderError> {
        let api_key = HeaderValue::from_str(config.api_key.expose_secret()).map_err(|_| {
            ProviderError::Rejected {
                code: None,
                message: "onmeta config: api_key is not a valid header value".to_owned(),
            }
        })?;
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", api_key);
        Ok(OnmetaClient {
            inner: Arc::new(Inner {
                sessions: Mutex::new(Sessions::default()),
            }),
            transport: Transport::new(PROVIDER, &config.base_url, config.timeout, headers)?,
        })
    }

    /// The same client, spending `budget` for every request.
    pub fn with_budget(self, budget: RequestBudget) -> Self {
        OnmetaClient {
            transport: self.transport.with_budget(budget),
            ..self
        }
    }

    /// The budget this client spends.
    pub fn budget(&self) -> &RequestBudget {
        self.transport.budget()
    }

    // --- user-scoped API ---------------------------------------------------------------------

    /// `POST /v1/users/kyc-status`: whether the user's KYC is verified.
    pub async fn kyc_status(
        &self,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<bool, ProviderError> {
        Ok(self.kyc_details(email, trace_ctx).await?.verified)
    }

    /// `POST /v1/users/kyc-status` (the same call as [`Self::kyc_status`]), with the
    /// onboarding items still outstanding when the reply lists them (see
    /// [`KycStatus::missing`]).
    pub async fn kyc_details(
        &self,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<KycStatus, ProviderError> {
        let body = serde_json::json!({ "email": email });
        let raw = self
            .post(
                "users/kyc-status",
                "/v1/users/kyc-status",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::kyc_details(&raw)
    }

    /// `GET /v1/users/upi/fetch`: the user's linked UPI IDs.
    pub async fn fetch_upis(
        &self,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<Vec<LinkedUpi>, ProviderError> {
        let raw = self
            .get("users/upi/fetch", "/v1/users/upi/fetch", email, trace_ctx)
            .await?;
        parse::upis(&raw)
    }

    /// `POST /v1/users/upi-link`.
    pub async fn link_upi(
        &self,
        email: &str,
        request: &LinkUpiRequest,
        trace_ctx: Option<&str>,
    ) -> Result<LinkOutcome, ProviderError> {
        let body = parse::link_upi_body(email, request);
        let raw = self
            .post(
                "users/upi-link",
                "/v1/users/upi-link",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::link("users/upi-link", &raw)
    }

    /// `GET /v1/users/bank/fetch`: the user's linked bank accounts (masked numbers).
    pub async fn fetch_banks(
        &self,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<Vec<LinkedBank>, ProviderError> {
        let raw = self
            .get("users/bank/fetch", "/v1/users/bank/fetch", email, trace_ctx)
            .await?;
        parse::banks(&raw)
    }

    /// `POST /v1/users/account-link`. HTTP 406 "account already verified" counts as linked.
    pub async fn link_bank(
        &self,
        email: &str,
        request: &LinkBankRequest,
        trace_ctx: Option<&str>,
    ) -> Result<LinkOutcome, ProviderError> {
        let body = parse::link_bank_body(email, request);
        let raw = self
            .post(
                "users/account-link",
                "/v1/users/account-link",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::link("users/account-link", &raw)
    }

    /// `GET /v1/users/get-bank-status/{referenceNumber}` (field `bankStatus`): poll a
    /// pending bank link.
    pub async fn bank_link_status(
        &self,
        email: &str,
        reference: &str,
        trace_ctx: Option<&str>,
    ) -> Result<LinkOutcome, ProviderError> {
        let path = format!("/v1/users/get-bank-status/{}", path_segment(reference));
        self.link_status_call("users/get-bank-status", &path, email, reference, trace_ctx)
            .await
    }

    /// `GET /v1/users/get-upi-status/{referenceNumber}` (field `upiStatus`): poll a pending
    /// UPI link.
    pub async fn upi_link_status(
        &self,
        email: &str,
        reference: &str,
        trace_ctx: Option<&str>,
    ) -> Result<LinkOutcome, ProviderError> {
        let path = format!("/v1/users/get-upi-status/{}", path_segment(reference));
        self.link_status_call("users/get-upi-status", &path, email, reference, trace_ctx)
            .await
    }

    async fn link_status_call(
        &self,
        endpoint: &'static str,
        path: &str,
        email: &str,
        reference: &str,
        trace_ctx: Option<&str>,
    ) -> Result<LinkOutcome, ProviderError> {
        let raw = self.get(endpoint, path, email, trace_ctx).await?;
        let mut outcome = parse::link(endpoint, &raw)?;
        outcome
            .reference
            .get_or_insert_with(|| reference.to_owned());
        Ok(outcome)
    }

    /// `POST /v1/quote/fetch` (INR → token).
    pub async fn buy_quote(
        &self,
        email: &str,
        request: &QuoteRequest,
        trace_ctx: Option<&str>,
    ) -> Result<Quote, ProviderError> {
        let body = parse::quote_body(request);
        let raw = self
            .post("quote/fetch", "/v1/quote/fetch", &body, email, trace_ctx)
            .await?;
        parse::quote(&raw)
    }

    /// `POST /v1/orders/create`. Not idempotent at the provider: after a `Retryable` or
    /// `Unknown` error, find the order with [`Self::recent_orders`] (by merchant reference)
    /// before creating again.
    pub async fn create_onramp_order(
        &self,
        email: &str,
        request: &CreateOnrampRequest,
        trace_ctx: Option<&str>,
    ) -> Result<CreatedOnrampOrder, ProviderError> {
        let body = parse::create_order_body(request);
        let raw = self
            .post(
                "orders/create",
                "/v1/orders/create",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::created_order(&raw)
    }

    /// `POST /v1/orders/utr`. Submitting the same UTR to the same order again is harmless.
    pub async fn submit_utr(
        &self,
        email: &str,
        order_id: &str,
        utr: &str,
        trace_ctx: Option<&str>,
    ) -> Result<UtrOutcome, ProviderError> {
        let body = serde_json::json!({ "orderId": order_id, "utr": utr });
        let raw = self
            .post("orders/utr", "/v1/orders/utr", &body, email, trace_ctx)
            .await?;
        parse::utr(&raw)
    }

    /// `POST /v1/orders/status`.
    pub async fn onramp_status(
        &self,
        email: &str,
        order_id: &str,
        trace_ctx: Option<&str>,
    ) -> Result<OnrampStatus, ProviderError> {
        let body = serde_json::json!({ "orderId": order_id });
        let raw = self
            .post(
                "orders/status",
                "/v1/orders/status",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::status(&raw)
    }

    /// `GET /v1/orders/{skip}`: the user's orders, newest first, 10 per page; `skip` is the
    /// number of orders to skip. Used after a crash to find an order (see [`lookup`]).
    pub async fn recent_orders(
        &self,
        email: &str,
        skip: u32,
        trace_ctx: Option<&str>,
    ) -> Result<OrderPage, ProviderError> {
        let path = format!("/v1/orders/{skip}");
        let raw = self.get("orders/list", &path, email, trace_ctx).await?;
        parse::recent_orders(&raw)
    }

    /// `POST /v1/quote/sell` (token → INR).
    pub async fn sell_quote(
        &self,
        email: &str,
        request: &SellQuoteRequest,
        trace_ctx: Option<&str>,
    ) -> Result<SellQuote, ProviderError> {
        let body = parse::sell_quote_body(request);
        let raw = self
            .post("quote/sell", "/v1/quote/sell", &body, email, trace_ctx)
            .await?;
        parse::sell_quote(&raw)
    }

    /// `POST /v1/offramp/orders/create`. Needs verified KYC and the payout bank account
    /// linked. Not idempotent at the provider: after a `Retryable` or `Unknown` error, find
    /// the order with [`Self::recent_orders`] (by merchant reference, kind `Offramp`) before
    /// creating again.
    pub async fn create_offramp_order(
        &self,
        email: &str,
        request: &CreateOfframpRequest,
        trace_ctx: Option<&str>,
    ) -> Result<CreatedOfframpOrder, ProviderError> {
        let body = parse::create_offramp_body(request);
        let raw = self
            .post(
                "offramp/orders/create",
                "/v1/offramp/orders/create",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::created_offramp(&raw)
    }

    /// `POST /v1/offramp/orders/txnhash`: tell the provider which transaction paid the
    /// deposit address. Submitting the same hash again is harmless
    /// ([`TxHashOutcome::AlreadyReceived`]); a different hash after one was accepted is
    /// `Rejected`. After an unclear error, `recent_orders` shows the hash the provider holds.
    pub async fn submit_tx_hash(
        &self,
        email: &str,
        order_id: &str,
        tx_hash: &str,
        trace_ctx: Option<&str>,
    ) -> Result<TxHashOutcome, ProviderError> {
        let body = serde_json::json!({ "orderId": order_id, "txnHash": tx_hash });
        let raw = self
            .post(
                "offramp/orders/txnhash",
                "/v1/offramp/orders/txnhash",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::tx_hash(&raw)
    }

    /// `POST /v1/offramp/orders/status`.
    pub async fn offramp_status(
        &self,
        email: &str,
        order_id: &str,
        trace_ctx: Option<&str>,
    ) -> Result<OfframpStatus, ProviderError> {
        let body = serde_json::json!({ "orderId": order_id });
        let raw = self
            .post(
                "offramp/orders/status",
                "/v1/offramp/orders/status",
                &body,
                email,
                trace_ctx,
            )
            .await?;
        parse::offramp_status(&raw)
    }

    /// A user-scoped `POST` with a JSON body.
    async fn post(
        &self,
        endpoint: &'static str,
        path: &str,
        body: &Value,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<RawResponse, ProviderError> {
        self.user_call(endpoint, Method::POST, path, Some(body), email, trace_ctx)
            .await
    }

    /// A user-scoped `GET`.
    async fn get(
        &self,
        endpoint: &'static str,
        path: &str,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<RawResponse, ProviderError> {
        self.user_call(endpoint, Method::GET, path, None, email, trace_ctx)
            .await
    }

    // --- sessions ----------------------------------------------------------------------------

    /// Makes a user-scoped call; on 401 renews the session and repeats the call once.
    async fn user_call(
        &self,
        endpoint: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<RawResponse, ProviderError> {
        let token = self.access_token(email, trace_ctx).await?;
        let raw = self
            .send(
                endpoint,
                method.clone(),
                path,
                body,
                Some(&token),
                trace_ctx,
            )
            .await?;
        if raw.status != 401 {
            return Ok(raw);
        }
        tracing::debug!(
            endpoint,
            "onmeta access token refused; renewing the session"
        );
        let token = self.renew_after_401(email, &token, trace_ctx).await?;
        self.send(endpoint, method, path, body, Some(&token), trace_ctx)
            .await
    }

    fn slot(&self, email: &str) -> Slot {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .slot(email)
    }

    /// A usable access token for the user: cached, refreshed, or from a fresh login.
    async fn access_token(
        &self,
        email: &str,
        trace_ctx: Option<&str>,
    ) -> Result<SecretString, ProviderError> {
        let slot = self.slot(email);
        let mut session = slot.lock().await;
        if let Some(current) = session.as_ref()
            && current.fresh()
        {
            return Ok(current.access.clone());
        }
        let renewed = self.renew(email, session.as_ref(), trace_ctx).await?;
        let token = renewed.access.clone();
        *session = Some(renewed);
        Ok(token)
    }

    /// After the provider refused `stale`: renew unless another call already did.
    async fn renew_after_401(
        &self,
        email: &str,
        stale: &SecretString,
        trace_ctx: Option<&str>,
    ) -> Result<SecretString, ProviderError> {
        let slot = self.slot(email);
        let mut session = slot.lock().await;
        if let Some(current) = session.as_ref()
            && current.access.expose_secret() != stale.expose_secret()
            && current.fresh()
        {
            return Ok(current.access.clone());
        }
        match self.renew(email, session.as_ref(), trace_ctx).await {
            Ok(renewed) => {
                let token = renewed.access.clone();
                *session = Some(renewed);
                Ok(token)
            }
            Err(err) => {
                *session = None;
                Err(err)
            }
        }
    }

    /// Refresh with the refresh token when we have one; log in when it is refused or missing.
    async fn renew(
        &self,
        email: &str,
        current: Option<&Session>,
        trace_ctx: Option<&str>,
    ) -> Result<Session, ProviderError> {
        if let Some(refresh) = current.and_then(|s| s.refresh.as_ref()) {
            match self.refresh(refresh, trace_ctx).await {
                Ok(session) => return Ok(session),
                Err(RefreshFailure::Other(err)) => return Err(err),
                Err(RefreshFailure::Refused) => {
                    tracing::debug!("onmeta refresh token refused; logging in again");
                }
            }
        }
        self.login(email, trace_ctx).await
    }

    async fn refresh(
        &self,
        refresh: &SecretString,
        trace_ctx: Option<&str>,
    ) -> Result<Session, RefreshFailure> {
        let raw = self
            .send(
                "users/refresh-token",
                Method::GET,
                "/v1/users/refresh-token",
                None,
                Some(refresh),
                trace_ctx,
            )
            .await
            .map_err(RefreshFailure::Other)?;
        // 401 is the documented answer for a dead refresh token; any other 4xx (but 429)
        // also means this token will not work, so log in instead.
        if (400..=499).contains(&raw.status) && !matches!(raw.status, 408 | 429) {
            return Err(RefreshFailure::Refused);
        }
        let (access, new_refresh) =
            parse::tokens("users/refresh-token", &raw).map_err(RefreshFailure::Other)?;
        Ok(Session::new(
            access,
            new_refresh.or_else(|| Some(refresh.clone())),
        ))
    }

    async fn login(&self, email: &str, trace_ctx: Option<&str>) -> Result<Session, ProviderError> {
        let body = serde_json::json!({ "email": email });
        let raw = self
            .send(
                "users/login",
                Method::POST,
                "/v1/users/login",
                Some(&body),
                None,
                trace_ctx,
            )
            .await?;
        let (access, refresh) = parse::tokens("users/login", &raw)?;
        Ok(Session::new(access, refresh))
    }

    // --- transport ---------------------------------------------------------------------------

    /// One HTTP exchange (`providers::transport`); the status checks spend the budget.
    async fn send(
        &self,
        endpoint: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&SecretString>,
        trace_ctx: Option<&str>,
    ) -> Result<RawResponse, ProviderError> {
        self.transport
            .send(Call {
                endpoint,
                method,
                path,
                body,
                bearer,
                polling: POLLING.contains(&endpoint),
                trace_ctx,
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cache_sweeps_stale_sessions_but_not_on_every_new_user() {
        let mut cache = Sessions::default();
        let fresh = || Session::new(SecretString::from("t"), None);
        let mut sweeps = 0;
        for i in 0..(4 * SESSION_CACHE_SOFT_LIMIT) {
            let before = cache.sweep_at;
            *cache.slot(&format!("u{i}@x")).try_lock().unwrap() = Some(fresh());
            sweeps += usize::from(cache.sweep_at != before);
        }
        // Every session is fresh: nothing can go, and the sweeps double their threshold
        // (4096, 8192) instead of scanning on each of the 16,384 new users.
        assert_eq!(cache.slots.len(), 4 * SESSION_CACHE_SOFT_LIMIT);
        assert!(sweeps <= 3, "{sweeps} sweeps");
        // Users who never got a session (or whose session went stale) are dropped.
        let mut cache = Sessions::default();
        for i in 0..=SESSION_CACHE_SOFT_LIMIT {
            cache.slot(&format!("idle{i}@x"));
        }
        assert_eq!(cache.slots.len(), 1);
    }

    #[test]
    fn debug_output_masks_pii() {
        let req = LinkBankRequest {
            name: "Asha Rao".into(),
            pan: "ABCDE1234F".into(),
            phone_country_code: "+91".into(),
            phone_number: "9876543210".into(),
            account_number: "123456787315".into(),
            account_name: "Asha Rao".into(),
            ifsc: "HDFC0000123".into(),
        };
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("ABCDE1234F"));
        assert!(!dbg.contains("9876543210"));
        assert!(!dbg.contains("123456787315"));
        assert!(dbg.contains("****7315"));

        let upi = OnrampPayment::Upi {
            upi_id: "9876543210@okhdfc".into(),
            name: "Asha".into(),
        };
        let dbg = format!("{upi:?}");
        assert!(!dbg.contains("9876543210"));
        assert!(dbg.contains("@okhdfc"));
    }

    #[test]
    fn offramp_request_debug_masks_the_account() {
        let req = CreateOfframpRequest {
            merchant_ref: "rampd-9".into(),
            account_number: "123456787315".into(),
            ifsc: "HDFC0000123".into(),
            chain_id: 137,
            sell_token_amount: Decimal::from(10),
            token_symbol: "USDT".into(),
            token_address: None,
            sender_wallet: "0xabc".into(),
            refund_wallet: "0xdef".into(),
        };
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("123456787315"));
        assert!(dbg.contains("****7315") && dbg.contains("rampd-9"));
    }

    #[test]
    fn references_cannot_escape_the_path() {
        assert_eq!(path_segment("ab-12_3.x~"), "ab-12_3.x~");
        assert_eq!(path_segment("../x y"), "..%2Fx%20y");
    }

    #[test]
    fn client_debug_hides_the_api_key() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = OnmetaClient::new(OnmetaConfig {
            base_url: "http://127.0.0.1:1/".into(),
            api_key: SecretString::from("super-secret-key"),
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("super-secret-key"));
        assert!(dbg.contains("http://127.0.0.1:1"));
    }

    #[test]
    fn bad_config_is_rejected() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let err = OnmetaClient::new(OnmetaConfig {
            base_url: "not a url".into(),
            api_key: SecretString::from("k"),
            timeout: Duration::from_secs(1),
        })
        .unwrap_err();
        assert!(!err.is_retryable());
    }
}
