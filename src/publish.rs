//! One unit of work for every write: open a transaction, store the changes, record what clients
//! must hear about, commit, and only then is it published. On PostgreSQL the events are sent
//! with `NOTIFY` inside the transaction itself, so they are delivered at commit, in commit
//! order, to every instance, and never for a rollback; on SQLite the local hub gets them right
//! after the commit. Either way, a commit returns once this instance's sockets have been handed
//! its events. No other write path exists: nobody hears of a row that is not committed,
//! and no committed change goes untold. With an event webhook configured, the events are also
//! recorded for it in the same transaction ([`crate::event_webhooks`]).

use crate::domain::Change;
use crate::event_webhooks;
use crate::jobs::Waker;
use crate::realtime::Relay;
use crate::store::{self, Db, Exec, Tx};

/// Opens units of work. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    db: Db,
    relay: Relay,
    jobs: Waker,
    event_webhooks: Option<event_webhooks::Recorder>,
}

impl Publisher {
    /// `jobs` is woken after a commit that enqueued jobs, so this instance runs them at once.
    pub fn new(db: Db, relay: Relay, jobs: Waker) -> Publisher {
        Publisher {
            db,
            relay,
            jobs,
            event_webhooks: None,
        }
    }

    /// Every unit of work also records its events for the event webhook.
    pub fn with_event_webhooks(mut self, recorder: Option<event_webhooks::Recorder>) -> Publisher {
        self.event_webhooks = recorder;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Starts a unit of work (a transaction).
    pub async fn begin(&self) -> sqlx::Result<UnitOfWork> {
        Ok(UnitOfWork {
            tx: self.db.begin().await?,
            changes: Vec::new(),
            relay: self.relay.clone(),
            jobs: self.jobs.clone(),
            enqueued_jobs: false,
            event_webhooks: self.event_webhooks.clone(),
        })
    }
}

/// An open transaction and the changes it makes. Dropped without [`UnitOfWork::commit`], it
/// rolls back and tells nobody.
pub struct UnitOfWork {
    tx: Tx,
    changes: Vec<Change>,
    relay: Relay,
    jobs: Waker,
    enqueued_jobs: bool,
    event_webhooks: Option<event_webhooks::Recorder>,
}

impl UnitOfWork {
    /// Where the unit's queries run.
    pub fn exec(&mut self) -> Exec<'_> {
        self.tx.exec()
    }

    /// The transaction, for store functions that need more than an executor.
    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Records a change to publish once committed.
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// Notes that the unit enqueued jobs: the job runner is woken once it commits.
    pub fn wake_jobs(&mut self) {
        self.enqueued_jobs = true;
    }

    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Announces `conversation` as updated, unless this unit created it: then the creation is
    /// announced once, with the conversation as it now is.
    pub fn conversation_changed(&mut self, conversation: crate::domain::Conversation) {
        let created = self
            .changes
            .iter_mut()
            .find(|c| matches!(c, Change::NewConversation(n) if n.id == conversation.id));
        match created {
            Some(created) => *created = Change::NewConversation(conversation),
            None => self.changes.push(Change::ConversationUpdated(conversation)),
        }
    }

    /// Commits, then publishes; returns the changes published.
    pub async fn commit(mut self) -> sqlx::Result<Vec<Change>> {
        let webhooks = self
            .event_webhooks
            .take()
            .filter(|_| !self.changes.is_empty());
        if let Some(webhooks) = &webhooks {
            webhooks.record(&mut self.tx, &self.changes).await?;
        }
        let prepared = self.relay.prepare(&self.changes);
        store::notify::notify(&mut self.tx, &prepared.payloads).await?;
        self.tx.commit().await?;
        if let Some(webhooks) = webhooks {
            webhooks.committed();
        }
        self.relay.committed(prepared, &self.changes).await;
        if self.enqueued_jobs {
            self.jobs.wake();
        }
        Ok(self.changes)
    }
}
