//! Validated value types ("parse, don't validate").
//!
//! Every type here can only be built through its parser, so holding one is proof that the
//! value is well formed. Each parser normalises where the format allows it (trimming,
//! case, separators) and the `serde` implementations run the same parser, so a bad value in
//! a provider payload or a stored row fails at the boundary instead of deep inside the
//! order logic.
//!
//! Personal data (PAN, phone, e-mail, UPI ID, bank account number, person name) is masked in
//! both `Debug` and `Display`, so it cannot leak through logs or `tracing` fields by
//! accident. The real value is reachable only through an explicit `expose()` call, used at
//! the one place that must send it to the provider, or through serialisation (`Serialize` /
//! `String::from`) for storage. Error values never echo the rejected input.
//!
//! Format sources: `providers.md` §2 (UTR/RRN rails) and §1 (Onmeta request fields).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

// ---------------------------------------------------------------------------------------
// Error
// ---------------------------------------------------------------------------------------

/// Why a value failed to parse.
///
/// The messages name the field and the rule that failed; they never contain the rejected
/// input, because that input may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The input is malformed for this field.
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    /// The input is well formed but outside the allowed range. `reason` may contain
    /// amounts or limits, never personal data.
    #[error("{field} out of range: {reason}")]
    OutOfRange { field: &'static str, reason: String },
}

impl ValueError {
    /// The name of the field that failed, e.g. `"utr"`.
    pub fn field(&self) -> &'static str {
        match self {
            ValueError::Invalid { field, .. } | ValueError::OutOfRange { field, .. } => field,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        ValueError::Invalid { field, reason }
    }
}

// ---------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------

/// `FromStr`, `TryFrom<String>`, `TryFrom<&str>` and `From<T> for String` for a newtype
/// over `String` that has `parse` and an inner `String` at `.0`.
macro_rules! string_newtype {
    ($t:ident) => {
        impl FromStr for $t {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = ValueError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $t {
            type Error = ValueError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    };
}

/// `Display` printing the inner string (non-PII types only).
macro_rules! display_plain {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Masked `Debug` (`Type(<masked>)`) and `Display` (`<masked>`) for PII types that have a
/// private `fn mask(&self) -> String`.
macro_rules! pii_fmt {
    ($t:ident) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), self.mask())
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.mask())
            }
        }
    };
}

fn is_upper_alpha(b: u8) -> bool {
    b.is_ascii_uppercase()
}

fn is_upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// The last `n` characters of an ASCII string (whole string if shorter).
fn ascii_tail(s: &str, n: usize) -> &str {
    &s[s.len().saturating_sub(n)..]
}

// ---------------------------------------------------------------------------------------
// UTR / RRN
// ---------------------------------------------------------------------------------------

/// Which payment rail a [`Utr`]'s shape belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UtrRail {
    /// 12-digit RRN used by UPI and IMPS (apps label it "UTR" or "UPI Ref No").
    Rrn12,
    /// 16 chars: 4-letter bank code + 12 alphanumerics.
    Neft,
    /// 22 chars: 4-letter bank code + `R` + 17 alphanumerics.
    Rtgs,
}

/// A bank payment reference (UTR / RRN) the user quotes after paying.
///
/// Normalisation: surrounding whitespace trimmed, internal spaces removed, ASCII
/// uppercased. Accepted shapes (providers.md §2.1):
/// - `^[0-9]{12}$` → [`UtrRail::Rrn12`] (UPI / IMPS)
/// - `^[A-Z]{4}[0-9A-Z]{12}$` → [`UtrRail::Neft`]
/// - `^[A-Z]{4}R[0-9A-Z]{17}$` → [`UtrRail::Rtgs`]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Utr(String);

impl Utr {
    const FIELD: &'static str = "utr";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != ' ')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if norm.is_empty() {
            return Err(ValueError::invalid(Self::FIELD, "empty"));
        }
        if !norm.bytes().all(is_upper_alnum) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must contain only letters and digits",
            ));
        }
        if Self::rail_of(norm.as_bytes()).is_none() {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be 12 digits (UPI/IMPS), 16 chars (NEFT) or 22 chars (RTGS)",
            ));
        }
        Ok(Utr(norm))
    }

    /// Classifies an already-uppercased ASCII byte string.
    fn rail_of(b: &[u8]) -> Option<UtrRail> {
        match b.len() {
            12 if b.iter().all(u8::is_ascii_digit) => Some(UtrRail::Rrn12),
            16 if b[..4].iter().copied().all(is_upper_alpha)
                && b[4..].iter().copied().all(is_upper_alnum) =>
            {
                Some(UtrRail::Neft)
            }
            22 if b[..4].iter().copied().all(is_upper_alpha)
                && b[4] == b'R'
                && b[5..].iter().copied().all(is_upper_alnum) =>
            {
                Some(UtrRail::Rtgs)
            }
            _ => None,
        }
    }

    pub fn rail(&self) -> UtrRail {
        Self::rail_of(self.0.as_bytes()).expect("Utr invariant: shape checked in parse")
    }

    /// For a 12-digit RRN, its leading digit, which by convention is the last digit of the
    /// payment year. The caller (who knows "now") can use it as a sanity check; this crate
    /// reads no clock. `None` for NEFT/RTGS references.
    pub fn rrn_year_digit(&self) -> Option<u8> {
        match self.rail() {
            UtrRail::Rrn12 => Some(self.0.as_bytes()[0] - b'0'),
            UtrRail::Neft | UtrRail::Rtgs => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype!(Utr);
display_plain!(Utr);

// ---------------------------------------------------------------------------------------
// INR amount
// ---------------------------------------------------------------------------------------

/// Inclusive bounds for an [`InrAmount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AmountLimits {
    pub min: Decimal,
    pub max: Decimal,
}

impl AmountLimits {
    /// No bounds beyond "greater than zero". Used when reading back stored values, so an
    /// amount accepted under an older or per-chain limit still loads.
    pub const UNBOUNDED: AmountLimits = AmountLimits {
        min: Decimal::ZERO,
        max: Decimal::MAX,
    };
}

impl Default for AmountLimits {
    /// rampd's default bounds for an INR on-ramp order: ₹100.00 to ₹2,00,000.00 inclusive.
    /// Per-chain provider limits (Onmeta `GET /v1/orders/get-chain-limit`) should be passed
    /// explicitly via [`InrAmount::parse_within`] / [`InrAmount::new`] where known.
    fn default() -> Self {
        AmountLimits {
            min: Decimal::new(10_000, 2),
            max: Decimal::new(20_000_000, 2),
        }
    }
}

/// A positive rupee amount with at most two decimal places (paise), stored at scale 2.
///
/// Textual form: `^[0-9]+(\.[0-9]{1,2})?$` after trimming — no sign, no exponent, no
/// thousands separators. Serialised as a JSON string such as `"1500.00"`.
///
/// Limits are intake policy, not format: [`InrAmount::parse`] / `FromStr` apply
/// [`AmountLimits::default`], [`InrAmount::parse_within`] takes explicit limits, and
/// deserialisation (`TryFrom<String>`) checks format and positivity only
/// ([`AmountLimits::UNBOUNDED`]), so stored orders still load if the limits change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InrAmount(Decimal);

impl InrAmount {
    const FIELD: &'static str = "amount";
    /// More integer digits than any rupee amount needs; keeps `Decimal` far from overflow.
    const MAX_INT_DIGITS: usize = 15;

    /// Parses with [`AmountLimits::default`].
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        Self::parse_within(s, &AmountLimits::default())
    }

    /// Parses checking format and `> 0` only; what deserialisation uses.
    pub fn parse_unbounded(s: &str) -> Result<Self, ValueError> {
        Self::parse_within(s, &AmountLimits::UNBOUNDED)
    }

    pub fn parse_within(s: &str, limits: &AmountLimits) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ValueError::invalid(Self::FIELD, "empty"));
        }
        if t.starts_with('-') {
            return Err(ValueError::OutOfRange {
                field: Self::FIELD,
                reason: "must be greater than zero".to_owned(),
            });
        }
        let (int, frac) = match t.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (t, None),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be a plain decimal number like 1500 or 1500.50",
            ));
        }
        if int.len() > Self::MAX_INT_DIGITS {
            return Err(ValueError::invalid(Self::FIELD, "too many digits"));
        }
        if let Some(f) = frac {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValueError::invalid(
                    Self::FIELD,
                    "must be a plain decimal number like 1500 or 1500.50",
                ));
            }
            if f.len() > 2 {
                return Err(ValueError::invalid(
                    Self::FIELD,
                    "more than 2 decimal places",
                ));
            }
        }
        let d = Decimal::from_str(t)
            .map_err(|_| ValueError::invalid(Self::FIELD, "not a decimal number"))?;
        Self::new(d, limits)
    }

    /// Builds from a `Decimal`. Trailing zeros beyond two places are fine (`10.500`); a
    /// non-zero third decimal place is not.
    pub fn new(d: Decimal, limits: &AmountLimits) -> Result<Self, ValueError> {
        if d <= Decimal::ZERO {
            return Err(ValueError::OutOfRange {
                field: Self::FIELD,
                reason: "must be greater than zero".to_owned(),
            });
        }
        if d.normalize().scale() > 2 {
            return Err(ValueError::invalid(
                Self::FIELD,
                "more than 2 decimal places",
            ));
        }
        if d < limits.min || d > limits.max {
            return Err(ValueError::OutOfRange {
                field: Self::FIELD,
                reason: format!(
                    "must be between {:.2} and {:.2} INR",
                    limits.min, limits.max
                ),
            });
        }
        let mut v = d;
        v.rescale(2);
        if v != d {
            // Only reachable for magnitudes near Decimal's limit.
            return Err(ValueError::invalid(Self::FIELD, "too many digits"));
        }
        Ok(InrAmount(v))
    }

    /// The amount in rupees, at scale 2.
    pub fn value(&self) -> Decimal {
        self.0
    }
}

