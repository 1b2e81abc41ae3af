//! What the on-chain history (`GET /transactions/identifier/{identifier}/type/on-chain/history`)
//! says about a transfer. The API has no endpoint that reads a deposit, a confirmation or a
//! mint back, so the history is the only way to see a mint land or a user's tokens arrive.
//! Only `status: "Completed"` with `isError: "0"` is documented; a status that reads as a
//! failure ends the check, any other one is taken as not final yet.

use rust_decimal::Decimal;

use super::wire::Transfer;

/// The transfer a check expects: to whom, and how many tokens.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub to: &'a str,
    pub amount: Decimal,
}

/// A redeem's check of the user's transfer.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferCheck {
    /// Completed, not reverted, to the expected identifier, for the expected amount.
    Verified(Transfer),
    /// Not in the history, or not completed yet.
    NotYet,
    /// Reverted or failed on chain.
    Failed { reason: String },
    /// Completed, but not what the order expects: a person looks at it.
    Mismatch { what: String },
}

/// Check the transfer `tx_hash` (hashes compare without regard to case).
pub fn verify_transfer(history: &[Transfer], tx_hash: &str, expected: Expected) -> TransferCheck {
    let Some(t) = history
        .iter()
        .find(|t| t.trx_id.eq_ignore_ascii_case(tx_hash.trim()))
    else {
        return TransferCheck::NotYet;
    };
    if let Some(reason) = failure(t) {
        return TransferCheck::Failed { reason };
    }
    if !completed(t) {
        return TransferCheck::NotYet;
    }
    if !t.to.eq_ignore_ascii_case(expected.to) {
        return TransferCheck::Mismatch {
            what: format!("sent to {}, expected {}", t.to, expected.to),
        };
    }
    if t.amount != expected.amount {
        return TransferCheck::Mismatch {
            what: format!("{} tokens sent, expected {}", t.amount, expected.amount),
        };
    }
    TransferCheck::Verified(t.clone())
}

/// A mint's check for its credit to the user's wallet.
#[derive(Debug, Clone, PartialEq)]
pub enum MintCheck {
    Credited(Transfer),
    NotYet,
    /// More than one completed credit fits and none can be told apart (same wallet, same
    /// amount, none claimed by another order): a person decides, rampd does not guess.
    Ambiguous {
        candidates: usize,
    },
}

/// The completed, unreverted credits of `expected.amount` to `expected.to` in `history`:
/// what could be a mint's credit, before the ones other orders hold are left out.
pub fn credits<'h>(
    history: &'h [Transfer],
    expected: Expected<'h>,
) -> impl Iterator<Item = &'h Transfer> {
    history
        .iter()
        .filter(|t| completed(t) && failure(t).is_none())
        .filter(|t| {
            t.payment_type
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case("credit"))
        })
        .filter(move |t| t.to.eq_ignore_ascii_case(expected.to) && t.amount == expected.amount)
}

/// Find the mint credit of `expected.amount` to `expected.to` among `history` (queried
/// with the order's `memo` where the mint carries one), leaving out the transfers that
/// other orders already claimed.
pub fn mint_credit(history: &[Transfer], expected: Expected, claimed: &[String]) -> MintCheck {
    let fits: Vec<&Transfer> = credits(history, expected)
        .filter(|t| !claimed.iter().any(|c| c.eq_ignore_ascii_case(&t.trx_id)))
        .collect();
    match fits.as_slice() {
        [] => MintCheck::NotYet,
        [one] => MintCheck::Credited((*one).clone()),
        many => MintCheck::Ambiguous {
            candidates: many.len(),
        },
    }
}

fn completed(t: &Transfer) -> bool {
    t.status.eq_ignore_ascii_case("Completed")
}

