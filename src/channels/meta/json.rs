//! Lenient accessors for Meta's webhook JSON, shared by the WhatsApp and Instagram parsers.
//!
//! Meta adds fields and types without notice, and a delivery we refuse is retried for days, so
//! a parser reads every field through these: a missing key, a wrong type or a blank string is
//! simply absent, never an error.

use serde_json::Value;

pub(crate) fn items(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// A string that holds more than whitespace, trimmed: for ids, names and type tags.
pub(crate) fn trimmed(value: &Value) -> Option<&str> {
    value.as_str().map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn text<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    trimmed(object.get(key)?)
}

/// A string that holds more than whitespace, as sent: for what a person wrote.
pub(crate) fn body<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get(key)?.as_str().filter(|s| !s.trim().is_empty())
}

/// An identifier: a non-blank string, or a number written out (ids are strings on the wire, but
/// a number should not cost the item).
pub(crate) fn id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        other => trimmed(other).map(str::to_owned),
    }
}

pub(crate) fn number(value: Option<&Value>) -> Option<f64> {
    let number = match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    number.filter(|f| f.is_finite())
}
