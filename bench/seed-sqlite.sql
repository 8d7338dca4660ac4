-- The read scenario's inbox on SQLite: the same rows as bench/seed-postgres.sql (keep the two in
-- step). bench/run substitutes :conversations and :messages and runs it with Python's sqlite3
-- on a database the server has migrated. Timestamps are RFC 3339 text in UTC, as the server
-- writes them.
BEGIN;

WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :conversations)
INSERT INTO conversations (id, participant_name, participant_identifier, is_active, channel_id,
                           external_id, created_at, updated_at)
SELECT n, 'Customer ' || n, '+34 6' || printf('%08d', n), 1, 1, '346' || printf('%08d', n),
       '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00'
FROM g;

WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :messages),
s AS (SELECT n AS g, (n % :conversations) + 1 AS c, n % 2 = 0 AS inbound,
             1735689600 + n * 2 AS epoch
      FROM g)
INSERT INTO messages (content, message_type, direction, sender_name, sender_identifier,
                      "timestamp", message_metadata, conversation_id, channel_id,
                      external_message_id, is_read, status, created_at)
SELECT 'Message ' || g || ': hola, ¿tenéis mesa para cuatro el sábado por la noche?',
       'text',
       CASE WHEN inbound THEN 'inbound' ELSE 'outbound' END,
       CASE WHEN inbound THEN 'Customer ' || c END,
       CASE WHEN inbound THEN '346' || printf('%08d', c) END,
       strftime('%Y-%m-%dT%H:%M:%S+00:00', epoch, 'unixepoch'),
       CASE WHEN inbound THEN
         '{"from":"346' || printf('%08d', c) || '","id":"wamid.seed.' || g
         || '","timestamp":"' || epoch || '","type":"text","text":{"body":"Message ' || g || '"}}'
       END,
       c, 1, 'wamid.seed.' || g,
       NOT (inbound AND g % 3 = 0),
       CASE WHEN inbound THEN 'received' ELSE 'read' END,
       strftime('%Y-%m-%dT%H:%M:%S+00:00', epoch, 'unixepoch')
FROM s;

-- The messages_added trigger kept each conversation's count and activity row by row (SQLite
-- triggers cost little); activity is set again from the messages, as on PostgreSQL.
UPDATE conversations SET
    last_message_at = (SELECT max("timestamp") FROM messages m WHERE m.conversation_id = conversations.id),
    updated_at = (SELECT max("timestamp") FROM messages m WHERE m.conversation_id = conversations.id);

COMMIT;
ANALYZE;