impl fmt::Display for InrAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Scale is always 2, so this prints e.g. "1500.00".
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for InrAmount {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for InrAmount {
    type Error = ValueError;
    /// Format and positivity only; see the type docs.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse_unbounded(&s)
    }
}

impl From<InrAmount> for String {
    fn from(v: InrAmount) -> String {
        v.to_string()
    }
}

impl From<InrAmount> for Decimal {
    fn from(v: InrAmount) -> Decimal {
        v.0
    }
}

// ---------------------------------------------------------------------------------------
// Chain id
// ---------------------------------------------------------------------------------------

/// The address/transaction-hash family of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainFamily {
    Evm,
    Tron,
    Solana,
    Bitcoin,
}

/// A positive chain id.
///
/// Deserialises from a JSON number **or** a numeric string (Onmeta sends `137` in some
/// responses and `"80001"` in others); serialises as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(u64);

impl ChainId {
    const FIELD: &'static str = "chain_id";

    pub const ETHEREUM: ChainId = ChainId(1);
    pub const OPTIMISM: ChainId = ChainId(10);
    pub const BSC: ChainId = ChainId(56);
    pub const BSC_TESTNET: ChainId = ChainId(97);
    pub const GNOSIS: ChainId = ChainId(100);
    pub const POLYGON: ChainId = ChainId(137);
    pub const FANTOM: ChainId = ChainId(250);
    pub const ZKSYNC_ERA: ChainId = ChainId(324);
    pub const BASE: ChainId = ChainId(8453);
    pub const ARBITRUM_ONE: ChainId = ChainId(42161);
    pub const AVALANCHE_C: ChainId = ChainId(43114);
    pub const LINEA: ChainId = ChainId(59144);
    pub const POLYGON_MUMBAI: ChainId = ChainId(80001);
    pub const POLYGON_AMOY: ChainId = ChainId(80002);
    pub const SEPOLIA: ChainId = ChainId(11155111);
    /// Tron mainnet, using the chain id Tron's own JSON-RPC reports (`0x2b6653dc`).
    pub const TRON: ChainId = ChainId(728126428);
    /// Solana mainnet. **rampd convention**: Solana has no EVM-style chain id; rampd uses
    /// 101 internally. Map to and from each provider's own identifier at the adapter.
    pub const SOLANA: ChainId = ChainId(101);
    /// Bitcoin mainnet. **rampd convention**: Bitcoin has no chain id and 0 is not a valid
    /// `ChainId`; rampd uses 8332 (the mainnet RPC port) internally. Map at the adapter.
    pub const BITCOIN: ChainId = ChainId(8332);

