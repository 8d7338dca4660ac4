//! The `email_mailboxes` table: where the reading of each IMAP mailbox stands, and which
//! instance reads it (a lease, taken over only once it expires).
//!
//! Every change but the first claim checks the lease, so an instance that lost it (paused past
//! its expiry while another took over) cannot move the position: its transaction is rolled back
//! and the other instance's reading stands.

use chrono::{DateTime, Utc};

use super::Exec;
use crate::args;

/// Where the reading of a mailbox stands.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Position {
    /// The UIDVALIDITY the UIDs below belong to; `None` before the first reading.
    pub uid_validity: Option<i64>,
    /// Every mail with a UID up to this one has been recorded (or deliberately left out).
    pub last_uid: i64,
    /// UIDs up to this one were in the mailbox at the first start (or at a UIDVALIDITY change)
    /// and are read only when they arrived after `backfill_since`.
    pub backfill_until_uid: Option<i64>,
    pub backfill_since: Option<DateTime<Utc>>,
    /// When the mailbox was last read to its end.
    pub synced_at: Option<DateTime<Utc>>,
}

/// Takes (or renews) the lease on reading `mailbox` until `until`, unless another owner holds
/// a lease that has not expired. Whether `owner` now holds it.
pub async fn claim(
    ex: &mut Exec<'_>,
    mailbox: &str,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<bool> {
    ex.execute(
        "INSERT INTO email_mailboxes (mailbox, last_uid, updated_at) VALUES ($1, 0, $2) \
         ON CONFLICT (mailbox) DO NOTHING",
        args![mailbox, now],
    )
    .await?;
    let taken = ex
        .execute(
            "UPDATE email_mailboxes SET lease_owner = $2, leased_until = $4, updated_at = $3 \
             WHERE mailbox = $1 \
               AND (lease_owner = $2 OR leased_until IS NULL OR leased_until < $3)",
            args![mailbox, owner, now, until],
        )
        .await?;
    Ok(taken == 1)
}

/// Lets go of the lease (at shutdown), so another instance takes over at once.
pub async fn release(ex: &mut Exec<'_>, mailbox: &str, owner: &str) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE email_mailboxes SET leased_until = NULL WHERE mailbox = $1 AND lease_owner = $2",
        args![mailbox, owner],
    )
    .await
    .map(|_| ())
}

pub async fn get(ex: &mut Exec<'_>, mailbox: &str) -> sqlx::Result<Option<Position>> {
    ex.fetch_optional(
        "SELECT uid_validity, last_uid, backfill_until_uid, backfill_since, synced_at \
         FROM email_mailboxes WHERE mailbox = $1",
        args![mailbox],
    )
    .await
}

/// Starts reading under `uid_validity` from the beginning: UIDs up to `until_uid` only when
/// they arrived after `since`. False when `owner` no longer holds the lease.
#[allow(clippy::too_many_arguments)]
pub async fn restart(
    ex: &mut Exec<'_>,
    mailbox: &str,
    owner: &str,
    uid_validity: u32,
    until_uid: u32,
    since: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let changed = ex
        .execute(
            "UPDATE email_mailboxes SET uid_validity = $3, last_uid = 0, \
             backfill_until_uid = $4, backfill_since = $5, leased_until = $6, updated_at = $7 \
             WHERE mailbox = $1 AND lease_owner = $2",
            args![
                mailbox,
                owner,
                i64::from(uid_validity),
                i64::from(until_uid),
                since,
                lease_until,
                now
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// Moves the position to `last_uid` (never back) and renews the lease; `synced` records a
/// reading that reached the end of the mailbox. False when `owner` no longer holds the lease:
/// the caller's transaction must not commit.
pub async fn advance(
    ex: &mut Exec<'_>,
    mailbox: &str,
    owner: &str,
    last_uid: u32,
    synced: Option<DateTime<Utc>>,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let changed = ex
        .execute(
            "UPDATE email_mailboxes SET \
             last_uid = CASE WHEN last_uid < $3 THEN $3 ELSE last_uid END, \
             synced_at = COALESCE($4, synced_at), leased_until = $5, updated_at = $6 \
             WHERE mailbox = $1 AND lease_owner = $2",
            args![
                mailbox,
                owner,
                i64::from(last_uid),
                synced,
                lease_until,
                now
            ],
        )
        .await?;
    Ok(changed == 1)
}
