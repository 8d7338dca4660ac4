//! PostgreSQL's `LISTEN`/`NOTIFY`, the one channel between instances, and the advisory lock
//! the webhook writers of all instances take turns on. On SQLite (one instance) both are
//! no-ops: there is nobody else to tell or to wait for.

use sqlx::postgres::PgListener;

use super::{Db, Exec, Tx};

/// The `LISTEN`/`NOTIFY` channel every instance listens on.
const CHANNEL: &str = "switchboard_events";
/// The advisory lock the webhook writers take turns on ("switchbd" in ASCII).
const WRITERS_LOCK: i64 = 0x7377_6974_6368_6264;

/// Queues `payloads` for delivery at the commit of `tx`, in order (PostgreSQL only): never for a
/// rolled-back transaction, and never lost between the commit and the notification.
pub async fn notify(tx: &mut Tx, payloads: &[String]) -> sqlx::Result<()> {
    match tx {
        Tx::Postgres(tx) if !payloads.is_empty() => {
            // One statement, so one round trip; `unnest` yields the array in order.
            sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(CHANNEL)
                .bind(payloads)
                .execute(&mut **tx)
                .await
                .map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Makes concurrent webhook writers take turns until `tx` ends (PostgreSQL only).
///
/// Two batches touching the same conversations in different orders would deadlock, and each
/// deadlock costs PostgreSQL's `deadlock_timeout` (a second) before one batch gives way. A
/// transaction-scoped advisory lock, released at commit, orders them instead. SQLite has one
/// writer at a time anyway.
pub async fn take_writers_turn(tx: &mut Tx) -> sqlx::Result<()> {
    take_turn(&mut tx.exec()).await
}

/// The writers' turn for a transaction about to create a conversation (see
/// [`crate::store::conversations::create`]); a no-op outside a PostgreSQL transaction, and
/// cheap for a webhook batch, which holds the turn already.
///
/// Every new conversation also updates its channel's row of `conversation_counts`. A batch that
/// created one conversation (and so holds that row) and then waits for another that a reply or
/// `POST /conversations` is inserting, while that insert waits for the row, is a deadlock. With
/// the turn taken before the insert, they wait for each other in one order only. The caller
/// must not hold row locks a webhook batch may wait for: creating the conversation comes first.
pub async fn take_turn_to_create(ex: &mut Exec<'_>) -> sqlx::Result<()> {
    take_turn(ex).await
}

async fn take_turn(ex: &mut Exec<'_>) -> sqlx::Result<()> {
    match ex {
        Exec::PgConn(conn) => sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITERS_LOCK)
            .execute(&mut **conn)
            .await
            .map(|_| ()),
        // On the pool (no transaction) the lock would end with the statement; SQLite has one
        // writer at a time.
        _ => Ok(()),
    }
}

/// A `LISTEN` session on the events channel: its own connection, outside the pool.
pub struct EventListener(PgListener);

impl EventListener {
    /// Connects and listens; `None` on SQLite, which has no other instance to hear from.
    pub async fn connect(db: &Db) -> sqlx::Result<Option<EventListener>> {
        let Db::Postgres(pool) = db else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(EventListener(listener)))
    }

    /// The next payload; `None` when the connection was lost (notifications sent meanwhile are
    /// lost to this session).
    pub async fn recv(&mut self) -> Option<String> {
        match self.0.try_recv().await {
            Ok(Some(notification)) => Some(notification.payload().to_owned()),
            Ok(None) | Err(_) => None,
        }
    }
}
