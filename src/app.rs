//! `App::build` wires configuration, database, hub and router around a bound listener (port 0
//! in tests); `App::run` serves until the shutdown future resolves, then stops accepting,
//! finishes in-flight requests and closes every WebSocket with a close frame.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::assistant::Assistant;
use crate::channels::whatsapp::cloud_api::CloudApi;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::realtime::relay::Listener;
use crate::realtime::{Hub, Relay};
use crate::store::{Db, PoolSettings};

/// How long shutdown waits for sockets to say goodbye and an in-flight send to finish.
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
    /// The PostgreSQL `LISTEN` session of the event relay, connected before serving.
    events: Option<Listener>,
    /// `METRICS_ADDR`'s listener, when configured.
    metrics: Option<TcpListener>,
}

impl App {
    /// Opens the database, applies migrations and prepares the router.
    pub async fn build(config: Config, listener: TcpListener) -> Result<App, StartError> {
        let db = open_database(&config).await?;
        if config.api_keys.is_none() {
            tracing::warn!("API_KEYS is not set: /api/v1 and the WebSocket are open to anyone who can reach this port");
        }
        let address = listener.local_addr()?;
        if config.whatsapp.app_secrets.is_empty() {
            tracing::warn!(
                "WHATSAPP_APP_SECRET is not set: /webhook/whatsapp accepts unsigned deliveries"
            );
        }
        let hub = Arc::new(Hub::new(config.ws_queue_capacity));
        let relay = Relay::new(&db, hub);
        let metrics = Arc::new(Metrics::default());
        let events_listener = relay.connect().await?;
        let metrics_listener = match config.metrics_addr {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| {
                StartError::Io(std::io::Error::new(
                    e.kind(),
                    format!("METRICS_ADDR {address}: {e}"),
                ))
            })?),
            None => None,
        };
        let cloud_api = CloudApi::from_config(&config.whatsapp).map_err(StartError::Http)?;
        let outbox = Outbox::new(
            db.clone(),
            relay.clone(),
            metrics.clone(),
            cloud_api,
            config.outbox.clone(),
            config.whatsapp.timeout,
        );
        if config.gateway_keys.is_none() {
            tracing::warn!("AI_ASSISTANTS_API_KEYS is not set: the gateway endpoint accepts any caller (dev mode)");
        }
        let assistant = Assistant::new(
            db.clone(),
            relay.clone(),
            metrics.clone(),
            outbox.clone(),
            config.assistant.clone(),
        )
        .map_err(StartError::Http)?;
        let state = AppState::new(config, db, relay, metrics, outbox, assistant);
        Ok(App {
            listener,
            state,
            address,
            events: events_listener,
            metrics: metrics_listener,
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
            events,
            metrics,
        } = self;
        let token = state.shutdown().clone();
        let tasks = state.tasks().clone();
        let db = state.db().clone();
        tasks.spawn(state.outbox().clone().run(token.clone()));
        tasks.spawn(
            state
                .relay()
                .clone()
                .listen(db.clone(), events, token.clone()),
        );
        if let Some(listener) = metrics {
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
        let router = http::router(state);
        tracing::info!(%address, backend = ?db.backend(), "listening");
        let stop = token.clone();
        // TCP_NODELAY stays off: Nagle's algorithm merges events written to a socket while an
        // earlier one is unacknowledged, which measured a third more fan-out (BENCHMARKS.md).
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: closing sockets, finishing in-flight requests");
                stop.cancel();
            })
            .await?;
        token.cancel();
        tasks.close();
        if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
            tracing::warn!("some WebSockets or an outbox send did not finish in time");
        }
        db.close().await;
        Ok(())
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
