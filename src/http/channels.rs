//! `GET /api/v1/channels`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::docs::{ListErrors, NotModified, Revalidation};
use super::lists::{listing, IfNoneMatch};
use super::AppState;
use crate::domain::{Channel, ChannelKind};
use crate::error::ApiResult;
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/channels", get(list))
}

#[utoipa::path(get, path = "/api/v1/channels", operation_id = "list_channels", tag = "channels", params(Revalidation), responses((status = 200, description = "All channels", body = Vec<Channel>, headers(("x-total-count" = i64, description = "Size of the filtered set before limit and offset"), ("etag" = String, description = "Weak tag of this page: send it as If-None-Match to revalidate"), ("cache-control" = String, description = "private, no-cache"))), NotModified, ListErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// All channels, each saying whether this server can send on it.
pub(super) async fn list(
    State(state): State<AppState>,
    client: IfNoneMatch,
) -> ApiResult<Response> {
    let mut channels = store::channels::list(&mut state.db().exec()).await?;
    let dispatch = state.outbox().dispatch();
    for channel in &mut channels {
        channel.configured = ChannelKind::from_id(channel.id)
            .is_some_and(|kind| dispatch.unavailable(kind).is_none());
    }
    let total = channels.len() as i64;
    listing(&channels, total, &client)
}
