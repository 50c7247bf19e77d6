//! The properties the fuzz targets check, shared by the cargo-fuzz project in `fuzz/` (each
//! target includes this file with `#[path]`) and by the proptest mirrors in
//! `tests/fuzz_mirrors.rs`, so both assert exactly the same things.
//!
//! Every `check_*` function takes arbitrary bytes, never returns an error and panics (an
//! `assert!`) when a property does not hold. Only `std`, `atllas_webhooks` and its
//! always-built dependencies (`bytes`, `http`, `serde_json`, `chrono`) are used, so the file
//! builds with `--no-default-features` and without tokio.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use atllas_webhooks::calls::{CallService, MemoryCredits, SimulatedLauncher};
use atllas_webhooks::campaign::{CampaignSettings, CampaignStatus};
use atllas_webhooks::clock::ManualClock;
use atllas_webhooks::destination::{
    self, DestinationPolicy, check_url, classify_ip, is_blocked_hostname,
};
use atllas_webhooks::ids::AccountId;
use atllas_webhooks::inbound::{InboundConfig, InboundHandler, SUCCESS_BODY};
use atllas_webhooks::model::CallEvent;
use atllas_webhooks::registry::{CampaignRegistry, Registry, RegistryConfig, WebhookRegistry};
use atllas_webhooks::secrets::{
    EncryptionKey, KeyId, KeyRing, SEALED_OVERHEAD, SealContext, Sealed, SecretsError,
};
use atllas_webhooks::signing::{
    self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SigningError, SigningSecret, Verifier,
};
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::validate::{ParseOptions, parse_calls_execute};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};

/// A property check: panics when the property does not hold for the input.
pub type Check = fn(&[u8]);

/// Every fuzz target (the name of its file in `fuzz/fuzz_targets/` and of its folders in
/// `fuzz/seeds/` and `fuzz/regressions/`) with its check.
pub const TARGETS: [(&str, Check); 5] = [
    ("inbound_handler", check_inbound_handler),
    ("call_event", check_call_event),
    ("verify_signature", check_verify_signature),
    ("url_rules", check_url_rules),
    ("unseal", check_unseal),
];

/// Runs every file of `<root>/<target>/` through its target's check, for each target,
/// and says how many ran. A missing folder (a packaged crate has no `fuzz/`) runs nothing.
pub fn check_dir(root: &std::path::Path) -> usize {
    let mut ran = 0;
    for (target, check) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            check(&std::fs::read(&path).expect("input file"));
            ran += 1;
        }
    }
    ran
}

/// Drives a future that never waits to completion. The in-memory store, the registry and
/// the inbound handler complete on their first poll; a future that returns `Pending` is a
/// bug here (nothing would ever wake it), so it panics instead of spinning.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a future of the in-memory world waited"),
    }
}

/// Splits `data` at the first `sep` byte: `(before, after)`; all of it and nothing when
/// there is none.
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

// --- inbound_handler ----------------------------------------------------------------------

/// One account with an active inbound campaign behind a known slug, on a `MemoryStore`.
pub struct InboundWorld {
    handler: InboundHandler<MemoryStore>,
    launcher: Arc<SimulatedLauncher>,
    slug: String,
}

fn build_inbound_world() -> InboundWorld {
    block_on(async {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
                .single()
                .expect("valid time"),
        ));
        let keys = KeyRing::new(
            KeyId::new(1),
            EncryptionKey::from_bytes(&[7; 32]).expect("32-byte key"),
        );
        let registry =
            Registry::new(store.clone(), keys, RegistryConfig::default()).with_clock(clock.clone());
        let launcher = Arc::new(SimulatedLauncher::new());
        let credits = Arc::new(MemoryCredits::new());
        let calls = Arc::new(
            CallService::new(store.clone(), launcher.clone(), credits.clone())
                .with_clock(clock.clone()),
        );
        let config = InboundConfig {
            // The fuzzer sends far more than any bucket allows; 429s would hide the parser.
            rate_limit: None,
            ..InboundConfig::default()
        };
        let handler = InboundHandler::new(store.clone(), calls, config).with_clock(clock);
        let account = AccountId::new("acct_fuzz");
        credits.set(&account, i64::MAX / 2);
        let webhook = registry
            .create_inbound(&account, None)
            .await
            .expect("inbound webhook");
        let settings = CampaignSettings {
            prompt: Some("Qualify the lead".into()),
            ..Default::default()
        };
        let campaign = registry
            .create_campaign_for(&account, &webhook.id, "Fuzz", settings)
            .await
            .expect("campaign");
        registry
            .set_campaign_status(&account, &campaign.id, CampaignStatus::Active)
            .await
            .expect("active");
        InboundWorld {
            handler,
            launcher,
            slug: webhook.slug,
        }
    })
}

