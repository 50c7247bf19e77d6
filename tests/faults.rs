//! Fault injection: endpoints that misbehave in every way we know, each with its documented
//! outcome, against real sockets on 127.0.0.1.
#![cfg(all(feature = "client", feature = "worker"))]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atllas_webhooks::clock::{Clock, ManualClock};
use atllas_webhooks::delivery::{
    ClientConfig, DeliveryConfig, DeliveryEngine, HyperClient, RetrySchedule, TransportErrorKind,
};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::{AccountId, DeliveryId, MessageId};
use atllas_webhooks::model::HttpMethod;
use atllas_webhooks::registry::{NewEndpoint, Registry, RegistryConfig, WebhookRegistry};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{Delivery, DeliveryState, QueueStore, WebhookStore};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use support::{Reply, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct World {
    store: Arc<MemoryStore>,
    registry: Arc<Registry<MemoryStore>>,
    engine: Arc<DeliveryEngine<MemoryStore>>,
    clock: Arc<ManualClock>,
    account: AccountId,
}

fn world_with(policy: DestinationPolicy, timeout: Duration) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
    ));
    let registry = Arc::new(
        Registry::new(
            store.clone(),
            KeyRing::generate().unwrap(),
            RegistryConfig {
                destinations: policy,
                ..Default::default()
            },
        )
        .with_clock(clock.clone()),
    );
    let client = Arc::new(
        HyperClient::new(ClientConfig {
            destinations: policy,
            total_timeout: timeout,
            connect_timeout: timeout,
            ..Default::default()
        })
        .unwrap(),
    );
    let engine = Arc::new(
        DeliveryEngine::new(
            registry.clone(),
            client,
            DeliveryConfig {
                retry: RetrySchedule::default().without_jitter(),
                request_timeout: timeout,
                per_endpoint: 2,
                idle_poll: Duration::from_millis(20),
                shutdown_grace: Duration::from_millis(50),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    World {
        store,
        registry,
        engine,
        clock,
        account: AccountId::new("acct_f"),
    }
}

fn world() -> World {
    world_with(DestinationPolicy::insecure(), Duration::from_millis(500))
}

impl World {
    /// One pending delivery to `url`, due now.
    async fn delivery_to(&self, url: &str) -> (atllas_webhooks::ids::WebhookId, DeliveryId) {
        let created = self
            .registry
            .create_outbound(&self.account, NewEndpoint::post(url))
            .await
            .unwrap();
        self.enqueue(&created.webhook.id).await
    }

    async fn enqueue(
        &self,
        endpoint: &atllas_webhooks::ids::WebhookId,
    ) -> (atllas_webhooks::ids::WebhookId, DeliveryId) {
        let now = self.clock.now();
        let d = Delivery {
            id: DeliveryId::generate().unwrap(),
            account: self.account.clone(),
            endpoint_id: endpoint.clone(),
            message_id: MessageId::generate().unwrap(),
            event_type: "call.finished".into(),
            payload: Bytes::from(
                serde_json::to_vec(&atllas_webhooks::fixtures::call_finished()).unwrap(),
            ),
            call_id: None,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        self.store.enqueue(std::slice::from_ref(&d)).await.unwrap();
        (endpoint.clone(), d.id)
    }

    async fn last_attempt(
        &self,
        endpoint: &atllas_webhooks::ids::WebhookId,
    ) -> atllas_webhooks::store::DeliveryAttempt {
        self.engine
            .delivery_log(&self.account, endpoint, None, 1)
            .await
            .unwrap()
            .remove(0)
    }
}

/// A raw TCP server: `behave` gets each accepted connection.
async fn raw_server<F, Fut>(behave: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let behave = Arc::new(behave);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let b = behave.clone();
            tokio::spawn(async move { b(s).await });
        }
    });
    (format!("http://{addr}/hook"), count)
}

async fn read_request(s: &mut tokio::net::TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(pos) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..pos]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if seen.len() >= pos + 4 + len {
                break;
            }
        }
    }
}