    /// Ids known to be EVM chains.
    pub const KNOWN_EVM: &'static [ChainId] = &[
        Self::ETHEREUM,
        Self::OPTIMISM,
        Self::BSC,
        Self::BSC_TESTNET,
        Self::GNOSIS,
        Self::POLYGON,
        Self::FANTOM,
        Self::ZKSYNC_ERA,
        Self::BASE,
        Self::ARBITRUM_ONE,
        Self::AVALANCHE_C,
        Self::LINEA,
        Self::POLYGON_MUMBAI,
        Self::POLYGON_AMOY,
        Self::SEPOLIA,
    ];

    /// Parses a decimal string of ASCII digits (surrounding whitespace trimmed; no sign).
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be a positive decimal integer",
            ));
        }
        let n: u64 = t.parse().map_err(|_| ValueError::OutOfRange {
            field: Self::FIELD,
            reason: "does not fit in 64 bits".to_owned(),
        })?;
        Self::new(n)
    }

    pub fn new(n: u64) -> Result<Self, ValueError> {
        if n == 0 {
            return Err(ValueError::OutOfRange {
                field: Self::FIELD,
                reason: "must be greater than zero".to_owned(),
            });
        }
        Ok(ChainId(n))
    }

    /// The numeric id.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// Same as [`ChainId::value`].
    pub fn get(&self) -> u64 {
        self.0
    }

    /// The chain's family, or `None` for ids rampd does not know. Never guess `Evm`: a
    /// wrong family means validating an address or hash against the wrong format.
    pub fn family(&self) -> Option<ChainFamily> {
        match *self {
            Self::TRON => Some(ChainFamily::Tron),
            Self::SOLANA => Some(ChainFamily::Solana),
            Self::BITCOIN => Some(ChainFamily::Bitcoin),
            id if Self::KNOWN_EVM.contains(&id) => Some(ChainFamily::Evm),
            _ => None,
        }
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for ChainId {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<u64> for ChainId {
    type Error = ValueError;
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<ChainId> for u64 {
    fn from(c: ChainId) -> u64 {
        c.0
    }
}

impl Serialize for ChainId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ChainId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChainIdVisitor;

        impl Visitor<'_> for ChainIdVisitor {
            type Value = ChainId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive chain id as a number or a numeric string")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ChainId, E> {
                ChainId::new(v).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ChainId, E> {
                let n = u64::try_from(v).map_err(|_| {
                    E::custom(ValueError::OutOfRange {
                        field: ChainId::FIELD,
                        reason: "must be greater than zero".to_owned(),
                    })
                })?;
                ChainId::new(n).map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ChainId, E> {
                ChainId::parse(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(ChainIdVisitor)
    }
}

// ---------------------------------------------------------------------------------------
// Token symbol
// ---------------------------------------------------------------------------------------

/// A token ticker such as `USDT` or `USDC.e`: 1–16 chars of `[A-Za-z0-9.]`, starting with
/// a letter. Trimmed; case preserved (`USDC.e` and `USDC.E` are different strings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenSymbol(String);

impl TokenSymbol {
    const FIELD: &'static str = "token_symbol";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        let b = t.as_bytes();
        if b.is_empty() || b.len() > 16 {
            return Err(ValueError::invalid(Self::FIELD, "must be 1-16 characters"));
        }
        if !b[0].is_ascii_alphabetic() {
            return Err(ValueError::invalid(Self::FIELD, "must start with a letter"));
        }
        if !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.') {
            return Err(ValueError::invalid(
                Self::FIELD,
                "may contain only letters, digits and '.'",
            ));
        }
        Ok(TokenSymbol(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype!(TokenSymbol);
display_plain!(TokenSymbol);

// ---------------------------------------------------------------------------------------
// EVM address
// ---------------------------------------------------------------------------------------

/// An EVM account or contract address: `0x` (or `0X`) + 40 hex digits, stored lowercase.
///
/// The EIP-55 mixed-case checksum is **not** verified (that needs Keccak-256, which this
/// crate does not depend on); mixed-case input is accepted and lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EvmAddress(String);

impl EvmAddress {
    const FIELD: &'static str = "evm_address";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        let hex = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .ok_or(ValueError::invalid(Self::FIELD, "must start with 0x"))?;
        if hex.len() != 40 {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must have 40 hex digits after 0x",
            ));
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must contain only hex digits after 0x",
            ));
        }
        Ok(EvmAddress(format!("0x{}", hex.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype!(EvmAddress);
display_plain!(EvmAddress);

// ---------------------------------------------------------------------------------------
// UPI ID (PII)
// ---------------------------------------------------------------------------------------

/// A UPI virtual payment address, `handle@psp`. Trimmed; case preserved.
///
/// Handle: 2–256 chars of `[A-Za-z0-9._-]`; PSP: 2–64 ASCII letters; exactly one `@`.
/// PII: `Debug`/`Display` show e.g. `ra***@okaxis`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UpiId(String);

impl UpiId {
    const FIELD: &'static str = "upi_id";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        let (handle, psp) = t
            .split_once('@')
            .ok_or(ValueError::invalid(Self::FIELD, "must be handle@psp"))?;
        if psp.contains('@') {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must contain exactly one '@'",
            ));
        }
        if !(2..=256).contains(&handle.len()) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "handle must be 2-256 characters",
            ));
        }
        if !handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ValueError::invalid(
                Self::FIELD,
                "handle may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        if !(2..=64).contains(&psp.len()) || !psp.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ValueError::invalid(Self::FIELD, "psp must be 2-64 letters"));
        }
        Ok(UpiId(t.to_owned()))
    }

    /// The real value, for the request that links or pays to this UPI ID.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The part after `@` (e.g. `okaxis`). Not secret on its own.
    pub fn psp(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, p)| p)
    }

    fn mask(&self) -> String {
        let (handle, psp) = self.0.split_once('@').unwrap_or((&self.0, ""));
        // The handle is ASCII (checked in parse), so byte slicing is safe.
        let shown = if handle.len() >= 6 { 2 } else { 1 };
        format!("{}***@{}", &handle[..shown], psp)
    }
}

string_newtype!(UpiId);
pii_fmt!(UpiId);

// ---------------------------------------------------------------------------------------
// IFSC
// ---------------------------------------------------------------------------------------

/// An Indian Financial System Code, `^[A-Z]{4}0[A-Z0-9]{6}$`. Trimmed and uppercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ifsc(String);

impl Ifsc {
    const FIELD: &'static str = "ifsc";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        let ok = b.len() == 11
            && b[..4].iter().copied().all(is_upper_alpha)
            && b[4] == b'0'
            && b[5..].iter().copied().all(is_upper_alnum);
        if !ok {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be 4 letters, '0', then 6 letters or digits",
            ));
        }
        Ok(Ifsc(t))
    }

    /// The 4-letter bank code (e.g. `HDFC`).
    pub fn bank_code(&self) -> &str {
        &self.0[..4]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype!(Ifsc);
display_plain!(Ifsc);

// ---------------------------------------------------------------------------------------
// PAN (PII)
// ---------------------------------------------------------------------------------------

/// An Indian Permanent Account Number, `^[A-Z]{5}[0-9]{4}[A-Z]$`. Trimmed and uppercased.
/// PII: `Debug`/`Display` show only the last 4 characters (`******234F`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pan(String);

impl Pan {
    const FIELD: &'static str = "pan";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        let ok = b.len() == 10
            && b[..5].iter().copied().all(is_upper_alpha)
            && b[5..9].iter().all(u8::is_ascii_digit)
            && is_upper_alpha(b[9]);
        if !ok {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be 5 letters, 4 digits, 1 letter",
            ));
        }
        Ok(Pan(t))
    }

    /// The real value, for the KYC / account-link request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn mask(&self) -> String {
        format!("******{}", ascii_tail(&self.0, 4))
    }
}

string_newtype!(Pan);
pii_fmt!(Pan);

// ---------------------------------------------------------------------------------------
// Phone (PII)
// ---------------------------------------------------------------------------------------

/// An Indian mobile number, stored as the 10-digit national number (first digit 6–9).
///
/// Spaces and dashes are removed; an optional `+91`, a `91` prefix (only when the input is
/// then 12 digits) or a leading trunk `0` (11 digits) is stripped. PII: `Debug`/`Display`
/// show `******3210`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    const FIELD: &'static str = "phone";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let compact: String = s
            .trim()
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect();
        let national = if let Some(rest) = compact.strip_prefix('+') {
            rest.strip_prefix("91").ok_or(ValueError::invalid(
                Self::FIELD,
                "only Indian (+91) numbers are supported",
            ))?
        } else if compact.len() == 12 && compact.starts_with("91") {
            &compact[2..]
        } else if compact.len() == 11 && compact.starts_with('0') {
            &compact[1..]
        } else {
            &compact
        };
        let b = national.as_bytes();
        if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be a 10-digit Indian mobile number",
            ));
        }
        if !(b'6'..=b'9').contains(&b[0]) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "Indian mobile numbers start with 6, 7, 8 or 9",
            ));
        }
        Ok(Phone(national.to_owned()))
    }

    /// Always `"+91"`.
    pub fn country_code(&self) -> &'static str {
        "+91"
    }

    /// The real 10-digit national number, for the provider's `phone.number` field.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn mask(&self) -> String {
        format!("******{}", ascii_tail(&self.0, 4))
    }
}

