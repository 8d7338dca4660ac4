//! One WebSocket connection: forwards hub events, answers `ping`, detects dead peers (no pong
//! for two ping intervals, or a write that cannot complete within `SEND_TIMEOUT`), and closes
//! with a close frame when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use serde_json::Value;
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::hub::Subscription;
use super::{Event, Hub};

/// A peer that cannot take a write (a frame, or one batch of events) within this time is
/// treated as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Close code 1001: the server is going away.
const GOING_AWAY: u16 = 1001;

/// Runs the connection until the peer leaves, stops answering, or the server shuts down.
pub async fn run(
    socket: WebSocket,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    ping_every: Duration,
) {
    hub.socket_opened();
    serve(socket, &hub, shutdown, ping_every).await;
    hub.socket_closed();
}

/// At most this many queued events are written before one flush...
const MAX_EVENTS_PER_FLUSH: usize = 64;
/// ...and at most this many bytes of them (or one event, if larger). While its peer is slow, a
/// socket holds no more than this outside the hub, plus what the WebSocket layer buffers: it
/// copies each frame into its write buffer and, before taking the next, waits until that buffer
/// is written out, so at most the unsent rest of one frame and the next one.
const MAX_BYTES_PER_FLUSH: usize = 64 * 1024;

/// What one turn of the connection's loop does.
enum Turn {
    /// Write the events waiting in the hub (after a `resync` if some were missed), then flush.
    Events,
    Send(Message),
    Nothing,
    Close,
}

async fn serve(
    mut socket: WebSocket,
    hub: &Hub,
    shutdown: CancellationToken,
    ping_every: Duration,
) {
    // Subscribe before saying hello, so no event between the two is missed.
    let mut events = hub.subscribe();
    let hello = Event::Connected {
        server_time: crate::domain::now(),
        version: crate::VERSION,
    };
    if send(&mut socket, text(&hello)).await.is_err() {
        return;
    }
    // Registered once, not once per turn.
    let shutdown = shutdown.cancelled_owned();
    tokio::pin!(shutdown);
    let mut pings = interval_at(Instant::now() + ping_every, ping_every);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard_since_ping = true;
    loop {
        // Events come before reading: a turn woken by an event then writes it without first
        // trying the socket for input. (`recv` is cancel-safe: a frame read halfway stays
        // buffered in the WebSocket.)
        let turn = tokio::select! {
            biased;
            _ = &mut shutdown => {
                let frame = CloseFrame { code: GOING_AWAY, reason: Utf8Bytes::from_static("server shutting down") };
                let _ = send(&mut socket, Message::Close(Some(frame))).await;
                return;
            }
            _ = events.changed() => Turn::Events,
            frame = socket.recv() => {
                heard_since_ping = true;
                match frame {
                    Some(Ok(Message::Text(body))) => reply_to(&body).map_or(Turn::Nothing, Turn::Send),
                    Some(Ok(Message::Binary(_))) => Turn::Send(error("binary frames are not supported; send JSON text")),
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Turn::Nothing,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => Turn::Close,
                }
            }
            _ = pings.tick() => {
                if !heard_since_ping {
                    tracing::debug!("closing a WebSocket peer that stopped answering pings");
                    return;
                }
                heard_since_ping = false;
                Turn::Send(Message::Ping(bytes::Bytes::new()))
            }
        };
        let write = async {
            match turn {
                Turn::Events => write_events(&mut socket, &mut events).await,
                Turn::Send(message) => socket.send(message).await,
                Turn::Nothing => Ok(()),
                Turn::Close => Err(axum::Error::new("the peer closed the connection")),
            }
        };
        // A peer that stops reading stalls the write once the kernel's buffers are full: it is
        // closed when the write has not completed within SEND_TIMEOUT, however many events
        // keep coming meanwhile (they wait in the hub, which bounds them). Shutdown does not
        // wait for such a write: there is no point sending a close frame the peer cannot take.
        // (The timer is only armed if the write does not complete at once.)
        let written = tokio::select! {
            biased;
            _ = &mut shutdown => return,
            written = timeout(SEND_TIMEOUT, write) => written,
        };
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}

/// Writes what the hub holds for this socket, up to one batch, then flushes once: a socket that
/// fell behind catches up with one write per batch instead of one per event.
async fn write_events(
    socket: &mut WebSocket,
    events: &mut Subscription<'_>,
) -> Result<(), axum::Error> {
    let batch = events.take(MAX_EVENTS_PER_FLUSH, MAX_BYTES_PER_FLUSH);
    if batch.missed == 0 && batch.events.is_empty() {
        return Ok(());
    }
    if batch.missed > 0 {
        let missed = batch.missed;
        socket.feed(text(&Event::Resync { missed })).await?;
    }
    for event in batch.events {
        socket.feed(Message::Text(event)).await?;
    }
    socket.flush().await
}

/// The answer to a client's text frame, if any.
fn reply_to(body: &str) -> Option<Message> {
    let kind = match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            _ => {
                return Some(error(
                    "a frame must be a JSON object with a string \"type\"",
                ))
            }
        },
        Ok(_) => {
            return Some(error(
                "a frame must be a JSON object with a string \"type\"",
            ))
        }
        Err(_) => return Some(error("a frame must be JSON")),
    };
    match kind.as_str() {
        "ping" => Some(Message::Text(Utf8Bytes::from_static(
            r#"{"type":"pong","data":{}}"#,
        ))),
        _ => Some(error(
            "unknown frame type; the only one accepted is \"ping\"",
        )),
    }
}

fn text(event: &Event<'_>) -> Message {
    Message::Text(Utf8Bytes::from(event.to_json()))
}

fn error(detail: &str) -> Message {
    text(&Event::Error { detail })
}

async fn send(socket: &mut WebSocket, message: Message) -> Result<(), ()> {
    match timeout(SEND_TIMEOUT, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
