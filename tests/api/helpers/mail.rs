//! The real mail servers of `scripts/mail-servers` (Dovecot and a recording SMTP server, see
//! `tests/mail/README.md`), from the tests' side: fresh mailboxes, delivering mail by IMAP
//! APPEND, reading a mailbox's flags, and what the SMTP server received.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::net::TcpStream;

/// The servers' addresses, from the variables `scripts/mail-servers start` exports.
#[derive(Clone, Debug)]
pub struct MailServers {
    /// IMAP without TLS on 127.0.0.2 (no STARTTLS offered).
    pub imap: String,
    /// IMAP offering STARTTLS on 127.0.0.1.
    pub imap_starttls: String,
    pub imaps: String,
    pub password: String,
    pub smtp: String,
    pub smtp_starttls: String,
    pub smtps: String,
    pub smtp_dir: PathBuf,
    /// The self-signed certificate of every TLS port.
    pub ca: String,
    pub imap_log: PathBuf,
}

/// The mail servers, or `None` (the test skips) when they were not started; under `CI=true`
/// their absence fails the test.
pub fn mail_servers() -> Option<MailServers> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let found = (|| {
        Some(MailServers {
            imap: var("SWITCHBOARD_TEST_IMAP")?,
            imap_starttls: var("SWITCHBOARD_TEST_IMAP_STARTTLS")?,
            imaps: var("SWITCHBOARD_TEST_IMAPS")?,
            password: var("SWITCHBOARD_TEST_IMAP_PASSWORD")?,
            smtp: var("SWITCHBOARD_TEST_SMTP")?,
            smtp_starttls: var("SWITCHBOARD_TEST_SMTP_STARTTLS")?,
            smtps: var("SWITCHBOARD_TEST_SMTPS")?,
            smtp_dir: var("SWITCHBOARD_TEST_SMTP_DIR")?.into(),
            ca: var("SWITCHBOARD_TEST_MAIL_CA")?,
            imap_log: var("SWITCHBOARD_TEST_IMAP_LOG")?.into(),
        })
    })();
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true but the mail servers' variables are missing: scripts/mail-servers start"
            );
        }
        eprintln!("SWITCHBOARD_TEST_IMAP/SMTP not set: skipping an email test");
    }
    found
}

/// Percent-encodes a URL's user or password.
pub fn encode(part: &str) -> String {
    utf8_percent_encode(part, NON_ALPHANUMERIC).to_string()
}

/// A fresh address: Dovecot gives every new user an empty mailbox, and the SMTP server's
/// recordings are told apart by recipient.
pub fn unique(local: &str) -> String {
    format!("{local}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// LF line ends to CRLF, as mail travels.
pub fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// A sample mail of `tests/fixtures/mail`, with `replace`ments (a unique sender), in CRLF.
pub fn fixture(name: &str, replace: &[(&str, &str)]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name);
    let mut raw = std::fs::read(&path).expect("a sample mail");
    for (from, to) in replace {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if text.contains(from) {
            // Byte-wise, so an 8-bit (ISO-8859-1) body stays as it is.
            raw = replace_bytes(&raw, from.as_bytes(), to.as_bytes());
        }
    }
    crlf(&raw)
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

type Session = async_imap::Session<TcpStream>;

impl MailServers {
    /// `EMAIL_IMAP_URL` for `user`'s INBOX on the plain listener (loopback, no STARTTLS).
    pub fn imap_url(&self, user: &str) -> String {
        format!(
            "imap://{}:{}@{}",
            encode(user),
            encode(&self.password),
            self.imap
        )
    }

    /// `EMAIL_SMTP_URL` of the plain listener (loopback), with credentials.
    pub fn smtp_url(&self) -> String {
        format!(
            "smtp://{}:{}@{}",
            encode("desk@example.org"),
            encode(&self.password),
            self.smtp
        )
    }

    async fn session(&self, user: &str) -> Session {
        let tcp = TcpStream::connect(&self.imap)
            .await
            .expect("connect to IMAP");
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.expect("greeting");
        client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    /// Delivers `raw` (CRLF) to `user`'s INBOX, with `flags` (`(\Flagged)`) and an arrival
    /// time (`INTERNALDATE`, e.g. `01-Jan-2020 10:00:00 +0000`) when given.
    pub async fn append(&self, user: &str, raw: &[u8], flags: Option<&str>, arrival: Option<&str>) {
        let quoted = arrival.map(|a| format!("\"{a}\""));
        let work = async {
            let mut session = self.session(user).await;
            session
                .append("INBOX", flags, quoted.as_deref(), raw)
                .await
                .expect("APPEND");
            let _ = session.logout().await;
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .expect("APPEND within 10 s");
    }

    /// Each mail's UID and flags (without `\Recent`), read with EXAMINE (read-only).
    pub async fn flags(&self, user: &str) -> Vec<(u32, Vec<String>)> {
        let work = async {
            let mut session = self.session(user).await;
            session.examine("INBOX").await.expect("EXAMINE");
            let fetches: Vec<_> = session
                .uid_fetch("1:*", "(UID FLAGS)")
                .await
                .expect("FETCH")
                .try_collect()
                .await
                .expect("FETCH");
            let mut flags: Vec<(u32, Vec<String>)> = fetches
                .iter()
                .map(|f| {
                    let mut names: Vec<String> = f
                        .flags()
                        .map(|flag| format!("{flag:?}"))
                        .filter(|flag| flag != "Recent")
                        .collect();
                    names.sort();
                    (f.uid.unwrap_or(0), names)
                })
                .collect();
            flags.sort();
            let _ = session.logout().await;
            flags
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .expect("flags within 10 s")
    }

    /// What the SMTP server accepted for `rcpt`: each message's recording and raw bytes.
    pub fn received(&self, rcpt: &str) -> Vec<(Value, Vec<u8>)> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.smtp_dir) else {
            return found;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(meta) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let to_them = meta["rcpt_to"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|a| a.as_str().is_some_and(|a| a.eq_ignore_ascii_case(rcpt)))
            });
            if to_them {
                let eml = std::fs::read(path.with_extension("eml")).unwrap_or_default();
                found.push((meta, eml));
            }
        }
        found.sort_by(|a, b| a.0["eml"].as_str().cmp(&b.0["eml"].as_str()));
        found
    }

    /// Waits up to `wait` until `n` messages for `rcpt` were accepted; returns them.
    pub async fn wait_received(
        &self,
        rcpt: &str,
        n: usize,
        wait: Duration,
    ) -> Vec<(Value, Vec<u8>)> {
        let started = Instant::now();
        loop {
            let found = self.received(rcpt);
            if found.len() >= n || started.elapsed() > wait {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The SMTP server's answers to RCPT and DATA for `rcpt`, in order.
    pub fn attempts(&self, rcpt: &str) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.smtp_dir.join("attempts.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|a| {
                a["rcpt"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(rcpt))
                    || a["rcpt_to"].as_array().is_some_and(|r| {
                        r.iter()
                            .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(rcpt)))
                    })
            })
            .collect()
    }
}
