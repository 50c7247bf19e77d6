//! Phone numbers and the camelCase-only `calls.execute` parser.

use atllas_webhooks::fixtures::CALLS_EXECUTE_JSON;
use atllas_webhooks::validate::{
    CountryCode, ExecuteError, ParseOptions, PhoneError, PhoneNumber, ignored_keys,
    parse_calls_execute, suggest_data_key,
};
use proptest::prelude::*;
use serde_json::json;

fn parse(
    body: serde_json::Value,
) -> Result<atllas_webhooks::validate::ParsedExecute, ExecuteError> {
    parse_calls_execute(body.to_string().as_bytes(), &ParseOptions::default())
}

#[test]
fn strict_e164_table() {
    let ok = [
        "+15551234567",
        "+4420794609",
        "+1234567",
        "+123456789012345",
    ];
    for s in ok {
        assert_eq!(PhoneNumber::parse(s).unwrap().as_str(), s, "{s}");
    }
    let bad: [(&str, PhoneError); 10] = [
        ("", PhoneError::Empty),
        ("15551234567", PhoneError::MissingPlus),
        (
            "+1 555 123 4567",
            PhoneError::InvalidCharacter { found: ' ' },
        ),
        (
            "+1-555-1234567",
            PhoneError::InvalidCharacter { found: '-' },
        ),
        ("+155512345x7", PhoneError::InvalidCharacter { found: 'x' }),
        (
            "+1555123456;ext=1",
            PhoneError::InvalidCharacter { found: ';' },
        ),
        ("+١٥٥٥١٢٣٤٥٦٧", PhoneError::InvalidCharacter { found: '١' }),
        ("+0555123456", PhoneError::LeadingZero),
        ("+123456", PhoneError::TooShort { digits: 6 }),
        ("+1234567890123456", PhoneError::TooLong { digits: 16 }),
    ];
    for (s, want) in bad {
        let err = PhoneNumber::parse(s).unwrap_err();
        assert_eq!(err, want, "{s}");
        assert!(
            err.to_string().contains("+15551234567"),
            "message shows the format: {err}"
        );
    }
}

#[test]
fn lenient_normalisation() {
    let us = CountryCode::parse("1").unwrap();
    let uk = CountryCode::parse("+44").unwrap();
    let cases: [(&str, Option<CountryCode>, &str); 9] = [
        ("+1 (555) 123-4567", None, "+15551234567"),
        ("+1.555.123.4567", None, "+15551234567"),
        ("0044 20 7946 0958", None, "+442079460958"),
        (" +15551234567 ", None, "+15551234567"),
        ("(555) 123-4567", Some(us), "+15551234567"),
        ("1 555 123 4567", Some(us), "+15551234567"),
        ("020 7946 0958", Some(uk), "+442079460958"),
        ("07911 123456", Some(uk), "+447911123456"),
        ("+447911123456", Some(us), "+447911123456"),
    ];
    for (input, cc, want) in cases {
        assert_eq!(
            PhoneNumber::normalize(input, cc).unwrap().as_str(),
            want,
            "{input}"
        );
    }
    assert_eq!(
        PhoneNumber::normalize("(555) 123-4567", None),
        Err(PhoneError::NoCountryCode)
    );
    assert_eq!(
        PhoneNumber::normalize("+1 555 CALL NOW", None),
        Err(PhoneError::InvalidCharacter { found: 'C' })
    );
    assert_eq!(PhoneNumber::normalize("  ", None), Err(PhoneError::Empty));
    assert!(PhoneNumber::normalize("+1555123456789012345678", None).is_err());
    assert!(CountryCode::parse("0").is_err());
    assert!(CountryCode::parse("1234").is_err());
    assert!(CountryCode::parse("x").is_err());
}

#[test]
fn seed_request_parses() {
    let p = parse_calls_execute(CALLS_EXECUTE_JSON.as_bytes(), &ParseOptions::default()).unwrap();
    assert_eq!(p.request, atllas_webhooks::fixtures::calls_execute());
    assert!(p.ignored.is_empty());
}

