//! A payment reference that another tenant's order already holds.
//!
//! UTRs and transaction hashes are unique per provider account, across tenants: the
//! provider binds a reference to the first order it is submitted for, whoever sent it. So
//! when a tenant submits a reference that another tenant's order holds, rampd cannot tell
//! which side is honest (the earlier order may be the pre-emption). It refuses the
//! command with a code that reveals nothing of the other order, and flags the submitting
//! order for a person, with the holder named in its history (for operators only; the
//! events carry just the neutral reason). Each attempt adds a history row; the flag is
//! announced once.

use serde_json::json;
use uuid::Uuid;

use super::builder::Builder;
use super::{Ctx, Decision, Order};

/// Which payment reference is contested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentRefKind {
    Utr,
    TxHash,
}

impl PaymentRefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentRefKind::Utr => "utr",
            PaymentRefKind::TxHash => "tx_hash",
        }
    }
}

/// The attention reason (and event `reason`) of an order whose payment reference another
/// tenant's order holds.
pub const PAYMENT_REF_CONTESTED: &str = "payment_ref_contested";

/// Record on `order` that its tenant submitted a `kind` reference which the order
/// `held_by` (of another tenant) holds, and flag it for a person. The order's state and
/// payment reference do not change.
pub fn payment_ref_contested(
    order: &Order,
    kind: PaymentRefKind,
    held_by: Uuid,
    ctx: &Ctx,
) -> Decision {
    let mut d = Builder::new(order.clone(), ctx);
    d.history(
        PAYMENT_REF_CONTESTED,
        json!({ "reference": kind.as_str(), "held_by_order": held_by.to_string() }),
    );
    d.flag(PAYMENT_REF_CONTESTED.into());
    d.finish()
}
