//! The inbound path through `InboundHandler` with real `http::Request`s, and the call
//! lifecycle behind it.

use std::sync::Arc;

use atllas_webhooks::calls::{
    CallResult, CallService, CallsError, MemoryCredits, SimulatedLauncher,
};
use atllas_webhooks::campaign::{CampaignKind, CampaignSettings, CampaignStatus};
use atllas_webhooks::clock::{Clock, ManualClock};
use atllas_webhooks::ids::{AccountId, CallId};
use atllas_webhooks::inbound::{InboundConfig, InboundHandler, RateLimit};
use atllas_webhooks::model::{CallEvent, CallStatus, Speaker};
use atllas_webhooks::registry::{
    CampaignRegistry, NewEndpoint, Registry, RegistryConfig, WebhookRegistry,
};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{
    CallOrigin, CallState, CallStore, DeliveryFilter, LogRetention, QueueStore, RequestOutcome,
};
use atllas_webhooks::validate::CountryCode;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http::{Method, Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};

struct World {
    store: Arc<MemoryStore>,
    registry: Registry<MemoryStore>,
    calls: Arc<CallService<MemoryStore>>,
    handler: InboundHandler<MemoryStore>,
    launcher: Arc<SimulatedLauncher>,
    credits: Arc<MemoryCredits>,
    clock: Arc<ManualClock>,
    account: AccountId,
    slug: String,
    webhook: atllas_webhooks::ids::WebhookId,
    campaign: atllas_webhooks::ids::CampaignId,
}

async fn world_with(config: InboundConfig, store: MemoryStore) -> World {
    let store = Arc::new(store);
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
    ));
    let registry = Registry::new(
        store.clone(),
        KeyRing::generate().unwrap(),
        RegistryConfig::default(),
    )
    .with_clock(clock.clone());
    let launcher = Arc::new(SimulatedLauncher::new());
    let credits = Arc::new(MemoryCredits::new());
    let calls = Arc::new(
        CallService::new(store.clone(), launcher.clone(), credits.clone())
            .with_clock(clock.clone()),
    );
    let handler =
        InboundHandler::new(store.clone(), calls.clone(), config).with_clock(clock.clone());
    let account = AccountId::new("acct_in");
    credits.set(&account, 10);
    let webhook = registry.create_inbound(&account, None).await.unwrap();
    let settings = CampaignSettings {
        prompt: Some("Qualify the lead".into()),
        ..Default::default()
    };
    let campaign = registry
        .create_campaign_for(&account, &webhook.id, "Inbound", settings)
        .await
        .unwrap();
    registry
        .set_campaign_status(&account, &campaign.id, CampaignStatus::Active)
        .await
        .unwrap();
    World {
        store,
        registry,
        calls,
        handler,
        launcher,
        credits,
        clock,
        account,
        slug: webhook.slug,
        webhook: webhook.id,
        campaign: campaign.id,
    }
}

async fn world() -> World {
    world_with(InboundConfig::default(), MemoryStore::new()).await
}

fn post(slug: &str, body: impl Into<Bytes>) -> Request<Bytes> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/{slug}"))
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn execute(data: Value) -> Bytes {
    Bytes::from(json!({"type": "calls.execute", "data": data}).to_string())
}

fn error_of(resp: &http::Response<Bytes>) -> (String, Option<String>, String) {
    let v: Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(v["success"], false, "{v}");
    (
        v["error"]["code"].as_str().unwrap().to_owned(),
        v["error"]["field"].as_str().map(str::to_owned),
        v["error"]["message"].as_str().unwrap().to_owned(),
    )
}

impl World {
    /// Sends a request one second after the previous one (listings are newest first).
    async fn send(&self, body: impl Into<Bytes>) -> http::Response<Bytes> {
        self.clock.advance(chrono::Duration::seconds(1));
        self.handler.handle(post(&self.slug, body)).await
    }

    async fn calls(&self) -> Vec<atllas_webhooks::store::CallRecord> {
        self.store.calls(&self.account, None, 100).await.unwrap()
    }

    async fn last_log(&self) -> atllas_webhooks::store::RequestLogEntry {
        self.handler
            .request_log(Some(&self.account), 1)
            .await
            .unwrap()
            .remove(0)
    }
}

