//! The sandbox provider's in-memory world: users, sessions, links, orders and counters.
//!
//! Everything here is synchronous and takes provider time as an argument, so the rules are
//! unit-tested without a server. The HTTP layer (`routes.rs`) holds the `World` behind a
//! mutex and never awaits while holding it.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use rust_decimal::{Decimal, RoundingStrategy};
use tokio::sync::mpsc;

use super::callbacks::Callbacks;
use super::clock::delta;
use super::{OfframpProgression, Progression, SandboxConfig, SandboxStats, Scenario};

mod callbacks;

pub(crate) use self::callbacks::{Change, Customer, Snapshot};
mod offramp;

pub(crate) use offramp::{NewOfframp, OfframpOrder, REFUND_REASON, TxHashAnswer};

/// Provider-time lifetime of a refresh token.
pub(crate) const REFRESH_TOKEN_TTL: TimeDelta = TimeDelta::hours(24);

pub(crate) const STATUS_FIAT_PENDING: &str = "fiatPending";
pub(crate) const STATUS_EXPIRED: &str = "expired";
pub(crate) const STATUS_COMPLETED: &str = "completed";

/// An error answer: HTTP status plus the envelope's `error.code` and `error.message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub http: u16,
    pub code: i64,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(http: u16, message: impl Into<String>) -> Self {
        ApiError {
            http,
            code: i64::from(http),
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "unauthorized to access")
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    Access,
    Refresh,
}

#[derive(Clone, Debug)]
struct Token {
    email: String,
    kind: TokenKind,
    expires_at: DateTime<Utc>,
}

/// Reason given for a link whose name check failed (see `Scenario::link_name_mismatch_next`).
pub(crate) const NAME_MISMATCH_REASON: &str =
    "Name as per bank records does not match the name on KYC";

/// Where a bank or UPI link stands at the sandbox provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    Verified,
    /// Answers `pending` to this many more status polls, then becomes verified.
    Pending {
        polls_left: u32,
    },
    Failed {
        reason: String,
    },
}

impl LinkState {
    /// `(status, reason)` as the provider spells them.
    pub(crate) fn wire(&self) -> (&'static str, &str) {
        match self {
            LinkState::Verified => ("SUCCESS", ""),
            LinkState::Pending { .. } => ("PENDING", ""),
            LinkState::Failed { reason } => ("FAILED", reason),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpiLink {
    pub upi_id: String,
    pub name: String,
    pub reference: String,
    pub state: LinkState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BankLink {
    pub account_number: String,
    pub account_name: String,
    pub ifsc: String,
    pub reference: String,
    pub transaction_id: String,
    pub state: LinkState,
}

/// Which link-status endpoint is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkKind {
    Upi,
    Bank,
}

/// A link-status answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkView {
    pub reference: String,
    pub transaction_id: Option<String>,
    pub state: LinkState,
}

/// One bunq-style onboarding item (provider-doc 003) in a pending KYC answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fulfillment {
    pub kind: &'static str,
    pub status: Option<&'static str>,
    pub allowed: &'static [&'static str],
}

/// What a still-pending KYC check lists, modelled on provider-doc 003: `ADDRESS_MAIN`
/// appears twice (as there), `IDENTIFICATION_VERIFICATION` is `IN_PROGRESS`, which its
/// allowed list accepts, and `EMAIL` is done.
pub(crate) const PENDING_FULFILLMENTS: &[Fulfillment] = &[
    Fulfillment {
        kind: "ADDRESS_MAIN",
        status: None,
        allowed: &["FULFILLED"],
    },
    Fulfillment {
        kind: "DATE_OF_BIRTH",
        status: None,
        allowed: &["FULFILLED"],
    },
    Fulfillment {
        kind: "EMAIL",
        status: Some("FULFILLED"),
        allowed: &["FULFILLED", "IN_PROGRESS"],
    },
    Fulfillment {
        kind: "ADDRESS_MAIN",
        status: None,
        allowed: &["FULFILLED"],
    },
    Fulfillment {
        kind: "IDENTIFICATION_VERIFICATION",
        status: Some("IN_PROGRESS"),
        allowed: &["FULFILLED", "IN_PROGRESS"],
    },
];

/// A KYC answer: verified, or not with the fulfilments still listed (empty when KYC was
/// revoked for everyone with `kyc_verified = false`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KycCheck {
    pub verified: bool,
    pub fulfillments: &'static [Fulfillment],
}

#[derive(Clone, Debug, Default)]
struct User {
    upis: Vec<UpiLink>,
    banks: Vec<BankLink>,
    /// Order ids (on- and off-ramp), oldest first.
    orders: Vec<String>,
    /// KYC checks that still answer "not verified" (see `Scenario::kyc_pending_checks`).
    kyc_checks_left: u32,
    /// Name and `(country code, number)` from the user's latest link request, for the
    /// callbacks' `customer` block.
    name: Option<String>,
    phone: Option<(String, String)>,
    /// First login.
    created_at: Option<DateTime<Utc>>,
}

