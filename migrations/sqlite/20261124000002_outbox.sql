-- The outbox lives in the messages table: an outbound message with `next_attempt_at` set is
-- waiting to be sent (first try or retry). `claimed_until` is an instance's lease on it, so two
-- workers never send the same message, and one that died is replaced once the lease expires.
-- SQLite twin of migrations/postgres/20261124000002_outbox.sql.
ALTER TABLE messages ADD COLUMN send_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN next_attempt_at TEXT;
ALTER TABLE messages ADD COLUMN claimed_until TEXT;
CREATE INDEX messages_outbox_idx ON messages (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
