//! WebSocket clients that read normally cost the server no memory in proportion to the size of
//! the events they get, and get every event intact: exactly once, in order, byte for byte the
//! same at every client, however large.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::helpers::process::ServerProcess;
use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(reading_clients_keep_no_memory_for_large_events_and_get_them_intact);

/// Clients that read every event.
const CLIENTS: usize = 500;
/// Each round posts large events (their content is this many bytes)...
const LARGE_EVENTS: usize = 20;
const LARGE_CONTENT: usize = 64 * 1024;
/// ...then small ones, as after a burst of large messages.
const SMALL_EVENTS: usize = 20;
/// Rounds of that load, without clients and then with them.
const ROUNDS: usize = 2;
/// What the server may hold per reading socket: an idle socket costs about 8 KiB, and issue 18
/// allows 16. Before sockets wrote from shared frames, each kept a write buffer as large as
/// the largest event it had sent, or larger after a write the kernel took in part: about 100
/// KiB per socket after one round of these events, up to 240 KiB after three.
const MAX_KIB_PER_SOCKET: u64 = 16;
/// How much the server's working size for the same load varies from one moment to the next,
/// whatever the number of clients (the allocator's pools and its threads' heaps): up to about
/// 12 MiB measured, with 50 clients as with 1,000.
const ALLOCATOR_ALLOWANCE_KIB: u64 = 16 * 1024;

/// What a client saw of one `new_message` event: its id, its length and a fingerprint of every
/// byte.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    id: i64,
    len: usize,
    fingerprint: u64,
}

/// A fingerprint of `bytes`: any change, loss or move of bytes changes it (with overwhelming
/// likelihood). Eight bytes a step, cheap enough for the test's unoptimised build.
fn fingerprint(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(23);
    }
    for &byte in chunks.remainder() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The `id` of a `new_message` event: the first field of its data.
fn event_id(text: &str) -> i64 {
    const PREFIX: &str = r#"{"type":"new_message","data":{"id":"#;
    let rest = text.strip_prefix(PREFIX).expect("a new_message event");
    let end = rest.find(',').expect("more fields after the id");
    rest[..end].parse().expect("a numeric id")
}

