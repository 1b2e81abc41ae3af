//! Operational events about webhook delivery, published on NATS through the outbox
//! (`ramp.evt.<tenant>.webhook.<event>`, `Nats-Msg-Id` = `event_id`). They carry ids and
//! outcomes only: never the delivery's body, a secret, or the receiver's response text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const DELIVERY_DEAD_LETTERED: &str = "webhook.delivery_dead_lettered";
pub const ENDPOINT_DISABLED: &str = "webhook.endpoint_disabled";
/// The event type of a test delivery (`rampd webhooks endpoint test`).
pub const WEBHOOK_TEST: &str = "webhook.test";

/// A delivery used up its retry ladder. An operator can replay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryDeadLettered {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: String,
    pub endpoint_id: String,
    /// The `webhook-id` of the delivery.
    pub webhook_id: String,
    pub rampd_order_id: String,
    /// The type of the event the delivery carried.
    pub delivery_event_type: String,
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// Why an endpoint was disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// The receiver answered 410 Gone.
    Gone,
    /// It failed continuously for the configured window.
    Failing,
    /// An operator disabled it.
    Operator,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledReason::Gone => "gone",
            DisabledReason::Failing => "failing",
            DisabledReason::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointDisabled {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: String,
    pub endpoint_id: String,
    pub reason: DisabledReason,
    /// Start of the failing streak (epoch ms), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    pub occurred_at: DateTime<Utc>,
}

/// The body of a test delivery, sent to one endpoint when an operator asks
/// (`rampd webhooks endpoint test`). Webhook only: it is never published on NATS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTest {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: String,
    pub endpoint_id: String,
    pub occurred_at: DateTime<Utc>,
}

/// What the outbox needs to publish an operational event.
pub trait OperationalEvent: Serialize {
    fn tenant(&self) -> &str;
    /// Also the `Nats-Msg-Id`.
    fn event_id(&self) -> &str;
    fn event_type(&self) -> &str;
}

macro_rules! operational {
    ($t:ty) => {
        impl OperationalEvent for $t {
            fn tenant(&self) -> &str {
                &self.tenant
            }
            fn event_id(&self) -> &str {
                &self.event_id
            }
            fn event_type(&self) -> &str {
                &self.event_type
            }
        }
    };
}
operational!(DeliveryDeadLettered);
operational!(EndpointDisabled);
