//! A load test, run by hand: 100 000 completed calls against 50 endpoints (one per account)
//! on one local server, 10 of which fail (500) or hang. Checks that every delivery to the 40
//! healthy endpoints succeeds, that the failing ones' retries follow the schedule, and
//! prints the process's resident memory as it goes.
//!
//! ```sh
//! cargo run --release --example loadtest -- [--calls 100000] [--store memory|sqlite:PATH]
//! ```

#[path = "support/http.rs"]
mod http_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use atllas_webhooks::calls::{
    CallLauncher, CallResult, CallService, LaunchError, UnlimitedCredits,
};
use atllas_webhooks::campaign::{CampaignKind, CampaignSettings, CampaignStatus};
use atllas_webhooks::delivery::{
    ClientConfig, DeliveryConfig, DeliveryEngine, HyperClient, RetrySchedule, Waker,
};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::{AccountId, WebhookId};
use atllas_webhooks::model::{CallStatus, Contact};
use atllas_webhooks::registry::{
    CampaignRegistry, NewEndpoint, Registry, RegistryConfig, WebhookRegistry,
};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::store::{CallOrigin, DeliveryFilter, DeliveryState, Store};
use http::StatusCode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ENDPOINTS: usize = 50;
const FAILING: usize = 5;
const HANGING: usize = 5;

/// Dials nobody and remembers nothing (the simulated launcher keeps a queue of launched
/// calls, which would show up as memory growth here).
struct NoDialer;

#[async_trait::async_trait]
impl CallLauncher for NoDialer {
    async fn launch(
        &self,
        _: &atllas_webhooks::store::CallRecord,
        _: &atllas_webhooks::campaign::SettingsVersion,
    ) -> Result<(), LaunchError> {
        Ok(())
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut calls_n = 100_000usize;
    let mut store_spec = "memory".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls_n = args.next().ok_or("--calls N")?.parse()?,
            "--store" => store_spec = args.next().ok_or("--store SPEC")?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let store: Arc<dyn Store> = if store_spec == "memory" {
        Arc::new(atllas_webhooks::store::memory::MemoryStore::new())
    } else if let Some(path) = store_spec.strip_prefix("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            Arc::new(atllas_webhooks::store::sqlite::SqliteStore::open(path)?)
        }
        #[cfg(not(feature = "sqlite"))]
        return Err(format!("sqlite:{path} needs the sqlite feature").into());
    } else {
        return Err("--store memory|sqlite:PATH".into());
    };

