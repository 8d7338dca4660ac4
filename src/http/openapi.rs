//! The OpenAPI document, generated from the handlers' annotations: `GET /openapi.json` and
//! `switchboard openapi` (Swagger UI, on `/docs`, is `swagger_ui`'s).

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    attachments, channels, conversations, gateway, messages, metrics, send, system, webhook,
    AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "switchboard",
        description = "Shared-inbox backend: WhatsApp (Cloud API and a WhatsApp Web gateway), \
Instagram Direct, and later email. REST under /api/v1, a WebSocket hub on / and /ws, Meta's webhook, and the \
assistant's gateway endpoint. Errors are `{\"detail\", \"code\"}`; validation errors are \
FastAPI-style `{\"detail\": [{\"loc\", \"msg\", \"type\"}]}`.",
        license(name = "MIT")
    ),
    paths(
        system::root,
        system::health,
        metrics::render,
        channels::list,
        conversations::list,
        conversations::create,
        conversations::read,
        conversations::update,
        conversations::mark_read,
        conversations::list_messages,
        messages::list,
        messages::create,
        messages::read,
        messages::update,
        attachments::download,
        send::send,
        webhook::verify_whatsapp,
        webhook::receive_whatsapp,
        webhook::verify_instagram,
        webhook::receive_instagram,
        gateway::inbound,
    ),
    components(schemas(
        crate::realtime::Event,
        crate::error::ErrorBody,
        crate::error::ValidationErrorBody,
        crate::error::FieldError,
        crate::error::LocPart,
        super::docs::SortOrder,
    )),
    modifiers(&SecuritySchemes, &WebSocketAlias),
    tags(
        (name = "conversations", description = "Customer threads, one per channel and external id"),
        (name = "messages", description = "Stored messages, inbound and outbound"),
        (name = "attachments", description = "The files messages carry (photos, voice notes, documents)"),
        (name = "send", description = "Agents' replies through the channel's provider"),
        (name = "channels", description = "The seeded channels"),
        (name = "webhook", description = "Meta's webhooks: WhatsApp Cloud API and Instagram messaging"),
        (name = "gateway", description = "The WhatsApp Web gateway and the assistant"),
        (name = "realtime", description = "The WebSocket hub"),
        (name = "system", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "One of API_KEYS, when set (then /api/v1 and the WebSocket require it)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The same key as `Authorization: Bearer KEY`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "api_key",
                "The same key as `?api_key=`: the WebSocket and attachment files only",
            ))),
        );
        components.add_security_scheme(
            "gateway_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "One of AI_ASSISTANTS_API_KEYS, when set",
            ))),
        );
    }
}

/// `/ws` is the same endpoint as `/`.
struct WebSocketAlias;

impl Modify for WebSocketAlias {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(root) = openapi.paths.paths.get("/").cloned() {
            let mut alias = root;
            if let Some(get) = alias.get.as_mut() {
                get.operation_id = Some("websocket".into());
                get.summary = Some("The WebSocket hub (same as `/`).".into());
            }
            openapi.paths.paths.insert("/ws".into(), alias);
        }
    }
}

/// The document as pretty JSON, as `switchboard openapi` prints it and `swagger-core.json` holds.
pub fn json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// `/openapi.json` (the bytes of `swagger-core.json`, rendered once) and Swagger UI on `/docs`.
pub fn router() -> Router<AppState> {
    let document = json();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                std::future::ready(([(CONTENT_TYPE, "application/json")], document.clone()))
            }),
        )
        .merge(super::swagger_ui::router())
}
