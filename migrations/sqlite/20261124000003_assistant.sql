-- SQLite twin of migrations/postgres/20261124000003_assistant.sql: whether the assistant may
-- answer in a conversation, and the unique link from a reply to the message it answers.
ALTER TABLE conversations ADD COLUMN assistant_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN reply_to_message_id BIGINT REFERENCES messages (id);
CREATE UNIQUE INDEX messages_reply_to_key ON messages (reply_to_message_id);
