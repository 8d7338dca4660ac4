//! Group commit of webhook deliveries, whatever their channel.
//!
//! Concurrent deliveries queue up for one writer task, which stores everything queued meanwhile
//! in one transaction: one commit, and one WAL flush, for many deliveries. Each delivery is still
//! answered only after the commit that stored it, so an acknowledged message is never lost. A
//! batch that fails for a reason other than the database being unreachable is written again one
//! delivery per transaction, so one bad delivery cannot fail its neighbours.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Delivery, Recorded};
use crate::assistant::AutoReplies;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::store;

/// At most this many deliveries share a transaction.
const MAX_BATCH_DELIVERIES: usize = 64;
/// A batch stops taking deliveries once it holds this many messages.
const MAX_BATCH_MESSAGES: usize = 512;
/// Deliveries waiting for the writer before senders wait for room.
const QUEUE: usize = 1024;

/// Why a delivery was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database cannot be reached (or the writer has stopped): the provider should retry.
    #[error("database unavailable")]
    Unavailable,
    #[error("{0}")]
    Failed(sqlx::Error),
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        if store::is_unavailable(&e) {
            IngestError::Unavailable
        } else {
            IngestError::Failed(e)
        }
    }
}

/// The handle deliveries are queued on. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Job>,
}

struct Job {
    delivery: Delivery,
    done: oneshot::Sender<Result<Vec<Recorded>, IngestError>>,
}

/// The task that writes queued deliveries; run it with [`Writer::run`].
pub struct Writer {
    publisher: Publisher,
    autoreplies: AutoReplies,
    metrics: Arc<Metrics>,
    jobs: mpsc::Receiver<Job>,
}

impl Ingest {
    /// The handle and its writer, which the caller runs as a background task.
    pub fn new(
        publisher: Publisher,
        autoreplies: AutoReplies,
        metrics: Arc<Metrics>,
    ) -> (Ingest, Writer) {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let writer = Writer {
            publisher,
            autoreplies,
            metrics,
            jobs,
        };
        (Ingest { queue }, writer)
    }

    /// Stores `delivery` and returns what it recorded, once the transaction holding it has
    /// committed.
    pub async fn record(&self, delivery: Delivery) -> Result<Vec<Recorded>, IngestError> {
        let (done, answer) = oneshot::channel();
        if self.queue.send(Job { delivery, done }).await.is_err() {
            return Err(IngestError::Unavailable);
        }
        answer.await.map_err(|_| IngestError::Unavailable)?
    }
}

impl Writer {
    /// Writes batches until every handle is dropped and the queue is empty.
    pub async fn run(mut self) {
        while let Some(first) = self.jobs.recv().await {
            let mut messages = first.delivery.messages.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_DELIVERIES && messages < MAX_BATCH_MESSAGES {
                let Ok(job) = self.jobs.try_recv() else { break };
                messages += job.delivery.messages.len();
                batch.push(job);
            }
            self.write(batch).await;
        }
    }

    /// Writes a batch in one transaction; on failure, each delivery in its own.
    async fn write(&self, batch: Vec<Job>) {
        if batch.len() > 1 {
            match self.commit(batch.iter().map(|job| &job.delivery)).await {
                Ok(recorded) => {
                    for (job, recorded) in batch.into_iter().zip(recorded) {
                        let _ = job.done.send(Ok(recorded));
                    }
                    return;
                }
                Err(e) if store::is_unavailable(&e) => {
                    tracing::warn!(error = %e, "database unavailable");
                    for job in batch {
                        let _ = job.done.send(Err(IngestError::Unavailable));
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
                self.commit(std::iter::once(&job.delivery))
                    .await
                    .map(|mut recorded| recorded.pop().unwrap_or_default())
                    .map_err(|e| {
                        reachable = !store::is_unavailable(&e);
                        IngestError::from(e)
                    })
            } else {
                Err(IngestError::Unavailable)
            };
            let _ = job.done.send(result);
        }
    }

    /// One transaction for `deliveries`, their events sent with it.
    async fn commit<'d>(
        &self,
        deliveries: impl Iterator<Item = &'d Delivery>,
    ) -> sqlx::Result<Vec<Vec<Recorded>>> {
        let deliveries: Vec<&Delivery> = deliveries.collect();
        let mut uow = self.publisher.begin().await?;
        store::notify::take_writers_turn(uow.tx()).await?;
        let recorded = super::batch::record_all(&mut uow, &deliveries, &self.autoreplies).await?;
        uow.commit().await?;
        Metrics::add(&self.metrics.webhook_batches, 1);
        Metrics::add(
            &self.metrics.webhook_batched_deliveries,
            recorded.len() as u64,
        );
        Ok(recorded)
    }
}
