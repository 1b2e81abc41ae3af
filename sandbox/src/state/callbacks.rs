//! The world's side of merchant callbacks: a [`Change`] recorded on every status change
//! (while the world is locked, so changes queue in the order they happened), the
//! callbacks' `customer` block, and the "the user has paid" control.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::offramp::OfframpOrder;
use super::{ApiError, Order, Payment, STATUS_COMPLETED, STATUS_EXPIRED, STATUS_FIAT_PENDING};
use super::{World, key};
use crate::callbacks::Callbacks;

/// Status a paid order moves to.
const STATUS_FIAT_RECEIVED: &str = "fiatReceived";

/// The `customer` block of a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub phone_country_code: String,
    pub phone_number: String,
    pub created_at: DateTime<Utc>,
}

/// An order's state right after one of its status changes.
#[derive(Clone, Debug)]
pub(crate) enum Snapshot {
    On {
        order: Order,
        /// INR per token when the change happened.
        conversion_rate: Decimal,
    },
    Off {
        order: OfframpOrder,
    },
}

/// One status change to send, recorded by the world while it mutates.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    /// The callback settings in force when the change happened.
    pub settings: Callbacks,
    pub order_id: String,
    /// The order reached a final status (no further callback follows).
    pub terminal: bool,
    pub customer: Customer,
    pub snapshot: Snapshot,
}

