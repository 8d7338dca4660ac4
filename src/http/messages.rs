//! `/api/v1/messages`: list with filters, record, read, and mark read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::docs::{BodyErrors, ItemErrors, ListErrors, MessageFilters, NotModified, Revalidation};
use super::extract::{check_id_len, JsonBody, Params, PathId};
use super::lists::{self, IfNoneMatch};
use super::AppState;
use crate::domain::{now, parse_timestamp, Change, ChannelKind, Direction, Message, Order, Status};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::store::{self, messages};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/messages", get(list).post(create))
        .route("/messages/{id}", get(read).patch(update))
}

/// The filters shared by `GET /messages` and `GET /conversations/{id}/messages`.
pub(super) fn list_query(params: &Params) -> ApiResult<messages::ListQuery> {
    let (limit, offset) = params.page()?;
    let channel =
        match params.str("channel")? {
            None => None,
            Some(name) => Some(ChannelKind::parse(name).ok_or_else(|| {
                ApiError::invalid(&["query", "channel"], "Unknown channel", "enum")
            })?),
        };
    let direction = match params.str("direction")? {
        None => None,
        Some(d) => Some(Direction::parse(d).ok_or_else(|| {
            ApiError::invalid(
                &["query", "direction"],
                "Input should be 'inbound' or 'outbound'",
                "enum",
            )
        })?),
    };
    let order = match params.str("order")? {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(_) => {
            return Err(ApiError::invalid(
                &["query", "order"],
                "Input should be 'asc' or 'desc'",
                "enum",
            ))
        }
    };
    Ok(messages::ListQuery {
        conversation_id: params.int("conversation_id")?,
        channel,
        direction,
        before_id: params.int("before_id")?,
        after_id: params.int("after_id")?,
        order,
        limit,
        offset,
    })
}

#[utoipa::path(get, path = "/api/v1/messages", operation_id = "list_messages", tag = "messages", params(MessageFilters, Revalidation), responses((status = 200, description = "A page of messages", body = Vec<Message>, headers(("x-total-count" = i64, description = "Size of the filtered set before limit and offset"), ("etag" = String, description = "Weak tag of this page: send it as If-None-Match to revalidate"), ("cache-control" = String, description = "private, no-cache"))), NotModified, ListErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// Messages by timestamp (ties by id), with filters.
pub(super) async fn list(
    State(state): State<AppState>,
    params: Params,
    client: IfNoneMatch,
) -> ApiResult<Response> {
    let query = list_query(&params)?;
    if let Some(conversation_id) = query.newest_page_of() {
        let kept = state
            .pages()
            .messages(state.db(), conversation_id, query.limit, |e| client.has(e))
            .await?;
        // No such conversation: the plain path answers its empty list.
        if let Some(served) = kept {
            return Ok(lists::served(served));
        }
    }
    let (items, total) = messages::list(&mut state.db().exec(), &query).await?;
    lists::listing(&items, total, &client)
}