/// Why `t` failed on chain, if it did: `isError`, a revert reason, or a status that says so.
fn failure(t: &Transfer) -> Option<String> {
    if let Some(r) = &t.revert_reason {
        return Some(format!("reverted: {r}"));
    }
    if t.is_error {
        return Some("the transaction is marked as an error".into());
    }
    let s = t.status.to_ascii_lowercase();
    ["fail", "revert", "reject", "error"]
        .iter()
        .any(|w| s.contains(w))
        .then(|| format!("status {}", t.status))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn transfer(trx: &str, to: &str, amount: Decimal, status: &str) -> Transfer {
        Transfer {
            trx_id: trx.into(),
            amount,
            from: "itech.sheetalus.ul".into(),
            to: to.into(),
            status: status.into(),
            payment_type: Some("credit".into()),
            is_error: false,
            revert_reason: None,
        }
    }

    const TO: &str = "itech.punitus.ul";

    fn expected(amount: Decimal) -> Expected<'static> {
        Expected { to: TO, amount }
    }

    #[test]
    fn a_completed_transfer_to_us_for_the_amount_is_verified() {
        let h = [
            transfer("0xAA", TO, d("1"), "Completed"),
            transfer("0xbb", TO, d("2"), "Completed"),
        ];
        assert_eq!(
            verify_transfer(&h, "0xBB", expected(d("2.0"))),
            TransferCheck::Verified(h[1].clone())
        );
    }

    #[test]
    fn a_missing_or_pending_transfer_is_not_yet() {
        let h = [transfer("0xaa", TO, d("1"), "Pending")];
        assert_eq!(
            verify_transfer(&h, "0xaa", expected(d("1"))),
            TransferCheck::NotYet
        );
        assert_eq!(
            verify_transfer(&h, "0xcc", expected(d("1"))),
            TransferCheck::NotYet
        );
        assert_eq!(
            verify_transfer(&[], "0xaa", expected(d("1"))),
            TransferCheck::NotYet
        );
    }

    #[test]
    fn a_reverted_or_failed_transfer_fails() {
        let mut reverted = transfer("0xaa", TO, d("1"), "Completed");
        reverted.revert_reason = Some("out of gas".into());
        let mut error = transfer("0xbb", TO, d("1"), "Completed");
        error.is_error = true;
        let failed = transfer("0xcc", TO, d("1"), "Failed");
        let h = [reverted, error, failed];
        for (hash, why) in [
            ("0xaa", "reverted: out of gas"),
            ("0xbb", "the transaction is marked as an error"),
            ("0xcc", "status Failed"),
        ] {
            assert_eq!(
                verify_transfer(&h, hash, expected(d("1"))),
                TransferCheck::Failed { reason: why.into() },
                "{hash}"
            );
        }
    }

    #[test]
    fn another_address_or_amount_is_a_mismatch_for_a_person() {
        let h = [
            transfer("0xaa", "someone.else.ul", d("1"), "Completed"),
            transfer("0xbb", TO, d("0.5"), "Completed"),
        ];
        assert_eq!(
            verify_transfer(&h, "0xaa", expected(d("1"))),
            TransferCheck::Mismatch {
                what: format!("sent to someone.else.ul, expected {TO}")
            }
        );
        assert_eq!(
            verify_transfer(&h, "0xbb", expected(d("1"))),
            TransferCheck::Mismatch {
                what: "0.5 tokens sent, expected 1".into()
            }
        );
    }

    #[test]
    fn the_one_fitting_unclaimed_credit_is_the_mint() {
        let mut debit = transfer("0x01", TO, d("5"), "Completed");
        debit.payment_type = Some("debit".into());
        let h = [
            debit,
            transfer("0x02", TO, d("4"), "Completed"),
            transfer("0x03", "other.ul", d("5"), "Completed"),
            transfer("0x04", TO, d("5"), "Pending"),
            transfer("0x05", TO, d("5"), "Completed"),
        ];
        assert_eq!(
            mint_credit(&h, expected(d("5")), &[]),
            MintCheck::Credited(h[4].clone())
        );
        assert_eq!(
            mint_credit(&h, expected(d("5")), &["0X05".into()]),
            MintCheck::NotYet,
            "claimed by another order"
        );
    }

    #[test]
    fn two_fitting_credits_are_ambiguous_not_guessed() {
        let h = [
            transfer("0x01", TO, d("5"), "Completed"),
            transfer("0x02", TO, d("5"), "Completed"),
        ];
        assert_eq!(
            mint_credit(&h, expected(d("5")), &[]),
            MintCheck::Ambiguous { candidates: 2 }
        );
        assert_eq!(
            mint_credit(&h, expected(d("5")), &["0x01".into()]),
            MintCheck::Credited(h[1].clone())
        );
    }
}
