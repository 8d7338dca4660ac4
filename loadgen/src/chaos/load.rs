//! The soak's clients: keep-alive connections that post until the deadline through kills and
//! restarts, reconnecting as soon as the server listens again, and sort every request they
//! wrote by its answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::conn::{Conn, Target};

/// Wait between two connection attempts while the server is down.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// One kind of request: its path, and the body of request number `n`.
pub trait Requests: Send + Sync + 'static {
    fn path(&self) -> &'static str;
    fn body(&self, n: u64) -> Bytes;
}

/// What became of the requests written, by number.
#[derive(Default)]
pub struct Answers {
    /// Answered 2xx: stored, by the contract.
    pub acknowledged: Vec<u64>,
    /// Answered 503: refused, nothing stored.
    pub refused: Vec<u64>,
    /// No answer (the server died, or the connection was one it had before): it may or may not
    /// have been stored.
    pub unanswered: Vec<u64>,
    /// Any other answer (a 4xx, a 500): wrong.
    pub rejected: Vec<u64>,
    /// One wrong answer, to show.
    pub sample: Option<String>,
}

impl Answers {
    pub fn written(&self) -> usize {
        self.acknowledged.len() + self.refused.len() + self.unanswered.len() + self.rejected.len()
    }

    /// Every request not acknowledged.
    pub fn not_acknowledged(&self) -> impl Iterator<Item = u64> + '_ {
        self.refused
            .iter()
            .chain(&self.unanswered)
            .chain(&self.rejected)
            .copied()
    }

    fn absorb(&mut self, other: Answers) {
        self.acknowledged.extend(other.acknowledged);
        self.refused.extend(other.refused);
        self.unanswered.extend(other.unanswered);
        self.rejected.extend(other.rejected);
        self.sample = self.sample.take().or(other.sample);
    }
}

/// `connections` clients posting `requests` until `deadline`; numbers count from `first`.
pub async fn run(
    target: &Target,
    requests: Arc<dyn Requests>,
    connections: usize,
    first: u64,
    deadline: Instant,
) -> Result<Answers, tokio::task::JoinError> {
    let counter = Arc::new(AtomicU64::new(first));
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (target, requests, counter) = (target.clone(), requests.clone(), counter.clone());
            tokio::spawn(client(target, requests, counter, deadline))
        })
        .collect();
    let mut all = Answers::default();
    for client in clients {
        all.absorb(client.await?);
    }
    Ok(all)
}

async fn client(
    target: Target,
    requests: Arc<dyn Requests>,
    counter: Arc<AtomicU64>,
    deadline: Instant,
) -> Answers {
    let mut answers = Answers::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < deadline {
        if conn.is_none() {
            match Conn::open(&target).await {
                Ok(opened) => conn = Some(opened),
                Err(_) => {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            }
        }
        let Some(open) = conn.as_mut() else { continue };
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let reply = open
            .send(Method::POST, requests.path(), Some(requests.body(n)))
            .await;
        match reply {
            Ok(reply) if reply.status.is_success() => answers.acknowledged.push(n),
            Ok(reply) if reply.status == StatusCode::SERVICE_UNAVAILABLE => answers.refused.push(n),
            Ok(reply) => {
                answers.rejected.push(n);
                answers.sample.get_or_insert_with(|| {
                    let body = String::from_utf8_lossy(&reply.body);
                    format!(
                        "{} {}",
                        reply.status,
                        body.chars().take(300).collect::<String>()
                    )
                });
            }
            Err(_) => {
                answers.unanswered.push(n);
                conn = None;
            }
        }
    }
    answers
}

/// Tries for each request of [`post_each`].
const TRIES: usize = 5;

/// Posts request `n` for every number in `numbers` over `connections` connections, each until
/// it is acknowledged (a few tries); returns the numbers never acknowledged.
pub async fn post_each(
    target: &Target,
    requests: Arc<dyn Requests>,
    numbers: &[u64],
    connections: usize,
) -> Result<Vec<u64>, tokio::task::JoinError> {
    let connections = connections.clamp(1, numbers.len().max(1));
    let shares: Vec<Vec<u64>> = (0..connections)
        .map(|c| {
            numbers
                .iter()
                .copied()
                .skip(c)
                .step_by(connections)
                .collect()
        })
        .collect();
    let clients: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (target, requests) = (target.clone(), requests.clone());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                let mut conn: Option<Conn> = None;
                for n in share {
                    let mut acknowledged = false;
                    for _ in 0..TRIES {
                        if conn.is_none() {
                            conn = Conn::open(&target).await.ok();
                        }
                        if let Some(open) = conn.as_mut() {
                            match open
                                .send(Method::POST, requests.path(), Some(requests.body(n)))
                                .await
                            {
                                Ok(reply) if reply.status.is_success() => {
                                    acknowledged = true;
                                    break;
                                }
                                Ok(_) => {}
                                Err(_) => conn = None,
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if !acknowledged {
                        failed.push(n);
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = Vec::new();
    for client in clients {
        failed.extend(client.await?);
    }
    Ok(failed)
}
