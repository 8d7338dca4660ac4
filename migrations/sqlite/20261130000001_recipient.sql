-- SQLite twin of migrations/postgres/20261130000001_recipient.sql: the recipient of an
-- outbound message, fixed when it is stored.
ALTER TABLE messages ADD COLUMN recipient TEXT;
UPDATE messages SET recipient = (SELECT c.external_id FROM conversations c WHERE c.id = messages.conversation_id)
WHERE direction = 'outbound' AND next_attempt_at IS NOT NULL;
