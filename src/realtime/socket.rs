//! One WebSocket connection: forwards hub events, answers `ping`, detects dead peers (no pong
//! for two ping intervals, or a write that cannot complete within `SEND_TIMEOUT`), and closes
//! with a close frame when the server shuts down.
//!
//! Reading is tungstenite's: frames, masks, fragments, UTF-8 and limits, and its own replies to
//! the peer's pings and close. Everything this server says is written by [`frame::write_all`]
//! from shared [`Frame`]s, events straight from the hub's, so a socket copies nothing and keeps
//! no write buffer, whatever the size of the events. The two writers never cut into each other's
//! frames: ours runs only after tungstenite's output has been flushed, and runs to the end of
//! its frames within one turn (a turn cut short drops the connection).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::frame::{self, Frame};
use super::hub::Subscription;
use super::{Event, Hub};

/// A peer that cannot take a write (a frame, or one batch of events) within this time is
/// treated as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many queued events are written at once, in one system call when the socket
/// takes them...
const MAX_EVENTS_PER_WRITE: usize = 64;
/// ...and at most this many bytes of them (or one event, if larger). While its peer is slow, a
/// socket holds these events (shared with every other socket and the hub, never copied) until
/// the kernel has taken them: its only memory beyond the hub's bounds.
const MAX_BYTES_PER_WRITE: usize = 64 * 1024;

/// Runs the connection until the peer leaves, stops answering, or the server shuts down.
pub async fn run<S>(
    socket: WebSocketStream<S>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    ping_every: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    hub.socket_opened();
    serve(socket, &hub, shutdown, ping_every).await;
    hub.socket_closed();
}

/// What one turn of the connection's loop writes.
enum Turn {
    /// The events waiting in the hub (after a `resync` if some were missed).
    Events,
    Send(Frame),
    /// Only what tungstenite holds: its answer to the peer's ping.
    Flush,
    Nothing,
    /// Tungstenite's answer to the peer's close, then the end.
    Close,
}

async fn serve<S>(
    mut socket: WebSocketStream<S>,
    hub: &Hub,
    shutdown: CancellationToken,
    ping_every: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Subscribe before saying hello, so no event between the two is missed.
    let mut events = hub.subscribe();
    let hello = text(&Event::Connected {
        server_time: crate::domain::now(),
        version: crate::VERSION,
    });
    if !matches!(
        timeout(SEND_TIMEOUT, write(&mut socket, &[hello])).await,
        Ok(Ok(()))
    ) {
        return;
    }
    // Polled only while a write is stalled (below); registered once, not once per turn.
    let shutdown = shutdown.cancelled_owned();
    tokio::pin!(shutdown);
    let mut pings = interval_at(Instant::now() + ping_every, ping_every);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard_since_ping = true;
    loop {
        // Shutdown comes through the hub (`Hub::close` wakes every socket's `changed`): one
        // atomic load a turn, where a cancellation future would take a lock shared by all.
        if hub.is_closed() {
            close(&mut socket).await;
            return;
        }
        // Events come before reading: a turn woken by an event then writes it without first
        // trying the socket for input. (`next` is cancel-safe: a frame read halfway stays
        // buffered in the WebSocket.)
        let turn = tokio::select! {
            biased;
            _ = events.changed() => Turn::Events,
            frame = socket.next() => {
                heard_since_ping = true;
                match frame {
                    Some(Ok(Message::Text(body))) => reply_to(&body).map_or(Turn::Nothing, Turn::Send),
                    Some(Ok(Message::Binary(_))) => Turn::Send(error("binary frames are not supported; send JSON text")),
                    Some(Ok(Message::Ping(_))) => Turn::Flush,
                    Some(Ok(Message::Pong(_) | Message::Frame(_))) => Turn::Nothing,
                    Some(Ok(Message::Close(_))) => Turn::Close,
                    Some(Err(_)) | None => return,
                }
            }
            _ = pings.tick() => {
                if !heard_since_ping {
                    tracing::debug!("closing a WebSocket peer that stopped answering pings");
                    return;
                }
                heard_since_ping = false;
                Turn::Send(Frame::ping())
            }
        };
        let write = async {
            match turn {
                Turn::Events => write_events(&mut socket, &mut events).await,
                Turn::Send(frame) => write(&mut socket, &[frame]).await,
                Turn::Flush => socket.flush().await.map_err(io::Error::other),
                Turn::Nothing => Ok(()),
                Turn::Close => {
                    let _ = socket.flush().await;
                    Err(io::ErrorKind::ConnectionAborted.into())
                }
            }
        };
        // A peer that stops reading stalls the write once the kernel's buffers are full: it is
        // closed when the write has not completed within SEND_TIMEOUT, however many events
        // keep coming meanwhile (they wait in the hub, which bounds them). Shutdown does not
        // wait for such a write: there is no point sending a close frame the peer cannot take.
        // (The timer is only armed, and shutdown only polled, if the write does not complete
        // at once.)
        let written = tokio::select! {
            biased;
            written = timeout(SEND_TIMEOUT, write) => written,
            _ = &mut shutdown => return,
        };
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}

/// Writes what the hub holds for this socket, up to one batch: a socket that fell behind
/// catches up with one system call per batch instead of one per event.
async fn write_events<S>(
    socket: &mut WebSocketStream<S>,
    events: &mut Subscription<'_>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = events.take(MAX_EVENTS_PER_WRITE, MAX_BYTES_PER_WRITE);
    if batch.missed > 0 {
        let missed = batch.missed;
        batch.events.insert(0, text(&Event::Resync { missed }));
    }
    if batch.events.is_empty() {
        return Ok(());
    }
    write(socket, &batch.events).await
}

/// Writes `frames` after whatever tungstenite still holds (an answer to the peer's ping that
/// the socket could not take at once), so that frames never interleave.
async fn write<S>(socket: &mut WebSocketStream<S>, frames: &[Frame]) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.flush().await.map_err(io::Error::other)?;
    frame::write_all(socket.get_mut(), frames).await
}

/// Says goodbye with close code 1001 (going away), through tungstenite so that it knows the
/// connection is closing.
async fn close<S>(socket: &mut WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "server shutting down".into(),
    };
    let _ = timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
}

/// The answer to a client's text frame, if any.
fn reply_to(body: &str) -> Option<Frame> {
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
        "ping" => Some(Frame::text(r#"{"type":"pong","data":{}}"#)),
        _ => Some(error(
            "unknown frame type; the only one accepted is \"ping\"",
        )),
    }
}

fn text(event: &Event<'_>) -> Frame {
    Frame::text(&event.to_json())
}

fn error(detail: &str) -> Frame {
    text(&Event::Error { detail })
}
