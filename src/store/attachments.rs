//! The `attachments` table: the files messages carry, recorded with their message, and what is
//! known of each file (where it comes from, whether it is here yet).

use chrono::{DateTime, Utc};

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

/// Records `new` for `message_id` (and counts it on the message). `fetchable` false keeps a URL
/// that may not be fetched (an unsigned delivery's) from ever being fetched.
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
    ex.fetch_one(concat!(columns!(), " WHERE a.id = $1"), args![id.id])
        .await
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
