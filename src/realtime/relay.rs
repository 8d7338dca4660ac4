//! Events across instances.
//!
//! On SQLite there is one instance: committed changes go straight to the local hub. On
//! PostgreSQL every change is sent with `NOTIFY` inside the transaction that stores it (see
//! [`crate::publish`]), and every instance, this one included, feeds its hub from `LISTEN`, so a
//! socket on any instance gets each event exactly once, in commit order, whichever instance
//! stored it.
//!
//! A unit of work on PostgreSQL returns only once its own notifications have come back through
//! this instance's listener and reached its hub, so a client that is told "stored" and then
//! connects a socket is never sent the event of a change it already knew of (on SQLite the hub
//! is fed at commit, which gives the same order).
//!
//! When the listening connection drops (database restart, network), notifications sent
//! meanwhile are lost to this instance: once it listens again, every local socket gets
//! `resync` (with `missed: 0`, the count being unknown) and refetches with `after_id`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::payload::{self, Decoded, Origin};
use super::{Event, Hub};
use crate::domain::Change;
use crate::store::{Backend, Db, EventListener};

/// The state of cross-instance delivery, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayState {
    /// One instance (SQLite): no listener needed.
    Local,
    Listening,
    Reconnecting,
}

impl RelayState {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayState::Local => "local",
            RelayState::Listening => "listening",
            RelayState::Reconnecting => "reconnecting",
        }
    }
}

/// How long a commit waits for its notifications to come back before answering anyway.
const ECHO_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Relay {
    hub: Arc<Hub>,
    db: Db,
    state: Arc<AtomicU8>,
    echoes: Arc<Echoes>,
}

/// This instance's tag, its payload counter, and the commits waiting for their last payload to
/// come back through `LISTEN`.
struct Echoes {
    instance: u64,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

/// The payloads of a unit of work about to commit, and the receipt of its last one.
pub struct Prepared {
    pub payloads: Vec<String>,
    receipt: Option<Receipt>,
}

/// Resolves when payload `seq` has come back; forgets its waiter when dropped unused.
struct Receipt {
    seq: u64,
    arrived: oneshot::Receiver<()>,
    echoes: Arc<Echoes>,
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.echoes.waiting.lock() {
            waiting.remove(&self.seq);
        }
    }
}

