//! The `conversations` table. `unread_count` is computed from a partial index on unread
//! inbound messages, so it can never drift from the messages themselves; the list's total comes
//! from `conversation_counts`, which triggers keep in step with the table.

use chrono::{DateTime, Utc};

use super::{notify, Backend, Exec, Filter};
use crate::args;
use crate::domain::{ChannelKind, Conversation};

/// A conversation's own columns, named once for every query that reads whole rows.
macro_rules! row_columns {
    () => {
        "SELECT c.id, c.participant_name, c.participant_identifier, c.is_active, c.channel_id, \
         c.external_id, c.created_at, c.updated_at, c.last_message_at, c.assistant_enabled, "
    };
}

macro_rules! columns {
    () => {
        concat!(
            row_columns!(),
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id \
             AND m.direction = 'inbound' AND NOT m.is_read) AS unread_count"
        )
    };
}

macro_rules! select {
    () => {
        concat!(columns!(), " FROM conversations c")
    };
}

/// The columns without `unread_count` (read as 0), which counts the conversation's unread
/// messages: for look-ups whose rows are never shown (see [`find_many`]).
macro_rules! columns_without_unread {
    () => {
        concat!(row_columns!(), "CAST(0 AS BIGINT) AS unread_count")
    };
}

macro_rules! select_without_unread {
    () => {
        concat!(columns_without_unread!(), " FROM conversations c")
    };
}

/// Filters of `GET /conversations`.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub channel_id: Option<i64>,
    pub is_active: Option<bool>,
    pub limit: i64,
    pub offset: i64,
}

/// One page, newest activity first, and the size of the whole filtered set.
pub async fn list(ex: &mut Exec<'_>, q: &ListQuery) -> sqlx::Result<(Vec<Conversation>, i64)> {
    let mut filter = Filter::default();
    if let Some(channel_id) = q.channel_id {
        filter.and("c.channel_id = ?", channel_id);
    }
    if let Some(active) = q.is_active {
        filter.and("c.is_active = ?", active);
    }
    let where_clause = filter.where_clause();
    // The filters name only channel_id and is_active, which key the trigger-kept counts.
    let count = format!(
        "SELECT CAST(COALESCE(SUM(c.n), 0) AS BIGINT) AS n \
         FROM conversation_counts c {where_clause}"
    );
    let filter_args = filter.args.len();
    let limit = filter.placeholder(q.limit);
    let offset = filter.placeholder(q.offset);
    let sql = format!(
        "{}, ({count}) AS total_count FROM conversations c {where_clause} \
         ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id DESC \
         LIMIT {limit} OFFSET {offset}",
        columns!()
    );
    super::page(ex, &sql, &count, filter.args, filter_args).await
}

/// The conversation's stamp ([`crate::pages`]): it changes in the transaction of every change
/// to what the lists show of the conversation or its messages. `None`: no such conversation.
pub async fn stamp(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<Option<i64>> {
    let found: Option<super::Count> = ex
        .fetch_optional(
            "SELECT stamp AS n FROM conversations WHERE id = $1",
            args![id],
        )
        .await?;
    Ok(found.map(|s| s.n))
}

/// The stamp of the conversations list, which any change to any conversation raises: on
/// PostgreSQL the last value drawn from the stamps' sequence (an index on `stamp` for MAX would
/// make every update of a conversation a non-HOT one), on SQLite the largest stamp.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Stamp {
    pub stamp: i64,
    /// Whether no transaction was in progress after it was read, so that every stamp up to it
    /// belongs to a transaction that has ended: only then may a page read afterwards be
    /// labelled with it. PostgreSQL draws stamps from a sequence, out of commit order (a
    /// transaction may commit stamp 7 after another committed 8); each writer takes its
    /// transaction id before its stamp, so an empty snapshot (`xmin = xmax`) taken after the
    /// read leaves none behind. SQLite writes one transaction at a time, in stamp order:
    /// always settled.
    pub settled: bool,
}

pub async fn list_stamp(ex: &mut Exec<'_>) -> sqlx::Result<Stamp> {
    let sql = match ex.backend() {
        // The last stamp drawn, and the snapshot judged after reading it (see the migration
        // `list_stamp_from_sequence`).
        Backend::Postgres => "SELECT stamp, settled FROM conversations_list_stamp()",
        Backend::Sqlite => {
            "SELECT COALESCE(MAX(stamp), 0) AS stamp, TRUE AS settled FROM conversations"
        }
    };
    ex.fetch_one(sql, args![]).await
}

/// The stamps of conversations `ids` (those that exist) and of the conversations list, in one
/// query: what a batch of page checks needs.
pub struct ReadStamps {
    pub conversations: Vec<(i64, i64)>,
    pub list: Stamp,
}

