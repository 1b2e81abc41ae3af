//! The order state machine, for both directions.
//!
//! On-ramp (fiat → crypto) and off-ramp (crypto → fiat) orders share their preparation
//! (KYC check, payment-method link, quote, provider order creation), their crash-safe
//! provider calls, their polling and their failure handling; they differ in what the user
//! must do to pay (a UTR for fiat, a transaction hash for crypto) and in the provider's
//! status vocabulary. One machine with the direction on the order keeps those shared rules
//! in one place; [`OrderState::for_direction`] says which states each direction uses.
//!
//! [`next_action`] says what the shell should do next; [`decide`] folds one input (a
//! command, an observation of a provider call, or a timer) into a [`Decision`]: the new
//! order, its history rows, the events to emit and when to run next.
//!
//! Rules (DESIGN §2.6): transitions never go to a lower [`OrderState::rank`] and terminal
//! states absorb everything. The only same-rank moves are between `preparing` and
//! `kyc_required` (waiting for the user's KYC, then carrying on). An unknown or mis-cased
//! provider status is recorded and flags the order without moving it.

mod builder;
mod contested;
mod decide;
mod observe;
mod onmeta;
mod operator;
mod partner;
mod status;
#[cfg(test)]
mod tests;

pub use contested::{PAYMENT_REF_CONTESTED, PaymentRefKind, payment_ref_contested};
pub use decide::{create, decide, decide_all, next_action};
pub use partner::MINT_APPROVED;
pub use status::{StatusClass, classify_status, known_statuses};

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Direction;
use crate::chain_values::TxHash;
use crate::command::{MintRequest, OfframpRequest, OnrampRequest, RedeemRequest, RejectCode, User};
use crate::provider::{ProviderRef, RequestKind};
use crate::schedule::PollPolicy;
use crate::values::{ChainId, InrAmount, TokenSymbol, Utr};

/// Version of these transition rules. Stored with each order at creation so that a future
/// change of rules can keep serving orders that started under the old ones.
pub const SM_VERSION: i32 = 1;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Our own steps before the provider order exists (see [`PrepStep`]).
    Preparing,
    /// The user's KYC is not complete: we re-check on a schedule until it is, or until the
    /// KYC window ends (`failed`, reason `kyc_timeout`).
    KycRequired,
    /// Provider order created; waiting for the user to pay: fiat and a UTR (on-ramp), or
    /// tokens to the provider's deposit address and the transaction hash (off-ramp).
    AwaitingPayment,
    /// On-ramp: the user's payment reference was accepted by the provider.
    UtrSubmitted,
    /// Off-ramp: the user's transaction hash was accepted by the provider.
    TxHashSubmitted,
    /// The provider has the user's money or tokens and is working on it.
    Processing,
    /// On-ramp: the tokens were sent on chain (`transferred`).
    Transferred,
    /// Off-ramp: the fiat payout reached the user's bank (`PayoutSuccess`).
    PaidOut,
    /// Terminal success (`completed`).
    Completed,
    /// Terminal: no payment within the window.
    Expired,
    /// Terminal: cancelled by upstream before payment, or by the provider.
    Cancelled,
    /// Terminal: a step failed for good; the reason is on the order.
    Failed,
    /// Terminal, off-ramp: the provider sent the tokens back to the refund address.
    Refunded,
}

