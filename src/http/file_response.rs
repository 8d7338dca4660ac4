//! How a stored file is answered: the whole file or one byte range of it (RFC 9110 §14), a 304
//! for a copy the client already has (by `ETag`, the content's SHA-256), and a
//! `Content-Disposition` whose file name no client can misread (RFC 6266 with RFC 8187's
//! `filename*`). The body streams from disk in small chunks, never whole in memory.

use std::io::SeekFrom;

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, IF_RANGE, RANGE,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::error::ApiError;

/// Bytes read from disk per step of a response body.
const CHUNK: usize = 64 * 1024;
/// Longest file name put in a header; longer ones are cut.
const MAX_NAME_CHARS: usize = 180;

/// A file to answer with.
pub struct ServedFile {
    pub content: tokio::fs::File,
    pub length: u64,
    /// Lowercase hex SHA-256 of the content: the `ETag`.
    pub sha256: String,
    pub content_type: HeaderValue,
    pub file_name: String,
}

/// What the request's `Range` asks of a file of some length.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    /// No range, or one this server answers with the whole file (several ranges, a malformed
    /// header, another unit: RFC 9110 lets a server ignore them).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range that starts past the end.
    Unsatisfiable,
}

/// The answer to a GET (or HEAD) of `file` with the request's `headers`.
pub async fn respond(mut file: ServedFile, headers: &HeaderMap) -> Result<Response, ApiError> {
    let etag = format!("\"{}\"", file.sha256);
    let mut common = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        common.insert(ETAG, value);
    }
    // The content of an id never changes; only the key holder's browser may keep it.
    common.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if none_match(headers, &file.sha256) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    common.insert(CONTENT_TYPE, file.content_type.clone());
    // A customer's file is shown, never run: no sniffing, and a sandbox for any HTML.
    common.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    common.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    common.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&content_disposition(&file.file_name)) {
        common.insert(CONTENT_DISPOSITION, value);
    }
    let range_applies = headers
        .get(IF_RANGE)
        .map_or(true, |v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let wanted = match headers.get(RANGE).and_then(|v| v.to_str().ok()) {
        Some(range) if range_applies => wanted(range, file.length),
        _ => Wanted::Whole,
    };
    let (status, start, length) = match wanted {
        Wanted::Whole => (StatusCode::OK, 0, file.length),
        Wanted::Part { start, end } => {
            let range = format!("bytes {start}-{end}/{}", file.length);
            if let Ok(value) = HeaderValue::from_str(&range) {
                common.insert(CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Wanted::Unsatisfiable => {
            let mut response = ApiError::Client {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                code: "range_not_satisfiable",
                detail: format!("the file has {} bytes", file.length),
            }
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", file.length)) {
                response.headers_mut().insert(CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    if start > 0 {
        file.content
            .seek(SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::Internal(format!("cannot read a stored file: {e}")))?;
    }
    common.insert(CONTENT_LENGTH, HeaderValue::from(length));
    let body = Body::from_stream(ReaderStream::with_capacity(
        file.content.take(length),
        CHUNK,
    ));
    Ok((status, common, body).into_response())
}

/// True when `If-None-Match` names this content (weak comparison, as RFC 9110 says for it).
fn none_match(headers: &HeaderMap, sha256: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag.trim_matches('"') == sha256
        })
}

/// Reads a `Range` header for a file of `length` bytes.
pub fn wanted(range: &str, length: u64) -> Wanted {
    let Some((unit, spec)) = range.trim().split_once('=') else {
        return Wanted::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // `-N`: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || length == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part {
                    start: length.saturating_sub(suffix),
                    end: length - 1,
                }
            }
        }
        // `A-` and `A-B`.
        (false, Some(start), last) if last.is_some() || last_is_open(last, spec) => {
            if last.is_some_and(|last| last < start) {
                Wanted::Whole
            } else if start >= length {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part {
                    start,
                    end: last.map_or(length - 1, |last| last.min(length - 1)),
                }
            }
        }
        _ => Wanted::Whole,
    }
}

/// `A-` (nothing after the dash), as opposed to `A-junk`.
fn last_is_open(last: Option<u64>, spec: &str) -> bool {
    last.is_none() && spec.trim().ends_with('-')
}

/// `inline` with the file name twice: a plain-ASCII `filename` for old clients and the exact
/// name in `filename*` (UTF-8, percent-encoded). Control characters are dropped, slashes and
/// backslashes become `_` (a name, never a path), quotes cannot end the quoted string.
pub fn content_disposition(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.');
    let cleaned = if cleaned.is_empty() { "file" } else { cleaned };
    let fallback: String = cleaned
        .chars()
        .map(|c| match c {
            '"' => '\'',
            // Some clients percent-decode the plain form too.
            '%' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(cleaned.len() * 3);
    for byte in cleaned.bytes() {
        // RFC 8187's attr-char: everything else is percent-encoded.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("inline; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let part = |start, end| Wanted::Part { start, end };
        assert_eq!(wanted("bytes=0-99", 1000), part(0, 99));
        assert_eq!(wanted("bytes=900-", 1000), part(900, 999));
        assert_eq!(wanted("bytes=-100", 1000), part(900, 999));
        assert_eq!(wanted("bytes=-5000", 1000), part(0, 999));
        assert_eq!(wanted("bytes=990-5000", 1000), part(990, 999));
        assert_eq!(wanted("Bytes = 5-5", 1000), part(5, 5));
        assert_eq!(wanted("bytes=1000-", 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted("bytes=1000-1001", 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted("bytes=-0", 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted("bytes=0-", 0), Wanted::Unsatisfiable);
        for ignored in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=1-x",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(wanted(ignored, 1000), Wanted::Whole, "{ignored:?}");
        }
    }

    #[test]
    fn file_names_are_encoded_so_no_client_misreads_them() {
        assert_eq!(
            content_disposition("factura.pdf"),
            "inline; filename=\"factura.pdf\"; filename*=UTF-8''factura.pdf"
        );
        assert_eq!(
            content_disposition("Año \"2025\"/../mi factura ñ€.pdf"),
            "inline; filename=\"A_o '2025'_.._mi factura __.pdf\"; \
             filename*=UTF-8''A%C3%B1o%20%222025%22_.._mi%20factura%20%C3%B1%E2%82%AC.pdf"
        );
        assert_eq!(
            content_disposition("../../etc/passwd"),
            "inline; filename=\"_.._etc_passwd\"; filename*=UTF-8''_.._etc_passwd"
        );
        assert_eq!(
            content_disposition("a\r\nSet-Cookie: x=1\\b%41.txt"),
            "inline; filename=\"aSet-Cookie: x=1_b_41.txt\"; \
             filename*=UTF-8''aSet-Cookie%3A%20x%3D1_b%2541.txt"
        );
        assert_eq!(
            content_disposition(" \u{7}"),
            "inline; filename=\"file\"; filename*=UTF-8''file"
        );
        let long = content_disposition(&"é".repeat(1000));
        assert!(long.len() < 2000 && HeaderValue::from_str(&long).is_ok());
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_str(value).expect("value"));
            none_match(&headers, "abc")
        };
        assert!(with("\"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("\"x\", \"abc\""));
        assert!(with("*"));
        assert!(!with("\"abcd\""));
        assert!(!none_match(&HeaderMap::new(), "abc"));
    }
}