string_newtype!(Phone);
pii_fmt!(Phone);

// ---------------------------------------------------------------------------------------
// Email (PII)
// ---------------------------------------------------------------------------------------

/// An e-mail address. Trimmed; the domain is lowercased, the local part kept as given.
///
/// Rules: exactly one `@`; local part 1–64 bytes of RFC 5322 `atext` (plus non-ASCII
/// letters/digits) and non-leading/trailing/doubled dots; domain of at least two
/// dot-separated labels of letters, digits and inner hyphens (1–63 bytes each); no
/// whitespace; at most 254 bytes in total. PII: `Debug`/`Display` show `j***@example.com`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    const FIELD: &'static str = "email";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must not contain whitespace",
            ));
        }
        let (local, domain) = t
            .split_once('@')
            .ok_or(ValueError::invalid(Self::FIELD, "must contain '@'"))?;
        if domain.contains('@') {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must contain exactly one '@'",
            ));
        }
        if local.is_empty() || local.len() > 64 {
            return Err(ValueError::invalid(
                Self::FIELD,
                "local part must be 1-64 characters",
            ));
        }
        let local_ok = local.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || "!#$%&'*+/=?^_`{|}~.-".contains(c)
                || (!c.is_ascii() && c.is_alphanumeric())
        });
        if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(ValueError::invalid(
                Self::FIELD,
                "local part has invalid characters",
            ));
        }
        let domain = domain.to_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(ValueError::invalid(
                Self::FIELD,
                "domain must contain a dot",
            ));
        }
        let labels_ok = labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !labels_ok {
            return Err(ValueError::invalid(Self::FIELD, "domain is malformed"));
        }
        let out = format!("{local}@{domain}");
        if out.len() > 254 {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must be at most 254 characters",
            ));
        }
        Ok(Email(out))
    }

    /// The real address, for the provider's `email` field.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The (lowercased) domain part. Not secret on its own.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    fn mask(&self) -> String {
        let first = self.0.chars().next().unwrap_or('*');
        format!("{first}***@{}", self.domain())
    }
}

string_newtype!(Email);
pii_fmt!(Email);

// ---------------------------------------------------------------------------------------
// Bank account number (PII)
// ---------------------------------------------------------------------------------------

/// An Indian bank account number: 9–18 digits after removing spaces.
/// PII: `Debug`/`Display` show `XXXX7315` (the same shape Onmeta returns).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BankAccountNumber(String);

impl BankAccountNumber {
    const FIELD: &'static str = "bank_account_number";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let digits: String = s.trim().chars().filter(|c| *c != ' ').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::invalid(Self::FIELD, "must contain only digits"));
        }
        if !(9..=18).contains(&digits.len()) {
            return Err(ValueError::invalid(Self::FIELD, "must be 9-18 digits"));
        }
        Ok(BankAccountNumber(digits))
    }

    /// The real number, for the account-link / payout request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `"XXXX"` + the last 4 digits, e.g. `XXXX7315`.
    pub fn masked(&self) -> String {
        format!("XXXX{}", ascii_tail(&self.0, 4))
    }

    /// The last 4 digits, e.g. for matching against a provider's masked account number.
    pub fn last4(&self) -> &str {
        ascii_tail(&self.0, 4)
    }

    fn mask(&self) -> String {
        self.masked()
    }
}

string_newtype!(BankAccountNumber);
pii_fmt!(BankAccountNumber);

// ---------------------------------------------------------------------------------------
// Person name (PII)
// ---------------------------------------------------------------------------------------

/// A person's name as used for KYC / bank-name matching. Trimmed; 1–100 characters of
/// letters (any script), spaces, `.`, `'` and `-`, with at least one letter. Indic nukta
/// and virama signs (not "alphabetic" in Unicode) are also allowed so that names written in
/// Indian scripts parse. PII: `Debug`/`Display` show only the first character (`R***`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonName(String);

impl PersonName {
    const FIELD: &'static str = "person_name";

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        let n = t.chars().count();
        if !(1..=100).contains(&n) {
            return Err(ValueError::invalid(Self::FIELD, "must be 1-100 characters"));
        }
        if !t.chars().all(Self::allowed) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "may contain only letters, spaces, '.', '\'' and '-'",
            ));
        }
        if !t.chars().any(char::is_alphabetic) {
            return Err(ValueError::invalid(
                Self::FIELD,
                "must contain at least one letter",
            ));
        }
        Ok(PersonName(t.to_owned()))
    }

    fn allowed(c: char) -> bool {
        if c.is_alphabetic() || matches!(c, ' ' | '.' | '\'' | '-') {
            return true;
        }
        // Indic blocks U+0900..=U+0DFF are 0x80 wide; in each, offset 0x3C is the nukta and
        // 0x4D the virama (e.g. U+093C, U+094D). Both are combining marks, not letters.
        let u = c as u32;
        (0x0900..=0x0DFF).contains(&u) && matches!(u & 0x7F, 0x3C | 0x4D)
    }

    /// The real name, for the provider's `name` / `accountName` fields.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn mask(&self) -> String {
        let first = self.0.chars().next().unwrap_or('*');
        format!("{first}***")
    }
}

