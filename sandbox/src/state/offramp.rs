//! Off-ramp orders in the sandbox world: sell quotes, order creation against a verified
//! bank link, tx-hash submission and the status progression (`scenario.rs`).

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use sha2::{Digest, Sha256};

use super::{ApiError, LinkState, World, key, random_digits, token_decimals};
use crate::scenario::{
    OFFRAMP_COMPLETED, OFFRAMP_CREATED, OFFRAMP_PAYOUT_SUCCESS, OFFRAMP_PENDING, OFFRAMP_REFUNDED,
    offramp_progressed_status,
};

/// Reason sent with a `refunded` status.
pub(crate) const REFUND_REASON: &str =
    "received crypto did not match the order: tokens returned to the refund wallet";

#[derive(Clone, Debug)]
pub(crate) struct NewOfframp {
    pub account_number: String,
    pub ifsc: String,
    pub chain_id: u64,
    pub sell_token_amount: Decimal,
    pub token_symbol: String,
    pub token_address: Option<String>,
    pub sender_wallet: String,
    pub refund_wallet: String,
    pub merchant_ref: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct OfframpOrder {
    pub id: String,
    pub email: String,
    pub request: NewOfframp,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Stored status; [`OfframpOrder::reported_status`] is what the API shows.
    pub status: String,
    /// The sandbox's deposit address for this order (`receiverWalletAddress`).
    pub deposit_address: String,
    pub quote: SellQuoteOut,
    pub tx_hash: Option<String>,
    /// Status polls since the tx hash was accepted.
    pub polls: u32,
    /// Chosen at creation (`Scenario::refund_next_offramp`): ends `refunded`.
    pub refund: bool,
    /// Bank payout reference (`transactionId`), set from `PayoutSuccess` on.
    pub payout_reference: Option<String>,
}

impl OfframpOrder {
    /// `cryptoInit` (as create answers) is reported as `pending` afterwards, as the
    /// provider's status API and webhooks do.
    pub(crate) fn reported_status(&self) -> &str {
        if self.status == OFFRAMP_CREATED {
            OFFRAMP_PENDING
        } else {
            &self.status
        }
    }

    pub(super) fn terminal(&self) -> bool {
        matches!(self.status.as_str(), OFFRAMP_COMPLETED | OFFRAMP_REFUNDED)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SellQuoteOut {
    pub sell_tokens: Decimal,
    pub conversion_rate: Decimal,
    pub transaction_fee: Decimal,
    /// `sell_tokens × rate − fee`, rounded down to paise.
    pub fiat_amount: Decimal,
    /// Token amount in base units.
    pub base_units: String,
}

/// How a tx-hash submission was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxHashAnswer {
    Accepted,
    /// The same hash again on the same order.
    AlreadyReceived,
}

/// The sandbox's deposit address for an order: an EVM-shaped address derived from the order
/// id (the first 20 bytes of SHA-256 over it), so it is the same every time it is shown and
/// differs between orders.
pub(crate) fn deposit_address(order_id: &str) -> String {
    let digest = Sha256::digest(format!("onmeta-sandbox-deposit:{order_id}").as_bytes());
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{hex}")
}

/// The canonical form of a transaction hash, or `None` when it has no known shape. The
/// sandbox checks the shape only, not whether it fits the order's chain (rampd validates
/// per chain family before it submits):
/// - EVM: `0x`/`0X` and 64 hex digits, kept as lowercase `0x…`;
/// - Tron and Bitcoin: 64 hex digits without prefix, kept lowercase;
/// - Solana: a base58 signature (80 to 90 characters), kept as sent (base58 is
///   case-sensitive).
pub(crate) fn canonical_tx_hash(hash: &str) -> Option<String> {
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let hash = hash.trim();
    let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = hash.strip_prefix("0x").or_else(|| hash.strip_prefix("0X")) {
        return hex64(rest).then(|| format!("0x{}", rest.to_ascii_lowercase()));
    }
    if hex64(hash) {
        return Some(hash.to_ascii_lowercase());
    }
    ((80..=90).contains(&hash.len()) && hash.bytes().all(|b| BASE58.contains(&b)))
        .then(|| hash.to_owned())
}

impl World {
    pub(crate) fn sell_quote(
        &self,
        token_symbol: &str,
        sell_token_amount: Decimal,
    ) -> Result<SellQuoteOut, ApiError> {
        if token_symbol.trim().is_empty() {
            return Err(ApiError::bad_request("sellTokenSymbol is required"));
        }
        if sell_token_amount <= Decimal::ZERO {
            return Err(ApiError::bad_request("sellTokenAmount must be positive"));
        }
        let gross = sell_token_amount
            .checked_mul(self.conversion_rate)
            .ok_or_else(|| ApiError::bad_request("sellTokenAmount is too large"))?;
        let fiat_amount = (gross - self.sell_fee)
            .round_dp_with_strategy(2, RoundingStrategy::ToZero)
            .normalize();
        if fiat_amount <= Decimal::ZERO {
            return Err(ApiError::bad_request(
                "sellTokenAmount is too small to cover the fees",
            ));
        }
        let decimals = token_decimals(token_symbol);
        let base_units = sell_token_amount
            .checked_mul(Decimal::from(10u64.pow(decimals)))
            .map(|d| d.trunc().normalize().to_string())
            .unwrap_or_else(|| "0".to_owned());
        Ok(SellQuoteOut {
            sell_tokens: sell_token_amount.normalize(),
            conversion_rate: self.conversion_rate,
            transaction_fee: self.sell_fee,
            fiat_amount,
            base_units,
        })
    }

