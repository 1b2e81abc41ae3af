//! The Onmeta plan (providers.md §1): KYC, payment-method link, quote and create, then
//! the user's payment reference and status polls. Its next step is chosen here; the
//! observations of its calls are folded by the shared machine (`observe.rs`), whose rules
//! were written for it first, and its status words are `status.rs`.

use chrono::{DateTime, Utc};

use super::*;
use crate::schedule::chrono_duration;

/// The Onmeta plan's next step.
///
/// An order that has a provider order is never expired without asking the provider
/// first: past its deadline it is polled, and the status reply decides (see
/// `observe::status`). Money that arrived at the last minute is never lost that way.
pub(super) fn next_action(order: &Order, now: DateTime<Utc>, policy: &OrderPolicy) -> Action {
    use OrderState::*;
    match order.state {
        s if s.is_terminal() => Action::Nothing,
        KycRequired => match kyc_deadline(order, policy) {
            Some(deadline) if now >= deadline => Action::Expire,
            _ => Action::CheckKyc,
        },
        Preparing if !order.payment_claimed() && now >= order.unpaid_deadline(policy) => {
            Action::Expire
        }
        Preparing => match order.step {
            PrepStep::CheckKyc => Action::CheckKyc,
            PrepStep::LinkPaymentMethod => match &order.link_reference {
                Some(reference) => Action::PollLink(reference.clone()),
                None => Action::EnsurePaymentMethod,
            },
            PrepStep::Quote => Action::FetchQuote,
            PrepStep::CreateOrder if order.intent == Some(Intent::CreateOrder) => {
                Action::FindProviderOrder
            }
            PrepStep::CreateOrder if quote_is_stale(order, now, policy) => Action::FetchQuote,
            PrepStep::CreateOrder => Action::CreateOrder,
            // Not a step of this plan.
            PrepStep::Confirm => Action::PollStatus,
        },
        AwaitingPayment => match (order.intent, &order.utr, &order.deposit_tx_hash) {
            (Some(Intent::SubmitUtr | Intent::SubmitTxHash), _, _) => Action::FindProviderOrder,
            (_, Some(utr), _) => Action::SubmitUtr(utr.clone()),
            (_, _, Some(hash)) => Action::SubmitTxHash(hash.clone()),
            _ => Action::PollStatus,
        },
        _ => Action::PollStatus,
    }
}

fn quote_is_stale(order: &Order, now: DateTime<Utc>, policy: &OrderPolicy) -> bool {
    order
        .quote
        .as_ref()
        .is_none_or(|q| now - q.quoted_at > chrono_duration(policy.quote_validity))
}

/// When a wait for the user's KYC ends.
pub(super) fn kyc_deadline(order: &Order, policy: &OrderPolicy) -> Option<DateTime<Utc>> {
    order
        .kyc
        .as_ref()
        .map(|k| k.since + chrono_duration(policy.kyc_window))
}
