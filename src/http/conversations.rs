//! `/api/v1/conversations`: list, create, read, update, mark read, and a conversation's
//! messages.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};

use super::docs::{
    BodyErrors, ConversationFilters, ItemErrors, ListErrors, MessageFilters, NotModified,
    Revalidation,
};
use super::extract::{check_id_len, JsonBody, Params, PathId};
use super::lists::{self, IfNoneMatch};
use super::{messages, AppState};
use crate::channels::rules;
use crate::domain::{now, Change, ChannelKind, Conversation, Message};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::store::{self, conversations};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", get(list).post(create))
        .route("/conversations/{id}", get(read).patch(update))
        .route("/conversations/{id}/read", post(mark_read))
        .route("/conversations/{id}/messages", get(list_messages))
}

#[utoipa::path(get, path = "/api/v1/conversations", operation_id = "list_conversations", tag = "conversations", params(ConversationFilters, Revalidation), responses((status = 200, description = "A page of conversations", body = Vec<Conversation>, headers(("x-total-count" = i64, description = "Size of the filtered set before limit and offset"), ("etag" = String, description = "Weak tag of this page: send it as If-None-Match to revalidate"), ("cache-control" = String, description = "private, no-cache"))), NotModified, ListErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// Conversations, newest activity first.
pub(super) async fn list(
    State(state): State<AppState>,
    params: Params,
    client: IfNoneMatch,
) -> ApiResult<Response> {
    let (limit, offset) = params.page()?;
    let query = conversations::ListQuery {
        channel_id: params.int("channel_id")?,
        is_active: params.bool("is_active")?,
        limit,
        offset,
    };
    if offset == 0 {
        let served = state
            .pages()
            .conversations(state.db(), &query, |e| client.has(e))
            .await?;
        return Ok(lists::served(served));
    }
    let (items, total) = conversations::list(&mut state.db().exec(), &query).await?;
    lists::listing(&items, total, &client)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"channel_id": 1, "participant_identifier": "+34 600 123 456", "participant_name": "Ana"}))]
pub(super) struct ConversationCreate {
    channel_id: i64,
    participant_identifier: String,
    participant_name: Option<String>,
    external_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/conversations", operation_id = "create_conversation", tag = "conversations", request_body = ConversationCreate, responses((status = 201, description = "Created", body = Conversation), (status = 409, description = "It exists", body = ErrorBody), BodyErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// Creates a conversation (409 if its channel and external_id exist; 422 for an unknown channel).
pub(super) async fn create(
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
    check_id_len(&["body", "participant_identifier"], &identifier)?;
    if let Some(external_id) = &body.external_id {
        check_id_len(&["body", "external_id"], external_id)?;
    }
    let channel = ChannelKind::from_id(body.channel_id).ok_or_else(|| {
        ApiError::invalid(&["body", "channel_id"], "Unknown channel", "value_error")
    })?;
    let external_id = body
        .external_id
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| identifier.clone());
    let new = conversations::NewConversation {
        channel,
        external_id: rules(channel).conversation_key(&external_id),
        participant_identifier: identifier,
        participant_name: body.participant_name,
    };
    let mut uow = state.publisher().begin().await?;
    let created = conversations::create(&mut uow.exec(), &new, now())
        .await?
        .ok_or_else(|| {
            ApiError::conflict("a conversation with this channel and external_id exists")
        })?;
    uow.push(Change::NewConversation(created.clone()));
    uow.commit().await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", operation_id = "get_conversation", tag = "conversations", params(("id" = i64, Path, description = "Conversation id")), responses((status = 200, description = "The conversation", body = Conversation), ItemErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// One conversation.
pub(super) async fn read(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Json<Conversation>> {
    conversations::get(&mut state.db().exec(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("conversation"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct ConversationUpdate {
    /// A new name, or null to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    participant_name: Option<Option<String>>,
    is_active: Option<bool>,
    assistant_enabled: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}", operation_id = "update_conversation", tag = "conversations", params(("id" = i64, Path, description = "Conversation id")), request_body = ConversationUpdate, responses((status = 200, description = "The updated conversation", body = Conversation), BodyErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// Updates participant_name, is_active or assistant_enabled; fields left out are kept.
pub(super) async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ConversationUpdate>,
) -> ApiResult<Json<Conversation>> {
    let changes = conversations::Changes {
        participant_name: body.participant_name,
        is_active: body.is_active,
        assistant_enabled: body.assistant_enabled,
    };
    let mut uow = state.publisher().begin().await?;
    let updated = conversations::update(&mut uow.exec(), id, &changes, now())
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    uow.push(Change::ConversationUpdated(updated.clone()));
    uow.commit().await?;
    Ok(Json(updated))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", operation_id = "mark_conversation_read", tag = "conversations", params(("id" = i64, Path, description = "Conversation id")), responses((status = 200, description = "The conversation, unread_count 0", body = Conversation), ItemErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// Marks all its messages read.
pub(super) async fn mark_read(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Json<Conversation>> {
    let mut uow = state.publisher().begin().await?;
    if conversations::get(&mut uow.exec(), id).await?.is_none() {
        return Err(ApiError::not_found("conversation"));
    }
    conversations::mark_read(&mut uow.exec(), id).await?;
    let conversation = conversations::get(&mut uow.exec(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    uow.push(Change::ConversationUpdated(conversation.clone()));
    uow.commit().await?;
    Ok(Json(conversation))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", operation_id = "list_conversation_messages", tag = "conversations", params(("id" = i64, Path, description = "Conversation id"), MessageFilters, Revalidation), responses((status = 200, description = "A page of messages", body = Vec<Message>, headers(("x-total-count" = i64, description = "Size of the filtered set before limit and offset"), ("etag" = String, description = "Weak tag of this page: send it as If-None-Match to revalidate"), ("cache-control" = String, description = "private, no-cache"))), NotModified, ItemErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// The conversation's messages (same filters as GET /messages).
pub(super) async fn list_messages(
    State(state): State<AppState>,
    PathId(id): PathId,
    params: Params,
    client: IfNoneMatch,
) -> ApiResult<Response> {
    let mut query = messages::list_query(&params)?;
    query.conversation_id = Some(id);
    if query.newest_page_of().is_some() {
        return match state
            .pages()
            .messages(state.db(), id, query.limit, |e| client.has(e))
            .await?
        {
            Some(served) => Ok(lists::served(served)),
            None => Err(ApiError::not_found("conversation")),
        };
    }
    if conversations::stamp(&mut state.db().exec(), id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("conversation"));
    }
    let (items, total) = store::messages::list(&mut state.db().exec(), &query).await?;
    lists::listing(&items, total, &client)
}
