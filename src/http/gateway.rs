//! `POST /v1/channels/whatsapp/gateway/inbound`: the WhatsApp Web gateway posts a customer's
//! message and gets the assistant's reply to deliver. Guarded by `AI_ASSISTANTS_API_KEYS`.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::JsonBody;
use super::AppState;
use crate::assistant::GatewayInbound;
use crate::domain::parse_timestamp;
use crate::error::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/channels/whatsapp/gateway/inbound", post(inbound))
}

/// The project of a valid `X-API-Key` (`None` in dev mode, when no keys are configured).
/// Checked before the body is read.
struct GatewayProject(Option<String>);

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

#[derive(Deserialize)]
struct InboundBody {
    message_id: String,
    from_number: String,
    text: String,
    timestamp_iso: Option<String>,
}

async fn inbound(
    State(state): State<AppState>,
    GatewayProject(project): GatewayProject,
    JsonBody(body): JsonBody<InboundBody>,
) -> ApiResult<Json<Value>> {
    for (field, value) in [
        ("message_id", &body.message_id),
        ("from_number", &body.from_number),
    ] {
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
    Ok(Json(json!({
        "conversation_id": format!("whatsapp:{from_number}"),
        "message_id": message_id,
        "response_text": reply.response_text,
        "assistant": reply.assistant,
    })))
}