/// A stable 24-hex customer id for an e-mail.
fn customer_id(email: &str) -> String {
    let digest = Sha256::digest(format!("onmeta-sandbox-customer:{email}").as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

impl World {
    /// From now on, status changes are recorded into `outbox`.
    pub(crate) fn connect_callbacks(&mut self, outbox: mpsc::UnboundedSender<Change>) {
        self.outbox = Some(outbox);
    }

    /// Remembers the name and phone a link request carried, for the callbacks.
    pub(crate) fn note_customer(
        &mut self,
        email: &str,
        name: &str,
        phone: Option<(String, String)>,
    ) {
        let user = self.user_mut(email);
        if !name.trim().is_empty() {
            user.name = Some(name.trim().to_owned());
        }
        if phone.is_some() {
            user.phone = phone;
        }
    }

    /// The `customer` block; `name` and `since` stand in for what the user never gave.
    fn customer(&self, email: &str, name: &str, since: DateTime<Utc>) -> Customer {
        let email = key(email);
        let user = self.users.get(&email);
        let (phone_country_code, phone_number) = user
            .and_then(|u| u.phone.clone())
            .unwrap_or_else(|| ("+91".to_owned(), String::new()));
        Customer {
            id: customer_id(&email),
            name: user
                .and_then(|u| u.name.clone())
                .unwrap_or_else(|| name.to_owned()),
            phone_country_code,
            phone_number,
            created_at: user.and_then(|u| u.created_at).unwrap_or(since),
            email,
        }
    }

    fn record(&self, change: impl FnOnce() -> Change) {
        if let Some(outbox) = &self.outbox
            && self.callbacks.enabled()
            && outbox.send(change()).is_err()
        {
            tracing::debug!("sandbox callback sender stopped; status change not sent");
        }
    }

    /// Records an on-ramp order's state right after its status changed.
    pub(super) fn emit_onramp(&self, order: &Order) {
        self.record(|| {
            let name = match &order.request.payment {
                Payment::Upi { name, .. } => name,
                Payment::Imps { account_name, .. } => account_name,
            };
            Change {
                settings: self.callbacks.clone(),
                order_id: order.id.clone(),
                terminal: matches!(order.status.as_str(), STATUS_COMPLETED | STATUS_EXPIRED),
                customer: self.customer(&order.email, name, order.created_at),
                snapshot: Snapshot::On {
                    order: order.clone(),
                    conversion_rate: self.conversion_rate,
                },
            }
        });
    }

    /// Records an off-ramp order's state right after its status changed.
    pub(super) fn emit_offramp(&self, order: &OfframpOrder) {
        self.record(|| {
            let name = self
                .users
                .get(&order.email)
                .and_then(|u| {
                    u.banks
                        .iter()
                        .find(|b| b.account_number == order.request.account_number.trim())
                })
                .map(|b| b.account_name.clone())
                .unwrap_or_default();
            Change {
                settings: self.callbacks.clone(),
                order_id: order.id.clone(),
                terminal: order.terminal(),
                customer: self.customer(&order.email, &name, order.created_at),
                snapshot: Snapshot::Off {
                    order: order.clone(),
                },
            }
        });
    }

    /// The user has paid an on-ramp order without the merchant submitting a UTR: a
    /// `fiatPending` order that has not expired becomes `fiatReceived`, and its status polls
    /// progress from the `fiat_received` threshold on, as after an accepted UTR. 404 for an
    /// unknown order, 409 if it expired or is past `fiatPending`.
    pub(crate) fn pay(&mut self, order_id: &str, now: DateTime<Utc>) -> Result<Order, ApiError> {
        let fiat_received = self.progression.fiat_received;
        let order = self
            .orders
            .get_mut(order_id.trim())
            .ok_or_else(|| ApiError::not_found("order not found"))?;
        let pending = order.status == STATUS_FIAT_PENDING;
        if Self::settle_expiry(order, now) {
            if pending {
                let expired = order.clone();
                self.emit_onramp(&expired);
            }
            return Err(ApiError::new(409, "order expired"));
        }
        if !pending {
            return Err(ApiError::new(
                409,
                format!("order is already {}", order.status),
            ));
        }
        order.paid = true;
        order.status = STATUS_FIAT_RECEIVED.to_owned();
        order.polls = order.polls.max(fiat_received);
        order.updated_at = now;
        let order = order.clone();
        self.emit_onramp(&order);
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use rust_decimal::Decimal;

    use super::*;
    use crate::SandboxConfig;
    use crate::callbacks::Callbacks;
    use crate::state::NewOrder;

    const EMAIL: &str = "asha@example.com";

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn upi_order(w: &mut World) -> Order {
        w.create_order(
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
                merchant_ref: Some("m-1".into()),
            },
            t0(),
        )
        .unwrap()
    }

    /// A world with callbacks on, its outbox, and one UPI order.
    fn world_with_order() -> (World, mpsc::UnboundedReceiver<Change>, Order) {
        let mut w = World::new(&SandboxConfig {
            callbacks: Callbacks {
                url: Some("http://127.0.0.1:9/hook".into()),
                ..Callbacks::default()
            },
            ..SandboxConfig::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        w.connect_callbacks(tx);
        w.login(EMAIL, t0()).unwrap();
        w.link_upi(EMAIL, "asha@okhdfc", "Asha").unwrap();
        w.note_customer(EMAIL, "Asha Rao", Some(("+91".into(), "9876543210".into())));
        let order = upi_order(&mut w);
        (w, rx, order)
    }

    fn statuses(rx: &mut mpsc::UnboundedReceiver<Change>) -> Vec<(String, bool)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|c| match c.snapshot {
                Snapshot::On { order, .. } => (order.status, c.terminal),
                Snapshot::Off { order } => (order.reported_status().to_owned(), c.terminal),
            })
            .collect()
    }

    #[test]
    fn every_status_change_is_recorded_once() {
        let (mut w, mut rx, order) = world_with_order();
        let first = rx.try_recv().unwrap();
        assert_eq!(first.order_id, order.id);
        assert_eq!(first.customer.name, "Asha Rao");
        assert_eq!(first.customer.phone_number, "9876543210");
        assert_eq!(first.customer.created_at, t0());
        assert_eq!(first.customer.id, customer_id(EMAIL));
        // Polls without a payment change nothing.
        w.poll_status(EMAIL, &order.id, t0()).unwrap();
        w.submit_utr(EMAIL, &order.id, "412345678901", t0())
            .unwrap();
        for _ in 0..6 {
            w.poll_status(EMAIL, &order.id, t0()).unwrap();
        }
        assert_eq!(
            statuses(&mut rx),
            [
                ("fiatReceived".to_owned(), false),
                ("orderReceived".to_owned(), false),
                ("transferred".to_owned(), false),
                ("completed".to_owned(), true),
            ]
        );
        // Switched off: nothing recorded.
        w.callbacks.url = None;
        upi_order(&mut w);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn expiry_is_recorded_when_settled() {
        let (mut w, mut rx, order) = world_with_order();
        rx.try_recv().unwrap();
        let late = t0() + TimeDelta::hours(3);
        w.poll_status(EMAIL, &order.id, late).unwrap();
        w.poll_status(EMAIL, &order.id, late).unwrap();
        assert_eq!(statuses(&mut rx), [("expired".to_owned(), true)]);
    }

    #[test]
    fn pay_moves_to_fiat_received_and_polls_progress() {
        let (mut w, mut rx, order) = world_with_order();
        rx.try_recv().unwrap();
        assert_eq!(w.pay("0123", t0()).unwrap_err().http, 404);
        assert_eq!(w.pay(&order.id, t0()).unwrap().status, "fiatReceived");
        assert_eq!(w.pay(&order.id, t0()).unwrap_err().http, 409);
        let seen: Vec<_> = (0..3)
            .map(|_| w.poll_status(EMAIL, &order.id, t0()).unwrap().status)
            .collect();
        assert_eq!(seen, ["orderReceived", "transferred", "completed"]);
        assert_eq!(statuses(&mut rx).len(), 4);
        // Paid orders do not expire.
        let late = t0() + TimeDelta::hours(10);
        assert_eq!(
            w.poll_status(EMAIL, &order.id, late).unwrap().status,
            "completed"
        );

        let (mut w, mut rx, order) = world_with_order();
        rx.try_recv().unwrap();
        let err = w.pay(&order.id, t0() + TimeDelta::hours(3)).unwrap_err();
        assert_eq!((err.http, err.message.as_str()), (409, "order expired"));
        assert_eq!(statuses(&mut rx), [("expired".to_owned(), true)]);
    }
}