    /// Creates an off-ramp order: KYC verified and the payout account linked and verified;
    /// the amount is re-quoted at the current rate.
    pub(crate) fn create_offramp(
        &mut self,
        email: &str,
        new: NewOfframp,
        now: DateTime<Utc>,
    ) -> Result<OfframpOrder, ApiError> {
        self.require_kyc(email)?;
        if new.sender_wallet.trim().is_empty() {
            return Err(ApiError::bad_request("senderWalletAddress is required"));
        }
        if new.refund_wallet.trim().is_empty() {
            return Err(ApiError::bad_request("refundWalletAddress is required"));
        }
        let quote = self.sell_quote(&new.token_symbol, new.sell_token_amount)?;
        let linked = self.user_mut(email).banks.iter().any(|b| {
            b.account_number == new.account_number.trim()
                && b.ifsc.eq_ignore_ascii_case(new.ifsc.trim())
                && b.state == LinkState::Verified
        });
        if !linked {
            return Err(ApiError::bad_request(
                "bank account is not linked to this user: link it with /v1/users/account-link first",
            ));
        }
        let refund = self.scenario.refund_next_offramp > 0;
        if refund {
            self.scenario.refund_next_offramp -= 1;
        }
        let id = self.new_order_id();
        let order = OfframpOrder {
            id: id.clone(),
            email: key(email),
            request: new,
            created_at: now,
            updated_at: now,
            status: OFFRAMP_CREATED.to_owned(),
            deposit_address: deposit_address(&id),
            quote,
            tx_hash: None,
            polls: 0,
            refund,
            payout_reference: None,
        };
        self.user_mut(email).orders.push(id.clone());
        if let Some(merchant_ref) = &order.request.merchant_ref {
            *self
                .stats
                .offramp_orders_by_merchant_ref
                .entry(merchant_ref.clone())
                .or_default() += 1;
        }
        self.offramp_orders.insert(id, order.clone());
        self.emit_offramp(&order);
        Ok(order)
    }

    fn own_offramp_mut(
        &mut self,
        email: &str,
        order_id: &str,
    ) -> Result<&mut OfframpOrder, ApiError> {
        let email = key(email);
        match self.offramp_orders.get_mut(order_id.trim()) {
            Some(order) if order.email == email => Ok(order),
            _ => Err(ApiError::not_found("order not found")),
        }
    }

