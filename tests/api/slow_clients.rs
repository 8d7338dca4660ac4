//! WebSocket clients that read slowly or not at all: they lose events (and are told so with
//! `resync`) or are closed, and never cost the server memory in proportion to what is sent.

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::process::ServerProcess;
use crate::helpers::{Backend, Socket, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_client_that_never_reads_costs_at_most_the_queue_bytes,
    a_lagging_client_gets_resync_then_later_events_and_the_others_miss_nothing
);

/// The byte cap given to the server in the memory test (the default, 4 MiB).
const QUEUE_BYTES: u64 = 4 * 1024 * 1024;
/// What the server may legitimately grow by besides the queue: one socket's batch and write
/// buffer (under 200 KiB), and the allocator's pools, whose retention of the requests' freed
/// buffers varies by up to about 12 MiB from one run to the next on a busy machine.
const MARGIN_BYTES: u64 = 24 * 1024 * 1024;
/// The content of each message in the memory test.
const EVENT_CONTENT: usize = 64 * 1024;

/// A client connected with a 4 KiB receive buffer that completes the handshake and never reads
/// again: the server's writes to it stall at once.
async fn stalled_client(
    url: &str,
    port: u16,
) -> WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
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
    let conversation = server.create_conversation("5550300").await;
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
        if round == 0 {
            // The test means something only if the client lagged while still connected: 100
            // events are more than the kernel buffers for it.
            assert_eq!(
                open, 1,
                "the stalled client was still connected after 100 events"
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

/// The ids of `new_message` events, with each `resync` as its negated `missed` count.
fn summary(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| match e["type"].as_str() {
            Some("new_message") => e["data"]["id"].as_i64().expect("id"),
            Some("resync") => -e["data"]["missed"].as_i64().expect("missed"),
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

/// Reads events until `total` messages are accounted for, each received or counted missed.
async fn read_accounting_for(socket: &mut Socket, total: usize) -> Vec<Value> {
    let (mut events, mut accounted) = (Vec::new(), 0);
    while accounted < total {
        let event = socket.next_event().await;
        accounted += match event["type"].as_str() {
            // On PostgreSQL the conversation's own event travels through LISTEN and may
            // arrive after the sockets connected.
            Some("new_conversation") => continue,
            Some("resync") => event["data"]["missed"].as_u64().expect("missed") as usize,
            _ => 1,
        };
        events.push(event);
    }
    events
}

async fn a_lagging_client_gets_resync_then_later_events_and_the_others_miss_nothing(
    backend: Backend,
) {
    // 1 MiB: the ring holds 15 events of 64 KiB for clients that lag, enough for the one that
    // reads to keep up on a busy machine.
    let app = TestApp::spawn_with(backend, &[("WS_QUEUE_BYTES", "1048576")]).await;
    let conversation = app.create_conversation(1, "5550301", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let url = format!("ws://127.0.0.1:{}/", app.port);
    let mut slow = Socket {
        stream: stalled_client(&url, app.port).await,
    };
    let mut fast = app.websocket("/").await;
    let big = "x".repeat(EVENT_CONTENT);
    // More than the kernel can buffer for it (the server's send buffer grows to 4 MiB) plus
    // the ring and one batch, so the slow client falls behind the ring's start.
    let total = 150;
    let reader = tokio::spawn(async move {
        let events = read_accounting_for(&mut fast, total).await;
        (fast, events)
    });
    let mut sent = Vec::new();
    for _ in 0..total {
        sent.push(
            app.message(conversation, json!({"content": big})).await["id"]
                .as_i64()
                .expect("id"),
        );
    }
    let (mut fast, events) = reader.await.expect("fast reader");
    assert_eq!(
        summary(&events),
        sent,
        "a slow client does not cost the others a single event"
    );
    // The slow client reads again, well within the write timeout.
    assert_eq!(slow.next_event().await["type"], "connected");
    let got = summary(&read_accounting_for(&mut slow, total).await);
    let at = got
        .iter()
        .position(|&x| x < 0)
        .expect("a resync among the events");
    let missed = usize::try_from(-got[at]).expect("a positive count");
    assert!(missed > 0);
    let mut expected: Vec<i64> = sent[..at].to_vec();
    expected.push(got[at]);
    expected.extend(&sent[at + missed..]);
    assert_eq!(
        got, expected,
        "the first events, then resync with the count skipped, then the rest"
    );
    // Caught up, it gets later events as usual, and nothing else.
    let later = app.message(conversation, json!({"content": "later"})).await["id"].clone();
    let event = slow.next_event().await;
    assert_eq!(
        (event["type"].as_str(), &event["data"]["id"]),
        (Some("new_message"), &later)
    );
    assert_eq!(fast.next_event().await["data"]["id"], later);
    slow.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_closed_after_the_write_timeout_while_events_keep_coming() {
    // Pings every 30 s: nothing but the write timeout (10 s) can close the peer here.
    let app = TestApp::spawn_with(Backend::Sqlite, &[("WS_PING_INTERVAL_SECS", "30")]).await;
    let conversation = app.create_conversation(1, "5550302", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let url = format!("ws://127.0.0.1:{}/", app.port);
    let mut stalled = stalled_client(&url, app.port).await;
    let metrics = app.url("/metrics");
    assert_eq!(open_sockets(&app.client, &metrics).await, 1);
    let big = "x".repeat(EVENT_CONTENT);
    let started = Instant::now();
    // More than the kernel buffers for the peer (the server's send buffer grows to 4 MiB), at
    // once: the server's writes to it stall before this returns.
    post_messages(
        &app.client,
        &app.url("/api/v1/messages"),
        conversation,
        &big,
        80,
    )
    .await;
    let stalled_by = Instant::now();
    while open_sockets(&app.client, &metrics).await > 0 {
        assert!(
            stalled_by.elapsed() < Duration::from_secs(20),
            "a peer that never reads was still open 20 s after its writes stalled"
        );
        app.message(conversation, json!({"content": big})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed_after = started.elapsed();
    assert!(
        closed_after > Duration::from_secs(9),
        "closed after {closed_after:?}: before the write timeout (10 s) had run out"
    );
    // The connection itself is gone: past what was buffered, the peer reads its end.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = stalled.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the peer's connection was closed");
}
