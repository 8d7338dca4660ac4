//! Targets (servers on loopback only) and HTTP/1.1 keep-alive connections to them.
//!
//! A raw hyper connection per load worker, no pool and no URL parsing per request: the client
//! must stay far cheaper per request than the server it measures.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Longest wait for one response before it counts as lost.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One server under test.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as given, for the `Host` header and WebSocket URLs.
    pub authority: String,
}

impl Target {
    /// `http://127.0.0.1:8000` (a trailing path is ignored). Anything that is not a loopback
    /// address is refused: this tool only ever loads this machine.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: give an http:// URL"))?;
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        let addr: SocketAddr = authority
            .replacen("localhost", "127.0.0.1", 1)
            .parse()
            .map_err(|e| format!("{url}: {e} (give host:port with a numeric loopback address)"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{url}: load goes to loopback addresses only"));
        }
        Ok(Target { addr, authority })
    }

    /// A comma-separated list, as `--url` takes it.
    pub fn parse_list(urls: &str) -> Result<Vec<Target>, String> {
        let targets: Vec<Target> = urls
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(|u| Target::parse(u.trim()))
            .collect::<Result<_, _>>()?;
        if targets.is_empty() {
            return Err("--url: no server given".into());
        }
        Ok(targets)
    }
}

/// A response, body read in full.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// `X-Total-Count` as a number.
    pub fn total_count(&self) -> Option<u64> {
        self.headers
            .get("x-total-count")?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl Conn {
    pub async fn open(target: &Target) -> Result<Conn, Error> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(target.addr))
            .await
            .map_err(|_| "connect timed out")??;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            authority: target.authority.clone(),
        })
    }

    /// Sends one request and reads the whole response, within [`REQUEST_TIMEOUT`].
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, Error> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| "request timed out")?
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, Error> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl Conn {
    /// GETs `path` and reads the body as it comes, counting its bytes without keeping them
    /// (large files), within [`REQUEST_TIMEOUT`].
    pub async fn download(&mut self, path: &str) -> Result<(StatusCode, u64), Error> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.sender.ready().await?;
            let request = Request::builder()
                .method(Method::GET)
                .uri(path)
                .header(HOST, &self.authority)
                .body(Full::new(Bytes::new()))?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            let mut body = response.into_body();
            let mut length = 0u64;
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame?.data_ref() {
                    length += data.len() as u64;
                }
            }
            Ok((status, length))
        })
        .await
        .map_err(|_| "request timed out")?
    }
}

/// One request on a fresh connection (set-up and checks, not load).
pub async fn once(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<Reply, Error> {
    Conn::open(target).await?.send(method, path, body).await
}
