//! The `event_webhooks` table: events waiting for the operator's receiver, recorded in the
//! transaction of their change, claimed with a lease one conversation at a time (see the
//! migration), and kept for a while once finished.

use chrono::{DateTime, Utc};

use super::{Backend, Exec, Tx};
use crate::args;

/// An event to record: its id for receivers, the conversation that orders it, its type and the
/// body to send.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub conversation_id: i64,
    pub kind: &'static str,
    pub body: String,
}

/// A claimed event, due to be POSTed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub event_id: String,
    pub conversation_id: i64,
    pub kind: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// Including the one about to be made.
    pub attempts: i32,
}

/// Records `events` in `tx`, in order, in one statement whatever their number (a group commit of
/// webhooks may carry hundreds). Each is due now, or when the latest pending event of its
/// conversation is, if later: behind a failing event it cannot go sooner, and the claim's scan
/// then never wades through a blocked conversation's backlog (see [`retry`]).
pub async fn record(tx: &mut Tx, events: &[NewEvent], now: DateTime<Utc>) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    match tx {
        // Arrays bound in PostgreSQL's binary format: nothing to escape or parse.
        Tx::Postgres(tx) => {
            let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
            let conversations: Vec<i64> = events.iter().map(|e| e.conversation_id).collect();
            let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
            let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
            let sql = format!(
                "INSERT INTO event_webhooks \
                   (event_id, conversation_id, kind, body, created_at, due_at) \
                 SELECT e.event_id, e.conversation_id, e.kind, e.body, $5, \
                        GREATEST($5, ({LATEST_PENDING})) \
                 FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[]) \
                   WITH ORDINALITY AS e(event_id, conversation_id, kind, body, n) \
                 ORDER BY e.n"
            );
            sqlx::query(&sql)
                .bind(ids)
                .bind(conversations)
                .bind(kinds)
                .bind(bodies)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map(|_| ())
        }
        // SQLite has no arrays: the rows travel as one JSON array, read back by `json_each`.
        Tx::Sqlite(_) => {
            let rows: Vec<(&str, i64, &str, &str)> = events
                .iter()
                .map(|e| {
                    (
                        e.event_id.as_str(),
                        e.conversation_id,
                        e.kind,
                        e.body.as_str(),
                    )
                })
                .collect();
            let rows =
                serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let sql = format!(
                "INSERT INTO event_webhooks \
                   (event_id, conversation_id, kind, body, created_at, due_at) \
                 SELECT e.event_id, e.conversation_id, e.kind, e.body, $2, \
                        MAX($2, COALESCE(({LATEST_PENDING}), $2)) \
                 FROM (SELECT key, json_extract(value, '$[0]') AS event_id, \
                              json_extract(value, '$[1]') AS conversation_id, \
                              json_extract(value, '$[2]') AS kind, \
                              json_extract(value, '$[3]') AS body \
                       FROM json_each($1)) AS e \
                 ORDER BY e.key"
            );
            tx.exec().execute(&sql, args![rows, now]).await.map(|_| ())
        }
    }
}

/// When the latest pending event of `e.conversation_id` is due (NULL: none is pending).
const LATEST_PENDING: &str = "SELECT p.due_at FROM event_webhooks p \
     WHERE p.conversation_id = e.conversation_id AND p.due_at IS NOT NULL \
     ORDER BY p.id DESC LIMIT 1";

/// Leases up to `limit` due events until `lease_until`, at most one per conversation: the
/// earliest pending one, and only when no other instance holds it. An event whose conversation
/// has an earlier pending event is never claimed, so a conversation's events go out in order,
/// whichever instance sends them.
pub async fn claim(
    ex: &mut Exec<'_>,
    backend: Backend,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Claimed>> {
    // As in the outbox: the lease condition is repeated outside the subquery, which PostgreSQL
    // re-checks on a row another transaction just claimed; SKIP LOCKED avoids waiting on it.
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE event_webhooks SET claimed_until = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT e.id FROM event_webhooks e \
                      WHERE e.due_at IS NOT NULL AND e.due_at <= $1 \
                        AND (e.claimed_until IS NULL OR e.claimed_until < $1) \
                        AND NOT EXISTS (SELECT 1 FROM event_webhooks p \
                                        WHERE p.conversation_id = e.conversation_id \
                                          AND p.id < e.id AND p.due_at IS NOT NULL) \
                      ORDER BY e.due_at, e.id LIMIT $3 {lock}) \
           AND due_at IS NOT NULL \
           AND (claimed_until IS NULL OR claimed_until < $1) \
         RETURNING id, event_id, conversation_id, kind, body, created_at, attempts"
    );
    ex.fetch_all(&sql, args![now, lease_until, limit]).await
}

/// The receiver took these: finished, in one statement however many (the worker records what
/// finished meanwhile together).
pub async fn delivered(
    ex: &mut Exec<'_>,
    backend: Backend,
    ids: &[i64],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    // The ids travel as one JSON array, so the statement's text is the same for any number.
    let ids_of = match backend {
        Backend::Postgres => "SELECT value::bigint FROM json_array_elements_text($1::json)",
        Backend::Sqlite => "SELECT value FROM json_each($1)",
    };
    let ids = serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    ex.execute(
        &format!(
            "UPDATE event_webhooks SET due_at = NULL, claimed_until = NULL,              outcome = 'delivered', finished_at = $2              WHERE id IN ({ids_of}) AND due_at IS NOT NULL"
        ),
        args![ids, now],
    )
    .await
    .map(|_| ())
}

/// Retried for long enough: finished without delivery.
pub async fn given_up(
    ex: &mut Exec<'_>,
    id: i64,
    error: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE event_webhooks SET due_at = NULL, claimed_until = NULL, outcome = 'given_up', \
         last_error = $2, finished_at = $3 WHERE id = $1 AND due_at IS NOT NULL",
        args![id, error, now],
    )
    .await
    .map(|_| ())
}

/// The attempt failed: due again at `due_at`, and so are the later events of its conversation
/// that were due sooner. They cannot go before it anyway; moving them keeps the claim's scan
/// from wading through a blocked conversation's backlog on every pass.
pub async fn retry(
    ex: &mut Exec<'_>,
    id: i64,
    conversation_id: i64,
    due_at: DateTime<Utc>,
    error: &str,
) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE event_webhooks SET due_at = $3, \
           claimed_until = CASE WHEN id = $1 THEN NULL ELSE claimed_until END, \
           last_error = CASE WHEN id = $1 THEN $4 ELSE last_error END \
         WHERE conversation_id = $2 AND due_at IS NOT NULL AND id >= $1 \
           AND (id = $1 OR due_at < $3)",
        args![id, conversation_id, due_at, error],
    )
    .await
    .map(|_| ())
}

/// Deletes up to `limit` events finished before `before`; returns how many. Bounded, so a
/// large backlog of old rows is pruned in short transactions rather than one long one.
pub async fn prune(ex: &mut Exec<'_>, before: DateTime<Utc>, limit: i64) -> sqlx::Result<u64> {
    ex.execute(
        "DELETE FROM event_webhooks WHERE id IN \
           (SELECT id FROM event_webhooks WHERE finished_at IS NOT NULL AND finished_at < $1 \
            LIMIT $2)",
        args![before, limit],
    )
    .await
}

/// Events not yet delivered or given up.
pub async fn pending_count(ex: &mut Exec<'_>) -> sqlx::Result<i64> {
    let count: super::Count = ex
        .fetch_one(
            "SELECT COUNT(*) AS n FROM event_webhooks WHERE due_at IS NOT NULL",
            args![],
        )
        .await?;
    Ok(count.n)
}
