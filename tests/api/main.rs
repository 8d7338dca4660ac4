//! Black-box tests: the real server on port 0, over HTTP and WebSocket, on SQLite and on
//! PostgreSQL (the cluster started by `scripts/test`).

mod helpers;

mod accepted_sends;
mod assistant;
mod auth;
mod bad_input;
mod clients;
mod conversations;
mod early_statuses;
mod email;
mod ingest;
mod messages;
mod metrics;
mod openapi;
mod properties;
mod recipients;
mod scale;
mod schema;
mod system;
mod websocket;
mod whatsapp;
