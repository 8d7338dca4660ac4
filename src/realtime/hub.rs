//! The broadcast hub. Each event is serialised and framed once ([`Frame`]: shared bytes that
//! every socket writes as they are) and appended to one ring, numbered in sequence; every
//! socket reads the ring through a cursor of its own ([`Subscription`]). An event is kept
//! until every socket subscribed when it was published has taken it, and no longer than the
//! ring's bounds allow: at most `WS_QUEUE_CAPACITY` events and `WS_QUEUE_BYTES` bytes. Past
//! either bound the oldest events are evicted, and a socket whose cursor has fallen behind the
//! ring's start is told with `resync` how many events it missed. So what slow clients cost is
//! bounded whatever the size of the events, they never hold back the others, and when every
//! socket keeps up the ring is empty.
//!
//! Invariants: sequence numbers grow by one per event; `bytes` is the sum of the lengths of the
//! events still held; a slot's `readers` counts the subscriptions that have yet to take it,
//! and its bytes are released when that reaches zero. The newest event is always kept, even one
//! larger than the byte bound, so that sockets that keep up still get it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::frame::Frame;
use super::Event;

pub struct Hub {
    ring: Mutex<Ring>,
    /// Bumped after each publication; sockets wait on it instead of being queued a copy.
    signal: watch::Sender<()>,
    /// Set when the server shuts down; sockets see it when the signal wakes them.
    closed: AtomicBool,
    capacity: usize,
    max_bytes: usize,
    open_sockets: AtomicUsize,
    published: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Ring {
    slots: VecDeque<Slot>,
    /// The sequence number of `slots[0]`.
    start: u64,
    /// The sum of the held events' lengths.
    bytes: usize,
    subscribers: usize,
}

struct Slot {
    frame: Frame,
    /// Subscriptions that have yet to take this event.
    readers: usize,
}

impl Ring {
    /// The sequence number the next event will get.
    fn end(&self) -> u64 {
        self.start + self.slots.len() as u64
    }

    /// One subscription is done with the events from `from` up to `to` (excluded).
    fn release(&mut self, from: u64, to: u64) {
        for seq in from.max(self.start)..to {
            let Some(slot) = self.slots.get_mut((seq - self.start) as usize) else {
                break;
            };
            slot.readers = slot.readers.saturating_sub(1);
            if slot.readers == 0 {
                self.bytes -= slot.frame.len();
                slot.frame = Frame::empty();
            }
        }
        // Events everyone has taken leave the ring; nobody can miss them.
        while self.slots.front().is_some_and(|s| s.readers == 0) {
            self.slots.pop_front();
            self.start += 1;
        }
    }
}

/// One socket's cursor in the hub. Dropping it releases what it had not taken yet.
pub struct Subscription<'a> {
    hub: &'a Hub,
    /// The sequence number of the next event this socket is to get.
    next: u64,
    /// The ring's end when this socket last took events: below it, more are already waiting.
    seen_end: u64,
    signal: watch::Receiver<()>,
}

/// What a socket takes from the hub in one turn.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events evicted before this socket got them (it is to be sent `resync`).
    pub missed: u64,
    pub events: Vec<Frame>,
}

