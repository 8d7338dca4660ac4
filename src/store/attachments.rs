//! The `attachments` table: the files messages carry, recorded with their message, and what is
//! known of each file (where it comes from, whether it is here yet). A file to fetch gets its
//! `attachment_fetch` job in the transaction that records it.

use chrono::{DateTime, Utc};

use super::jobs::{self, JobKind};
use super::Exec;
use crate::args;
use crate::domain::{Attachment, AttachmentKind, Message};

/// Where a file comes from, and what its row records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A WhatsApp media id, resolved through the Graph API with the access token.
    WhatsappMedia { media_id: String },
    /// A URL from a webhook body: fetched only when that delivery's signature was checked.
    Url { url: String },
    /// Already in the media store (mail: written before the message is recorded).
    Stored { sha256: String, size: i64 },
}

/// A file to record with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub kind: AttachmentKind,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub source: Source,
}

macro_rules! columns {
    () => {
        "SELECT a.id, a.message_id, a.kind, a.mime_type, a.file_name, a.size, \
         '/api/v1/attachments/' || a.id AS url FROM attachments a"
    };
}

/// Whether a file is here, still to fetch, or will never be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Not fetched yet (or a fetch failed for now).
    Pending,
    /// In the media store under its `sha256`.
    Stored,
    /// The provider no longer has it.
    Unavailable,
    /// Larger than `MEDIA_MAX_BYTES`: not kept.
    TooLarge,
    /// Never fetched: its URL came in an unsigned delivery, or is not https.
    Refused,
}

impl FileState {
    pub const ALL: [FileState; 5] = [
        FileState::Pending,
        FileState::Stored,
        FileState::Unavailable,
        FileState::TooLarge,
        FileState::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Pending => "pending",
            FileState::Stored => "stored",
            FileState::Unavailable => "unavailable",
            FileState::TooLarge => "too_large",
            FileState::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<FileState> {
        FileState::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

crate::domain::text_column!(FileState);

impl From<FileState> for super::Arg {
    fn from(state: FileState) -> Self {
        super::Arg::Text(Some(state.as_str().to_owned()))
    }
}

/// Everything the server knows about one file: what serving or fetching it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct File {
    pub id: i64,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    /// `whatsapp_media`, `url` or `stored`.
    pub source: String,
    /// The media id or the URL.
    pub source_ref: Option<String>,
    pub fetchable: bool,
    pub state: FileState,
    /// Why it is not here (the last failure).
    pub error: Option<String>,
}

impl File {
    /// Where to fetch it from; `None` for a file that was stored with its message.
    pub fn origin(&self) -> Option<Source> {
        let reference = self.source_ref.clone()?;
        match self.source.as_str() {
            "whatsapp_media" => Some(Source::WhatsappMedia {
                media_id: reference,
            }),
            "url" => Some(Source::Url { url: reference }),
            _ => None,
        }
    }
}

/// Records `new` for `message_id` (and counts it on the message), with its fetch job when it
/// is to be fetched. `fetchable` false keeps a URL that may not be fetched (an unsigned
/// delivery's) from ever being fetched.
pub async fn insert(
    ex: &mut Exec<'_>,
    message_id: i64,
    new: &NewAttachment,
    fetchable: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<Attachment> {
    let (source, reference, size, sha256, state) = match &new.source {
        Source::WhatsappMedia { media_id } => (
            "whatsapp_media",
            Some(media_id.clone()),
            None,
            None,
            "pending",
        ),
        Source::Url { url } => ("url", Some(url.clone()), None, None, "pending"),
        Source::Stored { sha256, size } => {
            ("stored", None, Some(*size), Some(sha256.clone()), "stored")
        }
    };
    let state = if fetchable || state == "stored" {
        state
    } else {
        "refused"
    };
    let id: super::Id = ex
        .fetch_one(
            "INSERT INTO attachments (message_id, kind, mime_type, file_name, size, sha256, \
             source, source_ref, fetchable, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            args![
                message_id,
                new.kind,
                new.mime_type.clone(),
                new.file_name.clone(),
                size,
                sha256,
                source,
                reference,
                fetchable,
                state,
                now
            ],
        )
        .await?;
    ex.execute(
        "UPDATE messages SET attachment_count = attachment_count + 1 WHERE id = $1",
        args![message_id],
    )
    .await?;
    if state == "pending" {
        jobs::enqueue(ex, JobKind::AttachmentFetch, id.id, now).await?;
    }
    ex.fetch_one(concat!(columns!(), " WHERE a.id = $1"), args![id.id])
        .await
}

/// The file of attachment `id`.
pub async fn file(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<Option<File>> {
    ex.fetch_optional(
        "SELECT id, mime_type, file_name, size, sha256, source, source_ref, fetchable, state, \
         error FROM attachments WHERE id = $1",
        args![id],
    )
    .await
}

/// The file is here: its content name and size, and its media type when none was known.
pub async fn stored(
    ex: &mut Exec<'_>,
    id: i64,
    sha256: &str,
    size: i64,
    mime_type: Option<String>,
) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE attachments SET state = $2, sha256 = $3, size = $4, \
         mime_type = COALESCE(mime_type, $5), error = NULL WHERE id = $1",
        args![id, FileState::Stored, sha256, size, mime_type],
    )
    .await
    .map(|_| ())
}

/// The file will never be here (`unavailable`, `too_large`, `refused`), for `reason`; a file
/// already stored stays stored.
pub async fn given_up(
    ex: &mut Exec<'_>,
    id: i64,
    state: FileState,
    reason: &str,
) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE attachments SET state = $2, error = $3 WHERE id = $1 AND state <> 'stored'",
        args![id, state, reason],
    )
    .await
    .map(|_| ())
}

/// A fetch failed for now: the file stays pending, with the reason kept.
pub async fn failed_for_now(ex: &mut Exec<'_>, id: i64, reason: &str) -> sqlx::Result<()> {
    ex.execute(
        "UPDATE attachments SET error = $2 WHERE id = $1 AND state = 'pending'",
        args![id, reason],
    )
    .await
    .map(|_| ())
}

/// Fills in the files of `messages` (one query, and none when no message has any).
pub async fn attach(ex: &mut Exec<'_>, messages: &mut [Message]) -> sqlx::Result<()> {
    let ids: Vec<i64> = messages
        .iter()
        .filter(|m| m.attachment_count > 0)
        .map(|m| m.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "{} WHERE a.message_id IN ({}) ORDER BY a.id",
        columns!(),
        placeholders.join(", ")
    );
    let args = ids.into_iter().map(super::Arg::from).collect();
    let found: Vec<Attachment> = ex.fetch_all(&sql, args).await?;
    for message in messages.iter_mut() {
        message.attachments = found
            .iter()
            .filter(|a| a.message_id == message.id)
            .cloned()
            .collect();
    }
    Ok(())
}
