//! `PathId`: an integer `{id}` path segment, refused at `["path", "id"]`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

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
