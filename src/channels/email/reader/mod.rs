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

mod pass;

use super::imap::{Connection, ImapError};
use super::import::{ImportError, Importer, Lease};
use super::{tls, Health};
use crate::assistant::AutoReplies;
use crate::config::{Email, ImapServer};
use crate::domain::now;
use crate::media::MediaStore;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::store::mailboxes;

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
}

/// One second doubled per failure, capped, with jitter so instances spread out.
fn backoff(failures: u32) -> Duration {
    crate::retry::backoff(Duration::from_secs(1), failures, MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_secs(1));
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(40) <= MAX_BACKOFF);
    }
}
