//! The HTTP edge: the accept loop (`serve`), the router, its middleware, and one module per
//! resource. Handlers parse input into domain types, call the store, publish events, and map
//! failures to `ApiError`.

mod attachments;
mod auth;
mod channels;
mod conversations;
mod docs;
pub mod extract;
mod file_response;
mod gateway;
mod lists;
mod messages;
pub mod metrics;
mod middleware;
pub mod openapi;
mod send;
pub mod serve;
mod swagger_ui;
mod system;
mod webhook;
mod websocket;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::assistant::Assistant;
use crate::attachments::Attachments;
use crate::channels::email;
use crate::config::Config;
use crate::inbox::ingest::Ingest;
use crate::media::MediaStore;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::pages::Pages;
use crate::publish::Publisher;
use crate::realtime::{Hub, Relay};
use crate::store::Db;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    db: Db,
    relay: Relay,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    outbox: Outbox,
    assistant: Assistant,
    ingest: Ingest,
    media: MediaStore,
    email_health: Option<email::Health>,
    attachments: Attachments,
    pages: Pages,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// What [`AppState::new`] is built from: the long-lived services `App::build` creates.
pub struct Services {
    pub config: Config,
    pub db: Db,
    pub relay: Relay,
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
    pub outbox: Outbox,
    pub assistant: Assistant,
    pub ingest: Ingest,
    pub media: MediaStore,
    /// How the reading of the mailbox goes, when `EMAIL_IMAP_URL` is set.
    pub email_health: Option<email::Health>,
    /// Fetches and opens attachment files.
    pub attachments: Attachments,
    /// The first pages of the polled lists, kept serialised.
    pub pages: Pages,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Background work that shutdown waits for.
    pub tasks: TaskTracker,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        let Services {
            config,
            db,
            relay,
            publisher,
            metrics,
            outbox,
            assistant,
            ingest,
            media,
            email_health,
            attachments,
            pages,
            shutdown,
            tasks,
        } = services;
        AppState(Arc::new(Inner {
            config,
            db,
            relay,
            publisher,
            metrics,
            outbox,
            assistant,
            ingest,
            media,
            email_health,
            attachments,
            pages,
            shutdown,
            tasks,
        }))
    }
    pub fn config(&self) -> &Config {
        &self.0.config
    }
    pub fn db(&self) -> &Db {
        &self.0.db
    }
    /// The local hub, which this instance's sockets subscribe to.
    pub fn hub(&self) -> &Arc<Hub> {
        self.0.relay.hub()
    }
    /// Cross-instance delivery of events (its state shows in `/health`).
    pub fn relay(&self) -> &Relay {
        &self.0.relay
    }
    /// Opens the unit of work every write goes through.
    pub fn publisher(&self) -> &Publisher {
        &self.0.publisher
    }
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }
    pub fn outbox(&self) -> &Outbox {
        &self.0.outbox
    }
    pub fn assistant(&self) -> &Assistant {
        &self.0.assistant
    }
    /// Attachment files.
    pub fn media(&self) -> &MediaStore {
        &self.0.media
    }
    /// Fetches and opens attachment files.
    pub fn attachments(&self) -> &Attachments {
        &self.0.attachments
    }
    /// How the reading of the mailbox goes; `None` without `EMAIL_IMAP_URL`.
    pub fn email_health(&self) -> Option<&email::Health> {
        self.0.email_health.as_ref()
    }
    /// The kept list pages.
    pub fn pages(&self) -> &Pages {
        &self.0.pages
    }
    /// Where webhook deliveries are queued for group commit.
    pub fn ingest(&self) -> &Ingest {
        &self.0.ingest
    }
    /// Background work (sockets, the outbox worker) that shutdown waits for.
    pub fn tasks(&self) -> &TaskTracker {
        &self.0.tasks
    }
}

/// The whole application's routes with their middleware.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(channels::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(send::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        // Added after the layer above: files also take `?api_key=`, for `<img src>`.
        .merge(
            attachments::router().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require_api_key_or_query,
            )),
        );
    let app = Router::new()
        .route("/", get(system::root))
        .route("/ws", get(system::root))
        .route("/health", get(system::health))
        .nest("/api/v1", api)
        .merge(webhook::router())
        .merge(gateway::router())
        .merge(openapi::router())
        .merge(metrics::router(&state))
        .fallback(system::not_found);
    middleware::wrap(app, &state).with_state(state)
}
