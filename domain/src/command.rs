//! Commands that upstream services send, parsed into validated domain types.
//!
//! A command arrives as JSON on `ramp.cmd.<tenant>.<command>`. [`CommandName`] is taken
//! from the subject; [`parse_command`] turns the body into a [`Command`] or a
//! [`CommandError`] that names the offending field without echoing its value (which may be
//! PII).

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::chain_values::{TokenAmount, WalletAddress};
use crate::order::{Input, OrderRequest};
use crate::provider::ProviderName;
use crate::supported_chains::{SupportedChains, refuse_chain};
use crate::values::{
    AmountLimits, BankAccountNumber, ChainFamily, ChainId, Email, EvmAddress, Ifsc, InrAmount, Pan,
    PersonName, Phone, TokenSymbol, UpiId, Utr, ValueError,
};

/// The command part of a command subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandName {
    OnrampCreate,
    OnrampUtr,
    OfframpCreate,
    OfframpTxHash,
    MintCreate,
    RedeemCreate,
    RedeemPayout,
    OrderCancel,
}

impl CommandName {
    pub const ALL: [CommandName; 8] = [
        CommandName::OnrampCreate,
        CommandName::OnrampUtr,
        CommandName::OfframpCreate,
        CommandName::OfframpTxHash,
        CommandName::MintCreate,
        CommandName::RedeemCreate,
        CommandName::RedeemPayout,
        CommandName::OrderCancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::OnrampCreate => "onramp.create",
            CommandName::OnrampUtr => "onramp.utr",
            CommandName::OfframpCreate => "offramp.create",
            CommandName::OfframpTxHash => "offramp.txhash",
            CommandName::MintCreate => "mint.create",
            CommandName::RedeemCreate => "redeem.create",
            CommandName::RedeemPayout => "redeem.payout",
            CommandName::OrderCancel => "order.cancel",
        }
    }

    pub fn parse(s: &str) -> Option<CommandName> {
        CommandName::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// A command that creates an order.
    pub fn creates(self) -> bool {
        matches!(
            self,
            CommandName::OnrampCreate
                | CommandName::OfframpCreate
                | CommandName::MintCreate
                | CommandName::RedeemCreate
        )
    }
}

/// Why a command was refused: the stable, machine-readable `code` of a
/// `command_rejected` event. Every code rampd can send is listed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// The body is not a command object (answered only when it still names its ids).
    Malformed,
    /// A field is missing or has the wrong type.
    InvalidSchema,
    /// A field's value does not parse.
    InvalidField,
    /// A create for an order id the tenant already has.
    OrderExists,
    /// The command names no order of this tenant.
    OrderNotFound,
    /// The order is in a terminal state.
    OrderClosed,
    /// A different UTR was already received for the order.
    UtrAlreadySet,
    /// The UTR is recorded on another order.
    UtrInUse,
    /// The provider already has the payment; no UTR is needed.
    OrderAlreadyPaid,
    /// A cancel after the user said they paid.
    PaymentClaimed,
    /// A cancel while the payment is being processed.
    PaymentInProgress,
    /// The command does not apply to the order's direction (a UTR for an off-ramp order).
    NotApplicable,
    /// The transaction hash does not fit the order's chain.
    InvalidTxHash,
    /// A different transaction hash was already received for the order.
    TxHashAlreadySet,
    /// The transaction hash is recorded on another order.
    TxHashInUse,
    /// The `Nats-Msg-Id` is not `<tenant>.<command_id>` of this command's subject and body.
    MsgIdMismatch,
    /// The command id was used before, by this tenant, for a different command body.
    CommandIdReused,
    /// The UTR or transaction hash cannot be used for this order. Said when another
    /// tenant's order holds it; deliberately names nothing about that order.
    PaymentRefUnavailable,
    /// The chain is not one the provider supports (or, for an on-ramp, not an EVM chain).
    UnsupportedChain,
    /// A redeem's payout was already reported under a different reference.
    PayoutAlreadySet,
}

impl RejectCode {
    pub const ALL: [RejectCode; 20] = [
        RejectCode::Malformed,
        RejectCode::InvalidSchema,
        RejectCode::InvalidField,
        RejectCode::OrderExists,
        RejectCode::OrderNotFound,
        RejectCode::OrderClosed,
        RejectCode::UtrAlreadySet,
        RejectCode::UtrInUse,
        RejectCode::OrderAlreadyPaid,
        RejectCode::PaymentClaimed,
        RejectCode::PaymentInProgress,
        RejectCode::NotApplicable,
        RejectCode::InvalidTxHash,
        RejectCode::TxHashAlreadySet,
        RejectCode::TxHashInUse,
        RejectCode::MsgIdMismatch,
        RejectCode::CommandIdReused,
        RejectCode::PaymentRefUnavailable,
        RejectCode::UnsupportedChain,
        RejectCode::PayoutAlreadySet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Malformed => "malformed",
            RejectCode::InvalidSchema => "invalid_schema",
            RejectCode::InvalidField => "invalid_field",
            RejectCode::OrderExists => "order_exists",
            RejectCode::OrderNotFound => "order_not_found",
            RejectCode::OrderClosed => "order_closed",
            RejectCode::UtrAlreadySet => "utr_already_set",
            RejectCode::UtrInUse => "utr_in_use",
            RejectCode::OrderAlreadyPaid => "order_already_paid",
            RejectCode::PaymentClaimed => "payment_claimed",
            RejectCode::PaymentInProgress => "payment_in_progress",
            RejectCode::NotApplicable => "not_applicable",
            RejectCode::InvalidTxHash => "invalid_tx_hash",
            RejectCode::TxHashAlreadySet => "tx_hash_already_set",
            RejectCode::TxHashInUse => "tx_hash_in_use",
            RejectCode::MsgIdMismatch => "msg_id_mismatch",
            RejectCode::CommandIdReused => "command_id_reused",
            RejectCode::PaymentRefUnavailable => "payment_ref_unavailable",
            RejectCode::PayoutAlreadySet => "payout_already_set",
            RejectCode::UnsupportedChain => "unsupported_chain",
        }
    }
}

