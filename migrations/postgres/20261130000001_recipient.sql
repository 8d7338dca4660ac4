-- The recipient of an outbound message, fixed when it is stored, so the first attempt and every
-- retry go to the same person. Messages already waiting take their conversation's key, which
-- is where they would have gone. Keep migrations/sqlite in step with this file.
ALTER TABLE messages ADD COLUMN recipient TEXT;
UPDATE messages SET recipient = (SELECT c.external_id FROM conversations c WHERE c.id = messages.conversation_id)
WHERE direction = 'outbound' AND next_attempt_at IS NOT NULL;
