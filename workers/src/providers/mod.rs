//! Provider connectors: each maps one provider's wire format to plain types and classifies
//! every failure (see [`error::ProviderError`]). Connectors hold no order state.

pub mod attempt;
pub mod error;
pub mod onmeta;

pub use error::ProviderError;
pub use onmeta::{
    CollectBankDetails, CreateOnrampRequest, CreatedOnrampOrder, LinkBankRequest, LinkOutcome,
    LinkStatus, LinkUpiRequest, LinkedBank, LinkedUpi, OnmetaClient, OnmetaConfig, OnrampPayment,
    OnrampStatus, Quote, QuoteRequest, RecentOrder, UtrOutcome,
};
