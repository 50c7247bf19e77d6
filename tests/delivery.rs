//! The delivery engine against a real HTTP server on 127.0.0.1.
#![cfg(all(feature = "client", feature = "worker"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use atllas_webhooks::calls::{CallResult, CallService, MemoryCredits, SimulatedLauncher};
use atllas_webhooks::campaign::{CampaignKind, CampaignSettings, CampaignStatus};
use atllas_webhooks::clock::{Clock, ManualClock, SystemClock};
use atllas_webhooks::delivery::{
    AttemptClass, ClientConfig, DeliveryConfig, DeliveryEngine, HyperClient, RetrySchedule,
    TestConfig, Waker,
};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::{AccountId, CallId, WebhookId};
use atllas_webhooks::model::{CallEvent, CallStatus, HttpMethod};
use atllas_webhooks::receiver::Receiver;
use atllas_webhooks::registry::{
    CampaignRegistry, CustomHeader, NewEndpoint, Registry, RegistryConfig, WebhookRegistry,
};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::signing::SigningSecret;
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{CallOrigin, DeliveryFilter, DeliveryState, QueueStore};
use chrono::{TimeZone, Utc};
use support::{Reply, TestServer};

struct World {
    server: TestServer,
    store: Arc<MemoryStore>,
    registry: Arc<Registry<MemoryStore>>,
    calls: CallService<MemoryStore>,
    engine: Arc<DeliveryEngine<MemoryStore>>,
    clock: Arc<dyn Clock>,
    manual: Option<Arc<ManualClock>>,
    account: AccountId,
    campaign: atllas_webhooks::ids::CampaignId,
}

fn client(timeout: Duration) -> Arc<HyperClient> {
    Arc::new(
        HyperClient::new(ClientConfig {
            destinations: DestinationPolicy::insecure(),
            total_timeout: timeout,
            connect_timeout: timeout,
            ..ClientConfig::default()
        })
        .unwrap(),
    )
}

