//! Connections a client opens and then starves: a request head or body that never completes, an
//! idle keep-alive connection, more connections than the server holds at once. The timeouts are
//! shortened through their variables so the suite does not wait 30 s.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp};

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (end of stream or reset) and returns what it
/// sent and when it closed, or `None` if it is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some((
                    started.elapsed(),
                    String::from_utf8_lossy(&received).into_owned(),
                ))
            }
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Whether a complete response arrives within `wait`, without waiting for the connection to
/// close.
async fn responds_within(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut buffer = [0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_not_complete_in_time_is_closed_even_when_trickled() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    // The slowloris shape: a request line and one header, then nothing.
    let mut stalled = connect(&app).await;
    stalled
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    // The same, a byte every 100 ms: activity does not extend the deadline.
    let mut trickled = connect(&app).await;
    let (mut reader, mut writer) = trickled.split();
    let trickle = async {
        for byte in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async {
        let mut buffer = [0u8; 1024];
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n) = reader.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await
        .is_ok()
    };
    let stalled_closed = read_until_closed(&mut stalled, Duration::from_secs(5));
    let (stalled_closed, trickled_closed, ()) = tokio::join!(stalled_closed, closed, trickle);
    let (after, sent) = stalled_closed.expect("a stalled request head was still open after 5 s");
    assert!(
        sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
        "{sent}"
    );
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}, too early"
    );
    assert!(
        trickled_closed,
        "a trickled request head was still open after 5 s"
    );
    // Everyone else is still served.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let response = responds_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (after, _) = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection was still open after 5 s");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}, too early"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_with_408() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    let mut stream = connect(&app).await;
    let body = br#"{"channel_id": 1, "participant_identifier": "5550123"}"#;
    let head = format!(
        "POST /api/v1/conversations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for byte in body {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let answer = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n) = reader.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buffer[..n]);
            }
        })
        .await;
        (
            read.is_ok(),
            String::from_utf8_lossy(&received).into_owned(),
        )
    };
    let ((closed, response), ()) = tokio::join!(answer, trickle);
    assert!(
        closed,
        "a trickled body kept its connection open: {response:?}"
    );
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains(r#""code":"request_timeout""#),
        "{response}"
    );
    assert_eq!(
        app.list("/api/v1/conversations").await.1,
        Some(0),
        "nothing stored from the cut body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_for_a_free_slot_while_open_ones_are_served() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HTTP_MAX_CONNECTIONS", "3")]).await;
    // Three connections: the test client's keep-alive one, a WebSocket, and one sending nothing.
    assert_eq!(app.get("/health").await.status(), 200);
    let socket = app.websocket("/").await;
    let mut idle = connect(&app).await;
    idle.write_all(b"GET").await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A fourth waits: the server does not take it while three are open.
    let mut excess = connect(&app).await;
    excess
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        responds_within(&mut excess, Duration::from_millis(1000)).await,
        None,
        "a connection past the limit was served"
    );
    // Connections already taken are served as usual meanwhile.
    for _ in 0..5 {
        assert_eq!(app.get("/health").await.status(), 200);
    }
    // A WebSocket holds its slot: closing it lets the waiting connection in.
    drop(socket);
    let answer = responds_within(&mut excess, Duration::from_secs(5))
        .await
        .expect("the waiting connection was served once a slot was free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle);
}
