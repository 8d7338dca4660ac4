//! The background task that reads the configured mailbox.
//!
//! One instance at a time reads it (a lease in `email_mailboxes`, renewed with every position
//! it records). Each round selects the mailbox, reads the mails whose UID is past the recorded
//! position, records them in chunks (each chunk with the position it reaches, in one
//! transaction), then waits: IDLE where the server offers it, a pause otherwise, at most
//! `EMAIL_POLL_SECS` either way. On the very first start (no position yet) the mails already
//! there are read only when they arrived within `EMAIL_BACKFILL_HOURS`; when UIDVALIDITY
//! changes, what arrived since the last complete reading (and a backfill window before it) is
//! read again, and the Message-ID makes that harmless. Any failure closes the connection and
//! is retried with backoff, shown in `/health` meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::ClientConfig;
use tokio_util::sync::CancellationToken;

use super::imap::{Connection, Envelope, ImapError, Selected};
use super::import::{Fetched, ImportError, Importer, Lease};
use super::{tls, Health};
use crate::assistant::AutoReplies;
use crate::config::{Email, ImapServer};
use crate::domain::now;
use crate::media::MediaStore;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::store::mailboxes::{self, Position};

/// Mails fetched in one command and recorded in one transaction, at most.
const CHUNK_MAILS: usize = 100;
/// Bytes fetched in one command, about (a single larger mail is fetched alone).
const CHUNK_BYTES: u64 = 16 * 1024 * 1024;
/// A mail larger than this is recorded from its header alone: memory stays bounded.
const MAX_MAIL_BYTES: u32 = 48 * 1024 * 1024;
/// The longest pause between two attempts to reach a failing server.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// What a UIDVALIDITY change reads again at least, before the last complete reading.
const MIN_REREAD: chrono::Duration = chrono::Duration::hours(1);

/// Reads the configured mailbox until shutdown.
pub struct Reader {
    server: ImapServer,
    tls: Arc<ClientConfig>,
    poll: Duration,
    backfill: chrono::Duration,
    timeout: Duration,
    importer: Importer,
    health: Health,
    lease: Lease,
}

/// Why a round of reading ended.
enum Ended {
    Shutdown,
    /// Another instance holds the lease.
    NotOurs,
}

/// Why a round of reading failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Imap(#[from] ImapError),
    #[error("{0}")]
    Import(#[from] ImportError),
}

impl From<sqlx::Error> for ReadError {
    fn from(e: sqlx::Error) -> Self {
        ReadError::Import(ImportError::Database(e))
    }
}

impl Reader {
    /// A reader when `EMAIL_IMAP_URL` is set.
    pub fn from_config(
        email: &Email,
        publisher: Publisher,
        autoreplies: AutoReplies,
        media: MediaStore,
        metrics: Arc<Metrics>,
        health: Health,
    ) -> Result<Option<Reader>, String> {
        let Some(server) = email.imap.clone() else {
            return Ok(None);
        };
        let tls = tls::client_config(&email.extra_roots)
            .map_err(|e| format!("EMAIL_CA_FILE: cannot set up TLS: {e}"))?;
        // Renewed at least once per wait and per chunk: it outlives both, so only a dead
        // instance's lease expires.
        let lease_length = email.poll_interval + email.timeout * 4 + Duration::from_secs(60);
        let lease = Lease {
            mailbox: server.key(),
            owner: uuid::Uuid::new_v4().to_string(),
            length: chrono::Duration::from_std(lease_length).unwrap_or(chrono::Duration::MAX),
        };
        Ok(Some(Reader {
            server,
            tls,
            poll: email.poll_interval,
            backfill: chrono::Duration::from_std(email.backfill).unwrap_or(chrono::Duration::MAX),
            timeout: email.timeout,
            importer: Importer {
                publisher,
                autoreplies,
                media,
                metrics,
                own: email.own_addresses(),
            },
            health,
            lease,
        }))
    }

