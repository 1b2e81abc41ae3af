//! A UTR or transaction hash that another tenant's order holds (DESIGN §3: nothing one
//! tenant sends may reveal another tenant's orders).
//!
//! Payment references are unique per provider account, across tenants (the database's
//! `(provider, utr)` / `(provider, deposit_tx_hash)` indexes; the provider enforces the
//! same). When a command's reference is held by an order of the *same* tenant, the
//! intake answers `utr_in_use` / `tx_hash_in_use` as before: the tenant may know its own
//! orders. When the holder belongs to *another* tenant, the answer must not tell the
//! sender that, nor anything about that order: the command is rejected
//! `payment_ref_unavailable` with a neutral reason, and the submitting order is flagged
//! for a person (`payment_ref_contested`) with the holder named in its history only, so
//! that whichever side is the victim (an earlier submission may be the pre-emption) is
//! looked at instead of being silently refused. The attempt is counted
//! (`rampd_commands_total{outcome="payment_ref_contested"}`) and logged at WARN, without
//! the reference.

use chrono::Utc;
use rampd_domain::command::RejectCode;
use rampd_domain::order::{Ctx, Decision, PaymentRefKind, payment_ref_contested};

use super::{Incoming, Verdict, direction, rejected_event};
use crate::shared::Shared;
use crate::storage::orders::{StoredOrder, holder_of_payment_ref};
use crate::storage::write::{Write, WriteError, commit_refusing_decision};
use crate::telemetry::{self, meters};

/// A decision whose commit hit a payment-reference unique index.
pub(super) struct Held<'a> {
    /// The order the command was for, as loaded.
    pub base: &'a StoredOrder,
    /// The decision that could not be committed.
    pub attempted: &'a Decision,
    /// [`WriteError::UtrInUse`] or [`WriteError::TxHashInUse`].
    pub error: &'a WriteError,
}

/// The reference the attempted decision tried to record (on the order, or on the
/// successor it spawns for a late UTR).
fn attempted_ref(held: &Held<'_>) -> Option<(PaymentRefKind, String)> {
    let d = held.attempted;
    match held.error {
        WriteError::UtrInUse => {
            let utr = d
                .order
                .utr
                .as_ref()
                .or_else(|| d.spawned.as_ref().and_then(|s| s.order.utr.as_ref()))?;
            Some((PaymentRefKind::Utr, utr.as_str().to_string()))
        }
        WriteError::TxHashInUse => {
            let hash = d.order.deposit_tx_hash.as_ref()?;
            Some((PaymentRefKind::TxHash, hash.as_str().to_string()))
        }
        _ => None,
    }
}

/// When another tenant's order holds the reference: flag the command's order, reject the
/// command neutrally, both in one transaction, and return [`Verdict::Contested`]. `None`
/// when the holder is of the same tenant (or is gone): the caller answers as before.
pub(super) async fn contested(
    shared: &Shared,
    inc: &Incoming<'_>,
    held: Held<'_>,
    ctx: &Ctx,
) -> Result<Option<Verdict>, WriteError> {
    let Some((kind, reference)) = attempted_ref(&held) else {
        return Ok(None);
    };
    let base = &held.base.order;
    let mine = base.id.to_string();
    let holder = holder_of_payment_ref(&shared.db, &mine, kind, &reference).await?;
    let Some((holder_id, holder_tenant)) = holder else {
        // Gone since the commit failed: let the command be tried again.
        return Err(WriteError::Conflict);
    };
    if holder_tenant == base.tenant {
        return Ok(None);
    }
    let Ok(held_by) = holder_id.parse() else {
        return Ok(None);
    };
    tracing::warn!(
        order.id = %base.id,
        held_by = %holder_id,
        reference = kind.as_str(),
        "payment reference held by another tenant's order: command refused, order flagged"
    );
    meters::command(inc.name.as_str(), "payment_ref_contested");
    let decision = payment_ref_contested(base, kind, held_by, ctx);
    let now = Utc::now();
    let event = rejected_event(
        inc,
        RejectCode::PaymentRefUnavailable,
        "this payment reference cannot be used for this order; the order is flagged for review"
            .into(),
        now,
    );
    let trace = telemetry::outgoing_trace_ctx(inc.trace);
    commit_refusing_decision(
        &shared.db,
        Write {
            expected_version: Some(held.base.version),
            decision: &decision,
            command: Some(inc.record.clone()),
            trace_ctx: trace.as_deref(),
            now,
            release_lease: None,
        },
        direction(inc.name),
        &event,
    )
    .await?;
    Ok(Some(Verdict::Contested))
}
