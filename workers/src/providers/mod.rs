//! Provider connectors: each maps one provider's wire format to plain types and classifies
//! every failure (see [`error::ProviderError`]). Connectors hold no order state.

pub mod attempt;
pub mod budget;
pub mod error;
pub(crate) mod lenient;
pub mod onmeta;
pub mod partner;
pub mod registry;
pub(crate) mod transport;

pub use error::ProviderError;
pub use onmeta::{
    CollectBankDetails, CreateOfframpRequest, CreateOnrampRequest, CreatedOfframpOrder,
    CreatedOnrampOrder, KycStatus, LinkBankRequest, LinkOutcome, LinkStatus, LinkUpiRequest,
    LinkedBank, LinkedUpi, OfframpStatus, OnmetaClient, OnmetaConfig, OnrampPayment, OnrampStatus,
    OrderKind, Quote, QuoteRequest, RecentOrder, SellQuote, SellQuoteRequest, TxHashOutcome,
    UtrOutcome, classify_link_status,
};
