//! From fetched mails to the inbox: each mail parsed, its files written to the media store
//! first, then a chunk of mails recorded together with the mailbox's new reading position in
//! one unit of work. A mail already stored (the same Message-ID, copied again or read again) is
//! a no-op of the recorder. A chunk that fails for a reason other than the database being away
//! is recorded again mail by mail, and a mail that still fails is skipped with a log line, so
//! one bad mail never stops the ones after it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::parse::{self, Mail};
use crate::assistant::AutoReplies;
use crate::channels::rules;
use crate::domain::{now, ChannelKind, Direction};
use crate::inbox::{self, Delivery, Incoming, NewAttachment, Source};
use crate::media::{MediaStore, StoreError};
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::store::{self, mailboxes};

/// A mail as fetched: its UID, when it arrived, and its bytes (only the header of a mail too
/// large to read whole, with its size).
pub struct Fetched {
    pub uid: u32,
    pub arrival: Option<DateTime<Utc>>,
    pub raw: Vec<u8>,
    pub too_large: Option<u32>,
}

/// The lease this instance holds on reading the mailbox.
#[derive(Clone)]
pub struct Lease {
    pub mailbox: String,
    pub owner: String,
    pub length: Duration,
}

impl Lease {
    pub fn until(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + self.length
    }
}

/// Why a chunk was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Another instance took the mailbox over: nothing was recorded.
    #[error("another instance reads the mailbox now")]
    LeaseLost,
    #[error("the media store: {0}")]
    Media(std::io::Error),
}

/// Records mails of the configured mailbox.
#[derive(Clone)]
pub struct Importer {
    pub publisher: Publisher,
    pub autoreplies: AutoReplies,
    pub media: MediaStore,
    pub metrics: Arc<Metrics>,
    /// The mailbox's own addresses, lower case.
    pub own: Vec<String>,
}

impl Importer {
    /// The inbox's record of one fetched mail, its files already in the media store. `None`
    /// for a mail nobody can be answered for (no sender address), with a log line.
    pub async fn prepare(&self, fetched: Fetched) -> Result<Option<Incoming>, ImportError> {
        let arrival = fetched.arrival.unwrap_or_else(now);
        let mut mail = parse::parse(&fetched.raw, arrival, &self.own);
        drop(fetched.raw);
        let Some(sender) = mail.sender.clone() else {
            tracing::warn!(
                uid = fetched.uid,
                id = %mail.external_id,
                "skipping a mail without a sender address"
            );
            return Ok(None);
        };
        if let Some(size) = fetched.too_large {
            mail.content = format!(
                "(This mail is {size} bytes, more than this server reads; open it in the mailbox.)"
            );
            mail.metadata["truncated"] = json!(true);
        }
        let attachments = self.store_files(&mut mail).await?;
        Ok(Some(Incoming {
            // What arrives in the mailbox, its own mail included (never answered on its own).
            direction: Direction::Inbound,
            conversation_key: rules(ChannelKind::Gmail).conversation_key(&sender.address),
            participant_identifier: sender.address,
            participant_name: sender.name,
            content: mail.content,
            message_type: "email".into(),
            timestamp: mail.timestamp,
            external_message_id: Some(mail.external_id),
            metadata: Some(mail.metadata.to_string()),
            answerable: mail.automatic.is_none(),
            attachments,
        }))
    }

    /// Writes the mail's files to the media store; a file over `MEDIA_MAX_BYTES` is left out
    /// and named in the metadata. A store that cannot write stops the reading (retried later):
    /// a mail is never recorded without its files.
    async fn store_files(&self, mail: &mut Mail) -> Result<Vec<NewAttachment>, ImportError> {
        let mut kept = Vec::with_capacity(mail.files.len());
        let mut left_out: Vec<Value> = Vec::new();
        for file in std::mem::take(&mut mail.files) {
            match self.media.put_bytes(&file.bytes).await {
                Ok(stored) => kept.push(NewAttachment {
                    kind: file.kind,
                    mime_type: file.mime_type,
                    file_name: file.file_name,
                    source: Source::Stored {
                        sha256: stored.sha256,
                        size: stored.size,
                    },
                }),
                Err(StoreError::TooLarge { limit }) => left_out.push(json!({
                    "file_name": file.file_name,
                    "size": file.bytes.len(),
                    "reason": format!("larger than MEDIA_MAX_BYTES ({limit})"),
                })),
                Err(StoreError::Io(e)) => return Err(ImportError::Media(e)),
            }
        }
        if !left_out.is_empty() {
            mail.metadata["files_left_out"] = Value::Array(left_out);
        }
        Ok(kept)
    }

    /// Records `mails` (each with its UID) and moves the position to `last_uid` (and, with
    /// `synced`, notes a reading that reached the mailbox's end), in one unit of work.
    pub async fn record(
        &self,
        lease: &Lease,
        mails: Vec<(u32, Incoming)>,
        last_uid: u32,
        synced: Option<DateTime<Utc>>,
    ) -> Result<usize, ImportError> {
        let incoming: Vec<Incoming> = mails.iter().map(|(_, m)| m.clone()).collect();
        match self.commit(lease, incoming, last_uid, synced).await {
            Err(ImportError::Database(e)) if !store::is_unavailable(&e) && mails.len() > 1 => {
                tracing::warn!(error = %e, mails = mails.len(), "a chunk of mails failed; recording them one by one");
            }
            other => return other,
        }
        let mut stored = 0;
        for (uid, mail) in mails {
            let id = mail.external_message_id.clone().unwrap_or_default();
            match self.commit(lease, vec![mail], uid, None).await {
                Ok(n) => stored += n,
                Err(ImportError::Database(e)) if !store::is_unavailable(&e) => {
                    tracing::error!(uid, %id, error = %e, "skipping a mail that cannot be stored");
                    self.commit(lease, Vec::new(), uid, None).await?;
                }
                Err(e) => return Err(e),
            }
        }
        self.commit(lease, Vec::new(), last_uid, synced).await?;
        Ok(stored)
    }

    async fn commit(
        &self,
        lease: &Lease,
        messages: Vec<Incoming>,
        last_uid: u32,
        synced: Option<DateTime<Utc>>,
    ) -> Result<usize, ImportError> {
        let mut uow = self.publisher.begin().await?;
        store::notify::take_writers_turn(uow.tx()).await?;
        let delivery = Delivery {
            messages,
            ..Delivery::new(ChannelKind::Gmail)
        };
        let recorded = inbox::record(&mut uow, &delivery, &self.autoreplies).await?;
        let at = now();
        let ours = mailboxes::advance(
            &mut uow.exec(),
            &lease.mailbox,
            &lease.owner,
            last_uid,
            synced,
            lease.until(at),
            at,
        )
        .await?;
        if !ours {
            // Dropped without commit: rolled back, the other instance's reading stands.
            return Err(ImportError::LeaseLost);
        }
        uow.commit().await?;
        let stored = recorded.iter().filter(|r| r.message.is_some()).count();
        Metrics::add(&self.metrics.email_mails_imported, stored as u64);
        Ok(stored)
    }
}
