//! The database: one pool type over PostgreSQL or SQLite, and one file of queries per table.
//! Every query is a single SQL text that runs unchanged on both backends.

pub mod channels;
pub mod conversations;
mod db;
pub mod messages;
pub mod outbox;

pub use db::{Arg, Backend, Db, Exec, PoolSettings, Record, Tx};

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
