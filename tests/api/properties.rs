//! Property tests of the pure parsers: no input makes them panic, and valid input round-trips.

use proptest::prelude::*;
use serde_json::json;
use switchboard::channels::instagram::webhook as instagram;
use switchboard::channels::meta::signature;
use switchboard::channels::whatsapp::webhook;
use switchboard::config::Secret;
use switchboard::domain::PhoneNumber;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn phone_parsing_never_panics(input in any::<String>()) {
        let _ = PhoneNumber::parse(&input);
    }

    #[test]
    fn a_formatted_number_parses_to_its_digits(
        digits in "[0-9]{7,15}",
        plus in any::<bool>(),
        seps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just("."), Just("("), Just(")")], 15),
    ) {
        let mut formatted = String::from(if plus { "+" } else { "" });
        for (i, d) in digits.chars().enumerate() {
            formatted.push(d);
            formatted.push_str(seps[i]);
        }
        let parsed = PhoneNumber::parse(&formatted).map_err(|e| TestCaseError::fail(format!("{formatted}: {e}")))?;
        prop_assert_eq!(parsed.digits(), digits.as_str());
    }

    #[test]
    fn the_webhook_parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = webhook::parse(&bytes);
    }

    #[test]
    fn the_webhook_parser_never_panics_on_json(value in json_value()) {
        let _ = webhook::parse(value.to_string().as_bytes());
        let wrapped = json!({"entry": [{"changes": [{"field": "messages", "value": {"messages": [value.clone()], "statuses": [value]}}]}]});
        let _ = webhook::parse(wrapped.to_string().as_bytes());
    }

    #[test]
    fn a_valid_text_delivery_round_trips(
        wamid in "wamid\\.[A-Za-z0-9=_-]{10,60}",
        from in "[1-9][0-9]{6,14}",
        name in visible_text(40),
        body in visible_text(500),
        seconds in 1_000_000_000i64..4_000_000_000i64,
    ) {
        let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "123"},
            "contacts": [{"profile": {"name": name}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": seconds.to_string(), "type": "text", "text": {"body": body}}]
        }}]}]});
        let parsed = webhook::parse(payload.to_string().as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.messages.len(), 1);
        let message = &parsed.messages[0];
        prop_assert_eq!(&message.wamid, &wamid);
        prop_assert_eq!(&message.sender, &from);
        prop_assert_eq!(message.phone.as_deref(), Some(from.as_str()));
        prop_assert_eq!(message.contact_name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(&message.content, &body);
        prop_assert_eq!(message.timestamp.timestamp(), seconds);
        prop_assert_eq!(&message.raw, &payload["entry"][0]["changes"][0]["value"]["messages"][0]);
    }

    #[test]
    fn the_instagram_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), value in json_value()) {
        let _ = instagram::parse(&bytes).map(|w| w.into_delivery());
        let _ = instagram::parse(value.to_string().as_bytes()).map(|w| w.into_delivery());
        let wrapped = json!({"entry": [{"messaging": [value.clone()], "standby": [{"message": value.clone()}],
            "changes": [{"field": "messages", "value": value.clone()}]}]});
        let _ = instagram::parse(wrapped.to_string().as_bytes()).map(|w| w.into_delivery());
        let item = json!({"entry": [{"messaging": [{"sender": {"id": "1"}, "recipient": {"id": "2"},
            "message": {"mid": "m", "text": value.clone(), "attachments": [value.clone()], "is_echo": value.clone()},
            "timestamp": value}]}]});
        let _ = instagram::parse(item.to_string().as_bytes()).map(|w| w.into_delivery());
    }

    #[test]
    fn a_valid_instagram_dm_round_trips(
        mid in "[A-Za-z0-9_-]{10,120}",
        from in "[1-9][0-9]{10,17}",
        text in visible_text(1000),
        millis in 1_000_000_000_000i64..4_000_000_000_000i64,
    ) {
        let payload = json!({"object": "instagram", "entry": [{"id": "17841400000000001", "time": millis, "messaging": [
            {"sender": {"id": from}, "recipient": {"id": "17841400000000001"}, "timestamp": millis, "message": {"mid": mid, "text": text}}
        ]}]});
        let parsed = instagram::parse(payload.to_string().as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.messages.len(), 1);
        let message = &parsed.messages[0];
        prop_assert_eq!(&message.mid, &mid);
        prop_assert_eq!(&message.customer, &from);
        prop_assert_eq!(&message.content, &text);
        prop_assert_eq!(message.timestamp.timestamp_millis(), millis);
        prop_assert!(!message.from_business);
        prop_assert_eq!(&message.raw, &payload["entry"][0]["messaging"][0]);
    }

    #[test]
    fn signatures_never_panic_and_only_the_right_one_passes(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        header in proptest::option::of(any::<String>()),
        secret in "[ -~]{1,40}",
    ) {
        let secrets = [Secret::new(secret.clone())];
        let _ = signature::verify(&secrets, &body, header.as_deref());
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        mac.update(&body);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let good = format!("sha256={hex}");
        prop_assert!(signature::verify(&secrets, &body, Some(&good)));
        let mut tampered = body.clone();
        tampered.push(0);
        prop_assert!(!signature::verify(&secrets, &tampered, Some(&good)));
    }
}

/// Text a person could send: not blank, no surrounding whitespace (the parser trims those).
fn visible_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("\\PC{{1,{max}}}"))
        .expect("regex")
        .prop_filter("visible", |s| !s.is_empty() && s.trim() == s)
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,20}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("text"),
            Just("image"),
            Just("from"),
            Just("id"),
            Just("timestamp"),
            Just("status")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("id".to_string()),
                    Just("from".to_string()),
                    Just("text".to_string()),
                    Just("body".to_string()),
                    Just("timestamp".to_string()),
                    Just("contacts".to_string()),
                    "[a-z_]{1,10}".prop_map(|s| s)
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
