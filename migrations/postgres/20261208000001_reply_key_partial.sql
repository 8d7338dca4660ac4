-- The unique link from a reply to the message it answers holds for replies only. As a plain
-- unique index it also held an entry for every other message (NULL), one more index write per
-- stored message for nothing: now it indexes replies alone. `ON CONFLICT DO NOTHING` and the
-- look-up by reply_to_message_id (`= $1`, never NULL) use it as before. Keep migrations/sqlite
-- in step.
DROP INDEX messages_reply_to_key;
CREATE UNIQUE INDEX messages_reply_to_key ON messages (reply_to_message_id)
    WHERE reply_to_message_id IS NOT NULL;
