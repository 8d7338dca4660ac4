-- What lets a server keep the first pages of the lists clients poll serialised in memory and
-- still answer every read with what is committed (src/pages): each conversation carries a
-- `stamp` that changes, in the transaction of the change, whenever anything either list shows
-- of it changes (the conversation, its unread count, any of its messages or their files), and
-- `message_count`, its messages' total (X-Total-Count in O(1)). Triggers keep both, so no write
-- path can forget them; messages' activity moved from the application into the same trigger
-- (one statement less per stored message). Keep migrations/sqlite in step with this file.

ALTER TABLE conversations ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0;

UPDATE conversations c SET message_count = s.n
FROM (SELECT conversation_id, COUNT(*) AS n FROM messages GROUP BY conversation_id) AS s
WHERE s.conversation_id = c.id;

-- Stamps come from one sequence: unique, so a page labelled with a conversation's stamp is
-- current exactly while the stamp is unchanged, and the largest stamp changes with any change.
CREATE SEQUENCE conversation_stamps;
UPDATE conversations SET stamp = nextval('conversation_stamps');
-- MAX(stamp), the validator of the conversations list, reads one index entry.
CREATE INDEX conversations_stamp_idx ON conversations (stamp);

-- Every insert and update of a conversation draws a new stamp. The transaction takes its id
-- first: a reader whose snapshot shows no transaction in progress then knows that every stamp
-- it cannot see yet will be larger than every stamp it can (sequence values are drawn out of
-- commit order; see store::conversations::list_stamp).
CREATE FUNCTION conversation_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    NEW.stamp := nextval('conversation_stamps');
    RETURN NEW;
END $$;

CREATE TRIGGER conversations_stamp BEFORE INSERT OR UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION conversation_stamp();

-- A stored message moves its conversation's activity forward (never backwards: messages may
-- arrive out of order) and counts; a deleted one is uncounted.
CREATE FUNCTION message_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET
        last_message_at = CASE WHEN last_message_at IS NULL OR last_message_at < NEW."timestamp"
                               THEN NEW."timestamp" ELSE last_message_at END,
        updated_at = NEW.created_at,
        message_count = message_count + 1
    WHERE id = NEW.conversation_id;
    RETURN NULL;
END $$;

CREATE FUNCTION message_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET message_count = message_count - 1 WHERE id = OLD.conversation_id;
    RETURN NULL;
END $$;

-- A change to what a message shows restamps its conversation (the update itself changes
-- nothing: the conversation's trigger draws the stamp).
CREATE FUNCTION message_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET stamp = stamp WHERE id IN (OLD.conversation_id, NEW.conversation_id);
    RETURN NULL;
END $$;

CREATE TRIGGER messages_added AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION message_added();
CREATE TRIGGER messages_removed AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION message_removed();
-- The columns of a Message as REST shows it (attachment_count: whether its files are read);
-- the outbox's own columns (attempts, leases, route, recipient) change often and show nowhere.
CREATE TRIGGER messages_changed AFTER UPDATE OF content, message_type, direction, sender_name,
        sender_identifier, "timestamp", message_metadata, conversation_id, external_message_id,
        is_read, status, error, attachment_count ON messages
    FOR EACH ROW
    WHEN ((OLD.content, OLD.message_type, OLD.direction, OLD.sender_name, OLD.sender_identifier,
           OLD."timestamp", OLD.message_metadata, OLD.conversation_id, OLD.external_message_id,
           OLD.is_read, OLD.status, OLD.error, OLD.attachment_count)
          IS DISTINCT FROM
          (NEW.content, NEW.message_type, NEW.direction, NEW.sender_name, NEW.sender_identifier,
           NEW."timestamp", NEW.message_metadata, NEW.conversation_id, NEW.external_message_id,
           NEW.is_read, NEW.status, NEW.error, NEW.attachment_count))
    EXECUTE FUNCTION message_changed();

-- A file recorded, arriving (its size), changing or removed restamps its message's conversation.
CREATE FUNCTION attachment_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET stamp = stamp
    WHERE id IN (SELECT m.conversation_id FROM messages m
                 WHERE m.id IN (CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.message_id END,
                                CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.message_id END));
    RETURN NULL;
END $$;

CREATE TRIGGER attachments_added_or_removed AFTER INSERT OR DELETE ON attachments
    FOR EACH ROW EXECUTE FUNCTION attachment_changed();
CREATE TRIGGER attachments_changed AFTER UPDATE ON attachments
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION attachment_changed();
