-- SQLite twin of migrations/postgres/20261209000002_messages_added_per_statement.sql, which
-- moves PostgreSQL's messages_added trigger from each row to each statement. SQLite has row
-- triggers only; its trigger stays as it is.
SELECT 1;
