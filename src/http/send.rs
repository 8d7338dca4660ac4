//! `POST /api/v1/send`: an agent's reply, stored `pending` before the provider is called.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::extract::JsonBody;
use super::AppState;
use crate::domain::{now, PhoneNumber};
use crate::error::{ApiError, ApiResult};
use crate::outbox::{Outgoing, Submitted};
use crate::realtime::Change;
use crate::store::{self, conversations};

/// WhatsApp's limit on a text body, in characters.
const MAX_TEXT_CHARS: usize = 4096;

pub fn router() -> Router<AppState> {
    Router::new().route("/send", post(send))
}

#[derive(Deserialize)]
struct SendRequest {
    channel: String,
    to: String,
    message: String,
    conversation_id: Option<i64>,
}

async fn send(
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
        Submitted::Sent(message) => Json(json!({
            "success": true,
            "message_id": message.external_message_id,
            "conversation_id": conversation_id,
            "message": message,
        }))
        .into_response(),
        Submitted::Pending { message, reason } => (
            StatusCode::ACCEPTED,
            Json(json!({
                "success": true,
                "status": "pending",
                "message_id": null,
                "conversation_id": conversation_id,
                "detail": reason,
                "message": message,
            })),
        )
            .into_response(),
        Submitted::Failed { message, reason } => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"detail": reason, "code": "provider_error", "conversation_id": conversation_id, "message": message})),
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
