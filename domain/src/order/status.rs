//! The provider's status vocabularies (providers.md §1.4), one per direction.

use super::OrderState;
use crate::Direction;

/// Every documented on-ramp status, exact case, with the state it implies. The middle
/// statuses arrive in either documented order, so `orderReceived`, `InProgress` and
/// `fiatReceived` all mean "processing".
const ONRAMP: &[(&str, OrderState)] = &[
    ("fiatPending", OrderState::AwaitingPayment),
    ("orderReceived", OrderState::Processing),
    ("InProgress", OrderState::Processing),
    ("fiatReceived", OrderState::Processing),
    ("transferred", OrderState::Transferred),
    ("completed", OrderState::Completed),
    ("expired", OrderState::Expired),
    ("cancelled", OrderState::Cancelled),
];

/// Every documented off-ramp status. `cryptoInit` (create reply) and `pending` (status
/// API) name the same state; `PayoutSuccess` may precede or alias `completed`, so it is a
/// live state and only `completed` ends the order successfully.
const OFFRAMP: &[(&str, OrderState)] = &[
    ("cryptoInit", OrderState::AwaitingPayment),
    ("pending", OrderState::AwaitingPayment),
    ("orderReceived", OrderState::Processing),
    ("InProgress", OrderState::Processing),
    ("CryptoReceived", OrderState::Processing),
    ("PayoutSuccess", OrderState::PaidOut),
    ("completed", OrderState::Completed),
    ("refunded", OrderState::Refunded),
];

/// The documented statuses of a direction and the states they imply.
pub fn known_statuses(direction: Direction) -> &'static [(&'static str, OrderState)] {
    match direction {
        Direction::Onramp => ONRAMP,
        Direction::Offramp => OFFRAMP,
    }
}

/// The status a freshly created provider order has.
pub(super) fn initial_status(direction: Direction) -> &'static str {
    known_statuses(direction)[0].0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Known(OrderState),
    /// Same letters, wrong case (`Completed`, `fiatpending`): recorded and flagged, never
    /// acted on, because the provider's casing is part of its contract.
    NearMiss(&'static str),
    Unknown,
}

pub fn classify_status(direction: Direction, raw: &str) -> StatusClass {
    let known = known_statuses(direction);
    if let Some((_, state)) = known.iter().find(|(s, _)| *s == raw) {
        return StatusClass::Known(*state);
    }
    match known
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(raw.trim()))
    {
        Some((s, _)) => StatusClass::NearMiss(s),
        None => StatusClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_case_only() {
        for d in [Direction::Onramp, Direction::Offramp] {
            for (s, state) in known_statuses(d) {
                assert_eq!(classify_status(d, s), StatusClass::Known(*state));
                assert!(OrderState::for_direction(d).contains(state));
            }
        }
        let on = Direction::Onramp;
        assert_eq!(
            classify_status(on, "inprogress"),
            StatusClass::NearMiss("InProgress")
        );
        assert_eq!(
            classify_status(on, "Completed"),
            StatusClass::NearMiss("completed")
        );
        assert_eq!(classify_status(on, "onHold"), StatusClass::Unknown);
        assert_eq!(classify_status(on, ""), StatusClass::Unknown);
        let off = Direction::Offramp;
        assert_eq!(
            classify_status(off, "cryptoreceived"),
            StatusClass::NearMiss("CryptoReceived")
        );
        assert_eq!(
            classify_status(off, "payoutSuccess"),
            StatusClass::NearMiss("PayoutSuccess")
        );
    }

    #[test]
    fn vocabularies_are_kept_apart() {
        // An on-ramp word on an off-ramp order (and the reverse) is unknown, not mapped.
        assert_eq!(
            classify_status(Direction::Offramp, "fiatPending"),
            StatusClass::Unknown
        );
        assert_eq!(
            classify_status(Direction::Offramp, "transferred"),
            StatusClass::Unknown
        );
        assert_eq!(
            classify_status(Direction::Onramp, "refunded"),
            StatusClass::Unknown
        );
        assert_eq!(
            classify_status(Direction::Onramp, "PayoutSuccess"),
            StatusClass::Unknown
        );
    }

    #[test]
    fn initial_statuses() {
        assert_eq!(initial_status(Direction::Onramp), "fiatPending");
        assert_eq!(initial_status(Direction::Offramp), "cryptoInit");
    }
}
