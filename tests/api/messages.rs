use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_recorded_message_is_returned_as_stored,
    an_external_message_id_is_stored_once_per_channel,
    messages_filter_order_and_page,
    before_and_after_id_combine_with_filters,
    a_message_is_marked_read,
);

fn ids(body: &Value) -> Vec<i64> {
    body.as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

async fn a_recorded_message_is_returned_as_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5550001", "Ana").await;
    let id = conversation["id"].as_i64().expect("id");
    let tricky = "héllo 👋🏽 '; DROP TABLE messages; -- \"quoted\" \\ back\nslash\t%_";
    let created = app
        .message(
            id,
            json!({
                "content": tricky,
                "message_type": "text",
                "direction": "inbound",
                "sender_name": "Ana 🌸",
                "sender_identifier": "5550001",
                "timestamp": "2025-01-08T12:00:00+02:00",
                "message_metadata": "{\"k\": [1, 2]}",
                "external_message_id": "wamid.ABC",
            }),
        )
        .await;
    assert_eq!(created["content"], tricky);
    assert_eq!(
        created["timestamp"], "2025-01-08T10:00:00Z",
        "offsets are converted to UTC"
    );
    assert_eq!(created["status"], "received");
    assert_eq!(created["error"], Value::Null);
    assert_eq!(created["is_read"], false);
    assert_eq!(created["message_metadata"], "{\"k\": [1, 2]}");
    let fetched: Value = app
        .get(&format!("/api/v1/messages/{}", created["id"]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(fetched, created);

    let naive = app
        .message(id, json!({"timestamp": "2025-01-08T10:00:00"}))
        .await;
    assert_eq!(
        naive["timestamp"], "2025-01-08T10:00:00Z",
        "no offset means UTC"
    );
    let object_metadata = app.message(id, json!({"message_metadata": {"a": 1}})).await;
    assert_eq!(object_metadata["message_metadata"], "{\"a\":1}");
    let outbound = app.message(id, json!({"direction": "outbound"})).await;
    assert_eq!(outbound["status"], "sent");
}

async fn an_external_message_id_is_stored_once_per_channel(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wa = app.create_conversation(1, "5550002", "A").await["id"]
        .as_i64()
        .expect("id");
    let wa2 = app.create_conversation(1, "5550003", "B").await["id"]
        .as_i64()
        .expect("id");
    let ig = app.create_conversation(2, "ig-user", "C").await["id"]
        .as_i64()
        .expect("id");
    app.message(wa, json!({"external_message_id": "m-1"})).await;
    let again = app
        .post_message(wa2, json!({"external_message_id": "m-1", "content": "dup"}))
        .await;
    assert_eq!(
        again.status(),
        409,
        "the same id on the same channel is a redelivery"
    );
    app.message(ig, json!({"external_message_id": "m-1"})).await;
    // Messages without a provider id never collide.
    app.message(wa, json!({})).await;
    app.message(wa, json!({})).await;
    let (_, total, _) = app.list("/api/v1/messages").await;
    assert_eq!(total, Some(4));
}

async fn messages_filter_order_and_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wa = app.create_conversation(1, "5550004", "A").await["id"]
        .as_i64()
        .expect("id");
    let ig = app.create_conversation(2, "ig-2", "B").await["id"]
        .as_i64()
        .expect("id");
    let first = app
        .message(wa, json!({"timestamp": "2025-01-01T00:00:01Z"}))
        .await;
    let second = app
        .message(
            ig,
            json!({"timestamp": "2025-01-01T00:00:02Z", "direction": "outbound"}),
        )
        .await;
    // Same timestamp as `second`: the tie is broken by id.
    let third = app
        .message(
            wa,
            json!({"timestamp": "2025-01-01T00:00:02Z", "direction": "outbound"}),
        )
        .await;
    // Inserted last but oldest.
    let oldest = app
        .message(wa, json!({"timestamp": "2024-12-31T23:59:59Z"}))
        .await;
    let id = |v: &Value| v["id"].as_i64().expect("id");

    let (status, total, body) = app.list("/api/v1/messages").await;
    assert_eq!((status, total), (200, Some(4)));
    assert_eq!(
        ids(&body),
        vec![id(&third), id(&second), id(&first), id(&oldest)],
        "newest first by default"
    );
    let (_, _, body) = app.list("/api/v1/messages?order=asc").await;
    assert_eq!(
        ids(&body),
        vec![id(&oldest), id(&first), id(&second), id(&third)]
    );

    let (_, total, body) = app
        .list(&format!("/api/v1/messages?conversation_id={wa}&order=asc"))
        .await;
    assert_eq!(total, Some(3));
    assert_eq!(ids(&body), vec![id(&oldest), id(&first), id(&third)]);
    let (_, total, body) = app.list("/api/v1/messages?channel=instagram").await;
    assert_eq!((total, ids(&body)), (Some(1), vec![id(&second)]));
    let (_, total, body) = app
        .list("/api/v1/messages?channel=whatsapp&direction=outbound")
        .await;
    assert_eq!((total, ids(&body)), (Some(1), vec![id(&third)]));
    let (_, total, body) = app
        .list("/api/v1/messages?direction=inbound&order=asc")
        .await;
    assert_eq!(
        (total, ids(&body)),
        (Some(2), vec![id(&oldest), id(&first)])
    );

    let (_, total, body) = app
        .list("/api/v1/messages?limit=2&offset=1&order=asc")
        .await;
    assert_eq!(
        (total, ids(&body)),
        (Some(4), vec![id(&first), id(&second)])
    );
    let (_, total, body) = app
        .list(&format!("/api/v1/conversations/{wa}/messages?limit=1"))
        .await;
    assert_eq!((total, ids(&body)), (Some(3), vec![id(&third)]));
    let (status, total, body) = app
        .list(&format!("/api/v1/messages?conversation_id={wa}&offset=3"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (total, ids(&body)),
        (Some(3), vec![]),
        "a page past the end still has the total"
    );
}

async fn before_and_after_id_combine_with_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5550005", "A").await["id"]
        .as_i64()
        .expect("id");
    let other = app.create_conversation(1, "5550006", "B").await["id"]
        .as_i64()
        .expect("id");
    let mut mine = Vec::new();
    for i in 0..6 {
        mine.push(
            app.message(conversation, json!({"content": format!("m{i}")}))
                .await["id"]
                .as_i64()
                .expect("id"),
        );
        app.message(other, json!({})).await;
    }
    // Catching up after a drop: everything newer than the last id seen, oldest first.
    let (_, total, body) = app
        .list(&format!(
            "/api/v1/messages?conversation_id={conversation}&after_id={}&order=asc",
            mine[2]
        ))
        .await;
    assert_eq!((total, ids(&body)), (Some(3), mine[3..].to_vec()));
    // Paging back: older than the oldest shown, newest first, limited.
    let (_, total, body) = app
        .list(&format!(
            "/api/v1/messages?conversation_id={conversation}&before_id={}&limit=2",
            mine[4]
        ))
        .await;
    assert_eq!((total, ids(&body)), (Some(4), vec![mine[3], mine[2]]));
    let (_, total, body) = app
        .list(&format!(
            "/api/v1/messages?conversation_id={conversation}&after_id={}&before_id={}",
            mine[0], mine[3]
        ))
        .await;
    assert_eq!((total, ids(&body)), (Some(2), vec![mine[2], mine[1]]));
}

async fn a_message_is_marked_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5550007", "A").await["id"]
        .as_i64()
        .expect("id");
    let message = app.message(conversation, json!({})).await;
    let path = format!("/api/v1/messages/{}", message["id"]);
    let updated = app.patch_json(&path, &json!({"is_read": true})).await;
    assert_eq!(updated.status(), 200);
    let updated: Value = updated.json().await.expect("json");
    assert_eq!(updated["is_read"], true);
    let conversation: Value = app
        .get(&format!("/api/v1/conversations/{conversation}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(conversation["unread_count"], 0);
    assert_eq!(
        app.patch_json("/api/v1/messages/424242", &json!({"is_read": true}))
            .await
            .status(),
        404
    );
    assert_eq!(app.get("/api/v1/messages/424242").await.status(), 404);
}
