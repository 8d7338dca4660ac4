//! switchboard: the backend of a shared inbox for WhatsApp, Instagram and email.
//!
//! A guided tour, edge to store (ARCHITECTURE.md follows a webhook to a socket and a reply to
//! its provider): `app` wires everything; `http` is the edge; `channels` turn what providers send
//! into the `inbox`'s records and send through the `outbox`; every write goes through a
//! `publish` unit of work into the `store`, and from there to the `realtime` hub.

/// Start-up and shutdown: builds the state, router and background tasks around a listener.
pub mod app;
/// The LLM assistant: OpenAI-compatible client and reply orchestration.
pub mod assistant;
/// Attachment files fetched from their providers (a durable job, or on demand) into the media store.
pub mod attachments;
/// The providers, one folder each, and each channel's addressing rules.
pub mod channels;
/// Configuration from the environment; every variable is listed in its module doc.
pub mod config;
/// Records (channels, conversations, messages) and parsed input types.
pub mod domain;
/// `ApiError` and its JSON rendering.
pub mod error;
/// Event webhooks: every event also POSTed to the operator's receiver, signed, in order per
/// conversation, recorded with its change and retried until taken.
pub mod event_webhooks;
/// The accept loop with its connection limits, the REST routes, extractors and middleware.
pub mod http;
/// The inbound seam: channel-neutral records, one recorder, group commit of deliveries.
pub mod inbox;
/// Durable background jobs (the assistant's auto-replies, attachment fetches), claimed with a lease.
pub mod jobs;
/// Housekeeping on a timer: pruning tables that would otherwise only grow.
pub mod maintenance;
/// The media store: attachment files named by their content's hash.
pub mod media;
/// Prometheus metrics.
pub mod metrics;
/// Outbound delivery: store first, send through the channel's provider, retry in the background.
pub mod outbox;
/// The first pages of the polled lists, kept serialised and checked against the store's stamps.
pub mod pages;
/// The unit of work every write goes through: store, commit, then publish.
pub mod publish;
/// The WebSocket hub and per-connection loops.
pub mod realtime;
/// The wait before a retry (doubling, capped, jittered), one rule for every retrying peer.
pub mod retry;
/// PostgreSQL or SQLite behind one query interface.
pub mod store;
/// Logging set-up.
pub mod telemetry;

/// The crate version, reported by `GET /` and the `connected` event.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
