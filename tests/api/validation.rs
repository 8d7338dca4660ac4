//! A JSON body with several problems gets them all in one 422, as FastAPI lists them: every
//! missing field and every wrong-typed one, each at its own `loc`, so a form can mark each field.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(every_missing_and_wrong_typed_field_is_listed);

/// `(method, path, body, fields that must be listed, fields that may also be listed)`.
type Case = (
    &'static str,
    String,
    Value,
    &'static [&'static str],
    &'static [&'static str],
);

async fn every_missing_and_wrong_typed_field_is_listed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5550400", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let message = app.message(conversation, json!({})).await["id"]
        .as_i64()
        .expect("id");
    let cases: Vec<Case> = vec![
        // `to` may be optional on /send when a conversation is given, so it may or may not be
        // listed; channel and message always are.
        (
            "POST",
            "/api/v1/send".into(),
            json!({}),
            &["channel", "message"],
            &["to"],
        ),
        (
            "POST",
            "/api/v1/conversations".into(),
            json!({}),
            &["channel_id", "participant_identifier"],
            &[],
        ),
        (
            "POST",
            "/api/v1/conversations".into(),
            json!({"channel_id": "one"}),
            &["channel_id", "participant_identifier"],
            &[],
        ),
        (
            "POST",
            "/api/v1/messages".into(),
            json!({}),
            &["content", "direction", "conversation_id"],
            &[],
        ),
        (
            "POST",
            "/api/v1/messages".into(),
            json!({"conversation_id": conversation, "content": 5, "direction": "sideways", "is_read": "no"}),
            &["content", "direction", "is_read"],
            &[],
        ),
        (
            "PATCH",
            format!("/api/v1/conversations/{conversation}"),
            json!({"is_active": "yes", "assistant_enabled": 3, "participant_name": false}),
            &["is_active", "assistant_enabled", "participant_name"],
            &[],
        ),
        (
            "PATCH",
            format!("/api/v1/messages/{message}"),
            json!({"is_read": "yes"}),
            &["is_read"],
            &[],
        ),
        (
            "POST",
            "/v1/channels/whatsapp/gateway/inbound".into(),
            json!({"text": ["hi"]}),
            &["message_id", "from_number", "text"],
            &[],
        ),
    ];
    for (method, path, body, required, optional) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 422, "{method} {path} {body}");
        let error: Value = response.json().await.expect("JSON");
        let entries = error["detail"].as_array().expect("a list of errors");
        let mut listed = BTreeSet::new();
        for entry in entries {
            let loc = entry["loc"].as_array().expect("loc");
            assert_eq!(loc.len(), 2, "{method} {path}: {entry}");
            assert_eq!(loc[0], "body", "{method} {path}: {entry}");
            let field = loc[1].as_str().expect("a field name").to_string();
            assert!(entry["msg"].is_string(), "{entry}");
            let kind = entry["type"].as_str().expect("type");
            if body.get(&field).is_none() {
                assert_eq!(
                    (entry["msg"].as_str(), kind),
                    (Some("Field required"), "missing"),
                    "{entry}"
                );
            } else {
                assert_ne!(kind, "missing", "{entry}");
            }
            assert!(listed.insert(field), "listed twice: {error}");
        }
        let required: BTreeSet<String> = required.iter().map(|f| f.to_string()).collect();
        let allowed: BTreeSet<String> = required
            .iter()
            .cloned()
            .chain(optional.iter().map(|f| f.to_string()))
            .collect();
        assert!(
            listed.is_superset(&required) && listed.is_subset(&allowed),
            "{method} {path} {body}: listed {listed:?}, expected {required:?}"
        );
    }
    // None of it was stored.
    assert_eq!(app.list("/api/v1/conversations").await.1, Some(1));
    assert_eq!(app.list("/api/v1/messages").await.1, Some(1));
}
