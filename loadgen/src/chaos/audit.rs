//! What the server stored of the soak, read back through its API once it is no longer killed:
//! rows per webhook (inbound, by wamid) and per send (outbound, by text), with each row's
//! status.

use std::collections::HashMap;

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::conn::{Conn, Error, Target};

/// The largest page the API serves.
const PAGE: usize = 500;

/// The rows of one direction, by the number of the request they came from.
#[derive(Default)]
pub struct Rows {
    /// Each row's status, per request number.
    pub per_request: HashMap<u64, Vec<String>>,
    /// Rows that belong to no request of this soak.
    pub foreign: u64,
}

impl Rows {
    /// Rows beyond the first of anything stored twice or more.
    pub fn doubled(&self) -> u64 {
        self.per_request
            .values()
            .map(|rows| rows.len().saturating_sub(1) as u64)
            .sum()
    }

    /// Rows with `status`.
    pub fn with_status(&self, status: &str) -> usize {
        self.per_request
            .values()
            .flatten()
            .filter(|s| *s == status)
            .count()
    }

    pub fn holds(&self, n: u64) -> bool {
        self.per_request.contains_key(&n)
    }
}

/// Which rows to read, and how to tell the request a row came from.
pub struct Kind<'a> {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// The field that names the request: `external_message_id` (a wamid) or `content`.
    pub field: &'static str,
    pub number: &'a dyn Fn(&str) -> Option<u64>,
}

/// Reads every message of `kind`'s direction, page by page.
pub async fn rows(target: &Target, kind: &Kind<'_>) -> Result<Rows, Error> {
    let mut conn = Conn::open(target).await?;
    let mut rows = Rows::default();
    let mut offset = 0;
    loop {
        // Pages in timestamp order, ties by id: stable while nothing is written.
        let path = format!(
            "/api/v1/messages?direction={}&order=asc&limit={PAGE}&offset={offset}",
            kind.direction
        );
        let reply = conn.send(Method::GET, &path, None).await?;
        if reply.status != StatusCode::OK {
            return Err(format!("GET {path}: {}", reply.status).into());
        }
        let page: Value = serde_json::from_slice(&reply.body)?;
        let page = page.as_array().ok_or("a page of messages is a list")?;
        for row in page {
            let text = |field: &str| row[field].as_str().unwrap_or_default();
            match (kind.number)(text(kind.field)) {
                Some(n) => rows
                    .per_request
                    .entry(n)
                    .or_default()
                    .push(text("status").to_owned()),
                None => rows.foreign += 1,
            }
        }
        if page.len() < PAGE {
            return Ok(rows);
        }
        offset += page.len();
    }
}