/// The world, built once per process.
pub fn inbound_world() -> &'static InboundWorld {
    static WORLD: OnceLock<InboundWorld> = OnceLock::new();
    WORLD.get_or_init(build_inbound_world)
}

/// `data` as the body of `POST /{slug}` to a known slug: never a 5xx (nor a 404, 405 or
/// 429: the slug exists, the method is POST, rate limiting is off), always JSON whose
/// `success` is true exactly for 201, 201 exactly when `parse_calls_execute` accepts the
/// body, and then the body is exactly `{"success":true}`.
pub fn check_inbound_handler(data: &[u8]) {
    let world = inbound_world();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/{}", world.slug))
        .header("content-type", "application/json")
        .body(Bytes::copy_from_slice(data))
        .expect("request");
    let response = block_on(world.handler.handle(request));
    // Nothing reads the launched calls; keep the memory flat over millions of inputs.
    world.launcher.take_pending();

    let status = response.status();
    assert!(!status.is_server_error(), "5xx: {status}");
    assert!(
        [
            StatusCode::CREATED,
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY,
        ]
        .contains(&status),
        "unexpected status {status}"
    );
    let body: serde_json::Value =
        serde_json::from_slice(response.body()).expect("the answer is JSON");
    assert_eq!(
        body["success"].as_bool(),
        Some(status == StatusCode::CREATED),
        "success does not match {status}: {body}"
    );
    let parsed = parse_calls_execute(data, &ParseOptions::default());
    assert_eq!(
        status == StatusCode::CREATED,
        parsed.is_ok(),
        "201 iff the body parses: {status}, {parsed:?}"
    );
    if status == StatusCode::CREATED {
        assert_eq!(response.body().as_ref(), SUCCESS_BODY);
    } else {
        assert!(body["error"]["code"].is_string(), "no error code: {body}");
        assert!(body["error"]["message"].is_string(), "no message: {body}");
        if let Err(e) = &parsed {
            assert_eq!(body["error"]["code"].as_str(), Some(e.code()));
        }
    }
}

// --- call_event ---------------------------------------------------------------------------

/// `CallEvent::from_slice` never panics; whatever it accepts re-serialises to JSON that
/// parses back to an equal event and serialises to the same bytes again.
pub fn check_call_event(data: &[u8]) {
    let Ok(event) = CallEvent::from_slice(data) else {
        return;
    };
    let json = event.to_vec();
    let again = match CallEvent::from_slice(&json) {
        Ok(e) => e,
        Err(e) => panic!(
            "re-serialised event does not parse: {e}\n{}",
            String::from_utf8_lossy(&json)
        ),
    };
    assert_eq!(event, again, "round trip changed the event");
    assert_eq!(json, again.to_vec(), "serialisation is not stable");
}

// --- verify_signature ---------------------------------------------------------------------

/// The verifier's clock in [`check_verify_signature`].
pub const VERIFY_NOW: i64 = 1_700_000_000;

/// The secret of [`check_verify_signature`].
pub fn verify_secret() -> SigningSecret {
    SigningSecret::from_bytes(&[0x5a; 32]).expect("32-byte secret")
}

fn verify_now() -> DateTime<Utc> {
    Utc.timestamp_opt(VERIFY_NOW, 0).single().expect("time")
}

