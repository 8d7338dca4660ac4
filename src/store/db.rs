//! One handle over PostgreSQL or SQLite, so every query is written once.
//!
//! Queries are plain SQL strings with `$1`-style placeholders, which both drivers accept, and
//! their arguments travel as [`Arg`] values bound in order. [`Exec`] runs such a query on a pool
//! or inside a transaction; the `match` over the backend lives here and nowhere else.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, PgConnection, PgPool, SqliteConnection, SqlitePool};

use super::Arg;

/// How much of a SQLite database file is memory-mapped (address space, shared by the pool).
const SQLITE_MMAP_BYTES: u64 = 1 << 30;
/// How long a request waits for a pooled connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A pooled connection idle for longer than this is pinged before use. A busy connection is
/// not: the pool already pings every connection when it is released, and a ping on acquire too
/// would add a second round trip to every query.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pings a connection before use only when it sat idle, so a database restart is still noticed
/// before a request uses a dead connection.
macro_rules! ping_if_idle {
    () => {
        |conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        }
    };
}

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A connection pool on either backend. Cloning is cheap (the pools are `Arc`s inside).
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A row type readable from both backends.
pub trait Record:
    for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin + 'static
{
}
impl<T> Record for T where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin + 'static
{
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::I64(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
            };
        }
        q
    }};
}

/// Runs `$body` with `$ex` bound to the executor of whichever backend `$self` holds.
macro_rules! on_executor {
    ($self:expr, $ex:ident => $body:expr) => {
        match $self {
            Exec::PgPool(pool) => {
                let $ex = &**pool;
                $body
            }
            Exec::PgConn(conn) => {
                let $ex = &mut **conn;
                $body
            }
            Exec::SqlitePool(pool) => {
                let $ex = &**pool;
                $body
            }
            Exec::SqliteConn(conn) => {
                let $ex = &mut **conn;
                $body
            }
        }
    };
}

/// Somewhere to run a query: a pool, or the connection of an open transaction.
pub enum Exec<'c> {
    PgPool(&'c PgPool),
    PgConn(&'c mut PgConnection),
    SqlitePool(&'c SqlitePool),
    SqliteConn(&'c mut SqliteConnection),
}

impl Exec<'_> {
    /// Which database the queries run on (for the few that differ by dialect).
    pub fn backend(&self) -> Backend {
        match self {
            Exec::PgPool(_) | Exec::PgConn(_) => Backend::Postgres,
            Exec::SqlitePool(_) | Exec::SqliteConn(_) => Backend::Sqlite,
        }
    }

    pub async fn fetch_all<T: Record>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> sqlx::Result<Vec<T>> {
        on_executor!(self, ex => bind_all!(sqlx::query_as(sql), args).fetch_all(ex).await)
    }

    pub async fn fetch_optional<T: Record>(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> sqlx::Result<Option<T>> {
        on_executor!(self, ex => bind_all!(sqlx::query_as(sql), args).fetch_optional(ex).await)
    }

    pub async fn fetch_one<T: Record>(&mut self, sql: &str, args: Vec<Arg>) -> sqlx::Result<T> {
        on_executor!(self, ex => bind_all!(sqlx::query_as(sql), args).fetch_one(ex).await)
    }

    /// Runs a statement and returns the number of rows it touched.
    pub async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> sqlx::Result<u64> {
        on_executor!(self, ex => Ok(bind_all!(sqlx::query(sql), args).execute(ex).await?.rows_affected()))
    }
}

/// An open transaction on either backend; dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Tx {
    pub fn exec(&mut self) -> Exec<'_> {
        match self {
            Tx::Postgres(tx) => Exec::PgConn(tx),
            Tx::Sqlite(tx) => Exec::SqliteConn(tx),
        }
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }
}

/// Pool sizes and timeouts, from the configuration.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
}

impl Db {
    /// Opens a pool for `url` (`postgres://…` or `sqlite://…`). The SQLite file is created if
    /// missing. Connections are made lazily, so start-up does not fail on a database that is
    /// briefly down; [`Db::migrate`] is what first needs it.
    pub fn connect_lazy(url: &str, settings: &PoolSettings) -> Result<Db, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .before_acquire(ping_if_idle!())
                .connect_lazy_with(options);
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a message acknowledged to a client survives a power cut, not just a crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                // Pages are read straight from the OS page cache instead of being copied into
                // each connection's own small cache by a read() per page.
                .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections.clamp(1, 8))
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .test_before_acquire(false)
                .before_acquire(ping_if_idle!())
                .connect_lazy_with(options);
            Ok(Db::Sqlite(pool))
        } else {
            Err(sqlx::Error::Configuration(
                "expected a postgres:// or sqlite:// URL".into(),
            ))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies the migrations of this backend's folder.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Postgres(pool) => PG_MIGRATOR.run(pool).await,
            Db::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
        }
    }

    /// Runs queries directly on the pool, each in its own implicit transaction.
    pub fn exec(&self) -> Exec<'_> {
        match self {
            Db::Postgres(pool) => Exec::PgPool(pool),
            Db::Sqlite(pool) => Exec::SqlitePool(pool),
        }
    }

    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// our transactions all write, and a deferred one that upgrades later can fail with
    /// `SQLITE_BUSY` without waiting.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> sqlx::Result<()> {
        self.exec().execute("SELECT 1", vec![]).await.map(|_| ())
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pool) => pool.close().await,
        }
    }
}
