//! Criterion timings of the hot paths: `cargo bench --bench hot_paths`. Short runs (a
//! second of measurement each); absolute times on a shared machine are noisy, which is why
//! the figures that are compared against targets live in `benches/ratios/` as ratios.

use std::hint::black_box;
use std::time::Duration;

use atllas_webhooks::delivery::{Outgoing, build_request};
use atllas_webhooks::fixtures;
use atllas_webhooks::ids::CallId;
use atllas_webhooks::model::{CallFinished, HttpMethod};
use atllas_webhooks::secrets::{EncryptionKey, KeyId, KeyRing, SealContext};
use atllas_webhooks::signing::{SigningSecret, signature_header};
use atllas_webhooks::validate::{ParseOptions, parse_calls_execute};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, HeaderValue};

const MSG_ID: &str = "msg_2LxYh7bQk9WcVn3Rt8sJpA";
const TS: i64 = 1_730_179_200;

fn hot_paths(c: &mut Criterion) {
    let body = fixtures::CALLS_EXECUTE_JSON.as_bytes();
    let options = ParseOptions::default();
    c.bench_function("parse_calls_execute", |b| {
        b.iter(|| parse_calls_execute(black_box(body), &options))
    });

    let seed = fixtures::call_finished();
    let (call, campaign) = (seed.call().clone(), seed.campaign().clone());
    c.bench_function("call_finished_build_serialise", |b| {
        b.iter(|| {
            let event = CallFinished::new(
                "webhook_abc123",
                seed.timestamp(),
                black_box(&call).clone(),
                campaign.clone(),
            );
            serde_json::to_vec(&event)
        })
    });

    // Every inbound request and every enqueued delivery makes ids.
    c.bench_function("call_id_generate", |b| b.iter(CallId::generate));

    let secret = SigningSecret::from_bytes(&[0x5a; 32]).expect("32 bytes");
    let payload = Bytes::from(serde_json::to_vec(&seed).expect("serialisable"));
    c.bench_function("signature_header", |b| {
        b.iter(|| signature_header([&secret], MSG_ID, TS, black_box(&payload)))
    });

    let ring = KeyRing::new(
        KeyId::new(1),
        EncryptionKey::from_bytes(&[0x3c; 32]).expect("32 bytes"),
    );
    let ctx = SealContext::new("webhook_7mQ2xKp9LrT4vB8nZc1Hd", "header:authorization");
    let sealed = ring
        .seal(b"Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dcTQkA9xZ", ctx)
        .expect("seal");
    c.bench_function("unseal_string", |b| {
        b.iter(|| ring.unseal_string(black_box(&sealed), ctx))
    });

    let headers = [(
        HeaderName::from_static("authorization"),
        HeaderValue::from_static("Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dcTQkA9xZ"),
    )];
    let user_agent = HeaderValue::from_static("atllas-webhooks/bench");
    let secrets = [secret.clone()];
    for (name, method, url) in [
        (
            "build_request_post",
            HttpMethod::Post,
            "https://hooks.example.com/calls",
        ),
        (
            "build_request_get",
            HttpMethod::Get,
            "https://hooks.example.com/calls?src=atllas",
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                build_request(&Outgoing {
                    url,
                    method,
                    headers: &headers,
                    secrets: &secrets,
                    message_id: MSG_ID,
                    timestamp: TS,
                    payload: black_box(&payload),
                    user_agent: &user_agent,
                    max_get_url: 8 * 1024,
                })
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = hot_paths
}
criterion_main!(benches);
