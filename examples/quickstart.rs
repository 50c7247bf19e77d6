//! The whole system in one process, in a few seconds:
//!
//! 1. a local receiver on 127.0.0.1 (what a customer's endpoint looks like),
//! 2. an account with an inbound campaign, an inbound webhook with a response webhook, and
//!    an outbound webhook with a custom header, on the embedded default store (SQLite),
//! 3. a `calls.execute` posted to the inbound URL over real HTTP,
//! 4. the simulated call finishing, and the engine delivering `call.finished` and
//!    `call.completed`, which the receiver verifies,
//! 5. what arrived, and the delivery log.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

#[path = "support/http.rs"]
mod http_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atllas_webhooks::calls::{CallService, MemoryCredits, SimulatedLauncher};
use atllas_webhooks::campaign::{CampaignSettings, CampaignStatus};
use atllas_webhooks::clock::{Clock, SystemClock};
use atllas_webhooks::delivery::{
    ClientConfig, DeliveryConfig, DeliveryEngine, HttpClient, HyperClient, Waker,
};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::AccountId;
use atllas_webhooks::inbound::{InboundConfig, InboundHandler};
use atllas_webhooks::model::CallEvent;
use atllas_webhooks::receiver::Receiver;
use atllas_webhooks::registry::{
    CampaignRegistry, CustomHeader, NewEndpoint, Registry, RegistryConfig, WebhookRegistry,
};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::signing::SigningSecret;
use atllas_webhooks::store::Store;
use bytes::Bytes;
use http::StatusCode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The embedded default store: SQLite in a temporary file (memory without the feature).
fn open_store() -> Result<(Arc<dyn Store>, String), BoxError> {
    #[cfg(feature = "sqlite")]
    {
        let path =
            std::env::temp_dir().join(format!("atllas-quickstart-{}.db", std::process::id()));
        let store = atllas_webhooks::store::sqlite::SqliteStore::open(&path)?;
        Ok((Arc::new(store), format!("sqlite:{}", path.display())))
    }
    #[cfg(not(feature = "sqlite"))]
    {
        Ok((
            Arc::new(atllas_webhooks::store::memory::MemoryStore::new()),
            "memory".into(),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // 1. A receiver: verifies every delivery with the secret of the webhook it is for.
    let (listener, receiver_addr) = http_support::bind("127.0.0.1:0").await?;
    let arrived: Arc<Mutex<Vec<(String, CallEvent)>>> = Arc::default();
    let secrets: Arc<Mutex<Vec<(String, SigningSecret)>>> = Arc::default();
    {
        let arrived = arrived.clone();
        let secrets = secrets.clone();
        tokio::spawn(http_support::serve(
            listener,
            1 << 20,
            move |req| {
                let arrived = arrived.clone();
                let secrets = secrets.clone();
                async move {
                    let path = req.uri().path().trim_start_matches('/').to_owned();
                    let secret = secrets
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, s)| s.clone());
                    let Some(secret) = secret else {
                        return http_support::json(StatusCode::NOT_FOUND, "{}");
                    };
                    match Receiver::new(secret).receive_request(&req, chrono::Utc::now()) {
                        Ok(r) => {
                            println!(
                                "  receiver /{path}: verified {} ({}), signature ok",
                                r.event.event_type(),
                                r.id
                            );
                            arrived
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((path, r.event));
                            http_support::json(StatusCode::OK, r#"{"ok":true}"#)
                        }
                        Err(e) => {
                            println!("  receiver /{path}: refused: {e}");
                            http_support::json(StatusCode::UNAUTHORIZED, "{}")
                        }
                    }
                }
            },
            std::future::pending(),
        ));
    }
    println!("1. receiver listening on http://{receiver_addr}");

    // 2. The webhook layer on the embedded store.
    let (store, store_name) = open_store()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (inbound_listener, inbound_addr) = http_support::bind("127.0.0.1:0").await?;
    let registry = Arc::new(
        Registry::new(
            store.clone(),
            KeyRing::generate()?,
            RegistryConfig {
                base_url: format!("http://{inbound_addr}/"),
                // The receiver is on loopback: allow it (local development only).
                destinations: DestinationPolicy::insecure(),
                ..RegistryConfig::default()
            },
        )
        .with_clock(clock.clone()),
    );
    let launcher = Arc::new(SimulatedLauncher::new());
    let credits = Arc::new(MemoryCredits::new());
    let calls = Arc::new(CallService::new(
        store.clone(),
        launcher.clone(),
        credits.clone(),
    ));
    let handler = Arc::new(InboundHandler::new(
        store.clone(),
        calls.clone(),
        InboundConfig::default(),
    ));
    println!("2. store: {store_name}");

    let account = AccountId::new("acct_quickstart");
    credits.set(&account, 100);
    let inbound = registry.create_inbound(&account, None).await?;
    let settings = CampaignSettings {
        prompt: Some(
            "You are Alex from Atllas. Qualify the lead and offer pricing by email.".into(),
        ),
        voice: Some("alloy".into()),
        language: Some("en-US".into()),
        ..CampaignSettings::default()
    };
    let campaign = registry
        .create_campaign_for(&account, &inbound.id, "Inbound leads", settings)
        .await?;
    registry
        .set_campaign_status(&account, &campaign.id, CampaignStatus::Active)
        .await?;
    let (response, response_secret) = registry
        .set_response_webhook(
            &account,
            &inbound.id,
            NewEndpoint::post(format!("http://{receiver_addr}/response")),
        )
        .await?;
    let outbound = registry
        .create_outbound(
            &account,
            NewEndpoint::post(format!("http://{receiver_addr}/outbound"))
                .header(CustomHeader::new("X-System-Key", "quickstart-key")?),
        )
        .await?;
    {
        let mut s = secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(secret) = response_secret {
            s.push(("response".into(), SigningSecret::parse(secret.expose())?));
        }
        s.push((
            "outbound".into(),
            SigningSecret::parse(outbound.signing_secret.expose())?,
        ));
    }
    println!("   account {account}: campaign {} (active)", campaign.id);
    println!("   inbound webhook {} -> {}", inbound.id, inbound.url);
    println!("   response webhook {} -> {}", response.id, response.url);
    println!(
        "   outbound webhook {} -> {} (header {})",
        outbound.webhook.id, outbound.webhook.url, outbound.webhook.headers[0].name
    );

    // The inbound path, served over real HTTP.
    {
        let handler = handler.clone();
        tokio::spawn(http_support::serve(
            inbound_listener,
            handler.body_limit(),
            move |req| {
                let handler = handler.clone();
                async move { handler.handle(req).await }
            },
            std::future::pending(),
        ));
    }

    // The delivery worker.
    let client = Arc::new(HyperClient::new(ClientConfig {
        destinations: DestinationPolicy::insecure(),
        ..ClientConfig::default()
    })?);
    let engine = Arc::new(DeliveryEngine::new(
        registry.clone(),
        client.clone(),
        DeliveryConfig {
            idle_poll: Duration::from_millis(50),
            ..DeliveryConfig::default()
        },
    )?);
    let waker = Waker::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(engine.clone().run(waker.clone(), async move {
        let _ = stopped.await;
    }));

    // 3. A CRM posts calls.execute to the inbound URL.
    let body = r#"{"type":"calls.execute","data":{"phoneNumber":"+1 (555) 123-4567","firstName":"Jane","lastName":"Smith","email":"jane@example.com","companyName":"Acme Corp","note":"Asked about the enterprise plan","first_name":"ignored"}}"#;
    let request = http::Request::post(inbound.url.as_str())
        .header("content-type", "application/json")
        .body(Bytes::from_static(body.as_bytes()))?;
    let answer = client.send(request).await?;
    println!(
        "3. POST {} -> {} {}",
        inbound.url,
        answer.status.as_u16(),
        String::from_utf8_lossy(&answer.body)
    );
    for entry in handler.request_log(Some(&account), 10).await? {
        println!(
            "   request log: {} {:?}: {}",
            entry.status, entry.outcome, entry.message
        );
    }

    // 4. The simulated call finishes; its events are delivered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (acct, call_id, _) in launcher.take_pending() {
        let record = store.call(&acct, &call_id).await?;
        let result = SimulatedLauncher::outcome(&record, clock.now());
        let done = calls.complete(&acct, &call_id, result).await?;
        println!(
            "4. call {call_id} finished ({}), {} deliveries enqueued",
            done.call.status,
            done.deliveries.len()
        );
    }
    waker.wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while arrived
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len()
        < 2
    {
        if tokio::time::Instant::now() > deadline {
            return Err("the events did not arrive within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    let stats = worker.await?;

    // 5. What arrived, and the delivery log.
    println!("5. arrived at the receiver:");
    let events = arrived
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for (path, event) in &events {
        let call = event.call();
        let warmth = call
            .analysis
            .as_ref()
            .map_or("-".to_owned(), |a| a.lead_warmth.to_string());
        println!(
            "   /{path}: {} webhook={} ({}) call={} status={} warmth={} duration={}s summary={:?}",
            event.event_type(),
            event.webhook().id,
            event.webhook().kind,
            call.id,
            call.status,
            warmth,
            call.duration.unwrap_or(0),
            call.summary.as_deref().unwrap_or(""),
        );
    }
    for id in [&outbound.webhook.id, &response.id] {
        for a in engine.delivery_log(&account, id, None, 10).await? {
            println!(
                "   delivery log {id}: attempt {} {} {} -> {} in {} ms ({})",
                a.attempt,
                a.message_id,
                a.event_type,
                a.status.map_or("errored".to_owned(), |s| s.to_string()),
                a.duration_ms,
                if a.success { "success" } else { "failed" },
            );
        }
    }
    println!(
        "done: {} attempts, {} delivered",
        stats.attempts, stats.delivered
    );
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.event_type()).collect();
    if !(kinds.contains(&"call.finished") && kinds.contains(&"call.completed")) {
        return Err(format!("expected call.finished and call.completed, got {kinds:?}").into());
    }
    #[cfg(feature = "sqlite")]
    if let Some(path) = store_name.strip_prefix("sqlite:") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    Ok(())
}
