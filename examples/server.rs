//! A long-running reference server: serves the inbound path and runs the delivery engine,
//! with simulated calls. An integrator's starting point.
//!
//! ```sh
//! cargo run --example server -- --allow-insecure --outbound http://127.0.0.1:9000/hook
//! ```
//!
//! Options:
//! `--listen ADDR` (127.0.0.1:8080) · `--store memory|sqlite:PATH` (sqlite:atllas-webhooks.db)
//! · `--outbound URL` (repeatable, POST) · `--outbound-get URL` (repeatable, GET) ·
//! `--header 'Name: value'` (repeatable, added to every webhook this run creates) ·
//! `--response URL` · `--signing-secret whsec_…` (generated when absent) · `--allow-insecure`
//! · `--credits N` (100) · `--campaign-status active|paused` (active) · `--default-country
//! CODE` · `--call-duration-ms N` (200) · `--retry-schedule LIST` (e.g. `0,1s,1s`).
//!
//! Routes: `POST /{slug}` (the inbound handler), `GET /_logs/requests`, `GET
//! /_logs/deliveries`, `GET /_webhooks`, `POST /_webhooks/{id}/test`, `POST
//! /_deliveries/{id}/redeliver`. SIGINT or SIGTERM stop it cleanly: attempts in flight finish
//! or go back to the queue, and with SQLite queued deliveries go out after a restart.
//!
//! Sealing keys come from `ATLLAS_WEBHOOKS_KEYS` (`1:<base64 32 bytes>,…`, the last is
//! primary); without it, with SQLite, a key file `PATH.keys` is created beside the database
//! on first start and reused, so a restart can unseal what an earlier run stored.

#[path = "support/http.rs"]
mod http_support;

use std::sync::Arc;
use std::time::Duration;

use atllas_webhooks::calls::{CallService, MemoryCredits, SimulatedLauncher};
use atllas_webhooks::campaign::{CampaignSettings, CampaignStatus};
use atllas_webhooks::clock::{Clock, SystemClock};
use atllas_webhooks::delivery::{
    ClientConfig, DeliveryConfig, DeliveryEngine, HyperClient, RetrySchedule, Waker,
};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::{AccountId, DeliveryId, WebhookId};
use atllas_webhooks::inbound::{InboundConfig, InboundHandler};
use atllas_webhooks::registry::{
    CampaignRegistry, CustomHeader, NewEndpoint, Registry, RegistryConfig, WebhookRegistry,
};
use atllas_webhooks::secrets::{EncryptionKey, KeyId, KeyRing};
use atllas_webhooks::signing::SigningSecret;
use atllas_webhooks::store::{DeliveryAttempt, Store};
use atllas_webhooks::validate::CountryCode;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ACCOUNT: &str = "acct_local";

#[derive(Debug)]
struct Options {
    listen: String,
    store: String,
    outbound: Vec<String>,
    outbound_get: Vec<String>,
    headers: Vec<String>,
    response: Option<String>,
    signing_secret: Option<String>,
    allow_insecure: bool,
    credits: i64,
    campaign_status: CampaignStatus,
    default_country: Option<CountryCode>,
    call_duration: Duration,
    retry_schedule: Option<RetrySchedule>,
}

