//! Lenient readers and writers of JSON values that every connector needs: providers send
//! amounts and ids as numbers or strings, and take amounts as JSON numbers. Money never
//! passes through a float unchecked.

use std::str::FromStr;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;

/// A decimal as a JSON number when that number's text is exactly the decimal (integers and
/// ordinary amounts like `1000.50`), otherwise as a string. Never loses precision.
pub(crate) fn decimal_json(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0
        && let Some(i) = d.to_i64()
    {
        return Value::from(i);
    }
    let text = d.to_string();
    if let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
        && Decimal::from_str(&n.to_string()).ok() == Some(d)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

/// Strings (trimmed, empty → `None`) and numbers (their JSON text) as a string.
pub(crate) fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A decimal from a JSON string or number. Strings are parsed as text (never through f64);
/// numbers use serde_json's text for them. Scientific notation is accepted.
pub(crate) fn value_decimal(v: &Value) -> Option<Decimal> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}
