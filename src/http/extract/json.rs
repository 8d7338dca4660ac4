//! JSON request bodies: the content type (415), the size limit (413), the syntax (400), and the
//! shape (422 with `loc: ["body", …]`).

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, FieldError};
use crate::http::AppState;

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
