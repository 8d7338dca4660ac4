//! The durable job runner: claims due jobs from the `jobs` table with a lease, runs a bounded
//! number at once, and records each outcome (done, retry later with backoff, or given up). A
//! kind of job plugs in with a [`JobKind`] and one arm in [`Handlers::run`].
//!
//! Jobs are enqueued in the transaction that causes them, so a crash after the commit loses
//! none; a crash during a job leaves its lease to expire, and the job runs again (handlers are
//! idempotent: the assistant's reply is unique per message, a file is stored by its content,
//! and a looked-up name only names a conversation that has none).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::assistant::Assistant;
use crate::attachments::Attachments;
use crate::domain::now;
use crate::inbox::names::NameLookups;
use crate::store::jobs::{self, Job, JobKind};
use crate::store::Db;

/// Jobs one instance runs at once.
const CONCURRENCY: usize = 8;
/// How often other instances' jobs (and retries) are looked for without a wake-up.
const POLL: Duration = Duration::from_secs(1);
/// Attempts before a job is given up.
const MAX_ATTEMPTS: i32 = 10;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long shutdown lets running jobs finish before leaving them to their leases.
const FINISH: Duration = Duration::from_secs(15);

/// What became of one run of a job.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// Worth trying again later (the database or a provider is away).
    Retry(String),
    /// Trying again cannot help.
    GiveUp(String),
}

/// Wakes the runner on this instance when a commit enqueued jobs. Cheap to clone.
#[derive(Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What runs each kind of job.
#[derive(Clone)]
pub struct Handlers {
    pub assistant: Assistant,
    pub attachments: Attachments,
    pub names: NameLookups,
}

impl Handlers {
    async fn run(&self, job: &Job) -> Outcome {
        match job.kind {
            JobKind::AssistantReply => self.assistant.reply_job(job.subject_id).await,
            JobKind::AttachmentFetch => self.attachments.fetch_job(job.subject_id).await,
            JobKind::ParticipantName => self.names.job(job.subject_id).await,
        }
    }
}

pub struct Runner {
    db: Db,
    handlers: Handlers,
    waker: Waker,
    /// How long a claimed job of each kind is this instance's: longer than any one run of it.
    leases: Leases,
}

/// The lease of each kind of job. Per kind, so a dead instance's quick jobs (a name look-up)
/// are taken over soon, whatever the slowest kind (a large download) needs.
#[derive(Debug, Clone)]
pub struct Leases(Vec<(JobKind, Duration)>);

impl Leases {
    /// `lease` gives each kind's.
    pub fn new(lease: impl Fn(JobKind) -> Duration) -> Leases {
        Leases(JobKind::ALL.iter().map(|k| (*k, lease(*k))).collect())
    }
}

impl Runner {
    pub fn new(db: Db, handlers: Handlers, waker: Waker, leases: Leases) -> Runner {
        Runner {
            db,
            handlers,
            waker,
            leases,
        }
    }

    /// Runs jobs until `shutdown`, then lets the running ones finish (within a bound).
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut running = JoinSet::new();
        loop {
            let free = CONCURRENCY - running.len();
            if free > 0 {
                match this.claim(free).await {
                    Ok(claimed) => {
                        for job in claimed {
                            let this = this.clone();
                            running.spawn(async move { this.execute(job).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "jobs: cannot claim due jobs"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = this.waker.0.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        let finished = tokio::time::timeout(FINISH, async {
            while running.join_next().await.is_some() {}
        });
        if finished.await.is_err() {
            tracing::warn!("jobs still running at shutdown are left to their leases");
        }
    }

    /// Claims up to `limit` due jobs, each kind with its own lease.
    async fn claim(&self, limit: usize) -> sqlx::Result<Vec<Job>> {
        let at = now();
        let mut claimed = Vec::new();
        for (kind, lease) in &self.leases.0 {
            let room = limit.saturating_sub(claimed.len());
            if room == 0 {
                break;
            }
            let lease = chrono::Duration::from_std(*lease).unwrap_or(chrono::Duration::MAX);
            claimed.extend(
                jobs::claim(
                    &mut self.db.exec(),
                    self.db.backend(),
                    *kind,
                    at,
                    at + lease,
                    room as i64,
                )
                .await?,
            );
        }
        Ok(claimed)
    }

    async fn execute(&self, job: Job) {
        let outcome = self.handlers.run(&job).await;
        let kind = job.kind.as_str();
        let recorded = match outcome {
            Outcome::Done => jobs::complete(&mut self.db.exec(), job.id).await,
            Outcome::Retry(reason) if job.attempts < MAX_ATTEMPTS => {
                tracing::warn!(job = job.id, kind, attempts = job.attempts, %reason, "job failed, will retry");
                let due = now() + backoff(job.attempts);
                jobs::retry(&mut self.db.exec(), job.id, due, &reason).await
            }
            Outcome::Retry(reason) | Outcome::GiveUp(reason) => {
                tracing::error!(job = job.id, kind, attempts = job.attempts, %reason, "job given up");
                jobs::complete(&mut self.db.exec(), job.id).await
            }
        };
        if let Err(e) = recorded {
            // The lease expires and the job runs again; handlers are idempotent.
            tracing::warn!(job = job.id, kind, error = %e, "cannot record a job's outcome");
        }
    }
}

/// Two seconds doubled per attempt, capped.
fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let wait = Duration::from_secs(2)
        .saturating_mul(1 << exponent)
        .min(MAX_BACKOFF);
    chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}
