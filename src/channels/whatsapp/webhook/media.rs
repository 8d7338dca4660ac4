//! The file a media message carries (image, video, audio or voice note, document, sticker):
//! Meta sends only its media id, which the Graph API resolves to a short-lived download URL.

use serde_json::Value;

use super::Media;
use crate::channels::meta::json::{id, text};
use crate::domain::{media_type, AttachmentKind};

/// The media of a message of type `kind`, when it is a media message with a media id.
pub(super) fn media(item: &Value, kind: &str) -> Option<Media> {
    let kind_of_file = match kind {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        // Voice notes are audio with `voice: true`.
        "audio" => AttachmentKind::Audio,
        "document" => AttachmentKind::Document,
        "sticker" => AttachmentKind::Sticker,
        _ => return None,
    };
    let payload = item.get(kind)?;
    Some(Media {
        kind: kind_of_file,
        media_id: id(payload.get("id"))?,
        mime_type: text(payload, "mime_type").and_then(media_type),
        file_name: text(payload, "filename").map(str::to_owned),
    })
}
