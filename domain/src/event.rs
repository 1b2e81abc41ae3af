//! Event payloads: what upstream reads on `ramp.evt.<tenant>.<direction>.<event>` and
//! what tenants receive as webhooks. Built only from non-secret order fields: no email,
//! phone, PAN or bank account of the user ever appears here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Direction;
use crate::onramp::{EventKind, OnrampOrder, PaymentInstructions};

pub const STATUS_CHANGED: &str = "order.status_changed";
pub const ATTENTION_NEEDED: &str = "order.attention_needed";
pub const UTR_REJECTED: &str = "order.utr_rejected";
pub const COMMAND_REJECTED: &str = "command.rejected";
pub const OPERATOR_ACTION: &str = "order.operator_action";

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
    pub fiat_amount: String,
    pub token: String,
    pub chain_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// Present while the user has to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentInstructions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
}

/// Build the payload of an emitted on-ramp event.
pub fn onramp_event(
    order: &OnrampOrder,
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
        EventKind::UtrRejected { reason } => (UTR_REJECTED, None, Some(reason.clone())),
        EventKind::OperatorAction { action, by, reason } => (
            OPERATOR_ACTION,
            None,
            Some(format!("{} by {by}: {reason}", action.as_str())),
        ),
    };
    let state = match kind {
        EventKind::StatusChanged { to, .. } => to.as_str(),
        _ => order.state.as_str(),
    };
    let awaiting = order.state == crate::onramp::OnrampState::AwaitingPayment;
    OrderEvent {
        event_id,
        event_type: event_type.to_string(),
        tenant: order.tenant.clone(),
        direction: Direction::Onramp,
        order_id: order.client_order_id.clone(),
        rampd_order_id: order.id.to_string(),
        sequence: seq,
        state: state.to_string(),
        previous_state: previous,
        occurred_at,
        fiat_amount: order.request.fiat_amount.to_string(),
        token: order.request.token.as_str().to_string(),
        chain_id: order.request.chain_id.get(),
        provider_order_id: order.provider_order_id.clone(),
        provider_status: order.provider_status.clone(),
        payment: if awaiting {
            order.payment.clone()
        } else {
            None
        },
        tx_hash: order.tx_hash.clone(),
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
