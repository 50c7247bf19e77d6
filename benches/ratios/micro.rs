//! The in-process figures: `inbound_parse`, `event_sign`, `unseal`. Each slice runs a fixed
//! op count (calibrated so that a baseline slice lasts about `Config::slice`); the ratio of
//! a pair is subject time / baseline time for the same count.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Key, KeyInit as _, Nonce, Payload};
use atllas_webhooks::fixtures;
use atllas_webhooks::model::CallFinished;
use atllas_webhooks::secrets::{EncryptionKey, KeyId, KeyRing, SealContext};
use atllas_webhooks::signing::{self, SigningSecret};
use atllas_webhooks::validate::{ParseOptions, parse_calls_execute};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::{Config, Outcome, Side, note};

fn time_ops(n: u64, f: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed()
}

/// Alternating pairs of equal op counts; returns subject time / baseline time per pair.
pub fn alternate(
    name: &str,
    cfg: &Config,
    mut baseline: impl FnMut(),
    mut subject: impl FnMut(),
) -> Vec<f64> {
    let (run_b, run_s) = (cfg.runs(Side::Baseline), cfg.runs(Side::Subject));
    // Calibrate on the baseline (on the subject when profiling it alone): double until a
    // run is long enough to scale from.
    let mut n = 1u64;
    let per_slice = loop {
        let t = if run_b {
            time_ops(n, &mut baseline)
        } else {
            time_ops(n, &mut subject)
        };
        if t >= cfg.slice / 8 || n >= 1 << 40 {
            let scaled = n as f64 * cfg.slice.as_secs_f64() / t.as_secs_f64().max(1e-9);
            break (scaled.ceil() as u64).max(1);
        }
        n *= 2;
    };
    let slice = |run: bool, f: &mut dyn FnMut()| {
        if run {
            time_ops(per_slice, &mut || f())
        } else {
            Duration::from_nanos(1)
        }
    };
    // Warm both (caches, allocator pools, branch predictors).
    slice(run_b, &mut baseline);
    slice(run_s, &mut subject);
    let mut ratios = Vec::with_capacity(cfg.pairs);
    let (mut base_ns, mut subj_ns) = (Vec::new(), Vec::new());
    for _ in 0..cfg.pairs {
        let b = slice(run_b, &mut baseline);
        let s = slice(run_s, &mut subject);
        ratios.push(s.as_secs_f64() / b.as_secs_f64());
        base_ns.push(b.as_nanos() as f64 / per_slice as f64);
        subj_ns.push(s.as_nanos() as f64 / per_slice as f64);
    }
    base_ns.sort_by(f64::total_cmp);
    subj_ns.sort_by(f64::total_cmp);
    note!(
        "{name}: {per_slice} ops per slice; median baseline {:.0} ns/op, subject {:.0} ns/op",
        base_ns[base_ns.len() / 2],
        subj_ns[subj_ns.len() / 2]
    );
    ratios
}

