//! The wire contract: seed round trips, enum values, forward compatibility, builders.

use atllas_webhooks::fixtures::{
    self, CALL_COMPLETED_TEST_JSON, CALL_FINISHED_JSON, CALLS_EXECUTE_JSON, FakeData,
};
use atllas_webhooks::model::{
    Call, CallCompleted, CallEvent, CallFinished, CallStatus, CallsExecute, CampaignRef,
    LeadWarmth, ModelError, Sentiment, Speaker, WebhookRef,
};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

fn value(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn calls_execute_round_trips_exactly() {
    let parsed: CallsExecute = serde_json::from_str(CALLS_EXECUTE_JSON).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        value(CALLS_EXECUTE_JSON)
    );
    assert_eq!(parsed, fixtures::calls_execute());
}

#[test]
fn call_finished_round_trips_exactly() {
    let parsed: CallFinished = serde_json::from_str(CALL_FINISHED_JSON).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        value(CALL_FINISHED_JSON)
    );
    assert_eq!(parsed, fixtures::call_finished());
    let event = CallEvent::from_slice(CALL_FINISHED_JSON.as_bytes()).unwrap();
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        value(CALL_FINISHED_JSON)
    );
}

#[test]
fn call_completed_test_payload_round_trips_exactly() {
    let parsed: CallCompleted = serde_json::from_str(CALL_COMPLETED_TEST_JSON).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        value(CALL_COMPLETED_TEST_JSON)
    );
    assert_eq!(parsed, fixtures::call_completed_test());
    let event: CallEvent = serde_json::from_str(CALL_COMPLETED_TEST_JSON).unwrap();
    assert_eq!(event.event_type(), "call.completed");
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        value(CALL_COMPLETED_TEST_JSON)
    );
}