impl OrderState {
    pub const ALL: [OrderState; 13] = [
        OrderState::Preparing,
        OrderState::KycRequired,
        OrderState::AwaitingPayment,
        OrderState::UtrSubmitted,
        OrderState::TxHashSubmitted,
        OrderState::Processing,
        OrderState::Transferred,
        OrderState::PaidOut,
        OrderState::Completed,
        OrderState::Expired,
        OrderState::Cancelled,
        OrderState::Failed,
        OrderState::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Preparing => "preparing",
            OrderState::KycRequired => "kyc_required",
            OrderState::AwaitingPayment => "awaiting_payment",
            OrderState::UtrSubmitted => "utr_submitted",
            OrderState::TxHashSubmitted => "tx_hash_submitted",
            OrderState::Processing => "processing",
            OrderState::Transferred => "transferred",
            OrderState::PaidOut => "paid_out",
            OrderState::Completed => "completed",
            OrderState::Expired => "expired",
            OrderState::Cancelled => "cancelled",
            OrderState::Failed => "failed",
            OrderState::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The states an order of this direction can be in.
    pub fn for_direction(direction: Direction) -> &'static [OrderState] {
        use OrderState::*;
        match direction {
            Direction::Onramp => &[
                Preparing,
                KycRequired,
                AwaitingPayment,
                UtrSubmitted,
                Processing,
                Transferred,
                Completed,
                Expired,
                Cancelled,
                Failed,
            ],
            Direction::Offramp => &[
                Preparing,
                KycRequired,
                AwaitingPayment,
                TxHashSubmitted,
                Processing,
                PaidOut,
                Completed,
                Expired,
                Cancelled,
                Failed,
                Refunded,
            ],
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 10
    }

    /// Progress order. A transition never goes to a lower rank; every terminal state
    /// ranks above every live one.
    pub fn rank(self) -> u8 {
        use OrderState::*;
        match self {
            Preparing | KycRequired => 0,
            AwaitingPayment => 1,
            UtrSubmitted | TxHashSubmitted => 2,
            Processing => 3,
            Transferred | PaidOut => 4,
            Completed | Expired | Cancelled | Failed | Refunded => 10,
        }
    }

    /// Before the provider order exists.
    pub fn is_preparing(self) -> bool {
        matches!(self, OrderState::Preparing | OrderState::KycRequired)
    }
}

/// Our own steps before the provider order exists. Login happens implicitly inside the
/// connector on the first user-scoped call of each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrepStep {
    CheckKyc,
    LinkPaymentMethod,
    Quote,
    CreateOrder,
    /// Partner API: the deposit request stands; confirm it (or decline it, when upstream
    /// cancelled meanwhile).
    Confirm,
}

/// A provider call that must not happen twice. Its intent is persisted before the call;
/// after a crash the shell finds the intent and looks the provider state up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    CreateOrder,
    SubmitUtr,
    SubmitTxHash,
    /// Partner API: the confirmation (`confirm: "YES"`) of a deposit request.
    Confirm,
    /// Partner API: the report of a redeem's payout (`PUT …/fiat-transfer/{hash}`),
    /// idempotent at the provider by our reference, so repeated after a crash.
    ReportPayout,
}

/// Timing rules for orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPolicy {
    pub poll: PollPolicy,
    /// On-ramp: how long the user has to pay (provider: 3 h).
    pub payment_window: Duration,
    /// Off-ramp: how long the user has to send the tokens and their hash.
    pub deposit_window: Duration,
    /// How long after a window we wait for the provider's own verdict before ending the
    /// order ourselves.
    pub expiry_grace: Duration,
    /// How long an order waits for the user's KYC before it fails with `kyc_timeout`.
    pub kyc_window: Duration,
    /// First delay between KYC re-checks; doubles per check up to `kyc_recheck_cap`.
    pub kyc_recheck: Duration,
    pub kyc_recheck_cap: Duration,
    /// A quote older than this is fetched again before the order is created (provider:
    /// quotes are valid 30 s).
    pub quote_validity: Duration,
}

impl OrderPolicy {
    /// How long the user has to pay, by direction.
    pub fn window(&self, direction: Direction) -> Duration {
        match direction {
            Direction::Onramp => self.payment_window,
            Direction::Offramp => self.deposit_window,
        }
    }
}

impl Default for OrderPolicy {
    fn default() -> Self {
        OrderPolicy {
            poll: PollPolicy::default(),
            payment_window: Duration::from_secs(3 * 3600),
            deposit_window: Duration::from_secs(2 * 3600),
            expiry_grace: Duration::from_secs(300),
            kyc_window: Duration::from_secs(72 * 3600),
            kyc_recheck: Duration::from_secs(30),
            kyc_recheck_cap: Duration::from_secs(900),
            quote_validity: Duration::from_secs(30),
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "direction", rename_all = "snake_case")]
pub enum OrderRequest {
    Onramp(OnrampRequest),
    Offramp(OfframpRequest),
    /// Fiat the tenant holds, minted as stablecoin to the user's wallet (an on-ramp).
    Mint(MintRequest),
    /// Stablecoin the user sends on chain, paid out in fiat by the tenant (an off-ramp).
    Redeem(RedeemRequest),
}

impl OrderRequest {
    pub fn direction(&self) -> Direction {
        match self {
            OrderRequest::Onramp(_) | OrderRequest::Mint(_) => Direction::Onramp,
            OrderRequest::Offramp(_) | OrderRequest::Redeem(_) => Direction::Offramp,
        }
    }

