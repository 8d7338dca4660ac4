//! `POST /v1/channels/whatsapp/gateway/inbound`: the WhatsApp Web gateway posts a customer's
//! message and gets the assistant's reply to deliver. Guarded by `AI_ASSISTANTS_API_KEYS`.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::docs::BodyErrors;
use super::extract::{check_id_len, JsonBody};
use super::AppState;
use crate::assistant::GatewayInbound;
use crate::domain::parse_timestamp;
use crate::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/channels/whatsapp/gateway/inbound", post(inbound))
}

/// The project of a valid `X-API-Key` (`None` in dev mode, when no keys are configured).
/// Checked before the body is read.
pub(super) struct GatewayProject(Option<String>);

impl FromRequestParts<AppState> for GatewayProject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(keys) = &state.config().gateway_keys else {
            return Ok(GatewayProject(None));
        };
        let presented = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok());
        match presented.and_then(|key| keys.find(key.trim())) {
            Some(project) => Ok(GatewayProject(Some(project.to_string()))),
            None if presented.is_none() => Err(ApiError::unauthorized("missing X-API-Key")),
            None => Err(ApiError::unauthorized("invalid X-API-Key")),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"message_id": "3EB0C767D0D1", "from_number": "34600123456", "text": "Hola, quiero hacer una reserva"}))]
pub(super) struct InboundBody {
    /// The gateway's id of the message; the same id again is answered from storage.
    message_id: String,
    /// The customer's number (a Baileys JID such as `34600123456@s.whatsapp.net` works too).
    from_number: String,
    text: String,
    /// RFC 3339; default now.
    #[schema(value_type = Option<String>, format = DateTime)]
    timestamp_iso: Option<String>,
}

/// The reply for the gateway to deliver.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct GatewayResponse {
    /// `whatsapp:<from_number>`.
    #[schema(example = "whatsapp:34600123456")]
    conversation_id: String,
    message_id: String,
    /// What to send back; empty while an agent has taken over.
    response_text: String,
    /// False while an agent has taken over the conversation.
    assistant: bool,
}

#[utoipa::path(post, path = "/v1/channels/whatsapp/gateway/inbound", operation_id = "gateway_inbound", tag = "gateway",
    request_body = InboundBody,
    responses((status = 200, description = "The assistant's reply (or the fallback)", body = GatewayResponse), BodyErrors),
    security((), ("gateway_key" = [])))]
/// A message relayed by the WhatsApp Web gateway: stored, answered by the assistant, and the
/// answer returned for delivery. Never 5xx because of the LLM.
pub(super) async fn inbound(
    State(state): State<AppState>,
    GatewayProject(project): GatewayProject,
    JsonBody(body): JsonBody<InboundBody>,
) -> ApiResult<Json<GatewayResponse>> {
    for (field, value) in [
        ("message_id", &body.message_id),
        ("from_number", &body.from_number),
    ] {
        check_id_len(&["body", field], value)?;
        if value.trim().is_empty() {
            return Err(ApiError::invalid(
                &["body", field],
                "String should have at least 1 character",
                "string_too_short",
            ));
        }
    }
    let timestamp = match body.timestamp_iso.as_deref() {
        None => None,
        Some(raw) => Some(parse_timestamp(raw).ok_or_else(|| {
            ApiError::invalid(
                &["body", "timestamp_iso"],
                "Input should be a valid RFC 3339 datetime",
                "datetime_parsing",
            )
        })?),
    };
    let message_id = body.message_id.trim().to_string();
    let from_number = body.from_number.trim().to_string();
    let reply = state
        .assistant()
        .handle_gateway(GatewayInbound {
            message_id: message_id.clone(),
            from_number: from_number.clone(),
            text: body.text,
            timestamp,
            project,
        })
        .await?;
    Ok(Json(GatewayResponse {
        conversation_id: format!("whatsapp:{from_number}"),
        message_id,
        response_text: reply.response_text,
        assistant: reply.assistant,
    }))
}
