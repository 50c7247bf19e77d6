//! A delivery worker process on a shared database: run one per machine (or several) against
//! the same PostgreSQL database and they drain the queue together; on SQLite, restart it
//! after a crash and it delivers what was left.
//!
//! ```sh
//! ATLLAS_WEBHOOKS_KEYS=1:<base64 key> cargo run --features postgres --example worker -- \
//!     --store postgres:postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Options: `--store sqlite:PATH|postgres:URL` · `--allow-insecure` (deliver to loopback and
//! private addresses, for local development) · `--max-in-flight N` (256) · `--lease-ms N`
//! (60000) · `--timeout-ms N` (15000) · `--pg-schema NAME` (use a PostgreSQL schema) ·
//! `--exit-when-idle` (stop once nothing is due or in
//! flight for a second). `ATLLAS_WEBHOOKS_KEYS` holds the sealing keys
//! (`1:<base64 32 bytes>,…`), the same as the processes that created the webhooks.

use std::sync::Arc;
use std::time::Duration;

use atllas_webhooks::delivery::{ClientConfig, DeliveryConfig, DeliveryEngine, HyperClient, Waker};
use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::registry::{Registry, RegistryConfig};
use atllas_webhooks::secrets::KeyRing;
use atllas_webhooks::store::Store;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("worker: {e}");
        std::process::exit(2);
    }
}

async fn open(spec: &str, schema: Option<&str>) -> Result<Arc<dyn Store>, BoxError> {
    #[cfg(not(feature = "postgres"))]
    let _ = schema;
    if let Some(path) = spec.strip_prefix("sqlite:") {
        #[cfg(feature = "sqlite")]
        return Ok(Arc::new(atllas_webhooks::store::sqlite::SqliteStore::open(
            path,
        )?));
        #[cfg(not(feature = "sqlite"))]
        return Err(format!("sqlite:{path} needs the sqlite feature").into());
    }
    if let Some(url) = spec.strip_prefix("postgres:") {
        #[cfg(feature = "postgres")]
        {
            use atllas_webhooks::store::postgres::PostgresStore;
            let store = match schema {
                Some(schema) => PostgresStore::connect_with_schema(url, schema).await?,
                None => PostgresStore::connect(url).await?,
            };
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(format!("postgres:{url} needs the postgres feature").into());
    }
    Err(format!("--store {spec}: expected sqlite:PATH or postgres:URL").into())
}

async fn run() -> Result<(), BoxError> {
    let mut store = None;
    let mut schema = None;
    let mut insecure = false;
    let mut exit_when_idle = false;
    let mut config = DeliveryConfig {
        idle_poll: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        ..DeliveryConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |n: &str| args.next().ok_or_else(|| format!("{n} needs a value"));
        match arg.as_str() {
            "--store" => store = Some(value("--store")?),
            "--pg-schema" => schema = Some(value("--pg-schema")?),
            "--allow-insecure" => insecure = true,
            "--exit-when-idle" => exit_when_idle = true,
            "--max-in-flight" => config.max_in_flight = value("--max-in-flight")?.parse()?,
            "--lease-ms" => config.lease = Duration::from_millis(value("--lease-ms")?.parse()?),
            "--timeout-ms" => {
                config.request_timeout = Duration::from_millis(value("--timeout-ms")?.parse()?)
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let store = open(&store.ok_or("--store is required")?, schema.as_deref()).await?;
    let keys = KeyRing::from_env_string(
        &std::env::var("ATLLAS_WEBHOOKS_KEYS").map_err(|_| "set ATLLAS_WEBHOOKS_KEYS")?,
    )?;
    let destinations = if insecure {
        DestinationPolicy::insecure()
    } else {
        DestinationPolicy::strict()
    };
    let registry = Arc::new(Registry::new(
        store.clone(),
        keys,
        RegistryConfig {
            destinations,
            ..RegistryConfig::default()
        },
    ));
    let client = Arc::new(HyperClient::new(ClientConfig {
        destinations,
        total_timeout: config.request_timeout,
        ..ClientConfig::default()
    })?);
    let engine = Arc::new(DeliveryEngine::new(registry, client, config)?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(engine.clone().run(Waker::new(), async move {
        let _ = stop_rx.await;
    }));
    println!("worker: running");
    if exit_when_idle {
        let mut idle_since = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let due = store.next_due().await?;
            let idle = due.is_none_or(|at| at > chrono::Utc::now() + chrono::Duration::seconds(60));
            match (idle, idle_since) {
                (true, None) => idle_since = Some(tokio::time::Instant::now()),
                (true, Some(t)) if t.elapsed() > Duration::from_secs(1) => break,
                (false, _) => idle_since = None,
                _ => {}
            }
        }
    } else {
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(());
    let stats = worker.await?;
    println!(
        "worker: stopped after {} attempts, {} delivered",
        stats.attempts, stats.delivered
    );
    Ok(())
}
