//! Black-box tests: the real server on port 0, over HTTP and WebSocket, on SQLite and on
//! PostgreSQL (the cluster started by `scripts/test`).

mod helpers;

mod accepted_sends;
mod assistant;
mod attachment_downloads;
mod attachments;
mod auth;
mod bad_input;
mod clients;
mod connections;
mod conversations;
mod crash;
mod early_statuses;
mod email;
mod event_webhooks;
mod faults;
mod gateway_send;
mod ingest;
mod instagram;
mod messages;
mod metrics;
mod openapi;
mod outage;
mod pages;
mod properties;
mod recipients;
mod restart;
mod scale;
mod schema;
mod slow_clients;
mod socket_memory;
mod system;
mod validation;
mod websocket;
mod whatsapp;
