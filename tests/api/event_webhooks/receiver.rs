//! A real HTTP receiver for the event webhook: an axum server on 127.0.0.1 that logs every
//! request and answers as the test's policy says (a status, a status after a delay, or hanging
//! until released).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub event: Value,
    /// The status answered; 0 while (or if) it hangs.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn delivery(&self) -> &str {
        self.header("x-switchboard-delivery").unwrap_or_default()
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }

    /// The conversation the event belongs to.
    pub fn conversation(&self) -> i64 {
        let data = &self.event["data"];
        match self.event["type"].as_str() {
            Some("new_message" | "message_status") => data["conversation_id"].as_i64(),
            _ => data["id"].as_i64(),
        }
        .unwrap_or(-1)
    }

    /// A short label: the type and, for messages, the content.
    pub fn label(&self) -> String {
        let kind = self.event["type"].as_str().unwrap_or("?");
        match self.event["data"]["content"].as_str() {
            Some(content) => format!("{kind}:{content}"),
            None => kind.to_string(),
        }
    }
}

/// How to answer a request.
pub enum Answer {
    Status(u16),
    After(Duration, u16),
    /// Hang until [`Receiver::release`], then answer 200.
    Hang,
}

/// Decides the answer from the request, the how-many-th request of its delivery id it is
/// (1-based), and everything logged before it.
pub type Policy = Box<dyn Fn(&Received, usize, &[Received]) -> Answer + Send + Sync>;

struct Shared {
    log: Mutex<Vec<Received>>,
    policy: Mutex<Policy>,
    released: AtomicBool,
    release: Notify,
    hanging: AtomicUsize,
}

pub struct Receiver {
    pub address: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start(policy: Policy) -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().expect("address"), policy).await
    }

    pub async fn start_on(address: SocketAddr, policy: Policy) -> Receiver {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind the receiver");
        let address = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            policy: Mutex::new(policy),
            released: AtomicBool::new(false),
            release: Notify::new(),
            hanging: AtomicUsize::new(0),
        });
        let state = shared.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { answer(&state, headers, body).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { address, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Lets every hanging request (and every later one the policy hangs) answer 200.
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
        self.shared.release.notify_waiters();
    }

    /// Requests hanging now.
    pub fn hanging(&self) -> usize {
        self.shared.hanging.load(Ordering::SeqCst)
    }

    pub fn log(&self) -> Vec<Received> {
        self.shared.log.lock().expect("log").clone()
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.log().into_iter().filter(Received::accepted).collect()
    }

    /// Waits until at least `n` requests were answered 2xx (fails after `within`).
    pub async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            if tokio::time::Instant::now() > deadline {
                let seen: Vec<_> = self
                    .log()
                    .iter()
                    .map(|r| format!("{} {}", r.label(), r.answered))
                    .collect();
                panic!(
                    "{} of {n} events accepted within {within:?}; requests: {seen:?}",
                    accepted.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `condition` holds for the log (fails after `within`).
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        condition: impl Fn(&[Received]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while !condition(&self.log()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never happened: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(shared: &Shared, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = String::from_utf8_lossy(&body).into_owned();
    let event = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut received = Received {
        headers,
        body,
        event,
        answered: 0,
    };
    let (index, decided) = {
        let mut log = shared.log.lock().expect("log");
        let attempt = 1 + log
            .iter()
            .filter(|r| r.delivery() == received.delivery())
            .count();
        let decided = (shared.policy.lock().expect("policy"))(&received, attempt, &log);
        if let Answer::Status(code) = decided {
            received.answered = code;
        }
        log.push(received);
        (log.len() - 1, decided)
    };
    let code = match decided {
        Answer::Status(code) => return status(code),
        Answer::After(wait, code) => {
            tokio::time::sleep(wait).await;
            code
        }
        Answer::Hang => {
            shared.hanging.fetch_add(1, Ordering::SeqCst);
            loop {
                let released = shared.release.notified();
                if shared.released.load(Ordering::SeqCst) {
                    break;
                }
                released.await;
            }
            shared.hanging.fetch_sub(1, Ordering::SeqCst);
            200
        }
    };
    if let Some(entry) = shared.log.lock().expect("log").get_mut(index) {
        entry.answered = code;
    }
    status(code)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Answers every request with `code`.
pub fn always(code: u16) -> Policy {
    Box::new(move |_, _, _| Answer::Status(code))
}
