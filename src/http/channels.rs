//! `GET /api/v1/channels`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{listing, AppState};
use crate::error::ApiResult;
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/channels", get(list))
}

async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let channels = store::channels::list(&mut state.db().exec()).await?;
    let total = channels.len() as i64;
    Ok(listing(channels, total))
}
