//! The files a message carries, as clients see them.

use serde::{Deserialize, Serialize};

/// What kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    Image,
    Video,
    /// Audio and voice notes.
    Audio,
    Document,
    Sticker,
    /// Anything else (an Instagram share, a mail's unknown part).
    File,
}

impl AttachmentKind {
    pub const ALL: [AttachmentKind; 6] = [
        AttachmentKind::Image,
        AttachmentKind::Video,
        AttachmentKind::Audio,
        AttachmentKind::Document,
        AttachmentKind::Sticker,
        AttachmentKind::File,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::Video => "video",
            AttachmentKind::Audio => "audio",
            AttachmentKind::Document => "document",
            AttachmentKind::Sticker => "sticker",
            AttachmentKind::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<AttachmentKind> {
        AttachmentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

super::text_column!(AttachmentKind);

/// A file of a message: `url` serves it from this server (`GET /api/v1/attachments/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(example = json!({"id": 7, "message_id": 42, "kind": "image", "mime_type": "image/jpeg", "file_name": null, "size": 48213, "url": "/api/v1/attachments/7"}))]
pub struct Attachment {
    pub id: i64,
    pub message_id: i64,
    pub kind: AttachmentKind,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    /// Bytes; null until the file is here.
    pub size: Option<i64>,
    pub url: String,
}
