//! Request extractors whose rejections use the contract's error shapes: `JsonBody` (415, 413,
//! 400, 422 with `loc: ["body", …]`), `Params` (422 with `loc: ["query", name]`) and `PathId`
//! (422 with `loc: ["path", "id"]`).

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AppState;
use crate::error::{ApiError, FieldError};

/// A JSON request body parsed into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(CONTENT_TYPE)) {
            return Err(ApiError::Client {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                detail: "expected Content-Type: application/json".into(),
            });
        }
        let bytes = read_body(req, state.config().max_body_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Beyond the limit, a body is still read (and discarded) up to this many bytes, so that the
/// client, still uploading, can read our 413 instead of meeting a reset connection.
const DRAIN_CAP: usize = 32 * 1024 * 1024;

/// Reads the body, refusing one over `limit` bytes with 413.
pub async fn read_body(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use futures_util::StreamExt;
    let too_large = || ApiError::Client {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "payload_too_large",
        detail: format!("request body is larger than {limit} bytes"),
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return Err(too_large());
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buffer = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            buffer.extend_from_slice(&chunk);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(buffer.freeze())
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses JSON bytes into `T`: invalid JSON is 400; a JSON value of the wrong shape is 422 with
/// the path of the offending field. Strings holding NUL are refused (PostgreSQL cannot store
/// them, and both backends must behave alike).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    if let Some(path) = find_nul(&value, &mut vec!["body".to_string()]) {
        let loc: Vec<&str> = path.iter().map(String::as_str).collect();
        return Err(ApiError::invalid(
            &loc,
            "String should not contain NUL characters",
            "string_nul",
        ));
    }
    // Every body is an object; serde would otherwise fill a struct from an array by position.
    if !value.is_object() {
        return Err(ApiError::invalid(
            &["body"],
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        use serde_path_to_error::Segment;
        let mut loc = vec!["body".to_string()];
        loc.extend(e.path().iter().filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        }));
        let inner = e.into_inner().to_string();
        let (msg, kind) = describe_serde_error(&inner, &mut loc);
        let loc: Vec<&str> = loc.iter().map(String::as_str).collect();
        ApiError::Validation(vec![FieldError::new(&loc, msg, &kind)])
    })
}

/// Turns serde's message into pydantic-like `msg` and `type`, moving a missing field's name
/// into `loc`.
fn describe_serde_error(inner: &str, loc: &mut Vec<String>) -> (String, String) {
    if let Some(rest) = inner.strip_prefix("missing field `") {
        if let Some(field) = rest.split('`').next() {
            loc.push(field.to_string());
        }
        return ("Field required".into(), "missing".into());
    }
    let kind = if inner.starts_with("invalid type") {
        let expected = inner.rsplit("expected ").next().unwrap_or("");
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
    } else if inner.starts_with("unknown variant") {
        "enum"
    } else if inner.starts_with("unknown field") {
        "extra_forbidden"
    } else {
        "value_error"
    };
    (inner.to_string(), kind.to_string())
}

fn find_nul(value: &Value, path: &mut Vec<String>) -> Option<Vec<String>> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(i.to_string());
            let found = find_nul(v, path);
            path.pop();
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            path.push(k.clone());
            let found = find_nul(v, path);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// Refuses an identifier longer than [`crate::domain::MAX_ID_CHARS`].
pub fn check_id_len(loc: &[&str], value: &str) -> Result<(), ApiError> {
    let max = crate::domain::MAX_ID_CHARS;
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            loc,
            format!("String should have at most {max} characters"),
            "string_too_long",
        ));
    }
    Ok(())
}

/// The query string, with typed accessors that report errors at `["query", name]`.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|_| ApiError::invalid(&["query"], "Malformed query string", "value_error"))?;
        // The last occurrence wins, as in most frameworks.
        Ok(Params(pairs.into_iter().collect()))
    }
}

impl Params {
    pub fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            Some(v) if v.contains('\0') => Err(ApiError::invalid(
                &["query", name],
                "String should not contain NUL characters",
                "string_nul",
            )),
            Some(v) => Ok(Some(v.as_str())),
            None => Ok(None),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.str(name)?
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::invalid(
                        &["query", name],
                        "Input should be a valid integer, unable to parse string as an integer",
                        "int_parsing",
                    )
                })
            })
            .transpose()
    }

    /// An integer within `min..=max`, or `default` when absent. Never clamped.
    pub fn bounded(
        &self,
        name: &str,
        default: i64,
        min: i64,
        max: Option<i64>,
    ) -> Result<i64, ApiError> {
        let value = self.int(name)?.unwrap_or(default);
        if value < min {
            return Err(ApiError::invalid(
                &["query", name],
                format!("Input should be greater than or equal to {min}"),
                "greater_than_equal",
            ));
        }
        if let Some(max) = max.filter(|max| value > *max) {
            return Err(ApiError::invalid(
                &["query", name],
                format!("Input should be less than or equal to {max}"),
                "less_than_equal",
            ));
        }
        Ok(value)
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.str(name)?
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ApiError::invalid(
                    &["query", name],
                    "Input should be a valid boolean, unable to interpret input",
                    "bool_parsing",
                )),
            })
            .transpose()
    }

    /// `limit` (1–500, default 50) and `offset` (≥ 0, default 0).
    pub fn page(&self) -> Result<(i64, i64), ApiError> {
        Ok((
            self.bounded("limit", 50, 1, Some(500))?,
            self.bounded("offset", 0, 0, None)?,
        ))
    }
}

/// An integer `{id}` path segment.
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::invalid(&["path", "id"], "Invalid path", "value_error"))?;
        raw.parse::<i64>().map(PathId).map_err(|_| {
            ApiError::invalid(
                &["path", "id"],
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        to: String,
        n: Option<i64>,
    }

    fn detail(e: ApiError) -> Vec<FieldError> {
        match e {
            ApiError::Validation(v) => v,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_point_at_the_field() {
        assert_eq!(
            parse_json::<Body>(b"{").map(|_| ()).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        let missing = detail(parse_json::<Body>(b"{}").unwrap_err());
        assert_eq!(
            missing[0],
            FieldError::new(&["body", "to"], "Field required", "missing")
        );
        let wrong = detail(parse_json::<Body>(br#"{"to": 5}"#).unwrap_err());
        assert_eq!(wrong[0].loc, vec![Value::from("body"), Value::from("to")]);
        assert_eq!(wrong[0].kind, "string_type");
        let nul = detail(parse_json::<Body>(br#"{"to": "a\u0000b"}"#).unwrap_err());
        assert_eq!(nul[0].kind, "string_nul");
    }
}
