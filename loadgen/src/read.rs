//! `read` (pages of a bulk-loaded inbox) and `http` (a route that touches no database: the
//! HTTP ceiling of the server itself).

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::closed_loop::{self, Req, Settings, Workload};
use crate::conn::{self, Error};
use crate::measure::{mix, Watched};

/// Which list a `read` run pages through.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Page {
    /// `GET /api/v1/messages?conversation_id=<random>&limit=50`
    Messages,
    /// `GET /api/v1/conversations?limit=50`
    Conversations,
}

struct Read {
    page: Page,
    conversations: u64,
}

impl Workload for Read {
    fn request(&self, n: u64) -> Req {
        let path = match self.page {
            Page::Messages => format!(
                "/api/v1/messages?conversation_id={}&limit=50",
                mix(n) % self.conversations + 1
            ),
            Page::Conversations => "/api/v1/conversations?limit=50".to_string(),
        };
        Req {
            id: n,
            method: Method::GET,
            path,
            body: None,
        }
    }

    fn expect(&self) -> StatusCode {
        StatusCode::OK
    }
}

pub async fn read(
    settings: Settings,
    page: Page,
    conversations: u64,
    watched: &Watched,
) -> Result<Value, Error> {
    // A look at one page first: a run over an empty database would measure nothing useful.
    let probe = Read {
        page,
        conversations,
    }
    .request(1);
    let reply = conn::once(&settings.targets[0], Method::GET, &probe.path, None).await?;
    let items = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    let total = reply.total_count().unwrap_or(0);
    let outcome = closed_loop::run(
        &settings,
        Arc::new(Read {
            page,
            conversations,
        }),
        watched,
    )
    .await?;
    let mut problems = Vec::new();
    if items != 50 {
        problems.push(format!("a page held {items} items, not 50"));
    }
    if outcome.rejected + outcome.unsure > 0 {
        problems.push(format!(
            "{} requests not answered 200",
            outcome.rejected + outcome.unsure
        ));
    }
    let mut v = outcome.summary();
    if let Value::Object(map) = &mut v {
        map.insert("page_items".into(), json!(items));
        map.insert("page_total_count".into(), json!(total));
        map.insert("check".into(), check(problems));
    }
    Ok(v)
}

struct Plain {
    path: String,
}

impl Workload for Plain {
    fn request(&self, n: u64) -> Req {
        Req {
            id: n,
            method: Method::GET,
            path: self.path.clone(),
            body: None,
        }
    }

    fn expect(&self) -> StatusCode {
        StatusCode::OK
    }
}

pub async fn http(settings: Settings, path: String, watched: &Watched) -> Result<Value, Error> {
    let outcome = closed_loop::run(&settings, Arc::new(Plain { path }), watched).await?;
    let mut problems = Vec::new();
    if outcome.rejected + outcome.unsure > 0 {
        problems.push(format!(
            "{} requests not answered 200",
            outcome.rejected + outcome.unsure
        ));
    }
    let mut v = outcome.summary();
    if let Value::Object(map) = &mut v {
        map.insert("check".into(), check(problems));
    }
    Ok(v)
}

pub fn check(problems: Vec<String>) -> Value {
    if problems.is_empty() {
        json!("ok")
    } else {
        json!(format!("FAIL: {}", problems.join("; ")))
    }
}
