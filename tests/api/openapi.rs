//! The OpenAPI document: generated from the code, committed as `swagger-core.json`, served at
//! `/openapi.json`, and browsable offline on `/docs`.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{Backend, TestApp};

fn committed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/swagger-core.json");
    std::fs::read_to_string(path).expect("swagger-core.json at the repository root")
}

#[test]
fn swagger_core_json_is_exactly_what_the_binary_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("openapi")
        .env_clear()
        .output()
        .expect("run switchboard openapi");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        printed == committed(),
        "swagger-core.json is stale: regenerate it with `cargo run -q -- openapi > swagger-core.json`"
    );
}

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_covers_every_route() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served: Value = app.get("/openapi.json").await.json().await.expect("JSON");
    let file: Value = serde_json::from_str(&committed()).expect("JSON");
    assert!(
        served == file,
        "/openapi.json differs from swagger-core.json"
    );
    let paths = served["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/", &["get"][..]),
        ("/ws", &["get"]),
        ("/health", &["get"]),
        ("/metrics", &["get"]),
        ("/api/v1/channels", &["get"]),
        ("/api/v1/conversations", &["get", "post"]),
        ("/api/v1/conversations/{id}", &["get", "patch"]),
        ("/api/v1/conversations/{id}/read", &["post"]),
        ("/api/v1/conversations/{id}/messages", &["get"]),
        ("/api/v1/messages", &["get", "post"]),
        ("/api/v1/messages/{id}", &["get", "patch"]),
        ("/api/v1/attachments/{id}", &["get"]),
        ("/api/v1/send", &["post"]),
        ("/webhook/whatsapp", &["get", "post"]),
        ("/webhook/instagram", &["get", "post"]),
        ("/v1/channels/whatsapp/gateway/inbound", &["post"]),
    ] {
        for method in methods {
            let operation = &paths[path][*method];
            assert!(operation.is_object(), "{method} {path} is documented");
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                !responses.is_empty(),
                "{method} {path} documents its responses"
            );
        }
    }
    assert_eq!(
        paths.len(),
        16,
        "no undocumented extras and nothing missing"
    );
    let schemas = served["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in [
        "Message",
        "Conversation",
        "Channel",
        "ErrorBody",
        "ValidationErrorBody",
        "WsEvent",
        "SendRequest",
        "InboundBody",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    let events: Vec<&str> = schemas["WsEvent"]["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .filter_map(|v| v["properties"]["type"]["enum"][0].as_str())
        .collect();
    assert_eq!(
        events,
        [
            "connected",
            "new_message",
            "message_status",
            "new_conversation",
            "conversation_updated",
            "resync",
            "pong",
            "error"
        ]
    );
    let security = served["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(security["api_key"]["name"], "X-API-Key");
    // Every reference resolves.
    let text = served.to_string();
    for reference in text.split("#/components/schemas/").skip(1) {
        let name: String = reference
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        assert!(schemas.contains_key(&name), "dangling $ref {name}");
    }
}

/// The `src` and `href` attribute values of an HTML page, and its `<base href>` if any.
fn references(html: &str) -> (Option<String>, Vec<String>) {
    let mut base = None;
    let mut found = Vec::new();
    for tag in html.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        for attribute in ["src=\"", "href=\""] {
            if let Some(value) = tag
                .split(attribute)
                .nth(1)
                .and_then(|v| v.split('"').next())
            {
                if tag.starts_with("base ") {
                    base = Some(value.to_string());
                } else {
                    found.push(value.to_string());
                }
            }
        }
    }
    (base, found)
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs_itself_and_every_asset_it_references_loads() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // What `curl http://localhost:8000/docs` sees: no redirect to follow.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page_url = reqwest::Url::parse(&app.url("/docs")).expect("URL");
    let page = client
        .get(page_url.clone())
        .send()
        .await
        .expect("GET /docs");
    assert_eq!(page.status(), 200, "GET /docs");
    let content_type = page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.expect("HTML");
    assert!(html.contains("swagger-ui"), "the Swagger UI page");
    // Resolved as a browser resolves them: against <base href>, else against the page.
    let (base, assets) = references(&html);
    let base = match base {
        Some(href) => page_url.join(&href).expect("base URL"),
        None => page_url.clone(),
    };
    assert!(assets.len() >= 4, "{assets:?}");
    for asset in &assets {
        let url = base.join(asset).expect("asset URL");
        let response = client.get(url.clone()).send().await.expect("GET asset");
        assert_eq!(response.status(), 200, "{asset} resolved to {url}");
        assert!(!response.bytes().await.expect("body").is_empty(), "{url}");
    }
    // The same page at /docs/ still works, and the UI loads our document.
    let slash = client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("GET /docs/");
    assert_eq!(slash.status(), 200);
    let initializer = base.join("./swagger-initializer.js").expect("URL");
    let config = client
        .get(initializer)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("JS");
    assert!(
        config.contains("/openapi.json"),
        "the UI loads our document: {config}"
    );
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        let response = app.get(asset).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            response.bytes().await.expect("body").len() > 1000,
            "{asset} is the real asset"
        );
    }
}
