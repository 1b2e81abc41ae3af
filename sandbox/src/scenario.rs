//! Business-scenario knobs of the sandbox (as opposed to transport faults in `faults.rs`):
//! slow KYC, slow or failing bank/UPI links, refunded off-ramp orders, and the off-ramp
//! status progression. All are deterministic (counts, not rates) so that concurrent tests
//! can predict exactly which call sees which behaviour.

/// Settable at start ([`super::SandboxConfig::scenario`]) and at run time
/// ([`super::SandboxHandle::set_scenario`], `PUT /sandbox/scenario`). Fields missing from
/// the JSON take their defaults (all zero: everything verifies and completes at once).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Scenario {
    /// Each user seen for the first time from now on answers this many KYC checks with
    /// `isKycVerified: "false"` and a list of outstanding fulfilments, then is verified.
    /// Until then links and orders are refused.
    pub kyc_pending_checks: u32,
    /// New bank/UPI links answer `pending`; their status endpoint says `pending` this many
    /// times, then `SUCCESS`. Orders need a verified link.
    pub link_pending_polls: u32,
    /// The next N link requests fail with a name-mismatch reason (the account holder's name
    /// differs from the KYC name). Consumed per link request.
    pub link_name_mismatch_next: u32,
    /// The next N off-ramp orders created end `refunded` after `orderReceived`, with the
    /// refund wallet in the status reply. Consumed per created off-ramp order.
    pub refund_next_offramp: u32,
}

/// Off-ramp status polls (after a tx hash was submitted) needed to reach each status;
/// cumulative thresholds. Before a hash the status is `pending` (create answers
/// `cryptoInit`, as the provider docs do). Default: 1, None, 2, 3, 4.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OfframpProgression {
    pub order_received: u32,
    /// `InProgress` (a swap, for non-base tokens at the real provider); `None` skips it.
    pub in_progress: Option<u32>,
    pub crypto_received: u32,
    pub payout_success: u32,
    pub completed: u32,
}

impl Default for OfframpProgression {
    fn default() -> Self {
        OfframpProgression {
            order_received: 1,
            in_progress: None,
            crypto_received: 2,
            payout_success: 3,
            completed: 4,
        }
    }
}

impl OfframpProgression {
    /// Thresholds do not decrease (`in_progress`, when set, lies between `order_received`
    /// and `crypto_received`).
    pub(crate) fn is_ordered(&self) -> bool {
        let in_progress_ok = self
            .in_progress
            .is_none_or(|n| self.order_received <= n && n <= self.crypto_received);
        in_progress_ok
            && self.order_received <= self.crypto_received
            && self.crypto_received <= self.payout_success
            && self.payout_success <= self.completed
    }
}

/// Every off-ramp status the provider documents (`providers.md` §1.4), exact case.
pub const KNOWN_OFFRAMP_STATUSES: &[&str] = &[
    "cryptoInit",
    "pending",
    "orderReceived",
    "InProgress",
    "CryptoReceived",
    "PayoutSuccess",
    "refunded",
    "completed",
];

pub(crate) const OFFRAMP_CREATED: &str = "cryptoInit";
pub(crate) const OFFRAMP_PENDING: &str = "pending";
pub(crate) const OFFRAMP_REFUNDED: &str = "refunded";
pub(crate) const OFFRAMP_COMPLETED: &str = "completed";
pub(crate) const OFFRAMP_PAYOUT_SUCCESS: &str = "PayoutSuccess";

/// Status reached after `polls` status calls since the tx hash. A refunded order goes
/// `orderReceived` → `refunded` (at the `crypto_received` threshold: the received crypto
/// failed validation).
pub(crate) fn offramp_progressed_status(
    p: &OfframpProgression,
    polls: u32,
    refund: bool,
) -> &'static str {
    if refund && polls >= p.crypto_received {
        OFFRAMP_REFUNDED
    } else if !refund && polls >= p.completed {
        OFFRAMP_COMPLETED
    } else if !refund && polls >= p.payout_success {
        OFFRAMP_PAYOUT_SUCCESS
    } else if !refund && polls >= p.crypto_received {
        "CryptoReceived"
    } else if !refund && p.in_progress.is_some_and(|n| polls >= n) {
        "InProgress"
    } else if polls >= p.order_received {
        "orderReceived"
    } else {
        OFFRAMP_PENDING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offramp_progression_follows_thresholds() {
        let p = OfframpProgression::default();
        let seq: Vec<_> = (0..6)
            .map(|n| offramp_progressed_status(&p, n, false))
            .collect();
        assert_eq!(
            seq,
            [
                "pending",
                "orderReceived",
                "CryptoReceived",
                "PayoutSuccess",
                "completed",
                "completed"
            ]
        );
        let refunded: Vec<_> = (0..4)
            .map(|n| offramp_progressed_status(&p, n, true))
            .collect();
        assert_eq!(
            refunded,
            ["pending", "orderReceived", "refunded", "refunded"]
        );
        let p = OfframpProgression {
            in_progress: Some(2),
            crypto_received: 3,
            payout_success: 4,
            completed: 5,
            ..OfframpProgression::default()
        };
        assert_eq!(offramp_progressed_status(&p, 2, false), "InProgress");
        assert!(p.is_ordered() && OfframpProgression::default().is_ordered());
        let bad = OfframpProgression {
            payout_success: 6,
            ..p
        };
        assert!(!bad.is_ordered());
    }
}
