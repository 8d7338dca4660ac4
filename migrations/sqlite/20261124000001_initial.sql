-- SQLite twin of migrations/postgres. The seed schema (channels, conversations, messages) with the contract's additions:
-- conversations.last_message_at, messages.status/error/channel_id, and the uniqueness rules
-- that make redelivery harmless. Timestamps are RFC 3339 text in UTC, which sorts in time order.

CREATE TABLE channels (
    id           BIGINT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    is_active    INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL
);

INSERT INTO channels (id, name, display_name, is_active, created_at) VALUES
    (1, 'whatsapp', 'WhatsApp', 1, '2025-01-01T00:00:00Z'),
    (2, 'instagram', 'Instagram', 1, '2025-01-01T00:00:00Z'),
    (3, 'gmail', 'Gmail', 1, '2025-01-01T00:00:00Z');

CREATE TABLE conversations (
    id                     INTEGER PRIMARY KEY,
    participant_name       TEXT,
    participant_identifier TEXT NOT NULL,
    is_active              INTEGER NOT NULL DEFAULT 1,
    channel_id             BIGINT NOT NULL REFERENCES channels (id),
    external_id            TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    last_message_at        TEXT,
    CONSTRAINT conversations_channel_external_key UNIQUE (channel_id, external_id)
);

-- "Newest activity first": activity is the last message, or the creation of an empty one.
CREATE INDEX conversations_activity_idx
    ON conversations ((COALESCE(last_message_at, created_at)) DESC, id DESC);
CREATE INDEX conversations_channel_activity_idx
    ON conversations (channel_id, (COALESCE(last_message_at, created_at)) DESC, id DESC);

CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    content             TEXT NOT NULL,
    message_type        TEXT NOT NULL,
    direction           TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sender_name         TEXT,
    sender_identifier   TEXT,
    "timestamp"         TEXT NOT NULL,
    message_metadata    TEXT,
    conversation_id     BIGINT NOT NULL REFERENCES conversations (id),
    channel_id          BIGINT NOT NULL REFERENCES channels (id),
    external_message_id TEXT,
    is_read             INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL
        CHECK (status IN ('received', 'pending', 'sent', 'delivered', 'read', 'failed')),
    error               TEXT,
    created_at          TEXT NOT NULL,
    -- NULLs are distinct, so messages without a provider id never collide.
    CONSTRAINT messages_channel_external_key UNIQUE (channel_id, external_message_id)
);

CREATE INDEX messages_conversation_order_idx ON messages (conversation_id, "timestamp", id);
CREATE INDEX messages_order_idx ON messages ("timestamp", id);
CREATE INDEX messages_channel_order_idx ON messages (channel_id, "timestamp", id);
CREATE INDEX messages_unread_idx ON messages (conversation_id)
    WHERE direction = 'inbound' AND NOT is_read;
