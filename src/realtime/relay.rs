//! Events across instances.
//!
//! On SQLite there is one instance: changes go straight to the local hub. On PostgreSQL every
//! change is sent with `NOTIFY`, and every instance, this one included, feeds its hub from
//! `LISTEN`, so a socket on any instance gets each event exactly once, whichever instance stored
//! it. Where a change is made in a transaction (webhooks, the gateway, `POST /messages`,
//! `/send`), its `NOTIFY` is part of that transaction: delivered at commit, in commit order, never
//! for a rollback, and never lost between commit and notification. `NOTIFY` payloads are limited
//! to 8,000 bytes: a larger event travels as a reference (`R{"type":…,"id":…}`) and each listener
//! reads the row back.
//!
//! When the listening connection drops (database restart, network), notifications sent
//! meanwhile are lost to this instance: once it listens again, every local socket gets
//! `resync` (with `missed: 0`, the count being unknown) and refetches with `after_id`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{Change, Event, Hub};
use crate::store::{self, Db, Exec, Tx};

/// The `LISTEN`/`NOTIFY` channel.
const CHANNEL: &str = "switchboard_events";
/// Payloads up to this size travel inline (PostgreSQL's limit is 8,000 bytes).
const INLINE_LIMIT: usize = 7_900;

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

#[derive(Clone)]
pub struct Relay {
    hub: Arc<Hub>,
    postgres: Option<PgPool>,
    state: Arc<AtomicU8>,
}

/// A change too large for a payload, named by its row.
#[derive(Serialize, Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    id: i64,
}

