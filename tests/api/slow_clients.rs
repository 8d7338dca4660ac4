//! WebSocket clients that read slowly or not at all: they lose events (and are told so with
//! `resync`) or are closed, and never cost the server memory in proportion to what is sent.

use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::WebSocketStream;

use crate::helpers::process::ServerProcess;
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(a_client_that_never_reads_costs_at_most_the_queue_bytes);

/// The byte cap given to the server in the memory test (the default, 4 MiB).
const QUEUE_BYTES: u64 = 4 * 1024 * 1024;
/// What the server may legitimately grow by besides the queue: allocator pools and
/// fragmentation, the in-flight request bodies, one socket's write buffer.
const MARGIN_BYTES: u64 = 16 * 1024 * 1024;
/// The content of each message in the memory test.
const EVENT_CONTENT: usize = 64 * 1024;

/// A client connected with a 4 KiB receive buffer that completes the handshake and never reads
/// again: the server's writes to it stall at once.
async fn stalled_client(url: &str, port: u16) -> WebSocketStream<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket handshake");
    ws
}

/// `switchboard_websocket_open` from `/metrics` at `url`.
async fn open_sockets(client: &reqwest::Client, url: &str) -> u64 {
    let text = client
        .get(url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("switchboard_websocket_open "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the open sockets gauge")
}

/// Stores `count` messages with `content` through `POST /api/v1/messages`, 8 at a time.
async fn post_messages(
    client: &reqwest::Client,
    url: &str,
    conversation: i64,
    content: &str,
    count: usize,
) {
    stream::iter(0..count)
        .map(|_| async move {
            let response = client
                .post(url)
                .json(&json!({"conversation_id": conversation, "content": content, "direction": "inbound"}))
                .send()
                .await
                .expect("POST /api/v1/messages");
            assert_eq!(response.status(), 201, "message stored");
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

async fn a_client_that_never_reads_costs_at_most_the_queue_bytes(backend: Backend) {
    let server = ServerProcess::spawn(
        backend,
        &[
            ("WS_QUEUE_BYTES", &QUEUE_BYTES.to_string()),
            // No ping may close the stalled client while the events are sent.
            ("WS_PING_INTERVAL_SECS", "30"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let conversation: Value = client
        .post(server.url("/api/v1/conversations"))
        .json(&json!({"channel_id": 1, "participant_identifier": "5550300", "participant_name": "Ana"}))
        .send()
        .await
        .expect("POST /api/v1/conversations")
        .json()
        .await
        .expect("conversation JSON");
    let conversation = conversation["id"].as_i64().expect("id");
    let content = "x".repeat(EVENT_CONTENT);
    let messages = server.url("/api/v1/messages");
    // The same load without a slow client first: caches, pools and the allocator reach their
    // working size, and the highest RssAnon sampled (the allocator's retention varies by some
    // MiB from one sample to the next) is the baseline; what the server holds beyond it with a
    // stalled client is what that client costs.
    let mut before = 0;
    for round in 0..6 {
        post_messages(&client, &messages, conversation, &content, 100).await;
        if round > 0 {
            before = before.max(server.rss_anon_kib());
        }
    }
    let stalled = stalled_client(&server.ws_url("/"), server.port).await;
    let started = Instant::now();
    let mut peak = 0;
    for round in 0..25 {
        post_messages(&client, &messages, conversation, &content, 100).await;
        let rss = server.rss_anon_kib();
        peak = peak.max(rss);
        let open = open_sockets(&client, &server.url("/metrics")).await;
        eprintln!(
            "{backend:?}: {} events, {:?}: RssAnon {rss} KiB, {open} socket(s) open",
            (round + 1) * 100,
            started.elapsed()
        );
        if round == 1 {
            // The test means something only if the client lagged while still connected.
            assert_eq!(
                open, 1,
                "the stalled client was still connected after 200 events"
            );
        }
    }
    let growth_kib = peak.saturating_sub(before);
    let bound_kib = (QUEUE_BYTES + MARGIN_BYTES) / 1024;
    eprintln!(
        "{backend:?}: RssAnon peak {before} KiB without a slow client, {peak} KiB with one: growth {growth_kib} KiB \
         for 2,500 events of {EVENT_CONTENT} bytes to a client that never reads (bound {bound_kib} KiB, {:?})",
        started.elapsed()
    );
    assert!(
        growth_kib < bound_kib,
        "the server grew by {growth_kib} KiB for a client that never reads; the bound is {bound_kib} KiB"
    );
    drop(stalled);
}
