//! Random mutations of the recorded Instagram fixtures (a value replaced by any JSON, a key
//! removed or added, an item doubled), posted to a running server: never a 5xx, whatever the
//! damage. Shrinking finds the smallest damage when one does.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use super::{fixtures, post_raw};
use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(mutated_fixtures_never_get_a_5xx);

/// One change to a document, aimed by `at` at one of its values.
#[derive(Debug, Clone)]
enum Mutation {
    Replace { at: usize, with: Value },
    Remove { at: usize },
    Insert { at: usize, key: String, with: Value },
    Double { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, json_value()).prop_map(|(at, with)| Mutation::Replace { at, with }),
        at.prop_map(|at| Mutation::Remove { at }),
        (at, key(), json_value()).prop_map(|(at, key, with)| Mutation::Insert { at, key, with }),
        at.prop_map(|at| Mutation::Double { at }),
    ]
}

/// The names Instagram's items use, so mutations land where the parser looks.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("message"),
            Just("mid"),
            Just("text"),
            Just("is_echo"),
            Just("is_deleted"),
            Just("attachments"),
            Just("payload"),
            Just("url"),
            Just("type"),
            Just("read"),
            Just("postback"),
            Just("title"),
            Just("sender"),
            Just("recipient"),
            Just("id"),
            Just("timestamp"),
            Just("messaging"),
            Just("standby"),
            Just("changes"),
            Just("field"),
            Just("value"),
            Just("reaction"),
            Just("reply_to"),
        ]
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        Just(Value::from("\u{0}")),
        Just(Value::from("9".repeat(700))),
        Just(Value::from(
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"
        )),
        Just(Value::from(1736330400000_i64)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Pointers to every value of `doc`, depth first.
fn pointers(doc: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn apply(doc: &mut Value, mutation: &Mutation) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let pick = |at: usize| all[at % all.len()].clone();
    match mutation {
        Mutation::Replace { at, with } => {
            if let Some(target) = doc.pointer_mut(&pick(*at)) {
                *target = with.clone();
            }
        }
        Mutation::Remove { at } => {
            let pointer = pick(*at);
            let Some((parent, last)) = pointer.rsplit_once('/') else {
                return;
            };
            match doc.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < items.len() {
                            items.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
        Mutation::Insert { at, key, with } => {
            if let Some(Value::Object(map)) = doc.pointer_mut(&pick(*at)) {
                map.insert(key.clone(), with.clone());
            }
        }
        Mutation::Double { at } => {
            if let Some(Value::Array(items)) = doc.pointer_mut(&pick(*at)) {
                if let Some(first) = items.first().cloned() {
                    items.push(first);
                }
            }
        }
    }
}

async fn mutated_fixtures_never_get_a_5xx(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let docs: Vec<(String, Value)> = fixtures()
        .into_iter()
        .map(|(name, bytes)| (name, serde_json::from_slice(&bytes).expect("fixture JSON")))
        .collect();
    let runtime = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..docs.len(), proptest::collection::vec(mutation(), 1..5));
    let result = runner.run(&strategy, |(which, mutations)| {
        let (name, original) = &docs[which];
        let mut doc = original.clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        let body = doc.to_string();
        let status = tokio::task::block_in_place(|| {
            runtime.block_on(async { post_raw(&app, body.as_bytes(), None).await.status() })
        });
        prop_assert!(
            status.as_u16() < 500,
            "{name} mutated by {mutations:?} got {status}: {body}"
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