    pub fn kind(&self) -> RequestKind {
        match self {
            OrderRequest::Onramp(_) => RequestKind::Onramp,
            OrderRequest::Offramp(_) => RequestKind::Offramp,
            OrderRequest::Mint(_) => RequestKind::Mint,
            OrderRequest::Redeem(_) => RequestKind::Redeem,
        }
    }

    /// The user whose provider account the order runs on (`None`: a mint, which runs on
    /// the tenant's account).
    pub fn user(&self) -> Option<&User> {
        match self {
            OrderRequest::Onramp(r) => Some(&r.user),
            OrderRequest::Offramp(r) => Some(&r.user),
            OrderRequest::Mint(_) | OrderRequest::Redeem(_) => None,
        }
    }

    pub fn token(&self) -> &TokenSymbol {
        match self {
            OrderRequest::Onramp(r) => &r.token,
            OrderRequest::Offramp(r) => &r.token,
            OrderRequest::Mint(r) => &r.token,
            OrderRequest::Redeem(r) => &r.token,
        }
    }

    /// The chain the order's tokens move on (`None`: the Partner API's own chain, which
    /// its requests do not name).
    pub fn chain_id(&self) -> Option<ChainId> {
        match self {
            OrderRequest::Onramp(r) => Some(r.chain_id),
            OrderRequest::Offramp(r) => Some(r.chain_id),
            OrderRequest::Mint(_) | OrderRequest::Redeem(_) => None,
        }
    }

    /// The largest move of the conversion rate, in percent, that the user accepts between
    /// the first quote and the one the order is created with.
    pub fn max_price_change_pct(&self) -> Option<Decimal> {
        match self {
            OrderRequest::Onramp(r) => r.max_price_change_pct,
            OrderRequest::Offramp(r) => r.max_price_change_pct,
            OrderRequest::Mint(_) | OrderRequest::Redeem(_) => None,
        }
    }
}

/// On-ramp: what the user must do to pay, taken from the provider's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInstructions {
    /// `INR_UPI` or `INR_IMPS`.
    pub mode: String,
    pub amount: InrAmount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upi_deep_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_string: Option<String>,
    /// The provider's collection account (not the user's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank: Option<CollectAccount>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectAccount {
    pub account_name: String,
    pub account_number: String,
    pub ifsc: String,
    #[serde(default)]
    pub bank_name: Option<String>,
}

/// Off-ramp: where and what the user must send, taken from the provider's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositInstructions {
    /// The provider's deposit address (`receiverWalletAddress`).
    pub address: String,
    pub token: TokenSymbol,
    pub chain_id: ChainId,
    /// Exactly this many tokens.
    #[serde(with = "rust_decimal::serde::str")]
    pub token_amount: Decimal,
    /// Send the tokens and their hash before this.
    pub expires_at: DateTime<Utc>,
}

/// A quotation: buy (on-ramp) or sell (off-ramp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Tokens the user receives (on-ramp) or sells (off-ramp).
    pub token_amount: Decimal,
    /// Fiat the user pays (on-ramp) or receives (off-ramp).
    pub fiat_amount: Decimal,
    /// INR per token.
    pub conversion_rate: Decimal,
    pub quoted_at: DateTime<Utc>,
}

