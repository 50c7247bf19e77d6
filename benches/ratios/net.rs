//! The HTTP figures, on 127.0.0.1 only, on one multi-thread Tokio runtime (as many workers
//! as cores) shared by the server, the load and the engine, the same for both sides.
//!
//! - `inbound_http`: 32 keep-alive connections post the seed's `calls.execute` for a fixed
//!   time to the [`InboundHandler`] behind the examples' hyper glue, on a fresh memory store
//!   each slice, vs the same glue answering 201 `{"success":true}` with no work.
//! - `delivery_loopback`: the worker ([`DeliveryEngine::run`]) drains N pre-enqueued
//!   deliveries to 64 endpoints on one local hyper server answering 200, vs a raw
//!   hyper-util client sending the same signed requests (built beforehand) at the same
//!   concurrency to the same server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use atllas_webhooks::calls::{CallService, MemoryCredits, SimulatedLauncher};
use atllas_webhooks::campaign::{CampaignSettings, CampaignStatus};
use atllas_webhooks::delivery::{
    ClientConfig, DeliveryConfig, DeliveryEngine, HyperClient, Outgoing, Waker, build_request,
};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::fixtures;
use atllas_webhooks::ids::{AccountId, DeliveryId, MessageId};
use atllas_webhooks::inbound::{InboundConfig, InboundHandler, SUCCESS_BODY};
use atllas_webhooks::model::{CallFinished, HttpMethod};
use atllas_webhooks::registry::{
    CampaignRegistry, CustomHeader, NewEndpoint, Registry, RegistryConfig, WebhookRegistry,
};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::signing::SigningSecret;
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{Delivery, DeliveryState, QueueStore};
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Barrier, Notify, oneshot};

use crate::{Config, Outcome, Side, note, server};

/// Concurrent connections of the `inbound_http` load.
const INBOUND_CLIENTS: usize = 32;
/// Outbound endpoints of `delivery_loopback`, all on one server.
const ENDPOINTS: usize = 64;
/// Attempts in flight, for the engine (`max_in_flight`) and the raw client alike; the
/// client's idle pool per host is as large, so neither side churns connections.
const IN_FLIGHT: usize = 64;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A server running `serve` from the examples' glue until dropped.
struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve<F, Fut>(handler: F) -> Served
where
    F: Fn(Request<Bytes>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Bytes>> + Send + 'static,
{
    let (listener, addr) = server::bind("127.0.0.1:0").await.expect("bind");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, 64 * 1024, handler, async move {
        let _ = stopped.await;
    }));
    Served {
        addr,
        stop: Some(stop),
    }
}

/// One load slice: `INBOUND_CLIENTS` keep-alive connections post `body` to `path` for
/// `length`. Returns (requests answered 201 per second, other answers).
async fn load(addr: SocketAddr, path: &str, body: Bytes, length: Duration) -> (f64, u64) {
    let barrier = Arc::new(Barrier::new(INBOUND_CLIENTS + 1));
    let deadline = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::new();
    for _ in 0..INBOUND_CLIENTS {
        let barrier = barrier.clone();
        let deadline = deadline.clone();
        let body = body.clone();
        let uri = format!("http://{addr}{path}");
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            barrier.wait().await;
            let deadline = *deadline.get().expect("set before the barrier opens");
            let (mut ok, mut other) = (0u64, 0u64);
            while Instant::now() < deadline {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(uri.as_str())
                    .header(header::HOST, addr.to_string())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body.clone()))
                    .expect("request");
                if sender.ready().await.is_err() {
                    break;
                }
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        if status == StatusCode::CREATED {
                            ok += 1;
                        } else {
                            other += 1;
                        }
                    }
                    Err(_) => {
                        other += 1;
                        break;
                    }
                }
            }
            (ok, other)
        }));
    }
    let start = Instant::now();
    let _ = deadline.set(start + length);
    barrier.wait().await;
    let (mut ok, mut other) = (0, 0);
    for t in tasks {
        let (o, e) = t.await.expect("load task");
        ok += o;
        other += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    (ok as f64 / elapsed, other)
}

/// What the subject side of `inbound_http` serves: a fresh world.
struct InboundWorld {
    handler: Arc<InboundHandler<MemoryStore>>,
    slug: String,
}