#[tokio::test]
async fn valid_request_places_a_call_and_answers_201_success() {
    let w = world().await;
    let resp = w.send(atllas_webhooks::fixtures::CALLS_EXECUTE_JSON).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.body().as_ref(), br#"{"success":true}"#);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let calls = w.calls().await;
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.state, CallState::Dialing);
    assert_eq!(call.contact.phone_number, "+15551234567");
    assert_eq!(call.contact.company_name.as_deref(), Some("Acme Corp"));
    assert_eq!(call.campaign_id.as_ref(), Some(&w.campaign));
    assert_eq!(call.settings_version, 1);
    assert_eq!(
        call.origin,
        CallOrigin::InboundWebhook {
            webhook: w.webhook.clone()
        }
    );
    assert_eq!(w.launcher.pending_len(), 1);
    let log = w.last_log().await;
    assert_eq!((log.status, log.outcome), (201, RequestOutcome::Placed));
    assert_eq!(log.call_id.as_ref(), Some(&call.id));
    assert_eq!(log.slug.as_deref(), Some(w.slug.as_str()));
}

#[tokio::test]
async fn inactive_campaign_no_prompt_or_no_campaign_still_201_but_cancelled() {
    let w = world().await;
    let body = execute(json!({"phoneNumber": "+15551234567"}));

    w.registry
        .set_campaign_status(&w.account, &w.campaign, CampaignStatus::Paused)
        .await
        .unwrap();
    let resp = w.send(body.clone()).await;
    assert_eq!(
        (resp.status(), resp.body().as_ref()),
        (StatusCode::CREATED, &br#"{"success":true}"#[..])
    );
    let call = &w.calls().await[0];
    assert_eq!(call.state, CallState::Cancelled);
    assert!(
        call.cancel_reason.as_deref().unwrap().contains("paused"),
        "{call:?}"
    );
    let log = w.last_log().await;
    assert_eq!(log.outcome, RequestOutcome::Cancelled);
    assert!(log.message.contains("not active"), "{}", log.message);

    w.registry
        .set_campaign_status(&w.account, &w.campaign, CampaignStatus::Active)
        .await
        .unwrap();
    w.registry
        .edit_campaign(&w.account, &w.campaign, CampaignSettings::default())
        .await
        .unwrap();
    assert_eq!(w.send(body.clone()).await.status(), StatusCode::CREATED);
    assert!(w.last_log().await.message.contains("no prompt"));

    // An inbound webhook with no campaign bound.
    let bare = w.registry.create_inbound(&w.account, None).await.unwrap();
    let resp = w.handler.handle(post(&bare.slug, body)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let log = w.last_log().await;
    assert_eq!(log.outcome, RequestOutcome::Cancelled);
    assert!(log.message.contains("no campaign"), "{}", log.message);
    assert_eq!(w.launcher.pending_len(), 0, "nothing was dialed");
}

#[tokio::test]
async fn out_of_credits_is_recorded_cancelled_with_insufficient_funds() {
    let w = world().await;
    w.credits.set(&w.account, 0);
    let resp = w
        .send(execute(json!({"phoneNumber": "+15551234567"})))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.body().as_ref(), br#"{"success":true}"#);
    let call = &w.calls().await[0];
    assert_eq!(call.state, CallState::Cancelled);
    assert_eq!(call.cancel_reason.as_deref(), Some("insufficient funds"));
    assert!(w.last_log().await.message.contains("insufficient funds"));
    assert_eq!(w.launcher.pending_len(), 0);
}

#[tokio::test]
async fn completion_debits_tokens_and_calls_keep_their_settings_version() {
    let w = world().await;
    w.send(execute(
        json!({"phoneNumber": "+15551234567", "firstName": "Jane"}),
    ))
    .await;
    // The campaign is edited after the call was placed.
    let v2 = w
        .registry
        .edit_campaign(
            &w.account,
            &w.campaign,
            CampaignSettings {
                prompt: Some("New script".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let (account, id, _) = w.launcher.take_pending().remove(0);
    let record = w.store.call(&account, &id).await.unwrap();
    assert_eq!(
        record.settings_version, 1,
        "the call keeps the version it ran with"
    );
    let result = SimulatedLauncher::outcome(&record, w.clock.now());
    assert_eq!(result.tokens_consumed, Some(1));
    let t = result.transcript.clone().unwrap();
    assert_eq!(t[0].who, Speaker::Assistant);
    assert!(t[0].what.contains("Jane"));
    w.calls.complete(&account, &id, result).await.unwrap();
    assert_eq!(w.credits.balance(&w.account), 9);
    let stored = w.store.call(&account, &id).await.unwrap();
    assert_eq!(stored.state, CallState::Completed);
    assert_eq!(stored.settings_version, 1);
    assert!(!stored.action_items.is_empty());
    // A new call uses the new version.
    w.send(execute(json!({"phoneNumber": "+15551234568"})))
        .await;
    assert_eq!(w.calls().await[0].settings_version, 2);
}

#[tokio::test]
async fn simulated_outcomes_by_number() {
    let w = world().await;
    for n in ["+15550000000", "+15559999999", "+15551234567"] {
        w.send(execute(json!({"phoneNumber": n}))).await;
    }
    let mut statuses = Vec::new();
    for (account, id, _) in w.launcher.take_pending() {
        let record = w.store.call(&account, &id).await.unwrap();
        let r = SimulatedLauncher::outcome(&record, w.clock.now());
        statuses.push((record.contact.phone_number.clone(), r.status));
    }
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        statuses,
        vec![
            ("+15550000000".into(), CallStatus::Missed),
            ("+15551234567".into(), CallStatus::Finished),
            ("+15559999999".into(), CallStatus::Failed),
        ]
    );
}

#[tokio::test]
async fn error_table_through_the_handler() {
    let w = world().await;
    let cases: Vec<(Bytes, StatusCode, &str, Option<&str>)> = vec![
        (
            Bytes::from_static(b"{oops"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            Bytes::from_static(b"[1]"),
            StatusCode::BAD_REQUEST,
            "body_not_object",
            None,
        ),
        (
            Bytes::from_static(br#"{"data":{"phoneNumber":"+15551234567"}}"#),
            StatusCode::BAD_REQUEST,
            "missing_type",
            Some("type"),
        ),
        (
            Bytes::from_static(br#"{"type":"calls.run","data":{"phoneNumber":"+15551234567"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_type",
            Some("type"),
        ),
        (
            Bytes::from_static(br#"{"type":"calls.execute"}"#),
            StatusCode::BAD_REQUEST,
            "missing_data",
            Some("data"),
        ),
        (
            execute(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_phone_number",
            Some("data.phoneNumber"),
        ),
        (
            execute(json!({"phoneNumber": "call me"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_phone_number",
            Some("data.phoneNumber"),
        ),
        (
            execute(json!({"phoneNumber": "+15551234567", "firstName": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field_type",
            Some("data.firstName"),
        ),
    ];
    for (body, status, code, field) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let resp = w.send(body).await;
        assert_eq!(resp.status(), status, "{shown}");
        let (c, f, _) = error_of(&resp);
        assert_eq!((c.as_str(), f.as_deref()), (code, field), "{shown}");
        let log = w.last_log().await;
        assert_eq!(
            (log.status, log.outcome, log.code.as_deref()),
            (status.as_u16(), RequestOutcome::Rejected, Some(code))
        );
    }
    assert!(
        w.calls().await.is_empty(),
        "no call for any rejected request"
    );
}

#[tokio::test]
async fn phone_number_sent_as_snake_case_is_a_422_that_says_so() {
    let w = world().await;
    let resp = w
        .send(execute(json!({"phone_number": "+15551234567"})))
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (code, field, message) = error_of(&resp);
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("missing_phone_number", Some("data.phoneNumber"))
    );
    assert!(
        message.contains("phone_number") && message.contains("phoneNumber"),
        "{message}"
    );
    let log = w.last_log().await;
    assert_eq!(log.outcome, RequestOutcome::Rejected);
    assert_eq!(
        log.ignored_keys.len(),
        1,
        "a refused request still lists its ignored keys"
    );
    assert_eq!(log.ignored_keys[0].path, "data.phone_number");
    let (_, _, message) = error_of(&w.send(execute(json!({"phoneNumber": "555 1234"}))).await);
    assert!(
        message.contains("+15551234567"),
        "shows the expected format: {message}"
    );
}

#[tokio::test]
async fn snake_case_request_places_the_call_with_the_phone_number_alone() {
    let w = world().await;
    let resp = w
        .send(execute(json!({"phoneNumber": "+15551234567", "first_name": "Jane", "last_name": "Smith", "company": "Acme"})))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let call = &w.calls().await[0];
    assert_eq!(call.contact.phone_number, "+15551234567");
    assert_eq!(
        (
            call.contact.first_name.as_ref(),
            call.contact.last_name.as_ref(),
            call.contact.company_name.as_ref()
        ),
        (None, None, None)
    );
    let log = w.last_log().await;
    let ignored: Vec<String> = log.ignored_keys.iter().map(ToString::to_string).collect();
    assert!(
        ignored.contains(&"data.first_name (did you mean data.firstName?)".to_string()),
        "{ignored:?}"
    );
    assert!(
        ignored.contains(&"data.company (did you mean data.companyName?)".to_string()),
        "{ignored:?}"
    );
    assert!(log.message.contains("first_name"));
}

#[tokio::test]
async fn phone_numbers_are_normalised_to_e164() {
    let config = InboundConfig {
        default_country: Some(CountryCode::parse("1").unwrap()),
        ..Default::default()
    };
    let w = world_with(config, MemoryStore::new()).await;
    for (sent, stored) in [
        ("+1 (555) 123-4567", "+15551234567"),
        ("0044 20 7946 0958", "+442079460958"),
        ("(555) 987-6543", "+15559876543"),
    ] {
        assert_eq!(
            w.send(execute(json!({"phoneNumber": sent}))).await.status(),
            StatusCode::CREATED,
            "{sent}"
        );
        assert_eq!(w.calls().await[0].contact.phone_number, stored);
    }
    // Without a default country a national number is refused.
    let strict = world().await;
    assert_eq!(
        strict
            .send(execute(json!({"phoneNumber": "(555) 987-6543"})))
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn unknown_and_disabled_slugs_get_the_same_404() {
    let w = world().await;
    let unknown = w
        .handler
        .handle(post(
            "doesnotexist234567abcdefgh",
            execute(json!({"phoneNumber": "+15551234567"})),
        ))
        .await;
    w.registry
        .set_inbound_enabled(&w.account, &w.webhook, false)
        .await
        .unwrap();
    let disabled = w
        .send(execute(json!({"phoneNumber": "+15551234567"})))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(disabled.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.body(), disabled.body());
    assert_eq!(error_of(&unknown).0, "not_found");
    for path in ["", "_logs/requests", "a/b", &"x".repeat(500)] {
        let r = w.handler.handle(post(path, "{}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert!(w.calls().await.is_empty());
    let unattributed = w.handler.request_log(None, 10).await.unwrap();
    assert!(
        unattributed
            .iter()
            .any(|e| e.slug.as_deref() == Some("doesnotexist234567abcdefgh") && !e.slug_known)
    );
    assert!(
        unattributed
            .iter()
            .all(|e| e.slug.as_ref().is_none_or(|s| s.len() <= 64))
    );
    let own = w.last_log().await;
    assert!(
        own.slug_known && own.status == 404,
        "disabled slug is logged for its owner"
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow_post() {
    let w = world().await;
    for m in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let req = Request::builder()
            .method(m.clone())
            .uri(format!("/{}", w.slug))
            .body(Bytes::new())
            .unwrap();
        let resp = w.handler.handle(req).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(resp.headers()["allow"], "POST");
        assert_eq!(error_of(&resp).0, "method_not_allowed");
    }
}

#[tokio::test]
async fn body_limit_holds_before_any_parsing() {
    let config = InboundConfig {
        body_limit: 1024,
        ..Default::default()
    };
    let w = world_with(config, MemoryStore::new()).await;
    // Invalid JSON over the limit is a 413, not a 400: the size is checked first.
    let resp = w.send(vec![b'{'; 1025]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_of(&resp).0, "payload_too_large");
    // A declared Content-Length over the limit is refused too.
    let mut req = post(&w.slug, "{}");
    req.headers_mut()
        .insert("content-length", "5000000".parse().unwrap());
    assert_eq!(
        w.handler.handle(req).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // The default limit is 64 KiB.
    assert_eq!(InboundConfig::default().body_limit, 64 * 1024);
    assert!(w.calls().await.is_empty());
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let config = InboundConfig {
        rate_limit: Some(RateLimit {
            burst: 3,
            per_second: 1.0,
        }),
        ..Default::default()
    };
    let w = world_with(config, MemoryStore::new()).await;
    let body = execute(json!({"phoneNumber": "+15551234567"}));
    // All at the same instant: no refill in between.
    for _ in 0..3 {
        assert_eq!(
            w.handler.handle(post(&w.slug, body.clone())).await.status(),
            StatusCode::CREATED
        );
    }
    let limited = w.handler.handle(post(&w.slug, body.clone())).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(error_of(&limited).0, "rate_limited");
    w.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(
        w.handler.handle(post(&w.slug, body)).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(w.calls().await.len(), 4);
    // Another webhook has its own bucket.
    let other = w
        .registry
        .create_inbound(&w.account, Some(&w.campaign))
        .await
        .unwrap();
    let body = execute(json!({"phoneNumber": "+15551234567"}));
    assert_eq!(
        w.handler.handle(post(&other.slug, body)).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer_within_24h() {
    let w = world().await;
    let req = |key: &str, phone: &str| {
        let mut r = post(&w.slug, execute(json!({"phoneNumber": phone})));
        r.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        r
    };
    let first = w.handler.handle(req("k-1", "+15551234567")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = w.handler.handle(req("k-1", "+15551234567")).await;
    assert_eq!(
        (again.status(), again.body()),
        (first.status(), first.body())
    );
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(w.calls().await.len(), 1, "no second call");
    let log = w.last_log().await;
    assert_eq!(log.outcome, RequestOutcome::Replayed);
    assert_eq!(log.call_id, w.calls().await[0].id.clone().into());

    // A first answer that was an error is replayed too.
    let bad = w.handler.handle(req("k-2", "nope")).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        w.handler.handle(req("k-2", "+15551234567")).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    assert_eq!(
        w.handler.handle(req("k-3", "+15551234567")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(w.calls().await.len(), 2);
    w.clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    assert_eq!(
        w.handler.handle(req("k-1", "+15551234567")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(w.calls().await.len(), 3, "after 24 h the key is new again");

    let mut bad_key = post(&w.slug, execute(json!({"phoneNumber": "+15551234567"})));
    bad_key
        .headers_mut()
        .insert("idempotency-key", "x".repeat(300).parse().unwrap());
    assert_eq!(
        w.handler.handle(bad_key).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn request_log_is_newest_first_and_bounded() {
    let retention = LogRetention {
        requests_per_account: 5,
        ..Default::default()
    };
    let w = world_with(
        InboundConfig::default(),
        MemoryStore::with_retention(retention),
    )
    .await;
    for i in 0..8 {
        w.clock.advance(chrono::Duration::seconds(1));
        w.send(execute(json!({"phoneNumber": format!("+1555123456{i}")})))
            .await;
    }
    let log = w.handler.request_log(Some(&w.account), 100).await.unwrap();
    assert_eq!(log.len(), 5);
    assert!(log.windows(2).all(|p| p[0].at > p[1].at), "newest first");
    let newest_call = w.calls().await[0].id.clone();
    assert_eq!(log[0].call_id.as_ref(), Some(&newest_call));
}

#[tokio::test]
async fn completion_fans_out_to_outbound_and_response_webhooks() {
    let w = world().await;
    let other = AccountId::new("acct_other");
    w.registry
        .create_outbound(&other, NewEndpoint::post("https://other.example.com/"))
        .await
        .unwrap();
    let o1 = w
        .registry
        .create_outbound(&w.account, NewEndpoint::post("https://one.example.com/"))
        .await
        .unwrap();
    let o2 = w
        .registry
        .create_outbound(&w.account, NewEndpoint::get("https://two.example.com/"))
        .await
        .unwrap();
    let off = w
        .registry
        .create_outbound(&w.account, NewEndpoint::post("https://off.example.com/"))
        .await
        .unwrap();
    w.registry
        .set_endpoint_enabled(&w.account, &off.webhook.id, false)
        .await
        .unwrap();
    let (resp, _) = w
        .registry
        .set_response_webhook(
            &w.account,
            &w.webhook,
            NewEndpoint::post("https://crm.example.com/cb"),
        )
        .await
        .unwrap();

    w.send(execute(
        json!({"phoneNumber": "+15551234567", "firstName": "Jane"}),
    ))
    .await;
    let (account, id, _) = w.launcher.take_pending().remove(0);
    let record = w.store.call(&account, &id).await.unwrap();
    let done = w
        .calls
        .complete(
            &account,
            &id,
            SimulatedLauncher::outcome(&record, w.clock.now()),
        )
        .await
        .unwrap();
    let mut targets: Vec<(String, String)> = done
        .deliveries
        .iter()
        .map(|d| (d.endpoint_id.to_string(), d.event_type.to_string()))
        .collect();
    targets.sort();
    let mut want = vec![
        (o1.webhook.id.to_string(), "call.finished".to_string()),
        (o2.webhook.id.to_string(), "call.finished".to_string()),
        (resp.id.to_string(), "call.completed".to_string()),
    ];
    want.sort();
    assert_eq!(targets, want);
    for d in &done.deliveries {
        assert!(d.message_id.as_str().starts_with("msg_") && !d.message_id.as_str().contains('.'));
        let event = CallEvent::from_slice(&d.payload).unwrap();
        assert_eq!(event.call().id, id.as_str());
        assert_eq!(event.campaign().name, "Inbound");
        match event {
            CallEvent::Finished(f) => assert_eq!(f.webhook().id, d.endpoint_id.as_str()),
            CallEvent::Completed(c) => assert_eq!(c.webhook.id, w.webhook.as_str()),
        }
    }
    let queued = w
        .store
        .deliveries(&w.account, &DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(queued.len(), 3, "stored with the result");
    assert!(
        w.store
            .deliveries(&other, &DeliveryFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    // Completing again enqueues nothing more.
    let again = w
        .calls
        .complete(&account, &id, CallResult::new(CallStatus::Finished))
        .await;
    assert!(matches!(again, Err(CallsError::AlreadyFinal(..))));
    assert_eq!(
        w.store
            .deliveries(&w.account, &DeliveryFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
    // Another account cannot complete it.
    assert!(matches!(
        w.calls
            .complete(&other, &id, CallResult::new(CallStatus::Finished))
            .await,
        Err(CallsError::NotFound(_))
    ));

    // A test call goes to the outbound webhooks only.
    let placed = w
        .calls
        .place(
            &w.account,
            Some(&w.campaign),
            CallOrigin::TestCall,
            atllas_webhooks::model::Contact::new("+15557654321"),
        )
        .await
        .unwrap();
    let done = w
        .calls
        .complete(
            &w.account,
            &placed.call.id,
            CallResult::new(CallStatus::Missed),
        )
        .await
        .unwrap();
    assert_eq!(done.deliveries.len(), 2);
    assert!(
        done.deliveries
            .iter()
            .all(|d| d.event_type == "call.finished")
    );
    let unknown = CallId::new("call_nope");
    assert!(matches!(
        w.calls
            .complete(&w.account, &unknown, CallResult::new(CallStatus::Failed))
            .await,
        Err(CallsError::NotFound(_))
    ));
    let _ = w.campaign.clone();
    let _ = CampaignKind::Inbound;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_give_a_5xx(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let rt = runtime();
        rt.block_on(async {
            let w = world().await;
            let resp = w.send(body).await;
            prop_assert!(resp.status().is_client_error() || resp.status() == StatusCode::CREATED, "{}", resp.status());
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_json_data_never_gives_a_5xx(data in proptest::collection::btree_map("[a-zA-Z_]{1,10}", prop_oneof![Just(json!(null)), any::<i64>().prop_map(Value::from), "\\PC{0,16}".prop_map(Value::from), Just(json!({"x": [1, {"y": null}]})), Just(json!("+15551234567"))], 0..6)) {
        let rt = runtime();
        rt.block_on(async {
            let w = world().await;
            let body = json!({"type": "calls.execute", "data": data});
            let resp = w.send(body.to_string()).await;
            prop_assert!(resp.status().is_client_error() || resp.status() == StatusCode::CREATED, "{}", resp.status());
            let v: Value = serde_json::from_slice(resp.body()).unwrap();
            prop_assert_eq!(v["success"].as_bool(), Some(resp.status() == StatusCode::CREATED));
            Ok(())
        })?;
    }
}