/// Waiting for the user's KYC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KycWait {
    pub since: DateTime<Utc>,
    /// Checks made while waiting; drives the re-check backoff.
    pub checks: u32,
    /// Onboarding items still outstanding, when the provider lists them.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// The persisted order. Serialised as JSON in the `orders.data` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub tenant: String,
    pub client_order_id: String,
    pub sm_version: i32,
    /// The provider that serves the order, fixed at creation.
    #[serde(default)]
    pub provider: ProviderRef,
    pub request: OrderRequest,
    pub state: OrderState,
    pub step: PrepStep,
    pub created_at: DateTime<Utc>,
    /// End of the payment window (the provider's `expiresAt` once known).
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub kyc: Option<KycWait>,
    /// A payment-method link the provider is still verifying.
    #[serde(default)]
    pub link_reference: Option<String>,
    #[serde(default)]
    pub quote: Option<Quote>,
    /// The rate of the first quote: later quotes may not move further from it than the
    /// request allows.
    #[serde(default)]
    pub reference_rate: Option<Decimal>,
    #[serde(default)]
    pub provider_order_id: Option<String>,
    /// Last provider status seen, raw (exact case).
    #[serde(default)]
    pub provider_status: Option<String>,
    /// On-ramp payment instructions.
    #[serde(default)]
    pub payment: Option<PaymentInstructions>,
    /// Off-ramp deposit instructions.
    #[serde(default)]
    pub deposit: Option<DepositInstructions>,
    /// On-ramp: the user's payment reference; kept even when it arrives before the
    /// provider order.
    #[serde(default)]
    pub utr: Option<Utr>,
    /// Off-ramp: the user's deposit transaction, validated for the order's chain.
    #[serde(default)]
    pub deposit_tx_hash: Option<TxHash>,
    #[serde(default)]
    pub intent: Option<Intent>,
    /// Consecutive failed provider calls; drives the backoff. Reset by any success.
    #[serde(default)]
    pub failures: u32,
    /// Why the order needs a person, if it does.
    #[serde(default)]
    pub attention: Option<String>,
    /// Why a terminal order ended where it did (failed, cancelled, expired, refunded).
    #[serde(default)]
    pub reason: Option<String>,
    /// The provider's on-chain transaction: the token transfer (on-ramp) or the deposit it
    /// received (off-ramp).
    #[serde(default)]
    pub tx_hash: Option<String>,
    /// Off-ramp: the bank payout reference (`transactionId`); a redeem's, as the tenant's
    /// treasury reported it.
    #[serde(default)]
    pub payout_reference: Option<String>,
    /// Partner API: the provider's id of the transaction a confirmation started (not an
    /// on-chain hash).
    #[serde(default)]
    pub provider_transaction_id: Option<String>,
    /// Partner API: upstream cancelled after the deposit request; the request is declined
    /// (`confirm: "NO"`) before the order ends `cancelled`, with this reason.
    #[serde(default)]
    pub cancel_requested: Option<String>,
    /// Off-ramp: where a refund went.
    #[serde(default)]
    pub refund_address: Option<String>,
    /// The expired order whose late UTR this order carries.
    #[serde(default)]
    pub predecessor: Option<Uuid>,
    /// The order created to carry this expired order's late UTR.
    #[serde(default)]
    pub successor: Option<Uuid>,
    /// The late UTR handed to the successor. Kept here only (not in `utr`), so the UTR's
    /// unique index holds it once: on the successor.
    #[serde(default)]
    pub late_utr: Option<Utr>,
    /// How far an unfinished lookup of an interrupted call got; only while its intent is
    /// on record (see [`LookupProgress`]).
    #[serde(default)]
    pub lookup_progress: Option<LookupProgress>,
    /// Sequence number of the last emitted event (per order, starts at 1).
    #[serde(default)]
    pub event_seq: i64,
}

impl Order {
    pub fn direction(&self) -> Direction {
        self.request.direction()
    }

    /// When this order ends if it is still unpaid: the payment window plus the grace we
    /// give the provider to say so itself.
    pub fn unpaid_deadline(&self, policy: &OrderPolicy) -> DateTime<Utc> {
        self.expires_at + crate::schedule::chrono_duration(policy.expiry_grace)
    }

    /// How much a check of this order due at `at` matters when the provider's request
    /// budget cannot serve every due order (the shell claims the lowest first).
    pub fn urgency(&self, at: DateTime<Utc>, policy: &OrderPolicy) -> Urgency {
        use OrderState::*;
        match self.state {
            KycRequired => Urgency::Parked,
            AwaitingPayment if !self.payment_claimed() => {
                let near = self.unpaid_deadline(policy)
                    - crate::schedule::chrono_duration(policy.poll.parked_min);
                if at >= near {
                    Urgency::Deadline
                } else {
                    Urgency::Parked
                }
            }
            _ => Urgency::Moving,
        }
    }

    /// The user's payment claim (UTR or tx hash) is in, or the provider saw the money.
    pub fn payment_claimed(&self) -> bool {
        self.utr.is_some() || self.deposit_tx_hash.is_some() || self.state.rank() >= 2
    }