#[test]
fn snake_case_is_ignored_and_the_call_keeps_the_phone_number_alone() {
    let p = parse(json!({
        "type": "calls.execute",
        "data": {"phoneNumber": "+15551234567", "first_name": "Jane", "last_name": "Smith",
                 "company": "Acme", "zip_code": "78701", "favouriteColour": "blue"}
    }))
    .unwrap();
    let d = &p.request.data;
    assert_eq!(d.phone_number, "+15551234567");
    assert_eq!(
        (
            d.first_name.as_ref(),
            d.last_name.as_ref(),
            d.company_name.as_ref()
        ),
        (None, None, None)
    );
    assert_eq!(d.zip_code, None);
    // json! sorts keys, so the body (and the ignored list, in body order) is sorted.
    let listed: Vec<(String, Option<String>)> = p
        .ignored
        .iter()
        .map(|k| (k.path.clone(), k.suggestion.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("data.company".into(), Some("data.companyName".into())),
            ("data.favouriteColour".into(), None),
            ("data.first_name".into(), Some("data.firstName".into())),
            ("data.last_name".into(), Some("data.lastName".into())),
            ("data.zip_code".into(), Some("data.zipCode".into())),
        ]
    );
}

#[test]
fn ignored_keys_on_a_value_match_the_parser() {
    let body = json!({"type":"calls.execute","phoneNumber":"+1","data":{"phoneNumber":"+15551234567","Email":"x"}});
    let from_value = ignored_keys(&body);
    let from_parser = parse(body).unwrap().ignored;
    let mut a: Vec<_> = from_value.iter().map(ToString::to_string).collect();
    let mut b: Vec<_> = from_parser.iter().map(ToString::to_string).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert!(
        a.contains(&"phoneNumber (did you mean data.phoneNumber?)".to_string()),
        "{a:?}"
    );
    assert!(
        a.contains(&"data.Email (did you mean data.email?)".to_string()),
        "{a:?}"
    );
}

