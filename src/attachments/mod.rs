//! Getting attachment files here: each file a provider only names (a WhatsApp media id, a
//! URL) is fetched into the media store after its message is committed, by the durable
//! `attachment_fetch` job recorded with it, or on demand when someone asks for it first.
//!
//! One instance fetches one file once however many ask at once (requests and the job share the
//! fetch), at most `MEDIA_FETCH_CONCURRENCY` files at a time, each within
//! `MEDIA_FETCH_TIMEOUT_SECS`. The outcome is recorded on the row: `stored` with its size and
//! hash, or a final `unavailable` / `too_large` / `refused`; a failure worth another try leaves
//! it `pending` with the reason. A fetch runs as a tracked task of its own, so a client that
//! goes away does not cut it short.

mod remote;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::remote::Remote;
use crate::config::Config;
use crate::jobs::Outcome;
use crate::media::MediaStore;
use crate::store::attachments::{self, File, FileState};
use crate::store::Db;

/// Why a file is not here (and, for a request, what to answer).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// No such attachment.
    #[error("attachment not found")]
    NotFound,
    /// The provider no longer has it: final.
    #[error("the provider no longer has this file: {0}")]
    Gone(String),
    /// Larger than `MEDIA_MAX_BYTES`: final.
    #[error("the file is larger than MEDIA_MAX_BYTES ({0} bytes) and was not kept")]
    TooLarge(u64),
    /// Never fetched: a URL from an unsigned delivery, or one that is not https.
    #[error("this file is not fetched: {0}")]
    Refused(String),
    /// Nothing to fetch it with until the operator configures the channel.
    #[error("{0}")]
    NotConfigured(String),
    /// The provider refused, for a reason another try soon would not change (a bad token).
    #[error("the provider refused the file: {0}")]
    Failed(String),
    /// Worth another try later (an outage, throttling, a broken download, a full disk).
    #[error("the file could not be fetched for now: {0}")]
    Transient(String),
    /// The fetch took longer than `MEDIA_FETCH_TIMEOUT_SECS`.
    #[error("fetching the file took longer than {} s", .0.as_secs())]
    TimedOut(Duration),
    /// A file stored with its message is not in `MEDIA_DIR` here.
    #[error(
        "the file is not in MEDIA_DIR on this server (is the directory shared by every instance?)"
    )]
    NotInStore,
    /// The database failed (`unavailable`: it is out of reach).
    #[error("database: {detail}")]
    Database { unavailable: bool, detail: String },
}

impl From<sqlx::Error> for FetchError {
    fn from(e: sqlx::Error) -> Self {
        FetchError::Database {
            unavailable: crate::store::is_unavailable(&e),
            detail: e.to_string(),
        }
    }
}

/// A file ready to be read: its record and the open file of its content.
pub struct Here {
    pub file: File,
    pub content: tokio::fs::File,
    pub length: u64,
}

type SharedFetch = Shared<BoxFuture<'static, Result<(), FetchError>>>;

/// Fetches and opens attachment files. Cheap to clone.
#[derive(Clone)]
pub struct Attachments(Arc<Inner>);

