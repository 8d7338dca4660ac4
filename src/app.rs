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
use crate::attachments::Attachments;
use crate::channels::email;
use crate::config::Config;
use crate::event_webhooks;
use crate::http::{self, AppState, Services};
use crate::inbox::ingest::{self, Ingest};
use crate::inbox::names::NameLookups;
use crate::jobs;
use crate::media::MediaStore;
use crate::metrics::Metrics;
use crate::outbox::{Dispatch, Outbox};
use crate::pages::Pages;
use crate::publish::Publisher;
use crate::realtime::{Hub, Relay};
use crate::store::jobs::JobKind;
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
    #[error("{0}")]
    Dispatch(#[from] crate::outbox::dispatch::DispatchError),
    #[error("{0}")]
    Email(String),
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
    /// The event webhook's delivery worker, when `EVENT_WEBHOOK_URL` is set.
    event_webhooks: Option<event_webhooks::Worker>,
    /// The reader of `EMAIL_IMAP_URL`'s mailbox, when configured.
    email: Option<email::Reader>,
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
        let metrics = Arc::new(Metrics::default());
        let (event_recorder, event_worker) =
            event_webhooks::from_config(config.event_webhook.as_ref(), &db, metrics.clone())
                .map_err(StartError::Http)?
                .unzip();
        let publisher = Publisher::new(db.clone(), relay.clone(), waker.clone())
            .with_event_webhooks(event_recorder);
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
        let dispatch = Dispatch::from_config(&config)?;
        let names = NameLookups::new(publisher.clone(), dispatch.clone());
        let outbox = Outbox::new(
            publisher.clone(),
            metrics.clone(),
            dispatch,
            config.outbox.clone(),
            provider_timeout(&config),
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
        let email_health = config.email.imap.as_ref().map(|_| email::Health::default());
        let email_reader = email::Reader::from_config(
            &config.email,
            publisher.clone(),
            assistant.autoreplies(),
            media.clone(),
            metrics.clone(),
            email_health.clone().unwrap_or_default(),
        )
        .map_err(StartError::Email)?;
        let attachments = Attachments::new(
            &config,
            db.clone(),
            media.clone(),
            tasks.clone(),
            shutdown.clone(),
        )
        .map_err(StartError::Http)?;
        let jobs = jobs::Runner::new(
            db.clone(),
            jobs::Handlers {
                assistant: assistant.clone(),
                attachments: attachments.clone(),
                names,
            },
            waker,
            job_leases(&config),
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
            email_health,
            attachments,
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
                event_webhooks: event_worker,
                email: email_reader,
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
    if let Some(worker) = background.event_webhooks {
        tasks.spawn(worker.run(token.clone()));
    }
    tasks.spawn(crate::maintenance::run(
        state.db().clone(),
        crate::maintenance::Retention::from_config(state.config()),
        token.clone(),
    ));
    if let Some(reader) = background.email {
        tasks.spawn(reader.run(token.clone()));
    }
    tasks.spawn(
        state
            .relay()
            .clone()
            .listen(background.events, token.clone()),
    );
    // WebSockets hear of shutdown from the hub (see `Hub::close`).
    let (hub, stop) = (state.hub().clone(), token.clone());
    tasks.spawn(async move {
        stop.cancelled().await;
        hub.close();
    });
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

/// How long a claimed job of each kind is its instance's: longer than one run of it can take,
/// so only a dead instance's jobs are taken over.
fn job_leases(config: &Config) -> jobs::Leases {
    let llm = config
        .assistant
        .llm
        .as_ref()
        .map(|l| l.timeout)
        .unwrap_or_default();
    jobs::Leases::new(|kind| {
        let longest_run = match kind {
            // The LLM call, then the reply's first send attempt.
            JobKind::AssistantReply => llm + provider_timeout(config) * 2,
            // The media look-up, then the download.
            JobKind::AttachmentFetch => config.whatsapp.timeout + config.media_fetch.timeout,
            JobKind::ParticipantName => config.instagram.timeout,
        };
        longest_run + crate::outbox::LEASE_MARGIN
    })
}

/// The longest one call to a messaging provider may take. SMTP's limit counts only when mail
/// is sent: its 30 s default would otherwise make every instance wait over a minute before
/// taking over a crashed one's WhatsApp or Instagram sends.
fn provider_timeout(config: &Config) -> Duration {
    let smtp = match config.email.smtp {
        Some(_) => config.email.timeout,
        None => Duration::ZERO,
    };
    config
        .whatsapp
        .timeout
        .max(config.instagram.timeout)
        .max(smtp)
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
    let instagram = &config.instagram;
    let instagram_used =
        instagram.credentials.is_some() || instagram.webhook.verify_token.is_some();
    if instagram_used && instagram.webhook.app_secrets.is_empty() {
        tracing::warn!(
            "INSTAGRAM_APP_SECRET is not set: /webhook/instagram accepts unsigned deliveries (and fetches none of their files)"
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
