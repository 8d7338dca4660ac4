//! Meta's webhooks (`/webhook/whatsapp`, `/webhook/instagram`): the verification handshake
//! (GET) and deliveries (POST), one generic pair of handlers with each channel's settings and
//! parser. A delivery's signature is checked on the raw bytes
//! before anything is parsed; everything it carries is committed (group commit) before the 200,
//! so an acknowledged message is never lost, and a redelivery changes nothing.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::extract::{read_body, Params};
use super::AppState;
use crate::channels::meta::{self, signature, ParseError};
use crate::channels::{instagram, whatsapp};
use crate::config::MetaWebhook;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::inbox::Delivery;
use crate::metrics::Metrics;

/// Meta sends up to 3 MB in one delivery.
const MAX_WEBHOOK_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/webhook/whatsapp",
            get(verify_whatsapp).post(receive_whatsapp),
        )
        .route(
            "/webhook/instagram",
            get(verify_instagram).post(receive_instagram),
        )
}

/// Query of Meta's verification handshake (the names hold literal dots).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct Handshake {
    #[param(rename = "hub.mode", example = "subscribe")]
    mode: Option<String>,
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[param(rename = "hub.challenge", example = "1158201444")]
    challenge: Option<String>,
}

/// The acknowledgement of a delivery.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Ack {
    #[schema(example = "ok")]
    status: &'static str,
}

#[utoipa::path(get, path = "/webhook/whatsapp", operation_id = "verify_whatsapp_webhook", tag = "webhook",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain"),
        (status = 403, description = "Wrong token or mode", body = ErrorBody),
    ))]
/// Meta's verification handshake.
pub(super) async fn verify_whatsapp(State(state): State<AppState>, params: Params) -> Response {
    verify(&params, &state.config().whatsapp.webhook)
}

#[utoipa::path(post, path = "/webhook/whatsapp", operation_id = "receive_whatsapp_webhook", tag = "webhook",
    request_body(content = Object, description = "A WhatsApp Cloud API webhook delivery, signed with `X-Hub-Signature-256`"),
    params(("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=HMAC of the raw body; required when WHATSAPP_APP_SECRET is set")),
    responses(
        (status = 200, description = "Stored (or nothing to store)", body = Ack),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature", body = ErrorBody),
        (status = 413, description = "Larger than 4 MiB", body = ErrorBody),
        (status = 503, description = "Database unavailable: Meta redelivers later", body = ErrorBody),
    ))]
/// A delivery from Meta: messages and statuses, committed before the 200.
pub(super) async fn receive_whatsapp(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Response> {
    let parse = |body: &[u8]| whatsapp::webhook::parse(body).map(|w| w.into_delivery());
    receive(&state, request, &state.config().whatsapp.webhook, parse).await
}

#[utoipa::path(get, path = "/webhook/instagram", operation_id = "verify_instagram_webhook", tag = "webhook",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain"),
        (status = 403, description = "Wrong token (INSTAGRAM_WEBHOOK_VERIFY_TOKEN) or mode", body = ErrorBody),
    ))]
/// Meta's verification handshake for the Instagram webhook.
pub(super) async fn verify_instagram(State(state): State<AppState>, params: Params) -> Response {
    verify(&params, &state.config().instagram.webhook)
}

#[utoipa::path(post, path = "/webhook/instagram", operation_id = "receive_instagram_webhook", tag = "webhook",
    request_body(content = Object, description = "An Instagram messaging webhook delivery (`messaging[]`, `standby[]`, or the dashboard's `changes[]` test shape), signed with `X-Hub-Signature-256`"),
    params(("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=HMAC of the raw body; required when INSTAGRAM_APP_SECRET is set")),
    responses(
        (status = 200, description = "Stored (or nothing to store)", body = Ack),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature", body = ErrorBody),
        (status = 413, description = "Larger than 4 MiB", body = ErrorBody),
        (status = 503, description = "Database unavailable: Meta redelivers later", body = ErrorBody),
    ))]
/// A delivery from Instagram: customers' messages, the business's echoes and read receipts,
/// committed before the 200; customers' names are looked up afterwards.
pub(super) async fn receive_instagram(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Response> {
    let parse = |body: &[u8]| instagram::webhook::parse(body).map(|w| w.into_delivery());
    receive(&state, request, &state.config().instagram.webhook, parse).await
}

/// The handshake: the challenge as plain text, or 403.
fn verify(params: &Params, settings: &MetaWebhook) -> Response {
    let get = |name| params.str(name).ok().flatten();
    match meta::handshake(
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
        settings.verify_token.as_ref(),
    ) {
        Some(challenge) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            challenge.to_string(),
        )
            .into_response(),
        None => ApiError::Client {
            status: StatusCode::FORBIDDEN,
            code: "verification_failed",
            detail: "verification token mismatch".into(),
        }
        .into_response(),
    }
}

/// A delivery: signature over the raw bytes (when secrets are configured), then `parse`, then
/// everything stored before the answer.
async fn receive(
    state: &AppState,
    request: Request,
    settings: &MetaWebhook,
    parse: impl FnOnce(&[u8]) -> Result<Delivery, ParseError>,
) -> ApiResult<Response> {
    let provided = request
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_body(
        request,
        MAX_WEBHOOK_BYTES.max(state.config().max_body_bytes),
    )
    .await?;
    let secrets = &settings.app_secrets;
    if !secrets.is_empty() && !signature::verify(secrets, &body, provided.as_deref()) {
        let detail = if provided.is_none() {
            "missing X-Hub-Signature-256"
        } else {
            "invalid X-Hub-Signature-256"
        };
        return Err(ApiError::Client {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_signature",
            detail: detail.into(),
        });
    }
    let mut delivery = match parse(&body) {
        Ok(delivery) => delivery,
        Err(ParseError::NotJson(e)) => {
            return Err(ApiError::bad_request(format!("malformed JSON: {e}")))
        }
        // Valid JSON we have no use for is acknowledged, or Meta would retry it for days.
        Err(ParseError::NotAnObject) => return Ok(ok()),
    };
    if delivery.is_empty() {
        return Ok(ok());
    }
    delivery.signed = !secrets.is_empty();
    // A name look-up needs a provider client that can do it.
    delivery.look_up_names &= state.outbox().dispatch().looks_up_names(delivery.channel);
    let (channel, messages, statuses) = (
        delivery.channel,
        delivery.messages.len(),
        delivery.statuses.len() + delivery.reads.len(),
    );
    // Committed (together with any deliveries arriving meanwhile) before this returns.
    let recorded = state.ingest().record(delivery).await?;
    let fresh = recorded.iter().filter(|r| r.message.is_some()).count();
    Metrics::add(&state.metrics().webhook_messages_stored, fresh as u64);
    Metrics::add(
        &state.metrics().webhook_duplicates_ignored,
        (recorded.len() - fresh) as u64,
    );
    tracing::info!(%channel, messages, new = fresh, statuses, "webhook stored");
    Ok(ok())
}

fn ok() -> Response {
    Json(Ack { status: "ok" }).into_response()
}