    /// The id of the successor created for a late UTR: derived, so a repeated decision
    /// names the same order.
    pub fn successor_id(&self) -> Uuid {
        Uuid::new_v5(&self.id, b"rampd:successor")
    }
}

/// One input to the state machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    SubmitUtr {
        utr: Utr,
    },
    /// The raw hash: it is parsed against the order's chain family here, because only the
    /// order knows its chain.
    SubmitTxHash {
        hash: String,
    },
    Cancel {
        reason: Option<String>,
    },
    /// A redeem's fiat was paid by the tenant's treasury, under this reference.
    PayoutReported {
        reference: String,
    },
    /// The shell is about to make the call that `next_action` named and it must record
    /// the intent first (see [`Intent`]).
    Intent(Intent),
    Observed(Box<Observation>),
    /// The provider's own webhook about this order (verified by the shell), reporting
    /// what a status poll would; folded like one, deciding nothing when it tells nothing new
    /// (`observe.rs`, `callback`).
    Callback(StatusReport),
    /// A deadline has passed (checked by `next_action`): the KYC window, or the payment
    /// window of an order that has no provider order to ask.
    DeadlinePassed,
    /// An operator acted on the order (admin CLI); recorded with who and why.
    Operator {
        by: String,
        reason: String,
        action: OperatorAction,
    },
}

/// What an operator can do to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorAction {
    /// Cancel, under the same rules as an `order.cancel` command.
    Cancel,
    /// A person checked a flagged order: clear the flag.
    Resolve,
    /// Run the order's next step (poll, retry) now instead of at its scheduled time.
    RetryNow,
}

impl OperatorAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorAction::Cancel => "cancel",
            OperatorAction::Resolve => "resolve",
            OperatorAction::RetryNow => "retry_now",
        }
    }
}

/// What a provider call returned, mapped to domain terms by the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Kyc {
        verified: bool,
        /// Outstanding onboarding items, when the provider lists them.
        missing: Vec<String>,
    },
    PaymentMethod(LinkResult),
    Quoted(Quote),
    Created(ProviderOrder),
    /// Result of looking our order up at the provider after an interrupted create or
    /// payment-reference submission.
    Lookup(Lookup),
    UtrAccepted,
    TxHashAccepted,
    Status(StatusReport),
    /// Partner API: the confirmation was accepted; the payment is approved and the mint
    /// under way.
    Confirmed {
        transaction_id: String,
    },
    /// Partner API: the deposit request was declined (`confirm: "NO"` answered, or the
    /// request was already invalidated).
    Declined,
    /// Partner API: a redeem's payout was recorded (the fiat-transfer PUT's
    /// `transactionId`).
    PayoutRecorded {
        transaction_id: String,
    },
    /// What the on-chain history says about the order's settlement.
    Chain(ChainCheck),
    CallFailed(CallFailure),
}

/// A look at the on-chain history for the transfer that settles an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    /// Found, completed and not reverted: this transaction.
    Settled { tx_hash: String },
    /// Not there yet (or nothing to look for yet).
    NotYet,
    /// Failed or reverted on chain: the user's transfer pays nothing.
    Failed { reason: String },
    /// Something there may or may not be it (several candidates alike): a person decides.
    Doubtful { evidence: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkResult {
    Linked,
    /// The provider is verifying the link; poll `reference` when it gave one.
    Pending {
        reference: Option<String>,
    },
    Failed(String),
    /// The account or UPI holder's name does not match the KYC name.
    NameMismatch,
}

/// A provider order as returned by create (or found by lookup).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderOrder {
    pub provider_order_id: String,
    pub upi_deep_link: Option<String>,
    pub qr_string: Option<String>,
    pub bank: Option<CollectAccount>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Off-ramp: the provider's deposit address.
    pub deposit_address: Option<String>,
}

