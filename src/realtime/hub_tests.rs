//! The hub's ring on its own: bounds, eviction, `missed` counts, release of what was taken.
//! Sizes count whole frames: a short text is framed with a 2-byte header.

use super::Hub;
use crate::realtime::frame::Frame;

fn publish(hub: &Hub, text: &str) {
    hub.publish_text(text);
}

fn texts(events: &[Frame]) -> Vec<&str> {
    events
        .iter()
        .map(|e| std::str::from_utf8(e.payload()).expect("UTF-8"))
        .collect()
}

#[test]
fn the_byte_bound_evicts_the_oldest_events_and_a_lagging_cursor_is_told_how_many() {
    let hub = Hub::new(100, 14);
    let mut slow = hub.subscribe();
    for text in ["aaaa", "bbbb", "cccc", "dddd"] {
        publish(&hub, text);
    }
    assert_eq!(
        hub.queued_bytes(),
        12,
        "three frames of 6 bytes would exceed the bound of 14"
    );
    let batch = slow.take(64, 1 << 20);
    assert_eq!(batch.missed, 2);
    assert_eq!(texts(&batch.events), ["cccc", "dddd"]);
    assert_eq!(hub.dropped(), 2);
    publish(&hub, "eeee");
    let batch = slow.take(64, 1 << 20);
    assert_eq!((batch.missed, texts(&batch.events)), (0, vec!["eeee"]));
}

#[test]
fn the_event_bound_evicts_too_and_the_newest_event_is_kept_whatever_its_size() {
    let hub = Hub::new(2, 8);
    let mut slow = hub.subscribe();
    for text in ["a", "b", "c"] {
        publish(&hub, text);
    }
    let batch = slow.take(64, 1 << 20);
    assert_eq!((batch.missed, texts(&batch.events)), (1, vec!["b", "c"]));
    publish(&hub, "larger than the bound");
    let batch = slow.take(64, 1 << 20);
    assert_eq!(texts(&batch.events), ["larger than the bound"]);
}

#[test]
fn what_every_subscriber_took_is_released_and_nothing_is_kept_without_subscribers() {
    let hub = Hub::new(100, 1 << 20);
    publish(&hub, "nobody hears this");
    assert_eq!(hub.queued_bytes(), 0);
    let mut a = hub.subscribe();
    let mut b = hub.subscribe();
    publish(&hub, "12345");
    assert_eq!(texts(&a.take(64, 1 << 20).events), ["12345"]);
    assert_eq!(hub.queued_bytes(), 7, "b has yet to take it");
    assert_eq!(texts(&b.take(64, 1 << 20).events), ["12345"]);
    assert_eq!(hub.queued_bytes(), 0);
    publish(&hub, "678");
    drop(b);
    assert_eq!(hub.queued_bytes(), 5, "a has yet to take it");
    drop(a);
    assert_eq!(hub.queued_bytes(), 0, "a closed socket holds nothing");
}

#[test]
fn a_batch_is_limited_in_events_and_in_bytes_and_the_rest_waits() {
    let hub = Hub::new(100, 1 << 20);
    let mut socket = hub.subscribe();
    for text in ["111", "222", "333", "444", "555"] {
        publish(&hub, text);
    }
    assert_eq!(texts(&socket.take(2, 1 << 20).events), ["111", "222"]);
    assert_eq!(texts(&socket.take(64, 11).events), ["333", "444"]);
    assert_eq!(
        texts(&socket.take(64, 1).events),
        ["555"],
        "one event even if larger"
    );
    assert!(socket.take(64, 1 << 20).events.is_empty());
}

#[tokio::test]
async fn changed_wakes_for_a_publication_and_for_events_left_behind() {
    use std::time::Duration;
    let hub = Hub::new(100, 1 << 20);
    let mut socket = hub.subscribe();
    let quiet = tokio::time::timeout(Duration::from_millis(50), socket.changed()).await;
    assert!(quiet.is_err(), "nothing published yet");
    publish(&hub, "1");
    publish(&hub, "2");
    tokio::time::timeout(Duration::from_secs(1), socket.changed())
        .await
        .expect("woken by a publication");
    assert_eq!(texts(&socket.take(1, 1 << 20).events), ["1"]);
    tokio::time::timeout(Duration::from_secs(1), socket.changed())
        .await
        .expect("woken at once: an event is still waiting");
    assert_eq!(texts(&socket.take(1, 1 << 20).events), ["2"]);
    let quiet = tokio::time::timeout(Duration::from_millis(50), socket.changed()).await;
    assert!(quiet.is_err(), "everything was taken");
}
