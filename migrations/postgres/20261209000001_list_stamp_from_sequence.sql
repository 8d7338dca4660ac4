-- The conversations list's stamp is now the last value drawn from `conversation_stamps`, not
-- MAX(stamp) read through an index. That index changed with every stamp, so no update of a
-- conversation could be HOT (written in place, without new entries in every index of the
-- table), and every stored message updates its conversation: dropping it took about a fifth off
-- PostgreSQL's work per ingested message (BENCHMARKS.md). SQLite keeps its index: it draws
-- stamps from MAX(stamp) itself, and has no HOT updates to lose.
DROP INDEX conversations_stamp_idx;

-- The list's stamp, and whether a page read after it may be labelled with it. The sequence is
-- not transactional: its last value counts stamps of transactions still running. So it is read
-- first, and the snapshot judged after it (a new statement of a volatile function takes a new
-- snapshot): every stamp up to it was drawn by a transaction that had taken its id before
-- (see conversation_stamp()), and if no transaction is running at that later snapshot, each
-- of those has ended, and a page read afterwards sees every one that committed.
CREATE FUNCTION conversations_list_stamp(OUT stamp BIGINT, OUT settled BOOLEAN)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    stamp := COALESCE(pg_sequence_last_value('conversation_stamps'), 0);
    settled := (SELECT pg_snapshot_xmin(s) = pg_snapshot_xmax(s) FROM pg_current_snapshot() AS s);
END $$;
