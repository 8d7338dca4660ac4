-- SQLite twin of migrations/postgres/20261209000001_list_stamp_from_sequence.sql, which drops
-- PostgreSQL's index on conversations.stamp. SQLite keeps it: its triggers draw each stamp as
-- MAX(stamp) + 1 through it, and the list's stamp is that maximum. Nothing changes here.
SELECT 1;
