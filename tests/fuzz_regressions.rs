//! Every input a fuzz target crashed on, inline, with the property it broke and what the
//! fix guarantees. The same bytes are under `fuzz/regressions/<target>/`, where
//! `cargo fuzz run <target> --sanitizer none fuzz/regressions/<target>/` replays them.

#[path = "fuzz_props/mod.rs"]
mod props;

use atllas_webhooks::model::{CallEvent, TranscriptTurn};
use chrono::{TimeZone, Timelike, Utc};
use serde_json::json;

/// `call_event`, found after about 30 s (1.0 M executions): a transcript `when` with more
/// than three fractional digits. Parsing kept the nanoseconds, serialising writes three
/// digits, so the re-parsed event differed from the first one (`.88888` → `.888`).
/// Fixed in `model::time::iso_millis`: parsing truncates to whole milliseconds.
/// (`fuzz/regressions/call_event/sub_millisecond_when.json`)
const CALL_EVENT_SUB_MILLISECOND_WHEN: &[u8] = b"{\n  \"type\": \"call.finished\",\n  \"timestamp\": 1730179200000,\n  \"webhook\": {\n    \"id\": \"hook_abc1\",  \"type\": \"nd\"\n  },\n  \"call\": {\n    \"id\": \"clal_xyz789\",\n  \"status\": \"finished\",\"transcript\": [\n      { \"who\": \"assistant\", \"what\": \"Hi\", \"when\": \"0169-04-30.\", \"when\": \"2024-04-30T14:00:05.88888Z\" }\n    ],\n    \"recording\": \"https://...\",\n    \"duratie\": 1\n  },\n  \"campaign\": {\n    \"id\": \"campaign_123\",\n    \"name\": \"Q4 ch\"\n  }\n}";

#[test]
fn call_event_sub_millisecond_when_round_trips() {
    props::check_call_event(CALL_EVENT_SUB_MILLISECOND_WHEN);
    let event = CallEvent::from_slice(CALL_EVENT_SUB_MILLISECOND_WHEN).unwrap();
    let turn = &event.call().transcript.as_ref().unwrap()[0];
    assert_eq!(turn.when.nanosecond(), 888_000_000);
    let json: serde_json::Value = serde_json::from_slice(&event.to_vec()).unwrap();
    assert_eq!(
        json["call"]["transcript"][0]["when"],
        "2024-04-30T14:00:05.888Z"
    );
}

#[test]
fn transcript_when_keeps_whole_milliseconds_only() {
    for (when, expected) in [
        ("2024-04-30T14:00:05.8889999Z", "2024-04-30T14:00:05.888Z"),
        ("2024-04-30T14:00:05.000000001Z", "2024-04-30T14:00:05.000Z"),
        ("2024-04-30T16:00:05.1239+02:00", "2024-04-30T14:00:05.123Z"),
        ("2024-04-30T14:00:05Z", "2024-04-30T14:00:05.000Z"),
    ] {
        let turn: TranscriptTurn =
            serde_json::from_value(json!({"who": "user", "what": "x", "when": when})).unwrap();
        let v = serde_json::to_value(&turn).unwrap();
        assert_eq!(v["when"], expected, "{when}");
        let again: TranscriptTurn = serde_json::from_value(v).unwrap();
        assert_eq!(again, turn, "{when}");
    }
}

/// Found by reading `iso_millis` while fixing the one above (same property, no fuzzer
/// input): an offset can move a time out of the four-digit years, which the wire format
/// cannot write back (`-0001-12-31T…` and `+10000-01-01T…` do not parse as RFC 3339), so
/// such an event serialised into JSON that does not parse. Such a `when` is now refused.
#[test]
fn transcript_when_outside_four_digit_years_is_refused() {
    // What happened before the fix: chrono parses it, and its UTC form does not parse.
    let utc = chrono::DateTime::parse_from_rfc3339("0000-01-01T00:00:00.000+00:01")
        .unwrap()
        .with_timezone(&Utc);
    let written = utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    assert_eq!(written, "-0001-12-31T23:59:00.000Z");
    assert!(chrono::DateTime::parse_from_rfc3339(&written).is_err());

    for when in [
        "0000-01-01T00:00:00.000+00:01",
        "0000-01-01T05:00:00+23:59",
        "9999-12-31T23:59:59.999-00:01",
        "9999-12-31T01:00:00-23:59",
    ] {
        let parsed: Result<TranscriptTurn, _> =
            serde_json::from_value(json!({"who": "user", "what": "x", "when": when}));
        let err = parsed.expect_err(when).to_string();
        assert!(err.contains("outside 0000 to 9999"), "{when}: {err}");
    }
    // The limits themselves, and offsets that stay inside, are fine.
    for (when, utc) in [
        ("0000-01-01T00:00:00.000Z", "0000-01-01T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ("0000-01-01T00:00:00-01:00", "0000-01-01T01:00:00.000Z"),
        ("9999-12-31T23:00:00+01:00", "9999-12-31T22:00:00.000Z"),
    ] {
        let turn: TranscriptTurn =
            serde_json::from_value(json!({"who": "user", "what": "x", "when": when})).unwrap();
        let v = serde_json::to_value(&turn).unwrap();
        assert_eq!(v["when"], utc, "{when}");
        assert_eq!(serde_json::from_value::<TranscriptTurn>(v).unwrap(), turn);
    }
    let turn: TranscriptTurn = serde_json::from_value(
        json!({"who": "user", "what": "x", "when": "0000-01-01T00:00:00+00:00"}),
    )
    .unwrap();
    assert_eq!(turn.when, Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap());
}

/// Every committed regression input still passes its target's check.
#[test]
fn committed_regressions_pass() {
    props::check_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions"
    )));
}
