-- How many conversations each (channel, active) pair holds, kept by triggers in the same
-- transaction as the change, so GET /conversations answers X-Total-Count by summing at most a
-- few rows instead of counting the whole table on every page.
CREATE TABLE conversation_counts (
    channel_id BIGINT  NOT NULL,
    is_active  BOOLEAN NOT NULL,
    n          BIGINT  NOT NULL,
    PRIMARY KEY (channel_id, is_active)
);

INSERT INTO conversation_counts (channel_id, is_active, n)
SELECT channel_id, is_active, COUNT(*) FROM conversations GROUP BY channel_id, is_active;

CREATE FUNCTION conversation_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversation_counts (channel_id, is_active, n)
    VALUES (NEW.channel_id, NEW.is_active, 1)
    ON CONFLICT (channel_id, is_active) DO UPDATE SET n = conversation_counts.n + 1;
    RETURN NULL;
END $$;

CREATE FUNCTION conversation_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversation_counts SET n = n - 1
    WHERE channel_id = OLD.channel_id AND is_active = OLD.is_active;
    RETURN NULL;
END $$;

CREATE TRIGGER conversation_counts_insert AFTER INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION conversation_counts_add();
CREATE TRIGGER conversation_counts_delete AFTER DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION conversation_counts_remove();
-- A move between pairs: out of the old one, into the new one.
CREATE TRIGGER conversation_counts_update_out AFTER UPDATE OF channel_id, is_active ON conversations
    FOR EACH ROW WHEN (OLD.channel_id <> NEW.channel_id OR OLD.is_active <> NEW.is_active)
    EXECUTE FUNCTION conversation_counts_remove();
CREATE TRIGGER conversation_counts_update_in AFTER UPDATE OF channel_id, is_active ON conversations
    FOR EACH ROW WHEN (OLD.channel_id <> NEW.channel_id OR OLD.is_active <> NEW.is_active)
    EXECUTE FUNCTION conversation_counts_add();