#[test]
fn wire_details_are_exact() {
    let text = serde_json::to_string(&fixtures::call_finished()).unwrap();
    assert!(text.contains(r#""lead_warmth":"hot""#), "{text}");
    assert!(!text.contains("leadWarmth"));
    assert!(text.contains(r#""tokensConsumed":1"#));
    assert!(text.contains(r#""timestamp":1730179200000"#));
    assert!(text.contains(r#""when":"2024-04-30T14:00:03.000Z""#));
    assert!(text.starts_with(r#"{"type":"call.finished","#));
    assert!(!text.contains("null"));
    assert!(!text.contains("company"));
    // Absent optional recipient fields stay absent.
    assert!(!text.contains("address2"));
}

#[test]
fn transcript_when_always_has_three_fraction_digits() {
    let whole = Utc.with_ymd_and_hms(2024, 4, 30, 14, 0, 3).unwrap();
    let turn = atllas_webhooks::model::TranscriptTurn::new(Speaker::User, "hi", whole);
    let v = serde_json::to_value(&turn).unwrap();
    assert_eq!(v["when"], "2024-04-30T14:00:03.000Z");
    // Parsing accepts other precisions and offsets, and emits the canonical form.
    let t: atllas_webhooks::model::TranscriptTurn = serde_json::from_value(
        json!({"who":"user","what":"x","when":"2024-04-30T16:00:03.5+02:00"}),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&t).unwrap()["when"],
        "2024-04-30T14:00:03.500Z"
    );
}

#[test]
fn every_enum_value_both_ways() {
    let cases: Vec<(Value, Value)> = vec![
        (
            serde_json::to_value(CallStatus::Finished).unwrap(),
            json!("finished"),
        ),
        (
            serde_json::to_value(CallStatus::Missed).unwrap(),
            json!("missed"),
        ),
        (
            serde_json::to_value(CallStatus::Failed).unwrap(),
            json!("failed"),
        ),
        (serde_json::to_value(LeadWarmth::Hot).unwrap(), json!("hot")),
        (
            serde_json::to_value(LeadWarmth::Warm).unwrap(),
            json!("warm"),
        ),
        (
            serde_json::to_value(LeadWarmth::Cold).unwrap(),
            json!("cold"),
        ),
        (
            serde_json::to_value(LeadWarmth::Dead).unwrap(),
            json!("dead"),
        ),
        (
            serde_json::to_value(LeadWarmth::Unknown).unwrap(),
            json!("unknown"),
        ),
        (
            serde_json::to_value(Sentiment::Positive).unwrap(),
            json!("positive"),
        ),
        (
            serde_json::to_value(Sentiment::Neutral).unwrap(),
            json!("neutral"),
        ),
        (
            serde_json::to_value(Sentiment::Negative).unwrap(),
            json!("negative"),
        ),
        (serde_json::to_value(Speaker::User).unwrap(), json!("user")),
        (
            serde_json::to_value(Speaker::Assistant).unwrap(),
            json!("assistant"),
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    for s in CallStatus::KNOWN {
        let back: CallStatus = serde_json::from_value(json!(s.as_str())).unwrap();
        assert_eq!(&back, s);
        assert!(back.is_known());
    }
    for s in LeadWarmth::KNOWN {
        let back: LeadWarmth = serde_json::from_value(json!(s.as_str())).unwrap();
        assert_eq!(&back, s);
    }
    for s in Sentiment::KNOWN {
        let back: Sentiment = serde_json::from_value(json!(s.as_str())).unwrap();
        assert_eq!(&back, s);
    }
    for s in Speaker::KNOWN {
        let back: Speaker = serde_json::from_value(json!(s.as_str())).unwrap();
        assert_eq!(&back, s);
    }
    assert_eq!(CallStatus::KNOWN.len(), 3);
    assert_eq!(LeadWarmth::KNOWN.len(), 5);
    assert_eq!(Sentiment::KNOWN.len(), 3);
    assert_eq!(Speaker::KNOWN.len(), 2);
}

#[test]
fn unknown_enum_values_and_keys_are_kept_forward_compatible() {
    let mut v = value(CALL_FINISHED_JSON);
    v["call"]["status"] = json!("voicemail");
    v["call"]["analysis"]["lead_warmth"] = json!("lukewarm");
    v["call"]["analysis"]["sentiment"] = json!("mixed");
    v["call"]["transcript"][0]["who"] = json!("system");
    v["call"]["newField"] = json!({"x": 1});
    v["somethingNew"] = json!(true);
    let event = CallEvent::from_value(v.clone()).unwrap();
    let call = event.call();
    assert_eq!(call.status, CallStatus::Other("voicemail".into()));
    assert!(!call.status.is_known());
    let analysis = call.analysis.as_ref().unwrap();
    assert_eq!(analysis.lead_warmth, LeadWarmth::Other("lukewarm".into()));
    assert_eq!(analysis.sentiment, Sentiment::Other("mixed".into()));
    assert_eq!(
        call.transcript.as_ref().unwrap()[0].who,
        Speaker::Other("system".into())
    );
    // Unknown values re-serialise verbatim; unknown keys are dropped.
    let out = serde_json::to_value(&event).unwrap();
    assert_eq!(out["call"]["status"], "voicemail");
    assert_eq!(out["call"]["analysis"]["lead_warmth"], "lukewarm");
    assert_eq!(out["call"]["analysis"]["sentiment"], "mixed");
    assert_eq!(out["call"]["transcript"][0]["who"], "system");
    assert!(out["call"].get("newField").is_none());
    assert!(out.get("somethingNew").is_none());
}

#[test]
fn event_type_errors_are_typed() {
    let mut v = value(CALL_FINISHED_JSON);
    v["type"] = json!("call.started");
    assert!(matches!(
        CallEvent::from_value(v.clone()),
        Err(ModelError::UnknownEventType(t)) if t == "call.started"
    ));
    v["type"] = json!(5);
    assert!(matches!(
        CallEvent::from_value(v.clone()),
        Err(ModelError::TypeNotString)
    ));
    v.as_object_mut().unwrap().remove("type");
    assert!(matches!(
        CallEvent::from_value(v),
        Err(ModelError::MissingType)
    ));
    assert!(matches!(
        CallEvent::from_slice(b"{nope"),
        Err(ModelError::Json(_))
    ));
    // A call.finished body under the call.completed struct is refused by its tag.
    assert!(serde_json::from_str::<CallCompleted>(CALL_FINISHED_JSON).is_err());
    assert!(serde_json::from_str::<CallFinished>(CALL_COMPLETED_TEST_JSON).is_err());
}

#[test]
fn call_finished_always_carries_every_field() {
    let bare = Call::new("call_1", CallStatus::Missed);
    let event = CallFinished::new(
        "webhook_1",
        Utc.timestamp_millis_opt(1).unwrap(),
        bare,
        CampaignRef::new("campaign_1", "C"),
    );
    let v = serde_json::to_value(&event).unwrap();
    let call = &v["call"];
    for key in [
        "id",
        "status",
        "recipient",
        "summary",
        "transcript",
        "recording",
        "duration",
        "analysis",
        "tokensConsumed",
    ] {
        assert!(call.get(key).is_some(), "call.{key} missing in {v}");
    }
    for key in ["phoneNumber", "firstName", "lastName", "email"] {
        assert_eq!(call["recipient"][key], "", "recipient.{key}");
    }
    assert_eq!(call["transcript"], json!([]));
    assert_eq!(call["duration"], 0);
    assert_eq!(call["tokensConsumed"], 0);
    assert_eq!(
        call["analysis"],
        json!({"sentiment":"neutral","lead_warmth":"unknown","justification":""})
    );
    assert_eq!(v["webhook"], json!({"id":"webhook_1","type":"outbound"}));
    // Parsing a call.finished that lacks fields fills them the same way.
    let mut partial = value(CALL_FINISHED_JSON);
    partial["call"].as_object_mut().unwrap().remove("summary");
    let parsed: CallFinished = serde_json::from_value(partial).unwrap();
    assert_eq!(parsed.call().summary.as_deref(), Some(""));
}

#[test]
fn call_completed_omits_what_it_lacks() {
    let event = CallCompleted::new(
        WebhookRef::inbound("webhook_in"),
        Utc.timestamp_millis_opt(5).unwrap(),
        Call::new("call_2", CallStatus::Failed),
        CampaignRef::new("c", "n"),
    );
    let v = serde_json::to_value(&event).unwrap();
    assert_eq!(
        v,
        json!({
            "type": "call.completed",
            "timestamp": 5,
            "webhook": {"id": "webhook_in", "type": "inbound"},
            "call": {"id": "call_2", "status": "failed"},
            "campaign": {"id": "c", "name": "n"}
        })
    );
    let back: CallEvent = serde_json::from_value(v).unwrap();
    assert_eq!(back, CallEvent::Completed(event));
}

#[test]
fn every_variant_fixture_covers_all_values() {
    let events = FakeData::new(1).every_variant();
    assert_eq!(events.len(), 45);
    for s in CallStatus::KNOWN {
        assert!(events.iter().any(|e| &e.call().status == s));
    }
    for w in LeadWarmth::KNOWN {
        assert!(
            events
                .iter()
                .any(|e| &e.call().analysis.as_ref().unwrap().lead_warmth == w)
        );
    }
    for e in &events {
        let bytes = serde_json::to_vec(e).unwrap();
        let back: CallFinished = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(&back, e);
    }
}

proptest! {
    #[test]
    fn builder_events_round_trip(seed in any::<u64>(), n in 1usize..4) {
        let mut fake = FakeData::new(seed);
        for _ in 0..n {
            let finished = fake.call_finished();
            let json = serde_json::to_vec(&finished).unwrap();
            let back = CallEvent::from_slice(&json).unwrap();
            prop_assert_eq!(&back, &CallEvent::Finished(finished.clone()));
            prop_assert_eq!(serde_json::to_vec(&back).unwrap(), json);

            let completed = fake.call_completed();
            let json = serde_json::to_vec(&completed).unwrap();
            let back = CallEvent::from_slice(&json).unwrap();
            prop_assert_eq!(back, CallEvent::Completed(completed));
        }
    }

    #[test]
    fn fake_data_is_deterministic(seed in any::<u64>()) {
        prop_assert_eq!(FakeData::new(seed).call_finished(), FakeData::new(seed).call_finished());
        prop_assert_eq!(FakeData::new(seed).contact(), FakeData::new(seed).contact());
    }

    #[test]
    fn arbitrary_json_never_panics_the_event_parser(s in ".{0,200}") {
        let _ = CallEvent::from_slice(s.as_bytes());
    }
}
