//! Stamps read for many requests at once. A request queues what it checks (a conversation, or
//! the conversations list); one reader takes everything queued, reads it all in one query and
//! answers each request. That query starts after every request it answers was queued, so each
//! still sees every commit that preceded it; a page served from memory costs a share of one
//! query instead of a round trip of its own (32 concurrent readers share each query ~10 ways).
//!
//! The queue is bounded; a request that finds it full, or whose batch fails, reads alone.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::conversations::{self, Stamp};
use crate::store::Db;

/// Requests waiting for the reader, at most.
const QUEUE: usize = 4096;
/// Conversations read by one query, at most.
const MAX_BATCH: usize = 512;

enum Check {
    Conversation(i64),
    List,
}

/// What a batch read, for one request; `None`: the batch failed.
type Reply = oneshot::Sender<Option<Answer>>;

enum Answer {
    Conversation(Option<i64>),
    List(Stamp),
}

struct Ask {
    check: Check,
    reply: Reply,
}

/// Where requests ask for stamps. Cheap to clone.
#[derive(Clone)]
pub struct Stamps {
    db: Db,
    queue: mpsc::Sender<Ask>,
}

/// Reads the queued checks; run as a background task. It ends when every [`Stamps`] handle
/// is gone (the server has stopped).
pub struct Reader {
    db: Db,
    asks: mpsc::Receiver<Ask>,
    metrics: Arc<Metrics>,
}

impl Stamps {
    pub fn new(db: Db, metrics: Arc<Metrics>) -> (Stamps, Reader) {
        let (queue, asks) = mpsc::channel(QUEUE);
        let reader = Reader {
            db: db.clone(),
            asks,
            metrics,
        };
        (Stamps { db, queue }, reader)
    }

    /// Conversation `id`'s stamp; `None`: no such conversation.
    pub async fn conversation(&self, id: i64) -> sqlx::Result<Option<i64>> {
        match self.ask(Check::Conversation(id)).await {
            Some(Answer::Conversation(stamp)) => Ok(stamp),
            _ => conversations::stamp(&mut self.db.exec(), id).await,
        }
    }

    /// The conversations list's stamp.
    pub async fn list(&self) -> sqlx::Result<Stamp> {
        match self.ask(Check::List).await {
            Some(Answer::List(stamp)) => Ok(stamp),
            _ => conversations::list_stamp(&mut self.db.exec()).await,
        }
    }

    async fn ask(&self, check: Check) -> Option<Answer> {
        let (reply, answer) = oneshot::channel();
        self.queue.try_send(Ask { check, reply }).ok()?;
        answer.await.ok().flatten()
    }
}

impl Reader {
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while self.asks.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.answer(&mut batch).await;
        }
    }

    async fn answer(&self, batch: &mut Vec<Ask>) {
        let mut ids: Vec<i64> = batch
            .iter()
            .filter_map(|ask| match ask.check {
                Check::Conversation(id) => Some(id),
                Check::List => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let read = conversations::stamps(&mut self.db.exec(), &ids).await;
        let (by_id, list) = match read {
            Ok(read) => {
                Metrics::add(&self.metrics.pages_stamp_reads, 1);
                (read.conversations.into_iter().collect(), Some(read.list))
            }
            Err(e) => {
                // Each request reads alone, and answers the error itself if it persists.
                tracing::debug!(error = %e, "a batch of stamps failed");
                (HashMap::new(), None)
            }
        };
        for ask in batch.drain(..) {
            let answer = list.map(|list| match ask.check {
                Check::Conversation(id) => Answer::Conversation(by_id.get(&id).copied()),
                Check::List => Answer::List(list),
            });
            // The request may have gone (its client hung up).
            let _ = ask.reply.send(answer);
        }
    }
}