string_newtype!(PersonName);
pii_fmt!(PersonName);

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    // ---- ValueError -----------------------------------------------------------------

    #[test]
    fn error_field_and_message() {
        let e = Pan::parse("nope").unwrap_err();
        assert_eq!(e.field(), "pan");
        assert!(e.to_string().starts_with("invalid pan:"));
        let e = InrAmount::parse("5").unwrap_err();
        assert_eq!(e.field(), "amount");
        assert!(matches!(e, ValueError::OutOfRange { .. }));
        assert_eq!(
            e.to_string(),
            "amount out of range: must be between 100.00 and 200000.00 INR"
        );
    }

    #[test]
    fn errors_never_echo_pii_input() {
        let bad = [
            ("ABCDE1234", Pan::parse("ABCDE1234").err()),
            ("55555123456", Phone::parse("55555123456").err()),
            ("john.doe@example", Email::parse("john.doe@example").err()),
            ("12345678x90", BankAccountNumber::parse("12345678x90").err()),
            (
                "Rahul 42 Sharma",
                PersonName::parse("Rahul 42 Sharma").err(),
            ),
            ("rahul.sharma@ok1", UpiId::parse("rahul.sharma@ok1").err()),
        ];
        for (input, err) in bad {
            let err = err.expect("should be rejected");
            assert!(!err.to_string().contains(input));
            assert!(!format!("{err:?}").contains(input));
        }
    }

    // ---- Utr ------------------------------------------------------------------------

    #[test]
    fn utr_accepts() {
        let cases = [
            ("123456789987", "123456789987", UtrRail::Rrn12),
            ("  5123 4567 8901 ", "512345678901", UtrRail::Rrn12),
            ("HDFCN52022062412", "HDFCN52022062412", UtrRail::Neft),
            ("hdfcn52022062412", "HDFCN52022062412", UtrRail::Neft),
            ("SBIN123456789012", "SBIN123456789012", UtrRail::Neft),
            (
                "HDFCR52022062400012345",
                "HDFCR52022062400012345",
                UtrRail::Rtgs,
            ),
            (
                "icicr4 2024 0615 12345678",
                "ICICR42024061512345678",
                UtrRail::Rtgs,
            ),
        ];
        for (input, norm, rail) in cases {
            let u = Utr::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(u.as_str(), norm);
            assert_eq!(u.rail(), rail, "{input}");
        }
    }

    #[test]
    fn utr_rejects() {
        let cases = [
            "",
            "   ",
            "12345678901",            // 11 digits
            "1234567890123",          // 13 digits
            "12345678901A",           // 12 chars, not all digits
            "1234N52022062412",       // NEFT with digit in bank code
            "HDFCN5202206241",        // 15
            "HDFCN520220624123",      // 17
            "HDFCX52022062400012345", // 22 but no R at position 5
            "HDFCR5202206240001234",  // 21
            "HDFC-52022062412",
            "１２３４５６７８９０１２", // full-width digits
            "12345678901\t2",
            "0x12345678",
        ];
        for input in cases {
            let e = Utr::parse(input).expect_err(input);
            assert_eq!(e.field(), "utr");
        }
    }

    #[test]
    fn utr_year_digit() {
        assert_eq!(
            Utr::parse("512345678901").unwrap().rrn_year_digit(),
            Some(5)
        );
        assert_eq!(
            Utr::parse("HDFCN52022062412").unwrap().rrn_year_digit(),
            None
        );
    }

    #[test]
    fn utr_serde() {
        let u: Utr = serde_json::from_value(json!(" hdfcn52022062412 ")).unwrap();
        assert_eq!(serde_json::to_value(&u).unwrap(), json!("HDFCN52022062412"));
        assert!(serde_json::from_value::<Utr>(json!("12345")).is_err());
        assert!(serde_json::from_value::<Utr>(json!(123456789012u64)).is_err());
    }

    // ---- InrAmount ------------------------------------------------------------------

    #[test]
    fn amount_accepts_and_normalises() {
        let cases = [
            ("100", "100.00"),
            ("1500", "1500.00"),
            ("1500.5", "1500.50"),
            ("1500.50", "1500.50"),
            (" 200000 ", "200000.00"),
            ("200000.00", "200000.00"),
            ("0150.25", "150.25"),
        ];
        for (input, want) in cases {
            let a = InrAmount::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.to_string(), want);
            assert_eq!(a.value().scale(), 2);
            assert_eq!(a.value(), dec(want));
        }
    }

    #[test]
    fn amount_rejects() {
        let cases = [
            "",
            "10.001",
            "1500.001",
            "1500.500", // textual form is limited to 2 decimals
            "-1500",
            "-0",
            "0",
            "0.00",
            "+1500",
            "1e3",
            "1E3",
            "1500.",
            ".50",
            "1,500",
            "1 500",
            "NaN",
            "inf",
            "abc",
            "1500.5a",
            "99.99",     // below default min
            "200000.01", // above default max
            "1234567890123456789012345678901234567890",
        ];
        for input in cases {
            let e = InrAmount::parse(input).expect_err(input);
            assert_eq!(e.field(), "amount");
        }
    }

    #[test]
    fn amount_limits() {
        let limits = AmountLimits {
            min: dec("1"),
            max: dec("10"),
        };
        assert_eq!(
            InrAmount::parse_within("10", &limits).unwrap().to_string(),
            "10.00"
        );
        assert_eq!(
            InrAmount::parse_within("10.5", &limits).unwrap_err(),
            ValueError::OutOfRange {
                field: "amount",
                reason: "must be between 1.00 and 10.00 INR".to_owned()
            }
        );
        assert!(InrAmount::parse_within("0.99", &limits).is_err());
        // A zero minimum still never admits zero.
        let zero_min = AmountLimits {
            min: Decimal::ZERO,
            max: dec("10"),
        };
        assert!(InrAmount::parse_within("0", &zero_min).is_err());
        assert!(InrAmount::parse_within("0.01", &zero_min).is_ok());
        assert_eq!(
            AmountLimits::default(),
            AmountLimits {
                min: dec("100.00"),
                max: dec("200000.00")
            }
        );
    }

    #[test]
    fn amount_new() {
        let l = AmountLimits::default();
        assert_eq!(
            InrAmount::new(dec("150"), &l).unwrap().to_string(),
            "150.00"
        );
        assert_eq!(
            InrAmount::new(dec("150.500"), &l).unwrap().to_string(),
            "150.50"
        );
        assert!(InrAmount::new(dec("150.001"), &l).is_err());
        assert!(InrAmount::new(dec("-150"), &l).is_err());
        assert!(InrAmount::new(Decimal::ZERO, &l).is_err());
    }

    #[test]
    fn amount_serde() {
        let a: InrAmount = serde_json::from_value(json!("1500")).unwrap();
        assert_eq!(serde_json::to_value(a).unwrap(), json!("1500.00"));
        let back: InrAmount = serde_json::from_value(json!("1500.00")).unwrap();
        assert_eq!(a, back);
        assert!(serde_json::from_value::<InrAmount>(json!("10.001")).is_err());
        assert!(serde_json::from_value::<InrAmount>(json!("0")).is_err());
        assert!(serde_json::from_value::<InrAmount>(json!("-5")).is_err());
        assert!(serde_json::from_value::<InrAmount>(json!("1e3")).is_err());
        assert!(serde_json::from_value::<InrAmount>(json!(1500)).is_err());
        // Stored values outside today's default limits still load.
        let small: InrAmount = serde_json::from_value(json!("10")).unwrap();
        assert_eq!(small.to_string(), "10.00");
        assert!(InrAmount::parse("10").is_err());
        let big: InrAmount = serde_json::from_value(json!("250000.5")).unwrap();
        assert_eq!(serde_json::to_value(big).unwrap(), json!("250000.50"));
        assert_eq!(InrAmount::parse_unbounded("250000.5").unwrap(), big);
    }

    // ---- ChainId --------------------------------------------------------------------

    #[test]
    fn chain_id_parse() {
        assert_eq!(ChainId::parse("137").unwrap(), ChainId::POLYGON);
        assert_eq!(ChainId::parse(" 80001 ").unwrap().get(), 80001);
        assert_eq!(
            ChainId::parse("18446744073709551615").unwrap().get(),
            u64::MAX
        );
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.0",
            "0x89",
            "1e3",
            "18446744073709551616",
            "abc",
        ] {
            assert_eq!(ChainId::parse(bad).expect_err(bad).field(), "chain_id");
        }
        assert!(ChainId::new(0).is_err());
        assert_eq!(ChainId::try_from(56u64).unwrap(), ChainId::BSC);
    }

    #[test]
    fn chain_id_family() {
        for id in [
            1u64, 10, 56, 137, 8453, 42161, 43114, 80001, 80002, 11155111, 97, 250, 100, 324, 59144,
        ] {
            assert_eq!(
                ChainId::new(id).unwrap().family(),
                Some(ChainFamily::Evm),
                "{id}"
            );
        }
        assert_eq!(ChainId::TRON.family(), Some(ChainFamily::Tron));
        assert_eq!(
            ChainId::new(728126428).unwrap().family(),
            Some(ChainFamily::Tron)
        );
        assert_eq!(ChainId::SOLANA.family(), Some(ChainFamily::Solana));
        assert_eq!(ChainId::BITCOIN.family(), Some(ChainFamily::Bitcoin));
        for unknown in [2u64, 5, 42, 1337, 31337, 999_999] {
            assert_eq!(ChainId::new(unknown).unwrap().family(), None, "{unknown}");
        }
    }

    #[test]
    fn chain_id_serde() {
        let a: ChainId = serde_json::from_value(json!(137)).unwrap();
        let b: ChainId = serde_json::from_value(json!("137")).unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_value(a).unwrap(), json!(137));
        let c: ChainId = serde_json::from_str("\"80001\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "80001");
        for bad in [
            json!(0),
            json!(-1),
            json!("0"),
            json!("abc"),
            json!(1.5),
            json!(null),
            json!(true),
        ] {
            assert!(
                serde_json::from_value::<ChainId>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        #[derive(Deserialize)]
        struct Order {
            #[serde(rename = "chainId")]
            chain_id: ChainId,
        }
        let o: Order = serde_json::from_str(r#"{"chainId":"80001"}"#).unwrap();
        assert_eq!(o.chain_id, ChainId::POLYGON_MUMBAI);
    }

    // ---- TokenSymbol ----------------------------------------------------------------

    #[test]
    fn token_symbol() {
        for ok in [
            "USDT",
            "USDC.e",
            "WMATIC",
            "a",
            "ABCDEFGHIJKLMNOP",
            "USD0",
            " MATIC ",
        ] {
            let t = TokenSymbol::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(t.as_str(), ok.trim());
        }
        assert_ne!(TokenSymbol::parse("USDC.e"), TokenSymbol::parse("USDC.E"));
        for bad in [
            "",
            "ABCDEFGHIJKLMNOPQ",
            "1INCH",
            ".ETH",
            "US DT",
            "USD-T",
            "USDT$",
            "ÉTH",
        ] {
            assert_eq!(
                TokenSymbol::parse(bad).expect_err(bad).field(),
                "token_symbol"
            );
        }
        let t: TokenSymbol = serde_json::from_value(json!("USDC.e")).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), json!("USDC.e"));
        assert!(serde_json::from_value::<TokenSymbol>(json!("")).is_err());
    }

    // ---- EvmAddress -----------------------------------------------------------------

    #[test]
    fn evm_address() {
        let mixed = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE";
        let a = EvmAddress::parse(mixed).unwrap();
        assert_eq!(a.as_str(), "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
        let b = EvmAddress::parse("0X2791BCA1F2DE4661ED88A30C99A7A9449AA84174").unwrap();
        assert_eq!(b.as_str(), "0x2791bca1f2de4661ed88a30c99a7a9449aa84174");
        for bad in [
            "",
            "2791bca1f2de4661ed88a30c99a7a9449aa84174",
            "0x2791bca1f2de4661ed88a30c99a7a9449aa8417",
            "0x2791bca1f2de4661ed88a30c99a7a9449aa841744",
            "0x2791bca1f2de4661ed88a30c99a7a9449aa8417g",
            "0x",
            "0x 2791bca1f2de4661ed88a30c99a7a9449aa8417",
            "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
        ] {
            assert_eq!(
                EvmAddress::parse(bad).expect_err(bad).field(),
                "evm_address"
            );
        }
        let c: EvmAddress = serde_json::from_value(json!(mixed)).unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!("0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee")
        );
    }

    // ---- UpiId ----------------------------------------------------------------------

    #[test]
    fn upi_id() {
        for ok in [
            "rahul.sharma@okaxis",
            "98765-43210@ybl",
            "ab@upi",
            " Rahul_S@OkHdfcBank ",
        ] {
            let u = UpiId::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(u.expose(), ok.trim());
        }
        assert_eq!(UpiId::parse("rahul@okaxis").unwrap().psp(), "okaxis");
        for bad in [
            "",
            "rahul",
            "rahul@",
            "@okaxis",
            "r@okaxis",
            "rahul@o",
            "rahul@ok1",
            "rahul@ok@axis",
            "rahul sharma@okaxis",
            "rahul+1@okaxis",
            "rahul@ok.axis",
        ] {
            assert_eq!(UpiId::parse(bad).expect_err(bad).field(), "upi_id");
        }
        let long_handle = "a".repeat(257);
        assert!(UpiId::parse(&format!("{long_handle}@okaxis")).is_err());
        let long_psp = "a".repeat(65);
        assert!(UpiId::parse(&format!("rahul@{long_psp}")).is_err());
    }

    #[test]
    fn upi_id_masked() {
        let u = UpiId::parse("rahul.sharma@okaxis").unwrap();
        assert_eq!(u.to_string(), "ra***@okaxis");
        assert_eq!(format!("{u:?}"), "UpiId(ra***@okaxis)");
        assert!(!format!("{u:?}").contains("rahul.sharma"));
        assert!(!u.to_string().contains("rahul.sharma"));
        assert_eq!(UpiId::parse("ab@upi").unwrap().to_string(), "a***@upi");
        let j: UpiId = serde_json::from_value(json!("rahul.sharma@okaxis")).unwrap();
        assert_eq!(
            serde_json::to_value(&j).unwrap(),
            json!("rahul.sharma@okaxis")
        );
    }

    // ---- Ifsc -----------------------------------------------------------------------

    #[test]
    fn ifsc() {
        let i = Ifsc::parse(" hdfc0001234 ").unwrap();
        assert_eq!(i.as_str(), "HDFC0001234");
        assert_eq!(i.bank_code(), "HDFC");
        assert_eq!(
            Ifsc::parse("SBIN0ABC123").unwrap().to_string(),
            "SBIN0ABC123"
        );
        for bad in [
            "",
            "HDFC1001234",
            "HDF00001234",
            "HDFC000123",
            "HDFC00012345",
            "HDFC0-01234",
            "1DFC0001234",
        ] {
            assert_eq!(Ifsc::parse(bad).expect_err(bad).field(), "ifsc");
        }
        let j: Ifsc = serde_json::from_value(json!("icic0000001")).unwrap();
        assert_eq!(serde_json::to_value(&j).unwrap(), json!("ICIC0000001"));
    }

    // ---- Pan ------------------------------------------------------------------------

    #[test]
    fn pan() {
        let p = Pan::parse(" abcde1234f ").unwrap();
        assert_eq!(p.expose(), "ABCDE1234F");
        for bad in [
            "",
            "ABCDE1234",
            "ABCDE12345",
            "ABCD01234F",
            "ABCDE1234FF",
            "ABCDEI234F",
            "ABCDE 1234F",
        ] {
            assert_eq!(Pan::parse(bad).expect_err(bad).field(), "pan");
        }
        let j: Pan = serde_json::from_value(json!("abcde1234f")).unwrap();
        assert_eq!(serde_json::to_value(&j).unwrap(), json!("ABCDE1234F"));
        assert_eq!(String::from(j), "ABCDE1234F");
    }

    #[test]
    fn pan_masked() {
        let pan = Pan::parse("ABCDE1234F").unwrap();
        assert!(!format!("{:?}", pan).contains("ABCDE1234F"));
        assert!(!format!("{}", pan).contains("ABCDE1234F"));
        assert!(!format!("{:?}", pan).contains("ABCDE"));
        assert_eq!(pan.to_string(), "******234F");
        assert_eq!(format!("{pan:?}"), "Pan(******234F)");
        // Nested in a derived Debug, too.
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Kyc {
            pan: Pan,
        }
        assert!(!format!("{:?}", Kyc { pan }).contains("ABCDE1234F"));
    }

    // ---- Phone ----------------------------------------------------------------------

    #[test]
    fn phone() {
        for ok in [
            "9876543210",
            "+919876543210",
            "+91 98765 43210",
            "+91-98765-43210",
            "919876543210",
            "09876543210",
            " 98765-43210 ",
        ] {
            let p = Phone::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(p.expose(), "9876543210", "{ok}");
            assert_eq!(p.country_code(), "+91");
        }
        // A 10-digit number that happens to start with 91 is kept as-is.
        assert_eq!(Phone::parse("9123456789").unwrap().expose(), "9123456789");
        for bad in [
            "",
            "5876543210",
            "0876543210",
            "987654321",
            "98765432101",
            "+19876543210",
            "+9109876543210",
            "0919876543210",
            "9876 543 21O",
            "(987) 654-3210",
            "+91",
            "919876543210 1",
        ] {
            assert_eq!(Phone::parse(bad).expect_err(bad).field(), "phone");
        }
    }

    #[test]
    fn phone_masked_and_serde() {
        let p = Phone::parse("+91 98765 43210").unwrap();
        assert_eq!(p.to_string(), "******3210");
        assert_eq!(format!("{p:?}"), "Phone(******3210)");
        assert!(!format!("{p:?}").contains("9876543210"));
        assert!(!p.to_string().contains("9876543210"));
        let j: Phone = serde_json::from_value(json!("+919876543210")).unwrap();
        assert_eq!(serde_json::to_value(&j).unwrap(), json!("9876543210"));
    }

    // ---- Email ----------------------------------------------------------------------

    #[test]
    fn email() {
        let cases = [
            ("john.doe@example.com", "john.doe@example.com"),
            (" John.Doe@Example.COM ", "John.Doe@example.com"),
            ("a+tag@sub.example.co.in", "a+tag@sub.example.co.in"),
            ("x@my-host.io", "x@my-host.io"),
        ];
        for (input, want) in cases {
            let e = Email::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(e.expose(), want);
        }
        assert_eq!(
            Email::parse("a@Example.com").unwrap().domain(),
            "example.com"
        );
        let long_local = "a".repeat(65);
        let long_total = format!(
            "{}@{}.com",
            "a".repeat(64),
            "b".repeat(63) + "." + &"c".repeat(63) + "." + &"d".repeat(63)
        );
        for bad in [
            "",
            "john",
            "@example.com",
            "john@",
            "john@example",
            "john@@example.com",
            "jo@hn@example.com",
            "john doe@example.com",
            "john@exa mple.com",
            "john@.example.com",
            "john@example.com.",
            "john@example..com",
            "john@-example.com",
            ".john@example.com",
            "john.@example.com",
            "jo..hn@example.com",
            "john<x>@example.com",
            "john@exam_ple.com",
            &format!("{long_local}@example.com"),
            &long_total,
        ] {
            assert_eq!(Email::parse(bad).expect_err(bad).field(), "email", "{bad}");
        }
    }

    #[test]
    fn email_masked_and_serde() {
        let e = Email::parse("john.doe@example.com").unwrap();
        assert_eq!(e.to_string(), "j***@example.com");
        assert_eq!(format!("{e:?}"), "Email(j***@example.com)");
        assert!(!format!("{e:?}").contains("john.doe"));
        assert!(!e.to_string().contains("john.doe"));
        let j: Email = serde_json::from_value(json!("John@EXAMPLE.com")).unwrap();
        assert_eq!(serde_json::to_value(&j).unwrap(), json!("John@example.com"));
    }

    // ---- BankAccountNumber ----------------------------------------------------------

    #[test]
    fn bank_account_number() {
        let a = BankAccountNumber::parse(" 5010 0123 4567 315 ").unwrap();
        assert_eq!(a.expose(), "501001234567315");
        assert_eq!(a.masked(), "XXXX7315");
        assert_eq!(a.last4(), "7315");
        assert!(BankAccountNumber::parse("123456789").is_ok());
        assert!(BankAccountNumber::parse("123456789012345678").is_ok());
        for bad in [
            "",
            "12345678",
            "1234567890123456789",
            "12345-67890",
            "1234567890A",
            "XXXX7315",
        ] {
            assert_eq!(
                BankAccountNumber::parse(bad).expect_err(bad).field(),
                "bank_account_number"
            );
        }
    }

    #[test]
    fn bank_account_masked_and_serde() {
        let a = BankAccountNumber::parse("501001234567315").unwrap();
        assert_eq!(a.to_string(), "XXXX7315");
        assert_eq!(format!("{a:?}"), "BankAccountNumber(XXXX7315)");
        assert!(!format!("{a:?}").contains("501001234567315"));
        assert!(!a.to_string().contains("501001234567315"));
        let j: BankAccountNumber = serde_json::from_value(json!("5010 0123 4567 315")).unwrap();
        assert_eq!(serde_json::to_value(&j).unwrap(), json!("501001234567315"));
    }

    // ---- PersonName -----------------------------------------------------------------

    #[test]
    fn person_name() {
        for ok in [
            "Rahul Sharma",
            "  Rahul Sharma  ",
            "R",
            "Anne-Marie O'Neil",
            "Dr. A. P. J. Abdul Kalam",
            "José Müller",
            "कृष्ण कुमार",
            "முருகன்",
        ] {
            let n = PersonName::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(n.expose(), ok.trim());
        }
        let hundred = "a".repeat(100);
        assert!(PersonName::parse(&hundred).is_ok());
        let too_long = "a".repeat(101);
        for bad in [
            "",
            "   ",
            "Rahul2",
            "Rahul_Sharma",
            "Rahul\tSharma",
            "...",
            "-",
            "Rahul@x",
            &too_long,
        ] {
            assert_eq!(
                PersonName::parse(bad).expect_err(bad).field(),
                "person_name"
            );
        }
    }

    #[test]
    fn person_name_masked_and_serde() {
        let n = PersonName::parse("Rahul Sharma").unwrap();
        assert_eq!(n.to_string(), "R***");
        assert_eq!(format!("{n:?}"), "PersonName(R***)");
        assert!(!format!("{n:?}").contains("Rahul Sharma"));
        assert!(!n.to_string().contains("Rahul"));
        let j: PersonName = serde_json::from_value(json!(" Rahul Sharma ")).unwrap();
        assert_eq!(serde_json::to_value(&j).unwrap(), json!("Rahul Sharma"));
    }

    // ---- Properties -----------------------------------------------------------------

    proptest! {
        #[test]
        fn prop_any_12_digits_is_rrn12(s in "[0-9]{12}") {
            let u = Utr::parse(&s).unwrap();
            prop_assert_eq!(u.rail(), UtrRail::Rrn12);
            prop_assert_eq!(u.as_str(), s.as_str());
        }

        #[test]
        fn prop_utr_roundtrip(s in "[0-9]{12}|[A-Za-z]{4}[0-9A-Za-z]{12}|[A-Za-z]{4}[Rr][0-9A-Za-z]{17}") {
            let u = Utr::parse(&s).unwrap();
            prop_assert_eq!(Utr::parse(&u.to_string()).unwrap(), u.clone());
            let j = serde_json::to_string(&u).unwrap();
            prop_assert_eq!(serde_json::from_str::<Utr>(&j).unwrap(), u);
        }

        #[test]
        fn prop_parsers_never_panic(s in "\\PC{0,40}") {
            let _ = Utr::parse(&s);
            let _ = InrAmount::parse(&s);
            let _ = ChainId::parse(&s);
            let _ = TokenSymbol::parse(&s);
            let _ = EvmAddress::parse(&s);
            let _ = UpiId::parse(&s);
            let _ = Ifsc::parse(&s);
            let _ = Pan::parse(&s);
            let _ = Phone::parse(&s);
            let _ = Email::parse(&s);
            let _ = BankAccountNumber::parse(&s);
            let _ = PersonName::parse(&s);
        }

        #[test]
        fn prop_amount_roundtrip(paise in 10_000u64..=20_000_000u64) {
            let d = Decimal::new(paise as i64, 2);
            let a = InrAmount::new(d, &AmountLimits::default()).unwrap();
            prop_assert_eq!(a.value().scale(), 2);
            prop_assert_eq!(InrAmount::parse(&a.to_string()).unwrap(), a);
            let j = serde_json::to_string(&a).unwrap();
            prop_assert_eq!(serde_json::from_str::<InrAmount>(&j).unwrap(), a);
        }

        #[test]
        fn prop_amount_rejects_more_than_2dp(int in 100u64..200_000u64, frac in "[0-9]{2}[1-9]", extra in "[0-9]{0,3}") {
            let s = format!("{int}.{frac}{extra}");
            prop_assert!(InrAmount::parse(&s).is_err());
            let d = Decimal::from_str(&s).unwrap();
            prop_assert!(InrAmount::new(d, &AmountLimits::default()).is_err());
        }

        #[test]
        fn prop_amount_rejects_non_positive(mantissa in i64::MIN..=0i64, scale in 0u32..=2) {
            let d = Decimal::new(mantissa, scale);
            let wide = AmountLimits { min: Decimal::MIN, max: Decimal::MAX };
            prop_assert!(InrAmount::new(d, &wide).is_err());
            prop_assert!(InrAmount::new(d, &AmountLimits::UNBOUNDED).is_err());
            prop_assert!(InrAmount::parse_within(&d.to_string(), &wide).is_err());
        }

        #[test]
        fn prop_amount_accepted_is_positive_2dp(s in "[0-9]{1,7}(\\.[0-9]{1,3})?") {
            let wide = AmountLimits { min: Decimal::MIN, max: Decimal::MAX };
            if let Ok(a) = InrAmount::parse_within(&s, &wide) {
                prop_assert!(a.value() > Decimal::ZERO);
                prop_assert_eq!(a.value().scale(), 2);
                prop_assert_eq!(a.value(), Decimal::from_str(&s).unwrap());
            }
        }

        #[test]
        fn prop_chain_id_roundtrip(n in 1u64..=u64::MAX) {
            let c = ChainId::new(n).unwrap();
            prop_assert_eq!(ChainId::parse(&c.to_string()).unwrap(), c);
            prop_assert_eq!(serde_json::from_str::<ChainId>(&serde_json::to_string(&c).unwrap()).unwrap(), c);
            prop_assert_eq!(serde_json::from_value::<ChainId>(json!(n.to_string())).unwrap(), c);
        }

        #[test]
        fn prop_evm_address_roundtrip(hex in "[0-9a-fA-F]{40}", upper_prefix in any::<bool>()) {
            let s = format!("{}{hex}", if upper_prefix { "0X" } else { "0x" });
            let a = EvmAddress::parse(&s).unwrap();
            prop_assert_eq!(a.as_str(), format!("0x{}", hex.to_ascii_lowercase()));
            prop_assert_eq!(EvmAddress::parse(&a.to_string()).unwrap(), a);
        }

        #[test]
        fn prop_token_symbol_roundtrip(s in "[A-Za-z][A-Za-z0-9.]{0,15}") {
            let t = TokenSymbol::parse(&s).unwrap();
            prop_assert_eq!(t.as_str(), s.as_str());
            prop_assert_eq!(TokenSymbol::parse(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn prop_ifsc_roundtrip(s in "[A-Za-z]{4}0[A-Za-z0-9]{6}") {
            let i = Ifsc::parse(&s).unwrap();
            prop_assert_eq!(i.as_str(), s.to_ascii_uppercase());
            prop_assert_eq!(Ifsc::parse(&i.to_string()).unwrap(), i);
        }

        #[test]
        fn prop_pan_never_shown(s in "[A-Z]{5}[0-9]{4}[A-Z]") {
            let p = Pan::parse(&s).unwrap();
            let debug = format!("{:?}", p);
            prop_assert!(!debug.contains(&s));
            prop_assert!(!p.to_string().contains(&s));
            prop_assert!(!p.to_string().contains(&s[..6]));
        }

        #[test]
        fn prop_phone_prefixes_agree(n in "[6-9][0-9]{9}") {
            let want = Phone::parse(&n).unwrap();
            for v in [format!("+91{n}"), format!("91{n}"), format!("0{n}"), format!("+91 {} {}", &n[..5], &n[5..])] {
                prop_assert_eq!(Phone::parse(&v).unwrap(), want.clone());
            }
            let debug = format!("{:?}", want);
            prop_assert!(!debug.contains(&n));
            prop_assert!(!want.to_string().contains(&n));
        }

        #[test]
        fn prop_account_masked(n in "[0-9]{9,18}") {
            let a = BankAccountNumber::parse(&n).unwrap();
            prop_assert_eq!(a.masked(), format!("XXXX{}", &n[n.len() - 4..]));
            let debug = format!("{:?}", a);
            prop_assert!(!debug.contains(&n));
            prop_assert!(!a.to_string().contains(&n));
        }
    }
}
