//! List responses: the JSON array with `X-Total-Count` (the size of the filtered set), an
//! `ETag`, and `Cache-Control: private, no-cache` (a browser keeps the page and revalidates it
//! on every use); or `304 Not Modified`, without a body, when the client's copy named in
//! `If-None-Match` is current.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use crate::error::{ApiError, ApiResult};
use crate::pages::{etag, Page, Served};

const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
/// Private: pages depend on the API key that fetched them, so shared caches keep none.
const REVALIDATE: HeaderValue = HeaderValue::from_static("private, no-cache");

/// The tags of the copies the client holds (`If-None-Match`, every occurrence).
pub struct IfNoneMatch(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let tags: Vec<&str> = parts
            .headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(IfNoneMatch((!tags.is_empty()).then(|| tags.join(","))))
    }
}

impl IfNoneMatch {
    /// Whether the client's copy is the one tagged `etag`.
    pub fn has(&self, etag: &HeaderValue) -> bool {
        self.0
            .as_deref()
            .is_some_and(|tags| etag::matches(tags, etag))
    }
}

/// The answer for what [`crate::pages`] served.
pub fn served(served: Served) -> Response {
    match served {
        Served::NotModified(etag) => not_modified(etag),
        Served::Page(page) => page_response(page),
    }
}

/// A list read by the plain path: serialised here, tagged by its body.
pub fn listing<T: serde::Serialize>(
    items: &[T],
    total: i64,
    client: &IfNoneMatch,
) -> ApiResult<Response> {
    let page = Page::of(items, total).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(if client.has(&page.etag) {
        not_modified(page.etag)
    } else {
        page_response(page)
    })
}

fn page_response(page: Page) -> Response {
    let mut response = Response::new(Body::from(page.body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(TOTAL_COUNT, HeaderValue::from(page.total));
    headers.insert(ETAG, page.etag);
    headers.insert(CACHE_CONTROL, REVALIDATE);
    response
}

fn not_modified(etag: HeaderValue) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, REVALIDATE);
    response
}