impl Subscription<'_> {
    /// Returns once there may be events to take, or the hub was closed. Cancel-safe.
    pub async fn changed(&mut self) {
        if self.next < self.seen_end {
            return;
        }
        if self.signal.changed().await.is_err() {
            // The hub is gone, so nothing will ever be published: the socket ends otherwise.
            std::future::pending::<()>().await;
        }
    }

    /// Takes the events not taken yet, oldest first: at most `max_events`, and no more than
    /// `max_bytes` unless the first event alone is larger. Events this subscription can no
    /// longer get are counted in `missed` (and in [`Hub::dropped`]).
    pub fn take(&mut self, max_events: usize, max_bytes: usize) -> Batch {
        // Marked seen before reading the ring: a publication after this wakes `changed` again.
        self.signal.borrow_and_update();
        let mut ring = self.hub.lock();
        let end = ring.end();
        let missed = ring.start.saturating_sub(self.next);
        let from = self.next.max(ring.start);
        let waiting = usize::try_from(end - from).unwrap_or(usize::MAX);
        let mut events = Vec::with_capacity(waiting.min(max_events));
        let (mut next, mut bytes) = (from, 0);
        while let Some(slot) = ring.slots.get((next - ring.start) as usize) {
            if events.len() == max_events
                || (!events.is_empty() && bytes + slot.frame.len() > max_bytes)
            {
                break;
            }
            bytes += slot.frame.len();
            events.push(slot.frame.clone());
            next += 1;
        }
        ring.release(from, next);
        drop(ring);
        self.next = next;
        self.seen_end = end;
        if missed > 0 {
            self.hub.events_dropped(missed);
        }
        Batch { missed, events }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut ring = self.hub.lock();
        ring.subscribers -= 1;
        let end = ring.end();
        ring.release(self.next, end);
    }
}

impl Hub {
    /// A hub keeping at most `capacity` events and `max_bytes` bytes of them for lagging sockets.
    pub fn new(capacity: usize, max_bytes: usize) -> Hub {
        Hub {
            ring: Mutex::default(),
            signal: watch::Sender::new(()),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
            max_bytes,
            open_sockets: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sends `event` to every connected socket.
    pub fn publish(&self, event: &Event<'_>) {
        self.publish_frames([Frame::text(&event.to_json())]);
    }

    /// Sends an already serialised event (from another instance) to every socket.
    pub fn publish_text(&self, text: &str) {
        self.publish_frames([Frame::text(text)]);
    }

    /// Publishes committed changes, in order.
    pub fn publish_all(&self, changes: &[super::Change]) {
        self.publish_frames(changes.iter().map(|c| Frame::text(&c.event().to_json())));
    }

    /// Appends `frames` to the ring, then wakes the sockets once for all of them.
    fn publish_frames(&self, frames: impl IntoIterator<Item = Frame>) {
        // Serialised before the lock is taken: sockets on other threads take from the ring
        // meanwhile.
        let frames: Vec<Frame> = frames.into_iter().collect();
        {
            let mut ring = self.lock();
            for frame in frames {
                self.published.fetch_add(1, Ordering::Relaxed);
                if ring.subscribers == 0 && ring.slots.is_empty() {
                    // Nobody to keep it for; the sequence still moves on.
                    ring.start += 1;
                    continue;
                }
                ring.bytes += frame.len();
                let readers = ring.subscribers;
                ring.slots.push_back(Slot { frame, readers });
                while ring.slots.len() > self.capacity
                    || (ring.bytes > self.max_bytes && ring.slots.len() > 1)
                {
                    if let Some(old) = ring.slots.pop_front() {
                        ring.bytes -= old.frame.len();
                        ring.start += 1;
                    }
                }
            }
            if ring.slots.is_empty() {
                return;
            }
        }
        // Outside the lock: the woken sockets take the events at once.
        self.signal.send_replace(());
    }

    /// Tells every socket that the server is shutting down: each is woken, sees
    /// [`Hub::is_closed`] and says goodbye. Sockets learn of shutdown here rather than from a
    /// cancellation future of their own, which each would poll after every event it writes, and
    /// whose every poll takes a lock all sockets share.
    pub fn close(&self) {
        // Stored before the wake-up, so a socket woken by it sees it.
        self.closed.store(true, Ordering::SeqCst);
        self.signal.send_replace(());
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A cursor at the ring's end: the socket gets every event published from now on.
    pub fn subscribe(&self) -> Subscription<'_> {
        // The receiver first, so a publication between the two is not missed by `changed`.
        let signal = self.signal.subscribe();
        let mut ring = self.lock();
        ring.subscribers += 1;
        let end = ring.end();
        Subscription {
            hub: self,
            next: end,
            seen_end: end,
            signal,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // Nothing panics while the lock is held, and each update leaves the ring consistent,
        // so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of events held for sockets that have yet to take them.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
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

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
