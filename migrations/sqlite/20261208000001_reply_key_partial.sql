-- SQLite twin of migrations/postgres/20261208000001_reply_key_partial.sql: the unique link from
-- a reply to the message it answers indexes replies alone.
DROP INDEX messages_reply_to_key;
CREATE UNIQUE INDEX messages_reply_to_key ON messages (reply_to_message_id)
    WHERE reply_to_message_id IS NOT NULL;
