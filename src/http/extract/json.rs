//! JSON request bodies: the content type (415), the size limit (413), a body that does not
//! arrive in time (408), the syntax (400), and the shape (422, every bad field listed).

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::fields;
use crate::error::{ApiError, FieldError};
use crate::http::serve::BodyTimedOut;
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

/// Reads the body, refusing one over `limit` bytes with 413, and one that has not arrived by
/// the connection's body deadline with 408.
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
        let chunk = chunk.map_err(unreadable)?;
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

/// A body that could not be read: too slow (408), or broken off.
fn unreadable(error: axum::Error) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = cause {
        if e.is::<BodyTimedOut>() {
            return ApiError::Client {
                status: StatusCode::REQUEST_TIMEOUT,
                code: "request_timeout",
                detail: e.to_string(),
            };
        }
        cause = e.source();
    }
    ApiError::bad_request("the request body could not be read")
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

/// Parses JSON bytes into `T`: invalid JSON is 400; a JSON value of the wrong shape is 422
/// listing every missing or wrong-typed field. Strings holding NUL are refused (PostgreSQL
/// cannot store them, and both backends must behave alike).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let mut nuls = Vec::new();
    find_nuls(&value, &mut vec!["body".to_string()], &mut nuls);
    if !nuls.is_empty() {
        return Err(ApiError::Validation(nuls));
    }
    // Every body is an object; serde would otherwise fill a struct from an array by position.
    if !value.is_object() {
        return Err(ApiError::invalid(
            &["body"],
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        ));
    }
    match serde_json::from_value(value) {
        Ok(parsed) => Ok(parsed),
        // Only a refused body pays for parsing again and for finding every error.
        Err(_) => {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
            Err(ApiError::Validation(fields::all_errors::<T>(value)))
        }
    }
}

/// Every string holding NUL, up to a bound, as a validation error at its path.
fn find_nuls(value: &Value, path: &mut Vec<String>, found: &mut Vec<FieldError>) {
    if found.len() >= fields::MAX_ERRORS {
        return;
    }
    match value {
        Value::String(s) if s.contains('\0') => {
            let loc: Vec<&str> = path.iter().map(String::as_str).collect();
            found.push(FieldError::new(
                &loc,
                "String should not contain NUL characters",
                "string_nul",
            ));
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                find_nuls(v, path, found);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                find_nuls(v, path, found);
                path.pop();
            }
        }
        _ => {}
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
            missing,
            vec![FieldError::new(
                &["body", "to"],
                "Field required",
                "missing"
            )]
        );
        let wrong = detail(parse_json::<Body>(br#"{"to": 5}"#).unwrap_err());
        assert_eq!(wrong[0].loc, vec![Value::from("body"), Value::from("to")]);
        assert_eq!(wrong[0].kind, "string_type");
        let nul = detail(parse_json::<Body>(br#"{"to": "a\u0000b"}"#).unwrap_err());
        assert_eq!(nul[0].kind, "string_nul");
    }
}
