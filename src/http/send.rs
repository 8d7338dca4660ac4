//! `POST /api/v1/send`: an agent's reply, stored `pending` before the provider is called.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::docs::BodyErrors;
use super::extract::JsonBody;
use super::AppState;
use crate::domain::{now, Message, PhoneNumber};
use crate::error::{ApiError, ApiResult};
use crate::outbox::{Outgoing, Submitted};
use crate::realtime::Change;
use crate::store::{self, conversations};

/// WhatsApp's limit on a text body, in characters.
const MAX_TEXT_CHARS: usize = 4096;

pub fn router() -> Router<AppState> {
    Router::new().route("/send", post(send))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"channel": "whatsapp", "to": "+34 600 123 456", "message": "¡Hola! ¿En qué te ayudo?"}))]
pub(super) struct SendRequest {
    /// A channel name; only `whatsapp` can send today.
    channel: String,
    /// A phone number: digits, optional `+`, spaces, dashes, dots, parentheses.
    to: String,
    /// The text, 1 to 4096 characters.
    message: String,
    /// Send in this conversation instead of the number's own.
    conversation_id: Option<i64>,
}

/// `POST /send` answered 200 (sent) or 202 (pending, retried in the background).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SendResult {
    success: bool,
    /// The provider's id (wamid); null while pending.
    message_id: Option<String>,
    conversation_id: i64,
    /// `pending` on a 202.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    /// Why the first attempt did not go through (202).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    message: Message,
}

/// `POST /send` answered 502: the provider refused the message for good.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SendFailure {
    /// The provider's reason.
    detail: String,
    /// `provider_error`.
    code: String,
    conversation_id: i64,
    message: Message,
}

#[utoipa::path(post, path = "/api/v1/send", operation_id = "send_message", tag = "send",
    request_body = SendRequest,
    responses(
        (status = 200, description = "Accepted by the provider", body = SendResult),
        (status = 202, description = "Stored; the provider is unreachable or throttling, retried in the background", body = SendResult),
        (status = 502, description = "Refused by the provider (bad token, invalid recipient, window closed)", body = SendFailure),
        BodyErrors,
    ),
    security((), ("api_key" = []), ("bearer" = [])))]
/// Sends an agent's reply through the channel's provider, stored `pending` first. A channel
/// without credentials or sending support is 503 `channel_not_configured`, nothing stored.
pub(super) async fn send(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SendRequest>,
) -> ApiResult<Response> {
    if body.message.trim().is_empty() {
        return Err(ApiError::invalid(
            &["body", "message"],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    if body.message.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(
            &["body", "message"],
            format!("String should have at most {MAX_TEXT_CHARS} characters"),
            "string_too_long",
        ));
    }
    let phone = PhoneNumber::parse(&body.to)
        .map_err(|why| ApiError::invalid(&["body", "to"], why, "value_error"))?;
    let channel = store::channels::by_name(&mut state.db().exec(), &body.channel)
        .await?
        .ok_or_else(|| ApiError::invalid(&["body", "channel"], "Unknown channel", "enum"))?;
    if channel.name != "whatsapp" {
        return Err(not_configured(format!(
            "sending on {} is not supported yet",
            channel.name
        )));
    }
    if !state.outbox().can_send_whatsapp() {
        return Err(not_configured(
            "WhatsApp sending is not configured: set WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID".into(),
        ));
    }

    let mut changes = Vec::new();
    let mut tx = state.db().begin().await?;
    let mut ex = tx.exec();
    let conversation = match body.conversation_id {
        Some(id) => {
            let c = conversations::get(&mut ex, id).await?.ok_or_else(|| {
                ApiError::invalid(
                    &["body", "conversation_id"],
                    "Conversation not found",
                    "value_error",
                )
            })?;
            if c.channel_id != channel.id {
                return Err(ApiError::invalid(
                    &["body", "conversation_id"],
                    "The conversation belongs to another channel",
                    "value_error",
                ));
            }
            c
        }
        None => {
            let new = conversations::NewConversation {
                channel_id: channel.id,
                external_id: phone.digits().to_string(),
                participant_identifier: phone.digits().to_string(),
                participant_name: None,
            };
            let upserted = conversations::upsert(&mut ex, &new, now()).await?;
            if upserted.created {
                changes.push(Change::NewConversation(upserted.conversation.clone()));
            }
            upserted.conversation
        }
    };
    // An agent stepping in silences the assistant in this conversation until handed back.
    if let Some(updated) =
        conversations::set_assistant(&mut ex, conversation.id, false, now()).await?
    {
        // A conversation created by this very request is announced once, as it now is.
        match changes
            .iter_mut()
            .find(|c| matches!(c, Change::NewConversation(n) if n.id == updated.id))
        {
            Some(created) => *created = Change::NewConversation(updated),
            None => changes.push(Change::ConversationUpdated(updated)),
        }
    }
    let outgoing = Outgoing {
        conversation_id: conversation.id,
        channel_id: channel.id,
        recipient: phone.digits().to_string(),
        content: body.message,
        sender_name: Some("agent".into()),
        metadata: None,
        reply_to_message_id: None,
    };
    let conversation_id = conversation.id;
    let submitted = state.outbox().submit(tx, outgoing, changes).await?;
    let submitted =
        submitted.ok_or_else(|| ApiError::Internal("the reply was not stored".into()))?;
    Ok(match submitted {
        Submitted::Sent(message) => Json(SendResult {
            success: true,
            message_id: message.external_message_id.clone(),
            conversation_id,
            status: None,
            detail: None,
            message,
        })
        .into_response(),
        Submitted::Pending { message, reason } => (
            StatusCode::ACCEPTED,
            Json(SendResult {
                success: true,
                message_id: None,
                conversation_id,
                status: Some("pending".into()),
                detail: Some(reason),
                message,
            }),
        )
            .into_response(),
        Submitted::Failed { message, reason } => (
            StatusCode::BAD_GATEWAY,
            Json(SendFailure {
                detail: reason,
                code: "provider_error".into(),
                conversation_id,
                message,
            }),
        )
            .into_response(),
    })
}

fn not_configured(detail: String) -> ApiError {
    ApiError::Client {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "channel_not_configured",
        detail,
    }
}
