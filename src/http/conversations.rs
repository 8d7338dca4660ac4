//! `/api/v1/conversations`: list, create, read, update, mark read, and a conversation's
//! messages.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};

use super::extract::{JsonBody, Params, PathId};
use super::{listing, messages, AppState};
use crate::domain::{now, Conversation, PhoneNumber};
use crate::error::{ApiError, ApiResult};
use crate::realtime::Event;
use crate::store::{self, conversations};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", get(list).post(create))
        .route("/conversations/{id}", get(read).patch(update))
        .route("/conversations/{id}/read", post(mark_read))
        .route("/conversations/{id}/messages", get(list_messages))
}

async fn list(State(state): State<AppState>, params: Params) -> ApiResult<Response> {
    let (limit, offset) = params.page()?;
    let query = conversations::ListQuery {
        channel_id: params.int("channel_id")?,
        is_active: params.bool("is_active")?,
        limit,
        offset,
    };
    let (items, total) = conversations::list(&mut state.db().exec(), &query).await?;
    Ok(listing(items, total))
}

#[derive(Deserialize)]
struct ConversationCreate {
    channel_id: i64,
    participant_identifier: String,
    participant_name: Option<String>,
    external_id: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ConversationCreate>,
) -> ApiResult<Response> {
    let identifier = body.participant_identifier.trim().to_string();
    if identifier.is_empty() {
        return Err(ApiError::invalid(
            &["body", "participant_identifier"],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    let mut ex = state.db().exec();
    let channel = store::channels::by_id(&mut ex, body.channel_id)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(&["body", "channel_id"], "Unknown channel", "value_error")
        })?;
    let external_id = body
        .external_id
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| identifier.clone());
    // WhatsApp keys conversations by the number's digits; a business-scoped user id (no phone
    // number) is kept as it is.
    let external_id = match PhoneNumber::parse(&external_id) {
        Ok(phone) if channel.name == "whatsapp" => phone.digits().to_string(),
        _ => external_id,
    };
    let new = conversations::NewConversation {
        channel_id: channel.id,
        external_id,
        participant_identifier: identifier,
        participant_name: body.participant_name,
    };
    let created = conversations::create(&mut ex, &new, now())
        .await?
        .ok_or_else(|| {
            ApiError::conflict("a conversation with this channel and external_id exists")
        })?;
    state.hub().publish(&Event::NewConversation(&created));
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn read(State(state): State<AppState>, PathId(id): PathId) -> ApiResult<Json<Conversation>> {
    conversations::get(&mut state.db().exec(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("conversation"))
}

#[derive(Deserialize)]
struct ConversationUpdate {
    #[serde(default, deserialize_with = "present")]
    participant_name: Option<Option<String>>,
    is_active: Option<bool>,
    assistant_enabled: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ConversationUpdate>,
) -> ApiResult<Json<Conversation>> {
    let changes = conversations::Changes {
        participant_name: body.participant_name,
        is_active: body.is_active,
        assistant_enabled: body.assistant_enabled,
    };
    let updated = conversations::update(&mut state.db().exec(), id, &changes, now())
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    state.hub().publish(&Event::ConversationUpdated(&updated));
    Ok(Json(updated))
}

async fn mark_read(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Json<Conversation>> {
    let mut tx = state.db().begin().await?;
    let mut ex = tx.exec();
    if conversations::get(&mut ex, id).await?.is_none() {
        return Err(ApiError::not_found("conversation"));
    }
    conversations::mark_read(&mut ex, id).await?;
    let conversation = conversations::get(&mut ex, id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    tx.commit().await?;
    state
        .hub()
        .publish(&Event::ConversationUpdated(&conversation));
    Ok(Json(conversation))
}

async fn list_messages(
    State(state): State<AppState>,
    PathId(id): PathId,
    params: Params,
) -> ApiResult<Response> {
    let mut query = messages::list_query(&state, &params).await?;
    if conversations::get(&mut state.db().exec(), id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("conversation"));
    }
    query.conversation_id = Some(id);
    let (items, total) = store::messages::list(&mut state.db().exec(), &query).await?;
    Ok(listing(items, total))
}