impl Relay {
    pub fn new(db: &Db, hub: Arc<Hub>) -> Relay {
        let state = match db.backend() {
            Backend::Postgres => RelayState::Reconnecting,
            Backend::Sqlite => RelayState::Local,
        };
        Relay {
            hub,
            db: db.clone(),
            state: Arc::new(AtomicU8::new(state as u8)),
            echoes: Arc::new(Echoes {
                instance: fastrand::u64(..),
                next: AtomicU64::new(1),
                waiting: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub fn state(&self) -> RelayState {
        match self.state.load(Ordering::Relaxed) {
            s if s == RelayState::Listening as u8 => RelayState::Listening,
            s if s == RelayState::Local as u8 => RelayState::Local,
            _ => RelayState::Reconnecting,
        }
    }

    fn set_state(&self, state: RelayState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Nothing listens any more: commits stop waiting for their echoes, those waiting now at
    /// once (their echo cannot come) and later ones from the start, until listening resumes.
    fn stop_listening(&self) {
        self.set_state(RelayState::Reconnecting);
        if let Ok(mut waiting) = self.echoes.waiting.lock() {
            waiting.clear();
        }
    }

    /// The `NOTIFY` payloads of changes about to be committed (none on SQLite), numbered so
    /// their return can be awaited.
    pub fn prepare(&self, changes: &[Change]) -> Prepared {
        if self.db.backend() == Backend::Sqlite || changes.is_empty() {
            return Prepared {
                payloads: Vec::new(),
                receipt: None,
            };
        }
        let first = self
            .echoes
            .next
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        let payloads: Vec<String> = changes
            .iter()
            .zip(first..)
            .map(|(change, seq)| {
                let origin = Origin {
                    instance: self.echoes.instance,
                    seq,
                };
                payload::encode(change, origin)
            })
            .collect();
        let seq = first + changes.len() as u64 - 1;
        let (arrive, arrived) = oneshot::channel();
        if let Ok(mut waiting) = self.echoes.waiting.lock() {
            waiting.insert(seq, arrive);
        }
        Prepared {
            payloads,
            receipt: Some(Receipt {
                seq,
                arrived,
                echoes: self.echoes.clone(),
            }),
        }
    }

    /// After the commit: on SQLite the local hub gets the changes now; on PostgreSQL this waits
    /// (briefly, and only while listening) until `LISTEN` has brought them to the hub.
    pub async fn committed(&self, prepared: Prepared, changes: &[Change]) {
        if self.db.backend() == Backend::Sqlite {
            self.hub.publish_all(changes);
            return;
        }
        let Some(mut receipt) = prepared.receipt else {
            return;
        };
        if self.state() == RelayState::Listening {
            let arrived = tokio::time::timeout(ECHO_WAIT, &mut receipt.arrived).await;
            if arrived.is_err() {
                tracing::debug!("committed events were not back from LISTEN in time");
            }
        }
    }

    /// Opens the listening connection (PostgreSQL only). Done before the server accepts
    /// anything, so no event of this instance's first requests is missed by its own sockets.
    pub async fn connect(&self) -> sqlx::Result<Option<EventListener>> {
        let listener = EventListener::connect(&self.db).await?;
        if listener.is_some() {
            self.set_state(RelayState::Listening);
        }
        Ok(listener)
    }

    /// Feeds the local hub from `LISTEN` until `shutdown` (PostgreSQL only), reconnecting by
    /// itself with backoff.
    pub async fn listen(self, first: Option<EventListener>, shutdown: CancellationToken) {
        if self.db.backend() != Backend::Postgres {
            return;
        }
        self.follow(first, &shutdown).await;
        // Requests still finishing during shutdown answer without their echo.
        self.stop_listening();
    }

    async fn follow(&self, first: Option<EventListener>, shutdown: &CancellationToken) {
        let mut first = first;
        let mut dropped = false;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let connected = match first.take() {
                Some(listener) => Ok(Some(listener)),
                None => EventListener::connect(&self.db).await,
            };
            let mut listener = match connected {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(e) => {
                    self.set_state(RelayState::Reconnecting);
                    tracing::warn!(error = %e, "event listener cannot connect; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    dropped = true;
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            self.set_state(RelayState::Listening);
            if dropped {
                tracing::info!("event listener reconnected; telling sockets to resync");
                self.hub.publish(&Event::Resync { missed: 0 });
            }
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = listener.recv() => next,
                };
                match next {
                    Some(payload) => self.deliver(&payload).await,
                    None => break,
                }
            }
            tracing::warn!("event listener lost its connection");
            self.stop_listening();
            dropped = true;
        }
    }

    async fn deliver(&self, payload: &str) {
        let (origin, decoded) = payload::decode(payload);
        self.publish(decoded).await;
        if let Some(origin) = origin.filter(|o| o.instance == self.echoes.instance) {
            let waiter = self
                .echoes
                .waiting
                .lock()
                .ok()
                .and_then(|mut waiting| waiting.remove(&origin.seq));
            if let Some(waiter) = waiter {
                let _ = waiter.send(());
            }
        }
    }

    async fn publish(&self, decoded: Decoded<'_>) {
        let (kind, id) = match decoded {
            Decoded::Inline(json) => {
                self.hub.publish_text(json);
                return;
            }
            Decoded::Reference { kind, id } => (kind, id),
            Decoded::Unreadable => {
                tracing::warn!("ignoring an unreadable event notification");
                return;
            }
        };
        match payload::resolve(&mut self.db.exec(), &kind, id).await {
            Ok(Some(change)) => self.hub.publish_all(&[change]),
            Ok(None) => tracing::warn!(%kind, id, "a referenced event's row is gone"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a referenced event back; telling sockets to resync");
                self.hub.publish(&Event::Resync { missed: 1 });
            }
        }
    }
}
