//! How the simulated providers write values, from their documents: amounts as JSON numbers
//! (the documents' examples are numbers; their servers are JavaScript, so a number is a
//! double), and masked account numbers with only the last four digits shown. Written here
//! rather than borrowed from a connector, so that a connector's reading of these is tested
//! against an independent writer.

use serde_json::Value;

/// `d` as the providers send it: an integer when it is whole, otherwise a double.
pub(crate) fn amount(d: rust_decimal::Decimal) -> Value {
    let d = d.normalize();
    if d.fract().is_zero()
        && let Ok(i) = i64::try_from(d.mantissa())
    {
        return Value::from(i);
    }
    d.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The last four characters, the rest as `*`, as the provider masks account numbers
/// (`****5678`).
pub(crate) fn mask_tail(s: &str) -> String {
    let shown: String = {
        let chars: Vec<char> = s.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    format!("****{shown}")
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;

    #[test]
    fn amounts_are_numbers_and_accounts_are_masked() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(amount(d("1000")), json!(1000));
        assert_eq!(amount(d("1000.00")), json!(1000));
        assert_eq!(amount(d("1500.50")), json!(1500.5));
        assert_eq!(amount(d("0.1")), json!(0.1));
        assert_eq!(mask_tail("50100012345678"), "****5678");
        assert_eq!(mask_tail("12"), "****12");
    }
}
