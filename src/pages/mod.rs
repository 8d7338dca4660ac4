//! The first pages of the two lists clients poll, kept serialised: a conversation's newest
//! messages (`GET /messages?conversation_id=…`, `GET /conversations/{id}/messages`, no other
//! filter) and the conversations by activity (`GET /conversations`, offset 0). Every read
//! checks its page against the database before serving it, so a page is never older than the
//! last commit before the request, whichever instance committed it (read-your-writes).
//!
//! The check reads a stamp the triggers keep (see the `page_stamps` migration): a conversation's
//! stamp changes in the transaction of every change to what the lists show of it, and the
//! conversations list's stamp is the last one drawn (PostgreSQL: the sequence's last value;
//! SQLite: the largest). A page is labelled with the stamp read *before* its query, so its label
//! is never newer than its content; it is served while the stamp read for a request is still its
//! label. A hit costs that one read (a primary key, or the sequence, or the last entry of an
//! index) instead of the page's query, its rows and its serialisation.
//!
//! The same stamp is the page's `ETag`: any instance answers `If-None-Match` with 304 from the
//! stamp alone. Other list queries take the plain path and are tagged by a hash of their body.

mod cache;
pub mod etag;
mod stamps;

pub use stamps::Reader;

use bytes::Bytes;
use http::HeaderValue;

use crate::metrics::Metrics;
use crate::store::{conversations, messages, Db};

/// Which page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// The newest `limit` messages of a conversation, newest first.
    Messages { conversation_id: i64, limit: i64 },
    /// The first `limit` conversations by activity, with these filters.
    Conversations {
        channel_id: Option<i64>,
        is_active: Option<bool>,
        limit: i64,
    },
}

/// A page as served: its JSON array, the size of the whole filtered set (`X-Total-Count`), and
/// its entity tag. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Page {
    pub body: Bytes,
    pub total: i64,
    pub etag: HeaderValue,
}

impl Page {
    /// A page that is not kept, tagged by its body.
    pub fn of<T: serde::Serialize>(items: &[T], total: i64) -> serde_json::Result<Page> {
        let body = Bytes::from(serde_json::to_vec(items)?);
        Ok(Page {
            etag: etag::of_body(&body, total),
            body,
            total,
        })
    }
}

/// What a read answers with.
pub enum Served {
    /// The client's copy (its `If-None-Match`) is current.
    NotModified(HeaderValue),
    Page(Page),
}

/// The kept pages of this instance and how they are checked.
pub struct Pages {
    cache: cache::Cache,
    stamps: stamps::Stamps,
    metrics: std::sync::Arc<Metrics>,
}

/// Why a read could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("serialising a page: {0}")]
    Serialise(#[from] serde_json::Error),
}

impl Pages {
    /// Keeps at most `capacity` bytes of pages (0: none; every read then builds its page).
    /// The [`Reader`] of the stamps is to be run as a background task.
    pub fn new(db: Db, capacity: usize, metrics: std::sync::Arc<Metrics>) -> (Pages, Reader) {
        let (stamps, reader) = stamps::Stamps::new(db, metrics.clone());
        let pages = Pages {
            cache: cache::Cache::new(capacity),
            stamps,
            metrics,
        };
        (pages, reader)
    }

    /// The newest `limit` messages of conversation `conversation_id`; `None` when there is no
    /// such conversation. `client_has` says whether the client's copy has a given tag.
    pub async fn messages(
        &self,
        db: &Db,
        conversation_id: i64,
        limit: i64,
        client_has: impl Fn(&HeaderValue) -> bool,
    ) -> Result<Option<Served>, Error> {
        let Some(stamp) = self.stamps.conversation(conversation_id).await? else {
            return Ok(None);
        };
        let key = Key::Messages {
            conversation_id,
            limit,
        };
        let etag = etag::stamped(&key, stamp);
        if let Some(served) = self.kept(&key, stamp, &etag, &client_has) {
            return Ok(Some(served));
        }
        let query = messages::ListQuery::newest(conversation_id, limit);
        let (items, total) = messages::list(&mut db.exec(), &query).await?;
        let page = self.keep(key, stamp, etag, &items, total)?;
        Ok(Some(Served::Page(page)))
    }

    /// The first `limit` conversations by activity with these filters.
    pub async fn conversations(
        &self,
        db: &Db,
        query: &conversations::ListQuery,
        client_has: impl Fn(&HeaderValue) -> bool,
    ) -> Result<Served, Error> {
        let label = self.stamps.list().await?;
        let key = Key::Conversations {
            channel_id: query.channel_id,
            is_active: query.is_active,
            limit: query.limit,
        };
        let etag = etag::stamped(&key, label.stamp);
        // A tag or page labelled with this stamp was made only when it was settled.
        if let Some(served) = self.kept(&key, label.stamp, &etag, &client_has) {
            return Ok(served);
        }
        let (items, total) = conversations::list(&mut db.exec(), query).await?;
        if !label.settled {
            // A transaction in progress may still commit a smaller stamp: the stamp does not
            // name this content.
            let page = Page::of(&items, total)?;
            return Ok(if client_has(&page.etag) {
                Served::NotModified(page.etag)
            } else {
                Served::Page(page)
            });
        }
        let page = self.keep(key, label.stamp, etag, &items, total)?;
        Ok(Served::Page(page))
    }

    /// The answer from the stamp alone: 304, or the kept page.
    fn kept(
        &self,
        key: &Key,
        stamp: i64,
        etag: &HeaderValue,
        client_has: &impl Fn(&HeaderValue) -> bool,
    ) -> Option<Served> {
        if client_has(etag) {
            Metrics::add(&self.metrics.pages_not_modified, 1);
            return Some(Served::NotModified(etag.clone()));
        }
        let page = self.cache.get(key, stamp)?;
        Metrics::add(&self.metrics.pages_kept, 1);
        Some(Served::Page(page))
    }

    /// Serialises a page just read and keeps it under `stamp`, read before it.
    fn keep<T: serde::Serialize>(
        &self,
        key: Key,
        stamp: i64,
        etag: HeaderValue,
        items: &[T],
        total: i64,
    ) -> Result<Page, Error> {
        Metrics::add(&self.metrics.pages_built, 1);
        let mut body = serde_json::to_vec(items)?;
        // The budget counts lengths: no spare capacity may hide behind a kept page.
        body.shrink_to_fit();
        let page = Page {
            body: Bytes::from(body),
            total,
            etag,
        };
        self.cache.put(key, stamp, page.clone());
        Ok(page)
    }

    /// Bytes and pages kept now (for `/metrics`).
    pub fn usage(&self) -> (usize, usize) {
        self.cache.usage()
    }
}
