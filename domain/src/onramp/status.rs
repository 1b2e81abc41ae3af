//! The provider's on-ramp status vocabulary (providers.md §1.4).

use super::OnrampState;

/// Every documented on-ramp status, matched by exact case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderStatus {
    FiatPending,
    OrderReceived,
    InProgress,
    FiatReceived,
    Transferred,
    Completed,
    Expired,
    Cancelled,
}

impl ProviderStatus {
    pub const ALL: [ProviderStatus; 8] = [
        ProviderStatus::FiatPending,
        ProviderStatus::OrderReceived,
        ProviderStatus::InProgress,
        ProviderStatus::FiatReceived,
        ProviderStatus::Transferred,
        ProviderStatus::Completed,
        ProviderStatus::Expired,
        ProviderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderStatus::FiatPending => "fiatPending",
            ProviderStatus::OrderReceived => "orderReceived",
            ProviderStatus::InProgress => "InProgress",
            ProviderStatus::FiatReceived => "fiatReceived",
            ProviderStatus::Transferred => "transferred",
            ProviderStatus::Completed => "completed",
            ProviderStatus::Expired => "expired",
            ProviderStatus::Cancelled => "cancelled",
        }
    }

    /// The state this status implies. The middle statuses arrive in either documented
    /// order, so `orderReceived`, `InProgress` and `fiatReceived` all mean "processing".
    pub fn state(self) -> OnrampState {
        match self {
            ProviderStatus::FiatPending => OnrampState::AwaitingPayment,
            ProviderStatus::OrderReceived
            | ProviderStatus::InProgress
            | ProviderStatus::FiatReceived => OnrampState::Processing,
            ProviderStatus::Transferred => OnrampState::Transferred,
            ProviderStatus::Completed => OnrampState::Completed,
            ProviderStatus::Expired => OnrampState::Expired,
            ProviderStatus::Cancelled => OnrampState::Cancelled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Known(ProviderStatus),
    /// Same letters, wrong case (`Completed`, `fiatpending`): recorded and flagged, never
    /// acted on, because the provider's casing is part of its contract.
    NearMiss(ProviderStatus),
    Unknown,
}

pub fn classify_status(raw: &str) -> StatusClass {
    if let Some(s) = ProviderStatus::ALL.into_iter().find(|s| s.as_str() == raw) {
        return StatusClass::Known(s);
    }
    match ProviderStatus::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(raw.trim()))
    {
        Some(s) => StatusClass::NearMiss(s),
        None => StatusClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_case_only() {
        for s in ProviderStatus::ALL {
            assert_eq!(classify_status(s.as_str()), StatusClass::Known(s));
        }
        assert_eq!(
            classify_status("inprogress"),
            StatusClass::NearMiss(ProviderStatus::InProgress)
        );
        assert_eq!(
            classify_status("Completed"),
            StatusClass::NearMiss(ProviderStatus::Completed)
        );
        assert_eq!(classify_status("onHold"), StatusClass::Unknown);
        assert_eq!(classify_status(""), StatusClass::Unknown);
    }
}
