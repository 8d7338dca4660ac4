//! The `early_statuses` table: provider statuses for an id no message has yet, kept until the
//! send that will carry that id records it (or pruned after a while).

use chrono::{DateTime, Utc};

use super::Exec;
use crate::args;
use crate::domain::{ChannelKind, Status};

/// A status waiting for its message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EarlyStatus {
    pub status: Status,
    pub error: Option<String>,
}

/// Keeps a status for `external_id` (a redelivery of the same status is a no-op).
pub async fn keep(
    ex: &mut Exec<'_>,
    channel: ChannelKind,
    external_id: &str,
    status: Status,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    ex.execute(
        "INSERT INTO early_statuses (channel_id, external_message_id, status, error, received_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        args![channel, external_id, status, error.map(str::to_owned), now],
    )
    .await
    .map(|_| ())
}

/// Removes and returns the statuses waiting for `external_id`, in lifecycle order (so that
/// applying them forward only ends on the furthest).
pub async fn take(
    ex: &mut Exec<'_>,
    channel: ChannelKind,
    external_id: &str,
) -> sqlx::Result<Vec<EarlyStatus>> {
    let mut taken: Vec<EarlyStatus> = ex
        .fetch_all(
            "DELETE FROM early_statuses WHERE channel_id = $1 AND external_message_id = $2 \
             RETURNING status, error",
            args![channel, external_id],
        )
        .await?;
    taken.sort_by_key(|early| Status::ALL.iter().position(|s| *s == early.status));
    Ok(taken)
}

/// Drops statuses received before `before`: their message was never ours.
pub async fn prune(ex: &mut Exec<'_>, before: DateTime<Utc>) -> sqlx::Result<u64> {
    ex.execute(
        "DELETE FROM early_statuses WHERE received_at < $1",
        args![before],
    )
    .await
}
