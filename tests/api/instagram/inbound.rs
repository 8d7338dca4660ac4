//! Deliveries in: every fixture, the signature and the handshake, every event kind, and
//! redelivery (sequential and concurrent) storing and broadcasting once.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

use super::{deliver, dm, envelope, fixtures, messages, post_raw, ACCOUNT_ID, ANA, LEO};
use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use crate::whatsapp::sign;

on_both_backends!(
    every_fixture_is_accepted_and_each_dm_stored_once,
    signatures_are_checked_and_only_signed_files_may_be_fetched,
    every_event_kind_is_stored_or_acknowledged,
    fifty_concurrent_redeliveries_store_and_broadcast_one_message,
);

/// The messages a fixture carries, read straight from its JSON: (mid, direction).
fn carried(bytes: &[u8]) -> Vec<(String, &'static str)> {
    let doc: Value = serde_json::from_slice(bytes).expect("fixture JSON");
    let mut found = Vec::new();
    for entry in doc["entry"].as_array().into_iter().flatten() {
        let items = ["messaging", "standby"]
            .iter()
            .flat_map(|key| entry[*key].as_array().into_iter().flatten());
        for item in items {
            let message = &item["message"];
            if message["is_deleted"] == true {
                continue;
            }
            if let Some(mid) = message["mid"].as_str() {
                let direction = if message["is_echo"] == true {
                    "outbound"
                } else {
                    "inbound"
                };
                found.push((mid.to_string(), direction));
            }
        }
    }
    found
}

/// Every fixture is accepted; each message it carries is stored once, with its type, mid,
/// readable content, raw item and files; a redelivery of everything changes nothing. Several
/// files share a mid, so they are posted in rounds, each on a fresh database.
async fn every_fixture_is_accepted_and_each_dm_stored_once(backend: Backend) {
    type Round = (Vec<(String, Vec<u8>)>, HashSet<String>);
    let mut rounds: Vec<Round> = Vec::new();
    for (name, bytes) in fixtures() {
        let mids: Vec<String> = carried(&bytes).into_iter().map(|(m, _)| m).collect();
        let index = rounds
            .iter()
            .position(|(_, seen)| mids.iter().all(|m| !seen.contains(m)))
            .unwrap_or_else(|| {
                rounds.push((Vec::new(), HashSet::new()));
                rounds.len() - 1
            });
        rounds[index].1.extend(mids);
        rounds[index].0.push((name, bytes));
    }
    let mut checked = 0;
    for (files, _) in &rounds {
        let app = TestApp::spawn(backend).await;
        let mut expected = 0;
        for (name, bytes) in files {
            let response = post_raw(&app, bytes, None).await;
            assert_eq!(response.status(), 200, "{name}");
            let doc: Value = serde_json::from_slice(bytes).expect("JSON");
            for (mid, direction) in carried(bytes) {
                let stored: Vec<Value> = messages(&app)
                    .await
                    .into_iter()
                    .filter(|m| m["external_message_id"] == mid.as_str())
                    .collect();
                assert_eq!(stored.len(), 1, "{name}: {mid} stored once");
                let message = &stored[0];
                assert_eq!(message["direction"], direction, "{name}");
                let status = if direction == "inbound" {
                    "received"
                } else {
                    "sent"
                };
                assert_eq!(message["status"], status, "{name}");
                assert!(!message["content"].as_str().unwrap_or("").trim().is_empty());
                let raw: Value =
                    serde_json::from_str(message["message_metadata"].as_str().expect("metadata"))
                        .expect("metadata JSON");
                assert_eq!(raw["message"]["mid"], mid.as_str(), "{name}: the raw item");
                let item = &doc["entry"][0][if doc["entry"][0]["standby"].is_array() {
                    "standby"
                } else {
                    "messaging"
                }][0];
                let files = item["message"]["attachments"]
                    .as_array()
                    .map_or(0, Vec::len);
                let kind = item["message"]["attachments"][0]["type"]
                    .as_str()
                    .unwrap_or("text");
                assert_eq!(message["message_type"], kind, "{name}");
                assert_eq!(
                    message["attachments"].as_array().map(Vec::len),
                    Some(files),
                    "{name}"
                );
                for file in message["attachments"].as_array().into_iter().flatten() {
                    assert_eq!(
                        file["kind"], "file",
                        "{name}: shares, mentions and unknown types"
                    );
                    assert_eq!(file["url"], format!("/api/v1/attachments/{}", file["id"]));
                    assert_eq!(file["size"], Value::Null, "not fetched yet");
                }
                // Conversations are the customer's, whichever way the message went.
                let customer = if direction == "inbound" {
                    &item["sender"]["id"]
                } else {
                    &item["recipient"]["id"]
                };
                let conversation: Value = app
                    .get(&format!(
                        "/api/v1/conversations/{}",
                        message["conversation_id"]
                    ))
                    .await
                    .json()
                    .await
                    .expect("JSON");
                assert_eq!(conversation["external_id"], *customer, "{name}");
                assert_eq!(conversation["channel_id"], 2, "{name}");
                expected += 1;
                checked += 1;
            }
        }
        assert_eq!(
            messages(&app).await.len(),
            expected,
            "nothing but the carried messages"
        );
        for (name, bytes) in files {
            assert_eq!(
                post_raw(&app, bytes, None).await.status(),
                200,
                "{name} again"
            );
        }
        assert_eq!(
            messages(&app).await.len(),
            expected,
            "redelivery changes nothing"
        );
    }
    let carried_total: usize = fixtures().iter().map(|(_, b)| carried(b).len()).sum();
    assert_eq!(checked, carried_total);
    assert_eq!(carried_total, 7, "six customer messages and one echo");
}

