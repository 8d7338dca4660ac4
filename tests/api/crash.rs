//! The real binary as a child process: what was committed survives `kill -9`, SIGTERM exits
//! cleanly, and a restart serves the same database on the same port.

use serde_json::{json, Value};

use crate::helpers::process::ServerProcess;
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(a_stored_message_survives_kill_9_and_sigterm_exits_cleanly);

async fn a_stored_message_survives_kill_9_and_sigterm_exits_cleanly(backend: Backend) {
    let mut server = ServerProcess::spawn(backend, &[]).await;
    let client = reqwest::Client::new();
    let conversation = server.create_conversation("5550400").await;
    let stored: Value = client
        .post(server.url("/api/v1/messages"))
        .json(&json!({"conversation_id": conversation["id"], "content": "kept", "direction": "inbound"}))
        .send()
        .await
        .expect("POST /api/v1/messages")
        .json()
        .await
        .expect("message JSON");
    let pid = server.pid();
    server.kill9();
    assert!(
        client.get(server.url("/health")).send().await.is_err(),
        "nothing answers once the process is killed"
    );
    server.restart().await;
    assert_ne!(server.pid(), pid, "a new process");
    let id = stored["id"].as_i64().expect("id");
    let fetched: Value = client
        .get(server.url(&format!("/api/v1/messages/{id}")))
        .send()
        .await
        .expect("GET the message")
        .json()
        .await
        .expect("message JSON");
    assert_eq!(fetched, stored, "the committed message survived kill -9");
    assert!(server.rss_anon_kib() > 0);
    let status = server.sigterm().await;
    assert!(status.success(), "SIGTERM exits with success, got {status}");
    assert_eq!(server.backend, backend);
}
