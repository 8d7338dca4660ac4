//! `POST /api/v1/send`: an agent's reply, stored `pending` before the provider is called. The
//! channel's rules say who may be addressed and how long a text may be; the outbox sends it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::docs::BodyErrors;
use super::extract::JsonBody;
use super::AppState;
use crate::channels::{rules, ChannelRules};
use crate::domain::{now, Author, ChannelKind, Conversation, Message};
use crate::error::{ApiError, ApiResult};
use crate::outbox::{Outgoing, Submitted};
use crate::publish::UnitOfWork;
use crate::store::conversations;

/// The longest subject a mail may be given.
const MAX_SUBJECT_CHARS: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new().route("/send", post(send))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"channel": ChannelKind::Whatsapp.as_str(), "to": "+34 600 123 456", "message": "¡Hola! ¿En qué te ayudo?"}))]
pub(super) struct SendRequest {
    /// A channel name: `whatsapp`, `instagram` or `gmail`.
    channel: String,
    /// Who to send to, as the channel addresses people: WhatsApp a phone number (7–15 digits,
    /// `+` and formatting allowed), Instagram an IGSID, email an address. Optional with
    /// `conversation_id` (the conversation's participant); naming anyone else is 422.
    to: Option<String>,
    /// The text: 1 to 4,096 characters on WhatsApp, 1,000 on Instagram, 100,000 by email.
    message: String,
    /// Send in this conversation.
    conversation_id: Option<i64>,
    /// Email only: the mail's subject (one line, at most 500 characters). Without it, a reply
    /// is `Re: ` + the subject of the conversation's latest inbound mail, and a first mail
    /// `Message from <EMAIL_FROM's name>`.
    subject: Option<String>,
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
    let channel = ChannelKind::parse(&body.channel)
        .ok_or_else(|| ApiError::invalid(&["body", "channel"], "Unknown channel", "enum"))?;
    let rules = rules(channel);
    check_text(rules, &body.message)?;
    let subject = check_subject(channel, body.subject.as_deref())?;
    let to = match (&body.to, body.conversation_id) {
        (Some(to), _) => Some(
            rules
                .recipient(to)
                .map_err(|why| ApiError::invalid(&["body", "to"], why, "value_error"))?,
        ),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(ApiError::invalid(
                &["body", "to"],
                "Field required",
                "missing",
            ))
        }
    };
    if let Some(detail) = state.outbox().dispatch().unavailable(channel) {
        return Err(ApiError::Client {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "channel_not_configured",
            detail,
        });
    }

    let mut uow = state.publisher().begin().await?;
    let (conversation, recipient) = match body.conversation_id {
        Some(id) => in_conversation(&mut uow, channel, id, to).await?,
        // Without a conversation, `to` was required above.
        None => {
            let to = to.unwrap_or_default();
            (open_conversation(&mut uow, channel, &to).await?, to)
        }
    };
    // An agent stepping in silences the assistant in this conversation until handed back.
    if let Some(updated) =
        conversations::set_assistant(&mut uow.exec(), conversation.id, false, now()).await?
    {
        uow.conversation_changed(updated);
    }
    let outgoing = Outgoing {
        conversation_id: conversation.id,
        channel,
        recipient,
        content: body.message,
        author: Author::Agent,
        subject,
        metadata: None,
        reply_to_message_id: None,
    };
    let submitted = state.outbox().submit(uow, outgoing).await?;
    let submitted =
        submitted.ok_or_else(|| ApiError::Internal("the reply was not stored".into()))?;
    Ok(respond(conversation.id, submitted))
}

fn check_text(rules: &dyn ChannelRules, message: &str) -> ApiResult<()> {
    if message.trim().is_empty() {
        return Err(ApiError::invalid(
            &["body", "message"],
            "String should have at least 1 character",
            "string_too_short",
        ));
    }
    let max = rules.max_text_chars();
    if message.chars().count() > max {
        return Err(ApiError::invalid(
            &["body", "message"],
            format!("String should have at most {max} characters"),
            "string_too_long",
        ));
    }
    Ok(())
}

/// A mail's subject as one line; only email messages have one.
fn check_subject(channel: ChannelKind, subject: Option<&str>) -> ApiResult<Option<String>> {
    let Some(subject) = subject else {
        return Ok(None);
    };
    let invalid = |msg: String, kind| ApiError::invalid(&["body", "subject"], msg, kind);
    if channel != ChannelKind::Gmail {
        return Err(invalid(
            "Only email messages have a subject".into(),
            "value_error",
        ));
    }
    // Line breaks and other control characters would start headers of their own.
    let line = subject
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if line.is_empty() {
        return Err(invalid(
            "String should have at least 1 character".into(),
            "string_too_short",
        ));
    }
    if line.chars().count() > MAX_SUBJECT_CHARS {
        return Err(invalid(
            format!("String should have at most {MAX_SUBJECT_CHARS} characters"),
            "string_too_long",
        ));
    }
    Ok(Some(line))
}

/// The conversation `id` and who its participant is; a `to` naming someone else is refused.
async fn in_conversation(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    id: i64,
    to: Option<String>,
) -> ApiResult<(Conversation, String)> {
    let invalid = |msg: &str| ApiError::invalid(&["body", "conversation_id"], msg, "value_error");
    let conversation = conversations::get(&mut uow.exec(), id)
        .await?
        .ok_or_else(|| invalid("Conversation not found"))?;
    if conversation.channel_id != channel.id() {
        return Err(invalid("The conversation belongs to another channel"));
    }
    let rules = rules(channel);
    let recipient = match to {
        Some(to) if rules.conversation_key(&to) != conversation.external_id => {
            return Err(ApiError::invalid(
                &["body", "to"],
                "The conversation's participant is someone else: leave `to` out to answer them",
                "value_error",
            ))
        }
        Some(to) => to,
        None => rules
            .recipient(&conversation.participant_identifier)
            .or_else(|_| rules.recipient(&conversation.external_id))
            .map_err(|_| {
                invalid("The conversation's participant cannot be addressed on this channel")
            })?,
    };
    Ok((conversation, recipient))
}

/// The conversation of `to` on `channel`, created (and announced) when new.
async fn open_conversation(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    to: &str,
) -> ApiResult<Conversation> {
    let key = rules(channel).conversation_key(to);
    let new = conversations::NewConversation {
        channel,
        external_id: key,
        participant_identifier: to.to_string(),
        participant_name: None,
    };
    let upserted = conversations::upsert(&mut uow.exec(), &new, now()).await?;
    if upserted.created {
        uow.push(crate::domain::Change::NewConversation(
            upserted.conversation.clone(),
        ));
    }
    Ok(upserted.conversation)
}

fn respond(conversation_id: i64, submitted: Submitted) -> Response {
    match submitted {
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
    }
}
