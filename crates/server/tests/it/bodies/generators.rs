//! The generators of `bodies`: JSON of any shape, biased towards the values the server gives a
//! meaning to, and the byte-level damage a body can carry.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

use super::{BODY_LIMIT, Field, Kind};
use crate::helpers::PASSWORD;

/// Strings the server gives a meaning to, so that bodies get past the first checks.
fn plausible_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "totp",
            "sms",
            "email",
            "recovery_code",
            "admins",
            "everyone",
            "bob@example.com",
            "user@localhost",
            PASSWORD,
            "a much better passphrase 42",
            "+447400123456",
            "07400 123456",
            "GB",
            "US",
            "123456",
            "",
            " ",
            "00000000-0000-0000-0000-000000000000",
            "\u{0}",
            "\u{202e}x",
        ])
        .prop_map(str::to_owned),
        "[0-9]{4,8}",
        "[a-z]{1,8}@[a-z]{1,8}\\.(com|org)",
        any::<String>(),
    ]
}

fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        plausible_string().prop_map(Value::String),
        plausible_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(plausible_string(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A value of the field's type most of the time (so that bodies reach the handlers), else
/// anything.
fn field_value(kind: Kind) -> BoxedStrategy<Value> {
    let typed = match kind {
        Kind::String => plausible_string().prop_map(Value::String).boxed(),
        Kind::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Integer => prop_oneof![
            (0u64..200).prop_map(Value::from),
            prop::sample::select(vec![
                0u64,
                1,
                89,
                90,
                91,
                100,
                1441,
                43200,
                43201,
                u32::MAX as u64,
                u32::MAX as u64 + 1,
                u64::MAX
            ])
            .prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
        ]
        .boxed(),
        Kind::Array => prop::collection::vec(plausible_string().prop_map(Value::String), 0..5)
            .prop_map(Value::Array)
            .boxed(),
    };
    prop_oneof![3 => typed, 1 => json_value()].boxed()
}

/// An object with some of `fields`, and now and then an unknown field.
fn object_with(fields: Vec<Field>) -> BoxedStrategy<Value> {
    let values: Vec<_> = fields
        .iter()
        .map(|field| prop::option::weighted(0.75, field_value(field.kind)))
        .collect();
    let names: Vec<String> = fields.into_iter().map(|field| field.name).collect();
    let extra = prop_oneof![
        6 => Just(Vec::new()),
        1 => prop::collection::vec(("[a-z_]{1,12}", json_value()), 1..3),
    ];
    (values, extra)
        .prop_map(move |(values, extra)| {
            let mut object: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in names.iter().zip(values) {
                if let Some(value) = value {
                    object.insert(name.clone(), value);
                }
            }
            Value::Object(object)
        })
        .boxed()
}

/// Text that is JSON only to a lenient reader, or not at all, for one field.
fn raw_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1e400",
            "-1e400",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "1.0e-400",
            "-0",
            "NaN",
            "Infinity",
            "\"\\ud800\"",
            "\"\\udfff\\ud800\"",
            "\"\\u0000\"",
            "\"unterminated",
            "'single'",
            "tru",
            "{\"a\":1,}",
            "[1,2,]",
        ])
        .prop_map(str::to_owned),
        (1usize..400).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        (1usize..300).prop_map(|depth| format!(
            "{}1{}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        )),
        (100usize..6000).prop_map(|length| format!("\"{}\"", "x".repeat(length))),
    ]
}

pub fn body(fields: Vec<Field>) -> BoxedStrategy<Vec<u8>> {
    let mut names: Vec<String> = fields.iter().map(|field| field.name.clone()).collect();
    names.push("unknown".into());
    prop_oneof![
        8 => object_with(fields.clone()).prop_map(|value| serde_json::to_vec(&value).unwrap()),
        2 => json_value().prop_map(|value| serde_json::to_vec(&value).unwrap()),
        1 => (object_with(fields.clone()), any::<Index>()).prop_map(|(value, cut)| {
            let bytes = serde_json::to_vec(&value).unwrap();
            bytes[..cut.index(bytes.len())].to_vec()
        }),
        1 => (object_with(fields), any::<Index>(), 0x80u8..=0xff).prop_map(|(value, at, byte)| {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            let at = at.index(bytes.len() + 1);
            bytes.insert(at, byte);
            bytes
        }),
        2 => (prop::sample::select(names), raw_value())
            .prop_map(|(name, raw)| format!("{{\"{name}\": {raw}}}").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => Just(format!("{{\"x\": \"{}\"}}", "y".repeat(BODY_LIMIT)).into_bytes()),
    ]
    .boxed()
}

/// The SMS webhook's form: some of Twilio's fields, signed right half of the time.
pub fn form_body() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let fields = prop::collection::vec(
        (
            prop::sample::select(vec!["From", "To", "Body", "MessageSid", "x"]),
            plausible_string(),
        ),
        0..5,
    );
    prop_oneof![
        (fields, any::<bool>()).prop_map(|(fields, signed)| {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &fields {
                form.append_pair(name, value);
            }
            (form.finish().into_bytes(), signed)
        }),
        (prop::collection::vec(any::<u8>(), 0..128), any::<bool>()),
    ]
}
