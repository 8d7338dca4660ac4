-- The event webhook's outbox: every event (new_message, message_status, new_conversation,
-- conversation_updated) recorded in the transaction of the change it describes, when
-- EVENT_WEBHOOK_URL is set, and POSTed to the operator's receiver by a worker.
--
-- `event_id` is the id receivers see (X-Switchboard-Delivery), stable across retries; `body`
-- is the JSON sent, built once. Events of one conversation are delivered in `id` order: one is
-- due only when no earlier event of its conversation is pending (`due_at` set). A delivery is
-- leased (`claimed_until`), so two instances never send one event at once. Finished events
-- (`outcome` delivered or given_up) are pruned after a retention period.
-- SQLite twin of migrations/postgres/20261204000001_event_webhooks.sql.
CREATE TABLE event_webhooks (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    conversation_id BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    due_at          TEXT,
    claimed_until   TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    outcome         TEXT,
    finished_at     TEXT
);
-- What the worker claims next, and whether an event has an earlier pending one.
CREATE INDEX event_webhooks_due_idx ON event_webhooks (due_at, id) WHERE due_at IS NOT NULL;
CREATE INDEX event_webhooks_pending_idx ON event_webhooks (conversation_id, id)
    WHERE due_at IS NOT NULL;
-- What pruning deletes.
CREATE INDEX event_webhooks_finished_idx ON event_webhooks (finished_at)
    WHERE finished_at IS NOT NULL;