/// Content that differs from one message to the next and within itself, so that bytes out of
/// place show: letters only, so JSON carries it as it is.
fn content(seed: usize, len: usize) -> String {
    let mut state = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

/// What the clients have done so far, all together.
#[derive(Default)]
struct Progress {
    connected: AtomicUsize,
    received: AtomicUsize,
}

/// Reads events until the socket ends, counting the `connected` hello and each `new_message`.
/// The first client (`keep_texts`) also keeps every event's text, to be compared with the REST
/// answers.
async fn read_events(
    url: String,
    progress: Arc<Progress>,
    keep_texts: bool,
) -> (Vec<Seen>, Vec<String>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connect");
    let (mut seen, mut texts) = (Vec::new(), Vec::new());
    while let Some(frame) = ws.next().await {
        let Ok(Frame::Text(text)) = frame else {
            continue;
        };
        if text.starts_with(r#"{"type":"connected""#) {
            progress.connected.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if !text.starts_with(r#"{"type":"new_message""#) {
            // On PostgreSQL the conversation's own event may come after the hello.
            continue;
        }
        seen.push(Seen {
            id: event_id(&text),
            len: text.len(),
            fingerprint: fingerprint(text.as_bytes()),
        });
        if keep_texts {
            texts.push(text.to_string());
        }
        progress.received.fetch_add(1, Ordering::Relaxed);
    }
    (seen, texts)
}

/// Posts one message with `content` and returns the stored message as REST returns it.
async fn post(
    client: &reqwest::Client,
    server: &ServerProcess,
    conversation: i64,
    content: &str,
) -> Value {
    let response = client
        .post(server.url("/api/v1/messages"))
        .json(&json!({"conversation_id": conversation, "content": content, "direction": "inbound"}))
        .send()
        .await
        .expect("POST /api/v1/messages");
    assert_eq!(response.status(), 201, "message stored");
    response.json().await.expect("message JSON")
}

/// Waits until `counter` reaches `count`.
async fn until(counter: &AtomicUsize, count: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while counter.load(Ordering::Relaxed) < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} {what} after 120 s",
            counter.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The smallest of a few samples of RssAnon a moment apart: the allocator returns freed pages
/// on a delay, so one sample may still count some.
async fn settled_rss_kib(server: &ServerProcess) -> u64 {
    let mut lowest = u64::MAX;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        lowest = lowest.min(server.rss_anon_kib());
    }
    lowest
}

/// One round of the load: the large events, then the small ones, each delivered to every
/// client before the next is posted. Returns the highest RssAnon settled after either part.
async fn round(
    client: &reqwest::Client,
    server: &ServerProcess,
    conversation: i64,
    large: &[String],
    clients: &Clients,
) -> u64 {
    let mut highest = 0;
    for part in [
        large.to_vec(),
        (0..SMALL_EVENTS).map(|i| format!("small {i}")).collect(),
    ] {
        for text in &part {
            let message = post(client, server, conversation, text).await;
            clients.stored.lock().expect("not poisoned").push(message);
        }
        let count = clients.count * clients.stored.lock().expect("not poisoned").len();
        until(&clients.progress.received, count, "deliveries").await;
        highest = highest.max(settled_rss_kib(server).await);
    }
    highest
}

/// The reading clients, and the messages they are to get.
struct Clients {
    count: usize,
    progress: Arc<Progress>,
    stored: std::sync::Mutex<Vec<Value>>,
}

async fn reading_clients_keep_no_memory_for_large_events_and_get_them_intact(backend: Backend) {
    // Freed pages go back to the system at once instead of after the allocator's delay, so
    // that RssAnon follows what the server holds more closely.
    let server = ServerProcess::spawn(
        backend,
        &[
            ("WS_PING_INTERVAL_SECS", "30"),
            ("MIMALLOC_PURGE_DELAY", "0"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let conversation = server.create_conversation("5550400").await;
    let conversation = conversation["id"].as_i64().expect("id");
    let large: Vec<String> = (0..LARGE_EVENTS)
        .map(|i| content(i, LARGE_CONTENT))
        .collect();
    // The load without any client first: caches, pools, threads and the allocator reach their
    // working size for it, which varies by some MiB from one moment to the next; its highest
    // sample is the baseline.
    let nobody = Clients {
        count: 0,
        progress: Arc::default(),
        stored: Default::default(),
    };
    let mut without = 0;
    for _ in 0..ROUNDS {
        without = without.max(round(&client, &server, conversation, &large, &nobody).await);
    }

    let clients = Clients {
        count: CLIENTS,
        progress: Arc::default(),
        stored: Default::default(),
    };
    let readers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(read_events(
                server.ws_url("/"),
                clients.progress.clone(),
                i == 0,
            ))
        })
        .collect();
    until(&clients.progress.connected, CLIENTS, "clients connected").await;
    let mut with = 0;
    for _ in 0..ROUNDS {
        with = with.max(round(&client, &server, conversation, &large, &clients).await);
    }
    let growth = with.saturating_sub(without);
    let bound = ALLOCATOR_ALLOWANCE_KIB + MAX_KIB_PER_SOCKET * CLIENTS as u64;
    eprintln!(
        "{backend:?}: RssAnon at most {without} KiB without clients, {with} KiB with {CLIENTS} reading \
         clients, over {ROUNDS} rounds of {LARGE_EVENTS} events of {LARGE_CONTENT} bytes and \
         {SMALL_EVENTS} small ones: {growth} KiB more, {} KiB per socket (bound {bound} KiB)",
        growth / CLIENTS as u64
    );

    // Every client saw every event once, in order, byte for byte as the first client did.
    drop(server);
    let mut results = Vec::new();
    for reader in readers {
        results.push(reader.await.expect("reader"));
    }
    let stored = clients.stored.into_inner().expect("not poisoned");
    let ids: Vec<i64> = stored
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect();
    let (reference, texts) = &results[0];
    let got: Vec<i64> = reference.iter().map(|s| s.id).collect();
    assert_eq!(got, ids, "every event once, in the order stored");
    for (text, message) in texts.iter().zip(&stored) {
        let event: Value = serde_json::from_str(text).expect("event JSON");
        let mut data = event["data"].clone();
        data.as_object_mut().expect("object").remove("channel");
        assert!(
            &data == message,
            "the event carries the message as REST returned it"
        );
    }
    for (i, (seen, _)) in results.iter().enumerate() {
        assert!(
            seen == reference,
            "client {i} got the same events, byte for byte, as client 0"
        );
    }
    assert!(
        growth <= bound,
        "the server grew by {growth} KiB with {CLIENTS} reading clients (bound {bound} KiB: \
         {MAX_KIB_PER_SOCKET} KiB per socket and {ALLOCATOR_ALLOWANCE_KIB} KiB for the allocator)"
    );
}

/// An event larger than any buffer the WebSocket layer would allow (4 MiB) still reaches
/// every client, which stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_several_mebibytes_reaches_every_client_intact() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("MAX_BODY_BYTES", "8388608")]).await;
    let conversation = app.create_conversation(1, "5550401", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let mut sockets = vec![app.websocket("/").await, app.websocket("/ws").await];
    let huge = content(7, 5 * 1024 * 1024);
    let stored = app.message(conversation, json!({"content": huge})).await;
    let after = app.message(conversation, json!({"content": "after"})).await;
    for socket in &mut sockets {
        let event = socket.next_event().await;
        assert_eq!(event["type"], "new_message");
        assert_eq!(event["data"]["id"], stored["id"]);
        assert!(
            event["data"]["content"].as_str() == Some(huge.as_str()),
            "the content arrived intact"
        );
        assert_eq!(socket.next_event().await["data"]["id"], after["id"]);
    }
    // Nothing else is waiting: the large event was sent once.
    for socket in &mut sockets {
        socket.expect_silence(Duration::from_millis(300)).await;
    }
}