impl std::fmt::Display for RejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RejectCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Identifiers every command carries; available even when the rest of the body is invalid,
/// so a rejection can name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandIds {
    pub command_id: String,
    pub order_id: String,
}

/// Why a command was refused before it reached an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not JSON, or without a usable `command_id`/`order_id`: nothing to answer to.
    #[error("malformed command: {0}")]
    Malformed(String),
    /// Well-formed but a field is missing or has the wrong type.
    #[error("invalid command: {0}")]
    Schema(String),
    /// A field's value does not parse.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The chain parses but no order can be placed on it.
    #[error("unsupported chain_id: {0}")]
    UnsupportedChain(&'static str),
}

impl CommandError {
    /// The code a rejection event carries.
    pub fn code(&self) -> RejectCode {
        match self {
            CommandError::Malformed(_) => RejectCode::Malformed,
            CommandError::Schema(_) => RejectCode::InvalidSchema,
            CommandError::Invalid { .. } => RejectCode::InvalidField,
            CommandError::UnsupportedChain(_) => RejectCode::UnsupportedChain,
        }
    }
}

impl CommandError {
    /// The reason without the field name.
    fn reason(self) -> String {
        match self {
            CommandError::Invalid { reason, .. } => reason,
            other => other.to_string(),
        }
    }
}

impl From<ValueError> for CommandError {
    fn from(e: ValueError) -> Self {
        let field = e.field();
        let reason = match e {
            ValueError::Invalid { reason, .. } => reason.to_string(),
            ValueError::OutOfRange { reason, .. } => format!("out of range: {reason}"),
        };
        CommandError::Invalid { field, reason }
    }
}

/// The user on whose behalf the order runs (the provider account is keyed by email).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct User {
    pub email: Email,
    pub name: PersonName,
    pub phone: Phone,
    #[serde(default)]
    pub pan: Option<Pan>,
}

/// How the user pays fiat for an on-ramp order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum PaymentMethod {
    /// UPI collect from this VPA (provider mode `INR_UPI`).
    Upi { upi_id: UpiId },
    /// Bank transfer from this account (provider mode `INR_IMPS`).
    Imps {
        account_number: BankAccountNumber,
        account_name: PersonName,
        ifsc: Ifsc,
    },
}

impl PaymentMethod {
    pub fn provider_mode(&self) -> &'static str {
        match self {
            PaymentMethod::Upi { .. } => "INR_UPI",
            PaymentMethod::Imps { .. } => "INR_IMPS",
        }
    }
}

/// A validated on-ramp order request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct OnrampRequest {
    pub user: User,
    pub fiat_amount: InrAmount,
    pub token: TokenSymbol,
    pub chain_id: ChainId,
    #[serde(default)]
    pub token_address: Option<EvmAddress>,
    pub receiver_address: EvmAddress,
    pub payment: PaymentMethod,
    /// See [`OfframpRequest::max_price_change_pct`].
    #[serde(default)]
    pub max_price_change_pct: Option<Decimal>,
}

/// The bank account an off-ramp pays out to. rampd links it at the provider when it is
/// not linked yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct PayoutAccount {
    pub account_number: BankAccountNumber,
    pub account_name: PersonName,
    pub ifsc: Ifsc,
}

/// A validated off-ramp order request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct OfframpRequest {
    pub user: User,
    pub token: TokenSymbol,
    /// A chain whose address and hash formats rampd knows.
    pub chain_id: ChainId,
    /// Exactly this many tokens are sold.
    pub token_amount: TokenAmount,
    #[serde(default)]
    pub token_address: Option<WalletAddress>,
    /// The wallet the tokens come from.
    pub sender_address: WalletAddress,
    /// Where the provider returns the tokens if it refunds.
    pub refund_address: WalletAddress,
    pub bank: PayoutAccount,
    /// The largest move of the conversion rate, in percent, between the first quote and
    /// the one the order is created with; a larger move fails the order (`price_moved`).
    #[serde(default)]
    pub max_price_change_pct: Option<Decimal>,
}

/// A wallet at the Partner API, where tokens go: a mint's user, a redeem's tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "type", content = "identifier", rename_all = "snake_case")]
pub enum PartnerWallet {
    /// A namespace of the Partner API (`CUSTOM NAMESPACE`, such as `alice.ul`).
    CustomNamespace(Namespace),
    /// An address on the Partner API's chain (`WALLET ADDRESS`).
    WalletAddress(EvmAddress),
}

impl PartnerWallet {
    /// The identifier as the provider's history names the wallet.
    pub fn identifier(&self) -> &str {
        match self {
            PartnerWallet::CustomNamespace(n) => n.as_str(),
            PartnerWallet::WalletAddress(a) => a.as_str(),
        }
    }
}

/// A Partner API namespace: 1–128 characters of lower-case letters, digits, `.`, `-` and
/// `_` (the documents show names like `itech.sheetalus.ul`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Namespace(String);

