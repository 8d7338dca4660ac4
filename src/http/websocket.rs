//! The WebSocket handshake (RFC 6455 §4.2.2): the checks of an upgrade request, the
//! `101 Switching Protocols` answer with its `Sec-WebSocket-Accept`, and the hand-off of the
//! upgraded connection, with the WebSocket layer's limits, to [`socket::run`]. Who may connect
//! (origin, API key) is decided before, by the route.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::AppState;
use crate::error::ApiError;
use crate::realtime::socket;

/// Largest message a client may send: clients only send small control frames.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// A socket's read buffer: clients' frames are tiny.
const READ_BUFFER: usize = 4 * 1024;
/// What tungstenite itself may hold to write: only its answers to the peer's pings and close
/// (125 bytes of payload at most each). Everything else is written by the socket loop from
/// shared frames, without a buffer.
const MAX_CONTROL_BUFFER: usize = 4 * 1024;

/// Answers an upgrade request with `101` and serves the socket once hyper hands the
/// connection over; or refuses a malformed one with a JSON error (`bad_upgrade`).
pub fn accept(state: &AppState, mut parts: Parts) -> Response {
    let key = match check(&parts) {
        Ok(key) => key,
        Err((status, detail)) => return refuse(status, detail),
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        );
    };
    let hub = state.hub().clone();
    let shutdown = state.shutdown().clone();
    let ping_every = state.config().ws_ping_interval;
    state.tasks().spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let stream = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config()),
                )
                .await;
                socket::run(stream, hub, shutdown, ping_every).await;
            }
            Err(e) => tracing::debug!(error = %e, "a WebSocket upgrade did not complete"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, key);
    response
}

/// Memory per idle socket: tungstenite's default read buffer is 128 KiB, allocated (and
/// zero-filled) up front, for clients that send tiny frames; its write buffer is not used.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_CONTROL_BUFFER)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

/// The request is a WebSocket upgrade this server speaks (version 13); returns the
/// `Sec-WebSocket-Accept` value for its key.
fn check(parts: &Parts) -> Result<HeaderValue, (StatusCode, &'static str)> {
    if parts.method != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket upgrade must use GET",
        ));
    }
    let headers = &parts.headers;
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err((
            StatusCode::BAD_REQUEST,
            "the Connection header must include \"upgrade\"",
        ));
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err((
            StatusCode::BAD_REQUEST,
            "the Upgrade header must include \"websocket\"",
        ));
    }
    if !has_token(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err((
            StatusCode::BAD_REQUEST,
            "the Sec-WebSocket-Version header must be 13",
        ));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "the Sec-WebSocket-Key header is missing",
        ));
    };
    // The accept key is base64: always a valid header value.
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "the Sec-WebSocket-Key header is not usable",
        )
    })
}

/// Whether a comma-separated header (any of its lines) lists `token`, in any case.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn refuse(status: StatusCode, detail: &str) -> Response {
    ApiError::Client {
        status,
        code: "bad_upgrade",
        detail: detail.into(),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_one_of_the_rfc_example() {
        // RFC 6455 §1.3.
        let request = axum::http::Request::get("/")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        assert_eq!(
            check(&parts).expect("a valid upgrade"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
