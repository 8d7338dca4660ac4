//! `GET /` (service info, or the WebSocket hub when upgraded; `/ws` too), `GET /health`, and
//! the JSON 404 for unknown routes.

use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::extract::Params;
use super::{auth, websocket, AppState};
use crate::error::{ApiError, ErrorBody};

/// `GET /` without an upgrade.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServiceInfo {
    #[schema(example = "switchboard")]
    name: &'static str,
    version: &'static str,
    #[schema(example = "/docs")]
    docs: &'static str,
}

/// `GET /health`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable`.
    status: &'static str,
    /// `ok`, or `unreachable`.
    database: &'static str,
    /// Delivery of events across instances: `local` (SQLite, one instance), `listening`, or
    /// `reconnecting` (PostgreSQL's `LISTEN` connection is being re-established; sockets will
    /// be told to resync).
    events: &'static str,
    /// Reading the mailbox (present only when `EMAIL_IMAP_URL` is set): `ok`, or
    /// `failing: <why>` while the IMAP server is unreachable or refuses (retried with backoff;
    /// the status code stays about the database).
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// Present when unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
}

#[utoipa::path(get, path = "/", operation_id = "root", tag = "realtime",
    params(("api_key" = Option<String>, Query, description = "The API key, for the WebSocket when API_KEYS is set (browsers cannot set headers)")),
    responses(
        (status = 200, description = "Service information (no upgrade requested)", body = ServiceInfo),
        (status = 101, description = "Upgraded to the WebSocket hub: every event is one text frame `{\"type\", \"data\"}` (see the WsEvent schema)"),
        (status = 400, description = "A malformed upgrade request", body = ErrorBody),
        (status = 401, description = "Upgrade without a valid key while API_KEYS is set", body = ErrorBody),
        (status = 403, description = "Upgrade from a browser origin not in CORS_ORIGINS", body = ErrorBody),
    ))]
/// Service information, or the WebSocket hub when the request asks for an upgrade (also on `/ws`).
pub async fn root(State(state): State<AppState>, request: Request) -> Response {
    let wants_upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_upgrade {
        return Json(ServiceInfo {
            name: "switchboard",
            version: crate::VERSION,
            docs: "/docs",
        })
        .into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let params = match Params::from_request_parts(&mut parts, &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Browsers do not apply CORS to WebSockets: without this check any page an agent visits
    // could read every event. Clients that send no Origin (servers, wscat) are not browsers.
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| {
            state
                .config()
                .cors_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o.trim_end_matches('/')))
        });
        if !allowed {
            return ApiError::Client {
                status: StatusCode::FORBIDDEN,
                code: "origin_not_allowed",
                detail: "this origin is not in CORS_ORIGINS".into(),
            }
            .into_response();
        }
    }
    let query_key = params.str("api_key").ok().flatten();
    if let Err(e) = auth::check(&state, &parts.headers, query_key) {
        return e.into_response();
    }
    websocket::accept(&state, parts)
}

#[utoipa::path(get, path = "/health", operation_id = "health", tag = "system",
    responses(
        (status = 200, description = "The database answers", body = Health, example = json!({"status": "ok", "database": "ok", "events": "listening"})),
        (status = 503, description = "The database is unreachable", body = Health),
    ))]
/// Checks the database; with `EMAIL_IMAP_URL` set, also says how reading the mailbox goes.
pub async fn health(State(state): State<AppState>) -> Response {
    let reachable = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.db().ping()).await,
        Ok(Ok(()))
    );
    let events = state.relay().state().as_str();
    let email = state.email_health().map(|h| h.report());
    if reachable {
        Json(Health {
            status: "ok",
            database: "ok",
            events,
            email,
            detail: None,
            code: None,
        })
        .into_response()
    } else {
        let body = Health {
            status: "unavailable",
            database: "unreachable",
            events,
            email,
            detail: Some("database unreachable"),
            code: Some("database_unavailable"),
        };
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
