//! The `messages` table. An `external_message_id` is unique per channel, which is what makes a
//! provider's redelivery a no-op.

use chrono::{DateTime, Utc};

use super::{attachments, Exec, Filter};
use crate::args;
use crate::domain::{ChannelKind, Direction, Message, Order, Status};

macro_rules! columns {
    () => {
        "SELECT m.id, m.content, m.message_type, m.direction, m.sender_name, m.sender_identifier, \
         m.\"timestamp\", m.message_metadata, m.conversation_id, m.external_message_id, \
         m.is_read, m.created_at, m.status, m.error, m.channel_id AS channel, m.attachment_count"
    };
}

macro_rules! from {
    () => {
        " FROM messages m"
    };
}

macro_rules! select {
    () => {
        concat!(columns!(), from!())
    };
}

/// Filters of `GET /messages`. Every field combines with the others.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub conversation_id: Option<i64>,
    pub channel: Option<ChannelKind>,
    pub direction: Option<Direction>,
    pub before_id: Option<i64>,
    pub after_id: Option<i64>,
    pub order: Order,
    pub limit: i64,
    pub offset: i64,
}

impl ListQuery {
    /// The newest `limit` messages of a conversation: the page every client opens first.
    pub fn newest(conversation_id: i64, limit: i64) -> ListQuery {
        ListQuery {
            conversation_id: Some(conversation_id),
            channel: None,
            direction: None,
            before_id: None,
            after_id: None,
            order: Order::Desc,
            limit,
            offset: 0,
        }
    }

    /// The conversation whose newest page this is (as [`ListQuery::newest`] builds it).
    pub fn newest_page_of(&self) -> Option<i64> {
        let id = self.conversation_id?;
        let newest = self.is_whole_conversation() && self.order == Order::Desc && self.offset == 0;
        newest.then_some(id)
    }

    /// Whether the filtered set is one conversation's messages, all of them (whatever the
    /// order and page): its size is then the conversation's trigger-kept `message_count`.
    fn is_whole_conversation(&self) -> bool {
        self.conversation_id.is_some()
            && self.channel.is_none()
            && self.direction.is_none()
            && self.before_id.is_none()
            && self.after_id.is_none()
    }
}

/// One page in timestamp order (ties by id), and the size of the whole filtered set.
pub async fn list(ex: &mut Exec<'_>, q: &ListQuery) -> sqlx::Result<(Vec<Message>, i64)> {
    let mut filter = Filter::default();
    if let Some(id) = q.conversation_id {
        filter.and("m.conversation_id = ?", id);
    }
    if let Some(channel) = q.channel {
        filter.and("m.channel_id = ?", channel);
    }
    if let Some(direction) = q.direction {
        filter.and("m.direction = ?", direction);
    }
    if let Some(id) = q.before_id {
        filter.and("m.id < ?", id);
    }
    if let Some(id) = q.after_id {
        filter.and("m.id > ?", id);
    }
    let where_clause = filter.where_clause();
    let count = if q.is_whole_conversation() {
        // $1 is the conversation: its only filter.
        "SELECT COALESCE((SELECT c.message_count FROM conversations c WHERE c.id = $1), 0) AS n"
            .to_string()
    } else {
        format!("SELECT COUNT(*) AS n FROM messages m {where_clause}")
    };
    let filter_args = filter.args.len();
    let dir = match q.order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    };
    let limit = filter.placeholder(q.limit);
    let offset = filter.placeholder(q.offset);
    let sql = format!(
        "{}, ({count}) AS total_count {} {where_clause} \
         ORDER BY m.\"timestamp\" {dir}, m.id {dir} LIMIT {limit} OFFSET {offset}",
        columns!(),
        from!()
    );
    let (mut page, total) = super::page(ex, &sql, &count, filter.args, filter_args).await?;
    attachments::attach(ex, &mut page).await?;
    Ok((page, total))
}

pub async fn get(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<Option<Message>> {
    let found = ex
        .fetch_optional(concat!(select!(), " WHERE m.id = $1"), args![id])
        .await?;
    with_attachments(ex, found).await
}

/// One message with its files filled in.
async fn with_attachments(
    ex: &mut Exec<'_>,
    message: Option<Message>,
) -> sqlx::Result<Option<Message>> {
    let mut found: Vec<Message> = message.into_iter().collect();
    attachments::attach(ex, &mut found).await?;
    Ok(found.pop())
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: i64,
    pub channel: ChannelKind,
    pub content: String,
    pub message_type: String,
    pub direction: Direction,
    pub status: Status,
    pub sender_name: Option<String>,
    pub sender_identifier: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub message_metadata: Option<String>,
    pub external_message_id: Option<String>,
    pub is_read: bool,
    pub error: Option<String>,
    /// The inbound message this (assistant) reply answers; at most one reply per message.
    pub reply_to_message_id: Option<i64>,
    /// Outbound messages to send: who every attempt goes to, fixed when stored.
    pub recipient: Option<String>,
}

/// Inserts the message; its conversation's activity moves forward and its count and stamp
/// change in the same statement (the `messages_added` trigger). `None` when a unique key
/// already holds it: the channel has this `external_message_id` (a redelivery), or the message
/// it replies to already has its reply. Nothing is written then. The stored row comes back
/// from the insert itself.
pub async fn insert(
    ex: &mut Exec<'_>,
    new: &NewMessage,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Message>> {
    // One text for every single-row insert, built once.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{INSERT_COLUMNS} VALUES {} ON CONFLICT DO NOTHING {RETURNING}",
            row_placeholders(0)
        )
    });
    ex.fetch_optional(&SQL, row_args(new, now)).await
}

