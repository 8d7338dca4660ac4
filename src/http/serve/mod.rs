//! The accept loop: HTTP/1.1 connections served by hyper, with the limits a public server needs
//! and `axum::serve` does not offer.
//!
//! - A request head must be complete within the header timeout, counted from the connection's
//!   opening or from the end of the previous response, so an idle keep-alive connection is
//!   closed after the same time. Bytes trickling in do not extend it.
//! - A request body must be complete within the body timeout of its head ([`body`]).
//! - At most `max_connections` connections are open at once, WebSockets included. Past it, the
//!   loop stops accepting: further connections wait in the kernel's listen queue, costing this
//!   process nothing, and are taken in order as slots free up.
//!
//! Shutdown stops accepting, lets in-flight requests finish and closes idle connections;
//! upgraded WebSockets are not connections of hyper's any more and close on the application's
//! cancellation token.

mod body;
mod slot;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use body::BodyTimedOut;

use crate::config::Config;

/// Connections allowed at once when `HTTP_MAX_CONNECTIONS` is not set (and the process may
/// open that many descriptors): room for the fan-out benchmark's 10,000 WebSockets and more.
const DEFAULT_MAX_CONNECTIONS: usize = 25_000;
/// Descriptors kept for everything but client connections: database pools, outbound HTTP,
/// media files, logs.
const RESERVED_DESCRIPTORS: u64 = 512;

/// The connection limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            header_timeout: config.http.header_timeout,
            body_timeout: config.http.body_timeout,
            max_connections: config
                .http
                .max_connections
                .unwrap_or_else(default_max_connections),
        }
    }
}

/// The default limit, lowered to what the descriptor limit (`ulimit -n`) allows: past that,
/// accepting fails anyway, and the database and outbound calls would find no descriptor left.
fn default_max_connections() -> usize {
    match descriptor_limit() {
        Some(limit) => {
            let usable = limit.saturating_sub(RESERVED_DESCRIPTORS).max(64);
            usize::try_from(usable)
                .unwrap_or(usize::MAX)
                .min(DEFAULT_MAX_CONNECTIONS)
        }
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

#[cfg(unix)]
fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    tracing::info!(
        max_connections = limits.max_connections,
        "accepting connections"
    );
    loop {
        // A slot first, then a connection: at the limit nothing is accepted.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        // TCP_NODELAY stays off (see `App::run`).
        let io = TokioIo::new(slot::Slotted::new(stream, slot));
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let request =
                request.map(|b| axum::body::Body::new(body::Deadline::new(b, body_timeout)));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let closing = closing.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = closing.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Connection-level failures (the peer gave up before we accepted) are skipped; anything else,
/// such as running out of descriptors, is logged and waited out before accepting again.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
