//! How the mail servers are reached: TLS from the first byte or STARTTLS, always checking the
//! certificate (the test servers' own CA through `EMAIL_CA_FILE`), the clear only to a loopback
//! host; and several instances on one PostgreSQL reading a mailbox once.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use serde_json::json;

use super::reading::simple_mail;
use super::sending::{send, sending_app};
use super::{metric, reading_app, wait_for_health, wait_for_message, wait_for_messages};
use crate::helpers::mail::{encode, mail_servers, unique};
use crate::helpers::{fresh_database, postgres_available, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    imaps_and_starttls_are_read_with_the_configured_ca,
    an_untrusted_certificate_is_refused_even_on_loopback,
    smtps_and_starttls_are_used_as_the_url_says,
);

const WAIT: Duration = Duration::from_secs(20);

async fn imaps_and_starttls_are_read_with_the_configured_ca(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    for (scheme, address) in [("imaps", &mail.imaps), ("imap", &mail.imap_starttls)] {
        let (user, ana) = (unique("desk"), unique("ana"));
        let url = format!(
            "{scheme}://{}:{}@{address}",
            encode(&user),
            encode(&mail.password)
        );
        let app = reading_app(
            backend,
            &mail,
            &user,
            &[("EMAIL_IMAP_URL", &url), ("EMAIL_CA_FILE", &mail.ca)],
        )
        .await;
        mail.append(
            &user,
            &simple_mail(&ana, &format!("{scheme}@x"), scheme),
            None,
            None,
        )
        .await;
        wait_for_message(&app, &format!("{scheme}@x"), WAIT).await;
        // Dovecot notes TLS on the login line of a session that used it (the test's own APPEND
        // goes to 127.0.0.2).
        let log = std::fs::read_to_string(&mail.imap_log).unwrap_or_default();
        let logins: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("Login: ") && l.contains(&format!("user=<{user}>")))
            .filter(|l| l.contains("lip=127.0.0.1,"))
            .collect();
        assert!(!logins.is_empty(), "no login of {user} in the log");
        assert!(
            logins.iter().all(|l| l.contains("TLS")),
            "{scheme}: {logins:?}"
        );
    }
}

async fn an_untrusted_certificate_is_refused_even_on_loopback(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    for (scheme, address) in [("imaps", &mail.imaps), ("imap", &mail.imap_starttls)] {
        let user = unique("desk");
        let url = format!(
            "{scheme}://{}:{}@{address}",
            encode(&user),
            encode(&mail.password)
        );
        // No EMAIL_CA_FILE: the self-signed certificate is not trusted, and STARTTLS offered
        // is never skipped for the clear.
        let app = reading_app(backend, &mail, &user, &[("EMAIL_IMAP_URL", &url)]).await;
        let health = wait_for_health(&app, "failing", WAIT).await;
        let email = health["email"].as_str().unwrap_or("");
        assert!(email.contains("certificate"), "{scheme}: {health}");
        let log = std::fs::read_to_string(&mail.imap_log).unwrap_or_default();
        assert!(
            !log.contains(&format!("user=<{user}>")),
            "{scheme}: logged in anyway"
        );
    }
}

async fn smtps_and_starttls_are_used_as_the_url_says(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let user = unique("desk");
    for (scheme, address, listener) in [
        ("smtps", &mail.smtps, "smtps"),
        ("smtp", &mail.smtp_starttls, "starttls"),
    ] {
        let url = format!(
            "{scheme}://{}:{}@{address}",
            encode("tls@example.org"),
            encode(&mail.password)
        );
        let app = sending_app(
            backend,
            &mail,
            &user,
            &[("EMAIL_SMTP_URL", &url), ("EMAIL_CA_FILE", &mail.ca)],
        )
        .await;
        let to = unique("ana");
        let (status, body) = send(
            &app,
            json!({"channel": "gmail", "to": to, "message": "Hola"}),
        )
        .await;
        assert_eq!(status, 200, "{scheme}: {body}");
        let received = mail.wait_received(&to, 1, WAIT).await;
        assert_eq!(received[0].0["listener"], listener);
        assert_eq!(received[0].0["tls"], true);
        assert_eq!(received[0].0["auth_login"], "tls@example.org");
    }
    // Without the CA the certificate is not trusted: nothing goes out in the clear instead.
    let url = format!("smtp://{}", mail.smtp_starttls);
    let app = sending_app(backend, &mail, &user, &[("EMAIL_SMTP_URL", &url)]).await;
    let to = unique("ana");
    let (status, body) = send(
        &app,
        json!({"channel": "gmail", "to": to, "message": "Hola"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("certificate"),
        "{body}"
    );
    assert!(mail.received(&to).is_empty());
}

/// This machine's address on its network, if it has one besides loopback.
fn outward_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.200:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clear_is_refused_to_a_host_that_is_not_loopback() {
    let Some(mail) = mail_servers() else { return };
    let Some(ip) = outward_address() else {
        eprintln!("no address besides loopback: skipping");
        return;
    };
    // A forwarder on that address to the server without STARTTLS.
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let target = mail.imap.clone();
    let forwarder = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let user = unique("desk");
    let url = format!(
        "imap://{}:{}@{ip}:{port}",
        encode(&user),
        encode(&mail.password)
    );
    let app = reading_app(Backend::Sqlite, &mail, &user, &[("EMAIL_IMAP_URL", &url)]).await;
    let health = wait_for_health(&app, "failing", WAIT).await;
    assert!(
        health["email"]
            .as_str()
            .unwrap_or("")
            .contains("offers no STARTTLS"),
        "{health}"
    );
    let log = std::fs::read_to_string(&mail.imap_log).unwrap_or_default();
    assert!(
        !log.contains(&format!("user=<{user}>")),
        "the password went out in the clear"
    );
    forwarder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_read_each_mail_once() {
    let Some(mail) = mail_servers() else { return };
    if !postgres_available() {
        return;
    }
    let (user, ana) = (unique("desk"), unique("ana"));
    let (database_url, _) = fresh_database(Backend::Postgres).await;
    let vars = |media: &str| {
        vec![
            ("EMAIL_IMAP_URL".to_string(), mail.imap_url(&user)),
            ("EMAIL_POLL_SECS".to_string(), "1".to_string()),
            ("MEDIA_DIR".to_string(), media.to_string()),
        ]
    };
    let media = std::env::temp_dir().join(format!("sb-media-{}", uuid::Uuid::new_v4().simple()));
    let media = media.display().to_string();
    let one = TestApp::start(Backend::Postgres, database_url.clone(), None, vars(&media)).await;
    let two = TestApp::start(Backend::Postgres, database_url, None, vars(&media)).await;
    for n in 0..30 {
        mail.append(
            &user,
            &simple_mail(&ana, &format!("m{n}@x"), "Hello"),
            None,
            None,
        )
        .await;
    }
    assert_eq!(wait_for_messages(&one, 30, WAIT).await.len(), 30);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(wait_for_messages(&two, 31, Duration::ZERO).await.len(), 30);
    let fetched = metric(&one, "switchboard_email_mails_fetched_total").await
        + metric(&two, "switchboard_email_mails_fetched_total").await;
    assert_eq!(fetched, 30, "one instance at a time reads the mailbox");
    let _ = std::fs::remove_dir_all(media);
}