/// `calls.execute` as a bare derived struct: what serde gives for free.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Read only through black_box.
struct PlainExecute {
    #[serde(rename = "type")]
    kind: String,
    data: PlainData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct PlainData {
    phone_number: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    company_name: Option<String>,
    note: Option<String>,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    zip_code: Option<String>,
}

/// `validate::parse_calls_execute` on the seed's body vs `serde_json::from_slice` into
/// [`PlainExecute`].
pub fn inbound_parse(cfg: &Config) -> Outcome {
    let body = fixtures::CALLS_EXECUTE_JSON.as_bytes();
    let options = ParseOptions::default();
    assert!(parse_calls_execute(body, &options).is_ok());
    assert!(serde_json::from_slice::<PlainExecute>(body).is_ok());
    Outcome::Ratios(alternate(
        "inbound_parse",
        cfg,
        || {
            let _ = black_box(serde_json::from_slice::<PlainExecute>(black_box(body)));
        },
        || {
            let _ = black_box(parse_calls_execute(black_box(body), &options));
        },
    ))
}

/// A `CallFinished` built from the seed's parts, serialised and signed, vs serialising a
/// prebuilt one and a raw HMAC-SHA256 over `id.ts.body`.
pub fn event_sign(cfg: &Config) -> Outcome {
    let prebuilt = fixtures::call_finished();
    let call = prebuilt.call().clone();
    let campaign = prebuilt.campaign().clone();
    let webhook_id = prebuilt.webhook().id.clone();
    let at = prebuilt.timestamp();
    let key = [0x5au8; 32];
    let secret = SigningSecret::from_bytes(&key).expect("a 32-byte key");
    let msg_id = "msg_2LxYh7bQk9WcVn3Rt8sJpA";
    let ts: i64 = 1_730_179_200;
    let ts_text = ts.to_string();

    // Both sides must produce the same bytes and the same tag.
    let body = serde_json::to_vec(&prebuilt).expect("serialisable");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(ts_text.as_bytes());
    mac.update(b".");
    mac.update(&body);
    let raw = mac.finalize().into_bytes();
    let sig = signing::sign(&secret, msg_id, ts, &body);
    assert_eq!(sig.as_bytes()[..], raw[..]);
    note!("event_sign: payload {} bytes", body.len());

    Outcome::Ratios(alternate(
        "event_sign",
        cfg,
        || {
            let mut out = Vec::new();
            serde_json::to_writer(&mut out, black_box(&prebuilt)).expect("serialisable");
            let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&key)).expect("any key");
            mac.update(msg_id.as_bytes());
            mac.update(b".");
            mac.update(ts_text.as_bytes());
            mac.update(b".");
            mac.update(&out);
            black_box((out, mac.finalize().into_bytes()));
        },
        || {
            let event = CallFinished::new(
                webhook_id.as_str(),
                at,
                black_box(&call).clone(),
                campaign.clone(),
            );
            let body = serde_json::to_vec(&event).expect("serialisable");
            let header = signing::signature_header([&secret], msg_id, black_box(ts), &body);
            black_box((body, header));
        },
    ))
}

/// `KeyRing::unseal_string` of a sealed custom header vs a bare `Aes256Gcm` decrypt (the
/// cipher built once, as the ring does) of the same ciphertext with the same AAD.
pub fn unseal(cfg: &Config) -> Outcome {
    let key = [0x3cu8; 32];
    let ring = KeyRing::new(
        KeyId::new(1),
        EncryptionKey::from_bytes(&key).expect("32 bytes"),
    );
    let owner = "webhook_7mQ2xKp9LrT4vB8nZc1Hd";
    let name = "header:authorization";
    let ctx = SealContext::new(owner, name);
    let value = "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dcTQkA9xZ";
    let sealed = ring.seal(value.as_bytes(), ctx).expect("seal");

    // The bare side: the sealed format's pieces and the ring's AAD, prepared once.
    let bytes = sealed.as_bytes();
    let (prefix, rest) = bytes.split_at(5);
    let (nonce, ciphertext_and_tag) = rest.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().expect("12 bytes");
    let nonce: &Nonce<Aes256Gcm> = (&nonce).into();
    let mut aad = prefix.to_vec();
    for part in [owner, name] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    let cipher_key: &Key<Aes256Gcm> = (&key).into();
    let cipher = Aes256Gcm::new(cipher_key);
    let bare = cipher
        .decrypt(
            nonce,
            Payload {
                msg: ciphertext_and_tag,
                aad: &aad,
            },
        )
        .expect("the bare decrypt opens the ring's value");
    assert_eq!(bare, value.as_bytes());
    assert_eq!(
        ring.unseal_string(&sealed, ctx).expect("unseal").expose(),
        value
    );

    Outcome::Ratios(alternate(
        "unseal",
        cfg,
        || {
            let out = cipher.decrypt(
                nonce,
                Payload {
                    msg: black_box(ciphertext_and_tag),
                    aad: &aad,
                },
            );
            let _ = black_box(out);
        },
        || {
            let _ = black_box(ring.unseal_string(black_box(&sealed), ctx));
        },
    ))
}
