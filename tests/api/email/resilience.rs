//! Nothing imported twice, nothing lost: a restart resumes where it stopped, a mail that cannot
//! be read does not stop the next, and an IMAP server that goes away or refuses is retried and
//! shown in `/health` until it is back.

use std::time::Duration;

use super::reading::simple_mail;
use super::{
    mail_messages, metric, reading_app, wait_for_health, wait_for_message, wait_for_messages,
};
use crate::helpers::mail::{encode, mail_servers, unique};
use crate::helpers::proxy::Proxy;
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(
    a_restart_resumes_without_duplicates_or_reading_again,
    a_mail_that_cannot_be_read_does_not_stop_the_next,
    an_imap_server_that_goes_away_is_retried_and_shown_in_health,
    a_refused_login_is_shown_in_health_without_the_password,
);

const WAIT: Duration = Duration::from_secs(20);

async fn a_restart_resumes_without_duplicates_or_reading_again(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    let app = reading_app(backend, &mail, &user, &[]).await;
    mail.append(&user, &simple_mail(&ana, "first@x", "First"), None, None)
        .await;
    mail.append(&user, &simple_mail(&ana, "second@x", "Second"), None, None)
        .await;
    assert_eq!(wait_for_messages(&app, 2, WAIT).await.len(), 2);
    assert_eq!(
        metric(&app, "switchboard_email_mails_fetched_total").await,
        2
    );

    let app = app.restart().await;
    mail.append(&user, &simple_mail(&ana, "third@x", "Third"), None, None)
        .await;
    wait_for_message(&app, "third@x", WAIT).await;
    // Give a wrongly restarted reading time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        metric(&app, "switchboard_email_mails_fetched_total").await,
        1,
        "after the restart only the new mail is read"
    );
    let ids: Vec<_> = mail_messages(&app)
        .await
        .iter()
        .map(|m| m["external_message_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    for id in ["first@x", "second@x", "third@x"] {
        assert!(ids.iter().any(|i| i == id), "{id} in {ids:?}");
    }
}

async fn a_mail_that_cannot_be_read_does_not_stop_the_next(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    let app = reading_app(backend, &mail, &user, &[]).await;
    // No header at all, not even a sender: skipped with a log line.
    mail.append(
        &user,
        b"\xff\xfe this is not a mail \x80\x81\r\n",
        None,
        None,
    )
    .await;
    // A sender, then MIME that ends nowhere: stored with what could be read.
    let broken = format!(
        "From: {ana}\r\nMessage-ID: <broken@x>\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n\
         --zz\r\nContent-Type: text/plain\r\n\r\nhalf a mail\r\n--zz\r\nContent-Type: image/png\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n%%%not base64"
    );
    mail.append(&user, broken.as_bytes(), None, None).await;
    mail.append(&user, &simple_mail(&ana, "good@x", "Good"), None, None)
        .await;
    let good = wait_for_message(&app, "good@x", WAIT).await;
    assert_eq!(good["content"], "Good, body.");
    let broken = wait_for_message(&app, "broken@x", WAIT).await;
    assert!(
        broken["content"]
            .as_str()
            .unwrap_or("")
            .contains("half a mail"),
        "{broken}"
    );
    assert_eq!(mail_messages(&app).await.len(), 2);
    assert_eq!(wait_for_health(&app, "ok", WAIT).await["email"], "ok");
}

async fn an_imap_server_that_goes_away_is_retried_and_shown_in_health(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    let target = mail.imap.parse().expect("host:port");
    let mut proxy = Proxy::start(target).await;
    proxy.cut();
    let url = format!(
        "imap://{}:{}@127.0.0.1:{}",
        encode(&user),
        encode(&mail.password),
        proxy.port
    );
    let app = reading_app(backend, &mail, &user, &[("EMAIL_IMAP_URL", &url)]).await;
    let health = wait_for_health(&app, "failing", WAIT).await;
    let email = health["email"].as_str().unwrap_or("");
    assert!(email.starts_with("failing: connect"), "{health}");
    assert_eq!(
        (health["status"].as_str(), health["database"].as_str()),
        (Some("ok"), Some("ok"))
    );

    mail.append(
        &user,
        &simple_mail(&ana, "while-down@x", "While down"),
        None,
        None,
    )
    .await;
    proxy.restore().await;
    wait_for_message(&app, "while-down@x", WAIT).await;
    assert_eq!(wait_for_health(&app, "ok", WAIT).await["email"], "ok");

    // Going away in the middle of a session (IDLE): noticed, retried, nothing lost.
    proxy.cut();
    wait_for_health(&app, "failing", WAIT).await;
    mail.append(
        &user,
        &simple_mail(&ana, "second-outage@x", "Second outage"),
        None,
        None,
    )
    .await;
    proxy.restore().await;
    wait_for_message(&app, "second-outage@x", WAIT).await;
    assert_eq!(mail_messages(&app).await.len(), 2);
    assert!(metric(&app, "switchboard_email_read_failures_total").await >= 2);
}

async fn a_refused_login_is_shown_in_health_without_the_password(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let user = unique("desk");
    let url = format!("imap://{}:{}@{}", encode(&user), "wrong-s3cret", mail.imap);
    let app = reading_app(backend, &mail, &user, &[("EMAIL_IMAP_URL", &url)]).await;
    let health = wait_for_health(&app, "failing", WAIT).await;
    let email = health["email"].as_str().unwrap_or("");
    assert!(email.starts_with("failing: login refused"), "{health}");
    assert!(!email.contains("wrong-s3cret"), "{health}");
}