impl Namespace {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim().to_ascii_lowercase();
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
        if !ok {
            return Err(ValueError::invalid(
                "wallet_identifier",
                "must be 1-128 letters, digits, '.', '-' or '_'",
            ));
        }
        Ok(Namespace(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Namespace {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        Namespace::parse(&s)
    }
}

impl From<Namespace> for String {
    fn from(n: Namespace) -> String {
        n.0
    }
}

/// A validated mint request (fiat the tenant holds → stablecoin minted to the user's
/// wallet at the Partner API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct MintRequest {
    /// Tokens to mint (the provider's `amount`).
    pub amount: TokenAmount,
    pub token: TokenSymbol,
    pub wallet: PartnerWallet,
}

/// A validated redeem request (stablecoin the user sends on chain → fiat the tenant's
/// treasury pays out to a transfer method, reported to the Partner API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct RedeemRequest {
    /// Tokens the user sends (exactly).
    pub amount: TokenAmount,
    pub token: TokenSymbol,
    /// The wallet the user sends them to (the tenant's).
    pub wallet: PartnerWallet,
    /// What the treasury pays out.
    pub fiat: FiatPayout,
}

/// The fiat side of a redeem: how much, in which currency, to which transfer method.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct FiatPayout {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// ISO 4217, upper case (`USD`).
    pub symbol: String,
    /// The payout destination (`/offchainTransaction/transfer-method`: ACH or card).
    pub transfer_method_id: String,
}

/// The most significant digits a mint amount may have: the Partner API takes amounts as
/// JSON numbers, which are doubles on the other side, and a longer amount could arrive
/// rounded.
pub const MINT_AMOUNT_DIGITS: u32 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateOnramp(Box<OnrampRequest>),
    CreateOfframp(Box<OfframpRequest>),
    CreateMint(Box<MintRequest>),
    CreateRedeem(Box<RedeemRequest>),
    /// The tenant's treasury paid a redeem's fiat: its payout reference.
    ReportPayout {
        reference: String,
    },
    SubmitUtr {
        utr: Utr,
    },
    /// Raw: only the order knows its chain, so the hash is parsed when applied to it.
    SubmitTxHash {
        hash: String,
    },
    Cancel {
        reason: Option<String>,
    },
}

/// What a command asks of the order machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Create an order.
    New(Box<OrderRequest>),
    /// Feed this input to the order the command names.
    Existing(Input),
}

impl Command {
    pub fn target(self) -> Target {
        match self {
            Command::CreateOnramp(r) => Target::New(Box::new(OrderRequest::Onramp(*r))),
            Command::CreateOfframp(r) => Target::New(Box::new(OrderRequest::Offramp(*r))),
            Command::CreateMint(r) => Target::New(Box::new(OrderRequest::Mint(*r))),
            Command::CreateRedeem(r) => Target::New(Box::new(OrderRequest::Redeem(*r))),
            Command::ReportPayout { reference } => {
                Target::Existing(Input::PayoutReported { reference })
            }
            Command::SubmitUtr { utr } => Target::Existing(Input::SubmitUtr { utr }),
            Command::SubmitTxHash { hash } => Target::Existing(Input::SubmitTxHash { hash }),
            Command::Cancel { reason } => Target::Existing(Input::Cancel { reason }),
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    command_id: serde_json::Value,
    order_id: serde_json::Value,
}

fn id_field(v: &serde_json::Value, name: &str) -> Result<String, CommandError> {
    let s = match v {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(CommandError::Malformed(format!("{name} must be a string"))),
    };
    if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_control() || c == '.') {
        return Err(CommandError::Malformed(format!(
            "{name} must be 1-128 printable characters without '.'"
        )));
    }
    Ok(s)
}

/// Read the identifiers only. Fails with [`CommandError::Malformed`] when there is no
/// command id or order id to answer to: such a message goes to the dead-letter subject.
pub fn parse_ids(body: &[u8]) -> Result<CommandIds, CommandError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        CommandError::Malformed(format!("not a command object: {}", e.classify_name()))
    })?;
    Ok(CommandIds {
        command_id: id_field(&env.command_id, "command_id")?,
        order_id: id_field(&env.order_id, "order_id")?,
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing command_id or order_id",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[derive(Deserialize)]
struct RawCreate {
    user: serde_json::Value,
    fiat_amount: serde_json::Value,
    token: String,
    chain_id: serde_json::Value,
    #[serde(default)]
    token_address: Option<String>,
    receiver_address: String,
    payment: serde_json::Value,
    #[serde(default)]
    max_price_change_pct: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawOfframpCreate {
    user: serde_json::Value,
    token: String,
    chain_id: serde_json::Value,
    token_amount: serde_json::Value,
    #[serde(default)]
    token_address: Option<String>,
    sender_address: String,
    refund_address: String,
    bank: serde_json::Value,
    #[serde(default)]
    max_price_change_pct: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawMintCreate {
    amount: serde_json::Value,
    token: String,
    wallet_identifier: String,
    wallet_identifier_type: WalletIdentifierType,
}

#[derive(Deserialize)]
struct RawRedeemCreate {
    amount: serde_json::Value,
    token: String,
    wallet_identifier: String,
    wallet_identifier_type: WalletIdentifierType,
    fiat_amount: serde_json::Value,
    fiat_symbol: String,
    transfer_method_id: String,
}

#[derive(Deserialize)]
struct RawPayout {
    payout_reference: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WalletIdentifierType {
    CustomNamespace,
    WalletAddress,
}

/// The `provider` a create names, from its parsed body (`None` when it names none).
fn provider_of(value: &serde_json::Value) -> Result<Option<ProviderName>, CommandError> {
    match value.get("provider") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(p)) => Ok(Some(ProviderName::parse(p.trim())?)),
        Some(_) => Err(CommandError::Malformed("provider must be a string".into())),
    }
}

#[derive(Deserialize)]
struct RawTxHash {
    tx_hash: String,
}

#[derive(Deserialize)]
struct RawUtr {
    utr: String,
}

#[derive(Deserialize)]
struct RawCancel {
    #[serde(default)]
    reason: Option<String>,
}

/// An amount the Partner API takes: a token amount of at most `max_decimals` places and
/// [`MINT_AMOUNT_DIGITS`] significant digits (it arrives there as a double).
fn partner_amount(
    v: &serde_json::Value,
    field: &'static str,
    max_decimals: u32,
) -> Result<TokenAmount, CommandError> {
    let invalid = |reason: String| CommandError::Invalid { field, reason };
    let amount = TokenAmount::parse(&decimal_text(v, field)?)
        .map_err(|e| invalid(CommandError::from(e).reason()))?;
    if significant_digits(amount.value()) > MINT_AMOUNT_DIGITS {
        return Err(invalid(format!(
            "must have at most {MINT_AMOUNT_DIGITS} significant digits"
        )));
    }
    if amount.value().normalize().scale() > max_decimals {
        return Err(invalid(format!(
            "must have at most {max_decimals} decimal places"
        )));
    }
    Ok(amount)
}

fn partner_wallet(
    identifier: &str,
    kind: WalletIdentifierType,
) -> Result<PartnerWallet, CommandError> {
    Ok(match kind {
        WalletIdentifierType::CustomNamespace => {
            PartnerWallet::CustomNamespace(Namespace::parse(identifier)?)
        }
        WalletIdentifierType::WalletAddress => {
            PartnerWallet::WalletAddress(EvmAddress::parse(identifier).map_err(|e| {
                CommandError::Invalid {
                    field: "wallet_identifier",
                    reason: CommandError::from(e).reason(),
                }
            })?)
        }
    })
}

/// An opaque reference of the tenant's (a transfer method id, a payout reference): 1–128
/// printable characters, kept as given (trimmed).
fn reference_text(s: &str, field: &'static str) -> Result<String, CommandError> {
    let t = s.trim();
    if t.is_empty() || t.len() > 128 || t.chars().any(char::is_control) {
        return Err(CommandError::Invalid {
            field,
            reason: "must be 1-128 printable characters".into(),
        });
    }
    Ok(t.to_string())
}

/// Digits of `d` without leading or trailing zeros (`0.0250` has 2).
fn significant_digits(d: Decimal) -> u32 {
    let digits = d.normalize().mantissa().unsigned_abs().to_string();
    digits.trim_start_matches('0').len() as u32
}

/// Turn a serde error into a schema error that never quotes the input.
fn schema(e: serde_json::Error) -> CommandError {
    let text = e.to_string();
    let text = text.split(" at line").next().unwrap_or("");
    if text.starts_with("invalid") {
        CommandError::Schema(redact_quoted(text))
    } else {
        // "missing field `x`", "unknown variant `y`, expected ...": names, not values.
        CommandError::Schema(text.to_string())
    }
}

/// serde quotes offending input in backticks or double quotes ("invalid type: integer
/// `9876543210`"); that input may be a phone number or PAN, so quoted runs are dropped.
fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push_str("<redacted>");
            }
            Some(_) => {}
            None if c == '`' || c == '"' => quote = Some(c),
            None => out.push(c),
        }
    }
    out
}

fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CommandError> {
    serde_json::from_value(v).map_err(schema)
}

/// A decimal given as a JSON string or number, as text.
fn decimal_text(v: &serde_json::Value, field: &'static str) -> Result<String, CommandError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(CommandError::Invalid {
            field,
            reason: "must be a decimal string".into(),
        }),
    }
}

/// `max_price_change_pct`: a percentage in `(0, 100]`.
fn percent(v: Option<&serde_json::Value>) -> Result<Option<Decimal>, CommandError> {
    const FIELD: &str = "max_price_change_pct";
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let invalid = || CommandError::Invalid {
        field: FIELD,
        reason: "must be a percentage above 0 and at most 100".into(),
    };
    let d: Decimal = decimal_text(v, FIELD)?
        .trim()
        .parse()
        .map_err(|_| invalid())?;
    if d <= Decimal::ZERO || d > Decimal::ONE_HUNDRED {
        return Err(invalid());
    }
    Ok(Some(d))
}

/// What a create must stay within: the fiat amount bounds and the chains orders may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLimits {
    pub amounts: AmountLimits,
    pub chains: SupportedChains,
}

/// The chain of a create, refused unless orders can be placed on it.
fn supported(
    limits: &CommandLimits,
    raw: serde_json::Value,
    needs: Option<ChainFamily>,
) -> Result<ChainId, CommandError> {
    let chain_id: ChainId = typed(raw)?;
    match refuse_chain(&limits.chains, chain_id, needs) {
        Some(reason) => Err(CommandError::UnsupportedChain(reason)),
        None => Ok(chain_id),
    }
}

/// Parse a command body for a command name taken from the subject.
pub fn parse_command(
    name: CommandName,
    body: &[u8],
    limits: &CommandLimits,
) -> Result<Command, CommandError> {
    parse_command_at(name, body, limits).map(|(command, _)| command)
}

/// [`parse_command`], and the provider a create names in `provider` (one parse of the
/// body). Only a create reads the field: an order never changes provider, so a later
/// command's `provider` is ignored.
pub fn parse_command_at(
    name: CommandName,
    body: &[u8],
    limits: &CommandLimits,
) -> Result<(Command, Option<ProviderName>), CommandError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| CommandError::Malformed(e.classify_name().into()))?;
    let provider = name.creates().then(|| provider_of(&value));
    let command = parse_value(name, value, limits)?;
    Ok((command, provider.transpose()?.flatten()))
}

