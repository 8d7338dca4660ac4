-- The assistant: whether it may answer in a conversation (an agent's reply turns it off), and
-- the link from a reply to the inbound message it answers. The link is unique, so a retried or
-- concurrent gateway request can never store a second reply. Keep migrations/sqlite in step.
ALTER TABLE conversations ADD COLUMN assistant_enabled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE messages ADD COLUMN reply_to_message_id BIGINT REFERENCES messages (id);
CREATE UNIQUE INDEX messages_reply_to_key ON messages (reply_to_message_id);
