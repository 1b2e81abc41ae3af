//! A payment reference held by another tenant's order: flagged with the evidence, the
//! order otherwise unchanged.

use super::*;

#[test]
fn a_contested_reference_flags_the_order_once_and_records_every_attempt() {
    let o = awaiting();
    let holder = Uuid::now_v7();
    let d = payment_ref_contested(&o, PaymentRefKind::Utr, holder, &ctx_at(t0()));
    assert_eq!(d.order.state, o.state);
    assert_eq!(d.order.utr, o.utr);
    assert_eq!(d.order.attention.as_deref(), Some(PAYMENT_REF_CONTESTED));
    assert_eq!(d.next_run, NextRun::Keep);
    assert!(!d.is_noop());
    let h = &d.history[0];
    assert_eq!(h.kind, PAYMENT_REF_CONTESTED);
    assert_eq!(h.detail["reference"], "utr");
    assert_eq!(h.detail["held_by_order"], holder.to_string());
    assert_eq!(
        d.events.iter().map(|e| &e.kind).collect::<Vec<_>>(),
        [&EventKind::AttentionNeeded {
            reason: PAYMENT_REF_CONTESTED.into()
        }]
    );

    // A second attempt is recorded again but not announced again.
    let again = payment_ref_contested(&d.order, PaymentRefKind::Utr, holder, &ctx_at(t0()));
    assert_eq!(again.history.len(), 1);
    assert!(again.events.is_empty());
    assert_eq!(again.order.event_seq, d.order.event_seq);
}

#[test]
fn a_contested_hash_is_named_as_such() {
    let o = offramp_with_hash();
    let d = payment_ref_contested(&o, PaymentRefKind::TxHash, Uuid::nil(), &ctx_at(t0()));
    assert_eq!(d.history[0].detail["reference"], "tx_hash");
    assert_eq!(d.order.deposit_tx_hash, o.deposit_tx_hash);
}
