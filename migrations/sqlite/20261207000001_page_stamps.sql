-- SQLite twin of migrations/postgres/20261207000001_page_stamps.sql: each conversation's
-- `stamp`, which changes in the transaction of any change to what the lists show of it, and its
-- `message_count`, both kept by triggers. SQLite has one writer at a time, so a stamp is simply
-- one more than the largest (read through the index), and stamps are drawn in commit order.
-- Triggers that draw a stamp themselves do it in their own UPDATE, so the conversation is
-- written once.

ALTER TABLE conversations ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;

UPDATE conversations SET
    message_count = (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = conversations.id),
    stamp = id;
CREATE INDEX conversations_stamp_idx ON conversations (stamp);

CREATE TRIGGER conversations_stamp_insert AFTER INSERT ON conversations
BEGIN
    UPDATE conversations SET stamp = (SELECT MAX(stamp) FROM conversations) + 1 WHERE id = NEW.id;
END;

-- WHEN: an update that drew its own stamp (the triggers here) is not stamped twice.
CREATE TRIGGER conversations_stamp_update AFTER UPDATE ON conversations
WHEN NEW.stamp IS OLD.stamp
BEGIN
    UPDATE conversations SET stamp = (SELECT MAX(stamp) FROM conversations) + 1 WHERE id = NEW.id;
END;

CREATE TRIGGER messages_added AFTER INSERT ON messages
BEGIN
    UPDATE conversations SET
        last_message_at = CASE WHEN last_message_at IS NULL OR last_message_at < NEW."timestamp"
                               THEN NEW."timestamp" ELSE last_message_at END,
        updated_at = NEW.created_at,
        message_count = message_count + 1,
        stamp = (SELECT MAX(stamp) FROM conversations) + 1
    WHERE id = NEW.conversation_id;
END;

CREATE TRIGGER messages_removed AFTER DELETE ON messages
BEGIN
    UPDATE conversations SET
        message_count = message_count - 1,
        stamp = (SELECT MAX(stamp) FROM conversations) + 1
    WHERE id = OLD.conversation_id;
END;

CREATE TRIGGER messages_changed AFTER UPDATE OF content, message_type, direction, sender_name,
        sender_identifier, "timestamp", message_metadata, conversation_id, external_message_id,
        is_read, status, error, attachment_count ON messages
WHEN (OLD.content, OLD.message_type, OLD.direction, OLD.sender_name, OLD.sender_identifier,
      OLD."timestamp", OLD.message_metadata, OLD.conversation_id, OLD.external_message_id,
      OLD.is_read, OLD.status, OLD.error, OLD.attachment_count)
     IS NOT
     (NEW.content, NEW.message_type, NEW.direction, NEW.sender_name, NEW.sender_identifier,
      NEW."timestamp", NEW.message_metadata, NEW.conversation_id, NEW.external_message_id,
      NEW.is_read, NEW.status, NEW.error, NEW.attachment_count)
BEGIN
    UPDATE conversations SET stamp = (SELECT MAX(stamp) FROM conversations) + 1
    WHERE id IN (OLD.conversation_id, NEW.conversation_id);
END;

-- Every update of a file restamps (PostgreSQL skips updates that change nothing; here one
-- would only cost a spare page rebuild).
CREATE TRIGGER attachments_added AFTER INSERT ON attachments
BEGIN
    UPDATE conversations SET stamp = (SELECT MAX(stamp) FROM conversations) + 1
    WHERE id IN (SELECT m.conversation_id FROM messages m WHERE m.id = NEW.message_id);
END;

CREATE TRIGGER attachments_removed AFTER DELETE ON attachments
BEGIN
    UPDATE conversations SET stamp = (SELECT MAX(stamp) FROM conversations) + 1
    WHERE id IN (SELECT m.conversation_id FROM messages m WHERE m.id = OLD.message_id);
END;

CREATE TRIGGER attachments_changed AFTER UPDATE ON attachments
BEGIN
    UPDATE conversations SET stamp = (SELECT MAX(stamp) FROM conversations) + 1
    WHERE id IN (SELECT m.conversation_id FROM messages m
                 WHERE m.id IN (OLD.message_id, NEW.message_id));
END;
