//! The inbox's records and the small parsed types that guard their invariants.

mod attachment;
mod change;
mod channel;
mod phone;
mod status;
mod time;

pub use attachment::{media_type, Attachment, AttachmentKind};
pub use change::Change;
pub use channel::ChannelKind;
pub use phone::PhoneNumber;
pub use status::{Direction, Status};
pub use time::{now, parse_timestamp};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Longest identifier accepted (conversation keys, provider message ids). Real ones are far
/// shorter; the bound keeps every unique index entry within PostgreSQL's 2,704-byte limit.
pub const MAX_ID_CHARS: usize = 512;

/// A messaging channel (WhatsApp, Instagram, Gmail). Seeded by the migrations.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "name": ChannelKind::Whatsapp.as_str(), "display_name": "WhatsApp", "is_active": true, "created_at": "2025-01-01T00:00:00Z", "configured": true}))]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    /// Whether this server has what it needs to send on the channel.
    #[sqlx(skip)]
    pub configured: bool,
}

/// One customer thread on one channel, unique per `(channel_id, external_id)`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Conversation {
    pub id: i64,
    pub participant_name: Option<String>,
    pub participant_identifier: String,
    pub is_active: bool,
    pub channel_id: i64,
    pub external_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
    /// Inbound messages of this conversation not yet read.
    pub unread_count: i64,
    /// Whether the assistant may answer here; an agent's reply turns it off.
    pub assistant_enabled: bool,
}

/// A stored message, inbound or outbound.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Message {
    pub id: i64,
    pub content: String,
    pub message_type: String,
    pub direction: Direction,
    pub sender_name: Option<String>,
    pub sender_identifier: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// A string holding JSON (for provider messages, the raw item as received).
    pub message_metadata: Option<String>,
    pub conversation_id: i64,
    pub external_message_id: Option<String>,
    pub is_read: bool,
    pub created_at: DateTime<Utc>,
    /// `received` (inbound); `pending`, `sent`, `delivered`, `read` or `failed` (outbound).
    pub status: Status,
    /// The provider's reason when a send failed.
    pub error: Option<String>,
    /// The files it carries; `[]` when none.
    #[sqlx(skip)]
    pub attachments: Vec<Attachment>,
    /// How many files it carries (so pages without any need no extra query).
    #[serde(skip)]
    #[schema(ignore)]
    pub attachment_count: i64,
    /// The message's channel (read from `channel_id`): part of the `new_message` event, not of
    /// the REST body.
    #[serde(skip)]
    #[schema(ignore)]
    pub channel: ChannelKind,
}

/// Sort order of message lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// Implements reading a type from a TEXT column on both backends through its `parse`.
macro_rules! text_column {
    ($t:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl sqlx::Type<sqlx::Sqlite> for $t {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <&str as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $t {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                <$t>::parse(text)
                    .ok_or_else(|| format!("unknown {}: {text:?}", stringify!($t)).into())
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $t {
            fn decode(
                value: sqlx::sqlite::SqliteValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Sqlite>>::decode(value)?;
                <$t>::parse(text)
                    .ok_or_else(|| format!("unknown {}: {text:?}", stringify!($t)).into())
            }
        }
    };
}
pub(crate) use text_column;

/// Who wrote an outbound message: an agent (through `POST /send`) or the assistant. Providers
/// treat them differently (Instagram's human-agent tag, email's `Auto-Submitted`, WhatsApp's
/// gateway carries only agents' replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Agent,
    Assistant,
}

impl Author {
    /// The `sender_name` an outbound message of this author is stored with.
    pub fn sender_name(self) -> &'static str {
        match self {
            Author::Agent => "agent",
            Author::Assistant => "assistant",
        }
    }

    /// The author of an outbound message stored with `sender_name`.
    pub fn of(sender_name: Option<&str>) -> Author {
        match sender_name {
            Some("assistant") => Author::Assistant,
            _ => Author::Agent,
        }
    }
}