async fn inbound_world() -> InboundWorld {
    let store = Arc::new(MemoryStore::new());
    let registry = Registry::new(
        store.clone(),
        KeyRing::generate().expect("key ring"),
        RegistryConfig::default(),
    );
    let credits = Arc::new(MemoryCredits::new());
    let account = AccountId::new("acct_bench");
    credits.set(&account, i64::MAX / 2);
    let calls = Arc::new(CallService::new(
        store.clone(),
        Arc::new(SimulatedLauncher::new()),
        credits,
    ));
    let handler = InboundHandler::new(
        store,
        calls,
        InboundConfig {
            rate_limit: None,
            ..InboundConfig::default()
        },
    );
    let webhook = registry
        .create_inbound(&account, None)
        .await
        .expect("inbound webhook");
    let campaign = registry
        .create_campaign_for(
            &account,
            &webhook.id,
            "Bench",
            CampaignSettings {
                prompt: Some("Qualify the lead".into()),
                ..Default::default()
            },
        )
        .await
        .expect("campaign");
    registry
        .set_campaign_status(&account, &campaign.id, CampaignStatus::Active)
        .await
        .expect("activate");
    InboundWorld {
        handler: Arc::new(handler),
        slug: webhook.slug,
    }
}

/// `inbound_http`: subject req/s / baseline req/s.
pub fn inbound_http(cfg: &Config) -> Outcome {
    let rt = runtime();
    let body = Bytes::from_static(fixtures::CALLS_EXECUTE_JSON.as_bytes());
    let length = cfg.http_slice;
    let mut ratios = Vec::new();
    let (mut base_rates, mut subj_rates) = (Vec::new(), Vec::new());
    let mut errors = 0;
    rt.block_on(async {
        // One unmeasured pair to warm up (page faults, allocator, connection setup).
        for pair in 0..=cfg.http_pairs {
            let (b, e1) = if cfg.runs(Side::Baseline) {
                let baseline = serve(|_req: Request<Bytes>| async {
                    server::json(StatusCode::CREATED, Bytes::from_static(SUCCESS_BODY))
                })
                .await;
                load(baseline.addr, "/bench", body.clone(), length).await
            } else {
                (1.0, 0)
            };
            let (s, e2) = if cfg.runs(Side::Subject) {
                let world = inbound_world().await;
                let handler = world.handler.clone();
                let subject = serve(move |req: Request<Bytes>| {
                    let handler = handler.clone();
                    async move { handler.handle(req).await }
                })
                .await;
                let path = format!("/{}", world.slug);
                let rate = load(subject.addr, &path, body.clone(), length).await;
                // Tear the world down before the next slice: the connections close and
                // the last one drops the handler and its store, which must not happen while
                // the baseline is being measured.
                drop(subject);
                let give_up = Instant::now() + Duration::from_secs(10);
                while Arc::strong_count(&world.handler) > 1 && Instant::now() < give_up {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                drop(world);
                rate
            } else {
                (1.0, 0)
            };
            if pair == 0 {
                continue;
            }
            errors += e1 + e2;
            base_rates.push(b);
            subj_rates.push(s);
            ratios.push(s / b);
        }
    });
    if errors > 0 {
        note!("inbound_http: {errors} answers were not 201");
    }
    note!(
        "inbound_http: {INBOUND_CLIENTS} connections, {} ms slices; median baseline {:.0} req/s, subject {:.0} req/s",
        length.as_millis(),
        median(&mut base_rates),
        median(&mut subj_rates)
    );
    Outcome::Ratios(ratios)
}

/// Requests the `delivery_loopback` receiver has answered, and a signal when their number
/// reaches `target`.
#[derive(Default)]
struct Hits {
    /// Connections open on the receiver.
    open: AtomicU64,
    count: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Hits {
    fn load(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits (at most a second) until no connection is open on the receiver.
    async fn quiet(&self) {
        let give_up = Instant::now() + Duration::from_secs(1);
        while self.open.load(Ordering::Acquire) > 0 && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn hit(&self) {
        let n = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }
}

/// The `delivery_loopback` receiver: 200 and a tiny body for every path; counts hits.
async fn receiver(hits: Arc<Hits>) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
            };
            let _ = stream.set_nodelay(true);
            hits.open.fetch_add(1, Ordering::AcqRel);
            let hits = hits.clone();
            tokio::spawn(async move {
                let svc_hits = hits.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let hits = svc_hits.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        hits.hit();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                hits.open.fetch_sub(1, Ordering::AcqRel);
            });
        }
    });
    (addr, stop)
}

