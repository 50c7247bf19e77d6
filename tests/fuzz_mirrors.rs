//! Proptest mirrors of the cargo-fuzz targets in `fuzz/`: one property per target, on
//! arbitrary bytes fed through the very same `check_*` functions the fuzz targets call
//! (`tests/fuzz_props/mod.rs`), plus structured inputs that reach deeper than random bytes
//! do in a few hundred cases. These run in every `cargo test`; the fuzzers run for longer
//! outside it (README, "Fuzzing").

#[path = "fuzz_props/mod.rs"]
mod props;

use atllas_webhooks::fixtures::{self, FakeData};
use atllas_webhooks::model::CallEvent;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // The fuzz targets read no files; neither does this.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A JSON value for a `calls.execute` field: mostly strings, sometimes other types.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "\\PC{0,24}".prop_map(Value::from),
        2 => "[+0 ()1-9.-]{0,20}".prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!([1, {"a": null}])),
        1 => Just(json!({"nested": "x"})),
    ]
}

/// A `calls.execute`-shaped body with documented, snake_case and random keys.
fn execute_body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("phoneNumber".to_owned()),
        Just("firstName".to_owned()),
        Just("note".to_owned()),
        Just("zipCode".to_owned()),
        Just("phone_number".to_owned()),
        "[a-zA-Z_]{1,12}",
    ];
    (
        vec((key, field_value()), 0..6),
        prop_oneof![Just(json!("calls.execute")), field_value()],
    )
        .prop_map(|(fields, kind)| {
            let data: serde_json::Map<String, Value> = fields.into_iter().collect();
            json!({"type": kind, "data": data}).to_string().into_bytes()
        })
}

/// An RFC 3339 time with any year, fraction (0 to 9 digits) and offset: what a sender may
/// put in a transcript `when`.
fn rfc3339() -> impl Strategy<Value = String> {
    (
        0u32..=9999,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..=60,
        0usize..=9,
        any::<u32>(),
        prop_oneof![
            Just(None),
            (any::<bool>(), 0u32..24, 0u32..60).prop_map(Some)
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, digits, frac, offset)| {
            let frac = if digits == 0 {
                String::new()
            } else {
                format!(".{:09}", frac % 1_000_000_000)[..=digits].to_owned()
            };
            let offset = match offset {
                None => "Z".to_owned(),
                Some((neg, oh, om)) => format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }),
            };
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset}")
        })
}

/// A fake event (either kind) with its transcript times and timestamp replaced.
fn event_json() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        any::<bool>(),
        vec(rfc3339(), 0..4),
        prop_oneof![Just(None), any::<i64>().prop_map(Some)],
    )
        .prop_map(|(seed, finished, whens, timestamp)| {
            let mut fake = FakeData::new(seed);
            let event: CallEvent = if finished {
                fake.call_finished().into()
            } else {
                fake.call_completed().into()
            };
            let mut v: Value = serde_json::from_slice(&event.to_vec()).expect("JSON");
            if let Some(turns) = v["call"]["transcript"].as_array_mut() {
                for (turn, when) in turns.iter_mut().zip(whens) {
                    turn["when"] = Value::from(when);
                }
            }
            if let Some(ts) = timestamp {
                v["timestamp"] = Value::from(ts);
            }
            v.to_string().into_bytes()
        })
}

/// A URL-ish string: a scheme, maybe userinfo, a host of any kind, a port, a path.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("https://"),
        Just("http://"),
        Just("HTTPS://"),
        Just("ftp://"),
        Just("https:"),
        Just(""),
    ];
    let host = prop_oneof![
        "[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){0,3}\\.?",
        any::<u32>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| format!("0x{n:x}")),
        (any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u8; 16]>().prop_map(|o| format!("[{}]", std::net::Ipv6Addr::from(o))),
        any::<[u8; 4]>().prop_map(|o| format!("[::ffff:{}]", std::net::Ipv4Addr::from(o))),
        any::<[u8; 4]>().prop_map(|o| format!("[64:ff9b::{}]", std::net::Ipv4Addr::from(o))),
        "%[0-9a-f]{2}[a-z0-9.%]{0,12}",
        "\\PC{0,12}",
    ];
    (
        scheme,
        prop_oneof![Just(""), Just("user@"), Just("u:p@"), Just("@")],
        host,
        prop_oneof![Just(""), Just(":443"), Just(":0"), Just(":99999")],
        "(/[a-z0-9%?#=&.]{0,10}){0,3}",
    )
        .prop_map(|(s, u, h, p, path)| format!("{s}{u}{h}{p}{path}"))
}

proptest! {
    #![proptest_config(config(1024))]

    /// Mirror of `fuzz/fuzz_targets/inbound_handler.rs`.
    #[test]
    fn inbound_handler(body in prop_oneof![vec(any::<u8>(), 0..512), execute_body()]) {
        props::check_inbound_handler(&body);
    }

    /// Mirror of `fuzz/fuzz_targets/call_event.rs`.
    #[test]
    fn call_event(bytes in prop_oneof![vec(any::<u8>(), 0..256), event_json()]) {
        props::check_call_event(&bytes);
    }

    /// Mirror of `fuzz/fuzz_targets/verify_signature.rs`.
    #[test]
    fn verify_signature(bytes in vec(any::<u8>(), 0..256)) {
        props::check_verify_signature(&bytes);
    }

    /// Mirror of `fuzz/fuzz_targets/url_rules.rs`: the fuzz input encoding, arbitrary
    /// strings, and URL-shaped strings.
    #[test]
    fn url_rules(
        bytes in vec(any::<u8>(), 0..128),
        text in any::<String>(),
        url in url_like(),
    ) {
        props::check_url_rules(&bytes);
        props::check_url_rules_str(&text);
        props::check_url_rules_str(&url);
    }

    /// Mirror of `fuzz/fuzz_targets/unseal.rs`.
    #[test]
    fn unseal(bytes in vec(any::<u8>(), 0..160)) {
        props::check_unseal(&bytes);
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// The genuine-signature half of `verify_signature` on purpose (odd first byte),
    /// since half of random inputs is not enough to cover it well.
    #[test]
    fn verify_signature_genuine(mode in any::<u8>(), rest in vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![mode | 1];
        bytes.extend(rest);
        props::check_verify_signature(&bytes);
    }

    /// Sealing round trips for sealed-value shaped inputs: the odd half of `unseal`, and
    /// arbitrary bytes with a valid version byte and a known key id for the even half.
    #[test]
    fn unseal_shaped(plain in vec(any::<u8>(), 0..100), tail in vec(any::<u8>(), 28..100)) {
        let mut seal = vec![1u8];
        seal.extend(&plain);
        props::check_unseal(&seal);
        let mut open = vec![0u8, 1, 0, 0, 0, 1];
        open.extend(&tail);
        props::check_unseal(&open);
    }
}

/// The seed inputs of the fuzz targets (`fuzz/seeds/`) pass, so a broken seed or
/// property shows up here first.
#[test]
fn seeds_pass() {
    props::check_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds"
    )));
    props::check_inbound_handler(fixtures::CALLS_EXECUTE_JSON.as_bytes());
    props::check_call_event(fixtures::CALL_FINISHED_JSON.as_bytes());
    props::check_call_event(fixtures::CALL_COMPLETED_TEST_JSON.as_bytes());
}
