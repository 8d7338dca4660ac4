-- The read scenario's inbox, bulk-loaded in SQL: :conversations WhatsApp conversations and
-- :messages messages dealt round-robin over them (half inbound, a third of those unread), one
-- every two seconds from 2025-01-01. Run by bench/run with psql -v conversations=N -v messages=M
-- on a database the server has migrated. Keep bench/seed-sqlite.sql in step.
\set ON_ERROR_STOP on
BEGIN;

INSERT INTO conversations (id, participant_name, participant_identifier, is_active, channel_id,
                           external_id, created_at, updated_at)
SELECT g, 'Customer ' || g, '+34 6' || lpad(g::text, 8, '0'), TRUE, 1,
       '346' || lpad(g::text, 8, '0'),
       timestamptz '2025-01-01 00:00:00+00', timestamptz '2025-01-01 00:00:00+00'
FROM generate_series(1, :conversations) AS g;
SELECT setval(pg_get_serial_sequence('conversations', 'id'), :conversations);

-- The activity and counts the messages_added trigger keeps are set once at the end instead of
-- once a row.
ALTER TABLE messages DISABLE TRIGGER messages_added;

INSERT INTO messages (content, message_type, direction, sender_name, sender_identifier,
                      "timestamp", message_metadata, conversation_id, channel_id,
                      external_message_id, is_read, status, created_at)
SELECT 'Message ' || g || ': hola, ¿tenéis mesa para cuatro el sábado por la noche?',
       'text',
       CASE WHEN inbound THEN 'inbound' ELSE 'outbound' END,
       CASE WHEN inbound THEN 'Customer ' || c END,
       CASE WHEN inbound THEN '346' || lpad(c::text, 8, '0') END,
       t,
       CASE WHEN inbound THEN
         '{"from":"346' || lpad(c::text, 8, '0') || '","id":"wamid.seed.' || g
         || '","timestamp":"' || extract(epoch FROM t)::bigint
         || '","type":"text","text":{"body":"Message ' || g || '"}}'
       END,
       c, 1, 'wamid.seed.' || g,
       NOT (inbound AND g % 3 = 0),
       CASE WHEN inbound THEN 'received' ELSE 'read' END,
       t
FROM (SELECT g, (g % :conversations) + 1 AS c, g % 2 = 0 AS inbound,
             timestamptz '2025-01-01 00:00:00+00' + g * interval '2 seconds' AS t
      FROM generate_series(1, :messages) AS g) AS s;

UPDATE conversations c SET last_message_at = s.last, updated_at = s.last, message_count = s.n
FROM (SELECT conversation_id, max("timestamp") AS last, COUNT(*) AS n
      FROM messages GROUP BY conversation_id) AS s
WHERE s.conversation_id = c.id;
ALTER TABLE messages ENABLE TRIGGER messages_added;

COMMIT;
VACUUM ANALYZE;