/// Whether `header` (any number of `webhook-signature` values) holds the genuine signature
/// of the message under `secret`.
fn holds_genuine(secret: &SigningSecret, values: &[&str], id: &str, ts: i64, body: &[u8]) -> bool {
    let genuine = signing::sign(secret, id, ts, body).to_header_value();
    values
        .iter()
        .flat_map(|v| v.split_ascii_whitespace())
        .any(|entry| entry == genuine)
}

/// The first byte picks the mode (even: everything arbitrary; odd: a genuine signature);
/// the rest is split at `0xff` bytes into id, timestamp, signature and body.
///
/// Arbitrary: `verify` (headers from `HeaderValue::from_bytes`, possibly several signature
/// values) and `verify_parts` (lossy UTF-8) never panic, and answer `Ok` only when a
/// signature entry is the genuine one for that id, timestamp and body (which the fuzzer
/// cannot produce: so never). Genuine: the message is signed with the secret at a time
/// within the tolerance, arbitrary entries are mixed into the header, and both entry
/// points answer `Ok` with the id and timestamp; another body does not verify.
pub fn check_verify_signature(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let secret = verify_secret();
    let verifier = Verifier::new(secret.clone());
    let now = verify_now();
    let (id, rest) = split(rest, 0xff);
    let (ts, rest) = split(rest, 0xff);
    let (sig, body) = split(rest, 0xff);

    if mode % 2 == 0 {
        // verify_parts on the text.
        let (id_s, ts_s, sig_s) = (
            String::from_utf8_lossy(id),
            String::from_utf8_lossy(ts),
            String::from_utf8_lossy(sig),
        );
        if let Ok(m) = verifier.verify_parts(&id_s, &ts_s, &sig_s, body, now) {
            assert_eq!(m.id, id_s);
            assert!(
                holds_genuine(&secret, &[&sig_s], &id_s, m.timestamp, body),
                "verify_parts accepted a signature that is not the genuine one"
            );
        }
        // verify on raw header values; the signature bytes may hold several values
        // separated by 0xfe.
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(id)
            && mode & 2 == 0
        {
            headers.insert(HEADER_ID, v);
        }
        if let Ok(v) = HeaderValue::from_bytes(ts)
            && mode & 4 == 0
        {
            headers.insert(HEADER_TIMESTAMP, v);
        }
        let mut values = Vec::new();
        for part in sig.split(|&b| b == 0xfe) {
            if let Ok(v) = HeaderValue::from_bytes(part) {
                values.push(part);
                headers.append(HEADER_SIGNATURE, v);
            }
        }
        match verifier.verify(&headers, body, now) {
            Ok(m) => {
                let texts: Vec<&str> = values
                    .iter()
                    .map(|v| std::str::from_utf8(v).expect("verify accepted UTF-8 only"))
                    .collect();
                assert!(
                    holds_genuine(&secret, &texts, &m.id, m.timestamp, body),
                    "verify accepted a signature that is not the genuine one"
                );
            }
            Err(SigningError::MissingHeader(_))
            | Err(SigningError::InvalidHeader(_))
            | Err(SigningError::TimestampTooOld)
            | Err(SigningError::TimestampTooNew)
            | Err(SigningError::NoMatchingSignature) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
        return;
    }

    // A genuine signature.
    let id: String = id
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .map(|&b| char::from(b))
        .collect();
    let id = if id.is_empty() {
        "msg_fuzz".to_owned()
    } else {
        id
    };
    let offset = ts
        .iter()
        .fold(0i64, |acc, &b| (acc * 31 + i64::from(b)) % 601)
        - 300;
    let timestamp = VERIFY_NOW + offset;
    let genuine = signing::sign(&secret, &id, timestamp, body).to_header_value();
    // Arbitrary visible-ASCII entries around the genuine one.
    let noise: String = sig
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                ' '
            }
        })
        .collect();
    let header = if mode & 2 == 0 {
        format!("{noise} {genuine}")
    } else {
        format!("{genuine} {noise}")
    };
    let expected = signing::VerifiedMessage {
        id: id.clone(),
        timestamp,
    };
    let parts = verifier.verify_parts(&id, &timestamp.to_string(), &header, body, now);
    assert_eq!(
        parts.ok(),
        Some(expected.clone()),
        "genuine signature refused"
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        HEADER_ID,
        HeaderValue::from_str(&id).expect("visible ASCII"),
    );
    headers.insert(HEADER_TIMESTAMP, HeaderValue::from(timestamp));
    headers.insert(
        HEADER_SIGNATURE,
        HeaderValue::from_str(&header).expect("visible ASCII"),
    );
    let verified = verifier.verify(&headers, body, now);
    assert_eq!(verified.ok(), Some(expected), "genuine signature refused");
    // Another body (or another secret) does not verify.
    let mut other = body.to_vec();
    other.push(b'x');
    assert!(matches!(
        verifier.verify(&headers, &other, now),
        Err(SigningError::NoMatchingSignature)
    ));
    let stranger = Verifier::new(SigningSecret::from_bytes(&[0xa5; 32]).expect("secret"));
    assert!(matches!(
        stranger.verify(&headers, body, now),
        Err(SigningError::NoMatchingSignature)
    ));
}