/// One row of [`stamps`]: a conversation's, or the list's (`id` NULL).
#[derive(sqlx::FromRow)]
struct StampRow {
    id: Option<i64>,
    stamp: i64,
    settled: bool,
}

pub async fn stamps(ex: &mut Exec<'_>, ids: &[i64]) -> sqlx::Result<ReadStamps> {
    // The ids travel as one text argument, so every batch size shares one SQL text: an array
    // literal for PostgreSQL (`= ANY` reads the primary key), a JSON array for SQLite.
    let listed = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let (sql, ids) = match ex.backend() {
        Backend::Postgres => (
            "SELECT c.id, c.stamp, TRUE AS settled FROM conversations c \
             WHERE c.id = ANY(CAST($1 AS BIGINT[])) \
             UNION ALL \
             SELECT NULL, l.stamp, l.settled FROM conversations_list_stamp() AS l",
            format!("{{{listed}}}"),
        ),
        Backend::Sqlite => (
            "SELECT c.id, c.stamp, TRUE AS settled FROM conversations c \
             WHERE c.id IN (SELECT j.value FROM json_each($1) AS j) \
             UNION ALL \
             SELECT NULL, COALESCE(MAX(stamp), 0), TRUE FROM conversations",
            format!("[{listed}]"),
        ),
    };
    let rows: Vec<StampRow> = ex.fetch_all(sql, args![ids]).await?;
    let mut read = ReadStamps {
        conversations: Vec::with_capacity(rows.len()),
        list: Stamp {
            stamp: 0,
            settled: false,
        },
    };
    for row in rows {
        match row.id {
            Some(id) => read.conversations.push((id, row.stamp)),
            None => {
                read.list = Stamp {
                    stamp: row.stamp,
                    settled: row.settled,
                }
            }
        }
    }
    Ok(read)
}

pub async fn get(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<Option<Conversation>> {
    ex.fetch_optional(concat!(select!(), " WHERE c.id = $1"), args![id])
        .await
}

pub async fn find(
    ex: &mut Exec<'_>,
    channel: ChannelKind,
    external_id: &str,
) -> sqlx::Result<Option<Conversation>> {
    ex.fetch_optional(
        concat!(select!(), " WHERE c.channel_id = $1 AND c.external_id = $2"),
        args![channel, external_id],
    )
    .await
}

/// The conversations of these `external_ids` on the channel that exist (in no particular
/// order): one query for a whole batch instead of one [`find`] per message. Their
/// `unread_count` is not counted (0): counting visits every unread message of each
/// conversation, and the batch recorder never shows these rows (a conversation it announces,
/// new or renamed, comes back whole from its insert or update).
///
/// The ids travel as one JSON array, so every batch size shares one SQL text. On PostgreSQL
/// each id is looked up on its own through the `(channel_id, external_id)` key (`LATERAL …
/// LIMIT 1`): a list of ids in `IN (…)` was read with a bitmap scan, and bitmap scans never
/// mark the index entries of dead row versions. Every stored message updates its
/// conversation, so under ingest those entries piled up and each look-up waded through them
/// (7% of PostgreSQL's time); a plain index scan marks them as it passes and skips them after.
pub async fn find_many(
    ex: &mut Exec<'_>,
    channel: ChannelKind,
    external_ids: &[&str],
) -> sqlx::Result<Vec<Conversation>> {
    if external_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(external_ids).unwrap_or_else(|_| "[]".into());
    let sql = match ex.backend() {
        Backend::Postgres => concat!(
            columns_without_unread!(),
            " FROM json_array_elements_text(CAST($2 AS JSON)) AS wanted(external_id) \
             CROSS JOIN LATERAL (SELECT * FROM conversations k WHERE k.channel_id = $1 \
             AND k.external_id = wanted.external_id LIMIT 1) AS c",
        ),
        // As a subquery, each id is searched in the key; as a join, SQLite scanned the channel's
        // conversations and the array for each of them.
        Backend::Sqlite => concat!(
            select_without_unread!(),
            " WHERE c.channel_id = $1 AND c.external_id IN (SELECT value FROM json_each($2))",
        ),
    };
    ex.fetch_all(sql, args![channel, ids]).await
}

/// A conversation to create.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub channel: ChannelKind,
    pub external_id: String,
    pub participant_identifier: String,
    pub participant_name: Option<String>,
}

