//! Outbound delivery state in the `messages` table: the queue of messages to send (first try
//! and retries, with a lease per claim) and the forward-only status updates from the provider.

use chrono::{DateTime, Utc};

use super::{Backend, Exec, Id};
use crate::args;
use crate::domain::{ChannelKind, Message, Status};

/// A message due to be sent, with where to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub conversation_id: i64,
    pub content: String,
    pub channel: ChannelKind,
    /// Fixed when the message was stored: every attempt goes to the same person.
    pub recipient: String,
    pub send_attempts: i32,
    /// `agent` or `assistant` ([`crate::domain::Author::of`]).
    pub sender_name: Option<String>,
    /// Which of the channel's ways out, fixed when stored (see the migration).
    pub send_route: Option<String>,
}

impl Due {
    pub fn author(&self) -> crate::domain::Author {
        crate::domain::Author::of(self.sender_name.as_deref())
    }
}

/// Puts a stored outbound message in the queue, due at `due`, to go out by `route`.
/// `claimed_until` set means the caller is about to send it itself and no worker may take it
/// before then.
pub async fn enqueue(
    ex: &mut Exec<'_>,
    id: i64,
    due: DateTime<Utc>,
    claimed_until: Option<DateTime<Utc>>,
    route: Option<&str>,
) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE messages SET next_attempt_at = $2, claimed_until = $3, send_route = $4 \
         WHERE id = $1",
        args![id, due, claimed_until, route.map(str::to_owned)],
    )
    .await
    .map(|_| ())
}

/// Leases up to `limit` due messages to the caller until `lease_until`. A message claimed by
/// another worker whose lease has not expired is skipped, so no two workers send it at once.
pub async fn claim_due(
    ex: &mut Exec<'_>,
    backend: Backend,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Due>> {
    // The lease condition is repeated outside the subquery: PostgreSQL re-checks it on a row
    // another transaction just claimed. SKIP LOCKED (PostgreSQL only) avoids waiting on it.
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE messages SET claimed_until = $2 \
         WHERE id IN (SELECT id FROM messages \
                      WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1 \
                        AND (claimed_until IS NULL OR claimed_until < $1) \
                      ORDER BY next_attempt_at, id LIMIT $3 {lock}) \
           AND next_attempt_at IS NOT NULL \
           AND (claimed_until IS NULL OR claimed_until < $1) \
         RETURNING id, conversation_id, content, channel_id AS channel, \
                   COALESCE(recipient, '') AS recipient, send_attempts, sender_name, send_route"
    );
    ex.fetch_all(&sql, args![now, lease_until, limit]).await
}

