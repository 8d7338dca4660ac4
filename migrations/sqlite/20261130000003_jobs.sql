-- Durable background work: a job is recorded in the same transaction as what causes it (an
-- inbound message that wants the assistant's answer, a file to fetch), so a crash after the
-- commit cannot lose it. Workers claim due jobs with a lease (`claimed_until`), so two
-- instances never run one job at once and a dead instance's job is taken over when its lease
-- expires. One job per (kind, subject): enqueuing it again is a no-op.
-- SQLite twin of migrations/postgres/20261130000003_jobs.sql.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    subject_id    BIGINT NOT NULL,
    due_at        TEXT NOT NULL,
    claimed_until TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    CONSTRAINT jobs_kind_subject_key UNIQUE (kind, subject_id)
);
CREATE INDEX jobs_due_idx ON jobs (due_at);
