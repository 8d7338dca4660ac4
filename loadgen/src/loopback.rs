//! `loopback-writer` and `loopback`: the machine's own limit for fan-out, with no server in it.
//! How many event-sized frames per second one core writes to N loopback TCP sockets, one
//! `write(2)` per frame, sweeping over the sockets as the server does for an event, while the
//! readers run on the load core. On loopback the receiving side's TCP work runs inside the
//! sender's system call, so this is what one core can deliver, whatever the server does above
//! the kernel; the fan-out rows are reported against it.
//!
//! The writer is a plain loop over non-blocking sockets (no runtime, no epoll: a socket whose
//! buffer is full is skipped until the next sweep), with the server's socket options (Nagle's
//! algorithm on). It runs where the server would (`bench/run` starts it like one); the readers
//! only count bytes.

use std::cell::RefCell;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::conn::{Error, Target};
use crate::measure::{Watched, Window};

/// How long the readers may take to connect, and the writer to see them all.
const CONNECT_LIMIT: Duration = Duration::from_secs(60);
/// Frames flow this long before the measurement window opens.
const WARM_UP: Duration = Duration::from_secs(1);

/// The length of a `new_message` frame of the fan-out scenario (content `fo:<seq>:`), header
/// included.
pub const EVENT_FRAME_BYTES: usize = 400;

/// A WebSocket text frame of `len` bytes in all, as the server sends an event (unmasked).
pub fn frame(len: usize) -> Vec<u8> {
    let len = len.clamp(3, 65_535);
    let (mut frame, payload) = if len - 2 < 126 {
        (vec![0x81, (len - 2) as u8], len - 2)
    } else {
        let payload = len - 4;
        let [hi, lo] = (payload as u16).to_be_bytes();
        (vec![0x81, 126, hi, lo], payload)
    };
    frame.extend(std::iter::repeat_n(b'x', payload));
    frame
}

/// Accepts `clients` connections on `listen`, then writes `frame` to each in turn until every
/// reader has gone or `limit` has passed. Returns a JSON line with what it wrote.
pub fn write(
    listen: SocketAddr,
    clients: usize,
    frame_bytes: usize,
    limit: Duration,
) -> Result<Value, Error> {
    if !listen.ip().is_loopback() {
        return Err("loopback-writer listens on a loopback address only".into());
    }
    let listener = listen_for(listen, clients)?;
    let started = Instant::now();
    let mut sockets: Vec<TcpStream> = Vec::with_capacity(clients);
    while sockets.len() < clients {
        match listener.accept() {
            Ok((socket, _)) => {
                socket.set_nonblocking(true)?;
                sockets.push(socket);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if started.elapsed() > CONNECT_LIMIT {
                    return Err(format!("{} of {clients} readers connected", sockets.len()).into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let frame = frame(frame_bytes);
    let writing = Instant::now();
    let (mut written, mut full, mut sweeps) = (0u64, 0u64, 0u64);
    while !sockets.is_empty() && writing.elapsed() < limit {
        sockets.retain_mut(|socket| match socket.write(&frame) {
            // A frame cut short desynchronises nothing: the readers only count bytes.
            Ok(_) => {
                written += 1;
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                full += 1;
                true
            }
            Err(_) => false,
        });
        sweeps += 1;
    }
    let secs = writing.elapsed().as_secs_f64();
    Ok(json!({
        "clients": clients,
        "frame_bytes": frame.len(),
        "frames_written": written,
        "writes_refused_full": full,
        "sweeps": sweeps,
        "written_per_s": (written as f64 / secs).round(),
        "check": "ok",
    }))
}

/// A non-blocking listener whose accept queue holds every reader at once. The standard
/// library's backlog is 128: readers connecting faster than the writer accepts overflowed it,
/// and each dropped handshake waited out TCP's retransmission backoff (858 of 1,000 readers had
/// connected after a minute).
fn listen_for(listen: SocketAddr, clients: usize) -> Result<TcpListener, Error> {
    let socket = match listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(listen)?;
    // The kernel caps it at net.core.somaxconn (4096 by default).
    let backlog = u32::try_from(clients).unwrap_or(u32::MAX).max(128);
    // Registered with the runtime by `listen`, taken back out as a plain non-blocking socket.
    Ok(socket.listen(backlog)?.into_std()?)
}

/// A connection to the writer, which may still be starting: retried for a few seconds.
async fn connect(addr: SocketAddr) -> Option<tokio::net::TcpStream> {
    for _ in 0..50 {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            return Some(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

thread_local! {
    /// Where every reader's bytes go: only their count matters.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 256 * 1024]);
}

/// Connects `clients` readers to the writer at `target`, lets frames flow, and measures the
/// rate at which they arrive over `duration`.
pub async fn read(
    target: Target,
    clients: usize,
    frame_bytes: usize,
    duration: Duration,
    watched: &Watched,
) -> Result<Value, Error> {
    let frame_len = frame(frame_bytes).len() as u64;
    let received = Arc::new(AtomicU64::new(0));
    // Readers that have received their first bytes: the writer has accepted them all (it
    // starts writing only then, and may take a while when connections queue up).
    let flowing = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(200));
    let mut readers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (received, flowing, gate) = (received.clone(), flowing.clone(), gate.clone());
        readers.push(tokio::spawn(async move {
            let permit = gate.acquire().await.ok()?;
            let stream = connect(target.addr).await?;
            drop(permit);
            let mut first = true;
            loop {
                if stream.readable().await.is_err() {
                    return Some(());
                }
                let got = SCRATCH.with(|b| stream.try_read(&mut b.borrow_mut()));
                match got {
                    Ok(0) => return Some(()),
                    Ok(n) => {
                        received.fetch_add(n as u64, Ordering::Relaxed);
                        if std::mem::take(&mut first) {
                            flowing.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => return Some(()),
                }
            }
        }));
    }
    let deadline = Instant::now() + CONNECT_LIMIT;
    while flowing.load(Ordering::Relaxed) < clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = flowing.load(Ordering::Relaxed);
    tokio::time::sleep(WARM_UP).await;
    let window = Window::open(watched);
    let (before, started) = (received.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(duration).await;
    let (after, secs) = (
        received.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
    let cpu = window.close();
    for reader in &readers {
        reader.abort();
    }
    let frames = (after - before) / frame_len;
    let mut problems = Vec::new();
    if connected < clients {
        problems.push(format!("{connected} of {clients} readers got frames"));
    }
    if frames == 0 {
        problems.push("no frame arrived".to_string());
    }
    Ok(json!({
        "clients": clients,
        "frame_bytes": frame_len,
        "frames": frames,
        "frames_per_s": (frames as f64 / secs).round(),
        "cpu": cpu,
        "check": crate::read::check(problems),
    }))
}
