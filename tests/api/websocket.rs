//! The WebSocket hub, through a real client.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    every_client_gets_every_event_once_in_order,
    conversation_events_are_broadcast
);

async fn every_client_gets_every_event_once_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5550200", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let mut on_root = app.websocket("/").await;
    let mut on_ws = app.websocket("/ws").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(
            app.message(
                conversation,
                json!({"content": format!("m{i}"), "external_message_id": format!("x{i}")}),
            )
            .await,
        );
    }
    for socket in [&mut on_root, &mut on_ws] {
        for expected in &sent {
            let event = socket.next_event().await;
            assert_eq!(event["type"], "new_message");
            assert_eq!(event["data"]["channel"], "whatsapp");
            let mut data = event["data"].clone();
            data.as_object_mut().expect("object").remove("channel");
            assert_eq!(
                &data, expected,
                "the event carries the Message as REST returns it"
            );
        }
        socket.expect_silence(Duration::from_millis(300)).await;
    }
}

async fn conversation_events_are_broadcast(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut socket = app.websocket("/").await;
    let created = app.create_conversation(2, "ig-9", "Bo").await;
    let event = socket.next_event().await;
    assert_eq!(event["type"], "new_conversation");
    assert_eq!(event["data"], created);
    let id = created["id"].as_i64().expect("id");
    app.patch_json(
        &format!("/api/v1/conversations/{id}"),
        &json!({"participant_name": "Bob"}),
    )
    .await;
    let event = socket.next_event().await;
    assert_eq!(event["type"], "conversation_updated");
    assert_eq!(event["data"]["participant_name"], "Bob");
    app.message(id, json!({})).await;
    assert_eq!(socket.next_event().await["type"], "new_message");
    app.client
        .post(app.url(&format!("/api/v1/conversations/{id}/read")))
        .send()
        .await
        .expect("POST");
    let event = socket.next_event().await;
    assert_eq!(event["type"], "conversation_updated");
    assert_eq!(event["data"]["unread_count"], 0);
}

#[tokio::test]
async fn browsers_may_open_the_socket_only_from_allowed_origins() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let request = |origin: Option<&str>| {
        let mut request = format!("ws://127.0.0.1:{}/", app.port)
            .into_client_request()
            .expect("request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("header"));
        }
        request
    };
    match tokio_tungstenite::connect_async(request(Some("http://evil.example"))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403 refusal, got {:?}", other.map(|_| ())),
    }
    assert!(
        tokio_tungstenite::connect_async(request(Some("http://localhost:3000")))
            .await
            .is_ok()
    );
    assert!(
        tokio_tungstenite::connect_async(request(None))
            .await
            .is_ok(),
        "non-browser clients send no Origin"
    );
}

#[tokio::test]
async fn a_malformed_upgrade_is_refused_with_a_json_error() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let valid = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    for (missing, replaced_by, status) in [
        ("sec-websocket-key", None, 400),
        ("sec-websocket-version", Some("8"), 400),
        ("sec-websocket-version", None, 400),
        ("connection", Some("keep-alive"), 400),
    ] {
        let mut request = app.client.get(app.url("/"));
        for (name, value) in valid {
            if name != missing {
                request = request.header(name, value);
            } else if let Some(other) = replaced_by {
                request = request.header(name, other);
            }
        }
        let response = request.send().await.expect("GET /");
        assert_eq!(response.status(), status, "{missing}: {replaced_by:?}");
        let body: serde_json::Value = response.json().await.expect("a JSON error");
        assert_eq!(body["code"], "bad_upgrade", "{missing}: {replaced_by:?}");
        assert!(body["detail"].is_string());
    }
    let mut request = app.client.head(app.url("/"));
    for (name, value) in valid {
        request = request.header(name, value);
    }
    assert_eq!(
        request.send().await.expect("HEAD /").status(),
        405,
        "an upgrade is a GET"
    );
}

#[tokio::test]
async fn ping_gets_pong_and_unreadable_frames_get_an_error_without_closing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut socket = app.websocket("/").await;
    socket.send_text(r#"{"type":"ping"}"#).await;
    let pong = socket.stream.next().await.expect("frame").expect("ok");
    assert_eq!(
        pong,
        Frame::text(r#"{"type":"pong","data":{}}"#),
        "pong is exact"
    );
    for bad in [
        "not json",
        "[1,2]",
        r#"{"type": 5}"#,
        r#"{"no_type": true}"#,
        "42",
    ] {
        socket.send_text(bad).await;
        let event = socket.next_event().await;
        assert_eq!(event["type"], "error", "{bad}");
        assert!(event["data"]["detail"].is_string(), "{bad}");
    }
    socket.send(Frame::binary(vec![1u8, 2, 3])).await;
    assert_eq!(socket.next_event().await["type"], "error");
    socket.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(
        socket.next_event().await["type"],
        "pong",
        "still open after bad frames"
    );
}

/// A client that stops reading loses events, not memory: it is told how many it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_gets_resync_with_the_count_missed() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("WS_QUEUE_CAPACITY", "16")]).await;
    let conversation = app.create_conversation(1, "5550201", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let mut slow = app.websocket("/").await;
    let mut fast = app.websocket("/").await;
    // Large messages fill the socket buffers quickly, so the slow client's queue overflows.
    let big = "x".repeat(400 * 1024);
    let total = 40;
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < total {
            if fast.next_event().await["type"] == "new_message" {
                seen += 1;
            }
        }
        seen
    });
    for _ in 0..total {
        app.message(conversation, json!({"content": big})).await;
    }
    assert_eq!(
        reader.await.expect("fast reader"),
        total,
        "a slow client does not hold back others"
    );
    let (mut received, mut missed) = (0u64, 0u64);
    while received + missed < total as u64 {
        let event = slow.next_event().await;
        match event["type"].as_str() {
            Some("new_message") => received += 1,
            Some("resync") => missed += event["data"]["missed"].as_u64().expect("missed count"),
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(missed > 0, "the slow client was told it missed events");
    assert_eq!(
        received + missed,
        total as u64,
        "received + missed accounts for every event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("WS_PING_INTERVAL_SECS", "1")]).await;
    let mut socket = app.websocket("/").await;
    // Not reading means not answering pings: the server gives up after two intervals.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.stream.next().await {
                Some(Ok(Frame::Ping(_))) | Some(Ok(Frame::Pong(_))) => continue,
                Some(Ok(Frame::Text(t))) => panic!("unexpected event {t}"),
                _ => return,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closed the silent peer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_peer_that_answers_pings_stays_connected() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("WS_PING_INTERVAL_SECS", "1")]).await;
    let mut socket = app.websocket("/").await;
    // Reading answers pings (tungstenite replies automatically).
    socket.expect_silence(Duration::from_millis(3500)).await;
    socket.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(socket.next_event().await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_with_a_close_frame() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    let mut socket = app.websocket("/").await;
    app.stop().await;
    let frame = tokio::time::timeout(Duration::from_secs(5), socket.stream.next())
        .await
        .expect("a frame");
    match frame {
        Some(Ok(Frame::Close(Some(close)))) => assert_eq!(close.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let refused = reqwest::get(app.url("/health")).await;
    assert!(refused.is_err(), "the server no longer accepts connections");
}
