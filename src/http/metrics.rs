//! `GET /metrics`: Prometheus text format. On the main port it is guarded by `API_KEYS` (when
//! set); with `METRICS_ADDR` it is served there instead, for an internal network only.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::{auth, AppState};
use crate::metrics::Gauges;
use crate::store;

/// The route for the main router: present only when no `METRICS_ADDR` is configured.
pub fn router(state: &AppState) -> Router<AppState> {
    if state.config().metrics_addr.is_some() {
        return Router::new();
    }
    Router::new()
        .route("/metrics", get(render))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
}

/// The router of the separate metrics listener.
pub fn standalone(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(state)
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format: requests by route and status, sockets, events, webhook and outbox counters, LLM calls", body = String, content_type = "text/plain"),
        (status = 401, description = "API_KEYS is set and no valid key was sent", body = crate::error::ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = [])))]
/// Metrics for Prometheus (on `METRICS_ADDR` instead, when set).
pub(super) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let hub = state.hub();
    // The backlog lives in the database; a scrape during an outage still answers, without it.
    let pending = store::outbox::pending_count(&mut state.db().exec())
        .await
        .ok();
    let event_webhooks_pending = match state.config().event_webhook {
        Some(_) => store::event_webhooks::pending_count(&mut state.db().exec())
            .await
            .ok(),
        None => None,
    };
    let gauges = Gauges {
        open_sockets: hub.open_sockets(),
        events_published: hub.published(),
        events_dropped: hub.dropped(),
        outbox_pending: pending,
        event_webhooks_pending,
        pages_kept_bytes: state.pages().usage().0,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(&gauges),
    )
}
