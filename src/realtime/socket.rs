//! One WebSocket connection: forwards hub events, answers `ping`, detects dead peers, and
//! closes with a close frame when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Event, Hub};

/// A peer that cannot take a frame within this time is treated as gone.
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

async fn serve(socket: WebSocket, hub: &Hub, shutdown: CancellationToken, ping_every: Duration) {
    // Subscribe before saying hello, so no event between the two is missed.
    let mut events = hub.subscribe();
    let (mut sink, mut stream) = socket.split();
    let hello = Event::Connected {
        server_time: crate::domain::now(),
        version: crate::VERSION,
    };
    if send(&mut sink, text(&hello)).await.is_err() {
        return;
    }
    let mut pings = interval_at(Instant::now() + ping_every, ping_every);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard_since_ping = true;
    loop {
        let outgoing = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let frame = CloseFrame { code: GOING_AWAY, reason: Utf8Bytes::from_static("server shutting down") };
                let _ = send(&mut sink, Message::Close(Some(frame))).await;
                return;
            }
            frame = stream.next() => {
                heard_since_ping = true;
                match frame {
                    Some(Ok(Message::Text(body))) => reply_to(&body),
                    Some(Ok(Message::Binary(_))) => Some(error("binary frames are not supported; send JSON text")),
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                }
            }
            event = events.recv() => match event {
                Ok(bytes) => Some(Message::Text(bytes)),
                Err(RecvError::Lagged(missed)) => {
                    hub.events_dropped(missed);
                    Some(text(&Event::Resync { missed }))
                }
                Err(RecvError::Closed) => return,
            },
            _ = pings.tick() => {
                if !heard_since_ping {
                    tracing::debug!("closing a WebSocket peer that stopped answering pings");
                    return;
                }
                heard_since_ping = false;
                Some(Message::Ping(bytes::Bytes::new()))
            }
        };
        if let Some(message) = outgoing {
            if send(&mut sink, message).await.is_err() {
                return;
            }
        }
    }
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

async fn send<S>(sink: &mut S, message: Message) -> Result<(), ()>
where
    S: futures_util::Sink<Message> + Unpin,
{
    match timeout(SEND_TIMEOUT, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
