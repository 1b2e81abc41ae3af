//! Event payloads: what upstream reads on `ramp.evt.<tenant>.<direction>.<event>` and
//! what tenants receive as webhooks. Built only from non-secret order fields: no email,
//! phone, PAN or bank account of the user ever appears here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Direction;
use crate::command::FiatPayout;
use crate::order::{
    DepositInstructions, EventKind, Order, OrderRequest, OrderState, PaymentInstructions,
};

pub const STATUS_CHANGED: &str = "order.status_changed";
pub const ATTENTION_NEEDED: &str = "order.attention_needed";
pub const UTR_REJECTED: &str = "order.utr_rejected";
pub const TX_HASH_REJECTED: &str = "order.tx_hash_rejected";
pub const SUCCESSOR_CREATED: &str = "order.successor_created";
pub const COMMAND_REJECTED: &str = "command.rejected";
pub const OPERATOR_ACTION: &str = "order.operator_action";

/// Every order event type.
pub const ORDER_EVENT_TYPES: [&str; 6] = [
    STATUS_CHANGED,
    ATTENTION_NEEDED,
    UTR_REJECTED,
    TX_HASH_REJECTED,
    SUCCESSOR_CREATED,
    OPERATOR_ACTION,
];

/// The last subject token of an event type (`order.status_changed` → `status_changed`).
pub fn subject_suffix(event_type: &str) -> &str {
    event_type.rsplit('.').next().unwrap_or(event_type)
}

/// One order event. `event_id` and `sequence` let receivers drop repeats and reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: String,
    pub direction: Direction,
    /// The client's order id.
    pub order_id: String,
    pub rampd_order_id: String,
    /// Per-order, starting at 1, no gaps.
    pub sequence: i64,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// On-ramp: what the user pays. Off-ramp: what the user receives, once quoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiat_amount: Option<String>,
    /// Off-ramp: what the user sells. On-ramp: what the user receives, once quoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_amount: Option<String>,
    pub token: String,
    /// The chain the tokens move on; absent for a mint, whose provider's requests name no
    /// chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// The provider serving the order (its name in rampd's configuration).
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// On-ramp, while the user has to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentInstructions>,
    /// Off-ramp, while the user has to send the tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit: Option<DepositInstructions>,
    /// Redeem, with `processing`: the fiat the tenant's treasury pays, and to which
    /// transfer method; report it with `redeem.payout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout: Option<FiatPayout>,
    /// While the order waits for KYC: the onboarding items still missing, when the
    /// provider lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyc_missing: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// Off-ramp: the user's deposit transaction, as accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_tx_hash: Option<String>,
    /// Off-ramp: the bank payout reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout_reference: Option<String>,
    /// Partner API: the provider's id of the transaction the confirmation started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_transaction_id: Option<String>,
    /// Off-ramp, when refunded: where the tokens went back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_address: Option<String>,
    /// The expired order whose late UTR this order carries (rampd id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor_order_id: Option<String>,
    /// The order that carries this expired order's late UTR (rampd id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
}

/// Build the payload of an emitted order event.
pub fn order_event(
    order: &Order,
    seq: i64,
    kind: &EventKind,
    event_id: String,
    occurred_at: DateTime<Utc>,
    command_id: Option<&str>,
) -> OrderEvent {
    let (event_type, previous, reason) = match kind {
        EventKind::StatusChanged { from, .. } => (
            STATUS_CHANGED,
            from.map(|s| s.as_str().to_string()),
            order
                .state
                .is_terminal()
                .then(|| order.reason.clone())
                .flatten(),
        ),
        EventKind::AttentionNeeded { reason } => (ATTENTION_NEEDED, None, Some(reason.clone())),
        EventKind::PaymentRefRejected { reason } => (
            match order.direction() {
                Direction::Onramp => UTR_REJECTED,
                Direction::Offramp => TX_HASH_REJECTED,
            },
            None,
            Some(reason.clone()),
        ),
        EventKind::SuccessorCreated { .. } => (SUCCESSOR_CREATED, None, None),
        EventKind::OperatorAction { action, by, reason } => (
            OPERATOR_ACTION,
            None,
            Some(format!("{} by {by}: {reason}", action.as_str())),
        ),
    };
    let state = match kind {
        EventKind::StatusChanged { to, .. } => *to,
        _ => order.state,
    };
    let awaiting = state == OrderState::AwaitingPayment;
    let quote = order.quote.as_ref();
    let (fiat_amount, token_amount) = match &order.request {
        OrderRequest::Onramp(r) => (
            Some(r.fiat_amount.to_string()),
            quote.map(|q| q.token_amount.to_string()),
        ),
        OrderRequest::Offramp(r) => (
            quote.map(|q| q.fiat_amount.to_string()),
            Some(r.token_amount.value().to_string()),
        ),
        OrderRequest::Mint(r) => (None, Some(r.amount.value().to_string())),
        OrderRequest::Redeem(r) => (
            Some(r.fiat.amount.to_string()),
            Some(r.amount.value().to_string()),
        ),
    };
    OrderEvent {
        event_id,
        event_type: event_type.to_string(),
        tenant: order.tenant.clone(),
        direction: order.direction(),
        order_id: order.client_order_id.clone(),
        rampd_order_id: order.id.to_string(),
        sequence: seq,
        state: state.as_str().to_string(),
        previous_state: previous,
        occurred_at,
        fiat_amount,
        token_amount,
        token: order.request.token().as_str().to_string(),
        chain_id: order.request.chain_id().map(|c| c.get()),
        provider: order.provider.name.to_string(),
        provider_order_id: order.provider_order_id.clone(),
        provider_status: order.provider_status.clone(),
        payment: order.payment.clone().filter(|_| awaiting),
        deposit: order.deposit.clone().filter(|_| awaiting),
        payout: match &order.request {
            OrderRequest::Redeem(r) if state == OrderState::Processing => Some(r.fiat.clone()),
            _ => None,
        },
        kyc_missing: order
            .kyc
            .as_ref()
            .filter(|_| state == OrderState::KycRequired)
            .map(|k| k.missing.clone()),
        tx_hash: order.tx_hash.clone(),
        deposit_tx_hash: order
            .deposit_tx_hash
            .as_ref()
            .map(|h| h.as_str().to_string()),
        payout_reference: order.payout_reference.clone(),
        provider_transaction_id: order.provider_transaction_id.clone(),
        refund_address: order.refund_address.clone(),
        predecessor_order_id: order.predecessor.map(|id| id.to_string()),
        successor_order_id: order.successor.map(|id| id.to_string()),
        reason,
        command_id: command_id.map(str::to_string),
    }
}

/// A refused command: names the command and why, changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejected {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: String,
    pub command: String,
    pub command_id: String,
    pub order_id: String,
    pub code: String,
    pub reason: String,
    pub occurred_at: DateTime<Utc>,
}
