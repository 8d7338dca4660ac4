//! `API_KEYS`: when set, `/api/v1/*` and the WebSocket need one of its keys, sent as
//! `X-API-Key`, `Authorization: Bearer …`, or (the WebSocket and attachment files only, since
//! browsers set no headers on a WebSocket or an `<img src>`) `?api_key=`. Keys are compared in
//! constant time.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::ApiError;

pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match check(&state, request.headers(), None) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// As [`require_api_key`], and `?api_key=` is accepted too (attachment files).
pub async fn require_api_key_or_query(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let query_key = request.uri().query().and_then(|query| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()?
            .into_iter()
            .find_map(|(name, value)| (name == "api_key").then_some(value))
    });
    match check(&state, request.headers(), query_key.as_deref()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Accepts the request when no keys are configured or one of them was presented.
pub fn check(
    state: &AppState,
    headers: &HeaderMap,
    query_key: Option<&str>,
) -> Result<(), ApiError> {
    let Some(keys) = &state.config().api_keys else {
        return Ok(());
    };
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
        })
        .or(query_key);
    match presented {
        None => Err(ApiError::unauthorized(
            "missing API key: send X-API-Key or Authorization: Bearer",
        )),
        Some(key) if keys.find(key.trim()).is_some() => Ok(()),
        Some(_) => Err(ApiError::unauthorized("invalid API key")),
    }
}
