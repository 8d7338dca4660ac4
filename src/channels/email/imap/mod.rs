//! One IMAP connection to the configured mailbox, on async-imap: connected under the TLS rules
//! (`imaps://` TLS from the first byte; `imap://` STARTTLS when the server offers it, in the
//! clear only to a loopback host), every command under a time limit (async-imap has none), and
//! only commands that leave the mailbox as it is (`BODY.PEEK`, no STORE, EXPUNGE or MOVE).

use std::collections::HashSet;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::Session;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

/// The connection under the session: plain TCP (loopback only) or TLS.
type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// UIDs per FETCH or SEARCH command, so a command line stays short.
const UIDS_PER_COMMAND: usize = 500;
/// The longest IDLE: servers may end one after 30 minutes (RFC 2177).
const MAX_IDLE: Duration = Duration::from_secs(25 * 60);
/// How fast a large FETCH must at least arrive: its time limit grows with its size.
const MIN_BYTES_PER_SEC: u64 = 256 * 1024;

/// Why talking to the IMAP server failed: a readable reason for `/health` and the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ImapError(pub String);

/// What SELECT said about the mailbox.
#[derive(Debug, Clone, Copy)]
pub struct Selected {
    pub uid_validity: u32,
    /// Every mail there now has a UID below this.
    pub uid_next: Option<u32>,
    pub exists: u32,
}

/// What is known of a mail before its body is fetched.
#[derive(Debug, Clone, Copy)]
pub struct Envelope {
    pub uid: u32,
    /// When it arrived in the mailbox (INTERNALDATE).
    pub arrival: Option<DateTime<Utc>>,
    pub size: u32,
}

/// A logged-in session on the configured mailbox.
pub struct Connection {
    session: Session<Stream>,
    timeout: Duration,
    idle: bool,
}

/// Runs `$fut` under `$limit`, naming `$what` when it fails or takes too long.
macro_rules! limited {
    ($limit:expr, $what:expr, $fut:expr) => {
        match tokio::time::timeout($limit, $fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ImapError(format!("{}: {e}", $what))),
            Err(_) => Err(ImapError(format!(
                "{}: no answer within {:?}",
                $what, $limit
            ))),
        }
    };
}

mod connect;

impl Connection {
    /// Opens `mailbox` read-write (IDLE needs it selected); nothing in it is changed.
    pub async fn select(&mut self, mailbox: &str) -> Result<Selected, ImapError> {
        // async-imap quotes the name.
        let selected = limited!(self.timeout, "SELECT", self.session.select(mailbox))?;
        let uid_validity = selected
            .uid_validity
            .ok_or_else(|| ImapError("SELECT gave no UIDVALIDITY".into()))?;
        Ok(Selected {
            uid_validity,
            uid_next: selected.uid_next,
            exists: selected.exists,
        })
    }

    /// The highest UID in the mailbox (0 when empty): for servers that give no UIDNEXT.
    pub async fn highest_uid(&mut self) -> Result<u32, ImapError> {
        let found = self.search("UID *").await?;
        Ok(found.into_iter().max().unwrap_or(0))
    }

    /// UIDs matching `query`, ascending.
    pub async fn search(&mut self, query: &str) -> Result<Vec<u32>, ImapError> {
        let found: HashSet<u32> =
            limited!(self.timeout, "UID SEARCH", self.session.uid_search(query))?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Arrival time and size of each of `uids` still there, ascending.
    pub async fn envelopes(&mut self, uids: &[u32]) -> Result<Vec<Envelope>, ImapError> {
        let mut envelopes = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(UIDS_PER_COMMAND) {
            let wanted: HashSet<u32> = chunk.iter().copied().collect();
            let fetches = limited!(self.timeout, "UID FETCH", async {
                self.session
                    .uid_fetch(uid_set(chunk), "(UID INTERNALDATE RFC822.SIZE)")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })?;
            envelopes.extend(fetches.iter().filter_map(|f| {
                let uid = f.uid.filter(|uid| wanted.contains(uid))?;
                Some(Envelope {
                    uid,
                    arrival: f.internal_date().map(|d| d.with_timezone(&Utc)),
                    size: f.size.unwrap_or(0),
                })
            }));
        }
        envelopes.sort_by_key(|e| e.uid);
        envelopes.dedup_by_key(|e| e.uid);
        Ok(envelopes)
    }

    /// The whole raw mail of each of `uids` (`BODY.PEEK[]`: `\Seen` stays as it is), or only
    /// its header with `header_only`; `bytes` is about how much will arrive.
    pub async fn bodies(
        &mut self,
        uids: &[u32],
        bytes: u64,
        header_only: bool,
    ) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let limit = self.timeout + Duration::from_secs(bytes / MIN_BYTES_PER_SEC);
        let items = if header_only {
            "(UID BODY.PEEK[HEADER])"
        } else {
            "(UID BODY.PEEK[])"
        };
        let fetches = limited!(limit, "UID FETCH", async {
            self.session
                .uid_fetch(uid_set(uids), items)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })?;
        let mut bodies: Vec<(u32, Vec<u8>)> = fetches
            .iter()
            .filter_map(|f| {
                let uid = f.uid.filter(|uid| wanted.contains(uid))?;
                let raw = if header_only { f.header() } else { f.body() }?;
                Some((uid, raw.to_vec()))
            })
            .collect();
        bodies.sort_by_key(|(uid, _)| *uid);
        bodies.dedup_by_key(|(uid, _)| *uid);
        Ok(bodies)
    }

    /// Waits up to `wait` for news: IDLE where the server offers it, otherwise a plain pause.
    /// Returns early on `shutdown`; the connection comes back ready for the next command.
    pub async fn wait(
        self,
        wait: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Connection, ImapError> {
        let Connection {
            session,
            timeout,
            idle,
        } = self;
        if !idle {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            return Ok(Connection {
                session,
                timeout,
                idle,
            });
        }
        let wait = wait.min(MAX_IDLE);
        let mut handle = session.idle();
        limited!(timeout, "IDLE", handle.init())?;
        // `stop` must live while waiting: dropped, it ends the wait at once.
        let (news, stop) = handle.wait_with_timeout(wait);
        // The wait's own timeout restarts at every line from the server (its keepalives too),
        // so `wait` is enforced here as well: the lease and RFC 2177's 29 minutes need it.
        let woke = tokio::select! {
            woke = news => woke,
            _ = shutdown.cancelled() => Ok(IdleResponse::ManualInterrupt),
            _ = tokio::time::sleep(wait) => Ok(IdleResponse::Timeout),
        };
        drop(stop);
        woke.map_err(|e| ImapError(format!("IDLE: {e}")))?;
        let session = limited!(timeout, "DONE", handle.done())?;
        Ok(Connection {
            session,
            timeout,
            idle,
        })
    }

    /// Says goodbye (best effort, bounded).
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.session.logout()).await;
    }
}

/// `1:3,7,9:12` for ascending `uids`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uid_set;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10, 11, 12]), "1:3,7,9:12");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }
}
