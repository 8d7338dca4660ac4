-- Provider statuses that arrived before the provider's answer to our own send gave us the
-- message's id (Meta may deliver `sent` or `delivered` before its HTTP answer). They wait
-- here and are applied, forward only, once the id is recorded; statuses for messages this
-- server never sent (another system's) are pruned after a day.
-- Keep migrations/sqlite in step with this file.
CREATE TABLE early_statuses (
    channel_id          BIGINT NOT NULL REFERENCES channels (id),
    external_message_id TEXT NOT NULL,
    status              TEXT NOT NULL,
    error               TEXT,
    received_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, external_message_id, status)
);
CREATE INDEX early_statuses_received_idx ON early_statuses (received_at);