/// What looking an order up at the provider established.
///
/// Only a search that could have seen the order and did not is [`Lookup::NotFound`]: the
/// shell reads the provider's list until it is older than the order or ends, and every row
/// in that range is ruled out. Anything short of that is [`Lookup::Inconclusive`], which the
/// order machine never reads as "not found": the create or submission that may have reached
/// the provider is never repeated on its strength.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Box<FoundOrder>),
    /// A complete search found no such order.
    NotFound,
    /// The provider has no way to say whether the interrupted call reached it (the
    /// Partner API cannot read a deposit request back): a person decides; the call is
    /// never repeated on a guess.
    Unanswerable {
        evidence: String,
    },
    /// The search could not rule the order in or out (a page that failed, an unreadable
    /// row, a row that may be ours, a list longer than the search may read, the order's own
    /// row missing). The evidence goes into the timeline; no PII. With `progress`, the next
    /// lookup goes on from there instead of starting over.
    Inconclusive {
        evidence: String,
        progress: Option<LookupProgress>,
    },
}

/// Where an unfinished search of the provider's order list stands. A long search under
/// provider faults would otherwise rarely finish: each attempt goes on where the last one
/// stopped. Resuming is safe for a list that only grows at its head (rows can be read
/// twice, never skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupProgress {
    /// The provider's place to read next (the connector's own notation).
    pub cursor: String,
    /// Why the rows read so far cannot rule the order out, if anything: kept, so a resumed
    /// search can never end "not found" past a doubt.
    pub doubt: Option<String>,
}

/// A provider order found by lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundOrder {
    pub order: ProviderOrder,
    pub status: String,
    /// The payment reference the provider holds: UTR (on-ramp) or tx hash (off-ramp).
    pub payment_ref: Option<String>,
}

/// One status read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// Exact case, as the provider sent it.
    pub raw: String,
    pub tx_hash: Option<String>,
    pub payout_reference: Option<String>,
    pub refund_address: Option<String>,
}

impl StatusReport {
    pub fn new(raw: &str) -> Self {
        StatusReport {
            raw: raw.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Network error, timeout, 5xx.
    Retryable,
    /// 429.
    RateLimited,
    /// The provider refused, permanently (including a 2xx that carries a refusal).
    Rejected,
    /// A reply we could not understand.
    Unknown,
    /// The call was not made: the provider's request budget had no room for it (see
    /// `budget`). Nothing happened at the provider, nothing went wrong: the order's step
    /// is only tried again after `retry_after`.
    Deferred,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    pub kind: FailureKind,
    pub retry_after: Option<Duration>,
    /// Provider's message (no secrets; the connector guarantees that).
    pub message: String,
    /// The call that failed. Needed because the order alone cannot tell: after an intent
    /// is recorded, the order looks the same during the call and during a later lookup.
    /// `None` means "the order's next action".
    pub action: Option<Action>,
}

/// What the shell should do for this order now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CheckKyc,
    /// Reuse a linked payment method (or payout account), or link it.
    EnsurePaymentMethod,
    /// Ask the provider how a pending link is doing.
    PollLink(String),
    FetchQuote,
    /// Persist `Intent::CreateOrder`, then create the provider order.
    CreateOrder,
    /// An earlier create or payment-reference submission may or may not have reached the
    /// provider: look the order up before calling again.
    FindProviderOrder,
    /// Persist `Intent::SubmitUtr`, then submit this UTR.
    SubmitUtr(Utr),
    /// Persist `Intent::SubmitTxHash`, then submit this hash.
    SubmitTxHash(TxHash),
    /// Partner API: persist `Intent::Confirm`, then confirm the deposit request.
    Confirm,
    /// Partner API: decline the deposit request (`confirm: "NO"`); safe to repeat.
    Decline,
    /// Partner API: persist `Intent::ReportPayout`, then report the redeem's payout.
    ReportPayout,
    /// Ask the provider how the order is doing (the Partner API: look for its settlement
    /// in the on-chain history).
    PollStatus,
    /// Feed [`Input::DeadlinePassed`].
    Expire,
    /// Terminal: nothing left to do.
    Nothing,
}

impl Action {
    /// The intent to persist before this action's provider call, for calls that must not
    /// happen twice.
    pub fn intent(&self) -> Option<Intent> {
        match self {
            Action::CreateOrder => Some(Intent::CreateOrder),
            Action::SubmitUtr(_) => Some(Intent::SubmitUtr),
            Action::SubmitTxHash(_) => Some(Intent::SubmitTxHash),
            Action::Confirm => Some(Intent::Confirm),
            Action::ReportPayout => Some(Intent::ReportPayout),
            _ => None,
        }
    }

