//! Abuse of the inbound path: each gets its documented 4xx quickly, nothing reaches the
//! store but the request log, and memory stays bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atllas_webhooks::calls::{CallService, MemoryCredits, SimulatedLauncher};
use atllas_webhooks::campaign::{CampaignSettings, CampaignStatus};
use atllas_webhooks::ids::AccountId;
use atllas_webhooks::inbound::{InboundConfig, InboundHandler, RateLimit};
use atllas_webhooks::registry::{CampaignRegistry, Registry, RegistryConfig, WebhookRegistry};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{CallStore, LogStore, RequestOutcome};
use bytes::Bytes;
use http::{Request, StatusCode};

struct World {
    store: Arc<MemoryStore>,
    handler: InboundHandler<MemoryStore>,
    account: AccountId,
    slug: String,
}

async fn world(rate_limit: Option<RateLimit>) -> World {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::new(
        store.clone(),
        KeyRing::generate().unwrap(),
        RegistryConfig::default(),
    );
    let credits = Arc::new(MemoryCredits::new());
    let account = AccountId::new("acct_abuse");
    credits.set(&account, 1_000_000);
    let calls = Arc::new(CallService::new(
        store.clone(),
        Arc::new(SimulatedLauncher::new()),
        credits,
    ));
    let handler = InboundHandler::new(
        store.clone(),
        calls,
        InboundConfig {
            rate_limit,
            ..Default::default()
        },
    );
    let w = registry.create_inbound(&account, None).await.unwrap();
    let c = registry
        .create_campaign_for(
            &account,
            &w.id,
            "c",
            CampaignSettings {
                prompt: Some("p".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    registry
        .set_campaign_status(&account, &c.id, CampaignStatus::Active)
        .await
        .unwrap();
    World {
        store,
        handler,
        account,
        slug: w.slug,
    }
}

impl World {
    async fn post(&self, body: impl Into<Bytes>) -> (StatusCode, String, Duration) {
        let req = Request::post(format!("/{}", self.slug))
            .body(body.into())
            .unwrap();
        let started = Instant::now();
        let resp = self.handler.handle(req).await;
        let took = started.elapsed();
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        (
            resp.status(),
            v["error"]["code"].as_str().unwrap_or("").to_owned(),
            took,
        )
    }

    async fn no_calls(&self) {
        assert!(
            self.store
                .calls(&self.account, None, 10)
                .await
                .unwrap()
                .is_empty(),
            "nothing reached the calls table"
        );
    }
}

fn execute_with(data: &str) -> String {
    format!(r#"{{"type":"calls.execute","data":{{{data}}}}}"#)
}

#[tokio::test]
async fn oversized_bodies_are_413_before_parsing() {
    let w = world(None).await;
    for size in [1usize << 20, 100 << 20] {
        let body = vec![b'{'; size];
        let (status, code, took) = w.post(body).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            "{size}"
        );
        assert!(
            took < Duration::from_millis(200),
            "{size} bytes took {took:?}"
        );
    }
    w.no_calls().await;
}

#[tokio::test]
async fn malformed_inputs_get_their_documented_4xx_quickly() {
    let w = world(None).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_in_data = execute_with(&format!(r#""phoneNumber":"+15551234567","x":{deep}"#));
    let deep_obj = format!("{}{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let mut invalid_utf8 =
        execute_with(r#""phoneNumber":"+15551234567","firstName":"AB""#).into_bytes();
    let pos = invalid_utf8.windows(2).position(|p| p == b"AB").unwrap();
    invalid_utf8[pos] = 0xff;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "nested 10 000 deep",
            deep.into_bytes(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "nested 10 000 deep inside data",
            deep_in_data.into_bytes(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "objects nested 10 000 deep",
            deep_obj.into_bytes(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "invalid UTF-8",
            invalid_utf8,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "duplicate keys",
            execute_with(r#""phoneNumber":"+15551234567","phoneNumber":"+15557654321""#)
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "duplicate_key",
        ),
        (
            "number for a string",
            execute_with(r#""phoneNumber":15551234567"#).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field_type",
        ),
        (
            "huge string",
            execute_with(&format!(
                r#""phoneNumber":"+15551234567","note":"{}""#,
                "n".repeat(60_000)
            ))
            .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "field_too_long",
        ),
        (
            "huge phone number",
            execute_with(&format!(r#""phoneNumber":"+1{}""#, "5".repeat(50_000))).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "field_too_long",
        ),
        (
            "empty body",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "NUL bytes",
            vec![0u8; 1000],
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, got_code, took) = w.post(body).await;
        assert_eq!((got, got_code.as_str()), (status, code), "{what}");
        assert!(took < Duration::from_millis(200), "{what} took {took:?}");
    }
    w.no_calls().await;
    // The request log has every one, bounded.
    let log = w.store.requests(Some(&w.account), 100).await.unwrap();
    assert_eq!(log.len(), 10);
    assert!(
        log.iter()
            .all(|e| e.outcome == RequestOutcome::Rejected && e.message.len() < 2_000)
    );
}

#[tokio::test]
async fn a_flood_past_the_rate_limit_gets_429_and_places_no_more_calls() {
    let w = world(Some(RateLimit {
        burst: 5,
        per_second: 0.001,
    }))
    .await;
    let body = execute_with(r#""phoneNumber":"+15551234567""#);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..500 {
        let (status, _, _) = w.post(body.clone()).await;
        *statuses.entry(status.as_u16()).or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&201), Some(&5));
    assert_eq!(statuses.get(&429), Some(&495));
    assert_eq!(
        w.store.calls(&w.account, None, 1000).await.unwrap().len(),
        5
    );
}

#[tokio::test]
async fn unknown_slug_floods_keep_the_log_bounded() {
    let store = Arc::new(MemoryStore::with_retention(
        atllas_webhooks::store::LogRetention {
            requests_per_account: 50,
            ..Default::default()
        },
    ));
    let calls = Arc::new(CallService::new(
        store.clone(),
        Arc::new(SimulatedLauncher::new()),
        Arc::new(MemoryCredits::new()),
    ));
    let handler = InboundHandler::new(store.clone(), calls, InboundConfig::default());
    for i in 0..2_000 {
        let resp = handler
            .handle(
                Request::post(format!("/nope{i}"))
                    .body(Bytes::from_static(b"{}"))
                    .unwrap(),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(store.requests(None, 10_000).await.unwrap().len(), 50);
}
