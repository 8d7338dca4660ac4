//! Damaged and mutated input never panics and never breaks the parser's invariants.

use super::*;
#[test]
fn only_non_objects_are_errors() {
    assert!(matches!(parse(b""), Err(ParseError::NotJson(_))));
    assert!(matches!(
        parse(b"{\"entry\": ["),
        Err(ParseError::NotJson(_))
    ));
    assert!(matches!(parse(b"\xff\xfe"), Err(ParseError::NotJson(_))));
    for body in [&b"[]"[..], b"\"entry\"", b"3", b"null"] {
        assert!(matches!(parse(body), Err(ParseError::NotAnObject)));
    }
    for body in [
        &b"{}"[..],
        br#"{"entry": {}}"#,
        br#"{"entry": [null, 1, {"changes": "x"}, {"changes": [null, {"value": 3}]}]}"#,
        br#"{"entry": [{"changes": [{"field": 5, "value": {"messages": [{"id": "x", "from": "1"}]}}]}]}"#,
    ] {
        assert_eq!(parse(body).expect("parses"), Webhook::default());
    }
}

/// A small deterministic generator, so failures reproduce without a new dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn truncated_fixtures_never_panic() {
    for (name, bytes) in fixtures() {
        for end in 0..bytes.len() {
            if let Ok(webhook) = parse(&bytes[..end]) {
                assert_complete(&webhook, &format!("{name}[..{end}]"));
            }
        }
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(parse(&bytes).is_err() || bytes.first() == Some(&b'{'));
    }
    // Random bytes are almost never JSON, so also mutate real payloads with JSON syntax.
    const ALPHABET: &[u8] = b"{}[]\",:0123456789 -.eE+tfnul\\x\xc3\xa9";
    for (name, original) in fixtures() {
        for round in 0..40 {
            let mut bytes = original.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = ALPHABET[rng.below(ALPHABET.len())];
            }
            if let Ok(webhook) = parse(&bytes) {
                assert_complete(&webhook, &format!("{name} mutation {round}"));
            }
        }
    }
}

/// Every place a node sits in a JSON tree, as a path of object keys and array indices.
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        prefix.push(key);
        paths(child, prefix, out);
        prefix.pop();
    }
}

fn node_mut<'a>(mut value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    for key in path {
        value = match value {
            Value::Object(map) => map.get_mut(key)?,
            Value::Array(list) => list.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

#[test]
fn any_node_of_another_type_never_panics_or_breaks_invariants() {
    let replacements = [
        Value::Null,
        Value::from(0),
        Value::from(-1.5),
        Value::from(""),
        Value::from("x"),
        Value::Array(Vec::new()),
        Value::Object(serde_json::Map::new()),
    ];
    for (name, bytes) in fixtures() {
        if name.starts_with("field_") {
            continue;
        }
        let original: Value = serde_json::from_slice(&bytes).expect("fixtures are JSON");
        let mut all = Vec::new();
        paths(&original, &mut Vec::new(), &mut all);
        for path in all.iter().filter(|p| !p.is_empty()) {
            for replacement in &replacements {
                let mut changed = original.clone();
                if let Some(node) = node_mut(&mut changed, path) {
                    *node = replacement.clone();
                }
                let body = serde_json::to_vec(&changed).expect("serialises");
                let webhook = parse(&body).expect("still an object");
                assert_complete(&webhook, &format!("{name} {path:?} = {replacement}"));
            }
        }
    }
}