    /// A stable label for logs and history.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CheckKyc => "check_kyc",
            Action::EnsurePaymentMethod => "ensure_payment_method",
            Action::PollLink(_) => "poll_link",
            Action::FetchQuote => "fetch_quote",
            Action::CreateOrder => "create_order",
            Action::FindProviderOrder => "find_provider_order",
            Action::SubmitUtr(_) => "submit_utr",
            Action::SubmitTxHash(_) => "submit_tx_hash",
            Action::Confirm => "confirm",
            Action::Decline => "decline",
            Action::ReportPayout => "report_payout",
            Action::PollStatus => "poll_status",
            Action::Expire => "expire",
            Action::Nothing => "nothing",
        }
    }
}

/// Which due orders go first when the provider's request budget is short, most urgent
/// first (the order of the variants; stored as the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// Money or the user is waiting on us: the payment reference was submitted, the
    /// provider is processing, or the order is being prepared (the user is at checkout).
    Moving = 0,
    /// Parked, and this check is the one at (or just before) its deadline.
    Deadline = 1,
    /// Waiting for the user (to pay, or to finish KYC): checked slowly anyway.
    Parked = 2,
}

impl Urgency {
    /// Every urgency, most urgent first.
    pub const ALL: [Urgency; 3] = [Urgency::Moving, Urgency::Deadline, Urgency::Parked];

    pub const fn rank(self) -> i16 {
        self as i16
    }

    pub fn from_rank(rank: i16) -> Option<Urgency> {
        Urgency::ALL.into_iter().find(|u| u.rank() == rank)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Moving => "moving",
            Urgency::Deadline => "deadline",
            Urgency::Parked => "parked",
        }
    }
}

/// When the order's next step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextRun {
    /// Leave the schedule as it is.
    Keep,
    At(DateTime<Utc>),
    /// Terminal: remove the order's task.
    Done,
}

/// An event for upstream (NATS) and tenants (webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    StatusChanged {
        from: Option<OrderState>,
        to: OrderState,
    },
    AttentionNeeded {
        reason: String,
    },
    /// The provider refused the user's UTR or tx hash; upstream may send another.
    PaymentRefRejected {
        reason: String,
    },
    /// A late UTR for this expired order was moved to a new order.
    SuccessorCreated {
        successor: Uuid,
    },
    /// An operator acted on the order.
    OperatorAction {
        action: OperatorAction,
        by: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub seq: i64,
    pub kind: EventKind,
}

/// A row for the order's history (`order_events`).
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub kind: &'static str,
    pub detail: serde_json::Value,
    /// `(from, to)` when this row records a state change.
    pub transition: Option<(OrderState, OrderState)>,
}

/// The outcome of one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub order: Order,
    pub history: Vec<History>,
    pub events: Vec<Emitted>,
    pub next_run: NextRun,
    /// How urgent the next run is, should the provider's budget be short
    /// ([`Order::urgency`] at `next_run`; `Moving` when there is none).
    pub urgency: Urgency,
    /// A new order this decision creates in the same transaction (the successor that
    /// carries a late UTR).
    pub spawned: Option<Box<Decision>>,
}

impl Decision {
    /// When this decision, taken on `before`, only moves the order's next run: nothing to
    /// record, announce or create, and the order itself unchanged (a status poll that saw
    /// what the last one saw). Its write is then the task's new `run_at` alone.
    pub fn only_reschedules(&self, before: &Order) -> Option<DateTime<Utc>> {
        match self.next_run {
            NextRun::At(at)
                if self.history.is_empty()
                    && self.events.is_empty()
                    && self.spawned.is_none()
                    && self.order == *before =>
            {
                Some(at)
            }
            _ => None,
        }
    }

    /// True when nothing about the order changed (an idempotent repeat).
    pub fn is_noop(&self) -> bool {
        self.history.is_empty()
            && self.events.is_empty()
            && self.next_run == NextRun::Keep
            && self.spawned.is_none()
    }
}

/// A command that the order refuses, with a stable code for events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(code: RejectCode, message: String) -> Self {
        Rejection { code, message }
    }
}

/// Inputs that do not come from the order: the current time and a jitter sample in
/// `[0, 1)` supplied by the shell.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    pub jitter: f64,
    pub policy: OrderPolicy,
}
