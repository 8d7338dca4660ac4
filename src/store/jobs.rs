//! The `jobs` table: durable background work, claimed with a lease (see the migration).

use chrono::{DateTime, Utc};

use super::{Backend, Exec};
use crate::args;

/// What a job does; each kind has its handler in [`crate::jobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Compose the assistant's answer to inbound message `subject_id` and queue it for sending.
    AssistantReply,
    /// Fetch the file of attachment `subject_id` from its provider into the media store.
    AttachmentFetch,
    /// Look up the name of conversation `subject_id`'s participant with the provider (whose
    /// webhooks carry none) and name the conversation.
    ParticipantName,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [
        JobKind::AssistantReply,
        JobKind::AttachmentFetch,
        JobKind::ParticipantName,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::AssistantReply => "assistant_reply",
            JobKind::AttachmentFetch => "attachment_fetch",
            JobKind::ParticipantName => "participant_name",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

crate::domain::text_column!(JobKind);

impl From<JobKind> for super::Arg {
    fn from(kind: JobKind) -> Self {
        super::Arg::Text(Some(kind.as_str().to_owned()))
    }
}

/// A claimed job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub subject_id: i64,
    pub attempts: i32,
}

/// Records a job due now; a no-op when the same job exists.
pub async fn enqueue(
    ex: &mut Exec<'_>,
    kind: JobKind,
    subject_id: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    ex.execute(
        "INSERT INTO jobs (kind, subject_id, due_at, created_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (kind, subject_id) DO NOTHING",
        args![kind, subject_id, now],
    )
    .await
    .map(|_| ())
}

/// Leases up to `limit` due jobs of `kind` until `lease_until`; another worker's live lease is
/// skipped.
pub async fn claim(
    ex: &mut Exec<'_>,
    backend: Backend,
    kind: JobKind,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Job>> {
    // As in the outbox: the lease condition is repeated outside the subquery, which PostgreSQL
    // re-checks on a row another transaction just claimed; SKIP LOCKED avoids waiting on it.
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET claimed_until = $2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM jobs WHERE kind = $4 AND due_at <= $1 \
                        AND (claimed_until IS NULL OR claimed_until < $1) \
                      ORDER BY due_at, id LIMIT $3 {lock}) \
           AND (claimed_until IS NULL OR claimed_until < $1) \
         RETURNING id, kind, subject_id, attempts"
    );
    ex.fetch_all(&sql, args![now, lease_until, limit, kind])
        .await
}

/// The job is done (or given up): gone.
pub async fn complete(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<()> {
    ex.execute("DELETE FROM jobs WHERE id = $1", args![id])
        .await
        .map(|_| ())
}

/// The job failed for now: due again at `due_at`, with the reason kept.
pub async fn retry(
    ex: &mut Exec<'_>,
    id: i64,
    due_at: DateTime<Utc>,
    error: &str,
) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE jobs SET due_at = $2, claimed_until = NULL, last_error = $3 WHERE id = $1",
        args![id, due_at, error],
    )
    .await
    .map(|_| ())
}