/// The endpoints and deliveries of one `delivery_loopback` slice, the same for both sides.
struct Plan {
    urls: Vec<String>,
    secrets: Vec<SigningSecret>,
    headers: Vec<CustomHeader>,
    /// (endpoint index, message id, payload).
    deliveries: Vec<(usize, MessageId, Bytes)>,
}

fn plan(addr: SocketAddr, n: usize) -> Plan {
    let urls = (0..ENDPOINTS)
        .map(|i| format!("http://{addr}/hooks/{i}"))
        .collect();
    let secrets = (0..ENDPOINTS)
        .map(|_| SigningSecret::generate().expect("secret"))
        .collect();
    let headers = (0..ENDPOINTS)
        .map(|i| {
            CustomHeader::new(
                "authorization",
                format!("Bearer sk_live_{i:04}_4eC39HqLyjWDarjtT1zdp7dc"),
            )
            .expect("header")
        })
        .collect();
    let seed = fixtures::call_finished();
    let deliveries = (0..n)
        .map(|k| {
            let ep = k % ENDPOINTS;
            let event = CallFinished::new(
                format!("webhook_bench{ep:02}"),
                Utc::now(),
                seed.call().clone(),
                seed.campaign().clone(),
            );
            let payload = Bytes::from(serde_json::to_vec(&event).expect("serialisable"));
            (ep, MessageId::generate().expect("message id"), payload)
        })
        .collect();
    Plan {
        urls,
        secrets,
        headers,
        deliveries,
    }
}