/// Inserts the conversation unless `(channel_id, external_id)` exists; `None` then. The new row
/// comes back from the insert itself (a new conversation has nothing unread). Inside a
/// transaction, it first waits for the writers' turn ([`notify::take_turn_to_create`]), so call
/// it before locking other rows.
pub async fn create(
    ex: &mut Exec<'_>,
    new: &NewConversation,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Conversation>> {
    notify::take_turn_to_create(ex).await?;
    ex.fetch_optional(
        "INSERT INTO conversations (participant_name, participant_identifier, is_active, \
         channel_id, external_id, created_at, updated_at) \
         VALUES ($1, $2, TRUE, $3, $4, $5, $5) \
         ON CONFLICT (channel_id, external_id) DO NOTHING \
         RETURNING id, participant_name, participant_identifier, is_active, channel_id, \
         external_id, created_at, updated_at, last_message_at, assistant_enabled, \
         CAST(0 AS BIGINT) AS unread_count",
        args![
            new.participant_name.clone(),
            new.participant_identifier.clone(),
            new.channel,
            new.external_id.clone(),
            now
        ],
    )
    .await
}

/// Fields of a conversation an agent may change; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub participant_name: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub assistant_enabled: Option<bool>,
}

/// Applies `changes`; `None` when the conversation does not exist.
pub async fn update(
    ex: &mut Exec<'_>,
    id: i64,
    changes: &Changes,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Conversation>> {
    // `CASE WHEN $n` keeps one SQL text whatever subset of fields the client sent.
    let touched = ex
        .execute(
            "UPDATE conversations SET \
             participant_name = CASE WHEN $2 THEN $3 ELSE participant_name END, \
             is_active = COALESCE($4, is_active), \
             assistant_enabled = COALESCE($6, assistant_enabled), \
             updated_at = $5 \
             WHERE id = $1",
            args![
                id,
                changes.participant_name.is_some(),
                changes.participant_name.clone().flatten(),
                changes.is_active,
                now,
                changes.assistant_enabled
            ],
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    get(ex, id).await
}

/// Marks every inbound message of the conversation read.
pub async fn mark_read(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<u64> {
    ex.execute(
        "UPDATE messages SET is_read = TRUE WHERE conversation_id = $1 AND NOT is_read",
        args![id],
    )
    .await
}

/// What [`upsert`] did.
pub struct Upserted {
    pub conversation: Conversation,
    pub created: bool,
    /// The participant's name changed (a customer renamed themselves).
    pub renamed: bool,
}

/// Finds the conversation of `(channel_id, external_id)` or creates it, race-free: concurrent
/// callers all end with the same row, and exactly one of them sees `created`. A known `name`
/// different from the stored one replaces it. A known conversation (the usual case) costs one
/// query.
pub async fn upsert(
    ex: &mut Exec<'_>,
    new: &NewConversation,
    now: DateTime<Utc>,
) -> sqlx::Result<Upserted> {
    let known = find(ex, new.channel, &new.external_id).await?;
    upsert_known(ex, new, known, now).await
}

/// [`upsert`] when the caller has already looked the conversation up (`known`, `None` when it
/// was not there): what a batch does after [`find_many`].
pub async fn upsert_known(
    ex: &mut Exec<'_>,
    new: &NewConversation,
    known: Option<Conversation>,
    now: DateTime<Utc>,
) -> sqlx::Result<Upserted> {
    let existing = match known {
        Some(existing) => existing,
        None => {
            if let Some(conversation) = create(ex, new, now).await? {
                return Ok(Upserted {
                    conversation,
                    created: true,
                    renamed: false,
                });
            }
            // Created meanwhile by a concurrent caller, whose insert ours waited for.
            find(ex, new.channel, &new.external_id)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?
        }
    };
    match &new.participant_name {
        Some(name) if existing.participant_name.as_deref() != Some(name.as_str()) => {
            let changes = Changes {
                participant_name: Some(Some(name.clone())),
                ..Changes::default()
            };
            let conversation = update(ex, existing.id, &changes, now)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            Ok(Upserted {
                conversation,
                created: false,
                renamed: true,
            })
        }
        _ => Ok(Upserted {
            conversation: existing,
            created: false,
            renamed: false,
        }),
    }
}

/// Names a conversation that has no name yet (a name an agent gave meanwhile wins); `Some` with
/// the conversation only when that named it.
pub async fn name_if_unnamed(
    ex: &mut Exec<'_>,
    id: i64,
    name: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Conversation>> {
    let touched = ex
        .execute(
            "UPDATE conversations SET participant_name = $2, updated_at = $3 \
             WHERE id = $1 AND participant_name IS NULL",
            args![id, name, now],
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    get(ex, id).await
}

/// Turns the assistant on or off; `Some` with the conversation only when that changed it.
pub async fn set_assistant(
    ex: &mut Exec<'_>,
    id: i64,
    enabled: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Conversation>> {
    let touched = ex
        .execute(
            "UPDATE conversations SET assistant_enabled = $2, updated_at = $3 \
             WHERE id = $1 AND assistant_enabled <> $2",
            args![id, enabled, now],
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    get(ex, id).await
}
