//! Validated on-chain value types: transaction hashes, wallet addresses and token amounts.
//!
//! Same style as [`crate::values`]: every type is built only through its parser, the parser
//! trims and normalises where the format allows it, `serde` runs the same parser, and error
//! reasons never echo the rejected input (it may be attacker-controlled and end up in
//! events or logs).
//!
//! Hashes and addresses are validated **for a chain family** ([`ChainFamily`], usually from
//! [`crate::values::ChainId::family`]), so an EVM-looking hash on a Tron order is refused at
//! the boundary instead of being forwarded to the provider (providers.md §2.2).
//!
//! What is *not* checked, because it needs a hash function this crate does not depend on:
//! - the EIP-55 mixed-case checksum of EVM addresses (Keccak-256);
//! - the base58check checksum of Tron and legacy Bitcoin addresses (double SHA-256);
//! - the bech32/bech32m checksum of Bitcoin segwit addresses (only shape and charset).
//!
//! A typo in one of those therefore passes here; the chain or provider is the final judge.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::values::{ChainFamily, ValueError};

fn invalid(field: &'static str, reason: &'static str) -> ValueError {
    ValueError::Invalid { field, reason }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn strip_0x(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

// ---------------------------------------------------------------------------------------
// Base58 (Bitcoin alphabet)
// ---------------------------------------------------------------------------------------

/// The Bitcoin base58 alphabet (no `0`, `O`, `I`, `l`). Solana and Tron use it too.
const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn base58_digit(c: u8) -> Option<u8> {
    BASE58_ALPHABET
        .iter()
        .position(|&a| a == c)
        .map(|p| p as u8)
}

fn is_base58(s: &str) -> bool {
    s.bytes().all(|b| base58_digit(b).is_some())
}

/// Decodes base58 (Bitcoin alphabet, no checksum). Each leading `'1'` becomes a leading zero
/// byte. `None` if any character is outside the alphabet.
///
/// Quadratic in the input length; callers bound the length before calling.
fn base58_decode(s: &str) -> Option<Vec<u8>> {
    let zeros = s.bytes().take_while(|&b| b == b'1').count();
    // Little-endian base-256 digits of the number after the leading '1's.
    let mut num: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes().skip(zeros) {
        let mut carry = u32::from(base58_digit(c)?);
        for byte in num.iter_mut() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            num.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(num.iter().rev());
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Transaction hash
// ---------------------------------------------------------------------------------------

/// A transaction hash validated for a chain family (providers.md §2.2).
///
/// Surrounding whitespace is trimmed. Accepted forms and normalisation:
/// - [`ChainFamily::Evm`]: `0x` (or `0X`) + 64 hex digits, stored as lowercase `0x…`.
/// - [`ChainFamily::Tron`]: exactly 64 hex digits **without** `0x` (the txID,
///   `hex(sha256(raw_data))`), stored lowercase. A `0x`-prefixed hash is refused as an
///   EVM-style hash on a Tron order.
/// - [`ChainFamily::Solana`]: base58 (Bitcoin alphabet) decoding to exactly 64 bytes (the
///   fee payer's signature; typically 87–88 characters). Case is significant and kept.
/// - [`ChainFamily::Bitcoin`]: 64 hex digits, no prefix, stored lowercase.
///
/// Not personal data: `Debug`/`Display` show the hash. Serialised as
/// `{"family": "evm", "hash": "0x…"}`; deserialisation re-runs [`TxHash::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TxHashRepr", into = "TxHashRepr")]
pub struct TxHash {
    family: ChainFamily,
    hash: String,
}

#[derive(Serialize, Deserialize)]
struct TxHashRepr {
    family: ChainFamily,
    hash: String,
}

impl TxHash {
    const FIELD: &'static str = "tx_hash";
    /// A 64-byte value is at most 88 base58 characters (and at least 64, all `'1'`).
    const SOLANA_MAX_CHARS: usize = 88;
    const SOLANA_MIN_CHARS: usize = 64;

    pub fn parse(family: ChainFamily, s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(invalid(Self::FIELD, "empty"));
        }
        let hash = match family {
            ChainFamily::Evm => Self::parse_evm(t)?,
            ChainFamily::Tron => Self::parse_bare_hex(
                t,
                "an EVM-style 0x hash was given for a Tron order; Tron hashes are 64 hex digits without 0x",
            )?,
            ChainFamily::Bitcoin => Self::parse_bare_hex(
                t,
                "an EVM-style 0x hash was given for a Bitcoin order; Bitcoin txids are 64 hex digits without 0x",
            )?,
            ChainFamily::Solana => Self::parse_solana(t)?,
        };
        Ok(TxHash { family, hash })
    }

    fn parse_evm(t: &str) -> Result<String, ValueError> {
        let hex = strip_0x(t).ok_or(invalid(Self::FIELD, "must start with 0x"))?;
        if hex.len() != 64 {
            return Err(invalid(Self::FIELD, "must have 64 hex digits after 0x"));
        }
        if !is_hex(hex) {
            return Err(invalid(
                Self::FIELD,
                "must contain only hex digits after 0x",
            ));
        }
        Ok(format!("0x{}", hex.to_ascii_lowercase()))
    }

    /// Tron and Bitcoin: 64 hex digits, no prefix.
    fn parse_bare_hex(t: &str, evm_style_reason: &'static str) -> Result<String, ValueError> {
        if strip_0x(t).is_some() {
            return Err(invalid(Self::FIELD, evm_style_reason));
        }
        if t.len() != 64 {
            return Err(invalid(Self::FIELD, "must be 64 hex digits"));
        }
        if !is_hex(t) {
            return Err(invalid(Self::FIELD, "must contain only hex digits"));
        }
        Ok(t.to_ascii_lowercase())
    }

    fn parse_solana(t: &str) -> Result<String, ValueError> {
        if strip_0x(t).is_some() {
            return Err(invalid(
                Self::FIELD,
                "an EVM-style 0x hash was given for a Solana order; Solana signatures are base58",
            ));
        }
        if !is_base58(t) {
            return Err(invalid(
                Self::FIELD,
                "must be base58 (no 0, O, I or l and no other symbols)",
            ));
        }
        if !(Self::SOLANA_MIN_CHARS..=Self::SOLANA_MAX_CHARS).contains(&t.len()) {
            return Err(invalid(Self::FIELD, "must be 64-88 base58 characters"));
        }
        let bytes = base58_decode(t).ok_or(invalid(Self::FIELD, "must be base58"))?;
        if bytes.len() != 64 {
            return Err(invalid(
                Self::FIELD,
                "must decode to a 64-byte Solana signature",
            ));
        }
        Ok(t.to_owned())
    }

    /// The normalised hash (lowercase `0x…` for EVM, lowercase hex for Tron/Bitcoin, base58
    /// as given for Solana).
    pub fn as_str(&self) -> &str {
        &self.hash
    }

    /// The chain family this hash was validated for.
    pub fn family(&self) -> ChainFamily {
        self.family
    }
}

impl fmt::Display for TxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hash)
    }
}

impl TryFrom<TxHashRepr> for TxHash {
    type Error = ValueError;
    fn try_from(r: TxHashRepr) -> Result<Self, Self::Error> {
        TxHash::parse(r.family, &r.hash)
    }
}