    // One server: /ok/N answers 200, /fail/N 500, /hang/N never in time.
    let hits = Arc::new(AtomicU64::new(0));
    let (listener, addr) = http_support::bind("127.0.0.1:0").await?;
    {
        let hits = hits.clone();
        tokio::spawn(http_support::serve(
            listener,
            1 << 20,
            move |req| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::Relaxed);
                    let path = req.uri().path();
                    if path.starts_with("/fail") {
                        http_support::json(StatusCode::INTERNAL_SERVER_ERROR, "{}")
                    } else if path.starts_with("/hang") {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        http_support::json(StatusCode::OK, "{}")
                    } else {
                        http_support::json(StatusCode::OK, "{}")
                    }
                }
            },
            std::future::pending(),
        ));
    }

    let schedule = RetrySchedule::parse("0,1s,2s,4s")?;
    let registry = Arc::new(Registry::new(
        store.clone(),
        KeyRing::generate()?,
        RegistryConfig {
            destinations: DestinationPolicy::insecure(),
            ..Default::default()
        },
    ));
    let calls = Arc::new(CallService::new(
        store.clone(),
        Arc::new(NoDialer),
        Arc::new(UnlimitedCredits),
    ));
    let mut accounts = Vec::new();
    for i in 0..ENDPOINTS {
        let account = AccountId::new(format!("acct_load_{i:02}"));
        let path = if i < FAILING {
            format!("fail/{i}")
        } else if i < FAILING + HANGING {
            format!("hang/{i}")
        } else {
            format!("ok/{i}")
        };
        let e = registry
            .create_outbound(&account, NewEndpoint::post(format!("http://{addr}/{path}")))
            .await?;
        let c = registry
            .create_campaign(
                &account,
                "load",
                CampaignKind::Outbound,
                CampaignSettings {
                    prompt: Some("p".into()),
                    ..Default::default()
                },
            )
            .await?;
        registry
            .set_campaign_status(&account, &c.id, CampaignStatus::Active)
            .await?;
        accounts.push((account, c.id, e.webhook.id, i >= FAILING + HANGING));
    }

    let engine = Arc::new(DeliveryEngine::new(
        registry.clone(),
        Arc::new(HyperClient::new(ClientConfig {
            destinations: DestinationPolicy::insecure(),
            total_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        })?),
        DeliveryConfig {
            retry: schedule.clone(),
            request_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(10),
            max_in_flight: 128,
            per_endpoint: 8,
            idle_poll: Duration::from_millis(50),
            ..Default::default()
        },
    )?);
    let waker = Waker::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(engine.clone().run(waker.clone(), async move {
        let _ = stopped.await;
    }));

    println!("rss at start: {} MiB", rss_kib() / 1024);
    let started = Instant::now();
    let mut rss_samples = Vec::new();
    for n in 0..calls_n {
        let (account, campaign, _, _) = &accounts[n % ENDPOINTS];
        let placed = calls
            .place(
                account,
                Some(campaign),
                CallOrigin::OutboundCampaign,
                Contact::new(format!("+1555{:07}", n % 10_000_000)),
            )
            .await?;
        let result = CallResult {
            duration: Some(30),
            tokens_consumed: Some(1),
            ..CallResult::new(CallStatus::Finished)
        };
        calls.complete(account, &placed.call.id, result).await?;
        if n % 1000 == 999 {
            waker.wake();
            tokio::task::yield_now().await;
        }
        if n % 10_000 == 9_999 {
            let rss = rss_kib();
            rss_samples.push(rss);
            println!(
                "{:>7} calls completed, {:>7} requests served, rss {} MiB, {:.1} s",
                n + 1,
                hits.load(Ordering::Relaxed),
                rss / 1024,
                started.elapsed().as_secs_f64()
            );
        }
    }
    waker.wake();

    // Wait until every healthy delivery has succeeded.
    let healthy: Vec<&(AccountId, _, WebhookId, bool)> = accounts.iter().filter(|a| a.3).collect();
    let per_account = calls_n / ENDPOINTS;
    loop {
        let mut done = 0;
        for (account, _, _, _) in &healthy {
            done += store
                .deliveries(
                    account,
                    &DeliveryFilter {
                        state: Some(DeliveryState::Succeeded),
                        limit: per_account + 10,
                        ..Default::default()
                    },
                )
                .await?
                .len();
        }
        if done >= healthy.len() * per_account {
            println!(
                "all {done} healthy deliveries succeeded after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("only {done} healthy deliveries succeeded").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "  {done} healthy deliveries succeeded, rss {} MiB",
            rss_kib() / 1024
        );
    }
    // Let the failing ones run through their (short) schedule.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let _ = stop.send(());
    let stats = worker.await?;
    println!(
        "worker: {} attempts, {} delivered, {} deferred",
        stats.attempts, stats.delivered, stats.deferred
    );

    // The failing endpoints' retries follow the schedule: look at one delivery's attempts.
    for (account, _, endpoint, _) in accounts.iter().take(FAILING + HANGING).step_by(FAILING) {
        let log = store.attempts(account, endpoint, None, 1000).await?;
        let mut by_msg: std::collections::HashMap<String, Vec<chrono::DateTime<chrono::Utc>>> =
            Default::default();
        for a in &log {
            by_msg
                .entry(a.message_id.to_string())
                .or_default()
                .push(a.at);
        }
        if let Some((msg, mut times)) = by_msg.into_iter().max_by_key(|(_, t)| t.len()) {
            times.sort();
            let gaps: Vec<String> = times
                .windows(2)
                .map(|w| format!("{:.1}s", (w[1] - w[0]).num_milliseconds() as f64 / 1000.0))
                .collect();
            println!(
                "{endpoint}: {msg} attempted {} times, gaps {gaps:?} (schedule 1s, 2s, 4s ±20% after each attempt ends)",
                times.len()
            );
        }
        let dead = store
            .deliveries(
                account,
                &DeliveryFilter {
                    state: Some(DeliveryState::Dead),
                    limit: per_account + 10,
                    ..Default::default()
                },
            )
            .await?
            .len();
        println!("{endpoint}: {dead} dead letters");
    }
    if let (Some(first), Some(last)) = (rss_samples.get(1), rss_samples.last()) {
        println!(
            "rss after 20k calls: {} MiB, at the end: {} MiB",
            first / 1024,
            last / 1024
        );
    }
    Ok(())
}