fn parse_value(
    name: CommandName,
    value: serde_json::Value,
    limits: &CommandLimits,
) -> Result<Command, CommandError> {
    match name {
        CommandName::OnrampCreate => {
            let raw: RawCreate = typed(value)?;
            let amount_text = decimal_text(&raw.fiat_amount, "fiat_amount")?;
            let chain_id = supported(limits, raw.chain_id, Some(ChainFamily::Evm))?;
            Ok(Command::CreateOnramp(Box::new(OnrampRequest {
                user: typed(raw.user)?,
                fiat_amount: InrAmount::parse_within(&amount_text, &limits.amounts)?,
                token: TokenSymbol::parse(&raw.token)?,
                chain_id,
                token_address: raw
                    .token_address
                    .as_deref()
                    .map(EvmAddress::parse)
                    .transpose()?,
                receiver_address: EvmAddress::parse(&raw.receiver_address)?,
                payment: typed(raw.payment)?,
                max_price_change_pct: percent(raw.max_price_change_pct.as_ref())?,
            })))
        }
        CommandName::OfframpCreate => {
            let raw: RawOfframpCreate = typed(value)?;
            let chain_id = supported(limits, raw.chain_id, None)?;
            // Supported chains are all of a known family.
            let Some(family) = chain_id.family() else {
                return Err(CommandError::UnsupportedChain(
                    "not a chain whose address and hash formats rampd knows",
                ));
            };
            let address = |field: &'static str, s: &str| {
                WalletAddress::parse(family, s).map_err(|e| CommandError::Invalid {
                    field,
                    reason: CommandError::from(e).reason(),
                })
            };
            let amount_text = decimal_text(&raw.token_amount, "token_amount")?;
            Ok(Command::CreateOfframp(Box::new(OfframpRequest {
                user: typed(raw.user)?,
                token: TokenSymbol::parse(&raw.token)?,
                chain_id,
                token_amount: TokenAmount::parse(&amount_text)?,
                token_address: raw
                    .token_address
                    .as_deref()
                    .map(|a| address("token_address", a))
                    .transpose()?,
                sender_address: address("sender_address", &raw.sender_address)?,
                refund_address: address("refund_address", &raw.refund_address)?,
                bank: typed(raw.bank)?,
                max_price_change_pct: percent(raw.max_price_change_pct.as_ref())?,
            })))
        }
        CommandName::MintCreate => {
            let raw: RawMintCreate = typed(value)?;
            Ok(Command::CreateMint(Box::new(MintRequest {
                amount: partner_amount(&raw.amount, "amount", TokenAmount::MAX_DECIMALS)?,
                token: TokenSymbol::parse(&raw.token)?,
                wallet: partner_wallet(&raw.wallet_identifier, raw.wallet_identifier_type)?,
            })))
        }
        CommandName::RedeemCreate => {
            let raw: RawRedeemCreate = typed(value)?;
            let fiat = partner_amount(&raw.fiat_amount, "fiat_amount", 2)?;
            let symbol = raw.fiat_symbol.trim();
            if symbol.len() != 3 || !symbol.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(CommandError::Invalid {
                    field: "fiat_symbol",
                    reason: "must be an ISO 4217 code such as USD".into(),
                });
            }
            Ok(Command::CreateRedeem(Box::new(RedeemRequest {
                amount: partner_amount(&raw.amount, "amount", TokenAmount::MAX_DECIMALS)?,
                token: TokenSymbol::parse(&raw.token)?,
                wallet: partner_wallet(&raw.wallet_identifier, raw.wallet_identifier_type)?,
                fiat: FiatPayout {
                    // Cents, always written with both places.
                    amount: {
                        let mut cents = fiat.value();
                        cents.rescale(2);
                        cents
                    },
                    symbol: symbol.to_string(),
                    transfer_method_id: reference_text(
                        &raw.transfer_method_id,
                        "transfer_method_id",
                    )?,
                },
            })))
        }
        CommandName::RedeemPayout => {
            let raw: RawPayout = typed(value)?;
            Ok(Command::ReportPayout {
                reference: reference_text(&raw.payout_reference, "payout_reference")?,
            })
        }
        CommandName::OfframpTxHash => {
            let raw: RawTxHash = typed(value)?;
            let hash: String = raw.tx_hash.chars().take(200).collect();
            Ok(Command::SubmitTxHash { hash })
        }
        CommandName::OnrampUtr => {
            let raw: RawUtr = typed(value)?;
            Ok(Command::SubmitUtr {
                utr: Utr::parse(&raw.utr)?,
            })
        }
        CommandName::OrderCancel => {
            let raw: RawCancel = typed(value)?;
            let reason = raw
                .reason
                .map(|r| r.chars().filter(|c| !c.is_control()).take(200).collect());
            Ok(Command::Cancel { reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create_body() -> serde_json::Value {
        json!({
            "command_id": "c-1", "order_id": "o-1",
            "user": {"email": "asha@example.com", "name": "Asha Rao", "phone": "9876543210", "pan": "ABCDE1234F"},
            "fiat_amount": "1500.00", "token": "USDT", "chain_id": 137,
            "receiver_address": "0x1111111111111111111111111111111111111111",
            "payment": {"mode": "upi", "upi_id": "asha@okaxis"}
        })
    }

    fn parse(name: CommandName, v: &serde_json::Value) -> Result<Command, CommandError> {
        parse_command(name, v.to_string().as_bytes(), &CommandLimits::default())
    }

    #[test]
    fn reject_codes_are_distinct_snake_case() {
        let names: std::collections::BTreeSet<_> =
            RejectCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), RejectCode::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }

    #[test]
    fn command_names_round_trip() {
        for c in CommandName::ALL {
            assert_eq!(CommandName::parse(c.as_str()), Some(c));
        }
        assert_eq!(CommandName::parse("onramp.delete"), None);
    }

    #[test]
    fn ids_are_required() {
        assert!(parse_ids(br#"{"command_id":"a","order_id":"b"}"#).is_ok());
        assert_eq!(
            parse_ids(br#"{"command_id":7,"order_id":"b"}"#)
                .unwrap()
                .command_id,
            "7"
        );
        for bad in [
            &b"not json"[..],
            br#"{"order_id":"b"}"#,
            br#"{"command_id":"","order_id":"b"}"#,
            br#"{"command_id":"a.b","order_id":"b"}"#,
            br#"{"command_id":"a","order_id":{}}"#,
            br#"[]"#,
        ] {
            assert!(
                matches!(parse_ids(bad), Err(CommandError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parses_a_valid_upi_create() {
        let Command::CreateOnramp(req) = parse(CommandName::OnrampCreate, &create_body()).unwrap()
        else {
            panic!("wrong command");
        };
        assert_eq!(req.payment.provider_mode(), "INR_UPI");
        assert_eq!(req.fiat_amount.to_string(), "1500.00");
    }

    #[test]
    fn parses_an_imps_create_with_numeric_amount() {
        let mut b = create_body();
        b["fiat_amount"] = json!(2500);
        b["payment"] = json!({"mode": "imps", "account_number": "50100012345678", "account_name": "Asha Rao", "ifsc": "hdfc0001234"});
        let Command::CreateOnramp(req) = parse(CommandName::OnrampCreate, &b).unwrap() else {
            panic!()
        };
        assert_eq!(req.payment.provider_mode(), "INR_IMPS");
    }

    #[test]
    fn invalid_fields_are_named_without_their_values() {
        let cases = [
            ("fiat_amount", json!("-5")),
            ("fiat_amount", json!("10.001")),
            ("receiver_address", json!("0x123")),
            ("token", json!("")),
        ];
        for (field, value) in cases {
            let mut b = create_body();
            b[field] = value;
            let err = parse(CommandName::OnrampCreate, &b).unwrap_err();
            assert!(
                matches!(err, CommandError::Invalid { .. }),
                "{field}: {err:?}"
            );
        }
        let mut b = create_body();
        b["user"]["pan"] = json!("NOTAPAN99");
        let err = parse(CommandName::OnrampCreate, &b).unwrap_err();
        assert!(!err.to_string().contains("NOTAPAN99"), "{err}");
        let mut b = create_body();
        b["user"]["phone"] = json!(9876543210u64);
        let err = parse(CommandName::OnrampCreate, &b).unwrap_err();
        assert!(!err.to_string().contains("9876543210"), "{err}");
        let mut b = create_body();
        b["payment"] = json!({"mode": "cash"});
        assert!(matches!(
            parse(CommandName::OnrampCreate, &b),
            Err(CommandError::Schema(_))
        ));
    }

    #[test]
    fn utr_and_cancel() {
        let ok = json!({"command_id": "c", "order_id": "o", "utr": " 412345678901 "});
        assert!(matches!(
            parse(CommandName::OnrampUtr, &ok),
            Ok(Command::SubmitUtr { .. })
        ));
        let bad = json!({"command_id": "c", "order_id": "o", "utr": "12345"});
        let err = parse(CommandName::OnrampUtr, &bad).unwrap_err();
        assert!(matches!(err, CommandError::Invalid { field: "utr", .. }));
        assert_eq!(err.to_string().matches("invalid utr").count(), 1, "{err}");
        let missing = json!({"command_id": "c", "order_id": "o"});
        assert!(matches!(
            parse(CommandName::OnrampUtr, &missing),
            Err(CommandError::Schema(_))
        ));
        let cancel =
            json!({"command_id": "c", "order_id": "o", "reason": "user\u{0007} changed mind"});
        assert_eq!(
            parse(CommandName::OrderCancel, &cancel).unwrap(),
            Command::Cancel {
                reason: Some("user changed mind".into())
            }
        );
    }

    fn offramp_body() -> serde_json::Value {
        json!({
            "command_id": "c-2", "order_id": "o-2",
            "user": {"email": "asha@example.com", "name": "Asha Rao", "phone": "9876543210", "pan": "ABCDE1234F"},
            "token": "USDT", "chain_id": 137, "token_amount": "25.50",
            "sender_address": "0x3333333333333333333333333333333333333333",
            "refund_address": "0x4444444444444444444444444444444444444444",
            "bank": {"account_number": "123456789012", "account_name": "Asha Rao", "ifsc": "HDFC0001234"},
            "max_price_change_pct": "2.5"
        })
    }

    #[test]
    fn parses_an_offramp_create() {
        let Command::CreateOfframp(r) = parse(CommandName::OfframpCreate, &offramp_body()).unwrap()
        else {
            panic!("not an off-ramp create");
        };
        assert_eq!(r.token_amount.value(), "25.5".parse().unwrap());
        assert_eq!(r.max_price_change_pct, Some("2.5".parse().unwrap()));
        assert_eq!(r.bank.ifsc.as_str(), "HDFC0001234");
        assert_eq!(r.chain_id.family(), Some(crate::values::ChainFamily::Evm));
    }

    #[test]
    fn offramp_create_refusals_name_the_field() {
        let cases: [(&str, serde_json::Value, &str); 5] = [
            (
                "sender_address",
                json!("TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"),
                "sender_address",
            ),
            ("refund_address", json!("0x12"), "refund_address"),
            ("token_amount", json!("-1"), "token_amount"),
            ("max_price_change_pct", json!("150"), "max_price_change_pct"),
            ("max_price_change_pct", json!("0"), "max_price_change_pct"),
        ];
        for (key, value, field) in cases {
            let mut body = offramp_body();
            body[key] = value.clone();
            match parse(CommandName::OfframpCreate, &body) {
                Err(CommandError::Invalid { field: f, reason }) => {
                    assert_eq!(f, field, "{key}");
                    assert!(
                        !reason.contains(&value.to_string().trim_matches('"').to_string())
                            || value.to_string().len() < 4,
                        "{reason}"
                    );
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        let mut body = offramp_body();
        body.as_object_mut().unwrap().remove("bank");
        assert!(matches!(
            parse(CommandName::OfframpCreate, &body),
            Err(CommandError::Schema(_))
        ));
    }

    #[test]
    fn creates_on_unsupported_chains_are_refused_with_their_own_code() {
        let huge = json!(12345678901234567890u64);
        let cases = [
            (CommandName::OnrampCreate, create_body(), huge.clone()),
            (CommandName::OnrampCreate, create_body(), json!(999999)),
            // An on-ramp delivers to an EVM address: Tron is a chain, but not for this.
            (CommandName::OnrampCreate, create_body(), json!(728126428)),
            (CommandName::OfframpCreate, offramp_body(), huge),
            (CommandName::OfframpCreate, offramp_body(), json!("999999")),
        ];
        for (name, mut body, chain) in cases {
            body["chain_id"] = chain.clone();
            let err = parse(name, &body).unwrap_err();
            assert_eq!(err.code(), RejectCode::UnsupportedChain, "{name:?} {chain}");
            let text = err.to_string();
            assert!(text.contains("chain_id"), "names the field: {text}");
            assert!(
                !text.contains(chain.to_string().trim_matches('"')),
                "{text}"
            );
        }
        // A chain the operator did not list is refused even when rampd knows it.
        let polygon_only = CommandLimits {
            chains: SupportedChains::new([137]).unwrap(),
            ..CommandLimits::default()
        };
        let mut body = create_body();
        let bytes = |b: &serde_json::Value| b.to_string().into_bytes();
        assert!(parse_command(CommandName::OnrampCreate, &bytes(&body), &polygon_only).is_ok());
        body["chain_id"] = json!(56);
        let err = parse_command(CommandName::OnrampCreate, &bytes(&body), &polygon_only);
        assert_eq!(err.unwrap_err().code(), RejectCode::UnsupportedChain);
        // A chain id that is not a number at all stays a schema error.
        body["chain_id"] = json!("polygon");
        let err = parse(CommandName::OnrampCreate, &body).unwrap_err();
        assert_eq!(err.code(), RejectCode::InvalidSchema);
    }

    #[test]
    fn a_tron_offramp_takes_tron_addresses() {
        let mut body = offramp_body();
        body["chain_id"] = json!(728126428);
        body["sender_address"] = json!("TJRabPrwbZy45sbavfcjinPJC18kjpRTv8");
        body["refund_address"] = json!("TJRabPrwbZy45sbavfcjinPJC18kjpRTv8");
        assert!(matches!(
            parse(CommandName::OfframpCreate, &body),
            Ok(Command::CreateOfframp(_))
        ));
    }

    #[test]
    fn tx_hash_command_keeps_the_raw_hash_for_the_order_to_parse() {
        let body = json!({"command_id": "c", "order_id": "o", "tx_hash": " 0xAB "});
        assert_eq!(
            parse(CommandName::OfframpTxHash, &body).unwrap(),
            Command::SubmitTxHash {
                hash: " 0xAB ".into()
            }
        );
        let body = json!({"command_id": "c", "order_id": "o"});
        assert!(matches!(
            parse(CommandName::OfframpTxHash, &body),
            Err(CommandError::Schema(_))
        ));
    }

    #[test]
    fn onramp_create_takes_an_optional_price_limit() {
        let mut body = create_body();
        body["max_price_change_pct"] = json!(1);
        let Command::CreateOnramp(r) = parse(CommandName::OnrampCreate, &body).unwrap() else {
            panic!()
        };
        assert_eq!(r.max_price_change_pct, Some(1.into()));
    }

    #[test]
    fn creates_make_orders_and_the_rest_feed_one() {
        let Command::CreateOfframp(r) = parse(CommandName::OfframpCreate, &offramp_body()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            Command::CreateOfframp(r.clone()).target(),
            Target::New(Box::new(OrderRequest::Offramp(*r)))
        );
        assert!(matches!(
            parse(CommandName::OnrampCreate, &create_body())
                .unwrap()
                .target(),
            Target::New(r) if matches!(*r, OrderRequest::Onramp(_))
        ));
        assert_eq!(
            Command::SubmitTxHash { hash: "h".into() }.target(),
            Target::Existing(Input::SubmitTxHash { hash: "h".into() })
        );
        assert_eq!(
            Command::Cancel { reason: None }.target(),
            Target::Existing(Input::Cancel { reason: None })
        );
    }

    fn mint_body() -> serde_json::Value {
        json!({
            "command_id": "c-1", "order_id": "m-1", "amount": "25.50", "token": "USBC",
            "wallet_identifier": "Alice.UL", "wallet_identifier_type": "custom_namespace",
            "provider": "partner"
        })
    }

    #[test]
    fn mint_create_parses_its_wallet_and_amount() {
        let Command::CreateMint(r) = parse(CommandName::MintCreate, &mint_body()).unwrap() else {
            panic!("a mint");
        };
        assert_eq!(r.amount.value().to_string(), "25.5");
        assert_eq!(
            r.wallet,
            PartnerWallet::CustomNamespace(Namespace("alice.ul".into()))
        );
        assert_eq!(r.wallet.identifier(), "alice.ul");
        let mut b = mint_body();
        b["wallet_identifier_type"] = json!("wallet_address");
        b["wallet_identifier"] = json!("0xAbCdEf0123456789abcdef0123456789ABCDEF01");
        let Command::CreateMint(r) = parse(CommandName::MintCreate, &b).unwrap() else {
            panic!("a mint");
        };
        assert_eq!(
            r.wallet.identifier(),
            "0xabcdef0123456789abcdef0123456789abcdef01"
        );
        assert_eq!(
            CommandName::parse("mint.create"),
            Some(CommandName::MintCreate)
        );
    }

    #[test]
    fn mint_create_refuses_what_the_provider_could_not_take() {
        let cases: [(&str, serde_json::Value, RejectCode); 6] = [
            ("amount", json!("0"), RejectCode::InvalidField),
            (
                "amount",
                json!("1234567890.1234567"),
                RejectCode::InvalidField,
            ),
            ("amount", json!(true), RejectCode::InvalidField),
            (
                "wallet_identifier",
                json!("has space"),
                RejectCode::InvalidField,
            ),
            (
                "wallet_identifier_type",
                json!("CUSTOM NAMESPACE"),
                RejectCode::InvalidSchema,
            ),
            ("token", json!(""), RejectCode::InvalidField),
        ];
        for (field, value, code) in cases {
            let mut b = mint_body();
            b[field] = value.clone();
            let err = parse(CommandName::MintCreate, &b).unwrap_err();
            assert_eq!(err.code(), code, "{field} = {value}: {err}");
        }
        let mut b = mint_body();
        b["wallet_identifier_type"] = json!("wallet_address");
        let err = parse(CommandName::MintCreate, &b).unwrap_err();
        assert_eq!(err.code(), RejectCode::InvalidField);
        assert!(!err.to_string().contains("alice"), "no value echoed: {err}");
    }

    #[test]
    fn a_create_may_name_its_provider() {
        let named = |v: serde_json::Value| {
            let mut body = mint_body();
            body.as_object_mut().unwrap().remove("provider");
            body.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            parse_command_at(
                CommandName::MintCreate,
                body.to_string().as_bytes(),
                &CommandLimits::default(),
            )
            .map(|(_, p)| p)
        };
        assert_eq!(
            named(mint_body()).unwrap().map(|p| p.to_string()),
            Some("partner".into())
        );
        assert_eq!(named(json!({"command_id": "c"})).unwrap(), None);
        assert_eq!(
            named(json!({"provider": "Not Valid"})).unwrap_err().code(),
            RejectCode::InvalidField
        );
        assert_eq!(
            named(json!({"provider": 7})).unwrap_err().code(),
            RejectCode::Malformed
        ); // Only a create reads it.
        let utr = json!({"command_id": "c", "order_id": "o", "utr": "512345678901", "provider": 7});
        let (_, provider) = parse_command_at(
            CommandName::OnrampUtr,
            utr.to_string().as_bytes(),
            &CommandLimits::default(),
        )
        .unwrap();
        assert_eq!(provider, None);
        assert!(CommandName::RedeemCreate.creates() && !CommandName::RedeemPayout.creates());
    }

    fn redeem_body() -> serde_json::Value {
        json!({
            "command_id": "c-1", "order_id": "r-1", "amount": "25", "token": "USBC",
            "wallet_identifier": "treasury.acme.ul", "wallet_identifier_type": "custom_namespace",
            "fiat_amount": "25.00", "fiat_symbol": "USD", "transfer_method_id": "tm-1"
        })
    }

    #[test]
    fn redeem_commands_parse_and_refuse() {
        let Command::CreateRedeem(r) = parse(CommandName::RedeemCreate, &redeem_body()).unwrap()
        else {
            panic!("a redeem");
        };
        assert_eq!(r.fiat.amount.to_string(), "25.00");
        assert_eq!(
            (r.fiat.symbol.as_str(), r.fiat.transfer_method_id.as_str()),
            ("USD", "tm-1")
        );
        assert_eq!(r.wallet.identifier(), "treasury.acme.ul");
        for (field, value) in [
            ("fiat_amount", json!("25.001")),
            ("fiat_amount", json!("0")),
            ("fiat_symbol", json!("usd")),
            ("fiat_symbol", json!("DOLLARS")),
            ("transfer_method_id", json!("")),
            ("amount", json!("-1")),
        ] {
            let mut b = redeem_body();
            b[field] = value.clone();
            let err = parse(CommandName::RedeemCreate, &b).unwrap_err();
            assert_eq!(
                err.code(),
                RejectCode::InvalidField,
                "{field} = {value}: {err}"
            );
            assert!(err.to_string().contains(field), "{err}");
        }
        let ok = json!({"command_id": "c-2", "order_id": "r-1", "payout_reference": " ACH-77 "});
        assert_eq!(
            parse(CommandName::RedeemPayout, &ok).unwrap(),
            Command::ReportPayout {
                reference: "ACH-77".into()
            }
        );
        let bad = json!({"command_id": "c-2", "order_id": "r-1", "payout_reference": "a\nb"});
        assert_eq!(
            parse(CommandName::RedeemPayout, &bad).unwrap_err().code(),
            RejectCode::InvalidField
        );
    }
}
