//! The on-ramp (fiat → crypto) order state machine.
//!
//! An order moves through our own preparation steps (KYC check, payment-method link,
//! quote, provider order creation), then follows the provider's status until a terminal
//! state. [`next_action`] says what the shell should do next; [`decide`] folds one input
//! (a command, an observation of a provider call, or a timer) into a [`Decision`]: the new
//! order, its history rows, the events to emit and when to run next.
//!
//! Rules (DESIGN §2.6): transitions are monotonic by [`OnrampState::rank`], terminal states
//! absorb everything, and an unknown or mis-cased provider status is recorded and flags the
//! order without moving it.

mod decide;
mod status;
#[cfg(test)]
mod tests;

pub use decide::{create, decide, next_action};
pub use status::{ProviderStatus, StatusClass, classify_status};

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::{OnrampRequest, RejectCode};
use crate::schedule::PollPolicy;
use crate::values::{InrAmount, Utr};

/// Version of these transition rules. Stored with each order at creation so that a future
/// change of rules can keep serving orders that started under the old ones.
pub const SM_VERSION: i32 = 1;

/// Where an on-ramp order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnrampState {
    /// Our own steps before the provider order exists (see [`PrepStep`]).
    Preparing,
    /// Provider order created (`fiatPending`); waiting for the user to pay and send a UTR.
    AwaitingPayment,
    /// The user's payment reference was accepted by the provider; waiting for the funds.
    UtrSubmitted,
    /// The provider saw the fiat (`orderReceived`, `fiatReceived`, `InProgress`).
    Processing,
    /// The tokens were sent on chain (`transferred`).
    Transferred,
    /// Terminal success (`completed`).
    Completed,
    /// Terminal: no payment within the window (`expired`).
    Expired,
    /// Terminal: cancelled by upstream before payment, or by the provider (`cancelled`).
    Cancelled,
    /// Terminal: the provider refused a step; the reason is on the order.
    Failed,
}

impl OnrampState {
    pub const ALL: [OnrampState; 9] = [
        OnrampState::Preparing,
        OnrampState::AwaitingPayment,
        OnrampState::UtrSubmitted,
        OnrampState::Processing,
        OnrampState::Transferred,
        OnrampState::Completed,
        OnrampState::Expired,
        OnrampState::Cancelled,
        OnrampState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OnrampState::Preparing => "preparing",
            OnrampState::AwaitingPayment => "awaiting_payment",
            OnrampState::UtrSubmitted => "utr_submitted",
            OnrampState::Processing => "processing",
            OnrampState::Transferred => "transferred",
            OnrampState::Completed => "completed",
            OnrampState::Expired => "expired",
            OnrampState::Cancelled => "cancelled",
            OnrampState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OnrampState> {
        OnrampState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OnrampState::Completed
                | OnrampState::Expired
                | OnrampState::Cancelled
                | OnrampState::Failed
        )
    }

    /// Progress order. A transition only ever goes to a higher rank; every terminal state
    /// ranks above every live one.
    pub fn rank(self) -> u8 {
        match self {
            OnrampState::Preparing => 0,
            OnrampState::AwaitingPayment => 1,
            OnrampState::UtrSubmitted => 2,
            OnrampState::Processing => 3,
            OnrampState::Transferred => 4,
            OnrampState::Completed
            | OnrampState::Expired
            | OnrampState::Cancelled
            | OnrampState::Failed => 10,
        }
    }
}

/// Our own steps while [`OnrampState::Preparing`]. Login happens implicitly inside the
/// connector on the first user-scoped call of each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrepStep {
    CheckKyc,
    LinkPaymentMethod,
    Quote,
    CreateOrder,
}

/// A provider call that must not happen twice. Its intent is persisted before the call;
/// after a crash the shell finds the intent and looks the provider state up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    CreateOrder,
    SubmitUtr,
}

/// Timing rules for on-ramp orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnrampPolicy {
    pub poll: PollPolicy,
    /// How long the user has to pay (provider: 3 h).
    pub payment_window: Duration,
    /// How long after the window we wait for the provider's own `expired` before expiring
    /// the order ourselves.
    pub expiry_grace: Duration,
}

impl Default for OnrampPolicy {
    fn default() -> Self {
        OnrampPolicy {
            poll: PollPolicy::default(),
            payment_window: Duration::from_secs(3 * 3600),
            expiry_grace: Duration::from_secs(300),
        }
    }
}

/// What the user must do to pay, taken from the provider's order.
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

/// A buy quotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub received_tokens: Decimal,
    pub conversion_rate: Decimal,
    pub quoted_at: DateTime<Utc>,
}