async fn world_with(manual: bool, config: DeliveryConfig) -> World {
    let server = TestServer::start().await;
    let store = Arc::new(MemoryStore::new());
    let (clock, manual): (Arc<dyn Clock>, Option<Arc<ManualClock>>) = if manual {
        let m = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap(),
        ));
        (m.clone(), Some(m))
    } else {
        (Arc::new(SystemClock), None)
    };
    let registry = Arc::new(
        Registry::new(
            store.clone(),
            KeyRing::generate().unwrap(),
            RegistryConfig {
                destinations: DestinationPolicy::insecure(),
                ..Default::default()
            },
        )
        .with_clock(clock.clone()),
    );
    let credits = Arc::new(MemoryCredits::new());
    let account = AccountId::new("acct_d");
    credits.set(&account, 1000);
    let calls = CallService::new(store.clone(), Arc::new(SimulatedLauncher::new()), credits)
        .with_clock(clock.clone());
    let engine = Arc::new(
        DeliveryEngine::new(registry.clone(), client(config.request_timeout), config).unwrap(),
    );
    let campaign = registry
        .create_campaign(
            &account,
            "Results",
            CampaignKind::Outbound,
            CampaignSettings {
                prompt: Some("p".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    registry
        .set_campaign_status(&account, &campaign.id, CampaignStatus::Active)
        .await
        .unwrap();
    World {
        server,
        store,
        registry,
        calls,
        engine,
        clock,
        manual,
        account,
        campaign: campaign.id,
    }
}

async fn world() -> World {
    world_with(
        true,
        DeliveryConfig {
            retry: RetrySchedule::default().without_jitter(),
            ..Default::default()
        },
    )
    .await
}

impl World {
    /// The account's deliveries in `state` (up to 1000).
    async fn deliveries_in(&self, state: DeliveryState) -> Vec<atllas_webhooks::store::Delivery> {
        self.store
            .deliveries(
                &self.account,
                &DeliveryFilter {
                    state: Some(state),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    async fn outbound(&self, path: &str) -> (WebhookId, SigningSecret) {
        let created = self
            .registry
            .create_outbound(&self.account, NewEndpoint::post(self.server.url(path)))
            .await
            .unwrap();
        (
            created.webhook.id,
            SigningSecret::parse(created.signing_secret.expose()).unwrap(),
        )
    }

    /// Places and completes one call (a test call) to `phone`.
    async fn finished_call(&self, phone: &str) -> CallId {
        let placed = self
            .calls
            .place(
                &self.account,
                Some(&self.campaign),
                CallOrigin::OutboundCampaign,
                atllas_webhooks::model::Contact::new(phone),
            )
            .await
            .unwrap();
        let record = self
            .store
            .call(&self.account, &placed.call.id)
            .await
            .unwrap();
        self.calls
            .complete(
                &self.account,
                &placed.call.id,
                SimulatedLauncher::outcome(&record, self.clock.now()),
            )
            .await
            .unwrap();
        placed.call.id
    }

    fn advance(&self, d: chrono::Duration) {
        self.manual.as_ref().expect("manual clock").advance(d);
    }
}

use atllas_webhooks::store::CallStore;

#[tokio::test]
async fn fan_out_signed_posts_and_gets_with_unsealed_headers() {
    let w = world().await;
    let mut posts = Vec::new();
    for i in 0..6 {
        posts.push(w.outbound(&format!("post{i}")).await);
    }
    let get = w
        .registry
        .create_outbound(
            &w.account,
            NewEndpoint::get(w.server.url("get?src=atllas"))
                .header(CustomHeader::new("X-System-Key", "fub-key-123").unwrap()),
        )
        .await
        .unwrap();
    let get_secret = SigningSecret::parse(get.signing_secret.expose()).unwrap();
    let with_header = w
        .registry
        .create_outbound(
            &w.account,
            NewEndpoint::post(w.server.url("auth"))
                .header(atllas_webhooks::registry::headers::bearer("token123").unwrap()),
        )
        .await
        .unwrap();
    // Another account's webhook on the same server gets nothing.
    w.registry
        .create_outbound(
            &AccountId::new("acct_other"),
            NewEndpoint::post(w.server.url("other")),
        )
        .await
        .unwrap();

    let call = w.finished_call("+15551234567").await;
    let reports = w.engine.run_once(100).await.unwrap();
    assert_eq!(reports.len(), 8);
    assert!(reports.iter().all(|r| r.success), "{reports:?}");
    assert!(w.server.hits_for("other").is_empty());

    for (i, (id, secret)) in posts.iter().enumerate() {
        let hits = w.server.hits_for(&format!("post{i}"));
        assert_eq!(hits.len(), 1);
        let h = &hits[0];
        assert_eq!(h.method, http::Method::POST);
        assert_eq!(h.headers["content-type"], "application/json");
        assert!(
            h.headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("atllas-webhooks/")
        );
        let received = Receiver::new(secret.clone())
            .receive(&h.headers, &h.body, w.clock.now())
            .unwrap();
        assert!(received.id.starts_with("msg_") && !received.id.contains('.'));
        match received.event {
            CallEvent::Finished(e) => {
                assert_eq!(e.webhook().id, id.as_str());
                assert_eq!(e.call().id, call.as_str());
                assert_eq!(e.call().status, CallStatus::Finished);
            }
            other => panic!("expected call.finished, got {other:?}"),
        }
    }
    let g = &w.server.hits_for("get")[0];
    assert_eq!(g.method, http::Method::GET);
    assert!(g.body.is_empty());
    assert!(
        g.uri.query().unwrap().starts_with("src=atllas&payload="),
        "{:?}",
        g.uri
    );
    assert_eq!(g.headers["x-system-key"], "fub-key-123");
    let received = Receiver::new(get_secret)
        .receive_get(&g.headers, &g.uri, w.clock.now())
        .unwrap();
    assert_eq!(received.event.event_type(), "call.finished");
    assert_eq!(
        w.server.hits_for("auth")[0].headers["authorization"],
        "Bearer token123"
    );
    let _ = with_header;
}

#[tokio::test]
async fn response_webhook_gets_call_completed_for_inbound_calls() {
    let w = world().await;
    let (out_id, _) = w.outbound("out").await;
    let inbound = w.registry.create_inbound(&w.account, None).await.unwrap();
    let c = w
        .registry
        .create_campaign_for(
            &w.account,
            &inbound.id,
            "In",
            CampaignSettings {
                prompt: Some("p".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.registry
        .set_campaign_status(&w.account, &c.id, CampaignStatus::Active)
        .await
        .unwrap();
    let (resp, secret) = w
        .registry
        .set_response_webhook(
            &w.account,
            &inbound.id,
            NewEndpoint::post(w.server.url("cb")),
        )
        .await
        .unwrap();
    let secret = SigningSecret::parse(secret.unwrap().expose()).unwrap();
    let placed = w
        .calls
        .place(
            &w.account,
            Some(&c.id),
            CallOrigin::InboundWebhook {
                webhook: inbound.id.clone(),
            },
            atllas_webhooks::model::Contact::new("+15550000000"),
        )
        .await
        .unwrap();
    w.calls
        .complete(
            &w.account,
            &placed.call.id,
            CallResult::new(CallStatus::Missed),
        )
        .await
        .unwrap();
    w.engine.run_once(10).await.unwrap();
    let hit = &w.server.hits_for("cb")[0];
    let received = Receiver::new(secret)
        .receive(&hit.headers, &hit.body, w.clock.now())
        .unwrap();
    match received.event {
        CallEvent::Completed(e) => {
            assert_eq!(e.webhook.id, inbound.id.as_str());
            assert_eq!(e.call.status, CallStatus::Missed);
            assert!(
                e.call.summary.is_none(),
                "absent optional fields stay absent"
            );
        }
        other => panic!("expected call.completed, got {other:?}"),
    }
    assert_eq!(
        w.server.hits_for("out").len(),
        1,
        "the outbound webhook also got call.finished"
    );
    let _ = (resp, out_id);
}

#[tokio::test]
async fn retries_follow_the_schedule_under_a_simulated_clock() {
    let w = world().await;
    let (id, _) = w.outbound("down").await;
    w.server.set("down", Reply::status(500).body("boom"));
    w.finished_call("+15551234567").await;
    let schedule = RetrySchedule::default().without_jitter();
    let mut message_ids = std::collections::HashSet::new();
    for attempt in 1..=8u32 {
        let reports = w.engine.run_once(10).await.unwrap();
        assert_eq!(reports.len(), 1, "attempt {attempt} due");
        let r = &reports[0];
        assert_eq!(
            (r.attempt, r.status, r.success),
            (attempt, Some(500), false)
        );
        // Nothing is due before the next scheduled time.
        if attempt < 8 {
            let delay = schedule.delay_after(attempt).unwrap();
            assert_eq!(
                r.next_attempt_at.unwrap() - w.clock.now(),
                chrono::Duration::from_std(delay).unwrap()
            );
            w.advance(
                chrono::Duration::from_std(delay).unwrap() - chrono::Duration::milliseconds(1),
            );
            assert!(
                w.engine.run_once(10).await.unwrap().is_empty(),
                "not due yet after attempt {attempt}"
            );
            w.advance(chrono::Duration::milliseconds(1));
        } else {
            assert!(r.dead && r.next_attempt_at.is_none());
        }
    }
    for h in w.server.hits_for("down") {
        message_ids.insert(h.headers["webhook-id"].to_str().unwrap().to_owned());
    }
    assert_eq!(w.server.hits_for("down").len(), 8);
    assert_eq!(
        message_ids.len(),
        1,
        "the message id is stable across retries"
    );
    let dead = w
        .engine
        .dead_letters(&w.account, Some(&id), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 8);
    let log = w
        .engine
        .delivery_log(&w.account, &id, None, 100)
        .await
        .unwrap();
    assert_eq!(
        log.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        (1..=8).rev().collect::<Vec<_>>(),
        "newest first"
    );
    assert!(log.iter().all(|a| a.status == Some(500)
        && !a.success
        && a.response_body == "boom"
        && a.class() == AttemptClass::ServerError));
    assert!(
        w.engine
            .delivery_log(&w.account, &id, Some(true), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn retry_after_is_honoured_within_bounds() {
    let w = world().await;
    w.outbound("busy").await;
    w.server
        .push("busy", Reply::status(429).header("retry-after", "120"));
    w.server
        .push("busy", Reply::status(503).header("retry-after", "999999"));
    w.finished_call("+15551234567").await;
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert_eq!(
        r.next_attempt_at.unwrap() - w.clock.now(),
        chrono::Duration::seconds(120)
    );
    w.advance(chrono::Duration::seconds(120));
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert_eq!(r.status, Some(503));
    assert_eq!(
        r.next_attempt_at.unwrap() - w.clock.now(),
        chrono::Duration::hours(6),
        "capped at retry_after_max"
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let w = world().await;
    let (id, _) = w.outbound("gone").await;
    w.server.set("gone", Reply::status(410));
    w.finished_call("+15551234567").await;
    w.finished_call("+15551234568").await;
    let reports = w.engine.run_once(1).await.unwrap();
    assert!(reports[0].dead);
    let view = w.registry.endpoint(&w.account, &id).await.unwrap();
    assert!(!view.enabled);
    assert!(view.disabled_reason.unwrap().contains("410"));
    // The other pending delivery became a dead letter, and nothing more is sent.
    assert!(w.engine.run_once(10).await.unwrap().is_empty());
    assert_eq!(
        w.engine
            .dead_letters(&w.account, Some(&id), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(w.server.hits_for("gone").len(), 1);
    let log = w
        .engine
        .delivery_log(&w.account, &id, None, 10)
        .await
        .unwrap();
    assert!(
        log[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("disabled")
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_and_can_be_re_enabled() {
    let w = world_with(
        true,
        DeliveryConfig {
            retry: RetrySchedule::parse("0,1h").unwrap().without_jitter(),
            ..Default::default()
        },
    )
    .await;
    let (id, _) = w.outbound("flaky").await;
    w.server.set("flaky", Reply::status(502));
    // One failing delivery a day for six days.
    let mut disabled_on = None;
    for day in 0..6 {
        w.finished_call("+15551234567").await;
        for r in w.engine.run_once(10).await.unwrap() {
            assert!(!r.success);
        }
        if !w.registry.endpoint(&w.account, &id).await.unwrap().enabled {
            disabled_on = Some(day);
            break;
        }
        w.advance(chrono::Duration::days(1));
    }
    assert_eq!(
        disabled_on,
        Some(5),
        "disabled once it failed for 5 days without a success"
    );
    let view = w.registry.endpoint(&w.account, &id).await.unwrap();
    assert!(view.disabled_reason.as_deref().unwrap().contains("5 days"));
    let log = w
        .engine
        .delivery_log(&w.account, &id, None, 1)
        .await
        .unwrap();
    assert!(
        log[0]
            .error_message
            .as_deref()
            .unwrap()
            .contains("disabled"),
        "{:?}",
        log[0]
    );
    // Re-enabling is an API call; the failure streak starts over.
    let on = w
        .registry
        .set_endpoint_enabled(&w.account, &id, true)
        .await
        .unwrap();
    assert!(on.enabled && on.failing_since.is_none());
}

#[tokio::test]
async fn a_success_resets_the_failure_streak() {
    let w = world().await;
    let (id, _) = w.outbound("recovering").await;
    w.server.push("recovering", Reply::status(500));
    w.finished_call("+15551234567").await;
    w.engine.run_once(10).await.unwrap();
    assert!(
        w.registry
            .endpoint(&w.account, &id)
            .await
            .unwrap()
            .failing_since
            .is_some()
    );
    w.advance(chrono::Duration::seconds(5));
    assert!(w.engine.run_once(10).await.unwrap()[0].success);
    let view = w.registry.endpoint(&w.account, &id).await.unwrap();
    assert!(view.failing_since.is_none() && view.last_success_at.is_some());
}

#[tokio::test]
async fn redelivery_keeps_the_message_id() {
    let w = world_with(
        true,
        DeliveryConfig {
            retry: RetrySchedule::parse("0").unwrap(),
            ..Default::default()
        },
    )
    .await;
    let (id, _) = w.outbound("later").await;
    w.server.push("later", Reply::status(500));
    w.server.push("later", Reply::status(500));
    w.finished_call("+15551234567").await;
    let since = w.clock.now();
    w.finished_call("+15551234568").await;
    w.engine.run_once(10).await.unwrap();
    let dead = w
        .engine
        .dead_letters(&w.account, Some(&id), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
    let first_ids: Vec<String> = w
        .server
        .hits_for("later")
        .iter()
        .map(|h| h.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();

    let again = w.engine.redeliver(&w.account, &dead[0].id).await.unwrap();
    assert_eq!(again.message_id, dead[0].message_id);
    assert_eq!(again.state, DeliveryState::Pending);
    assert!(w.engine.run_once(10).await.unwrap()[0].success);
    let last = w.server.hits_for("later").last().unwrap().headers["webhook-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(last, dead[0].message_id.as_str());
    assert!(first_ids.contains(&last));

    // All dead letters since a time.
    assert_eq!(
        w.engine
            .redeliver_dead_since(&w.account, None, since)
            .await
            .unwrap(),
        1
    );
    assert!(w.engine.run_once(10).await.unwrap()[0].success);
    assert!(
        w.engine
            .dead_letters(&w.account, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Another account cannot redeliver.
    assert!(
        w.engine
            .redeliver(&AccountId::new("acct_x"), &dead[0].id)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_response_body_is_truncated_in_the_log() {
    let w = world_with(
        true,
        DeliveryConfig {
            log_body_limit: 100,
            ..Default::default()
        },
    )
    .await;
    let (id, _) = w.outbound("chatty").await;
    w.server
        .set("chatty", Reply::status(200).body("x".repeat(5000)));
    w.finished_call("+15551234567").await;
    w.engine.run_once(10).await.unwrap();
    let log = w
        .engine
        .delivery_log(&w.account, &id, Some(true), 10)
        .await
        .unwrap();
    assert_eq!(
        log[0].response_body.chars().filter(|c| *c == 'x').count(),
        100
    );
    assert!(log[0].response_body.ends_with('…'));
    assert_eq!(DeliveryConfig::default().log_body_limit, 1024);
}

#[tokio::test]
async fn the_test_button() {
    let w = world().await;
    let (ok_id, secret) = w.outbound("fine").await;
    let report = w.engine.test_endpoint(&w.account, &ok_id).await.unwrap();
    assert!(report.reachable && report.success && report.status == Some(200));
    let hit = &w.server.hits_for("fine")[0];
    let received = Receiver::new(secret)
        .receive(&hit.headers, &hit.body, w.clock.now())
        .unwrap();
    match received.event {
        CallEvent::Completed(e) => {
            assert_eq!(e.webhook.id, ok_id.as_str());
            assert_eq!(e.call.id, "call_test_abc123def456");
            assert_eq!(e.timestamp, w.clock.now(), "the current timestamp");
        }
        other => panic!("{other:?}"),
    }

    let (denied, _) = w.outbound("denied").await;
    w.server.set("denied", Reply::status(401).body("bad key"));
    let report = w.engine.test_endpoint(&w.account, &denied).await.unwrap();
    assert_eq!((report.status, report.success), (Some(401), false));
    assert!(report.hint.as_deref().unwrap().contains("custom headers"));
    assert_eq!(report.body_excerpt, "bad key");

    let (broken, _) = w.outbound("broken").await;
    w.server.set("broken", Reply::status(500));
    let report = w.engine.test_endpoint(&w.account, &broken).await.unwrap();
    assert_eq!(
        (report.class, report.reachable),
        (AttemptClass::ServerError, true)
    );

    // Unsaved configuration pointing at a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let report = w
        .engine
        .test_config(
            &w.account,
            TestConfig {
                url: format!("http://127.0.0.1:{port}/hook"),
                method: HttpMethod::Post,
                headers: vec![],
                signing_secret: None,
            },
        )
        .await
        .unwrap();
    assert!(!report.reachable && !report.success);
    assert_eq!(report.class, AttemptClass::Errored);
    assert!(report.error.is_some());

    // Test deliveries are logged and never retried.
    let log = w
        .engine
        .delivery_log(&w.account, &denied, None, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].test);
    w.advance(chrono::Duration::days(1));
    assert!(w.engine.run_once(10).await.unwrap().is_empty());
    assert_eq!(
        w.store
            .deliveries(&w.account, &DeliveryFilter::default())
            .await
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_does_not_delay_a_healthy_one() {
    let config = DeliveryConfig {
        request_timeout: Duration::from_secs(2),
        lease: Duration::from_secs(10),
        per_endpoint: 2,
        max_in_flight: 16,
        idle_poll: Duration::from_millis(20),
        saturated_backoff: Duration::from_millis(50),
        shutdown_grace: Duration::from_millis(100),
        ..Default::default()
    };
    let w = world_with(false, config).await;
    w.outbound("hang").await;
    w.outbound("healthy").await;
    w.server
        .set("hang", Reply::status(200).delay(Duration::from_secs(30)));
    for i in 0..20 {
        w.finished_call(&format!("+1555123{i:04}")).await;
    }
    let waker = Waker::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(w.engine.clone().run(waker.clone(), async move {
        let _ = stop_rx.await;
    }));
    let started = std::time::Instant::now();
    while w.server.hits_for("healthy").len() < 20 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let healthy_done = started.elapsed();
    assert_eq!(w.server.hits_for("healthy").len(), 20);
    assert!(
        healthy_done < Duration::from_secs(2),
        "healthy deliveries took {healthy_done:?} behind a hanging endpoint"
    );
    assert!(
        w.server.hits_for("hang").len() <= 2,
        "at most per_endpoint attempts at once to the hanging endpoint"
    );
    stop_tx.send(()).unwrap();
    let stats = worker.await.unwrap();
    assert!(stats.delivered >= 20);
    // Nothing was lost: the hanging endpoint's deliveries are still pending (released or
    // retrying).
    let pending = w.deliveries_in(DeliveryState::Pending).await;
    assert_eq!(pending.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_delivers_and_stops_gracefully() {
    let config = DeliveryConfig {
        idle_poll: Duration::from_millis(20),
        ..Default::default()
    };
    let w = world_with(false, config).await;
    for i in 0..4 {
        w.outbound(&format!("ep{i}")).await;
    }
    let waker = Waker::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(w.engine.clone().run(waker.clone(), async move {
        let _ = stop_rx.await;
    }));
    for i in 0..25 {
        w.finished_call(&format!("+1555987{i:04}")).await;
        waker.wake();
    }
    let started = std::time::Instant::now();
    while w.server.hits().len() < 100 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.server.hits().len(), 100);
    stop_tx.send(()).unwrap();
    let stats = worker.await.unwrap();
    assert_eq!((stats.attempts, stats.delivered), (100, 100));
    let delivered = w.deliveries_in(DeliveryState::Succeeded).await;
    assert_eq!(delivered.len(), 100);
}

/// A client that never answers and has no timeout of its own.
struct Silent;

#[async_trait::async_trait]
impl atllas_webhooks::delivery::HttpClient for Silent {
    async fn send(
        &self,
        _: http::Request<bytes::Bytes>,
    ) -> Result<atllas_webhooks::delivery::HttpResponse, atllas_webhooks::delivery::TransportError>
    {
        std::future::pending().await
    }
}

/// Runs a worker with `engine` until one attempt is logged on `endpoint`; returns it and
/// how long it took.
async fn first_attempt(
    w: &World,
    engine: Arc<DeliveryEngine<MemoryStore>>,
    endpoint: &WebhookId,
) -> (atllas_webhooks::store::DeliveryAttempt, Duration) {
    use atllas_webhooks::store::LogStore;
    let waker = Waker::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = std::time::Instant::now();
    let worker = tokio::spawn(engine.run(waker.clone(), async move {
        let _ = stop_rx.await;
    }));
    let mut attempts = Vec::new();
    while attempts.is_empty() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        attempts = w
            .store
            .attempts(&w.account, endpoint, None, 10)
            .await
            .unwrap();
    }
    let took = started.elapsed();
    stop_tx.send(()).unwrap();
    worker.await.unwrap();
    assert_eq!(attempts.len(), 1, "one attempt logged within 20 s");
    (attempts.remove(0), took)
}

fn bounded_config() -> DeliveryConfig {
    DeliveryConfig {
        request_timeout: Duration::from_millis(300),
        lease: Duration::from_secs(10),
        idle_poll: Duration::from_millis(20),
        shutdown_grace: Duration::from_millis(50),
        ..Default::default()
    }
}

/// The worker ends an attempt at its `request_timeout` even when the client never would,
/// so the attempt is over long before its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_bounds_a_client_that_never_answers() {
    let config = bounded_config();
    let w = world_with(false, config.clone()).await;
    let (endpoint, _) = w.outbound("silent").await;
    w.finished_call("+15551230001").await;
    let engine =
        Arc::new(DeliveryEngine::new(w.registry.clone(), Arc::new(Silent), config).unwrap());
    let (attempt, took) = first_attempt(&w, engine, &endpoint).await;
    assert_eq!(
        attempt.error,
        Some(atllas_webhooks::delivery::TransportErrorKind::Timeout)
    );
    assert_eq!(
        attempt.error_message.as_deref(),
        Some("no complete response within 300 ms")
    );
    assert!(attempt.duration_ms >= 300, "{}", attempt.duration_ms);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The delivery is pending again, for its next attempt.
    let pending = w.deliveries_in(DeliveryState::Pending).await;
    let attempts: Vec<u32> = pending.iter().map(|d| d.attempts).collect();
    assert_eq!(attempts, [1]);
}

/// The worker's `request_timeout` applies to `HyperClient` too, whatever its own
/// `total_timeout` (here 30 s, against an endpoint that answers after 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_timeout_applies_to_the_hyper_client() {
    let config = bounded_config();
    let w = world_with(false, config.clone()).await;
    let (endpoint, _) = w.outbound("slow").await;
    w.server
        .set("slow", Reply::status(200).delay(Duration::from_secs(30)));
    w.finished_call("+15551230002").await;
    let engine = Arc::new(
        DeliveryEngine::new(w.registry.clone(), client(Duration::from_secs(30)), config).unwrap(),
    );
    let (attempt, took) = first_attempt(&w, engine, &endpoint).await;
    assert_eq!(
        attempt.error,
        Some(atllas_webhooks::delivery::TransportErrorKind::Timeout)
    );
    assert!(
        (300..10_000).contains(&attempt.duration_ms),
        "{}",
        attempt.duration_ms
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The request reached the server (it may have been recorded just after the attempt
    // ended), once.
    let started = std::time::Instant::now();
    while w.server.hits_for("slow").is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.server.hits_for("slow").len(), 1);
}

/// Under the worker, `HyperClient` leaves its own `total_timeout` out (`send_bounded`): an
/// answer that takes longer than that but less than the worker's `request_timeout` is
/// delivered. `attempt` (no worker) still uses the client's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_worker_the_client_timeout_is_left_out() {
    let config = DeliveryConfig {
        request_timeout: Duration::from_secs(5),
        ..bounded_config()
    };
    let w = world_with(false, config.clone()).await;
    let (endpoint, _) = w.outbound("late").await;
    w.server
        .set("late", Reply::status(200).delay(Duration::from_millis(600)));
    w.finished_call("+15551230003").await;
    let engine = Arc::new(
        DeliveryEngine::new(
            w.registry.clone(),
            client(Duration::from_millis(200)),
            config,
        )
        .unwrap(),
    );
    let (attempt, _) = first_attempt(&w, engine.clone(), &endpoint).await;
    assert_eq!((attempt.status, attempt.success), (Some(200), true));
    assert!(attempt.duration_ms >= 600, "{}", attempt.duration_ms);
    // The same client through `run_once` times out at its own 200 ms.
    w.finished_call("+15551230004").await;
    let reports = engine.run_once(10).await.unwrap();
    assert_eq!(reports.len(), 1);
    let log = {
        use atllas_webhooks::store::LogStore;
        w.store
            .attempts(&w.account, &endpoint, None, 10)
            .await
            .unwrap()
    };
    assert_eq!(
        log[0].error,
        Some(atllas_webhooks::delivery::TransportErrorKind::Timeout)
    );
    assert_eq!(
        log[0].error_message.as_deref(),
        Some("no complete response within 200 ms")
    );
}