// --- url_rules ----------------------------------------------------------------------------

/// Prefixes that the first byte of a `url_rules` input can put in front of the rest, so
/// the fuzzer spends its time past the scheme.
const URL_PREFIXES: [&str; 8] = [
    "",
    "https://",
    "http://",
    "https://[",
    "https://0x",
    "HTTPS://",
    "https://a.b",
    "http://[::ffff:",
];

/// The URL a `url_rules` input stands for: a prefix chosen by the first byte, then the
/// rest as lossy UTF-8.
pub fn url_input(data: &[u8]) -> String {
    let Some((&first, rest)) = data.split_first() else {
        return String::new();
    };
    let prefix = URL_PREFIXES[usize::from(first) % URL_PREFIXES.len()];
    format!("{prefix}{}", String::from_utf8_lossy(rest))
}

/// [`check_url_rules_str`] on [`url_input`].
pub fn check_url_rules(data: &[u8]) {
    check_url_rules_str(&url_input(data));
}

/// `check_url` never panics under either policy. Accepted under strict: the scheme is
/// https, no userinfo, no fragment, a host that is neither a blocked name nor an address in
/// a blocked range, at most 2048 bytes, accepted under the insecure policy too, and the
/// normalised URL is accepted again as the same URL. Accepted under insecure: http or
/// https, and never an always-blocked address.
pub fn check_url_rules_str(input: &str) {
    let strict = check_url(input, &DestinationPolicy::strict());
    let insecure = check_url(input, &DestinationPolicy::insecure());
    if let Ok(url) = &strict {
        assert_eq!(url.scheme(), "https", "{input:?}");
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(url.fragment().is_none());
        assert!(url.as_str().len() <= destination::MAX_URL_LEN);
        match url.host() {
            Some(url::Host::Domain(name)) => {
                assert!(!name.is_empty());
                assert!(!is_blocked_hostname(name), "{input:?} -> {name}");
                assert!(
                    name.parse::<std::net::IpAddr>().is_err(),
                    "an address as a domain: {input:?} -> {name}"
                );
            }
            Some(url::Host::Ipv4(ip)) => {
                assert_eq!(classify_ip(ip.into()), None, "{input:?} -> {ip}");
            }
            Some(url::Host::Ipv6(ip)) => {
                assert_eq!(classify_ip(ip.into()), None, "{input:?} -> {ip}");
            }
            None => panic!("accepted without a host: {input:?}"),
        }
        assert!(
            insecure.is_ok(),
            "strict accepts but insecure refuses {input:?}"
        );
        let again = check_url(url.as_str(), &DestinationPolicy::strict());
        assert_eq!(
            again.as_ref().ok(),
            Some(url),
            "normalised form of {input:?}"
        );
    }
    if let Ok(url) = &insecure {
        assert!(matches!(url.scheme(), "https" | "http"), "{input:?}");
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::from(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::from(ip)),
            _ => None,
        };
        if let Some(range) = ip.and_then(classify_ip) {
            assert!(!range.is_always_blocked(), "{input:?} is {range:?}");
        }
    }
}

