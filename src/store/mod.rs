//! The database: one pool type over PostgreSQL or SQLite, and one file of queries per table.
//! Every query is a single SQL text that runs unchanged on both backends.

mod arg;
pub mod attachments;
pub mod channels;
pub mod conversations;
mod db;
pub mod early_statuses;
pub mod event_webhooks;
pub mod jobs;
pub mod mailboxes;
pub mod messages;
pub mod notify;
pub mod outbox;

pub use arg::Arg;
pub use db::{Backend, Db, Exec, PoolSettings, Record, Tx};
pub use notify::EventListener;

/// Builds a `WHERE … AND …` clause with numbered placeholders, so optional filters become
/// plain, index-friendly conditions instead of `($1 IS NULL OR …)`.
#[derive(Default)]
pub(crate) struct Filter {
    conditions: Vec<String>,
    pub(crate) args: Vec<Arg>,
}

impl Filter {
    /// Adds `condition`, in which `?` stands for the placeholder of `value`.
    pub(crate) fn and(&mut self, condition: &str, value: impl Into<Arg>) {
        self.args.push(value.into());
        let placeholder = format!("${}", self.args.len());
        self.conditions.push(condition.replace('?', &placeholder));
    }

    /// The next placeholder to use after the filter's own (for LIMIT and OFFSET).
    pub(crate) fn placeholder(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    pub(crate) fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// A row of a page plus the `total_count` column that rides along with it.
struct Paged<T> {
    row: T,
    total: i64,
}

impl<'r, T: sqlx::FromRow<'r, sqlx::postgres::PgRow>> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    for Paged<T>
{
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok(Paged {
            row: T::from_row(row)?,
            total: row.try_get("total_count")?,
        })
    }
}

impl<'r, T: sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    for Paged<T>
{
    fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok(Paged {
            row: T::from_row(row)?,
            total: row.try_get("total_count")?,
        })
    }
}

/// One page of a list and the size of the whole filtered set, in one round trip.
///
/// `page_sql` selects the page's columns plus `(<count_sql>) AS total_count`: an uncorrelated
/// scalar subquery, which both databases evaluate once per query. Only an empty page (past the
/// end, or nothing matches) needs `count_sql` on its own. Both take the same `args`; `count_sql`
/// uses only the leading ones (the filter's, not LIMIT and OFFSET).
pub(crate) async fn page<T: Record>(
    ex: &mut Exec<'_>,
    page_sql: &str,
    count_sql: &str,
    args: Vec<Arg>,
    filter_args: usize,
) -> sqlx::Result<(Vec<T>, i64)> {
    let rows: Vec<Paged<T>> = ex.fetch_all(page_sql, args.clone()).await?;
    let total = match rows.first() {
        Some(first) => first.total,
        None => {
            let count: Count = ex
                .fetch_one(count_sql, args.into_iter().take(filter_args).collect())
                .await?;
            count.n
        }
    };
    Ok((rows.into_iter().map(|p| p.row).collect(), total))
}

/// The id a `RETURNING id` gives back.
#[derive(sqlx::FromRow)]
pub(crate) struct Id {
    pub(crate) id: i64,
}

/// A `COUNT(*)` result.
#[derive(sqlx::FromRow)]
pub(crate) struct Count {
    pub(crate) n: i64,
}

/// Whether `err` is a unique-constraint violation. Each table has at most one unique key a
/// caller can hit, so the kind is enough to tell which rule was broken.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether `err` means the database cannot be reached right now (as opposed to a bad query):
/// the one place where a database failure is told apart from a bug, so that every route
/// answers an outage with 503 and the webhook writer stops retrying.
///
/// sqlx reports an outage in several ways: `Io` (connection refused or reset, the server gone
/// mid-query), `PoolTimedOut` (no connection within the acquire timeout; sqlx retries a refused
/// connection, `53300` and `57P03` until then), and `Database` when the server answers a
/// connection or a query with an error of its own.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    use sqlx::Error::*;
    match err {
        PoolTimedOut | PoolClosed | Io(_) | Tls(_) | WorkerCrashed => true,
        Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres_unavailable(pg.code())
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                sqlite_unavailable(db.code().as_deref())
            } else {
                false
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs that mean "not now" rather than "never".
fn postgres_unavailable(code: &str) -> bool {
    // Class 08: connection exceptions.
    code.starts_with("08")
        || matches!(
            code,
            // admin_shutdown, crash_shutdown, cannot_connect_now (starting up, shutting down,
            // in recovery): a restart.
            "57P01" | "57P02" | "57P03"
            // too_many_connections: the server's or the role's or the database's limit.
            | "53300"
            // object_not_in_prerequisite_state: raised at connection when the database does not
            // accept connections (ALLOW_CONNECTIONS false, as during maintenance); our queries
            // use nothing else that raises it.
            | "55000"
            // read_only_sql_transaction: a write reached a standby, as during a fail-over.
            | "25006"
        )
}

/// SQLite result codes (sqlx gives the extended code, whose low byte is the primary one) that
/// mean the file cannot be written now.
fn sqlite_unavailable(code: Option<&str>) -> bool {
    let Some(primary) = code.and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff) else {
        return false;
    };
    // SQLITE_BUSY and SQLITE_LOCKED after the busy timeout, SQLITE_IOERR, SQLITE_FULL (disk
    // full), SQLITE_CANTOPEN.
    matches!(primary, 5 | 6 | 10 | 13 | 14)
}
