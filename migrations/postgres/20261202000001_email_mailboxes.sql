-- Where the reading of each IMAP mailbox stands (EMAIL_IMAP_URL, keyed without the password),
-- so a restart resumes after the last mail read instead of reading the mailbox again:
-- UIDVALIDITY and the last UID recorded (moved in the same transaction as the mails it covers),
-- the first start's backfill (UIDs up to `backfill_until_uid` are read only when they arrived
-- after `backfill_since`), the last complete check, and one instance's lease on the reading,
-- so several instances on one database never read a mailbox at once.
-- Keep migrations/sqlite in step with this file.
CREATE TABLE email_mailboxes (
    mailbox            TEXT PRIMARY KEY,
    uid_validity       BIGINT,
    last_uid           BIGINT NOT NULL DEFAULT 0,
    backfill_until_uid BIGINT,
    backfill_since     TIMESTAMPTZ,
    synced_at          TIMESTAMPTZ,
    lease_owner        TEXT,
    leased_until       TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL
);
