//! Every problem of a JSON body in one 422, as FastAPI lists them.
//!
//! serde stops at the first error. So the body is deserialized again with a stand-in value
//! where the error was (for a missing field, the field is added) until the error moves to
//! another field; each field the error visits is listed once. The stand-ins are generic (`null`,
//! `""`, `0`, `false`, `{}`, `[]`, and for an enum the first variant serde names), so no
//! request type needs to describe its own fields. Each retry deserializes the whole body, so
//! the attempts are bounded.

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::FieldError;

/// Errors listed at most in one answer.
pub(super) const MAX_ERRORS: usize = 32;
/// Deserializations at most for one body.
const MAX_ATTEMPTS: usize = 128;

/// A key or an index on the way to a value.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// One error of serde's: where (a missing field's own name included), and serde's message.
struct Found {
    steps: Vec<Step>,
    /// The path went through something other than a map key or a sequence index.
    opaque: bool,
    message: String,
}

/// Every field error of `value` as a `T`, in the order found; `value` failed to deserialize.
pub(super) fn all_errors<T: DeserializeOwned>(mut value: Value) -> Vec<FieldError> {
    let mut attempts = 0;
    let mut errors = Vec::new();
    let mut listed: Vec<Vec<Step>> = Vec::new();
    let mut next = first_error::<T>(&value, &mut attempts);
    while let Some(found) = next.take() {
        errors.push(found.to_field_error());
        listed.push(found.steps.clone());
        if errors.len() >= MAX_ERRORS || found.opaque {
            break;
        }
        let mut candidates = stand_ins(&found.message);
        let mut tried = Vec::new();
        while let Some(candidate) = candidates.pop_front() {
            if attempts >= MAX_ATTEMPTS || !put(&mut value, &found.steps, candidate.clone()) {
                break;
            }
            tried.push(candidate);
            match first_error::<T>(&value, &mut attempts) {
                // With stand-ins for the fields listed, the rest is fine.
                None => return errors,
                // Still here, or inside the stand-in itself (a `{}` missing fields): try the
                // next one, first any enum variant this error names.
                Some(other) if other.steps.starts_with(&found.steps) => {
                    if let Some(v) = variant(&other.message).filter(|v| !tried.contains(v)) {
                        candidates.push_front(v);
                    }
                }
                Some(other) => {
                    if !listed.contains(&other.steps) {
                        next = Some(other);
                    }
                    break;
                }
            }
        }
    }
    errors
}

fn first_error<T: DeserializeOwned>(value: &Value, attempts: &mut usize) -> Option<Found> {
    use serde_path_to_error::Segment;
    *attempts += 1;
    let error = serde_path_to_error::deserialize::<_, T>(value).err()?;
    let mut opaque = false;
    let mut steps: Vec<Step> = error
        .path()
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Unknown => {
                opaque = true;
                None
            }
        })
        .collect();
    let message = error.into_inner().to_string();
    if let Some(field) = missing_field(&message) {
        steps.push(Step::Key(field.to_string()));
    }
    Some(Found {
        steps,
        opaque,
        message,
    })
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

impl Found {
    fn to_field_error(&self) -> FieldError {
        let mut loc = vec!["body".to_string()];
        loc.extend(self.steps.iter().map(|step| match step {
            Step::Key(key) => key.clone(),
            Step::Index(index) => index.to_string(),
        }));
        let loc: Vec<&str> = loc.iter().map(String::as_str).collect();
        let (msg, kind) = describe(&self.message);
        FieldError::new(&loc, msg, kind)
    }
}

/// Turns serde's message into pydantic-like `msg` and `type`.
fn describe(message: &str) -> (String, &'static str) {
    if missing_field(message).is_some() {
        return ("Field required".into(), "missing");
    }
    let kind = if message.starts_with("invalid type") {
        let expected = message.rsplit("expected ").next().unwrap_or("");
        if expected.contains("string") {
            "string_type"
        } else if expected.contains("integer") || expected.contains("i64") {
            "int_type"
        } else if expected.contains("bool") {
            "bool_type"
        } else if expected.contains("struct") || expected.contains("map") {
            "model_attributes_type"
        } else {
            "type_error"
        }
    } else if message.starts_with("unknown variant") {
        "enum"
    } else if message.starts_with("unknown field") {
        "extra_forbidden"
    } else {
        "value_error"
    };
    (message.to_string(), kind)
}

/// Values to try in place of the one serde refused: the first variant serde names for an
/// enum, then one of each JSON type.
fn stand_ins(message: &str) -> VecDeque<Value> {
    let mut values: VecDeque<Value> = variant(message).into_iter().collect();
    values.extend([
        Value::Null,
        Value::from(""),
        Value::from(0),
        Value::from(false),
        Value::Object(Map::new()),
        Value::Array(Vec::new()),
    ]);
    values
}

/// The first variant named by ``unknown variant `x`, expected `a` or `b` ``.
fn variant(message: &str) -> Option<Value> {
    let (_, expected) = message.split_once("expected ")?;
    expected.split('`').nth(1).map(Value::from)
}

/// Puts `candidate` at `steps` (adding the last key if missing); false if the path does not
/// lead into the body.
fn put(value: &mut Value, steps: &[Step], candidate: Value) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut target = value;
    for step in parents {
        target = match (step, target) {
            (Step::Key(key), Value::Object(map)) => match map.get_mut(key) {
                Some(inner) => inner,
                None => return false,
            },
            (Step::Index(index), Value::Array(items)) => match items.get_mut(*index) {
                Some(inner) => inner,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, target) {
        (Step::Key(key), Value::Object(map)) => {
            map.insert(key.clone(), candidate);
            true
        }
        (Step::Index(index), Value::Array(items)) if *index < items.len() => {
            items[*index] = candidate;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Way {
        In,
        Out,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        id: i64,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        way: Way,
        count: i64,
        flag: Option<bool>,
        items: Vec<Inner>,
    }

    fn locs(body: Value) -> Vec<(String, String)> {
        all_errors::<Body>(body)
            .into_iter()
            .map(|e| {
                let loc: Vec<String> = e.loc.iter().map(|p| p.to_string()).collect();
                (loc.join("."), e.kind)
            })
            .collect()
    }

    #[test]
    fn every_missing_field_is_listed_in_declaration_order() {
        let found = locs(serde_json::json!({}));
        let expected = ["name", "way", "count", "items"]
            .map(|f| (format!("\"body\".\"{f}\""), "missing".to_string()));
        assert_eq!(found, expected);
    }

    #[test]
    fn wrong_types_nested_ones_and_missing_fields_are_listed_together() {
        let mut found = locs(serde_json::json!({
            "name": 5, "way": "sideways", "flag": "yes", "items": [{"id": 1}, {"id": "two"}]
        }));
        found.sort();
        assert_eq!(
            found,
            vec![
                (r#""body"."count""#.into(), "missing".into()),
                (r#""body"."flag""#.into(), "bool_type".into()),
                (r#""body"."items".1."id""#.into(), "int_type".into()),
                (r#""body"."name""#.into(), "string_type".into()),
                (r#""body"."way""#.into(), "enum".into()),
            ]
        );
    }

    #[test]
    fn a_field_no_stand_in_satisfies_ends_the_list_without_looping() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Strict {
            #[serde(deserialize_with = "never")]
            a: String,
            b: String,
        }
        fn never<'de, D: serde::Deserializer<'de>>(_: D) -> Result<String, D::Error> {
            Err(serde::de::Error::custom("never valid"))
        }
        let found = all_errors::<Strict>(serde_json::json!({"a": "x"}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, "value_error");
    }
}
