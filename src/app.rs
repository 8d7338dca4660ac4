//! `App::build` wires configuration, database, hub and router around a bound listener (port 0
//! in tests); `App::run` serves until the shutdown future resolves, then stops accepting,
//! finishes in-flight requests and closes every WebSocket with a close frame.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::realtime::Hub;
use crate::store::{Db, PoolSettings};

/// How long shutdown waits for sockets to say goodbye.
const SOCKET_DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("DATABASE_URL: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot read the listener's address: {0}")]
    Io(#[from] std::io::Error),
}

pub struct App {
    listener: TcpListener,
    state: AppState,
    address: SocketAddr,
}

impl App {
    /// Opens the database, applies migrations and prepares the router.
    pub async fn build(config: Config, listener: TcpListener) -> Result<App, StartError> {
        let db = open_database(&config).await?;
        if config.api_keys.is_none() {
            tracing::warn!("API_KEYS is not set: /api/v1 and the WebSocket are open to anyone who can reach this port");
        }
        let address = listener.local_addr()?;
        let hub = Arc::new(Hub::new(config.ws_queue_capacity));
        let state = AppState::new(
            config,
            db,
            hub,
            CancellationToken::new(),
            TaskTracker::new(),
        );
        Ok(App {
            listener,
            state,
            address,
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
        } = self;
        let token = state.shutdown().clone();
        let sockets = state.sockets().clone();
        let db = state.db().clone();
        let router = http::router(state);
        tracing::info!(%address, backend = ?db.backend(), "listening");
        let stop = token.clone();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: closing sockets, finishing in-flight requests");
                stop.cancel();
            })
            .await?;
        token.cancel();
        sockets.close();
        if tokio::time::timeout(SOCKET_DRAIN, sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!("some WebSockets did not close in time");
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
