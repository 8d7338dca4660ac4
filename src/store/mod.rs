//! The database: one pool type over PostgreSQL or SQLite, and one file of queries per table.
//! Every query is a single SQL text that runs unchanged on both backends.

mod arg;
pub mod attachments;
pub mod channels;
pub mod conversations;
mod db;
pub mod early_statuses;
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

/// Whether `err` means the database cannot be reached right now (as opposed to a bad query).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    use sqlx::Error::*;
    match err {
        PoolTimedOut | PoolClosed | Io(_) | Tls(_) | WorkerCrashed => true,
        Database(db) => {
            // 57P01 admin shutdown, 57P03 cannot connect now, 08xxx connection exceptions,
            // SQLITE_BUSY (5) / SQLITE_LOCKED (6) after the busy timeout.
            let code = db.code().unwrap_or_default();
            code.starts_with("08")
                || code == "57P01"
                || code == "57P03"
                || code == "5"
                || code == "6"
        }
        _ => false,
    }
}