    /// Reads until `shutdown`, retrying failures with backoff; lets go of the lease at the end.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let mut read_once = false;
            let round = tokio::select! {
                round = self.round(&shutdown, &mut read_once) => round,
                _ = shutdown.cancelled() => Ok(Ended::Shutdown),
            };
            if read_once {
                // A failure after good reading starts the backoff afresh.
                failures = 0;
            }
            let pause = match round {
                Ok(Ended::Shutdown) => break,
                Ok(Ended::NotOurs) => {
                    failures = 0;
                    self.health.ok();
                    self.poll
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    Metrics::add(&self.importer.metrics.email_read_failures, 1);
                    let reason = e.to_string();
                    tracing::warn!(mailbox = %self.lease.mailbox, failures, error = %reason, "cannot read the mailbox; will retry");
                    self.health.failing(reason);
                    backoff(failures)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let db = self.importer.publisher.db();
        if let Err(e) =
            mailboxes::release(&mut db.exec(), &self.lease.mailbox, &self.lease.owner).await
        {
            tracing::warn!(error = %e, "cannot release the mailbox's lease; it expires on its own");
        }
    }

    /// One connection's life: reads and waits until shutdown, the lease is lost, or a failure;
    /// `read_once` tells whether it read the mailbox to its end at least once.
    async fn round(
        &self,
        shutdown: &CancellationToken,
        read_once: &mut bool,
    ) -> Result<Ended, ReadError> {
        if !self.claim().await? {
            return Ok(Ended::NotOurs);
        }
        let mut connection = Connection::open(&self.server, &self.tls, self.timeout).await?;
        loop {
            let selected = connection.select(&self.server.mailbox).await?;
            match self.read_new(&mut connection, selected).await {
                Err(ReadError::Import(ImportError::LeaseLost)) => {
                    connection.logout().await;
                    return Ok(Ended::NotOurs);
                }
                other => other?,
            }
            self.health.ok();
            *read_once = true;
            connection = connection.wait(self.poll, shutdown).await?;
            if shutdown.is_cancelled() {
                connection.logout().await;
                return Ok(Ended::Shutdown);
            }
            if !self.claim().await? {
                connection.logout().await;
                return Ok(Ended::NotOurs);
            }
        }
    }

    async fn claim(&self) -> sqlx::Result<bool> {
        let at = now();
        let db = self.importer.publisher.db();
        mailboxes::claim(
            &mut db.exec(),
            &self.lease.mailbox,
            &self.lease.owner,
            at,
            self.lease.until(at),
        )
        .await
    }

    /// Records every mail past the position, in chunks, then notes the complete reading.
    async fn read_new(
        &self,
        connection: &mut Connection,
        selected: Selected,
    ) -> Result<(), ReadError> {
        let position = self.position(connection, selected).await?;
        let last = position.last_uid.clamp(0, i64::from(u32::MAX)) as u32;
        let backfill = match (position.backfill_until_uid, position.backfill_since) {
            (Some(until), Some(since)) if until > i64::from(last) => {
                Some((until.clamp(0, i64::from(u32::MAX)) as u32, since))
            }
            _ => None,
        };
        let mut uids = Vec::new();
        if let Some((until, since)) = backfill {
            // SINCE compares dates in the server's time zone: a day earlier, then the exact
            // arrival time below.
            let day = (since - chrono::Duration::days(1)).format("%-d-%b-%Y");
            let query = format!("UID {}:{until} SINCE {day}", last + 1);
            uids.extend(
                connection
                    .search(&query)
                    .await?
                    .into_iter()
                    .filter(|uid| *uid > last && *uid <= until),
            );
        }
        let from = backfill.map_or(last, |(until, _)| until).max(last) + 1;
        // `n:*` always matches the highest UID, even below n: filtered.
        let newer = connection.search(&format!("UID {from}:*")).await?;
        uids.extend(newer.into_iter().filter(|uid| *uid >= from));
        let reached = uids.iter().copied().max().unwrap_or(0).max(from - 1);
        let envelopes: Vec<Envelope> = connection
            .envelopes(&uids)
            .await?
            .into_iter()
            .filter(|e| match (backfill, e.arrival) {
                (Some((until, since)), Some(arrival)) if e.uid <= until => arrival >= since,
                _ => true,
            })
            .collect();
        for chunk in chunks(&envelopes) {
            self.import(connection, chunk).await?;
        }
        self.importer
            .record(&self.lease, Vec::new(), reached, Some(now()))
            .await?;
        Ok(())
    }

    /// The recorded position for this UIDVALIDITY; on the first start or after a change, a new
    /// one (recorded before any mail is read, so a crash midway resumes the same reading).
    async fn position(
        &self,
        connection: &mut Connection,
        selected: Selected,
    ) -> Result<Position, ReadError> {
        let db = self.importer.publisher.db();
        let recorded = mailboxes::get(&mut db.exec(), &self.lease.mailbox).await?;
        let validity = i64::from(selected.uid_validity);
        let previous = match recorded {
            Some(p) if p.uid_validity == Some(validity) => return Ok(p),
            other => other,
        };
        let at = now();
        let since = match &previous {
            Some(Position {
                uid_validity: Some(old),
                synced_at,
                ..
            }) => {
                tracing::warn!(mailbox = %self.lease.mailbox, old, new = validity, "UIDVALIDITY changed: reading again what arrived since the last reading");
                synced_at.unwrap_or(at) - self.backfill.max(MIN_REREAD)
            }
            _ => at - self.backfill,
        };
        let until = match selected.uid_next {
            Some(next) => next.saturating_sub(1),
            None if selected.exists == 0 => 0,
            None => connection.highest_uid().await?,
        };
        let ours = mailboxes::restart(
            &mut db.exec(),
            &self.lease.mailbox,
            &self.lease.owner,
            selected.uid_validity,
            until,
            since,
            self.lease.until(at),
            at,
        )
        .await?;
        if !ours {
            return Err(ImportError::LeaseLost.into());
        }
        Ok(Position {
            uid_validity: Some(validity),
            last_uid: 0,
            backfill_until_uid: Some(i64::from(until)),
            backfill_since: Some(since),
            synced_at: previous.and_then(|p| p.synced_at),
        })
    }

    /// Fetches, prepares and records one chunk.
    async fn import(
        &self,
        connection: &mut Connection,
        chunk: &[Envelope],
    ) -> Result<(), ReadError> {
        let (whole, large): (Vec<&Envelope>, Vec<&Envelope>) =
            chunk.iter().partition(|e| e.size <= MAX_MAIL_BYTES);
        let arrival = |uid: u32| chunk.iter().find(|e| e.uid == uid).and_then(|e| e.arrival);
        let mut fetched: Vec<Fetched> = Vec::with_capacity(chunk.len());
        if !whole.is_empty() {
            let uids: Vec<u32> = whole.iter().map(|e| e.uid).collect();
            let bytes = whole.iter().map(|e| u64::from(e.size)).sum();
            for (uid, raw) in connection.bodies(&uids, bytes, false).await? {
                fetched.push(Fetched {
                    uid,
                    arrival: arrival(uid),
                    raw,
                    too_large: None,
                });
            }
        }
        for envelope in large {
            for (uid, raw) in connection.bodies(&[envelope.uid], 0, true).await? {
                fetched.push(Fetched {
                    uid,
                    arrival: arrival(uid),
                    raw,
                    too_large: Some(envelope.size),
                });
            }
        }
        fetched.sort_by_key(|f| f.uid);
        Metrics::add(
            &self.importer.metrics.email_mails_fetched,
            fetched.len() as u64,
        );
        let mut mails = Vec::with_capacity(fetched.len());
        for one in fetched {
            let uid = one.uid;
            if let Some(incoming) = self.importer.prepare(one).await? {
                mails.push((uid, incoming));
            }
        }
        let last = chunk.iter().map(|e| e.uid).max().unwrap_or(0);
        self.importer.record(&self.lease, mails, last, None).await?;
        Ok(())
    }
}

/// Consecutive runs of at most `CHUNK_MAILS` mails and about `CHUNK_BYTES`.
fn chunks(envelopes: &[Envelope]) -> Vec<&[Envelope]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, envelope) in envelopes.iter().enumerate() {
        let size = u64::from(envelope.size.min(MAX_MAIL_BYTES));
        if i > start && (i - start >= CHUNK_MAILS || bytes + size > CHUNK_BYTES) {
            out.push(&envelopes[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < envelopes.len() {
        out.push(&envelopes[start..]);
    }
    out
}

/// One second doubled per failure, capped, with jitter so instances spread out.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let full = Duration::from_secs(1)
        .saturating_mul(1 << exponent)
        .min(MAX_BACKOFF);
    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(uid: u32, size: u32) -> Envelope {
        Envelope {
            uid,
            arrival: None,
            size,
        }
    }

    #[test]
    fn chunks_are_bounded_in_mails_and_bytes() {
        let small: Vec<Envelope> = (1..=250).map(|uid| envelope(uid, 1000)).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let big = [
            envelope(1, 10 << 20),
            envelope(2, 10 << 20),
            envelope(3, 60 << 20),
        ];
        let sizes: Vec<usize> = chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1]);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_secs(1));
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(40) <= MAX_BACKOFF);
    }
}
