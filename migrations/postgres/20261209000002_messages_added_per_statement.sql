-- A stored message moves its conversation's activity forward and counts it, as before, but once
-- per INSERT statement instead of once per row: the batch recorder inserts a group commit's
-- messages in one statement, and a row trigger ran its UPDATE (an executor started and ended)
-- for each of them. The transition table holds only the rows actually inserted (ON CONFLICT DO
-- NOTHING leaves redeliveries out). SQLite has row triggers only and keeps its own.
--
-- The UPDATE's plan is kept for the session, made for the first statement's row count. Joined
-- to the transition table alone, a large first batch against a small table planned it as a
-- scan of every conversation, which would then run for every message as the table grows. So
-- the conversations are reached only through their primary key (`id = ANY`, with sequential
-- and bitmap scans off inside the function): one look-up per conversation of the statement,
-- whatever the sizes.
DROP TRIGGER messages_added ON messages;
DROP FUNCTION message_added();

CREATE FUNCTION messages_added() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE
    ids BIGINT[];
BEGIN
    SELECT array_agg(DISTINCT conversation_id) INTO ids FROM added;
    UPDATE conversations c SET
        last_message_at = CASE WHEN c.last_message_at IS NULL OR c.last_message_at < a.newest
                               THEN a.newest ELSE c.last_message_at END,
        updated_at = a.created_at,
        message_count = c.message_count + a.n
    FROM (SELECT conversation_id, MAX("timestamp") AS newest, MAX(created_at) AS created_at,
                 COUNT(*) AS n
          FROM added GROUP BY conversation_id) AS a
    WHERE c.id = ANY (ids) AND c.id = a.conversation_id;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_added AFTER INSERT ON messages REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION messages_added();