/// `(fetchable, state, source_ref)` of every attachment row, read from the database itself.
async fn attachment_rows(app: &TestApp) -> Vec<(bool, String, Option<String>)> {
    let sql = "SELECT fetchable, state, source_ref FROM attachments ORDER BY id";
    match app.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query_as(sql)
                .fetch_all(&mut conn)
                .await
                .expect("attachments")
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query_as(sql)
                .fetch_all(&mut conn)
                .await
                .expect("attachments")
        }
    }
}

async fn signatures_are_checked_and_only_signed_files_may_be_fetched(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("INSTAGRAM_APP_SECRET", "meta-secret,instagram-secret"),
            ("WHATSAPP_APP_SECRET", "wa-secret"),
        ],
    )
    .await;
    let (_, bytes) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "attachment_share_1.json")
        .expect("attachment_share_1.json");
    for (what, signature) in [
        ("missing", None),
        ("WhatsApp's secret", Some(sign("wa-secret", &bytes))),
        (
            "sha1",
            Some(sign("instagram-secret", &bytes).replace("sha256=", "sha1=")),
        ),
        ("garbage", Some("sha256=zz".to_string())),
    ] {
        let response = post_raw(&app, &bytes, signature.as_deref()).await;
        assert_eq!(response.status(), 401, "{what}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "invalid_signature", "{what}");
    }
    let mut altered = bytes.clone();
    altered.push(b'\n');
    assert_eq!(
        post_raw(&app, &altered, Some(&sign("instagram-secret", &bytes)))
            .await
            .status(),
        401
    );
    assert!(
        messages(&app).await.is_empty(),
        "nothing stored from refused deliveries"
    );
    assert_eq!(
        post_raw(&app, &bytes, Some(&sign("instagram-secret", &bytes)))
            .await
            .status(),
        200
    );
    assert_eq!(
        post_raw(&app, &bytes, Some(&sign("meta-secret", &bytes)))
            .await
            .status(),
        200,
        "either secret"
    );
    assert_eq!(messages(&app).await.len(), 1);
    let rows = attachment_rows(&app).await;
    assert_eq!(
        rows,
        vec![(
            true,
            "pending".to_string(),
            Some("https://www.example.com/test.jpeg".to_string())
        )],
        "a signed delivery's URL may be fetched"
    );

    // Unsigned (no secret set): stored, but its URL is never fetched.
    let open = TestApp::spawn(backend).await;
    assert_eq!(post_raw(&open, &bytes, None).await.status(), 200);
    let rows = attachment_rows(&open).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0, rows[0].1.as_str()), (false, "refused"));

    // The handshake uses Instagram's token, not WhatsApp's.
    let app = TestApp::spawn_with(
        backend,
        &[
            ("INSTAGRAM_WEBHOOK_VERIFY_TOKEN", "ig-verify"),
            ("WHATSAPP_WEBHOOK_VERIFY_TOKEN", "wa-verify"),
        ],
    )
    .await;
    let good = app.get("/webhook/instagram?hub.mode=subscribe&hub.verify_token=ig-verify&hub.challenge=1158201444").await;
    assert_eq!(good.status(), 200);
    assert!(good.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/plain"));
    assert_eq!(good.text().await.expect("text"), "1158201444");
    for query in [
        "hub.mode=subscribe&hub.verify_token=wa-verify&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=ig-verify&hub.challenge=1",
        "hub.challenge=1",
    ] {
        assert_eq!(
            app.get(&format!("/webhook/instagram?{query}"))
                .await
                .status(),
            403,
            "{query}"
        );
    }
    let unset = TestApp::spawn(backend).await;
    let response = unset
        .get("/webhook/instagram?hub.mode=subscribe&hub.verify_token=&hub.challenge=1")
        .await;
    assert_eq!(
        response.status(),
        403,
        "no token configured: nobody verifies"
    );
}

