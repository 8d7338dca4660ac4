//! Micro-benchmarks of the pure functions every webhook delivery and every broadcast goes
//! through: webhook parsing, the signature check and event serialisation.
//!
//! `cargo bench --bench hot_paths` (append `-- --quick` for a short run). The load scenarios
//! that measure the whole server are in `bench/run`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use switchboard::channels::meta::signature;
use switchboard::channels::whatsapp::webhook;
use switchboard::config::Secret;
use switchboard::domain::{ChannelKind, Direction, Message, Status};
use switchboard::realtime::Event;

const TEXT_1: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/meta/whatsapp/text_1.json"
));

/// The fixture with its one message repeated `n` times, each with its own wamid and sender:
/// what one busy delivery looks like.
fn batch(n: usize) -> Vec<u8> {
    let mut root: Value = serde_json::from_str(TEXT_1).expect("the fixture is JSON");
    let value = &mut root["entry"][0]["changes"][0]["value"];
    let template = value["messages"][0].clone();
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            let mut m = template.clone();
            m["id"] = Value::from(format!("wamid.batch.{i}"));
            m["from"] = Value::from(format!("3460000{i:04}"));
            m["text"]["body"] = Value::from(format!("message number {i} of the batch"));
            m
        })
        .collect();
    value["messages"] = Value::Array(messages);
    serde_json::to_vec(&root).expect("serialisable")
}

/// `sha256=<hex>` of `body` under `secret`, as Meta sends it.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn message() -> Message {
    let at = Utc.with_ymd_and_hms(2025, 1, 8, 10, 0, 0).unwrap();
    Message {
        id: 123_456,
        content: "Hola, quiero hacer una reserva para el sábado".into(),
        message_type: "text".into(),
        direction: Direction::Inbound,
        sender_name: Some("Ana".into()),
        sender_identifier: Some("34600123456".into()),
        timestamp: at,
        message_metadata: Some(
            r#"{"from":"34600123456","id":"wamid.HBgLMzQ2MDAxMjM0NTYVAgASGBQzQUZCRTQ2","timestamp":"1736330400","text":{"body":"Hola, quiero hacer una reserva para el sábado"},"type":"text"}"#
                .into(),
        ),
        conversation_id: 42,
        external_message_id: Some("wamid.HBgLMzQ2MDAxMjM0NTYVAgASGBQzQUZCRTQ2".into()),
        is_read: false,
        created_at: at,
        status: Status::Received,
        error: None,
        attachments: Vec::new(),
        attachment_count: 0,
        channel: ChannelKind::Whatsapp,
    }
}

fn webhook_parse(c: &mut Criterion) {
    let one = TEXT_1.as_bytes();
    let fifty = batch(50);
    assert_eq!(webhook::parse(one).unwrap().messages.len(), 1);
    assert_eq!(webhook::parse(&fifty).unwrap().messages.len(), 50);
    let mut group = c.benchmark_group("webhook_parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("text_1", |b| b.iter(|| webhook::parse(black_box(one))));
    group.throughput(Throughput::Elements(50));
    group.bench_function("batch_50", |b| b.iter(|| webhook::parse(black_box(&fifty))));
    group.finish();
}

fn signature_verify(c: &mut Criterion) {
    let secrets = [Secret::new("s")];
    let one = TEXT_1.as_bytes();
    let fifty = batch(50);
    let one_header = sign("s", one);
    let fifty_header = sign("s", &fifty);
    assert!(signature::verify(&secrets, one, Some(&one_header)));
    assert!(signature::verify(&secrets, &fifty, Some(&fifty_header)));
    let mut group = c.benchmark_group("signature_verify");
    group.throughput(Throughput::Bytes(one.len() as u64));
    group.bench_function("text_1", |b| {
        b.iter(|| signature::verify(&secrets, black_box(one), Some(black_box(&one_header))))
    });
    group.throughput(Throughput::Bytes(fifty.len() as u64));
    group.bench_function("batch_50", |b| {
        b.iter(|| signature::verify(&secrets, black_box(&fifty), Some(black_box(&fifty_header))))
    });
    group.finish();
}

fn event_serialise(c: &mut Criterion) {
    let message = message();
    let json = Event::new_message(&message).to_json();
    assert!(json.starts_with(r#"{"type":"new_message","data":{"id":123456"#));
    let mut group = c.benchmark_group("event_serialise");
    group.throughput(Throughput::Elements(1));
    group.bench_function("new_message", |b| {
        b.iter(|| Event::new_message(black_box(&message)).to_json())
    });
    group.finish();
}

criterion_group!(benches, webhook_parse, signature_verify, event_serialise);
criterion_main!(benches);
