//! `GET /api/v1/channels`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::docs::ListErrors;
use super::{listing, AppState};
use crate::domain::Channel;
use crate::error::ApiResult;
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/channels", get(list))
}

#[utoipa::path(get, path = "/api/v1/channels", operation_id = "list_channels", tag = "channels", responses((status = 200, description = "All channels", body = Vec<Channel>, headers(("x-total-count" = i64, description = "Size of the filtered set before limit and offset"))), ListErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// All channels.
pub(super) async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let channels = store::channels::list(&mut state.db().exec()).await?;
    let total = channels.len() as i64;
    Ok(listing(channels, total))
}
