//! Group commit for WhatsApp webhook deliveries.
//!
//! Concurrent deliveries queue up for one writer task, which stores everything queued meanwhile
//! in one transaction: one commit, and one WAL flush, for many deliveries. Each delivery is still
//! answered only after the commit that stored it, so an acknowledged message is never lost. A
//! batch that fails for a reason other than the database being unreachable is written again one
//! delivery per transaction, so one bad delivery cannot fail its neighbours.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::channels::whatsapp::webhook::Webhook;
use crate::error::ApiError;
use crate::inbox::{self, Recorded};
use crate::metrics::Metrics;
use crate::realtime::Relay;
use crate::store::{self, Db, Tx};

/// At most this many deliveries share a transaction.
const MAX_BATCH_DELIVERIES: usize = 64;
/// A batch stops taking deliveries once it holds this many messages.
const MAX_BATCH_MESSAGES: usize = 512;
/// The advisory lock the writers of all instances take turns on ("switchbd" in ASCII).
const WRITERS_LOCK: i64 = 0x7377_6974_6368_6264;
/// Deliveries waiting for the writer before senders wait for room.
const QUEUE: usize = 1024;

/// The handle the webhook handler queues deliveries on. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Job>,
}

struct Job {
    webhook: Webhook,
    done: oneshot::Sender<Result<Vec<Recorded>, ApiError>>,
}

/// Who writes: the database, where committed changes go, and the counters.
struct Writer {
    db: Db,
    relay: Relay,
    metrics: Arc<Metrics>,
}

impl Ingest {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub fn start(db: Db, relay: Relay, metrics: Arc<Metrics>) -> Ingest {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(Writer { db, relay, metrics }.run(jobs));
        Ingest { queue }
    }

    /// Stores `webhook` (its new messages and status changes) and returns what it recorded,
    /// once the transaction holding it has committed.
    pub async fn record(&self, webhook: Webhook) -> Result<Vec<Recorded>, ApiError> {
        let (done, answer) = oneshot::channel();
        if self.queue.send(Job { webhook, done }).await.is_err() {
            return Err(ApiError::Unavailable);
        }
        answer.await.map_err(|_| ApiError::Unavailable)?
    }
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<Job>) {
        while let Some(first) = queue.recv().await {
            let mut messages = first.webhook.messages.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_DELIVERIES && messages < MAX_BATCH_MESSAGES {
                let Ok(job) = queue.try_recv() else { break };
                messages += job.webhook.messages.len();
                batch.push(job);
            }
            self.write(batch).await;
        }
    }

    /// Writes a batch in one transaction; on failure, each delivery in its own.
    async fn write(&self, batch: Vec<Job>) {
        if batch.len() > 1 {
            match self.commit(batch.iter().map(|job| &job.webhook)).await {
                Ok(recorded) => {
                    for (job, recorded) in batch.into_iter().zip(recorded) {
                        let _ = job.done.send(Ok(recorded));
                    }
                    return;
                }
                Err(e) if store::is_unavailable(&e) => {
                    tracing::warn!(error = %e, "database unavailable");
                    for job in batch {
                        let _ = job.done.send(Err(ApiError::Unavailable));
                    }
                    return;
                }
                Err(e) => {
                    Metrics::add(&self.metrics.webhook_batches_retried, 1);
                    tracing::warn!(
                        error = %e,
                        deliveries = batch.len(),
                        "a webhook batch failed; writing its deliveries one by one"
                    );
                }
            }
        }
        let mut reachable = true;
        for job in batch {
            // Once the database is out of reach, the rest are answered at once rather than
            // each waiting out the pool's timeout in turn.
            let result = if reachable {
                self.commit(std::iter::once(&job.webhook))
                    .await
                    .map(|mut recorded| recorded.pop().unwrap_or_default())
                    .map_err(|e| {
                        reachable = !store::is_unavailable(&e);
                        ApiError::from(e)
                    })
            } else {
                Err(ApiError::Unavailable)
            };
            let _ = job.done.send(result);
        }
    }

    /// One transaction for `webhooks`, their events sent with it.
    async fn commit<'w>(
        &self,
        webhooks: impl Iterator<Item = &'w Webhook>,
    ) -> sqlx::Result<Vec<Vec<Recorded>>> {
        let mut changes = Vec::new();
        let mut tx = self.db.begin().await?;
        serialize_writers(&mut tx).await?;
        let channel = store::channels::by_name(&mut tx.exec(), "whatsapp")
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        let mut recorded = Vec::new();
        for webhook in webhooks {
            recorded.push(
                inbox::record_whatsapp(&mut tx.exec(), channel.id, webhook, &mut changes).await?,
            );
        }
        self.relay.notify_in(&mut tx, &changes).await?;
        tx.commit().await?;
        self.relay.committed(&changes);
        Metrics::add(&self.metrics.webhook_batches, 1);
        Metrics::add(
            &self.metrics.webhook_batched_deliveries,
            recorded.len() as u64,
        );
        Ok(recorded)
    }
}

/// Two batches touching the same conversations in different orders would deadlock, and each
/// deadlock costs PostgreSQL's `deadlock_timeout` (a second) before one batch gives way. So the
/// writers of all instances on one PostgreSQL take turns: a transaction-scoped advisory lock,
/// released at commit. (A second writer per instance measured no faster: the batch grows while
/// the other commits.) SQLite has one writer at a time anyway.
async fn serialize_writers(tx: &mut Tx) -> sqlx::Result<()> {
    match tx {
        Tx::Postgres(conn) => sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITERS_LOCK)
            .execute(&mut **conn)
            .await
            .map(|_| ()),
        Tx::Sqlite(_) => Ok(()),
    }
}