#[tokio::test]
async fn server_errors_retry_on_schedule() {
    let w = world();
    let server = TestServer::start().await;
    server.set("e500", Reply::status(500).body("internal"));
    let (ep, id) = w.delivery_to(&server.url("e500")).await;
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert_eq!((r.status, r.success, r.dead), (Some(500), false, false));
    assert_eq!(
        r.next_attempt_at.unwrap() - w.clock.now(),
        chrono::Duration::seconds(5)
    );
    assert_eq!(w.last_attempt(&ep).await.response_body, "internal");
    assert_eq!(
        w.store.delivery(&w.account, &id).await.unwrap().state,
        DeliveryState::Pending
    );
}

#[tokio::test]
async fn rate_limited_endpoints_are_retried_after_their_retry_after() {
    let w = world();
    let server = TestServer::start().await;
    server.set("slow-down", Reply::status(429).header("retry-after", "30"));
    w.delivery_to(&server.url("slow-down")).await;
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert_eq!(
        r.next_attempt_at.unwrap() - w.clock.now(),
        chrono::Duration::seconds(30)
    );
}

#[tokio::test]
async fn gone_endpoints_are_disabled() {
    let w = world();
    let server = TestServer::start().await;
    server.set("gone", Reply::status(410));
    let (ep, _) = w.delivery_to(&server.url("gone")).await;
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert!(r.dead);
    assert!(!w.registry.endpoint(&w.account, &ep).await.unwrap().enabled);
}

#[tokio::test]
async fn slow_endpoints_time_out_and_are_retried() {
    let w = world_with(DestinationPolicy::insecure(), Duration::from_millis(300));
    let server = TestServer::start().await;
    server.set("slow", Reply::status(200).delay(Duration::from_secs(5)));
    let (ep, _) = w.delivery_to(&server.url("slow")).await;
    let started = Instant::now();
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
    assert!(!r.success && r.next_attempt_at.is_some());
    let a = w.last_attempt(&ep).await;
    assert_eq!(
        (a.status, a.error),
        (None, Some(TransportErrorKind::Timeout))
    );
}

#[tokio::test]
async fn connection_resets_are_errored_and_retried() {
    let w = world();
    let (url, _) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        // SO_LINGER 0: closing sends a reset instead of a FIN (what the test wants).
        #[allow(deprecated)]
        let _ = s.set_linger(Some(Duration::ZERO));
        drop(s);
    })
    .await;
    let (ep, _) = w.delivery_to(&url).await;
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert!(!r.success && r.next_attempt_at.is_some());
    let a = w.last_attempt(&ep).await;
    assert!(a.status.is_none());
    assert!(
        matches!(
            a.error,
            Some(TransportErrorKind::Connect | TransportErrorKind::Other)
        ),
        "{a:?}"
    );
}

#[tokio::test]
async fn an_endless_body_is_cut_and_does_not_stall_the_worker() {
    let w = world_with(DestinationPolicy::insecure(), Duration::from_secs(5));
    let (url, _) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            .await;
        let chunk = vec![b'z'; 16 * 1024];
        while s.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let (ep, _) = w.delivery_to(&url).await;
    let started = Instant::now();
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        r.success,
        "a 200 whose body is cut still counts as delivered"
    );
    let a = w.last_attempt(&ep).await;
    assert!(
        a.response_body.len() <= 1024 + '…'.len_utf8(),
        "the logged body is bounded"
    );
}