impl Relay {
    pub fn new(db: &Db, hub: Arc<Hub>) -> Relay {
        let (postgres, state) = match db {
            Db::Postgres(pool) => (Some(pool.clone()), RelayState::Reconnecting),
            Db::Sqlite(_) => (None, RelayState::Local),
        };
        Relay {
            hub,
            postgres,
            state: Arc::new(AtomicU8::new(state as u8)),
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

    /// Sends `changes` inside the transaction that makes them (PostgreSQL): `NOTIFY` is
    /// delivered at commit, in commit order, and never for a rolled-back transaction, so no
    /// event is lost between the commit and the notification. Call [`Relay::committed`] once
    /// the transaction has committed.
    pub async fn notify_in(&self, tx: &mut Tx, changes: &[Change]) -> sqlx::Result<()> {
        match tx {
            Tx::Postgres(tx) if !changes.is_empty() => {
                let payloads: Vec<String> = changes.iter().map(payload).collect();
                sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                    .bind(CHANNEL)
                    .bind(&payloads)
                    .execute(&mut **tx)
                    .await
                    .map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// After the commit of a transaction given to [`Relay::notify_in`]: on SQLite the local hub
    /// gets the changes now (PostgreSQL delivers them at commit).
    pub fn committed(&self, changes: &[Change]) {
        if self.postgres.is_none() {
            self.hub.publish_all(changes);
        }
    }

    /// Tells every client, on every instance, about changes already committed, in order.
    pub async fn publish_all(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let Some(pool) = &self.postgres else {
            self.hub.publish_all(changes);
            return;
        };
        let payloads: Vec<String> = changes.iter().map(payload).collect();
        // One statement, so one round trip; `unnest` yields the array in order.
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(CHANNEL)
            .bind(&payloads)
            .execute(pool)
            .await;
        if let Err(e) = sent {
            // The rows are committed; clients will be told to resync when the listener is back.
            tracing::warn!(error = %e, events = payloads.len(), "cannot NOTIFY events");
        }
    }

    /// Opens the listening connection (PostgreSQL only). Done before the server accepts
    /// anything, so no event of this instance's first requests is missed by its own sockets.
    pub async fn connect(&self) -> sqlx::Result<Option<Listener>> {
        let Some(pool) = &self.postgres else {
            return Ok(None);
        };
        let listener = connect(pool).await?;
        self.set_state(RelayState::Listening);
        Ok(Some(Listener(listener)))
    }

    /// Feeds the local hub from `LISTEN` until `shutdown` (PostgreSQL only), reconnecting by
    /// itself.
    pub async fn listen(self, db: Db, first: Option<Listener>, shutdown: CancellationToken) {
        let Some(pool) = self.postgres.clone() else {
            return;
        };
        let mut first = first.map(|l| l.0);
        let mut dropped = false;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let connected = match first.take() {
                Some(listener) => Ok(listener),
                None => connect(&pool).await,
            };
            let mut listener = match connected {
                Ok(listener) => listener,
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
                    next = listener.try_recv() => next,
                };
                match next {
                    Ok(Some(notification)) => self.deliver(&db, notification.payload()).await,
                    // `None`: the connection was lost.
                    Ok(None) | Err(_) => break,
                }
            }
            tracing::warn!("event listener lost its connection");
            self.set_state(RelayState::Reconnecting);
            dropped = true;
        }
    }

    async fn deliver(&self, db: &Db, payload: &str) {
        if let Some(inline) = payload.strip_prefix('E') {
            self.hub.publish_text(Utf8Bytes::from(inline.to_string()));
            return;
        }
        let Some(Ok(reference)) = payload
            .strip_prefix('R')
            .map(serde_json::from_str::<Reference>)
        else {
            tracing::warn!("ignoring an unreadable event notification");
            return;
        };
        match resolve(&mut db.exec(), &reference).await {
            Ok(Some(change)) => self.hub.publish_all(&[change]),
            Ok(None) => {
                tracing::warn!(kind = %reference.kind, id = reference.id, "a referenced event's row is gone")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a referenced event back; telling sockets to resync");
                self.hub.publish(&Event::Resync { missed: 1 });
            }
        }
    }
}

/// A connected `LISTEN` session, handed from start-up to the listening task.
pub struct Listener(PgListener);

async fn connect(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The notification payload of a change: the event itself, or a reference when too large.
fn payload(change: &Change) -> String {
    let json = change.event().to_json();
    if json.len() <= INLINE_LIMIT {
        return format!("E{json}");
    }
    let (kind, id) = match change {
        Change::NewConversation(c) => ("new_conversation", c.id),
        Change::ConversationUpdated(c) => ("conversation_updated", c.id),
        Change::NewMessage(m) => ("new_message", m.id),
        Change::MessageStatus(m) => ("message_status", m.id),
    };
    let reference = Reference {
        kind: kind.into(),
        id,
    };
    format!("R{}", serde_json::to_string(&reference).unwrap_or_default())
}

async fn resolve(ex: &mut Exec<'_>, reference: &Reference) -> sqlx::Result<Option<Change>> {
    let id = reference.id;
    Ok(match reference.kind.as_str() {
        "new_conversation" => store::conversations::get(ex, id)
            .await?
            .map(Change::NewConversation),
        "conversation_updated" => store::conversations::get(ex, id)
            .await?
            .map(Change::ConversationUpdated),
        "new_message" => store::messages::get(ex, id).await?.map(Change::NewMessage),
        "message_status" => store::messages::get(ex, id)
            .await?
            .map(Change::MessageStatus),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Message;

    fn message(content: &str) -> Message {
        Message {
            id: 7,
            content: content.into(),
            message_type: "text".into(),
            direction: "inbound".into(),
            sender_name: None,
            sender_identifier: None,
            timestamp: crate::domain::now(),
            message_metadata: None,
            conversation_id: 3,
            external_message_id: None,
            is_read: false,
            created_at: crate::domain::now(),
            status: "received".into(),
            error: None,
            channel: "whatsapp".into(),
        }
    }

    #[test]
    fn small_events_travel_inline_and_large_ones_by_reference() {
        let hola = message("hola");
        let small = payload(&Change::NewMessage(hola.clone()));
        assert!(small.starts_with('E'));
        assert_eq!(&small[1..], Event::new_message(&hola).to_json());
        let large = payload(&Change::NewMessage(message(&"x".repeat(10_000))));
        assert_eq!(large, r#"R{"type":"new_message","id":7}"#);
        assert!(large.len() < 8000);
    }
}
