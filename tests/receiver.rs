//! The receiver: verify, then parse either event.

use atllas_webhooks::fixtures::{CALL_COMPLETED_TEST_JSON, CALL_FINISHED_JSON};
use atllas_webhooks::model::CallEvent;
use atllas_webhooks::receiver::{Receiver, ReceiverError};
use atllas_webhooks::signing::{self, SigningError, SigningSecret};
use chrono::Utc;
use http::HeaderMap;

fn signed(secret: &SigningSecret, id: &str, ts: i64, body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", ts.into());
    h.insert(
        "webhook-signature",
        signing::sign(secret, id, ts, body)
            .to_string()
            .parse()
            .unwrap(),
    );
    h
}

#[test]
fn accepts_both_event_types() {
    let secret = SigningSecret::generate().unwrap();
    let now = Utc::now();
    let r = Receiver::new(secret.clone());
    for (body, kind) in [
        (CALL_FINISHED_JSON, "call.finished"),
        (CALL_COMPLETED_TEST_JSON, "call.completed"),
    ] {
        let h = signed(&secret, "msg_abc", now.timestamp(), body.as_bytes());
        let got = r.receive(&h, body.as_bytes(), now).unwrap();
        assert_eq!(got.event.event_type(), kind);
        assert_eq!(got.id, "msg_abc");
    }
}

#[test]
fn refuses_bad_signatures_and_stale_timestamps() {
    let secret = SigningSecret::generate().unwrap();
    let other = SigningSecret::generate().unwrap();
    let now = Utc::now();
    let body = CALL_FINISHED_JSON.as_bytes();
    let r = Receiver::new(secret.clone());
    let wrong = signed(&other, "msg_1", now.timestamp(), body);
    assert!(matches!(
        r.receive(&wrong, body, now),
        Err(ReceiverError::Signature(SigningError::NoMatchingSignature))
    ));
    let stale = signed(&secret, "msg_1", now.timestamp() - 600, body);
    assert!(matches!(
        r.receive(&stale, body, now),
        Err(ReceiverError::Signature(SigningError::TimestampTooOld))
    ));
    let mut tampered = body.to_vec();
    tampered[20] ^= 1;
    let h = signed(&secret, "msg_1", now.timestamp(), body);
    assert!(matches!(
        r.receive(&h, &tampered, now),
        Err(ReceiverError::Signature(_))
    ));
    assert!(matches!(
        r.receive(&HeaderMap::new(), body, now),
        Err(ReceiverError::Signature(SigningError::MissingHeader(_)))
    ));
    // During a rotation either secret verifies.
    let both = Receiver::with_secrets(vec![other.clone(), secret.clone()]);
    assert!(
        both.receive(&signed(&secret, "m", now.timestamp(), body), body, now)
            .is_ok()
    );
}

#[test]
fn signed_but_unknown_is_an_event_error() {
    let secret = SigningSecret::generate().unwrap();
    let now = Utc::now();
    let body = br#"{"type":"call.started","timestamp":1}"#;
    let h = signed(&secret, "msg_2", now.timestamp(), body);
    assert!(matches!(
        Receiver::new(secret).receive(&h, body, now),
        Err(ReceiverError::Event(_))
    ));
}

#[test]
fn get_deliveries_carry_the_payload_in_the_query() {
    let secret = SigningSecret::generate().unwrap();
    let now = Utc::now();
    let body = CALL_FINISHED_JSON.as_bytes();
    let h = signed(&secret, "msg_3", now.timestamp(), body);
    let mut url = url::Url::parse("https://example.com/hook?x=1").unwrap();
    url.query_pairs_mut()
        .append_pair("payload", CALL_FINISHED_JSON);
    let uri: http::Uri = url.as_str().parse().unwrap();
    let r = Receiver::new(secret);
    let got = r.receive_get(&h, &uri, now).unwrap();
    assert!(matches!(got.event, CallEvent::Finished(_)));
    let bare: http::Uri = "https://example.com/hook".parse().unwrap();
    assert!(matches!(
        r.receive_get(&h, &bare, now),
        Err(ReceiverError::MissingPayload)
    ));
}