/// Inserts the rows of many new messages in one statement per [`ROWS_PER_STATEMENT`]; those a
/// unique key already holds (redeliveries, or a second copy in `news`) are skipped, as
/// [`insert`] does. Returns the stored rows in no particular order: callers match them by
/// `(channel, external_message_id)`.
pub async fn insert_many(
    ex: &mut Exec<'_>,
    news: &[NewMessage],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Message>> {
    let mut stored = Vec::with_capacity(news.len());
    for chunk in news.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len()).map(row_placeholders).collect();
        let sql = format!(
            "{INSERT_COLUMNS} VALUES {} ON CONFLICT DO NOTHING {RETURNING}",
            rows.join(", ")
        );
        let args = chunk.iter().flat_map(|new| row_args(new, now)).collect();
        stored.extend(ex.fetch_all::<Message>(&sql, args).await?);
    }
    Ok(stored)
}

/// The columns [`insert`] and [`insert_many`] write, in the order of [`row_args`].
const INSERT_COLUMNS: &str = "INSERT INTO messages (content, message_type, direction, \
     sender_name, sender_identifier, \"timestamp\", message_metadata, conversation_id, \
     channel_id, external_message_id, is_read, status, error, created_at, reply_to_message_id, \
     recipient)";
const COLUMNS_PER_ROW: usize = 16;
/// 16 parameters a row: 4,096 a statement, well under SQLite's limit of 32,766.
const ROWS_PER_STATEMENT: usize = 256;
const RETURNING: &str = "RETURNING id, content, message_type, direction, sender_name, \
     sender_identifier, \"timestamp\", message_metadata, conversation_id, external_message_id, \
     is_read, created_at, status, error, channel_id AS channel, attachment_count";

/// `($n, …)` for the `row`-th row of a multi-row insert.
fn row_placeholders(row: usize) -> String {
    let first = row * COLUMNS_PER_ROW + 1;
    let params: Vec<String> = (first..first + COLUMNS_PER_ROW)
        .map(|n| format!("${n}"))
        .collect();
    format!("({})", params.join(", "))
}

fn row_args(new: &NewMessage, now: DateTime<Utc>) -> Vec<crate::store::Arg> {
    args![
        new.content.clone(),
        new.message_type.clone(),
        new.direction,
        new.sender_name.clone(),
        new.sender_identifier.clone(),
        new.timestamp,
        new.message_metadata.clone(),
        new.conversation_id,
        new.channel,
        new.external_message_id.clone(),
        new.is_read,
        new.status,
        new.error.clone(),
        now,
        new.reply_to_message_id,
        new.recipient.clone()
    ]
}

/// Sets `is_read`; `None` when the message does not exist.
pub async fn set_read(ex: &mut Exec<'_>, id: i64, is_read: bool) -> sqlx::Result<Option<Message>> {
    let touched = ex
        .execute(
            "UPDATE messages SET is_read = $2 WHERE id = $1",
            args![id, is_read],
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    get(ex, id).await
}

/// The message with this provider id on the channel.
pub async fn by_external_id(
    ex: &mut Exec<'_>,
    channel: ChannelKind,
    external_id: &str,
) -> sqlx::Result<Option<Message>> {
    let found = ex
        .fetch_optional(
            concat!(
                select!(),
                " WHERE m.channel_id = $1 AND m.external_message_id = $2"
            ),
            args![channel, external_id],
        )
        .await?;
    with_attachments(ex, found).await
}

/// The reply stored for message `id`, if any.
pub async fn reply_to(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<Option<Message>> {
    let found = ex
        .fetch_optional(
            concat!(select!(), " WHERE m.reply_to_message_id = $1"),
            args![id],
        )
        .await?;
    with_attachments(ex, found).await
}

/// The conversation's latest inbound message (the last the customer wrote), by the order the
/// server recorded them.
pub async fn latest_inbound(
    ex: &mut Exec<'_>,
    conversation_id: i64,
) -> sqlx::Result<Option<Message>> {
    let found = ex
        .fetch_optional(
            concat!(
                select!(),
                " WHERE m.conversation_id = $1 AND m.direction = 'inbound' \
                 ORDER BY m.id DESC LIMIT 1"
            ),
            args![conversation_id],
        )
        .await?;
    with_attachments(ex, found).await
}

/// The last `limit` messages of a conversation stored before message `before_id`, oldest first,
/// in the order the server recorded them: ids, not timestamps, since a provider's clock (the
/// gateway's has a second's resolution) may put a reply before the message it answers.
pub async fn history(
    ex: &mut Exec<'_>,
    conversation_id: i64,
    before_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    let mut newest_first: Vec<Message> = ex
        .fetch_all(
            concat!(
                select!(),
                " WHERE m.conversation_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3"
            ),
            args![conversation_id, before_id, limit],
        )
        .await?;
    newest_first.reverse();
    attachments::attach(ex, &mut newest_first).await?;
    Ok(newest_first)
}