impl From<TxHash> for TxHashRepr {
    fn from(h: TxHash) -> Self {
        TxHashRepr {
            family: h.family,
            hash: h.hash,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Wallet address
// ---------------------------------------------------------------------------------------

/// A wallet (or contract) address validated for a chain family.
///
/// Surrounding whitespace is trimmed. Accepted forms:
/// - [`ChainFamily::Evm`]: `0x` (or `0X`) + 40 hex digits. The prefix is stored as `0x`;
///   the hex digits keep the case the user gave, because a mixed-case address carries an
///   EIP-55 checksum that a signer may want to see again. That checksum is **not verified**
///   (it needs Keccak-256, which this crate does not depend on): mixed case is accepted as
///   is. Equality and hashing ignore case, so `0xAbC…` equals `0xabc…`; use
///   [`WalletAddress::canonical`] for a lowercase key.
/// - [`ChainFamily::Tron`]: base58 `T` + 33 characters (34 in all) that decodes to 25
///   bytes starting with the Tron prefix byte `0x41`. The 4-byte base58check checksum is
///   **not verified** (it needs SHA-256).
/// - [`ChainFamily::Solana`]: base58 decoding to exactly 32 bytes (an ed25519 public key
///   or program address; 32–44 characters). Case kept.
/// - [`ChainFamily::Bitcoin`] (mainnet only):
///   - segwit bech32/bech32m `bc1…`: 14–74 characters, all after `bc1` from the bech32
///     charset. All-uppercase input (`BC1…`, as BIP-173 allows, e.g. from QR codes) is
///     lowercased; mixed case is refused. The checksum is **not verified**.
///   - legacy base58 starting with `1` (P2PKH) or `3` (P2SH), 26–35 characters, decoding to
///     25 bytes with version byte `0x00` or `0x05` respectively. The checksum is **not
///     verified**.
///
/// Equality is exact (case-sensitive) for every family except EVM. Not personal data for
/// rampd's purposes: `Debug`/`Display` show the address. Serialised as
/// `{"family": "tron", "address": "T…"}`; deserialisation re-runs [`WalletAddress::parse`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "WalletAddressRepr", into = "WalletAddressRepr")]
pub struct WalletAddress {
    family: ChainFamily,
    address: String,
}

#[derive(Serialize, Deserialize)]
struct WalletAddressRepr {
    family: ChainFamily,
    address: String,
}

const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

impl WalletAddress {
    const FIELD: &'static str = "wallet_address";

    pub fn parse(family: ChainFamily, s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(invalid(Self::FIELD, "empty"));
        }
        let address = match family {
            ChainFamily::Evm => Self::parse_evm(t)?,
            ChainFamily::Tron => Self::parse_tron(t)?,
            ChainFamily::Solana => Self::parse_solana(t)?,
            ChainFamily::Bitcoin => Self::parse_bitcoin(t)?,
        };
        Ok(WalletAddress { family, address })
    }

    fn parse_evm(t: &str) -> Result<String, ValueError> {
        let hex = strip_0x(t).ok_or(invalid(Self::FIELD, "must start with 0x"))?;
        if hex.len() != 40 {
            return Err(invalid(Self::FIELD, "must have 40 hex digits after 0x"));
        }
        if !is_hex(hex) {
            return Err(invalid(
                Self::FIELD,
                "must contain only hex digits after 0x",
            ));
        }
        Ok(format!("0x{hex}"))
    }

    fn parse_tron(t: &str) -> Result<String, ValueError> {
        if strip_0x(t).is_some() {
            return Err(invalid(
                Self::FIELD,
                "an EVM-style 0x address was given for a Tron order; Tron addresses are base58 starting with T",
            ));
        }
        if !t.starts_with('T') {
            return Err(invalid(Self::FIELD, "must start with T"));
        }
        if t.len() != 34 {
            return Err(invalid(Self::FIELD, "must be 34 characters"));
        }
        if !is_base58(t) {
            return Err(invalid(
                Self::FIELD,
                "must be base58 (no 0, O, I or l and no other symbols)",
            ));
        }
        let bytes = base58_decode(t).ok_or(invalid(Self::FIELD, "must be base58"))?;
        if bytes.len() != 25 || bytes[0] != 0x41 {
            return Err(invalid(
                Self::FIELD,
                "must decode to 25 bytes starting with the Tron prefix 0x41",
            ));
        }
        Ok(t.to_owned())
    }

    fn parse_solana(t: &str) -> Result<String, ValueError> {
        if strip_0x(t).is_some() {
            return Err(invalid(
                Self::FIELD,
                "an EVM-style 0x address was given for a Solana order; Solana addresses are base58",
            ));
        }
        if !is_base58(t) {
            return Err(invalid(
                Self::FIELD,
                "must be base58 (no 0, O, I or l and no other symbols)",
            ));
        }
        if !(32..=44).contains(&t.len()) {
            return Err(invalid(Self::FIELD, "must be 32-44 base58 characters"));
        }
        let bytes = base58_decode(t).ok_or(invalid(Self::FIELD, "must be base58"))?;
        if bytes.len() != 32 {
            return Err(invalid(Self::FIELD, "must decode to a 32-byte public key"));
        }
        Ok(t.to_owned())
    }

    fn parse_bitcoin(t: &str) -> Result<String, ValueError> {
        if strip_0x(t).is_some() {
            return Err(invalid(
                Self::FIELD,
                "an EVM-style 0x address was given for a Bitcoin order",
            ));
        }
        let b = t.as_bytes();
        if b.len() >= 3 && b[..3].eq_ignore_ascii_case(b"bc1") {
            return Self::parse_bech32(t);
        }
        match b[0] {
            b'1' | b'3' => Self::parse_bitcoin_base58(t),
            _ => Err(invalid(
                Self::FIELD,
                "must start with 1, 3 or bc1 (Bitcoin mainnet)",
            )),
        }
    }

    fn parse_bech32(t: &str) -> Result<String, ValueError> {
        let has_lower = t.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = t.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper {
            return Err(invalid(
                Self::FIELD,
                "bech32 address must not mix upper and lower case",
            ));
        }
        let lower = t.to_ascii_lowercase();
        if !(14..=74).contains(&lower.len()) {
            return Err(invalid(
                Self::FIELD,
                "bech32 address must be 14-74 characters",
            ));
        }
        if !lower.bytes().skip(3).all(|c| BECH32_CHARSET.contains(&c)) {
            return Err(invalid(
                Self::FIELD,
                "bech32 address may contain only the bech32 charset after bc1",
            ));
        }
        Ok(lower)
    }

    fn parse_bitcoin_base58(t: &str) -> Result<String, ValueError> {
        if !(26..=35).contains(&t.len()) {
            return Err(invalid(
                Self::FIELD,
                "base58 address must be 26-35 characters",
            ));
        }
        if !is_base58(t) {
            return Err(invalid(
                Self::FIELD,
                "must be base58 (no 0, O, I or l and no other symbols)",
            ));
        }
        let bytes = base58_decode(t).ok_or(invalid(Self::FIELD, "must be base58"))?;
        let want_version = if t.starts_with('1') { 0x00 } else { 0x05 };
        if bytes.len() != 25 || bytes[0] != want_version {
            return Err(invalid(
                Self::FIELD,
                "must decode to 25 bytes with version 0x00 (1...) or 0x05 (3...)",
            ));
        }
        Ok(t.to_owned())
    }

    /// The address as stored: trimmed; for EVM with prefix `0x` and the user's hex case; for
    /// Bitcoin bech32 lowercased; otherwise as given.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The chain family this address was validated for.
    pub fn family(&self) -> ChainFamily {
        self.family
    }

    /// A comparison key: lowercased for EVM (case carries only the unverified EIP-55
    /// checksum), the stored form otherwise. Two addresses are equal iff their families and
    /// canonical forms are equal.
    pub fn canonical(&self) -> String {
        match self.family {
            ChainFamily::Evm => self.address.to_ascii_lowercase(),
            ChainFamily::Tron | ChainFamily::Solana | ChainFamily::Bitcoin => self.address.clone(),
        }
    }
}

impl PartialEq for WalletAddress {
    fn eq(&self, other: &Self) -> bool {
        if self.family != other.family {
            return false;
        }
        match self.family {
            ChainFamily::Evm => self.address.eq_ignore_ascii_case(&other.address),
            ChainFamily::Tron | ChainFamily::Solana | ChainFamily::Bitcoin => {
                self.address == other.address
            }
        }
    }
}

impl Eq for WalletAddress {}

impl Hash for WalletAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Consistent with `PartialEq`: EVM hashes the lowercased bytes.
        self.family.hash(state);
        match self.family {
            ChainFamily::Evm => {
                for b in self.address.bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
                state.write_u8(0xff);
            }
            ChainFamily::Tron | ChainFamily::Solana | ChainFamily::Bitcoin => {
                self.address.hash(state);
            }
        }
    }
}

