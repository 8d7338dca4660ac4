//! `GET /` (service info, or the WebSocket hub when upgraded; `/ws` too), `GET /health`, and
//! the JSON 404 for unknown routes.

use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::extract::Params;
use super::{auth, AppState};
use crate::error::ApiError;
use crate::realtime::socket;

/// Largest frame a client may send: clients only send small control frames.
const MAX_CLIENT_FRAME: usize = 64 * 1024;

pub async fn root(State(state): State<AppState>, request: Request) -> Response {
    let wants_upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_upgrade {
        return Json(json!({
            "name": "switchboard",
            "version": crate::VERSION,
            "docs": "/docs",
        }))
        .into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let params = match Params::from_request_parts(&mut parts, &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let query_key = params.str("api_key").ok().flatten();
    if let Err(e) = auth::check(&state, &parts.headers, query_key) {
        return e.into_response();
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(u) => u,
        Err(rejection) => {
            return ApiError::Client {
                status: rejection.status(),
                code: "bad_upgrade",
                detail: rejection.body_text(),
            }
            .into_response()
        }
    };
    let hub = state.hub().clone();
    let shutdown = state.shutdown().clone();
    let ping_every = state.config().ws_ping_interval;
    let tracker = state.tasks().clone();
    upgrade
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |ws| tracker.track_future(socket::run(ws, hub, shutdown, ping_every)))
}

pub async fn health(State(state): State<AppState>) -> Response {
    let reachable = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.db().ping()).await,
        Ok(Ok(()))
    );
    if reachable {
        Json(json!({ "status": "ok", "database": "ok" })).into_response()
    } else {
        let body = json!({
            "status": "unavailable",
            "database": "unreachable",
            "detail": "database unreachable",
            "code": "database_unavailable",
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::Client {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        detail: "Not Found".into(),
    }
}