/// Subject: registers the plan's endpoints on a fresh memory store, enqueues its
/// deliveries, runs the worker until the queue is empty. Returns deliveries per second.
async fn drain_with_engine(plan: &Plan, hits: &Hits) -> f64 {
    let store = Arc::new(MemoryStore::new());
    let registry = Arc::new(Registry::new(
        store.clone(),
        KeyRing::generate().expect("key ring"),
        RegistryConfig {
            destinations: DestinationPolicy::insecure(),
            ..RegistryConfig::default()
        },
    ));
    let account = AccountId::new("acct_bench");
    let mut ids = Vec::with_capacity(ENDPOINTS);
    for i in 0..ENDPOINTS {
        let created = registry
            .create_outbound(
                &account,
                NewEndpoint::post(plan.urls[i].clone())
                    .header(plan.headers[i].clone())
                    .signing_secret(plan.secrets[i].clone()),
            )
            .await
            .expect("endpoint");
        ids.push(created.webhook.id);
    }
    let now = Utc::now() - chrono::Duration::seconds(1);
    let deliveries: Vec<Delivery> = plan
        .deliveries
        .iter()
        .map(|(ep, msg, payload)| Delivery {
            id: DeliveryId::generate().expect("delivery id"),
            account: account.clone(),
            endpoint_id: ids[*ep].clone(),
            message_id: msg.clone(),
            event_type: CallFinished::TYPE.into(),
            payload: payload.clone(),
            call_id: None,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    store.enqueue(&deliveries).await.expect("enqueue");
    drop(deliveries);

    let client = HyperClient::new(ClientConfig {
        destinations: DestinationPolicy::insecure(),
        pool_idle_per_host: IN_FLIGHT,
        ..ClientConfig::default()
    })
    .expect("client");
    let engine = Arc::new(
        DeliveryEngine::new(
            registry,
            Arc::new(client),
            DeliveryConfig {
                max_in_flight: IN_FLIGHT,
                batch_size: IN_FLIGHT,
                ..DeliveryConfig::default()
            },
        )
        .expect("engine"),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    // Wait for the receiver to have seen every delivery (without polling the store, which
    // would take CPU and the store's lock from the engine while it runs), then for the
    // store to say nothing is pending or leased any more.
    hits.target.store(
        hits.load() + plan.deliveries.len() as u64,
        Ordering::Release,
    );
    let reached = hits.reached.notified();
    let start = Instant::now();
    let worker = tokio::spawn(engine.run(Waker::new(), async move {
        let _ = stopped.await;
    }));
    let give_up = start + Duration::from_secs(120);
    let _ = tokio::time::timeout(Duration::from_secs(120), reached).await;
    // The last responses have arrived; their outcomes are being written.
    while store.next_due().await.expect("next due").is_some() && Instant::now() < give_up {
        tokio::task::yield_now().await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = stop.send(());
    let stats = worker.await.expect("worker");
    if stats.delivered != plan.deliveries.len() as u64 {
        note!(
            "delivery_loopback: the worker delivered {} of {} ({stats:?})",
            stats.delivered,
            plan.deliveries.len()
        );
    }
    stats.delivered as f64 / elapsed
}

/// Baseline: a raw hyper-util client sends the same signed requests, built beforehand,
/// from `IN_FLIGHT` tasks. Returns requests answered 200 per second.
async fn drain_raw(plan: &Plan) -> f64 {
    let user_agent =
        HeaderValue::from_static(concat!("atllas-webhooks/", env!("CARGO_PKG_VERSION")));
    let headers: Vec<[(HeaderName, HeaderValue); 1]> = plan
        .headers
        .iter()
        .map(|h| {
            [(
                h.name().clone(),
                HeaderValue::from_str(h.value().expose()).expect("value"),
            )]
        })
        .collect();
    let ts = Utc::now().timestamp();
    let mut chunks: Vec<Vec<Request<Full<Bytes>>>> = (0..IN_FLIGHT).map(|_| Vec::new()).collect();
    for (k, (ep, msg, payload)) in plan.deliveries.iter().enumerate() {
        let req = build_request(&Outgoing {
            url: &plan.urls[*ep],
            method: HttpMethod::Post,
            headers: &headers[*ep],
            secrets: std::slice::from_ref(&plan.secrets[*ep]),
            message_id: msg.as_str(),
            timestamp: ts,
            payload,
            user_agent: &user_agent,
            max_get_url: 8 * 1024,
        })
        .expect("request");
        chunks[k % IN_FLIGHT].push(req.map(Full::new));
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IN_FLIGHT)
        .build_http();
    let start = Instant::now();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut ok = 0u64;
                for req in chunk {
                    if let Ok(resp) = client.request(req).await {
                        let status = resp.status();
                        if resp.into_body().collect().await.is_ok() && status == StatusCode::OK {
                            ok += 1;
                        }
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.expect("sender");
    }
    ok as f64 / start.elapsed().as_secs_f64()
}

/// `delivery_loopback`: subject deliveries/s / baseline deliveries/s.
pub fn delivery_loopback(cfg: &Config) -> Outcome {
    let rt = runtime();
    let mut ratios = Vec::new();
    let (mut base_rates, mut subj_rates) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let hits = Arc::new(Hits::default());
        let (addr, stop) = receiver(hits.clone()).await;
        // One unmeasured pair first, to warm up.
        for pair in 0..=cfg.http_pairs {
            let plan = plan(addr, cfg.deliveries);
            // Each side starts once the other side's connections are closed: a client that
            // was just dropped leaves the receiver closing its connections for a while.
            hits.quiet().await;
            let b = if cfg.runs(Side::Baseline) {
                drain_raw(&plan).await
            } else {
                1.0
            };
            hits.quiet().await;
            let s = if cfg.runs(Side::Subject) {
                drain_with_engine(&plan, &hits).await
            } else {
                1.0
            };
            if pair == 0 {
                continue;
            }
            base_rates.push(b);
            subj_rates.push(s);
            ratios.push(s / b);
        }
        let _ = stop.send(());
        note!(
            "delivery_loopback: {} deliveries per slice to {ENDPOINTS} endpoints, {IN_FLIGHT} in flight; median baseline {:.0}/s, subject {:.0}/s; {} requests received",
            cfg.deliveries,
            median(&mut base_rates),
            median(&mut subj_rates),
            hits.load()
        );
    });
    Outcome::Ratios(ratios)
}
