-- Which of a channel's ways out an outbound message takes, fixed when it is stored so every
-- retry takes the same one: on WhatsApp 'cloud_api' or 'gateway' (the WhatsApp Web gateway
-- carries agents' replies to customers who write through it). NULL: the channel's only way.
-- SQLite twin of migrations/postgres/20261205000001_send_route.sql.
ALTER TABLE messages ADD COLUMN send_route TEXT;