/// One delivery of every kind: customers' texts (with a quick reply, a story reply), files, a
/// postback, and the kinds that store nothing (reactions, unsends, referrals, comments).
async fn every_event_kind_is_stored_or_acknowledged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut socket = app.websocket("/").await;
    let item = |from: &str, ms: i64, event: Value| {
        let mut item =
            json!({"sender": {"id": from}, "recipient": {"id": ACCOUNT_ID}, "timestamp": ms});
        if let (Some(target), Value::Object(extra)) = (item.as_object_mut(), event) {
            target.extend(extra);
        }
        item
    };
    let body = json!({"object": "instagram", "entry": [
        {"id": ACCOUNT_ID, "time": 1736330400000_i64, "messaging": [
            item(ANA, 1736330400000, json!({"message": {"mid": "m.text", "text": "¿Tenéis mesa? 🍝", "quick_reply": {"payload": "BOOK"}}})),
            item(ANA, 1736330401000, json!({"message": {"mid": "m.story", "text": "¡Qué bonito!", "reply_to": {"story": {"id": "1", "url": "https://lookaside.fbsbx.com/story"}}}})),
            item(ANA, 1736330402000, json!({"message": {"mid": "m.files", "text": "mira", "attachments": [
                {"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"}},
                {"type": "video", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=2"}},
                {"type": "audio", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=3"}},
                {"type": "file", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=4"}},
                {"type": "ig_reel", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=5", "title": "a reel", "reel_video_id": "9"}}
            ]}})),
            item(ANA, 1736330403000, json!({"postback": {"mid": "m.postback", "title": "Opening hours", "payload": "HOURS"}})),
            item(ANA, 1736330404000, json!({"reaction": {"mid": "m.text", "action": "react", "reaction": "love", "emoji": "❤️"}})),
            item(ANA, 1736330405000, json!({"message": {"mid": "m.unsent", "is_deleted": true}})),
            item(ANA, 1736330406000, json!({"referral": {"ref": "ad", "source": "ADS", "type": "OPEN_THREAD"}})),
        ]},
        {"id": ACCOUNT_ID, "time": 1736330407000_i64, "standby": [
            item(LEO, 1736330407000, json!({"message": {"mid": "m.standby", "text": "¿Hola?"}})),
        ]},
        {"id": "0", "time": 1519399307, "changes": [
            {"field": "comments", "value": {"text": "Nice post", "id": "123", "from": {"id": "9", "username": "x"}}},
            {"field": "messages", "value": {"sender": {"id": "12334"}, "recipient": {"id": "23245"}, "timestamp": "1527459824",
                "message": {"mid": "m.dashboard", "text": "random_text"}}},
        ]},
    ]});
    deliver(&app, &body).await;
    let stored = messages(&app).await;
    let summary: Vec<(String, String, String, String)> = stored
        .iter()
        .map(|m| {
            (
                m["external_message_id"].as_str().unwrap_or("").to_owned(),
                m["message_type"].as_str().unwrap_or("").to_owned(),
                m["content"].as_str().unwrap_or("").to_owned(),
                m["timestamp"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let row = |mid: &str, kind: &str, content: &str, at: &str| {
        (
            mid.to_owned(),
            kind.to_owned(),
            content.to_owned(),
            at.to_owned(),
        )
    };
    assert_eq!(
        summary,
        vec![
            row("m.dashboard", "text", "random_text", "2018-05-27T22:23:44Z"),
            row("m.text", "text", "¿Tenéis mesa? 🍝", "2025-01-08T10:00:00Z"),
            row("m.story", "text", "¡Qué bonito!", "2025-01-08T10:00:01Z"),
            row(
                "m.files",
                "image",
                "[image] [video] [audio] [file] [reel] mira",
                "2025-01-08T10:00:02Z"
            ),
            row(
                "m.postback",
                "postback",
                "Opening hours",
                "2025-01-08T10:00:03Z"
            ),
            row("m.standby", "text", "¿Hola?", "2025-01-08T10:00:07Z"),
        ]
    );
    let files: Vec<Value> = stored[3]["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["kind"].clone())
        .collect();
    assert_eq!(
        files,
        vec![
            json!("image"),
            json!("video"),
            json!("audio"),
            json!("document"),
            json!("video")
        ]
    );
    for m in &stored {
        assert_eq!(
            (m["direction"].as_str(), m["status"].as_str()),
            (Some("inbound"), Some("received"))
        );
    }
    // Three customers, three conversations, each announced once with its messages.
    let mut kinds = Vec::new();
    for _ in 0..(3 + 6) {
        kinds.push(
            socket.next_event().await["type"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(kinds.iter().filter(|k| *k == "new_conversation").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "new_message").count(), 6);
    socket.expect_silence(Duration::from_millis(300)).await;
    let (_, total, _) = app.list("/api/v1/conversations?channel_id=2").await;
    assert_eq!(total, Some(3));

    // Nothing but kinds that store nothing: acknowledged, nothing new.
    let nothing = envelope(vec![
        json!({"sender": {"id": ANA}, "recipient": {"id": ACCOUNT_ID}, "timestamp": 1, "reaction": {"mid": "m.text", "action": "unreact"}}),
        json!({"sender": {"id": ANA}, "recipient": {"id": ACCOUNT_ID}, "timestamp": 1, "message_edit": {"mid": "m.text", "text": "x", "num_edit": 1}}),
    ]);
    deliver(&app, &nothing).await;
    deliver(&app, &json!({"object": "instagram"})).await;
    deliver(&app, &json!([1, 2])).await;
    assert_eq!(messages(&app).await.len(), 6);
    socket.expect_silence(Duration::from_millis(200)).await;
    let broken = post_raw(&app, b"{not json", None).await;
    assert_eq!(broken.status(), 400);
    assert_eq!(
        broken.json::<Value>().await.expect("json")["code"],
        "invalid_json"
    );
}

async fn fifty_concurrent_redeliveries_store_and_broadcast_one_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut socket = app.websocket("/").await;
    let body = dm("m.dup", ANA, "once").to_string().into_bytes();
    let requests = (0..50).map(|_| post_raw(&app, &body, None));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(messages(&app).await.len(), 1);
    assert_eq!(socket.next_event().await["type"], "new_conversation");
    assert_eq!(socket.next_event().await["type"], "new_message");
    socket.expect_silence(Duration::from_millis(500)).await;
    // Sequentially, too.
    for _ in 0..3 {
        assert_eq!(post_raw(&app, &body, None).await.status(), 200);
    }
    socket.expect_silence(Duration::from_millis(300)).await;

    // Fifty first messages of one new customer at once: one conversation.
    let bodies: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            dm(&format!("m.first-{i}"), LEO, &format!("m{i}"))
                .to_string()
                .into_bytes()
        })
        .collect();
    let requests = bodies.iter().map(|b| post_raw(&app, b, None));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    let (_, total, conversations) = app.list("/api/v1/conversations?channel_id=2").await;
    assert_eq!(total, Some(2));
    let leo = conversations
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["external_id"] == LEO)
        .expect("Leo's conversation");
    assert_eq!(leo["unread_count"], 50);
    assert_eq!(messages(&app).await.len(), 51);
}
