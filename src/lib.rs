//! switchboard: the backend of a shared inbox for WhatsApp, Instagram and email.
//!
//! A guided tour, edge to store:

/// Start-up and shutdown: builds the state, router and background tasks around a listener.
pub mod app;
/// The LLM assistant: OpenAI-compatible client and reply orchestration.
pub mod assistant;
/// Providers (WhatsApp today): webhook signatures and parsing, one folder each.
pub mod channels;
/// Configuration from the environment; every variable is listed in its module doc.
pub mod config;
/// Records (channels, conversations, messages) and parsed input types.
pub mod domain;
/// `ApiError` and its JSON rendering.
pub mod error;
/// The REST routes, extractors and middleware.
pub mod http;
/// Recording inbound messages and provider statuses, race-free and idempotent.
pub mod inbox;
/// Group commit: concurrent webhook deliveries stored in one transaction.
pub mod ingest;
/// Prometheus metrics.
pub mod metrics;
/// Outbound delivery: store first, send, retry in the background.
pub mod outbox;
/// The WebSocket hub and per-connection loops.
pub mod realtime;
/// PostgreSQL or SQLite behind one query interface.
pub mod store;
/// Logging set-up.
pub mod telemetry;

/// The crate version, reported by `GET /` and the `connected` event.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
