-- The files a message carries (photos, voice notes, documents). A row is recorded with its
-- message; the file itself arrives later (fetched from the provider after the commit, or
-- written before it for mail), when `size` and `sha256` (its name under MEDIA_DIR) are set.
-- `source` says where it comes from: a WhatsApp media id, a URL from a webhook (fetched only
-- when that delivery's signature was checked: `fetchable`), or already stored. Messages keep
-- a count so that reading a page of messages without files costs no extra query.
-- SQLite twin of migrations/postgres/20261130000004_attachments.sql.
CREATE TABLE attachments (
    id         INTEGER PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages (id),
    kind       TEXT NOT NULL
        CHECK (kind IN ('image', 'video', 'audio', 'document', 'sticker', 'file')),
    mime_type  TEXT,
    file_name  TEXT,
    size       BIGINT,
    sha256     TEXT,
    source     TEXT NOT NULL CHECK (source IN ('whatsapp_media', 'url', 'stored')),
    source_ref TEXT,
    fetchable  INTEGER NOT NULL,
    state      TEXT NOT NULL
        CHECK (state IN ('pending', 'stored', 'unavailable', 'too_large', 'refused')),
    error      TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX attachments_message_idx ON attachments (message_id);
ALTER TABLE messages ADD COLUMN attachment_count INTEGER NOT NULL DEFAULT 0;
