//! The broadcast hub. Each event is serialised once; every socket receives the same shared
//! bytes through a bounded ring (`tokio::sync::broadcast`). A socket that falls more than the
//! ring's capacity behind loses the oldest events and is told so with `resync`, so a slow
//! client costs neither memory nor the other clients' latency.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use super::Event;

pub struct Hub {
    sender: broadcast::Sender<Utf8Bytes>,
    open_sockets: AtomicUsize,
    published: AtomicU64,
    dropped: AtomicU64,
}

impl Hub {
    pub fn new(capacity: usize) -> Hub {
        let (sender, _) = broadcast::channel(capacity);
        Hub {
            sender,
            open_sockets: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sends `event` to every connected socket.
    pub fn publish(&self, event: &Event<'_>) {
        self.published.fetch_add(1, Ordering::Relaxed);
        // An error only means no socket is connected right now.
        let _ = self.sender.send(Utf8Bytes::from(event.to_json()));
    }

    /// Sends an already serialised event (from another instance) to every socket.
    pub fn publish_text(&self, text: Utf8Bytes) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let _ = self.sender.send(text);
    }

    /// Publishes committed changes, in order.
    pub fn publish_all(&self, changes: &[super::Change]) {
        for change in changes {
            self.publish(&change.event());
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.sender.subscribe()
    }

    pub(crate) fn socket_opened(&self) {
        self.open_sockets.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn socket_closed(&self) {
        self.open_sockets.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn events_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn open_sockets(&self) -> usize {
        self.open_sockets.load(Ordering::Relaxed)
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