#[tokio::test]
async fn redirects_to_private_addresses_are_not_followed() {
    let w = world();
    let server = TestServer::start().await;
    server.set(
        "redirect",
        Reply::status(302).header("location", "http://169.254.169.254/latest/meta-data"),
    );
    let (ep, _) = w.delivery_to(&server.url("redirect")).await;
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert_eq!((r.status, r.success), (Some(302), false));
    assert!(
        r.next_attempt_at.is_some(),
        "a 3xx is a failed attempt, retried"
    );
    assert_eq!(server.hits().len(), 1, "the Location was never fetched");
    assert_eq!(
        w.last_attempt(&ep).await.class(),
        atllas_webhooks::delivery::AttemptClass::Other
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_blocked_at_connect_time() {
    // http allowed, private destinations not: registration would refuse `localhost`, so
    // the endpoint is stored directly, as if the name had resolved publicly when it was
    // registered and to 127.0.0.1 now (DNS rebinding).
    let policy = DestinationPolicy {
        allow_http: true,
        allow_private: false,
    };
    let w = world_with(policy, Duration::from_millis(500));
    let (url, hits) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let created = w
        .registry
        .create_outbound(&w.account, NewEndpoint::post("http://93.184.216.34/hook"))
        .await
        .unwrap();
    let mut e = w
        .store
        .endpoint(&w.account, &created.webhook.id)
        .await
        .unwrap();
    e.url = url.replace("127.0.0.1", "localhost");
    w.store.update_endpoint(&e).await.unwrap();
    let (ep, _) = w.enqueue(&e.id).await;
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert!(!r.success && r.next_attempt_at.is_some());
    let a = w.last_attempt(&ep).await;
    assert_eq!(a.error, Some(TransportErrorKind::Blocked), "{a:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing connected to 127.0.0.1"
    );
}

#[tokio::test]
async fn get_urls_over_the_limit_become_dead_letters_that_say_to_use_post() {
    let w = world();
    let server = TestServer::start().await;
    let created = w
        .registry
        .create_outbound(&w.account, NewEndpoint::get(server.url("get")))
        .await
        .unwrap();
    assert_eq!(created.webhook.method, HttpMethod::Get);
    let now = w.clock.now();
    let big = serde_json::json!({"type":"call.finished","pad":"x".repeat(10_000)});
    let d = Delivery {
        id: DeliveryId::generate().unwrap(),
        account: w.account.clone(),
        endpoint_id: created.webhook.id.clone(),
        message_id: MessageId::generate().unwrap(),
        event_type: "call.finished".into(),
        payload: Bytes::from(big.to_string()),
        call_id: None,
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    w.store.enqueue(std::slice::from_ref(&d)).await.unwrap();
    let r = w.engine.run_once(10).await.unwrap().remove(0);
    assert!(r.dead);
    let stored = w.store.delivery(&w.account, &d.id).await.unwrap();
    assert!(stored.last_error.unwrap().contains("use POST"));
    assert!(server.hits().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_endpoints_do_not_grow_memory_or_stall_others() {
    // Many endless-body and hanging endpoints at once, plus one healthy: the healthy one is
    // served promptly and every response read stays bounded.
    let w = world_with(DestinationPolicy::insecure(), Duration::from_millis(800));
    let (endless, _) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 500 Oops\r\n\r\n").await;
        let chunk = vec![b'q'; 64 * 1024];
        while s.write_all(&chunk).await.is_ok() {}
    })
    .await;
    let (hang, _) = raw_server(|mut s| async move {
        read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let server = TestServer::start().await;
    for _ in 0..10 {
        w.delivery_to(&endless).await;
        w.delivery_to(&hang).await;
    }
    let (healthy, _) = w.delivery_to(&server.url("ok")).await;
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(w.engine.clone().run(
        atllas_webhooks::delivery::Waker::new(),
        async move {
            let _ = stopped.await;
        },
    ));
    while server.hits().is_empty() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the healthy endpoint waited {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(()).unwrap();
    let stats = worker.await.unwrap();
    assert!(stats.attempts >= 1);
    assert!(w.last_attempt(&healthy).await.success);
    // Every misbehaving attempt ended with a bounded read and is scheduled again.
    let pending = w
        .store
        .deliveries(
            &w.account,
            &atllas_webhooks::store::DeliveryFilter {
                state: Some(DeliveryState::Pending),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 20, "nothing lost");
}