#[test]
fn refusals_keep_the_ignored_keys() {
    let body = json!({"type": "calls.execute", "data": {"phone_number": "+15551234567", "first_name": "Jane"}});
    let rejected = atllas_webhooks::validate::parse_calls_execute_logged(
        body.to_string().as_bytes(),
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert_eq!(rejected.error.code(), "missing_phone_number");
    let mut paths: Vec<String> = rejected.ignored.iter().map(|k| k.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["data.first_name", "data.phone_number"]);
    assert_eq!(rejected.ignored.len(), ignored_keys(&body).len());
}

#[test]
fn suggestions() {
    assert_eq!(suggest_data_key("first_name"), Some("firstName"));
    assert_eq!(suggest_data_key("FirstName"), Some("firstName"));
    assert_eq!(suggest_data_key("company"), Some("companyName"));
    assert_eq!(suggest_data_key("phone_number"), Some("phoneNumber"));
    assert_eq!(suggest_data_key("postal-code"), Some("zipCode"));
    assert_eq!(
        suggest_data_key("firstName"),
        None,
        "documented keys need no suggestion"
    );
    assert_eq!(suggest_data_key("colour"), None);
}

#[test]
fn error_table() {
    let cases: Vec<(Vec<u8>, &str, u16, Option<&str>)> = vec![
        (b"{not json".to_vec(), "malformed_json", 400, None),
        (b"{\"type\":\"calls.execute\"} trailing".to_vec(), "malformed_json", 400, None),
        (b"[1,2]".to_vec(), "body_not_object", 400, None),
        (b"\"calls.execute\"".to_vec(), "body_not_object", 400, None),
        (br#"{"data":{"phoneNumber":"+15551234567"}}"#.to_vec(), "missing_type", 400, Some("type")),
        (br#"{"type":"call.execute","data":{}}"#.to_vec(), "invalid_type", 400, Some("type")),
        (br#"{"type":7,"data":{}}"#.to_vec(), "invalid_type", 400, Some("type")),
        (br#"{"type":"calls.execute"}"#.to_vec(), "missing_data", 400, Some("data")),
        (br#"{"type":"calls.execute","data":"+1555"}"#.to_vec(), "invalid_data", 400, Some("data")),
        (br#"{"type":"calls.execute","type":"calls.execute","data":{}}"#.to_vec(), "duplicate_key", 400, Some("type")),
        (br#"{"type":"calls.execute","data":{"phoneNumber":"+15551234567","phoneNumber":"+15551234568"}}"#.to_vec(), "duplicate_key", 400, Some("data.phoneNumber")),
        (br#"{"type":"calls.execute","data":{}}"#.to_vec(), "missing_phone_number", 422, Some("data.phoneNumber")),
        (br#"{"type":"calls.execute","data":{"phoneNumber":null}}"#.to_vec(), "missing_phone_number", 422, Some("data.phoneNumber")),
        (br#"{"type":"calls.execute","data":{"phoneNumber":"555-1234"}}"#.to_vec(), "invalid_phone_number", 422, Some("data.phoneNumber")),
        (br#"{"type":"calls.execute","data":{"phoneNumber":15551234567}}"#.to_vec(), "invalid_field_type", 422, Some("data.phoneNumber")),
        (br#"{"type":"calls.execute","data":{"phoneNumber":"+15551234567","zipCode":78701}}"#.to_vec(), "invalid_field_type", 422, Some("data.zipCode")),
        (br#"{"type":"calls.execute","data":{"phoneNumber":"+15551234567","note":{"a":1}}}"#.to_vec(), "invalid_field_type", 422, Some("data.note")),
    ];
    for (body, code, status, field) in cases {
        let err = parse_calls_execute(&body, &ParseOptions::default()).unwrap_err();
        let shown = String::from_utf8_lossy(&body);
        assert_eq!(err.code(), code, "{shown}: {err}");
        assert_eq!(err.http_status(), status, "{shown}");
        assert_eq!(err.field().as_deref(), field, "{shown}");
    }
}

#[test]
fn missing_phone_number_says_when_snake_case_was_sent() {
    let err =
        parse(json!({"type":"calls.execute","data":{"phone_number":"+15551234567"}})).unwrap_err();
    assert_eq!(
        err,
        ExecuteError::MissingPhoneNumber {
            sent_instead: Some("phone_number".into())
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("phone_number") && msg.contains("phoneNumber") && msg.contains("camelCase"),
        "{msg}"
    );
}

#[test]
fn null_optional_fields_are_absent_and_escapes_work() {
    let p = parse_calls_execute(
        br#"{"type":"calls.execute","data":{"phoneNumber":"+15551234567","firstName":null,"note":"a \"quoted\" \u00e9"}}"#,
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(p.request.data.first_name, None);
    assert_eq!(p.request.data.note.as_deref(), Some("a \"quoted\" é"));
}

#[test]
fn bodies_that_are_not_utf8_are_malformed_wherever_the_bad_byte_is() {
    // In a field the call uses, in a key that is ignored, in a value that is only skipped:
    // JSON text is UTF-8, so each is refused, saying where the bad byte is.
    let cases: [(&str, &[u8]); 3] = [
        (r##""note":"#""##, b"\xff"),
        (r##""x#":1"##, b"\xc3"),
        (r##""x":["#"]"##, b"\xe2\x82"),
    ];
    for (field, bad) in cases {
        let text = format!(
            r#"{{"type":"calls.execute","data":{{"phoneNumber":"+15551234567",{field}}}}}"#
        );
        let offset = text.find('#').unwrap();
        let mut body = text.as_bytes()[..offset].to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(&text.as_bytes()[offset + 1..]);
        let err = parse_calls_execute(&body, &ParseOptions::default()).unwrap_err();
        assert_eq!(err.code(), "malformed_json", "{err}");
        assert!(
            err.to_string().contains(&format!("offset {offset}")),
            "{err}"
        );
    }
}

#[test]
fn national_numbers_need_a_default_country() {
    let body = br#"{"type":"calls.execute","data":{"phoneNumber":"(555) 123-4567"}}"#;
    assert_eq!(
        parse_calls_execute(body, &ParseOptions::default())
            .unwrap_err()
            .code(),
        "invalid_phone_number"
    );
    let opts = ParseOptions {
        default_country: Some(CountryCode::parse("1").unwrap()),
    };
    let p = parse_calls_execute(body, &opts).unwrap();
    assert_eq!(p.request.data.phone_number, "+15551234567");
}

#[test]
fn deep_nesting_and_huge_keys_are_bounded() {
    // The same limit as serde_json's: the body's object, `data` and `x` are three levels.
    for levels in [125, 126] {
        let nested = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let body = format!(
            r#"{{"type":"calls.execute","data":{{"phoneNumber":"+15551234567","x":{nested}}}}}"#
        );
        let serde_ok = serde_json::from_str::<serde_json::Value>(&body).is_ok();
        let ours = parse_calls_execute(body.as_bytes(), &ParseOptions::default());
        assert_eq!(ours.is_ok(), serde_ok, "{levels} levels");
        assert_eq!(serde_ok, levels + 2 <= 127, "{levels} levels");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body =
        format!(r#"{{"type":"calls.execute","data":{{"phoneNumber":"+15551234567","x":{deep}}}}}"#);
    assert_eq!(
        parse_calls_execute(body.as_bytes(), &ParseOptions::default())
            .unwrap_err()
            .code(),
        "malformed_json"
    );
    let key = "k".repeat(100_000);
    let body =
        format!(r#"{{"type":"calls.execute","data":{{"phoneNumber":"+15551234567","{key}":1}}}}"#);
    let p = parse_calls_execute(body.as_bytes(), &ParseOptions::default()).unwrap();
    assert!(p.ignored[0].path.len() < 200);
}

proptest! {
    #[test]
    fn strict_accepts_every_e164(first in 1u8..=9, rest in proptest::collection::vec(0u8..=9, 6..=14)) {
        let s = format!("+{first}{}", rest.iter().map(|d| char::from(b'0' + d)).collect::<String>());
        prop_assert_eq!(PhoneNumber::parse(&s).unwrap().into_string(), s.clone());
        prop_assert_eq!(PhoneNumber::normalize(&s, None).unwrap().into_string(), s);
    }

    #[test]
    fn strict_rejects_everything_else(s in "\\PC{0,24}") {
        let valid = s.len() >= 8 && s.len() <= 16 && s.starts_with('+')
            && s[1..].bytes().all(|b| b.is_ascii_digit()) && !s[1..].starts_with('0');
        prop_assert_eq!(PhoneNumber::parse(&s).is_ok(), valid);
    }

    #[test]
    fn formatting_is_stripped(first in 1u8..=9, rest in proptest::collection::vec(0u8..=9, 9..=12), seps in proptest::collection::vec(prop_oneof![Just(" "), Just("-"), Just("."), Just("("), Just(")")], 1..4)) {
        let digits = format!("{first}{}", rest.iter().map(|d| char::from(b'0' + d)).collect::<String>());
        let mut formatted = String::from("+");
        for (i, c) in digits.chars().enumerate() {
            formatted.push(c);
            if i % 3 == 1 { formatted.push_str(seps[i % seps.len()]); }
        }
        prop_assert_eq!(PhoneNumber::normalize(&formatted, None).unwrap().into_string(), format!("+{digits}"));
    }

    #[test]
    fn parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_calls_execute(&bytes, &ParseOptions::default());
    }

    #[test]
    fn parser_never_panics_on_json(keys in proptest::collection::vec("[a-zA-Z_]{1,12}", 0..8), vals in proptest::collection::vec(prop_oneof![Just(json!(null)), Just(json!(1)), Just(json!("+15551234567")), Just(json!([1])), Just(json!({"a":"b"})), ".{0,20}".prop_map(serde_json::Value::from)], 0..8)) {
        let data: serde_json::Map<String, serde_json::Value> = keys.into_iter().zip(vals).collect();
        let body = json!({"type": "calls.execute", "data": data});
        match parse(body.clone()) {
            Ok(p) => {
                prop_assert!(PhoneNumber::parse(&p.request.data.phone_number).is_ok());
                prop_assert_eq!(p.ignored.len(), ignored_keys(&body).len());
            }
            Err(e) => prop_assert!(e.http_status() == 400 || e.http_status() == 422),
        }
    }
}

// The parser reads JSON itself (one pass, strings borrowed): serde_json is the oracle for
// what is JSON. Bodies are generated around the documented shape, rendered compact or
// pretty, then often broken by one edit.

/// A JSON value for the generated bodies: scalars, strings with every kind of escape,
/// numbers of every syntax, nested arrays and objects.
fn json_value() -> impl Strategy<Value = String> {
    let string = proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("Jane"),
            Just("é"),
            Just("😀"),
            Just(" "),
            Just("\\n"),
            Just("\\\""),
            Just("\\\\"),
            Just("\\/"),
            Just("\\u00e9"),
            Just("\\u0000"),
            Just("\\ud83d\\ude00"),
            Just("+15551234567"),
        ],
        0..6,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()));
    let number = prop_oneof![
        Just("0"),
        Just("-1"),
        Just("12.5"),
        Just("1e3"),
        Just("-0.25E-2"),
        Just("15551234567"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        string,
        number,
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec((json_key(), inner), 0..4).prop_map(|entries| {
                let fields: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// Keys: the documented ones (so duplicates happen), snake_case ones, others.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            atllas_webhooks::model::Contact::FIELDS
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
        ),
        Just("phone_number".to_owned()),
        Just("type".to_owned()),
        Just("data".to_owned()),
        Just("phone\\u004eumber".to_owned()),
        "[a-z]{1,6}",
    ]
}

/// A body: mostly the documented shape with generated fields, sometimes any value.
fn json_body() -> impl Strategy<Value = String> {
    let data = proptest::collection::vec((json_key(), json_value()), 0..6).prop_map(|fields| {
        let mut out = vec![r#""phoneNumber":"+15551234567""#.to_owned()];
        out.extend(fields.into_iter().map(|(k, v)| format!("\"{k}\":{v}")));
        format!("{{{}}}", out.join(","))
    });
    prop_oneof![
        4 => data.prop_map(|d| format!(r#"{{"type":"calls.execute","data":{d}}}"#)),
        1 => json_value(),
    ]
}

/// One edit that usually breaks the text: a byte replaced, removed or inserted.
fn edit() -> impl Strategy<Value = Option<(usize, u8, u8)>> {
    let byte = prop_oneof![
        proptest::sample::select(b"{}[],:\"\\ \n\t\r0123456789.eE-+ntfu\x01".to_vec()),
        any::<u8>(),
    ];
    proptest::option::weighted(0.6, (any::<usize>(), 0u8..3, byte))
}

/// Codes a body that is not JSON may get: malformed, unless a repeated or unusable field
/// came first (the parser stops at the first problem, as it did on serde_json).
const NOT_JSON_CODES: [&str; 4] = [
    "malformed_json",
    "duplicate_key",
    "invalid_field_type",
    "field_too_long",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn the_parser_reads_json_as_serde_json_does(
        body in json_body(),
        pretty in any::<bool>(),
        edit in edit(),
    ) {
        let mut bytes = if pretty {
            // Reformat when it is JSON: whitespace everywhere it may be.
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(body)
                .into_bytes()
        } else {
            body.into_bytes()
        };
        if let Some((at, op, byte)) = edit {
            let at = at % (bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
        }
        let oracle = serde_json::from_slice::<serde_json::Value>(&bytes);
        let ours = parse_calls_execute(&bytes, &ParseOptions::default());
        // JSON's grammar puts no bound on numbers; serde_json refuses one beyond f64 (an
        // edit can make `1e5551234567`) and stops there. Whether the body is JSON is then
        // told by serde_json skipping it, which checks a number's grammar only. JSON is
        // never malformed for us (a documented field holding such a number is
        // `invalid_field_type`, a skipped one is fine).
        if matches!(&oracle, Err(e) if e.to_string().starts_with("number out of range")) {
            let grammatical = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
            match &ours {
                Err(e) if grammatical => prop_assert_ne!(e.code(), "malformed_json", "{}", String::from_utf8_lossy(&bytes)),
                Err(e) => prop_assert!(
                    NOT_JSON_CODES.contains(&e.code()),
                    "{} for {}", e.code(), String::from_utf8_lossy(&bytes)
                ),
                Ok(_) => prop_assert!(grammatical, "accepted non-JSON {}", String::from_utf8_lossy(&bytes)),
            }
            return Ok(());
        }
        match (&oracle, &ours) {
            // JSON: never malformed; a refusal has its own code.
            (Ok(_), Err(e)) => prop_assert_ne!(e.code(), "malformed_json", "{}", String::from_utf8_lossy(&bytes)),
            // Not JSON: see NOT_JSON_CODES.
            (Err(_), Err(e)) => prop_assert!(
                NOT_JSON_CODES.contains(&e.code()),
                "{} for {}", e.code(), String::from_utf8_lossy(&bytes)
            ),
            (Err(_), Ok(_)) => prop_assert!(false, "accepted non-JSON {}", String::from_utf8_lossy(&bytes)),
            (Ok(value), Ok(parsed)) => {
                // Accepted: every documented field holds what serde_json read.
                let data = &value["data"];
                let back = serde_json::to_value(&parsed.request.data).unwrap();
                for f in atllas_webhooks::model::Contact::FIELDS {
                    if f == "phoneNumber" {
                        continue;
                    }
                    prop_assert_eq!(back.get(f), data.get(f).filter(|v| !v.is_null()), "{}", f);
                }
                // And the keys it ignored are those `ignored_keys` finds in the value (as
                // sets: the value keeps one of repeated keys, in its own order).
                let set = |keys: Vec<atllas_webhooks::validate::IgnoredKey>| {
                    keys.into_iter()
                        .map(|k| (k.path, k.suggestion))
                        .collect::<std::collections::BTreeSet<_>>()
                };
                prop_assert_eq!(set(parsed.ignored.clone()), set(ignored_keys(value)));
            }
        }
    }
}