/// The provider accepted the message: `sent`, with its id when it gave one, out of the queue.
/// This and the two below return the message only when they changed it: `None` when it was no
/// longer `pending` (its outcome is recorded already, e.g. the provider's echo adopted it).
pub async fn record_sent(
    ex: &mut Exec<'_>,
    id: i64,
    attempts: i32,
    external_id: Option<&str>,
) -> sqlx::Result<Option<Message>> {
    let touched = ex
        .execute(
            "UPDATE messages SET status = 'sent', external_message_id = $2, error = NULL, \
         send_attempts = $3, next_attempt_at = NULL, claimed_until = NULL \
         WHERE id = $1 AND status = 'pending'",
            args![id, external_id.map(str::to_owned), i64::from(attempts)],
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    super::messages::get(ex, id).await
}

/// A transient failure: stays `pending`, retried at `next_attempt_at`.
pub async fn record_retry(
    ex: &mut Exec<'_>,
    id: i64,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> sqlx::Result<Option<Message>> {
    let touched = ex
        .execute(
            "UPDATE messages SET error = $2, send_attempts = $3, next_attempt_at = $4, \
         claimed_until = NULL WHERE id = $1 AND status = 'pending'",
            args![id, error, i64::from(attempts), next_attempt_at],
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    super::messages::get(ex, id).await
}

/// A permanent refusal, or the last attempt failed: `failed`, out of the queue.
pub async fn record_failed(
    ex: &mut Exec<'_>,
    id: i64,
    attempts: i32,
    error: &str,
) -> sqlx::Result<Option<Message>> {
    let touched = ex
        .execute(
            "UPDATE messages SET status = 'failed', error = $2, send_attempts = $3, \
         next_attempt_at = NULL, claimed_until = NULL WHERE id = $1 AND status = 'pending'",
            args![id, error, i64::from(attempts)],
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    super::messages::get(ex, id).await
}

/// Applies a provider status to the outbound message with this provider id, only if it moves
/// the message forward ([`Status::may_follow`]). Returns the message when it changed (a
/// redelivery changes nothing).
pub async fn apply_status(
    ex: &mut Exec<'_>,
    channel: ChannelKind,
    external_id: &str,
    status: Status,
    error: Option<&str>,
) -> sqlx::Result<Option<Message>> {
    let Some(from) = status.may_follow_sql() else {
        return Ok(None);
    };
    let sql = format!(
        "UPDATE messages SET status = $3, error = COALESCE($4, error), \
         next_attempt_at = NULL, claimed_until = NULL \
         WHERE channel_id = $1 AND external_message_id = $2 AND direction = 'outbound' \
           AND status IN {from} \
         RETURNING id"
    );
    let id: Option<Id> = ex
        .fetch_optional(
            &sql,
            args![channel, external_id, status, error.map(str::to_string)],
        )
        .await?;
    match id {
        Some(Id { id }) => super::messages::get(ex, id).await,
        None => Ok(None),
    }
}

/// A message the business sent from elsewhere (the provider's own app) whose id no message
/// has may be one of ours whose provider answer is not recorded yet: the oldest of this
/// conversation's messages still in the outbox with the very same text takes the id and becomes
/// `sent`, so the provider's echo does not show it twice, and a retry does not send it twice.
/// Returns it when one did.
pub async fn adopt(
    ex: &mut Exec<'_>,
    conversation_id: i64,
    content: &str,
    external_id: &str,
) -> sqlx::Result<Option<Message>> {
    // `status = 'pending'` is checked again on the row itself: the send's own outcome may
    // have been recorded meanwhile, and then it stays as that recorded it.
    let id: Option<Id> = ex
        .fetch_optional(
            "UPDATE messages SET status = 'sent', external_message_id = $3, error = NULL, \
             next_attempt_at = NULL, claimed_until = NULL \
             WHERE id = (SELECT id FROM messages WHERE conversation_id = $1 \
                           AND direction = 'outbound' AND status = 'pending' \
                           AND next_attempt_at IS NOT NULL AND content = $2 \
                         ORDER BY id LIMIT 1) \
               AND status = 'pending' \
             RETURNING id",
            args![conversation_id, content, external_id],
        )
        .await?;
    match id {
        Some(Id { id }) => super::messages::get(ex, id).await,
        None => Ok(None),
    }
}

/// A read receipt: the conversation's outbound messages up to `last` (by timestamp, ties by
/// id) become `read`, forward only. Returns those that changed, in id order.
pub async fn read_up_to(
    ex: &mut Exec<'_>,
    conversation_id: i64,
    last: &Message,
) -> sqlx::Result<Vec<Message>> {
    // A message still `pending` was not handed over yet, so it cannot have been read; it keeps
    // its place in the queue.
    let from: Vec<String> = Status::ALL
        .into_iter()
        .filter(|current| Status::Read.may_follow(*current) && *current != Status::Pending)
        .map(|current| format!("'{}'", current.as_str()))
        .collect();
    let sql = format!(
        "UPDATE messages SET status = 'read' \
         WHERE conversation_id = $1 AND direction = 'outbound' AND status IN ({}) \
           AND (\"timestamp\" < $2 OR (\"timestamp\" = $2 AND id <= $3)) \
         RETURNING id",
        from.join(", ")
    );
    let mut ids: Vec<Id> = ex
        .fetch_all(&sql, args![conversation_id, last.timestamp, last.id])
        .await?;
    ids.sort_by_key(|row| row.id);
    let mut changed = Vec::with_capacity(ids.len());
    for Id { id } in ids {
        changed.extend(super::messages::get(ex, id).await?);
    }
    Ok(changed)
}

/// Messages waiting in the outbox (first try or retry).
pub async fn pending_count(ex: &mut Exec<'_>) -> sqlx::Result<i64> {
    let count: super::Count = ex
        .fetch_one(
            "SELECT COUNT(*) AS n FROM messages WHERE next_attempt_at IS NOT NULL",
            args![],
        )
        .await?;
    Ok(count.n)
}
