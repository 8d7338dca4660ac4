//! `App::build` wires configuration, database, hub and services around a bound listener (port 0
//! in tests); `App::run` starts every background task, serves until the shutdown future
//! resolves, then stops accepting, finishes in-flight requests, closes every WebSocket with a
//! close frame and waits for the background tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::assistant::Assistant;
use crate::config::Config;
use crate::http::{self, AppState, Services};
use crate::inbox::ingest::{self, Ingest};
use crate::jobs;
use crate::media::MediaStore;
use crate::metrics::Metrics;
use crate::outbox::{Dispatch, Outbox};
use crate::pages::Pages;
use crate::publish::Publisher;
use crate::realtime::{Hub, Relay};
use crate::store::{Db, EventListener, PoolSettings};

/// How long shutdown waits for sockets to say goodbye and background work to finish.
const DRAIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("DATABASE_URL: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Http(reqwest::Error),
}

pub struct App {
    listener: TcpListener,
    state: AppState,
    address: SocketAddr,
    /// Background work that must not start before `run`.
    background: Background,
}

/// What `run` starts besides the HTTP server.
struct Background {
    /// The PostgreSQL `LISTEN` session of the event relay, connected before serving.
    events: Option<EventListener>,
    /// `METRICS_ADDR`'s listener, when configured.
    metrics: Option<TcpListener>,
    /// The group-commit writer of webhook deliveries.
    ingest: ingest::Writer,
    /// The durable job runner.
    jobs: jobs::Runner,
    /// Reads the stamps of kept pages for many requests at once.
    stamps: crate::pages::Reader,
}

impl App {
    /// Opens the database, applies migrations and builds the services.
    pub async fn build(config: Config, listener: TcpListener) -> Result<App, StartError> {
        let db = open_database(&config).await?;
        warn_about_open_doors(&config);
        let address = listener.local_addr()?;
        let hub = Arc::new(Hub::new(config.ws_queue_capacity, config.ws_queue_bytes));
        let relay = Relay::new(&db, hub);
        let waker = jobs::Waker::default();
        let publisher = Publisher::new(db.clone(), relay.clone(), waker.clone());
        let metrics = Arc::new(Metrics::default());
        let events = relay.connect().await?;
        let metrics_listener = match config.metrics_addr {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| {
                StartError::Io(std::io::Error::new(
                    e.kind(),
                    format!("METRICS_ADDR {address}: {e}"),
                ))
            })?),
            None => None,
        };
        let media = MediaStore::new(config.media_dir.clone(), config.media_max_bytes);
        media.prepare().await.map_err(|e| {
            StartError::Io(std::io::Error::new(
                e.kind(),
                format!("MEDIA_DIR {}: {e}", config.media_dir.display()),
            ))
        })?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let dispatch = Dispatch::from_config(&config).map_err(StartError::Http)?;
        let outbox = Outbox::new(
            publisher.clone(),
            metrics.clone(),
            dispatch,
            config.outbox.clone(),
            config.whatsapp.timeout,
            tasks.clone(),
        );
        let assistant = Assistant::new(
            publisher.clone(),
            metrics.clone(),
            outbox.clone(),
            config.assistant.clone(),
        )
        .map_err(StartError::Http)?;
        let (ingest, ingest_writer) =
            Ingest::new(publisher.clone(), assistant.autoreplies(), metrics.clone());
        let jobs = jobs::Runner::new(
            db.clone(),
            jobs::Handlers {
                assistant: assistant.clone(),
            },
            waker,
            job_lease(&config),
        );
        let (pages, stamps) = Pages::new(db.clone(), config.page_cache_bytes, metrics.clone());
        let state = AppState::new(Services {
            config,
            db,
            relay,
            publisher,
            metrics,
            outbox,
            assistant,
            ingest,
            media,
            pages,
            shutdown,
            tasks,
        });
        Ok(App {
            listener,
            state,
            address,
            background: Background {
                events,
                metrics: metrics_listener,
                ingest: ingest_writer,
                jobs,
                stamps,
            },
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App {
            listener,
            state,
            address,
            background,
        } = self;
        let token = state.shutdown().clone();
        let tasks = state.tasks().clone();
        let db = state.db().clone();
        start_background(&state, background, &token);
        let limits = http::serve::Limits::from_config(state.config());
        let router = http::router(state);
        tracing::info!(%address, backend = ?db.backend(), "listening");
        let stop = token.clone();
        // TCP_NODELAY stays off: Nagle's algorithm merges events written to a socket while an
        // earlier one is unacknowledged, which measured a third more fan-out (BENCHMARKS.md).
        http::serve::serve(listener, router, limits, async move {
            shutdown.await;
            tracing::info!("shutting down: closing sockets, finishing in-flight requests");
            stop.cancel();
        })
        .await?;
        token.cancel();
        tasks.close();
        if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
            tracing::warn!("some WebSockets or background work did not finish in time");
        }
        db.close().await;
        Ok(())
    }
}

/// Every background task, started in this one place and tracked, so shutdown waits for them.
/// Workers stop taking new work when `token` is cancelled; the ingest writer stops once the
/// server, whose requests feed it, has stopped (it ends when the last handle is dropped), and
/// so does the reader of the kept pages' stamps.
fn start_background(state: &AppState, background: Background, token: &CancellationToken) {
    let tasks = state.tasks();
    tasks.spawn(background.ingest.run());
    tasks.spawn(background.stamps.run());
    tasks.spawn(state.outbox().clone().run(token.clone()));
    tasks.spawn(background.jobs.run(token.clone()));
    tasks.spawn(crate::maintenance::run(state.db().clone(), token.clone()));
    tasks.spawn(
        state
            .relay()
            .clone()
            .listen(background.events, token.clone()),
    );
    if let Some(listener) = background.metrics {
        let router = http::metrics::standalone(state.clone());
        let stop = token.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "the metrics listener stopped");
            }
        });
    }
}

/// How long a claimed job is its instance's: longer than the slowest job, an auto-reply (the LLM
/// call, then the first send attempt), so only a dead instance's jobs are taken over.
fn job_lease(config: &Config) -> Duration {
    let llm = config
        .assistant
        .llm
        .as_ref()
        .map(|l| l.timeout)
        .unwrap_or_default();
    llm + config.whatsapp.timeout * 2 + crate::outbox::LEASE_MARGIN
}

/// Start-up warnings for settings that leave an endpoint open to anyone.
fn warn_about_open_doors(config: &Config) {
    if config.api_keys.is_none() {
        tracing::warn!("API_KEYS is not set: /api/v1 and the WebSocket are open to anyone who can reach this port");
    }
    if config.whatsapp.webhook.app_secrets.is_empty() {
        tracing::warn!(
            "WHATSAPP_APP_SECRET is not set: /webhook/whatsapp accepts unsigned deliveries"
        );
    }
    if config.gateway_keys.is_none() {
        tracing::warn!(
            "AI_ASSISTANTS_API_KEYS is not set: the gateway endpoint accepts any caller (dev mode)"
        );
    }
}

/// Connects and migrates; used by `serve` and `migrate`.
pub async fn open_database(config: &Config) -> Result<Db, StartError> {
    let settings = PoolSettings {
        max_connections: config.database_max_connections,
    };
    let db = Db::connect_lazy(config.database_url.expose(), &settings)?;
    db.migrate().await?;
    Ok(db)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
