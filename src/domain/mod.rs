//! The inbox's records and the small parsed types that guard their invariants.

mod phone;
mod time;

pub use phone::PhoneNumber;
pub use time::{now, parse_timestamp};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Longest identifier accepted (conversation keys, provider message ids). Real ones are far
/// shorter; the bound keeps every unique index entry within PostgreSQL's 2,704-byte limit.
pub const MAX_ID_CHARS: usize = 512;

/// A messaging channel (WhatsApp, Instagram, Gmail). Seeded by the migrations.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(example = json!({"id": 1, "name": "whatsapp", "display_name": "WhatsApp", "is_active": true, "created_at": "2025-01-01T00:00:00Z"}))]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
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
    /// `inbound` or `outbound`.
    #[schema(example = "inbound")]
    pub direction: String,
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
    #[schema(example = "received")]
    pub status: String,
    /// The provider's reason when a send failed.
    pub error: Option<String>,
    /// The channel's name: part of the `new_message` event, not of the REST body.
    #[serde(skip)]
    #[schema(ignore)]
    pub channel: String,
}

/// Which way a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Delivery state. Inbound messages are `received`; outbound ones move forward through
/// `pending → sent → delivered → read`, or end `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Received,
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "received" => Status::Received,
            "pending" => Status::Pending,
            "sent" => Status::Sent,
            "delivered" => Status::Delivered,
            "read" => Status::Read,
            "failed" => Status::Failed,
            _ => return None,
        })
    }
}

/// Sort order of message lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}