#[utoipa::path(get, path = "/api/v1/messages/{id}", operation_id = "get_message", tag = "messages", params(("id" = i64, Path, description = "Message id")), responses((status = 200, description = "The message", body = Message), ItemErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// One message.
pub(super) async fn read(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Json<Message>> {
    messages::get(&mut state.db().exec(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("message"))
}

fn default_type() -> String {
    "text".into()
}

/// `MessageCreate`: the seed's fields.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"conversation_id": 1, "content": "Hola", "direction": "inbound"}))]
pub(super) struct MessageCreate {
    content: String,
    /// Default `text`.
    #[serde(default = "default_type")]
    #[schema(default = "text")]
    message_type: String,
    direction: Direction,
    sender_name: Option<String>,
    sender_identifier: Option<String>,
    /// RFC 3339; without an offset it is UTC; default now.
    #[schema(value_type = Option<String>, format = DateTime)]
    timestamp: Option<String>,
    /// A string holding JSON; an object or array is accepted and stored as its JSON text.
    #[schema(value_type = Option<String>)]
    message_metadata: Option<Value>,
    conversation_id: i64,
    external_message_id: Option<String>,
    #[serde(default)]
    is_read: bool,
}

#[utoipa::path(post, path = "/api/v1/messages", operation_id = "create_message", tag = "messages", request_body = MessageCreate, responses((status = 201, description = "Stored", body = Message), (status = 409, description = "Already stored", body = ErrorBody), BodyErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// Records a message without sending it (409 for an external_message_id the channel already has).
pub(super) async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<MessageCreate>,
) -> ApiResult<Response> {
    let timestamp = match body.timestamp.as_deref() {
        None => now(),
        Some(raw) => parse_timestamp(raw).ok_or_else(|| {
            ApiError::invalid(
                &["body", "timestamp"],
                "Input should be a valid datetime",
                "datetime_parsing",
            )
        })?,
    };
    let message_metadata = match body.message_metadata {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(v @ (Value::Object(_) | Value::Array(_))) => Some(v.to_string()),
        Some(_) => {
            return Err(ApiError::invalid(
                &["body", "message_metadata"],
                "Input should be a string holding JSON, or an object",
                "string_type",
            ))
        }
    };
    if body.message_type.trim().is_empty() {
        return Err(ApiError::invalid(
            &["body", "message_type"],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    let external_message_id = body.external_message_id.filter(|e| !e.is_empty());
    if let Some(id) = &external_message_id {
        check_id_len(&["body", "external_message_id"], id)?;
    }
    let mut uow = state.publisher().begin().await?;
    let conversation = store::conversations::get(&mut uow.exec(), body.conversation_id)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                &["body", "conversation_id"],
                "Conversation not found",
                "value_error",
            )
        })?;
    let channel = ChannelKind::from_id(conversation.channel_id)
        .ok_or_else(|| ApiError::Internal("a conversation on an unknown channel".into()))?;
    let new = messages::NewMessage {
        conversation_id: conversation.id,
        channel,
        content: body.content,
        message_type: body.message_type,
        direction: body.direction,
        // A recorded message is not sent by us: outbound ones count as already sent.
        status: match body.direction {
            Direction::Inbound => Status::Received,
            Direction::Outbound => Status::Sent,
        },
        sender_name: body.sender_name,
        sender_identifier: body.sender_identifier,
        timestamp,
        message_metadata,
        external_message_id,
        is_read: body.is_read,
        error: None,
        reply_to_message_id: None,
        recipient: None,
    };
    let stored = messages::insert(&mut uow.exec(), &new, now())
        .await?
        .ok_or_else(|| {
            ApiError::conflict("this channel already has a message with this external_message_id")
        })?;
    uow.push(Change::NewMessage(stored.clone()));
    uow.commit().await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct MessageUpdate {
    is_read: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/messages/{id}", operation_id = "update_message", tag = "messages", params(("id" = i64, Path, description = "Message id")), request_body = MessageUpdate, responses((status = 200, description = "The message", body = Message), BodyErrors), security((), ("api_key" = []), ("bearer" = [])))]
/// Marks a message read or unread.
pub(super) async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<MessageUpdate>,
) -> ApiResult<Json<Message>> {
    let mut uow = state.publisher().begin().await?;
    let message = match body.is_read {
        Some(is_read) => messages::set_read(&mut uow.exec(), id, is_read).await?,
        None => messages::get(&mut uow.exec(), id).await?,
    }
    .ok_or_else(|| ApiError::not_found("message"))?;
    if body.is_read.is_some() {
        // Its conversation's unread count changed.
        if let Some(conversation) =
            store::conversations::get(&mut uow.exec(), message.conversation_id).await?
        {
            uow.push(Change::ConversationUpdated(conversation));
        }
    }
    uow.commit().await?;
    Ok(Json(message))
}