// --- unseal -------------------------------------------------------------------------------

/// The fixed ring of [`check_unseal`]: key 1, 32 bytes of `0x42`.
pub fn unseal_ring() -> KeyRing {
    KeyRing::new(
        KeyId::new(1),
        EncryptionKey::from_bytes(&[0x42; 32]).expect("32-byte key"),
    )
}

/// The first byte picks the mode. Even: the rest as a sealed value (raw bytes, and as
/// base64 text) never panics and never opens under the fixed ring, whatever the context.
/// Odd: the rest is a plaintext, sealed under the ring; it opens to the same bytes, the
/// sealed form is 33 bytes longer, survives base64 and `from_bytes`, and does not open
/// with another context, with one byte flipped, or truncated.
pub fn check_unseal(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    static RING: OnceLock<KeyRing> = OnceLock::new();
    let ring = RING.get_or_init(unseal_ring);
    let ctx = SealContext::new("whk_fuzz", "X-Api-Key");

    if mode % 2 == 0 {
        if let Ok(sealed) = Sealed::from_bytes(rest.to_vec()) {
            let _ = format!("{sealed:?}");
            let _ = sealed.key_id();
            let _ = ring.needs_reseal(&sealed);
            assert!(ring.unseal(&sealed, ctx).is_err(), "arbitrary bytes opened");
            assert!(ring.unseal_string(&sealed, ctx).is_err());
            assert!(ring.reseal(&sealed, ctx).is_err());
            let back = Sealed::from_base64(&sealed.to_base64()).expect("base64 round trip");
            assert_eq!(back, sealed);
        }
        if let Ok(text) = std::str::from_utf8(rest)
            && let Ok(sealed) = Sealed::from_base64(text)
        {
            assert!(
                ring.unseal(&sealed, ctx).is_err(),
                "arbitrary base64 opened"
            );
        }
        return;
    }

    let sealed = ring.seal(rest, ctx).expect("seal");
    assert_eq!(sealed.as_bytes().len(), rest.len() + SEALED_OVERHEAD);
    assert_eq!(sealed.key_id(), Ok(KeyId::new(1)));
    let opened = ring.unseal(&sealed, ctx).expect("unseal");
    assert_eq!(opened.expose(), rest);
    let from_text = Sealed::from_base64(&sealed.to_base64()).expect("base64");
    assert_eq!(ring.unseal(&from_text, ctx).expect("unseal").expose(), rest);
    let from_bytes = Sealed::from_bytes(sealed.as_bytes().to_vec()).expect("from_bytes");
    assert_eq!(
        ring.unseal(&from_bytes, ctx).expect("unseal").expose(),
        rest
    );
    match ring.unseal_string(&sealed, ctx) {
        Ok(s) => assert_eq!(s.expose().as_bytes(), rest),
        Err(e) => {
            assert_eq!(e, SecretsError::NotUtf8);
            assert!(std::str::from_utf8(rest).is_err());
        }
    }
    // Another record or field.
    assert!(
        ring.unseal(&sealed, SealContext::new("whk_fuzy", "X-Api-Key"))
            .is_err()
    );
    assert!(
        ring.unseal(&sealed, SealContext::new("whk_fuzz", "X-Api-Kez"))
            .is_err()
    );
    // One flipped bit anywhere after the version byte (a flipped version byte is refused
    // by from_bytes already).
    let mut bytes = sealed.as_bytes().to_vec();
    let at = 1 + rest
        .iter()
        .fold(0usize, |a, &b| a.wrapping_mul(31) + usize::from(b))
        % (bytes.len() - 1);
    bytes[at] ^= 1 << (mode >> 5);
    match Sealed::from_bytes(bytes) {
        Ok(tampered) => assert!(ring.unseal(&tampered, ctx).is_err(), "tampered opened"),
        Err(e) => panic!("a flipped bit made it malformed: {e:?}"),
    }
    // Truncated by one byte.
    let mut short = sealed.into_bytes();
    short.pop();
    if let Ok(s) = Sealed::from_bytes(short) {
        assert!(ring.unseal(&s, ctx).is_err(), "truncated opened");
    }
}
