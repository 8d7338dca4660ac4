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

/// Longest media type kept; real ones are far shorter.
const MAX_MEDIA_TYPE_CHARS: usize = 255;

/// A media type as a provider wrote it (`image/jpeg`, `audio/ogg; codecs=opus`), when it is
/// one: `type/subtype` of token characters (lowercased), with its parameters when they are
/// plain header text. Anything else is `None`, and the file's type is learnt when it is fetched
/// (a type is served as `Content-Type`, so it must never carry what a header cannot).
pub fn media_type(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_MEDIA_TYPE_CHARS {
        return None;
    }
    let (essence, parameters) = match raw.split_once(';') {
        Some((essence, parameters)) => (essence.trim(), Some(parameters.trim())),
        None => (raw, None),
    };
    let (kind, subtype) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(kind) || !token(subtype) {
        return None;
    }
    let essence = essence.to_ascii_lowercase();
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    };
    Some(match parameters {
        Some(p) if !p.is_empty() && plain(p) => format!("{essence}; {p}"),
        _ => essence,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_kept_only_when_they_are_media_types() {
        assert_eq!(media_type(" image/JPEG ").as_deref(), Some("image/jpeg"));
        assert_eq!(
            media_type("audio/ogg; codecs=opus").as_deref(),
            Some("audio/ogg; codecs=opus")
        );
        assert_eq!(
            media_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
                .as_deref(),
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
        assert_eq!(
            media_type("text/plain;\u{7f}x").as_deref(),
            Some("text/plain")
        );
        for bad in [
            "",
            "jpeg",
            "image\\/jpeg",
            "image/",
            "/jpeg",
            "image/jp eg",
            "imágen/jpeg",
            "a/b\r\nX-Evil: 1",
        ] {
            assert_eq!(media_type(bad), None, "{bad:?}");
        }
    }
}