    /// Records the user's deposit transaction. The same hash again is accepted (and
    /// counted); a different hash after one was accepted, or a hash already used on
    /// another order, is refused.
    pub(crate) fn submit_tx_hash(
        &mut self,
        email: &str,
        order_id: &str,
        tx_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<TxHashAnswer, ApiError> {
        let Some(hash) = canonical_tx_hash(tx_hash) else {
            return Err(ApiError::bad_request(
                "invalid txnHash: expected an EVM, Tron, Bitcoin or Solana transaction hash",
            ));
        };
        let used_elsewhere = self
            .offramp_orders
            .values()
            .any(|o| o.id != order_id.trim() && o.tx_hash.as_deref() == Some(hash.as_str()));
        let order = self.own_offramp_mut(email, order_id)?;
        let answer = match order.tx_hash.as_deref() {
            Some(existing) if existing == hash => TxHashAnswer::AlreadyReceived,
            Some(_) => {
                // A 2xx carrying the rejection, as the provider does for business errors.
                return Err(ApiError {
                    http: 200,
                    code: 400,
                    message: "order already has a different txnHash".to_owned(),
                });
            }
            None if used_elsewhere => {
                return Err(ApiError::bad_request(
                    "txnHash already used on another order",
                ));
            }
            None => {
                order.tx_hash = Some(hash);
                order.updated_at = now;
                TxHashAnswer::Accepted
            }
        };
        let id = order.id.clone();
        *self
            .stats
            .tx_hash_submissions_by_order
            .entry(id)
            .or_default() += 1;
        Ok(answer)
    }

    /// Reads an off-ramp order's status, counting one poll once a hash is known.
    pub(crate) fn poll_offramp(
        &mut self,
        email: &str,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<OfframpOrder, ApiError> {
        let progression = self.offramp_progression.clone();
        let order = self.own_offramp_mut(email, order_id)?;
        if order.tx_hash.is_none() || order.terminal() {
            return Ok(order.clone());
        }
        order.polls = order.polls.saturating_add(1);
        let next = offramp_progressed_status(&progression, order.polls, order.refund);
        let changed = order.reported_status() != next;
        if changed {
            order.status = next.to_owned();
            order.updated_at = now;
        }
        if matches!(
            order.status.as_str(),
            OFFRAMP_PAYOUT_SUCCESS | OFFRAMP_COMPLETED
        ) && order.payout_reference.is_none()
        {
            order.payout_reference = Some(random_digits(12));
        }
        let order = order.clone();
        if changed {
            self.emit_offramp(&order);
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::{SandboxConfig, Scenario};

    const EMAIL: &str = "ravi@example.com";
    const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn new_offramp(merchant_ref: &str) -> NewOfframp {
        NewOfframp {
            account_number: "123456787315".into(),
            ifsc: "hdfc0000123".into(),
            chain_id: 137,
            sell_token_amount: dec("10"),
            token_symbol: "USDT".into(),
            token_address: None,
            sender_wallet: "0xs".into(),
            refund_wallet: "0xr".into(),
            merchant_ref: Some(merchant_ref.into()),
        }
    }

    fn linked_world(scenario: Scenario) -> World {
        let mut w = World::new(&SandboxConfig {
            scenario,
            ..SandboxConfig::default()
        });
        w.link_bank(EMAIL, "123456787315", "Ravi", "HDFC0000123")
            .unwrap();
        w
    }

    #[test]
    fn sell_quote_is_tokens_times_rate_minus_fee() {
        let mut w = World::new(&SandboxConfig::default());
        let q = w.sell_quote("USDT", dec("10")).unwrap();
        assert_eq!(q.fiat_amount, dec("880")); // 10 × 88.50 − 5.00
        assert_eq!(q.base_units, "10000000");
        w.conversion_rate = dec("90.123");
        assert_eq!(
            w.sell_quote("USDT", dec("1.5")).unwrap().fiat_amount,
            dec("130.18") // 135.1845 − 5 = 130.1845, rounded down
        );
        assert!(w.sell_quote("USDT", dec("0.05")).is_err());
        assert!(w.sell_quote("USDT", Decimal::ZERO).is_err());
    }

    #[test]
    fn create_needs_a_verified_bank_link() {
        let mut w = World::new(&SandboxConfig::default());
        let err = w.create_offramp(EMAIL, new_offramp("m"), t0()).unwrap_err();
        assert!(err.message.contains("not linked"), "{}", err.message);
        let mut w = linked_world(Scenario::default());
        let o = w.create_offramp(EMAIL, new_offramp("m"), t0()).unwrap();
        assert_eq!(o.status, "cryptoInit");
        assert_eq!(o.reported_status(), "pending");
        assert!(o.deposit_address.starts_with("0x") && o.deposit_address.len() == 42);
        assert_eq!(o.deposit_address, deposit_address(&o.id));
        let other = w.create_offramp(EMAIL, new_offramp("m"), t0()).unwrap();
        assert_ne!(other.deposit_address, o.deposit_address);
        assert_eq!(o.quote.fiat_amount, dec("880"));
        assert_eq!(w.stats.offramp_orders_by_merchant_ref["m"], 2);
    }

    #[test]
    fn tx_hash_rules_and_progression() {
        let mut w = linked_world(Scenario::default());
        let o = w.create_offramp(EMAIL, new_offramp("m"), t0()).unwrap();
        // No hash yet: stays pending however often it is polled.
        for _ in 0..3 {
            assert_eq!(
                w.poll_offramp(EMAIL, &o.id, t0())
                    .unwrap()
                    .reported_status(),
                "pending"
            );
        }
        assert_eq!(
            w.submit_tx_hash(EMAIL, &o.id, "0x12", t0())
                .unwrap_err()
                .http,
            400
        );
        assert_eq!(
            w.submit_tx_hash(EMAIL, &o.id, HASH, t0()).unwrap(),
            TxHashAnswer::Accepted
        );
        assert_eq!(
            w.submit_tx_hash(
                EMAIL,
                &o.id,
                &HASH.to_ascii_uppercase().replace("0X", "0x"),
                t0()
            )
            .unwrap(),
            TxHashAnswer::AlreadyReceived
        );
        let other = HASH.replace('1', "2");
        let err = w.submit_tx_hash(EMAIL, &o.id, &other, t0()).unwrap_err();
        assert_eq!((err.http, err.code), (200, 400));
        // The hash cannot be reused on another order either.
        let second = w.create_offramp(EMAIL, new_offramp("m2"), t0()).unwrap();
        assert_eq!(
            w.submit_tx_hash(EMAIL, &second.id, HASH, t0())
                .unwrap_err()
                .http,
            400
        );
        assert_eq!(w.stats.tx_hash_submissions_by_order[&o.id], 2);

        let seen: Vec<_> = (0..5)
            .map(|_| w.poll_offramp(EMAIL, &o.id, t0()).unwrap())
            .collect();
        let statuses: Vec<_> = seen
            .iter()
            .map(|o| o.reported_status().to_owned())
            .collect();
        assert_eq!(
            statuses,
            [
                "orderReceived",
                "CryptoReceived",
                "PayoutSuccess",
                "completed",
                "completed"
            ]
        );
        assert!(seen[1].payout_reference.is_none());
        assert_eq!(seen[2].payout_reference, seen[4].payout_reference);
        assert!(seen[2].payout_reference.is_some());
    }

    #[test]
    fn tx_hash_shapes() {
        let evm = format!("0X{}", "AB".repeat(32));
        assert_eq!(
            canonical_tx_hash(&evm),
            Some(format!("0x{}", "ab".repeat(32)))
        );
        let tron = "CD".repeat(32);
        assert_eq!(canonical_tx_hash(&tron), Some("cd".repeat(32)));
        let solana = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW";
        assert_eq!(canonical_tx_hash(solana).as_deref(), Some(solana));
        for bad in [
            "0x12",
            &format!("0x{}", "g".repeat(64)),
            "",
            &"0".repeat(63),
            "O0Il",
        ] {
            assert_eq!(canonical_tx_hash(bad), None, "{bad}");
        }
    }

    #[test]
    fn refund_budget_marks_the_next_orders() {
        let mut w = linked_world(Scenario {
            refund_next_offramp: 1,
            ..Scenario::default()
        });
        let refunded = w.create_offramp(EMAIL, new_offramp("a"), t0()).unwrap();
        let normal = w.create_offramp(EMAIL, new_offramp("b"), t0()).unwrap();
        assert_eq!(w.scenario.refund_next_offramp, 0);
        w.submit_tx_hash(EMAIL, &refunded.id, HASH, t0()).unwrap();
        let statuses: Vec<_> = (0..3)
            .map(|_| {
                w.poll_offramp(EMAIL, &refunded.id, t0())
                    .unwrap()
                    .reported_status()
                    .to_owned()
            })
            .collect();
        assert_eq!(statuses, ["orderReceived", "refunded", "refunded"]);
        assert!(!normal.refund);
        // Another user cannot see the order.
        assert_eq!(
            w.poll_offramp("x@example.com", &refunded.id, t0())
                .unwrap_err()
                .http,
            404
        );
    }
}