struct Inner {
    db: Db,
    media: MediaStore,
    remote: Remote,
    permits: Semaphore,
    timeout: Duration,
    /// The fetch under way for each attachment id on this instance.
    inflight: Mutex<HashMap<i64, SharedFetch>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Attachments {
    pub fn new(
        config: &Config,
        db: Db,
        media: MediaStore,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Attachments, reqwest::Error> {
        Ok(Attachments(Arc::new(Inner {
            db,
            media,
            remote: Remote::from_config(config)?,
            permits: Semaphore::new(config.media_fetch.concurrency),
            timeout: config.media_fetch.timeout,
            inflight: Mutex::default(),
            tasks,
            shutdown,
        })))
    }

    /// `file`'s content, opened; fetched first when it is not here yet.
    pub async fn here(&self, file: File) -> Result<Here, FetchError> {
        if let Some(here) = self.open(&file).await? {
            return Ok(here);
        }
        settled(&file, self.0.media.max_bytes())?;
        self.fetch(file.id).await?;
        let file = attachments::file(&mut self.0.db.exec(), file.id)
            .await?
            .ok_or(FetchError::NotFound)?;
        self.open(&file).await?.ok_or(FetchError::NotInStore)
    }

    /// The `attachment_fetch` job of attachment `id`.
    pub async fn fetch_job(&self, id: i64) -> Outcome {
        match self.fetch(id).await {
            Ok(())
            | Err(FetchError::NotFound)
            | Err(FetchError::Gone(_))
            | Err(FetchError::TooLarge(_))
            | Err(FetchError::Refused(_))
            | Err(FetchError::NotInStore) => Outcome::Done,
            Err(
                e @ (FetchError::Transient(_)
                | FetchError::TimedOut(_)
                | FetchError::Database { .. }),
            ) => Outcome::Retry(e.to_string()),
            // A request for the file tries again once the operator has fixed it.
            Err(e @ (FetchError::Failed(_) | FetchError::NotConfigured(_))) => {
                Outcome::GiveUp(e.to_string())
            }
        }
    }

    /// The stored content of `file`, if it is here.
    async fn open(&self, file: &File) -> Result<Option<Here>, FetchError> {
        let Some(sha256) = file
            .sha256
            .as_deref()
            .filter(|_| file.state == FileState::Stored)
        else {
            return Ok(None);
        };
        let opened = self
            .0
            .media
            .open(sha256)
            .await
            .map_err(|e| FetchError::Transient(format!("cannot read MEDIA_DIR: {e}")))?;
        Ok(opened.map(|(content, length)| Here {
            file: file.clone(),
            content,
            length,
        }))
    }

    /// Fetches attachment `id`, joining the fetch already under way on this instance if any.
    async fn fetch(&self, id: i64) -> Result<(), FetchError> {
        let shared = {
            let mut inflight = self
                .0
                .inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match inflight.get(&id) {
                Some(running) => running.clone(),
                None => {
                    let this = self.clone();
                    let task = self.0.tasks.spawn(async move {
                        let result = this.fetch_now(id).await;
                        this.0
                            .inflight
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&id);
                        result
                    });
                    let shared = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(FetchError::Transient(format!("the fetch stopped: {e}")))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(id, shared.clone());
                    shared
                }
            }
        };
        shared.await
    }

    /// Fetches attachment `id` from its provider and records the outcome on its row.
    async fn fetch_now(&self, id: i64) -> Result<(), FetchError> {
        let file = attachments::file(&mut self.0.db.exec(), id)
            .await?
            .ok_or(FetchError::NotFound)?;
        if self.open(&file).await?.is_some() {
            return Ok(());
        }
        settled(&file, self.0.media.max_bytes())?;
        let Some(origin) = file.origin() else {
            return Err(FetchError::NotInStore);
        };
        if !file.fetchable {
            return Err(FetchError::Refused(UNSIGNED.into()));
        }
        let attempt = async {
            let _permit = self
                .0
                .permits
                .acquire()
                .await
                .map_err(|_| FetchError::Transient("the server is shutting down".into()))?;
            self.0.remote.fetch(&origin, &self.0.media).await
        };
        let result = tokio::select! {
            result = tokio::time::timeout(self.0.timeout, attempt) => {
                result.unwrap_or(Err(FetchError::TimedOut(self.0.timeout)))
            }
            _ = self.0.shutdown.cancelled() => {
                Err(FetchError::Transient("the server is shutting down".into()))
            }
        };
        let ex = &mut self.0.db.exec();
        match result {
            Ok(fetched) => {
                let stored = &fetched.stored;
                attachments::stored(ex, id, &stored.sha256, stored.size, fetched.mime_type).await?;
                tracing::info!(attachment = id, size = stored.size, "attachment fetched");
                Ok(())
            }
            Err(e) => {
                let reason = reason_of(&e);
                let outcome = match &e {
                    FetchError::Gone(_) => Some(FileState::Unavailable),
                    FetchError::TooLarge(_) => Some(FileState::TooLarge),
                    FetchError::Refused(_) => Some(FileState::Refused),
                    _ => None,
                };
                match outcome {
                    Some(state) => attachments::given_up(ex, id, state, &reason).await?,
                    None => attachments::failed_for_now(ex, id, &reason).await?,
                }
                tracing::warn!(attachment = id, %reason, "attachment not fetched");
                Err(e)
            }
        }
    }
}

/// The error of a file that will never be here, from what its row says.
fn settled(file: &File, limit: u64) -> Result<(), FetchError> {
    let reason = |otherwise: &str| file.error.clone().unwrap_or_else(|| otherwise.into());
    match file.state {
        FileState::Pending | FileState::Stored => Ok(()),
        FileState::Unavailable => Err(FetchError::Gone(reason("gone"))),
        FileState::TooLarge => Err(FetchError::TooLarge(limit)),
        FileState::Refused => Err(FetchError::Refused(reason(UNSIGNED))),
    }
}

/// Why a URL from an unsigned delivery is never fetched.
const UNSIGNED: &str = "its URL came in an unsigned webhook delivery (set the channel's app \
                        secret so that deliveries are signed)";

/// What is kept in the row's `error`: the reason without the error's own preamble.
fn reason_of(e: &FetchError) -> String {
    match e {
        FetchError::Gone(r)
        | FetchError::Refused(r)
        | FetchError::Failed(r)
        | FetchError::Transient(r)
        | FetchError::NotConfigured(r) => r.clone(),
        other => other.to_string(),
    }
}