impl fmt::Display for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

impl TryFrom<WalletAddressRepr> for WalletAddress {
    type Error = ValueError;
    fn try_from(r: WalletAddressRepr) -> Result<Self, Self::Error> {
        WalletAddress::parse(r.family, &r.address)
    }
}

impl From<WalletAddress> for WalletAddressRepr {
    fn from(a: WalletAddress) -> Self {
        WalletAddressRepr {
            family: a.family,
            address: a.address,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Token amount
// ---------------------------------------------------------------------------------------

/// A positive amount of tokens in whole-token units (e.g. `"12.5"` USDT, not base units).
///
/// Textual form: `^[0-9]+(\.[0-9]{1,18})?$` after trimming — no sign, exponent or
/// separators; at most 18 decimal places (the most any common ERC-20 token has). Must be
/// `> 0` and at most [`TokenAmount::MAX`] (10^12). `Decimal` holds 28–29 digits, so an
/// input with more written digits than fit (e.g. 12 integer digits *and* 18 decimals, even
/// if the decimals are trailing zeros) is refused as "too many significant digits" rather
/// than rounded.
///
/// Stored normalised (trailing fractional zeros dropped: `"1.50"` → `1.5`); serialised as a
/// JSON string such as `"1.5"`. Deserialisation accepts only a string, never a JSON number
/// (a float would already have lost precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenAmount(Decimal);

impl TokenAmount {
    const FIELD: &'static str = "token_amount";
    /// Most decimal places accepted.
    pub const MAX_DECIMALS: u32 = 18;
    /// Largest amount accepted: 10^12 tokens.
    pub const MAX: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);
    /// Longest textual input looked at (bounds the work done on hostile input).
    const MAX_TEXT_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(invalid(Self::FIELD, "empty"));
        }
        if t.len() > Self::MAX_TEXT_LEN {
            return Err(invalid(Self::FIELD, "too long"));
        }
        if t.starts_with('-') {
            return Err(ValueError::OutOfRange {
                field: Self::FIELD,
                reason: "must be greater than zero".to_owned(),
            });
        }
        const SHAPE: &str = "must be a plain decimal number like 100 or 12.5";
        let (int, frac) = match t.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (t, None),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(Self::FIELD, SHAPE));
        }
        if let Some(f) = frac {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(Self::FIELD, SHAPE));
            }
            if f.len() > Self::MAX_DECIMALS as usize {
                return Err(invalid(Self::FIELD, "more than 18 decimal places"));
            }
        }
        let d = Decimal::from_str_exact(t)
            .map_err(|_| invalid(Self::FIELD, "too many significant digits"))?;
        if d.scale() as usize != frac.map_or(0, str::len) {
            // from_str_exact refuses rather than rounds; this is a second guard.
            return Err(invalid(Self::FIELD, "too many significant digits"));
        }
        Self::new(d)
    }

    /// Builds from a `Decimal`: `> 0`, at most 18 significant decimal places (trailing
    /// zeros beyond that are fine), at most [`TokenAmount::MAX`].
    pub fn new(d: Decimal) -> Result<Self, ValueError> {
        if d <= Decimal::ZERO {
            return Err(ValueError::OutOfRange {
                field: Self::FIELD,
                reason: "must be greater than zero".to_owned(),
            });
        }
        let n = d.normalize();
        if n.scale() > Self::MAX_DECIMALS {
            return Err(invalid(Self::FIELD, "more than 18 decimal places"));
        }
        if n > Self::MAX {
            return Err(ValueError::OutOfRange {
                field: Self::FIELD,
                reason: format!("must be at most {}", Self::MAX),
            });
        }
        Ok(TokenAmount(n))
    }

    /// The amount in whole tokens, normalised (no trailing fractional zeros).
    pub fn value(&self) -> Decimal {
        self.0
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for TokenAmount {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TokenAmount {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for TokenAmount {
    type Error = ValueError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<TokenAmount> for String {
    fn from(v: TokenAmount) -> String {
        v.to_string()
    }
}

impl From<TokenAmount> for Decimal {
    fn from(v: TokenAmount) -> Decimal {
        v.0
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashSet;

    const ALL: [ChainFamily; 4] = [
        ChainFamily::Evm,
        ChainFamily::Tron,
        ChainFamily::Solana,
        ChainFamily::Bitcoin,
    ];

    /// Test-only base58 encoder (Bitcoin alphabet), the inverse of `base58_decode`.
    fn base58_encode(bytes: &[u8]) -> String {
        let zeros = bytes.iter().take_while(|&&b| b == 0).count();
        let mut digits: Vec<u8> = Vec::new(); // little-endian base-58 digits
        for &b in &bytes[zeros..] {
            let mut carry = u32::from(b);
            for d in digits.iter_mut() {
                carry += u32::from(*d) << 8;
                *d = (carry % 58) as u8;
                carry /= 58;
            }
            while carry > 0 {
                digits.push((carry % 58) as u8);
                carry /= 58;
            }
        }
        let mut s = "1".repeat(zeros);
        s.extend(
            digits
                .iter()
                .rev()
                .map(|&d| BASE58_ALPHABET[d as usize] as char),
        );
        s
    }

    fn reason(e: &ValueError) -> &'static str {
        match e {
            ValueError::Invalid { reason, .. } => reason,
            ValueError::OutOfRange { .. } => panic!("expected Invalid, got {e:?}"),
        }
    }

    fn hash_err(f: ChainFamily, s: &str) -> &'static str {
        let e = TxHash::parse(f, s).expect_err("should be refused");
        assert_eq!(e.field(), "tx_hash");
        reason(&e)
    }

    fn addr_err(f: ChainFamily, s: &str) -> &'static str {
        let e = WalletAddress::parse(f, s).expect_err("should be refused");
        assert_eq!(e.field(), "wallet_address");
        reason(&e)
    }

    fn amount_err(s: &str) -> ValueError {
        let e = TokenAmount::parse(s).expect_err("should be refused");
        assert_eq!(e.field(), "token_amount");
        e
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    const HEX64: &str = "ca6ede3c1f0b4d2e9a8b7c6d5e4f30211203948576abcdef0123456789ab5d82";
    const TRON_USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
    const SOL_SIG: &str =
        "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW";

    // ---- base58 -----------------------------------------------------------------------

    #[test]
    fn base58_known_vectors() {
        let cases: [(&str, &[u8]); 9] = [
            ("", b""),
            ("1", &[0]),
            ("11", &[0, 0]),
            ("2g", &[0x61]),
            ("a3gV", b"bbb"),
            ("aPEr", b"ccc"),
            ("StV1DL6CwTryKyV", b"hello world"),
            ("11StV1DL6CwTryKyV", b"\0\0hello world"),
            ("z", &[57]),
        ];
        for (text, bytes) in cases {
            assert_eq!(base58_decode(text).as_deref(), Some(bytes), "{text}");
            assert_eq!(base58_encode(bytes), text);
        }
        assert_eq!(base58_decode("21"), Some(vec![58]));
        assert_eq!(base58_decode("5Q"), Some(vec![0xff]));
        assert_eq!(base58_decode("5R"), Some(vec![0x01, 0x00]));
    }

    #[test]
    fn base58_refuses_chars_outside_alphabet() {
        for bad in ["0", "O", "I", "l", "a0b", "abO", "+", " ", "2g ", "é", "-"] {
            assert_eq!(base58_decode(bad), None, "{bad:?}");
            assert!(!is_base58(bad));
        }
        assert!(is_base58(
            "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
        ));
    }

    // ---- TxHash: EVM --------------------------------------------------------------------

    #[test]
    fn tx_hash_evm_accepts_and_normalises() {
        let lower = format!("0x{HEX64}");
        let cases = [
            lower.clone(),
            format!("0X{HEX64}"),
            format!("0x{}", HEX64.to_ascii_uppercase()),
            format!("  \t0x{HEX64}\n "),
        ];
        for c in cases {
            let h = TxHash::parse(ChainFamily::Evm, &c).unwrap();
            assert_eq!(h.as_str(), lower);
            assert_eq!(h.family(), ChainFamily::Evm);
            assert_eq!(h.to_string(), lower);
        }
        let zero = format!("0x{}", "0".repeat(64));
        assert_eq!(
            TxHash::parse(ChainFamily::Evm, &zero).unwrap().as_str(),
            zero
        );
    }

    #[test]
    fn tx_hash_evm_refusals() {
        let e = ChainFamily::Evm;
        assert_eq!(hash_err(e, ""), "empty");
        assert_eq!(hash_err(e, "   \n"), "empty");
        assert_eq!(hash_err(e, HEX64), "must start with 0x");
        assert_eq!(hash_err(e, SOL_SIG), "must start with 0x");
        let too_short = format!("0x{}", &HEX64[..63]);
        let too_long = format!("0x{HEX64}0");
        let addr = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        for s in [too_short.as_str(), too_long.as_str(), addr, "0x"] {
            assert_eq!(hash_err(e, s), "must have 64 hex digits after 0x", "{s}");
        }
        let non_hex = format!("0x{}g", &HEX64[..63]);
        assert_eq!(
            hash_err(e, &non_hex),
            "must contain only hex digits after 0x"
        );
        let inner_space = format!("0x{} {}", &HEX64[..31], &HEX64[32..]);
        assert_eq!(
            hash_err(e, &inner_space),
            "must contain only hex digits after 0x"
        );
        // 64 bytes but 63 chars: one non-ASCII char in place of two hex digits.
        let non_ascii = format!("0x{}é", &HEX64[..62]);
        assert_eq!(non_ascii.len(), 66);
        assert_eq!(
            hash_err(e, &non_ascii),
            "must contain only hex digits after 0x"
        );
    }

    // ---- TxHash: Tron -------------------------------------------------------------------

    #[test]
    fn tx_hash_tron_accepts_and_normalises() {
        for c in [
            HEX64.to_owned(),
            HEX64.to_ascii_uppercase(),
            format!(" {HEX64}\t"),
        ] {
            let h = TxHash::parse(ChainFamily::Tron, &c).unwrap();
            assert_eq!(h.as_str(), HEX64);
            assert_eq!(h.family(), ChainFamily::Tron);
        }
    }

    #[test]
    fn tx_hash_tron_refusals() {
        let t = ChainFamily::Tron;
        assert_eq!(hash_err(t, ""), "empty");
        let evm_reason = hash_err(t, &format!("0x{HEX64}"));
        assert!(evm_reason.contains("EVM-style"));
        assert!(evm_reason.contains("Tron order"));
        assert_eq!(hash_err(t, &format!("0X{HEX64}")), evm_reason);
        assert_eq!(hash_err(t, "0x"), evm_reason);
        assert_eq!(hash_err(t, &HEX64[..63]), "must be 64 hex digits");
        assert_eq!(hash_err(t, &format!("{HEX64}a")), "must be 64 hex digits");
        assert_eq!(hash_err(t, SOL_SIG), "must be 64 hex digits");
        let non_hex = format!("{}z", &HEX64[..63]);
        assert_eq!(hash_err(t, &non_hex), "must contain only hex digits");
    }

    // ---- TxHash: Bitcoin ----------------------------------------------------------------

    #[test]
    fn tx_hash_bitcoin() {
        let b = ChainFamily::Bitcoin;
        let h = TxHash::parse(b, &format!("\n{}", HEX64.to_ascii_uppercase())).unwrap();
        assert_eq!(h.as_str(), HEX64);
        assert_eq!(h.family(), b);
        assert_eq!(hash_err(b, " "), "empty");
        let evm_reason = hash_err(b, &format!("0x{HEX64}"));
        assert!(evm_reason.contains("EVM-style"));
        assert!(evm_reason.contains("Bitcoin order"));
        assert_eq!(hash_err(b, &HEX64[..62]), "must be 64 hex digits");
        assert_eq!(
            hash_err(b, &format!("{}-", &HEX64[..63])),
            "must contain only hex digits"
        );
    }

    // ---- TxHash: Solana -----------------------------------------------------------------

    #[test]
    fn tx_hash_solana_accepts_and_keeps_case() {
        let s = ChainFamily::Solana;
        let h = TxHash::parse(s, &format!("  {SOL_SIG} ")).unwrap();
        assert_eq!(h.as_str(), SOL_SIG);
        assert_eq!(h.family(), s);
        // Boundaries: 64 zero bytes are 64 '1's; the largest 64-byte value is 88 chars.
        let ones = "1".repeat(64);
        assert!(TxHash::parse(s, &ones).is_ok());
        let max = base58_encode(&[0xff; 64]);
        assert_eq!(max.len(), 88);
        assert_eq!(TxHash::parse(s, &max).unwrap().as_str(), max);
        let min87 = base58_encode(&[0x01; 64]);
        assert!(TxHash::parse(s, &min87).is_ok());
    }

    #[test]
    fn tx_hash_solana_refusals() {
        let s = ChainFamily::Solana;
        assert_eq!(hash_err(s, ""), "empty");
        let evm_reason = hash_err(s, &format!("0x{HEX64}"));
        assert!(evm_reason.contains("EVM-style"));
        assert!(evm_reason.contains("Solana order"));
        let base58_reason = "must be base58 (no 0, O, I or l and no other symbols)";
        for bad in ['0', 'O', 'I', 'l', ' ', '+'] {
            let mut v = SOL_SIG.to_owned();
            v.replace_range(10..11, &bad.to_string());
            assert_eq!(hash_err(s, &v), base58_reason, "{bad:?}");
        }
        let len_reason = "must be 64-88 base58 characters";
        assert_eq!(hash_err(s, &"1".repeat(63)), len_reason);
        assert_eq!(hash_err(s, &SOL_SIG[..63]), len_reason);
        assert_eq!(hash_err(s, &format!("{SOL_SIG}1")), len_reason);
        assert_eq!(
            hash_err(s, HEX64),
            "must be base58 (no 0, O, I or l and no other symbols)"
        );
        // 64 base58 chars that decode to only 47 bytes.
        assert_eq!(
            hash_err(s, &"a".repeat(64)),
            "must decode to a 64-byte Solana signature"
        );
        // 88 chars but above 2^512.
        assert_eq!(
            hash_err(s, &"z".repeat(88)),
            "must decode to a 64-byte Solana signature"
        );
        // 65 leading zero bytes would need 65 '1's: a 65-byte value.
        assert_eq!(
            hash_err(s, &"1".repeat(65)),
            "must decode to a 64-byte Solana signature"
        );
        // 64 chars that decode to fewer than 64 bytes.
        assert_eq!(
            hash_err(s, &format!("2{}", "1".repeat(63))),
            "must decode to a 64-byte Solana signature"
        );
    }

    #[test]
    fn tx_hash_wrong_family_matrix() {
        let evm = format!("0x{HEX64}");
        let ok = |f, v: &str| TxHash::parse(f, v).is_ok();
        assert!(ok(ChainFamily::Evm, &evm));
        assert!(!ok(ChainFamily::Tron, &evm));
        assert!(!ok(ChainFamily::Solana, &evm));
        assert!(!ok(ChainFamily::Bitcoin, &evm));
        assert!(!ok(ChainFamily::Evm, HEX64));
        assert!(ok(ChainFamily::Tron, HEX64));
        assert!(ok(ChainFamily::Bitcoin, HEX64));
        assert!(!ok(ChainFamily::Solana, HEX64));
        assert!(ok(ChainFamily::Solana, SOL_SIG));
        for f in [ChainFamily::Evm, ChainFamily::Tron, ChainFamily::Bitcoin] {
            assert!(!ok(f, SOL_SIG));
        }
    }

    #[test]
    fn tx_hash_equality_includes_family() {
        let t = TxHash::parse(ChainFamily::Tron, HEX64).unwrap();
        let b = TxHash::parse(ChainFamily::Bitcoin, HEX64).unwrap();
        assert_ne!(t, b);
        assert_eq!(
            t,
            TxHash::parse(ChainFamily::Tron, &HEX64.to_uppercase()).unwrap()
        );
    }

    #[test]
    fn tx_hash_serde() {
        let h = TxHash::parse(ChainFamily::Evm, &format!("0X{}", HEX64.to_uppercase())).unwrap();
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v, json!({"family": "evm", "hash": format!("0x{HEX64}")}));
        let back: TxHash = serde_json::from_value(v).unwrap();
        assert_eq!(back, h);
        for f in ALL {
            let raw = match f {
                ChainFamily::Evm => format!("0x{HEX64}"),
                ChainFamily::Solana => SOL_SIG.to_owned(),
                ChainFamily::Tron | ChainFamily::Bitcoin => HEX64.to_owned(),
            };
            let h = TxHash::parse(f, &raw).unwrap();
            let s = serde_json::to_string(&h).unwrap();
            assert_eq!(serde_json::from_str::<TxHash>(&s).unwrap(), h);
        }
        // Deserialisation re-validates and normalises.
        let v: TxHash =
            serde_json::from_value(json!({"family": "tron", "hash": HEX64.to_uppercase()}))
                .unwrap();
        assert_eq!(v.as_str(), HEX64);
        let err = serde_json::from_value::<TxHash>(
            json!({"family": "tron", "hash": format!("0x{HEX64}")}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid tx_hash"));
        assert!(!err.to_string().contains(HEX64));
        assert!(
            serde_json::from_value::<TxHash>(json!({"family": "cosmos", "hash": HEX64})).is_err()
        );
        assert!(serde_json::from_value::<TxHash>(json!(format!("0x{HEX64}"))).is_err());
        assert!(serde_json::from_value::<TxHash>(json!({"hash": HEX64})).is_err());
    }

    // ---- WalletAddress: EVM -------------------------------------------------------------

    const EIP55: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    #[test]
    fn wallet_evm_keeps_case_compares_case_insensitively() {
        let e = ChainFamily::Evm;
        let a = WalletAddress::parse(e, &format!(" {EIP55}\n")).unwrap();
        assert_eq!(a.as_str(), EIP55);
        assert_eq!(a.to_string(), EIP55);
        assert_eq!(a.family(), e);
        assert_eq!(a.canonical(), EIP55.to_ascii_lowercase());
        let lower = WalletAddress::parse(e, &EIP55.to_ascii_lowercase()).unwrap();
        assert_eq!(lower.as_str(), EIP55.to_ascii_lowercase());
        let upper_prefix = WalletAddress::parse(e, &format!("0X{}", &EIP55[2..])).unwrap();
        assert_eq!(upper_prefix.as_str(), EIP55, "prefix normalised to 0x");
        assert_eq!(a, lower);
        assert_eq!(a, upper_prefix);
        let mut set = HashSet::new();
        set.insert(a.clone());
        assert!(set.contains(&lower), "Hash must agree with Eq");
        assert!(!set.insert(upper_prefix));
        // A wrong EIP-55 checksum (flipped case) is accepted: not verifiable here.
        let flipped = format!("0x5AAeb{}", &EIP55[7..]);
        assert!(WalletAddress::parse(e, &flipped).is_ok());
    }

    #[test]
    fn wallet_evm_refusals() {
        let e = ChainFamily::Evm;
        assert_eq!(addr_err(e, ""), "empty");
        assert_eq!(addr_err(e, &EIP55[2..]), "must start with 0x");
        assert_eq!(addr_err(e, TRON_USDT), "must start with 0x");
        let len = "must have 40 hex digits after 0x";
        assert_eq!(addr_err(e, &EIP55[..41]), len);
        assert_eq!(addr_err(e, &format!("{EIP55}a")), len);
        assert_eq!(addr_err(e, &format!("0x{HEX64}")), len);
        assert_eq!(
            addr_err(e, &format!("{}g", &EIP55[..41])),
            "must contain only hex digits after 0x"
        );
    }

    // ---- WalletAddress: Tron ------------------------------------------------------------

    #[test]
    fn wallet_tron() {
        let t = ChainFamily::Tron;
        let a = WalletAddress::parse(t, &format!("\t{TRON_USDT} ")).unwrap();
        assert_eq!(a.as_str(), TRON_USDT);
        assert_eq!(a.family(), t);
        assert_eq!(a.canonical(), TRON_USDT);
        let decoded = base58_decode(TRON_USDT).unwrap();
        assert_eq!((decoded.len(), decoded[0]), (25, 0x41));
        // Case matters in base58: a case-flipped address is a different (here invalid) one.
        let flipped = WalletAddress::parse(t, "TR7NHQJEKQXGTCI8Q8ZY4PL8OTSZGJLJ6T");
        assert!(flipped.is_err());
        let other = base58_encode(&[&[0x41u8][..], &[7u8; 24]].concat());
        let b = WalletAddress::parse(t, &other).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wallet_tron_refusals() {
        let t = ChainFamily::Tron;
        assert_eq!(addr_err(t, ""), "empty");
        let evm = addr_err(t, EIP55);
        assert!(evm.contains("EVM-style") && evm.contains("Tron order"));
        assert_eq!(addr_err(t, &TRON_USDT[1..]), "must start with T");
        assert_eq!(
            addr_err(t, "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"),
            "must start with T"
        );
        assert_eq!(addr_err(t, &TRON_USDT[..33]), "must be 34 characters");
        assert_eq!(
            addr_err(t, &format!("{TRON_USDT}1")),
            "must be 34 characters"
        );
        let mut bad = TRON_USDT.to_owned();
        bad.replace_range(5..6, "0");
        assert_eq!(
            addr_err(t, &bad),
            "must be base58 (no 0, O, I or l and no other symbols)"
        );
        let prefix = "must decode to 25 bytes starting with the Tron prefix 0x41";
        // 'T' + 33 × '1' decodes with leading byte 0x40; 'T' + 33 × 'z' with 0x43.
        assert_eq!(addr_err(t, &format!("T{}", "1".repeat(33))), prefix);
        assert_eq!(addr_err(t, &format!("T{}", "z".repeat(33))), prefix);
        let p42 = base58_encode(&[&[0x42u8][..], &[0u8; 24]].concat());
        assert!(p42.starts_with('T') && p42.len() == 34);
        assert_eq!(addr_err(t, &p42), prefix);
    }

    // ---- WalletAddress: Solana ----------------------------------------------------------

    #[test]
    fn wallet_solana() {
        let s = ChainFamily::Solana;
        for good in [
            "11111111111111111111111111111111",
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
            "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        ] {
            let a = WalletAddress::parse(s, &format!(" {good} ")).unwrap();
            assert_eq!(a.as_str(), good);
            assert_eq!(a.family(), s);
        }
        let max = base58_encode(&[0xff; 32]);
        assert_eq!(max.len(), 44);
        assert!(WalletAddress::parse(s, &max).is_ok());
        let a = WalletAddress::parse(s, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v").unwrap();
        let b = WalletAddress::parse(s, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1V").unwrap();
        assert_ne!(a, b, "Solana comparison is case-sensitive");
    }

    #[test]
    fn wallet_solana_refusals() {
        let s = ChainFamily::Solana;
        assert_eq!(addr_err(s, "\t"), "empty");
        let evm = addr_err(s, EIP55);
        assert!(evm.contains("EVM-style") && evm.contains("Solana order"));
        assert_eq!(
            addr_err(s, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt0v"),
            "must be base58 (no 0, O, I or l and no other symbols)"
        );
        let len = "must be 32-44 base58 characters";
        assert_eq!(addr_err(s, &"1".repeat(31)), len);
        assert_eq!(addr_err(s, &"2".repeat(45)), len);
        assert_eq!(
            addr_err(s, TRON_USDT),
            "must decode to a 32-byte public key"
        );
        assert_eq!(
            addr_err(s, &"z".repeat(44)),
            "must decode to a 32-byte public key"
        );
        assert_eq!(
            addr_err(s, &"1".repeat(33)),
            "must decode to a 32-byte public key"
        );
    }

    // ---- WalletAddress: Bitcoin ---------------------------------------------------------

    #[test]
    fn wallet_bitcoin_accepts() {
        let b = ChainFamily::Bitcoin;
        for (input, stored) in [
            (
                "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
                "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            ),
            (
                "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
                "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            ),
            (
                " bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq ",
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            ),
            (
                "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            ),
            (
                "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
                "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
            ),
        ] {
            let a = WalletAddress::parse(b, input).unwrap();
            assert_eq!(a.as_str(), stored);
            assert_eq!(a.family(), b);
        }
        // Length boundaries.
        let bech_min = format!("bc1{}", "q".repeat(11));
        let bech_max = format!("bc1{}", "q".repeat(71));
        assert_eq!((bech_min.len(), bech_max.len()), (14, 74));
        assert!(WalletAddress::parse(b, &bech_min).is_ok());
        assert!(WalletAddress::parse(b, &bech_max).is_ok());
        // Shortest legacy form: 19 leading zero bytes ('1's) + 6 bytes → 26 chars.
        let short = base58_encode(&[&[0u8; 19][..], &[1, 0, 0, 0, 0, 0]].concat());
        assert_eq!(short.len(), 26);
        assert!(WalletAddress::parse(b, &short).is_ok());
        let p2sh = base58_encode(&[&[5u8][..], &[0xff; 24]].concat());
        assert!(p2sh.starts_with('3'));
        assert!(WalletAddress::parse(b, &p2sh).is_ok());
    }

    #[test]
    fn wallet_bitcoin_refusals() {
        let b = ChainFamily::Bitcoin;
        assert_eq!(addr_err(b, ""), "empty");
        assert_eq!(
            addr_err(b, EIP55),
            "an EVM-style 0x address was given for a Bitcoin order"
        );
        let start = "must start with 1, 3 or bc1 (Bitcoin mainnet)";
        for s in [
            TRON_USDT,
            "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
            "2N2JD6wb56AfK4tfmM6PwdVmoYk2dCKf4Br",
            "bc",
        ] {
            assert_eq!(addr_err(b, s), start, "{s}");
        }
        assert_eq!(
            addr_err(b, "bc1QW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            "bech32 address must not mix upper and lower case"
        );
        let bech_len = "bech32 address must be 14-74 characters";
        assert_eq!(addr_err(b, &format!("bc1{}", "q".repeat(10))), bech_len);
        assert_eq!(addr_err(b, &format!("bc1{}", "q".repeat(72))), bech_len);
        assert_eq!(addr_err(b, "bc1"), bech_len);
        let charset = "bech32 address may contain only the bech32 charset after bc1";
        // 'b', 'i', 'o' and '1' are not in the bech32 charset.
        for c in ["b", "i", "o", "1", "-"] {
            let s = format!("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5md{c}");
            assert_eq!(addr_err(b, &s), charset, "{c}");
        }
        let b58_len = "base58 address must be 26-35 characters";
        assert_eq!(addr_err(b, &"1".repeat(25)), b58_len);
        assert_eq!(addr_err(b, &format!("1{}", "z".repeat(35))), b58_len);
        assert_eq!(
            addr_err(b, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0"),
            "must be base58 (no 0, O, I or l and no other symbols)"
        );
        let decode = "must decode to 25 bytes with version 0x00 (1...) or 0x05 (3...)";
        assert_eq!(addr_err(b, &"1".repeat(26)), decode);
        assert_eq!(addr_err(b, &format!("1{}", "z".repeat(34))), decode);
        assert_eq!(addr_err(b, "1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf"), decode);
        // '3' + 33 × '1' decodes with version byte 0x04.
        assert_eq!(addr_err(b, &format!("3{}", "1".repeat(33))), decode);
    }

    #[test]
    fn wallet_equality_includes_family() {
        let sys = "11111111111111111111111111111111";
        let sol = WalletAddress::parse(ChainFamily::Solana, sys).unwrap();
        assert!(WalletAddress::parse(ChainFamily::Bitcoin, sys).is_err());
        let tron = WalletAddress::parse(ChainFamily::Tron, TRON_USDT).unwrap();
        assert_ne!(sol, tron);
    }

    #[test]
    fn wallet_serde() {
        let a = WalletAddress::parse(ChainFamily::Evm, EIP55).unwrap();
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v, json!({"family": "evm", "address": EIP55}));
        let back: WalletAddress = serde_json::from_value(v).unwrap();
        assert_eq!(back.as_str(), EIP55, "case survives the round trip");
        for (f, s) in [
            (ChainFamily::Tron, TRON_USDT),
            (
                ChainFamily::Solana,
                "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
            ),
            (
                ChainFamily::Bitcoin,
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            ),
            (ChainFamily::Bitcoin, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
        ] {
            let a = WalletAddress::parse(f, s).unwrap();
            let json = serde_json::to_string(&a).unwrap();
            let back: WalletAddress = serde_json::from_str(&json).unwrap();
            assert_eq!(back, a);
            assert_eq!(back.as_str(), s);
        }
        let err =
            serde_json::from_value::<WalletAddress>(json!({"family": "tron", "address": EIP55}))
                .unwrap_err();
        assert!(err.to_string().contains("invalid wallet_address"));
        assert!(!err.to_string().contains(EIP55));
        assert!(serde_json::from_value::<WalletAddress>(json!(EIP55)).is_err());
    }

    // ---- errors never echo the input ----------------------------------------------------

    #[test]
    fn errors_never_echo_input() {
        let inputs = [
            format!("0x{HEX64}"),
            HEX64.to_owned(),
            format!("0x{}zz", &HEX64[..62]),
            SOL_SIG.to_owned(),
            format!("{SOL_SIG}xyz"),
            EIP55.to_owned(),
            TRON_USDT.to_owned(),
            format!("T{}", "z".repeat(33)),
            "bc1QW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4".to_owned(),
            "<script>alert(1)</script>".to_owned(),
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0".to_owned(),
        ];
        for f in ALL {
            for i in &inputs {
                for err in [TxHash::parse(f, i).err(), WalletAddress::parse(f, i).err()]
                    .into_iter()
                    .flatten()
                {
                    assert!(!err.to_string().contains(i.as_str()), "{f:?} {i}");
                    assert!(!format!("{err:?}").contains(i.as_str()), "{f:?} {i}");
                }
            }
        }
        let e = TokenAmount::parse("123456789x").unwrap_err();
        assert!(!e.to_string().contains("123456789x"));
    }

    // ---- TokenAmount --------------------------------------------------------------------

    #[test]
    fn token_amount_max_is_ten_to_the_twelve() {
        assert_eq!(TokenAmount::MAX, dec("1000000000000"));
        assert_eq!(TokenAmount::MAX.scale(), 0);
    }

    #[test]
    fn token_amount_accepts_and_normalises() {
        let cases = [
            ("1", "1"),
            ("  12.50 ", "12.5"),
            ("007", "7"),
            ("100", "100"),
            ("100.000", "100"),
            ("0.000000000000000001", "0.000000000000000001"),
            ("1.068666", "1.068666"),
            ("1000000000000", "1000000000000"),
            ("1000000000000.0", "1000000000000"),
            (
                "999999999999.9999999999999999",
                "999999999999.9999999999999999",
            ),
            ("0.123456789012345678", "0.123456789012345678"),
        ];
        for (input, want) in cases {
            let a = TokenAmount::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.to_string(), want, "{input}");
            assert_eq!(a.value(), dec(want));
            assert_eq!(String::from(a), want);
            assert_eq!(Decimal::from(a), dec(want));
            assert_eq!(input.parse::<TokenAmount>().unwrap(), a);
            assert_eq!(TokenAmount::try_from(input).unwrap(), a);
        }
        assert_eq!(
            TokenAmount::parse("1.50").unwrap(),
            TokenAmount::parse("1.5").unwrap()
        );
        assert!(TokenAmount::parse("2").unwrap() > TokenAmount::parse("1.999").unwrap());
    }

    #[test]
    fn token_amount_refusals() {
        let shape = "must be a plain decimal number like 100 or 12.5";
        assert_eq!(reason(&amount_err("")), "empty");
        assert_eq!(reason(&amount_err("  ")), "empty");
        for s in [
            "+1", "1e5", "1E5", "1_000", "1,000", ".5", "5.", "1.2.3", "abc", "0x10", "1 000", "١",
            "NaN", "inf", "1.-5",
        ] {
            assert_eq!(reason(&amount_err(s)), shape, "{s}");
        }
        assert_eq!(
            reason(&amount_err("0.0000000000000000001")),
            "more than 18 decimal places"
        );
        assert_eq!(
            reason(&amount_err("1.0000000000000000000")),
            "more than 18 decimal places"
        );
        assert_eq!(reason(&amount_err(&"1".repeat(65))), "too long");
        // 29+ significant digits do not fit a Decimal exactly.
        assert_eq!(
            reason(&amount_err("999999999999.99999999999999999")),
            "too many significant digits"
        );
        assert_eq!(
            reason(&amount_err("1000000000000.000000000000000001")),
            "too many significant digits"
        );
        for s in [
            "0",
            "0.0",
            "000",
            "0.000000000000000000",
            "-1",
            "-0",
            " -0.5",
        ] {
            let e = amount_err(s);
            assert!(matches!(e, ValueError::OutOfRange { .. }), "{s}: {e:?}");
            assert_eq!(
                e.to_string(),
                "token_amount out of range: must be greater than zero"
            );
        }
        for s in ["1000000000000.1", "1000000000001", "99999999999999"] {
            let e = amount_err(s);
            assert_eq!(
                e.to_string(),
                "token_amount out of range: must be at most 1000000000000",
                "{s}"
            );
        }
    }

    #[test]
    fn token_amount_trailing_zeros_count_towards_precision() {
        // 12 integer digits + 18 written decimals = 30 digits: more than a Decimal holds,
        // so refused even though the value itself (10^11) is fine.
        assert!(TokenAmount::parse("100000000000.000000000000000000").is_err());
        assert_eq!(
            TokenAmount::parse("100000000000.0000000000000000")
                .unwrap()
                .to_string(),
            "100000000000"
        );
    }

    #[test]
    fn token_amount_new() {
        assert_eq!(TokenAmount::new(dec("1.500")).unwrap().to_string(), "1.5");
        // Trailing zeros beyond 18 places are fine; a significant 19th place is not.
        assert!(TokenAmount::new(dec("1.50000000000000000000000")).is_ok());
        assert_eq!(
            reason(&TokenAmount::new(dec("0.0000000000000000001")).unwrap_err()),
            "more than 18 decimal places"
        );
        assert!(TokenAmount::new(Decimal::ZERO).is_err());
        assert!(TokenAmount::new(dec("-3")).is_err());
        assert!(TokenAmount::new(Decimal::MAX).is_err());
        assert!(TokenAmount::new(TokenAmount::MAX).is_ok());
    }

    #[test]
    fn token_amount_serde() {
        let a = TokenAmount::parse("12.50").unwrap();
        assert_eq!(serde_json::to_value(a).unwrap(), json!("12.5"));
        let back: TokenAmount = serde_json::from_value(json!("12.5")).unwrap();
        assert_eq!(back, a);
        let back: TokenAmount = serde_json::from_str("\" 12.500 \"").unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_value::<TokenAmount>(json!(12.5)).is_err());
        assert!(serde_json::from_value::<TokenAmount>(json!(12)).is_err());
        assert!(serde_json::from_value::<TokenAmount>(json!("0")).is_err());
        assert!(serde_json::from_value::<TokenAmount>(json!("1e3")).is_err());
    }

    // ---- property tests -----------------------------------------------------------------

    fn mixed_case_hex(bytes: &[u8], upper: &[bool]) -> String {
        bytes
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .zip(upper.iter().cycle())
            .map(|(n, &u)| {
                let c = char::from_digit(u32::from(n), 16).unwrap();
                if u { c.to_ascii_uppercase() } else { c }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn prop_base58_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..80),
                                 zeros in 0usize..4) {
            let mut v = vec![0u8; zeros];
            v.extend(bytes);
            let enc = base58_encode(&v);
            prop_assert!(is_base58(&enc));
            prop_assert_eq!(base58_decode(&enc), Some(v));
        }

        #[test]
        fn prop_evm_hash_any_32_bytes(bytes in any::<[u8; 32]>(),
                                      upper in proptest::collection::vec(any::<bool>(), 1..8),
                                      big_x in any::<bool>()) {
            let hex = mixed_case_hex(&bytes, &upper);
            let input = format!("{}{hex}", if big_x { "0X" } else { "0x" });
            let h = TxHash::parse(ChainFamily::Evm, &input).unwrap();
            let want = format!("0x{}", hex.to_ascii_lowercase());
            prop_assert_eq!(h.as_str(), want.as_str());
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(serde_json::from_str::<TxHash>(&json).unwrap(), h.clone());
            // The same hash is refused on every other family.
            for f in [ChainFamily::Tron, ChainFamily::Solana, ChainFamily::Bitcoin] {
                prop_assert!(TxHash::parse(f, &input).is_err());
            }
            // Without the prefix it is a valid Tron/Bitcoin hash but not an EVM one.
            prop_assert!(TxHash::parse(ChainFamily::Evm, &hex).is_err());
            let tron = TxHash::parse(ChainFamily::Tron, &hex).unwrap();
            prop_assert_eq!(tron.as_str(), &want[2..]);
            let btc = TxHash::parse(ChainFamily::Bitcoin, &hex).unwrap();
            prop_assert_eq!(btc.as_str(), &want[2..]);
        }

        #[test]
        fn prop_solana_signature_any_64_bytes(bytes in proptest::collection::vec(any::<u8>(), 64)) {
            let sig = base58_encode(&bytes);
            let h = TxHash::parse(ChainFamily::Solana, &sig).unwrap();
            prop_assert_eq!(h.as_str(), sig.as_str());
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(serde_json::from_str::<TxHash>(&json).unwrap(), h);
        }

        #[test]
        fn prop_solana_address_any_32_bytes(bytes in any::<[u8; 32]>()) {
            let s = base58_encode(&bytes);
            let a = WalletAddress::parse(ChainFamily::Solana, &s).unwrap();
            prop_assert_eq!(a.as_str(), s.as_str());
        }

        #[test]
        fn prop_tron_address_any_payload(payload in any::<[u8; 24]>()) {
            let mut v = vec![0x41u8];
            v.extend(payload);
            let s = base58_encode(&v);
            prop_assert_eq!(s.len(), 34);
            let a = WalletAddress::parse(ChainFamily::Tron, &s).unwrap();
            prop_assert_eq!(a.as_str(), s.as_str());
            let json = serde_json::to_string(&a).unwrap();
            prop_assert_eq!(serde_json::from_str::<WalletAddress>(&json).unwrap(), a);
        }

        #[test]
        fn prop_bitcoin_legacy_any_payload(payload in any::<[u8; 24]>(), p2sh in any::<bool>()) {
            let mut v = vec![if p2sh { 0x05u8 } else { 0x00 }];
            v.extend(payload);
            let s = base58_encode(&v);
            let lead = if p2sh { '3' } else { '1' };
            prop_assert!(s.starts_with(lead));
            prop_assert!(WalletAddress::parse(ChainFamily::Bitcoin, &s).is_ok());
        }

        #[test]
        fn prop_evm_address_case_insensitive_eq(bytes in any::<[u8; 20]>(),
                                                upper in proptest::collection::vec(any::<bool>(), 1..8)) {
            let mixed = format!("0x{}", mixed_case_hex(&bytes, &upper));
            let a = WalletAddress::parse(ChainFamily::Evm, &mixed).unwrap();
            let b = WalletAddress::parse(ChainFamily::Evm, &mixed.to_ascii_lowercase()).unwrap();
            prop_assert_eq!(a.as_str(), mixed.as_str());
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.canonical(), b.canonical());
            let set: HashSet<WalletAddress> = [a, b].into_iter().collect();
            prop_assert_eq!(set.len(), 1);
        }

        #[test]
        fn prop_parsers_never_panic(s in "\\PC{0,100}") {
            for f in ALL {
                let _ = TxHash::parse(f, &s);
                let _ = WalletAddress::parse(f, &s);
            }
            let _ = TokenAmount::parse(&s);
        }

        #[test]
        fn prop_token_amount_roundtrip(mantissa in 1i64..=i64::MAX, scale in 0u32..=18) {
            let d = Decimal::new(mantissa, scale);
            match TokenAmount::new(d) {
                Ok(a) => {
                    prop_assert!(d <= TokenAmount::MAX);
                    prop_assert_eq!(a.value(), d);
                    let back = TokenAmount::parse(&a.to_string()).unwrap();
                    prop_assert_eq!(back, a);
                    let json = serde_json::to_string(&a).unwrap();
                    prop_assert_eq!(serde_json::from_str::<TokenAmount>(&json).unwrap(), a);
                }
                Err(_) => prop_assert!(d > TokenAmount::MAX),
            }
        }

        #[test]
        fn prop_token_amount_accepted_is_positive_and_bounded(s in "[0-9]{1,14}(\\.[0-9]{1,19})?") {
            if let Ok(a) = TokenAmount::parse(&s) {
                prop_assert!(a.value() > Decimal::ZERO);
                prop_assert!(a.value() <= TokenAmount::MAX);
                prop_assert!(a.value().scale() <= 18);
                prop_assert_eq!(a.value(), Decimal::from_str(&s).unwrap());
            }
        }
    }
}