fn parse_options() -> Result<Options, BoxError> {
    let mut o = Options {
        listen: "127.0.0.1:8080".into(),
        store: "sqlite:atllas-webhooks.db".into(),
        outbound: Vec::new(),
        outbound_get: Vec::new(),
        headers: Vec::new(),
        response: None,
        signing_secret: None,
        allow_insecure: false,
        credits: 100,
        campaign_status: CampaignStatus::Active,
        default_country: None,
        call_duration: Duration::from_millis(200),
        retry_schedule: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => o.listen = value("--listen")?,
            "--store" => o.store = value("--store")?,
            "--outbound" => o.outbound.push(value("--outbound")?),
            "--outbound-get" => o.outbound_get.push(value("--outbound-get")?),
            "--header" => o.headers.push(value("--header")?),
            "--response" => o.response = Some(value("--response")?),
            "--signing-secret" => o.signing_secret = Some(value("--signing-secret")?),
            "--allow-insecure" => o.allow_insecure = true,
            "--credits" => o.credits = value("--credits")?.parse()?,
            "--campaign-status" => {
                o.campaign_status = match value("--campaign-status")?.as_str() {
                    "active" => CampaignStatus::Active,
                    "paused" => CampaignStatus::Paused,
                    other => {
                        return Err(format!(
                            "--campaign-status {other}: expected active or paused"
                        )
                        .into());
                    }
                }
            }
            "--default-country" => {
                o.default_country = Some(CountryCode::parse(&value("--default-country")?)?)
            }
            "--call-duration-ms" => {
                o.call_duration = Duration::from_millis(value("--call-duration-ms")?.parse()?)
            }
            "--retry-schedule" => {
                o.retry_schedule = Some(RetrySchedule::parse(&value("--retry-schedule")?)?)
            }
            "-h" | "--help" => {
                println!("see the top of examples/server.rs for the options");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

fn open_store(spec: &str) -> Result<(Arc<dyn Store>, Option<String>), BoxError> {
    if spec == "memory" {
        return Ok((
            Arc::new(atllas_webhooks::store::memory::MemoryStore::new()),
            None,
        ));
    }
    if let Some(path) = spec.strip_prefix("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            let store = atllas_webhooks::store::sqlite::SqliteStore::open(path)?;
            return Ok((Arc::new(store), Some(path.to_owned())));
        }
        #[cfg(not(feature = "sqlite"))]
        return Err(format!("--store sqlite:{path} needs the sqlite feature").into());
    }
    Err(format!("--store {spec}: expected memory or sqlite:PATH").into())
}

/// The sealing keys: from the environment, a key file beside the database, or fresh.
fn key_ring(db: Option<&str>) -> Result<KeyRing, BoxError> {
    if let Ok(spec) = std::env::var("ATLLAS_WEBHOOKS_KEYS") {
        return Ok(KeyRing::from_env_string(&spec)?);
    }
    let Some(db) = db else {
        return Ok(KeyRing::generate()?);
    };
    let path = format!("{db}.keys");
    match std::fs::read_to_string(&path) {
        Ok(spec) => Ok(KeyRing::from_env_string(spec.trim())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = EncryptionKey::generate()?;
            let spec = format!("1:{}", key.to_base64().expose());
            std::fs::write(&path, &spec)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(KeyRing::new(KeyId::new(1), key))
        }
        Err(e) => Err(e.into()),
    }
}

struct App {
    account: AccountId,
    registry: Arc<Registry<dyn Store>>,
    handler: InboundHandler<dyn Store>,
    engine: Arc<DeliveryEngine<dyn Store>>,
    waker: Waker,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("server: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), BoxError> {
    let o = parse_options()?;
    let (store, db) = open_store(&o.store)?;
    let keys = key_ring(db.as_deref())?;
    let (listener, addr) = http_support::bind(&o.listen).await?;
    let destinations = if o.allow_insecure {
        DestinationPolicy::insecure()
    } else {
        DestinationPolicy::strict()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let registry: Arc<Registry<dyn Store>> = Arc::new(Registry::new(
        store.clone(),
        keys,
        RegistryConfig {
            base_url: format!("http://{addr}/"),
            destinations,
            ..RegistryConfig::default()
        },
    ));
    let account = AccountId::new(ACCOUNT);
    let launcher = Arc::new(SimulatedLauncher::new());
    let credits = Arc::new(MemoryCredits::new());
    credits.set(&account, o.credits);
    let calls = Arc::new(CallService::new(
        store.clone(),
        launcher.clone(),
        credits.clone(),
    ));
    let handler = InboundHandler::new(
        store.clone(),
        calls.clone(),
        InboundConfig {
            default_country: o.default_country,
            ..InboundConfig::default()
        },
    );
    let client = Arc::new(HyperClient::new(ClientConfig {
        destinations,
        ..ClientConfig::default()
    })?);
    let engine = Arc::new(DeliveryEngine::new(
        registry.clone(),
        client,
        DeliveryConfig {
            retry: o.retry_schedule.clone().unwrap_or_default(),
            idle_poll: Duration::from_millis(200),
            ..DeliveryConfig::default()
        },
    )?);

    // What this run creates.
    let headers = o
        .headers
        .iter()
        .map(|h| CustomHeader::parse_line(h))
        .collect::<Result<Vec<_>, _>>()?;
    let secret = match &o.signing_secret {
        Some(s) => SigningSecret::parse(s)?,
        None => SigningSecret::generate()?,
    };
    let inbound = registry.create_inbound(&account, None).await?;
    let campaign = registry
        .create_campaign_for(
            &account,
            &inbound.id,
            "Reference server campaign",
            CampaignSettings {
                prompt: Some("Qualify the lead and offer pricing by email.".into()),
                ..CampaignSettings::default()
            },
        )
        .await?;
    registry
        .set_campaign_status(&account, &campaign.id, CampaignStatus::Active)
        .await?;
    if o.campaign_status != CampaignStatus::Active {
        registry
            .set_campaign_status(&account, &campaign.id, o.campaign_status)
            .await?;
    }
    println!("inbound: {}", inbound.url);
    println!("signing-secret: {}", secret.to_whsec().as_str());
    if let Some(url) = &o.response {
        let (view, _) = registry
            .set_response_webhook(
                &account,
                &inbound.id,
                NewEndpoint::post(url.as_str())
                    .headers(headers.clone())
                    .signing_secret(secret.clone()),
            )
            .await?;
        println!("response: {} {}", view.id, view.url);
    }
    for (url, get) in o
        .outbound
        .iter()
        .map(|u| (u, false))
        .chain(o.outbound_get.iter().map(|u| (u, true)))
    {
        let config = if get {
            NewEndpoint::get(url.as_str())
        } else {
            NewEndpoint::post(url.as_str())
        };
        let created = registry
            .create_outbound(
                &account,
                config
                    .headers(headers.clone())
                    .signing_secret(secret.clone()),
            )
            .await?;
        println!("outbound: {} {}", created.webhook.id, created.webhook.url);
    }

    let waker = Waker::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // The delivery worker.
    let worker = tokio::spawn(engine.clone().run(waker.clone(), stopped(stop_rx.clone())));

    // Simulated calls finish after --call-duration-ms.
    let completer = {
        let (calls, launcher, store, waker, clock) = (
            calls.clone(),
            launcher.clone(),
            store.clone(),
            waker.clone(),
            clock.clone(),
        );
        let duration = chrono::Duration::from_std(o.call_duration).unwrap_or_default();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                for (acct, id) in launcher.take_launched_before(clock.now() - duration) {
                    let Ok(record) = store.call(&acct, &id).await else {
                        continue;
                    };
                    let result = SimulatedLauncher::outcome(&record, clock.now());
                    if calls.complete(&acct, &id, result).await.is_ok() {
                        waker.wake();
                    }
                }
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(Duration::from_millis(25)) => {}
                }
            }
        })
    };

    let app = Arc::new(App {
        account,
        registry,
        handler,
        engine,
        waker,
    });
    println!("listening: http://{addr}");
    let limit = app.handler.body_limit();
    http_support::serve(
        listener,
        limit,
        move |req| {
            let app = app.clone();
            async move { route(&app, req).await }
        },
        signal(),
    )
    .await;

    println!("shutting down");
    let _ = stop_tx.send(true);
    let _ = completer.await;
    let stats = worker.await?;
    println!(
        "stopped: {} attempts, {} delivered, {} returned to the queue",
        stats.attempts, stats.delivered, stats.released_at_shutdown
    );
    Ok(())
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn to_json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Bytes> {
    match serde_json::to_vec(value) {
        Ok(body) => http_support::json(status, body),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> Response<Bytes> {
    to_json_plain(
        status,
        &serde_json::json!({"success": false, "error": {"message": message}}),
    )
}

fn to_json_plain(status: StatusCode, v: &serde_json::Value) -> Response<Bytes> {
    http_support::json(status, v.to_string())
}

async fn route(app: &App, req: Request<Bytes>) -> Response<Bytes> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result: Result<Response<Bytes>, BoxError> =
        match (req.method().clone(), segments.as_slice()) {
            (Method::GET, ["_logs", "requests"]) => app
                .handler
                .request_log(Some(&app.account), 1000)
                .await
                .map(|log| to_json(StatusCode::OK, &log))
                .map_err(Into::into),
            (Method::GET, ["_logs", "deliveries"]) => deliveries(app).await,
            (Method::GET, ["_webhooks"]) => webhooks(app).await,
            (Method::POST, ["_webhooks", id, "test"]) => app
                .engine
                .test_endpoint(&app.account, &WebhookId::new(*id))
                .await
                .map(|r| to_json(StatusCode::OK, &r))
                .map_err(Into::into),
            (Method::POST, ["_deliveries", id, "redeliver"]) => {
                let r = app
                    .engine
                    .redeliver(&app.account, &DeliveryId::new(*id))
                    .await;
                app.waker.wake();
                r.map(|d| to_json(StatusCode::OK, &d)).map_err(Into::into)
            }
            (_, [first, ..]) if first.starts_with('_') => {
                Ok(error(StatusCode::NOT_FOUND, "no such route"))
            }
            _ => Ok(app.handler.handle(req).await),
        };
    result.unwrap_or_else(|e| {
        let status = if e.to_string().contains("not found") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        error(status, &e.to_string())
    })
}

async fn deliveries(app: &App) -> Result<Response<Bytes>, BoxError> {
    let mut all: Vec<DeliveryAttempt> = Vec::new();
    for e in app.registry.endpoints(&app.account).await? {
        all.extend(
            app.engine
                .delivery_log(&app.account, &e.id, None, 1000)
                .await?,
        );
    }
    all.sort_by_key(|a| std::cmp::Reverse(a.at));
    Ok(to_json(StatusCode::OK, &all))
}

async fn webhooks(app: &App) -> Result<Response<Bytes>, BoxError> {
    let mut out = Vec::new();
    for w in app.registry.inbound_webhooks(&app.account).await? {
        let mut v = serde_json::to_value(&w)?;
        v["webhookType"] = "inbound".into();
        out.push(v);
    }
    for e in app.registry.endpoints(&app.account).await? {
        let mut v = serde_json::to_value(&e)?;
        v["webhookType"] = match e.kind {
            atllas_webhooks::store::EndpointKind::Outbound => "outbound".into(),
            _ => "response".into(),
        };
        out.push(v);
    }
    Ok(to_json(StatusCode::OK, &out))
}
