use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    channels_are_seeded,
    a_conversation_is_created_once_per_channel_and_external_id,
    conversations_list_newest_activity_first_with_filters_and_total,
    a_conversation_is_read_updated_and_marked_read,
    unknown_conversations_are_404,
);

async fn channels_are_seeded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, total, body) = app.list("/api/v1/channels").await;
    assert_eq!(status, 200);
    assert_eq!(total, Some(3));
    let names: Vec<(&str, &str, i64)> = body
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["display_name"].as_str().unwrap_or(""),
                c["id"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("whatsapp", "WhatsApp", 1),
            ("instagram", "Instagram", 2),
            ("gmail", "Gmail", 3)
        ]
    );
}

async fn a_conversation_is_created_once_per_channel_and_external_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create_conversation(1, "+34 600-123 456", "Ana").await;
    assert_eq!(
        created["external_id"], "34600123456",
        "WhatsApp keys by digits"
    );
    assert_eq!(created["participant_identifier"], "+34 600-123 456");
    assert_eq!(created["participant_name"], "Ana");
    assert_eq!(created["unread_count"], 0);
    assert_eq!(created["is_active"], true);
    assert_eq!(created["last_message_at"], Value::Null);

    let same_number = json!({"channel_id": 1, "participant_identifier": "34600123456"});
    let again = app.post_json("/api/v1/conversations", &same_number).await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["code"], "conflict");

    // The same identifier on another channel is another conversation.
    let other = app
        .post_json(
            "/api/v1/conversations",
            &json!({"channel_id": 2, "participant_identifier": "34600123456"}),
        )
        .await;
    assert_eq!(other.status(), 201);

    let unknown = app
        .post_json(
            "/api/v1/conversations",
            &json!({"channel_id": 99, "participant_identifier": "x"}),
        )
        .await;
    assert_eq!(unknown.status(), 422);
    let body: Value = unknown.json().await.expect("json");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "channel_id"]));

    let (_, total, _) = app.list("/api/v1/conversations").await;
    assert_eq!(total, Some(2));
}

async fn conversations_list_newest_activity_first_with_filters_and_total(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_conversation(1, "111111", "A").await;
    let b = app.create_conversation(2, "ig-b", "B").await;
    let c = app.create_conversation(1, "333333", "C").await;
    let id = |v: &Value| v["id"].as_i64().expect("id");
    // A gets the most recent message, B an older one, C none (its creation counts).
    app.message(id(&b), json!({"timestamp": "2020-01-01T00:00:00Z"}))
        .await;
    app.message(id(&a), json!({"timestamp": "2099-01-01T00:00:00Z"}))
        .await;

    let (status, total, body) = app.list("/api/v1/conversations").await;
    assert_eq!(status, 200);
    assert_eq!(total, Some(3));
    let order: Vec<i64> = body.as_array().expect("array").iter().map(id).collect();
    assert_eq!(order, vec![id(&a), id(&c), id(&b)]);
    assert_eq!(body[0]["last_message_at"], "2099-01-01T00:00:00Z");
    assert_eq!(body[0]["unread_count"], 1);

    let (_, total, body) = app.list("/api/v1/conversations?channel_id=1").await;
    assert_eq!(total, Some(2));
    assert!(body
        .as_array()
        .expect("array")
        .iter()
        .all(|c| c["channel_id"] == 1));

    let (_, total, body) = app.list("/api/v1/conversations?limit=1&offset=1").await;
    assert_eq!(total, Some(3), "the total ignores limit and offset");
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    assert_eq!(body[0]["id"], id(&c));

    app.patch_json(
        &format!("/api/v1/conversations/{}", id(&c)),
        &json!({"is_active": false}),
    )
    .await;
    let (_, total, _) = app.list("/api/v1/conversations?is_active=false").await;
    assert_eq!(total, Some(1));
    let (_, total, _) = app
        .list("/api/v1/conversations?is_active=true&channel_id=1")
        .await;
    assert_eq!(total, Some(1));
    // Setting is_active to what it already is moves nothing.
    app.patch_json(
        &format!("/api/v1/conversations/{}", id(&c)),
        &json!({"is_active": false, "participant_name": "C2"}),
    )
    .await;
    let (_, total, _) = app.list("/api/v1/conversations?is_active=false").await;
    assert_eq!(total, Some(1));
    let (_, total, _) = app.list("/api/v1/conversations?is_active=true").await;
    assert_eq!(total, Some(2));

    let (status, total, body) = app.list("/api/v1/conversations?offset=10").await;
    assert_eq!(status, 200);
    assert_eq!(total, Some(3), "a page past the end still has the total");
    assert_eq!(body.as_array().map(Vec::len), Some(0));
    let (_, total, _) = app.list("/api/v1/conversations?channel_id=99").await;
    assert_eq!(total, Some(0));
}

async fn a_conversation_is_read_updated_and_marked_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5551234", "Old name").await;
    let id = conversation["id"].as_i64().expect("id");
    for _ in 0..3 {
        app.message(id, json!({})).await;
    }
    app.message(id, json!({"direction": "outbound"})).await;

    let read: Value = app
        .get(&format!("/api/v1/conversations/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        read["unread_count"], 3,
        "outbound messages are never unread"
    );

    let renamed = app
        .patch_json(
            &format!("/api/v1/conversations/{id}"),
            &json!({"participant_name": "New name"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let renamed: Value = renamed.json().await.expect("json");
    assert_eq!(renamed["participant_name"], "New name");
    assert_eq!(renamed["is_active"], true, "fields not sent are kept");

    let cleared: Value = app
        .patch_json(
            &format!("/api/v1/conversations/{id}"),
            &json!({"participant_name": null}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(cleared["participant_name"], Value::Null);

    let marked = app
        .client
        .post(app.url(&format!("/api/v1/conversations/{id}/read")))
        .send()
        .await
        .expect("POST");
    assert_eq!(marked.status(), 200);
    let marked: Value = marked.json().await.expect("json");
    assert_eq!(marked["unread_count"], 0);
    let (_, _, messages) = app
        .list(&format!("/api/v1/conversations/{id}/messages"))
        .await;
    assert!(messages
        .as_array()
        .expect("array")
        .iter()
        .all(|m| m["is_read"] == true));
}

async fn unknown_conversations_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for response in [
        app.get("/api/v1/conversations/999").await,
        app.get("/api/v1/conversations/999/messages").await,
        app.patch_json("/api/v1/conversations/999", &json!({"is_active": false}))
            .await,
        app.client
            .post(app.url("/api/v1/conversations/999/read"))
            .send()
            .await
            .expect("POST"),
    ] {
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "not_found");
        assert!(body["detail"].is_string());
    }
}