/// The persisted on-ramp order. Serialised as JSON in the `orders.data` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnrampOrder {
    pub id: Uuid,
    pub tenant: String,
    pub client_order_id: String,
    pub sm_version: i32,
    pub request: OnrampRequest,
    pub state: OnrampState,
    pub step: PrepStep,
    pub created_at: DateTime<Utc>,
    /// End of the payment window (the provider's `expiresAt` once known).
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub quote: Option<Quote>,
    #[serde(default)]
    pub provider_order_id: Option<String>,
    /// Last provider status seen, raw (exact case).
    #[serde(default)]
    pub provider_status: Option<String>,
    #[serde(default)]
    pub payment: Option<PaymentInstructions>,
    /// The user's payment reference; kept even when it arrives before the provider order.
    #[serde(default)]
    pub utr: Option<Utr>,
    #[serde(default)]
    pub intent: Option<Intent>,
    /// Consecutive failed provider calls; drives the backoff. Reset by any success.
    #[serde(default)]
    pub failures: u32,
    /// Why the order needs a person, if it does.
    #[serde(default)]
    pub attention: Option<String>,
    /// Why a terminal order ended where it did (failed, cancelled, expired).
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub tx_hash: Option<String>,
    /// Sequence number of the last emitted event (per order, starts at 1).
    #[serde(default)]
    pub event_seq: i64,
}

/// One input to the state machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    SubmitUtr {
        utr: Utr,
    },
    Cancel {
        reason: Option<String>,
    },
    /// The shell is about to make the call that `next_action` named and it must record
    /// the intent first (see [`Intent`]).
    Intent(Intent),
    Observed(Box<Observation>),
    /// The payment window plus grace has passed (checked by `next_action`).
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
    },
    PaymentMethod(LinkResult),
    Quoted(Quote),
    Created(ProviderOrder),
    /// Result of looking our order up at the provider after an interrupted create or UTR
    /// submission.
    Lookup(Option<FoundOrder>),
    UtrAccepted,
    Status {
        raw: String,
        tx_hash: Option<String>,
    },
    CallFailed(CallFailure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkResult {
    Linked,
    Pending,
    Failed(String),
}

/// A provider order as returned by create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOrder {
    pub provider_order_id: String,
    pub upi_deep_link: Option<String>,
    pub qr_string: Option<String>,
    pub bank: Option<CollectAccount>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A provider order found by lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundOrder {
    pub order: ProviderOrder,
    pub status: String,
    pub utr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// Network error, timeout, 5xx.
    Retryable,
    /// 429.
    RateLimited,
    /// The provider refused, permanently.
    Rejected,
    /// A reply we could not understand.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    pub kind: FailureKind,
    pub retry_after: Option<Duration>,
    /// Provider's message (no secrets; the connector guarantees that).
    pub message: String,
}

/// What the shell should do for this order now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CheckKyc,
    EnsurePaymentMethod,
    FetchQuote,
    /// Persist `Intent::CreateOrder`, then create the provider order.
    CreateOrder,
    /// An earlier create or UTR submission may or may not have reached the provider: look
    /// the order up before calling again.
    FindProviderOrder,
    /// Persist `Intent::SubmitUtr`, then submit this UTR.
    SubmitUtr(Utr),
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
            _ => None,
        }
    }

    /// A stable label for logs and history.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CheckKyc => "check_kyc",
            Action::EnsurePaymentMethod => "ensure_payment_method",
            Action::FetchQuote => "fetch_quote",
            Action::CreateOrder => "create_order",
            Action::FindProviderOrder => "find_provider_order",
            Action::SubmitUtr(_) => "submit_utr",
            Action::PollStatus => "poll_status",
            Action::Expire => "expire",
            Action::Nothing => "nothing",
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
        from: Option<OnrampState>,
        to: OnrampState,
    },
    AttentionNeeded {
        reason: String,
    },
    UtrRejected {
        reason: String,
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
    pub transition: Option<(OnrampState, OnrampState)>,
}

/// The outcome of one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub order: OnrampOrder,
    pub history: Vec<History>,
    pub events: Vec<Emitted>,
    pub next_run: NextRun,
}

impl Decision {
    /// True when nothing about the order changed (an idempotent repeat).
    pub fn is_noop(&self) -> bool {
        self.history.is_empty() && self.events.is_empty() && self.next_run == NextRun::Keep
    }
}

/// A command that the order refuses, with a stable code for events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

/// Inputs that do not come from the order: the current time and a jitter sample in
/// `[0, 1)` supplied by the shell.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    pub jitter: f64,
    pub policy: OnrampPolicy,
}