/// One row of the order list: either kind.
#[derive(Clone, Debug)]
pub(crate) enum Listed {
    On(Order),
    Off(OfframpOrder),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Payment {
    Upi {
        upi_id: String,
        name: String,
    },
    Imps {
        account_name: String,
        account_number: String,
        ifsc: String,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct NewOrder {
    pub token_symbol: String,
    pub token_address: Option<String>,
    pub chain_id: u64,
    pub fiat_amount: Decimal,
    pub receiver_address: String,
    pub payment: Payment,
    pub merchant_ref: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub id: String,
    pub email: String,
    /// What the merchant asked for.
    pub request: NewOrder,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: String,
    pub utr: Option<String>,
    /// The user paid (sandbox control `POST /sandbox/onramp/{id}/pay`): polls progress the
    /// order as if a UTR had been accepted.
    pub paid: bool,
    /// Status polls since the UTR was accepted (or, after `paid`, the `fiat_received`
    /// threshold plus the polls since).
    pub polls: u32,
    pub tx_hash: Option<String>,
    pub transferred_amount: Option<Decimal>,
}

impl Order {
    pub(crate) fn is_upi(&self) -> bool {
        matches!(self.request.payment, Payment::Upi { .. })
    }

    /// The UPI payment string the user pays with.
    pub(crate) fn upi_string(&self) -> String {
        let mut amount = self.request.fiat_amount.round_dp(2);
        amount.rescale(2);
        format!("upi://pay?pa=onmeta@sandbox&am={amount}&tn={}", self.id)
    }

    /// Status as seen now, without counting a poll (expiry is applied).
    fn current_status(&self, now: DateTime<Utc>) -> &str {
        if self.utr.is_none() && self.status == STATUS_FIAT_PENDING && now >= self.expires_at {
            STATUS_EXPIRED
        } else {
            &self.status
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QuoteOut {
    pub received_tokens: Decimal,
    pub conversion_rate: Decimal,
    pub base_units: String,
    pub estimate_id: String,
}

pub(crate) struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// The whole simulated provider.
pub(crate) struct World {
    pub kyc_verified: bool,
    pub conversion_rate: Decimal,
    pub scenario: Scenario,
    sell_fee: Decimal,
    progression: Progression,
    offramp_progression: OfframpProgression,
    offramp_orders: HashMap<String, OfframpOrder>,
    order_expiry: TimeDelta,
    access_ttl: TimeDelta,
    users: HashMap<String, User>,
    tokens: HashMap<String, Token>,
    /// Sweep expired tokens once `tokens` holds this many (doubled after each sweep, so
    /// that a crowd of live users does not make every login scan them all).
    sweep_tokens_at: usize,
    orders: HashMap<String, Order>,
    /// Which on-ramp order each accepted UTR belongs to.
    utr_owners: HashMap<String, String>,
    pub stats: SandboxStats,
    /// Merchant callback settings in force.
    pub callbacks: Callbacks,
    /// Where status changes are recorded for the callback sender (none: not recorded).
    outbox: Option<mpsc::UnboundedSender<Change>>,
}

fn key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn random_digits(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn already_verified() -> ApiError {
    ApiError::new(406, "account already verified")
}

/// Token decimals the sandbox assumes for a symbol.
pub(crate) fn token_decimals(symbol: &str) -> u32 {
    match symbol.to_ascii_uppercase().as_str() {
        "USDT" | "USDC" | "USDC.E" => 6,
        _ => 18,
    }
}

/// UTR formats accepted: 12 digits (UPI/IMPS RRN), or 16/22 alphanumerics (NEFT/RTGS).
pub(crate) fn valid_utr(utr: &str) -> bool {
    let len = utr.len();
    (len == 12 && utr.bytes().all(|b| b.is_ascii_digit()))
        || ((len == 16 || len == 22) && utr.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// IFSC: four letters, a zero, six alphanumerics.
pub(crate) fn valid_ifsc(ifsc: &str) -> bool {
    let b = ifsc.as_bytes();
    b.len() == 11
        && b[..4].iter().all(u8::is_ascii_uppercase)
        && b[4] == b'0'
        && b[5..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Status reached after `polls` status calls since the UTR, per the cumulative thresholds.
pub(crate) fn progressed_status(p: &Progression, polls: u32) -> &'static str {
    if polls >= p.completed {
        STATUS_COMPLETED
    } else if polls >= p.transferred {
        "transferred"
    } else if p.in_progress.is_some_and(|n| polls >= n) {
        "InProgress"
    } else if polls >= p.order_received {
        "orderReceived"
    } else if polls >= p.fiat_received {
        "fiatReceived"
    } else {
        STATUS_FIAT_PENDING
    }
}

impl World {
    pub(crate) fn new(config: &SandboxConfig) -> Self {
        World {
            kyc_verified: config.kyc_verified,
            conversion_rate: config.conversion_rate,
            scenario: config.scenario.clone(),
            sell_fee: config.sell_fee,
            progression: config.progression.clone(),
            offramp_progression: config.offramp_progression.clone(),
            offramp_orders: HashMap::new(),
            order_expiry: delta(config.order_expiry),
            access_ttl: delta(config.access_token_ttl),
            users: HashMap::new(),
            tokens: HashMap::new(),
            orders: HashMap::new(),
            utr_owners: HashMap::new(),
            sweep_tokens_at: 10_000,
            stats: SandboxStats::default(),
            callbacks: config.callbacks.clone(),
            outbox: None,
        }
    }

    // --- sessions ----------------------------------------------------------------------------

    pub(crate) fn login(&mut self, email: &str, now: DateTime<Utc>) -> Result<Tokens, ApiError> {
        let email = key(email);
        if !email.contains('@') || email.len() < 3 {
            return Err(ApiError::bad_request("invalid email"));
        }
        self.user_mut(&email).created_at.get_or_insert(now);
        if self.tokens.len() > self.sweep_tokens_at {
            self.sweep_tokens(now);
            self.sweep_tokens_at = (2 * self.tokens.len()).max(10_000);
        }
        let access = self.issue(&email, TokenKind::Access, now);
        let refresh = self.issue(&email, TokenKind::Refresh, now);
        self.stats.logins += 1;
        Ok(Tokens { access, refresh })
    }

    fn issue(&mut self, email: &str, kind: TokenKind, now: DateTime<Utc>) -> String {
        let (prefix, ttl) = match kind {
            TokenKind::Access => ("sbx_at_", self.access_ttl),
            TokenKind::Refresh => ("sbx_rt_", REFRESH_TOKEN_TTL),
        };
        let token = format!("{prefix}{}", random_hex(16));
        self.tokens.insert(
            token.clone(),
            Token {
                email: email.to_owned(),
                kind,
                expires_at: now
                    .checked_add_signed(ttl)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            },
        );
        token
    }

    fn check_token(
        &self,
        token: &str,
        kind: TokenKind,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        match self.tokens.get(token) {
            Some(t) if t.kind == kind && now < t.expires_at => Ok(t.email.clone()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// A new access token for a valid refresh token.
    pub(crate) fn refresh(
        &mut self,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        let email = self.check_token(refresh_token, TokenKind::Refresh, now)?;
        let access = self.issue(&email, TokenKind::Access, now);
        self.stats.refreshes += 1;
        Ok(access)
    }

    /// The user an access token belongs to.
    pub(crate) fn authenticate(
        &self,
        access_token: &str,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        self.check_token(access_token, TokenKind::Access, now)
    }

    /// Make tokens unusable (access only, or refresh tokens too).
    pub(crate) fn expire_tokens(&mut self, include_refresh: bool) {
        self.tokens
            .retain(|_, t| !(t.kind == TokenKind::Access || include_refresh));
    }

    /// Drops expired tokens (called on login when many have piled up).
    fn sweep_tokens(&mut self, now: DateTime<Utc>) {
        self.tokens.retain(|_, t| t.expires_at > now);
    }

    // --- KYC and links -----------------------------------------------------------------------

    /// One KYC check; while the user's pending checks last, each one counts down.
    pub(crate) fn kyc_status(&mut self, email: &str) -> KycCheck {
        let global = self.kyc_verified;
        let user = self.user_mut(email);
        if !global {
            return KycCheck {
                verified: false,
                fulfillments: &[],
            };
        }
        if user.kyc_checks_left > 0 {
            user.kyc_checks_left -= 1;
            return KycCheck {
                verified: false,
                fulfillments: PENDING_FULFILLMENTS,
            };
        }
        KycCheck {
            verified: true,
            fulfillments: &[],
        }
    }

    fn require_kyc(&mut self, email: &str) -> Result<(), ApiError> {
        let global = self.kyc_verified;
        if global && self.user_mut(email).kyc_checks_left == 0 {
            Ok(())
        } else {
            Err(ApiError::bad_request("KYC is not verified for this user"))
        }
    }

    /// The user's record, created on first sight with the scenario's pending KYC checks.
    fn user_mut(&mut self, email: &str) -> &mut User {
        let kyc_checks_left = self.scenario.kyc_pending_checks;
        self.users.entry(key(email)).or_insert_with(|| User {
            kyc_checks_left,
            ..User::default()
        })
    }

    /// The state a new link starts in, consuming the name-mismatch budget.
    fn new_link_state(&mut self) -> LinkState {
        if self.scenario.link_name_mismatch_next > 0 {
            self.scenario.link_name_mismatch_next -= 1;
            LinkState::Failed {
                reason: NAME_MISMATCH_REASON.to_owned(),
            }
        } else if self.scenario.link_pending_polls > 0 {
            LinkState::Pending {
                polls_left: self.scenario.link_pending_polls,
            }
        } else {
            LinkState::Verified
        }
    }

    /// Polls a link's status by reference; a pending link counts one poll down and turns
    /// verified once none are left.
    pub(crate) fn link_status(
        &mut self,
        email: &str,
        kind: LinkKind,
        reference: &str,
    ) -> Result<LinkView, ApiError> {
        let user = self.user_mut(email);
        let reference = reference.trim();
        let (state, transaction_id) = match kind {
            LinkKind::Upi => user
                .upis
                .iter_mut()
                .find(|u| u.reference == reference)
                .map(|u| (&mut u.state, None)),
            LinkKind::Bank => user
                .banks
                .iter_mut()
                .find(|b| b.reference == reference)
                .map(|b| (&mut b.state, Some(b.transaction_id.clone()))),
        }
        .ok_or_else(|| ApiError::not_found("reference not found"))?;
        if let LinkState::Pending { polls_left } = state {
            if *polls_left == 0 {
                *state = LinkState::Verified;
            } else {
                *polls_left -= 1;
            }
        }
        Ok(LinkView {
            reference: reference.to_owned(),
            transaction_id,
            state: state.clone(),
        })
    }

    pub(crate) fn link_upi(
        &mut self,
        email: &str,
        upi_id: &str,
        name: &str,
    ) -> Result<UpiLink, ApiError> {
        self.require_kyc(email)?;
        let upi_id = upi_id.trim();
        let valid = upi_id
            .split_once('@')
            .is_some_and(|(user, psp)| !user.is_empty() && !psp.is_empty() && !psp.contains('@'));
        if !valid {
            return Err(ApiError::bad_request("invalid upiId"));
        }
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("name is required"));
        }
        let user = self.user_mut(email);
        if let Some(existing) = user
            .upis
            .iter()
            .find(|u| u.upi_id.eq_ignore_ascii_case(upi_id))
        {
            match existing.state {
                LinkState::Verified => return Err(already_verified()),
                LinkState::Pending { .. } => return Ok(existing.clone()),
                LinkState::Failed { .. } => {}
            }
        }
        user.upis.retain(|u| !u.upi_id.eq_ignore_ascii_case(upi_id));
        let link = UpiLink {
            upi_id: upi_id.to_owned(),
            name: name.trim().to_owned(),
            reference: uuid::Uuid::new_v4().to_string(),
            state: self.new_link_state(),
        };
        self.user_mut(email).upis.push(link.clone());
        Ok(link)
    }

    pub(crate) fn link_bank(
        &mut self,
        email: &str,
        account_number: &str,
        account_name: &str,
        ifsc: &str,
    ) -> Result<BankLink, ApiError> {
        self.require_kyc(email)?;
        let account_number = account_number.trim();
        if !(6..=20).contains(&account_number.len())
            || !account_number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ApiError::bad_request("invalid accountNumber"));
        }
        let ifsc = ifsc.trim().to_ascii_uppercase();
        if !valid_ifsc(&ifsc) {
            return Err(ApiError::bad_request("invalid ifsc"));
        }
        let user = self.user_mut(email);
        if let Some(existing) = user
            .banks
            .iter()
            .find(|b| b.account_number == account_number)
        {
            match existing.state {
                LinkState::Verified => return Err(already_verified()),
                LinkState::Pending { .. } => return Ok(existing.clone()),
                LinkState::Failed { .. } => {}
            }
        }
        user.banks.retain(|b| b.account_number != account_number);
        let link = BankLink {
            account_number: account_number.to_owned(),
            account_name: account_name.trim().to_owned(),
            ifsc,
            reference: uuid::Uuid::new_v4().to_string(),
            transaction_id: random_digits(10),
            state: self.new_link_state(),
        };
        self.user_mut(email).banks.push(link.clone());
        Ok(link)
    }

    pub(crate) fn upis(&self, email: &str) -> Vec<UpiLink> {
        self.users
            .get(&key(email))
            .map(|u| u.upis.clone())
            .unwrap_or_default()
    }

    pub(crate) fn banks(&self, email: &str) -> Vec<BankLink> {
        self.users
            .get(&key(email))
            .map(|u| u.banks.clone())
            .unwrap_or_default()
    }

    // --- quotes and orders -------------------------------------------------------------------

    pub(crate) fn quote(
        &self,
        token_symbol: &str,
        fiat_amount: Decimal,
    ) -> Result<QuoteOut, ApiError> {
        if token_symbol.trim().is_empty() {
            return Err(ApiError::bad_request("buyTokenSymbol is required"));
        }
        if fiat_amount <= Decimal::ZERO {
            return Err(ApiError::bad_request("fiatAmount must be positive"));
        }
        let decimals = token_decimals(token_symbol);
        let received = (fiat_amount / self.conversion_rate)
            .round_dp_with_strategy(decimals.min(6), RoundingStrategy::ToZero)
            .normalize();
        let base_units = received
            .checked_mul(Decimal::from(10u64.pow(decimals.min(18))))
            .map(|d| d.trunc().normalize().to_string())
            .unwrap_or_else(|| "0".to_owned());
        Ok(QuoteOut {
            received_tokens: received,
            conversion_rate: self.conversion_rate,
            base_units,
            estimate_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    pub(crate) fn create_order(
        &mut self,
        email: &str,
        new: NewOrder,
        now: DateTime<Utc>,
    ) -> Result<Order, ApiError> {
        self.require_kyc(email)?;
        if new.fiat_amount <= Decimal::ZERO {
            return Err(ApiError::bad_request("fiatAmount must be positive"));
        }
        if new.token_symbol.trim().is_empty() {
            return Err(ApiError::bad_request("buyTokenSymbol is required"));
        }
        if new.receiver_address.trim().is_empty() {
            return Err(ApiError::bad_request("receiverAddress is required"));
        }
        let id = self.new_order_id();
        let expires_at = now
            .checked_add_signed(self.order_expiry)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let user = self.user_mut(email);
        match &new.payment {
            Payment::Upi { upi_id, .. } => {
                if !user.upis.iter().any(|u| {
                    u.upi_id.eq_ignore_ascii_case(upi_id.trim()) && u.state == LinkState::Verified
                }) {
                    return Err(ApiError::bad_request(
                        "UPI ID is not linked to this user: link it with /v1/users/upi-link first",
                    ));
                }
            }
            Payment::Imps { account_number, .. } => {
                if !user.banks.iter().any(|b| {
                    b.account_number == account_number.trim() && b.state == LinkState::Verified
                }) {
                    return Err(ApiError::bad_request(
                        "bank account is not linked to this user: link it with /v1/users/account-link first",
                    ));
                }
            }
        }
        let order = Order {
            id: id.clone(),
            email: key(email),
            request: new,
            created_at: now,
            updated_at: now,
            expires_at,
            status: STATUS_FIAT_PENDING.to_owned(),
            utr: None,
            paid: false,
            polls: 0,
            tx_hash: None,
            transferred_amount: None,
        };
        user.orders.push(id.clone());
        if let Some(merchant_ref) = &order.request.merchant_ref {
            *self
                .stats
                .orders_by_merchant_ref
                .entry(merchant_ref.clone())
                .or_default() += 1;
        }
        self.orders.insert(id, order.clone());
        self.emit_onramp(&order);
        Ok(order)
    }

    /// `n` on-ramp orders for `email` placed through other merchants (each with its own
    /// merchant reference, not counted in the stats), newest last.
    pub(crate) fn add_orders_elsewhere(&mut self, email: &str, n: u32, now: DateTime<Utc>) {
        for i in 0..n {
            let id = self.new_order_id();
            let order = Order {
                id: id.clone(),
                email: key(email),
                request: NewOrder {
                    token_symbol: "USDT".into(),
                    token_address: None,
                    chain_id: 137,
                    fiat_amount: Decimal::ONE_HUNDRED,
                    receiver_address: "0x2222222222222222222222222222222222222222".into(),
                    payment: Payment::Upi {
                        upi_id: "elsewhere@okaxis".into(),
                        name: "Elsewhere".into(),
                    },
                    merchant_ref: Some(format!("elsewhere-{id}-{i}")),
                },
                created_at: now,
                updated_at: now,
                expires_at: now
                    .checked_add_signed(self.order_expiry)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
                status: STATUS_FIAT_PENDING.to_owned(),
                utr: None,
                paid: false,
                polls: 0,
                tx_hash: None,
                transferred_amount: None,
            };
            self.user_mut(email).orders.push(id.clone());
            self.orders.insert(id, order);
        }
    }

    /// A fresh 24-hex order id, unique across both order kinds.
    fn new_order_id(&self) -> String {
        loop {
            let id = random_hex(12);
            if !self.orders.contains_key(&id) && !self.offramp_orders.contains_key(&id) {
                return id;
            }
        }
    }

    fn own_order_mut(&mut self, email: &str, order_id: &str) -> Result<&mut Order, ApiError> {
        let email = key(email);
        match self.orders.get_mut(order_id.trim()) {
            Some(order) if order.email == email => Ok(order),
            _ => Err(ApiError::not_found("order not found")),
        }
    }

    /// Expires an unpaid order whose deadline passed. Returns whether it is expired.
    fn settle_expiry(order: &mut Order, now: DateTime<Utc>) -> bool {
        if order.current_status(now) == STATUS_EXPIRED && order.status != STATUS_EXPIRED {
            order.status = STATUS_EXPIRED.to_owned();
            order.updated_at = now;
        }
        order.status == STATUS_EXPIRED
    }

    /// Records a UTR. The same UTR on the same order again is accepted (and counted).
    pub(crate) fn submit_utr(
        &mut self,
        email: &str,
        order_id: &str,
        utr: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let utr = utr.trim().to_ascii_uppercase();
        if !valid_utr(&utr) {
            return Err(ApiError::bad_request(
                "invalid UTR: expected 12 digits or a 16/22-character reference",
            ));
        }
        let used_elsewhere = self
            .utr_owners
            .get(&utr)
            .is_some_and(|owner| owner != order_id.trim());
        let order = self.own_order_mut(email, order_id)?;
        if order.status == STATUS_COMPLETED {
            // Onmeta answers this with HTTP 200 and `success: false`.
            return Err(ApiError {
                http: 200,
                code: 400,
                message: "Order already success, can't update UTR".to_owned(),
            });
        }
        let pending = order.status == STATUS_FIAT_PENDING;
        if Self::settle_expiry(order, now) {
            if pending {
                let expired = order.clone();
                self.emit_onramp(&expired);
            }
            return Err(ApiError::bad_request("order expired"));
        }
        let mut claimed = None;
        match order.utr.as_deref() {
            Some(existing) if existing != utr => {
                return Err(ApiError::bad_request(
                    "a different UTR was already submitted for this order",
                ));
            }
            Some(_) => {}
            None => {
                if used_elsewhere {
                    return Err(ApiError::bad_request("UTR already used on another order"));
                }
                order.utr = Some(utr.clone());
                order.updated_at = now;
                claimed = Some(utr);
            }
        }
        let id = order.id.clone();
        if let Some(utr) = claimed {
            self.utr_owners.insert(utr, id.clone());
        }
        *self.stats.utr_submissions_by_order.entry(id).or_default() += 1;
        Ok(())
    }

    /// Reads an order's status, counting one poll when a UTR is known or the user paid.
    pub(crate) fn poll_status(
        &mut self,
        email: &str,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Order, ApiError> {
        let rate = self.conversion_rate;
        let progression = self.progression.clone();
        let order = self.own_order_mut(email, order_id)?;
        let changed = if order.utr.is_none() && !order.paid {
            let pending = order.status == STATUS_FIAT_PENDING;
            Self::settle_expiry(order, now) && pending
        } else {
            order.polls = order.polls.saturating_add(1);
            let next = progressed_status(&progression, order.polls);
            let changed = order.status != next && order.status != STATUS_COMPLETED;
            if changed {
                order.status = next.to_owned();
                order.updated_at = now;
            }
            if matches!(order.status.as_str(), "transferred" | STATUS_COMPLETED)
                && order.tx_hash.is_none()
            {
                order.tx_hash = Some(format!("0x{}", random_hex(32)));
                order.transferred_amount = Some(
                    (order.request.fiat_amount / rate)
                        .round_dp_with_strategy(6, RoundingStrategy::ToZero)
                        .normalize(),
                );
            }
            changed
        };
        let order = order.clone();
        if changed {
            self.emit_onramp(&order);
        }
        Ok(order)
    }

    /// The user's orders of both kinds, newest first, `limit` after skipping `skip`;
    /// expiry applied, off-ramp statuses as the status endpoint reports them.
    pub(crate) fn list_orders(
        &self,
        email: &str,
        skip: usize,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Vec<Listed> {
        let Some(user) = self.users.get(&key(email)) else {
            return Vec::new();
        };
        user.orders
            .iter()
            .rev()
            .skip(skip)
            .take(limit)
            .filter_map(|id| {
                if let Some(o) = self.orders.get(id) {
                    let mut o = o.clone();
                    o.status = o.current_status(now).to_owned();
                    Some(Listed::On(o))
                } else {
                    self.offramp_orders.get(id).cloned().map(Listed::Off)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use super::*;

    const EMAIL: &str = "asha@example.com";

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn world() -> World {
        World::new(&SandboxConfig::default())
    }

    fn on(listed: &Listed) -> &Order {
        match listed {
            Listed::On(o) => o,
            Listed::Off(o) => panic!("off-ramp order {} listed", o.id),
        }
    }

    fn upi_order(world: &mut World, merchant_ref: &str, now: DateTime<Utc>) -> Order {
        if world.upis(EMAIL).is_empty() {
            world.link_upi(EMAIL, "asha@okhdfc", "Asha").unwrap();
        }
        world
            .create_order(
                EMAIL,
                NewOrder {
                    token_symbol: "USDT".into(),
                    token_address: None,
                    chain_id: 137,
                    fiat_amount: Decimal::from(1000),
                    receiver_address: "0xabc".into(),
                    payment: Payment::Upi {
                        upi_id: "asha@okhdfc".into(),
                        name: "Asha".into(),
                    },
                    merchant_ref: Some(merchant_ref.into()),
                },
                now,
            )
            .unwrap()
    }

    #[test]
    fn tokens_expire_and_refresh() {
        let mut w = world();
        let tokens = w.login(EMAIL, t0()).unwrap();
        assert_eq!(w.authenticate(&tokens.access, t0()).unwrap(), EMAIL);
        let later = t0() + TimeDelta::hours(1);
        assert_eq!(
            w.authenticate(&tokens.access, later),
            Err(ApiError::unauthorized())
        );
        // An access token is no refresh token and vice versa.
        assert!(w.refresh(&tokens.access, t0()).is_err());
        assert!(w.authenticate(&tokens.refresh, t0()).is_err());
        let access = w.refresh(&tokens.refresh, later).unwrap();
        assert!(w.authenticate(&access, later).is_ok());
        assert!(
            w.refresh(&tokens.refresh, t0() + TimeDelta::hours(25))
                .is_err()
        );
        assert_eq!((w.stats.logins, w.stats.refreshes), (1, 1));
        w.expire_tokens(false);
        assert!(w.authenticate(&access, later).is_err());
        assert!(w.refresh(&tokens.refresh, later).is_ok());
        w.expire_tokens(true);
        assert!(w.refresh(&tokens.refresh, later).is_err());
    }

    #[test]
    fn links_need_kyc_and_banks_link_once() {
        let mut w = world();
        w.kyc_verified = false;
        assert_eq!(w.link_upi(EMAIL, "a@ok", "A").unwrap_err().http, 400);
        w.kyc_verified = true;
        let first = w.link_upi(EMAIL, "a@ok", "A").unwrap();
        assert_eq!(first.state, LinkState::Verified);
        let again = w.link_upi(EMAIL, "A@OK", "A").unwrap_err();
        assert_eq!(
            (again.http, again.message.as_str()),
            (406, "account already verified")
        );
        assert_eq!(w.link_upi(EMAIL, "not-a-vpa", "A").unwrap_err().http, 400);

        w.link_bank(EMAIL, "123456787315", "A", "hdfc0000123")
            .unwrap();
        let again = w
            .link_bank(EMAIL, "123456787315", "A", "HDFC0000123")
            .unwrap_err();
        assert_eq!(
            (again.http, again.message.as_str()),
            (406, "account already verified")
        );
        assert_eq!(
            w.link_bank(EMAIL, "1234567890", "A", "BAD")
                .unwrap_err()
                .http,
            400
        );
        assert_eq!(w.banks(EMAIL).len(), 1);
    }

    #[test]
    fn kyc_stays_pending_for_the_configured_checks() {
        let mut w = World::new(&SandboxConfig::with_scenario(Scenario {
            kyc_pending_checks: 2,
            ..Scenario::default()
        }));
        for _ in 0..2 {
            assert_eq!(w.link_upi(EMAIL, "a@ok", "A").unwrap_err().http, 400);
            let check = w.kyc_status(EMAIL);
            assert!(!check.verified);
            assert_eq!(check.fulfillments, PENDING_FULFILLMENTS);
        }
        assert!(w.kyc_status(EMAIL).verified);
        assert!(w.link_upi(EMAIL, "a@ok", "A").is_ok());
        // Users seen before the knob changes keep their state; new ones get the new value.
        w.scenario.kyc_pending_checks = 0;
        assert!(w.kyc_status("new@example.com").verified);
        w.kyc_verified = false;
        assert_eq!(
            w.kyc_status(EMAIL),
            KycCheck {
                verified: false,
                fulfillments: &[]
            }
        );
    }

    #[test]
    fn links_can_be_pending_or_mismatched() {
        let mut w = World::new(&SandboxConfig::with_scenario(Scenario {
            link_pending_polls: 2,
            link_name_mismatch_next: 1,
            ..Scenario::default()
        }));
        let failed = w
            .link_bank(EMAIL, "123456787315", "Someone Else", "HDFC0000123")
            .unwrap();
        assert_eq!(
            failed.state,
            LinkState::Failed {
                reason: NAME_MISMATCH_REASON.into()
            }
        );
        assert_eq!(
            w.link_status(EMAIL, LinkKind::Bank, &failed.reference)
                .unwrap()
                .state,
            failed.state
        );
        // A new attempt replaces the failed link; this one is pending for two polls.
        let pending = w
            .link_bank(EMAIL, "123456787315", "A", "HDFC0000123")
            .unwrap();
        assert_eq!(pending.state, LinkState::Pending { polls_left: 2 });
        assert_eq!(w.banks(EMAIL).len(), 1);
        // Linking again while pending answers the same link.
        assert_eq!(
            w.link_bank(EMAIL, "123456787315", "A", "HDFC0000123")
                .unwrap()
                .reference,
            pending.reference
        );
        let polled: Vec<_> = (0..3)
            .map(|_| {
                w.link_status(EMAIL, LinkKind::Bank, &pending.reference)
                    .unwrap()
                    .state
            })
            .collect();
        assert_eq!(
            polled,
            [
                LinkState::Pending { polls_left: 1 },
                LinkState::Pending { polls_left: 0 },
                LinkState::Verified
            ]
        );
        assert_eq!(
            w.link_bank(EMAIL, "123456787315", "A", "HDFC0000123")
                .unwrap_err()
                .http,
            406
        );
        // References are per kind and per user.
        assert_eq!(
            w.link_status(EMAIL, LinkKind::Upi, &pending.reference)
                .unwrap_err()
                .http,
            404
        );
        assert_eq!(
            w.link_status("x@example.com", LinkKind::Bank, &pending.reference)
                .unwrap_err()
                .http,
            404
        );
    }

    #[test]
    fn orders_need_a_linked_instrument() {
        let mut w = world();
        let new = NewOrder {
            token_symbol: "USDT".into(),
            token_address: None,
            chain_id: 137,
            fiat_amount: Decimal::from(500),
            receiver_address: "0xabc".into(),
            payment: Payment::Imps {
                account_name: "A".into(),
                account_number: "123456787315".into(),
                ifsc: "HDFC0000123".into(),
            },
            merchant_ref: None,
        };
        let err = w.create_order(EMAIL, new.clone(), t0()).unwrap_err();
        assert!(err.message.contains("not linked"), "{}", err.message);
        w.link_bank(EMAIL, "123456787315", "A", "HDFC0000123")
            .unwrap();
        let order = w.create_order(EMAIL, new, t0()).unwrap();
        assert_eq!(order.id.len(), 24);
        assert!(
            order
                .id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(order.expires_at - order.created_at, TimeDelta::hours(3));
    }

    #[test]
    fn progression_follows_thresholds() {
        let p = Progression::default();
        let seq: Vec<_> = (0..6).map(|n| progressed_status(&p, n)).collect();
        assert_eq!(
            seq,
            [
                "fiatPending",
                "fiatReceived",
                "orderReceived",
                "transferred",
                "completed",
                "completed"
            ]
        );
        let p = Progression {
            in_progress: Some(3),
            transferred: 4,
            completed: 5,
            ..Progression::default()
        };
        assert_eq!(progressed_status(&p, 3), "InProgress");
    }

    #[test]
    fn utr_and_status_lifecycle() {
        let mut w = world();
        let order = upi_order(&mut w, "m-1", t0());
        assert_eq!(
            w.poll_status(EMAIL, &order.id, t0()).unwrap().status,
            "fiatPending"
        );
        assert_eq!(
            w.submit_utr(EMAIL, &order.id, "12345", t0())
                .unwrap_err()
                .http,
            400
        );
        w.submit_utr(EMAIL, &order.id, "412345678901", t0())
            .unwrap();
        w.submit_utr(EMAIL, &order.id, "412345678901", t0())
            .unwrap();
        assert_eq!(w.stats.utr_submissions_by_order[&order.id], 2);
        assert!(
            w.submit_utr(EMAIL, &order.id, "499999999999", t0())
                .is_err()
        );

        let statuses: Vec<_> = (0..4)
            .map(|_| w.poll_status(EMAIL, &order.id, t0()).unwrap())
            .collect();
        assert_eq!(statuses[0].status, "fiatReceived");
        assert_eq!(statuses[1].status, "orderReceived");
        assert_eq!(statuses[2].status, "transferred");
        assert!(
            statuses[2]
                .tx_hash
                .as_deref()
                .is_some_and(|h| h.len() == 66)
        );
        let done = &statuses[3];
        assert_eq!(done.status, "completed");
        assert_eq!(
            done.transferred_amount,
            Some(Decimal::from_str("11.299435").unwrap())
        );

        // Past the expiry a paid order stays completed.
        let late = t0() + TimeDelta::hours(10);
        assert_eq!(
            w.poll_status(EMAIL, &order.id, late).unwrap().status,
            "completed"
        );
        let err = w
            .submit_utr(EMAIL, &order.id, "412345678901", late)
            .unwrap_err();
        assert_eq!((err.http, err.code), (200, 400));
        assert!(err.message.contains("already success"));
    }

    #[test]
    fn unpaid_orders_expire_and_utrs_move_on() {
        let mut w = world();
        let old = upi_order(&mut w, "m-1", t0());
        let late = t0() + TimeDelta::hours(3);
        assert_eq!(on(&w.list_orders(EMAIL, 0, 10, late)[0]).status, "expired");
        assert_eq!(
            w.poll_status(EMAIL, &old.id, late).unwrap().status,
            "expired"
        );
        assert_eq!(
            w.submit_utr(EMAIL, &old.id, "412345678901", late)
                .unwrap_err()
                .message,
            "order expired"
        );
        // The late UTR goes onto a new order for the same amount.
        let new = upi_order(&mut w, "m-2", late);
        w.submit_utr(EMAIL, &new.id, "412345678901", late).unwrap();
        // But a UTR already attached to a live order cannot be reused.
        let third = upi_order(&mut w, "m-3", late);
        assert!(
            w.submit_utr(EMAIL, &third.id, "412345678901", late)
                .is_err()
        );
    }

    #[test]
    fn orders_are_private_and_listed_newest_first() {
        let mut w = world();
        for i in 0..12 {
            upi_order(&mut w, &format!("m-{i}"), t0() + TimeDelta::seconds(i));
        }
        let page = w.list_orders(EMAIL, 0, 10, t0());
        assert_eq!(page.len(), 10);
        assert_eq!(on(&page[0]).request.merchant_ref.as_deref(), Some("m-11"));
        let rest = w.list_orders(EMAIL, 10, 10, t0());
        assert_eq!(rest.len(), 2);
        assert_eq!(on(&rest[1]).request.merchant_ref.as_deref(), Some("m-0"));
        assert!(w.list_orders("other@example.com", 0, 10, t0()).is_empty());
        let id = on(&page[0]).id.clone();
        assert_eq!(
            w.poll_status("other@example.com", &id, t0())
                .unwrap_err()
                .http,
            404
        );
    }

    #[test]
    fn quotes_use_the_conversion_rate() {
        let w = World::new(&SandboxConfig {
            order_expiry: Duration::from_secs(60),
            ..SandboxConfig::default()
        });
        let q = w.quote("USDT", Decimal::from(885)).unwrap();
        assert_eq!(q.received_tokens, Decimal::from(10));
        assert_eq!(q.base_units, "10000000");
        assert!(w.quote("USDT", Decimal::ZERO).is_err());
    }

    #[test]
    fn formats() {
        assert!(valid_utr("412345678901"));
        assert!(valid_utr("HDFCN52022062412"));
        assert!(valid_utr("HDFCR52022062412345678"));
        assert!(!valid_utr("41234567890"));
        assert!(!valid_utr("4123 5678901"));
        assert!(valid_ifsc("HDFC0000123"));
        assert!(!valid_ifsc("HDFC1000123"));
    }
}
