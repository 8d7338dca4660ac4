-- How many conversations each (channel, active) pair holds, kept by triggers in the same
-- transaction as the change, so GET /conversations answers X-Total-Count by summing at most a
-- few rows instead of counting the whole table on every page.
CREATE TABLE conversation_counts (
    channel_id INTEGER NOT NULL,
    is_active  INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (channel_id, is_active)
);

INSERT INTO conversation_counts (channel_id, is_active, n)
SELECT channel_id, is_active, COUNT(*) FROM conversations GROUP BY channel_id, is_active;

CREATE TRIGGER conversation_counts_insert AFTER INSERT ON conversations
BEGIN
    INSERT INTO conversation_counts (channel_id, is_active, n)
    VALUES (NEW.channel_id, NEW.is_active, 1)
    ON CONFLICT (channel_id, is_active) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER conversation_counts_delete AFTER DELETE ON conversations
BEGIN
    UPDATE conversation_counts SET n = n - 1
    WHERE channel_id = OLD.channel_id AND is_active = OLD.is_active;
END;

-- A move between pairs: out of the old one, into the new one.
CREATE TRIGGER conversation_counts_update AFTER UPDATE OF channel_id, is_active ON conversations
WHEN OLD.channel_id <> NEW.channel_id OR OLD.is_active <> NEW.is_active
BEGIN
    UPDATE conversation_counts SET n = n - 1
    WHERE channel_id = OLD.channel_id AND is_active = OLD.is_active;
    INSERT INTO conversation_counts (channel_id, is_active, n)
    VALUES (NEW.channel_id, NEW.is_active, 1)
    ON CONFLICT (channel_id, is_active) DO UPDATE SET n = n + 1;
END;
