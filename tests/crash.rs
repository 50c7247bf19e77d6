//! Crash safety with real processes: a worker killed with SIGKILL in the middle of
//! delivering thousands of events, then restarted on the same database, delivers every one;
//! the receiver sees every message id at least once, and twice only for attempts that were
//! in flight at the kill. With PostgreSQL, two workers drain one backlog together without
//! delivering anything twice.
#![cfg(all(feature = "client", feature = "worker", feature = "sqlite"))]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atllas_webhooks::destination::DestinationPolicy;
use atllas_webhooks::ids::{AccountId, DeliveryId, MessageId};
use atllas_webhooks::registry::{NewEndpoint, Registry, RegistryConfig, WebhookRegistry};
use atllas_webhooks::secrets::{EncryptionKey, KeyId, KeyRing};
use atllas_webhooks::store::{Delivery, DeliveryFilter, DeliveryState, QueueStore, Store};
use bytes::Bytes;
use chrono::Utc;
use support::TestServer;

const MAX_IN_FLIGHT: usize = 16;

fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join("worker");
    assert!(
        p.exists(),
        "{} is not built (cargo test builds examples)",
        p.display()
    );
    p
}

fn spawn_worker(store: &str, keys: &str) -> Child {
    spawn_worker_with(store, keys, &[])
}

fn spawn_worker_with(store: &str, keys: &str, extra: &[&str]) -> Child {
    Command::new(worker_binary())
        .args(extra)
        .args([
            "--store",
            store,
            "--allow-insecure",
            "--exit-when-idle",
            "--max-in-flight",
            &MAX_IN_FLIGHT.to_string(),
            "--lease-ms",
            "3000",
            "--timeout-ms",
            "1000",
        ])
        .env("ATLLAS_WEBHOOKS_KEYS", keys)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker")
}

fn wait(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "worker did not finish in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates one outbound webhook to the receiver and enqueues `n` deliveries for it.
async fn seed(store: Arc<dyn Store>, keys: KeyRing, url: String, n: usize) -> Vec<MessageId> {
    let registry = Registry::new(
        store.clone(),
        keys,
        RegistryConfig {
            destinations: DestinationPolicy::insecure(),
            ..Default::default()
        },
    );
    let account = AccountId::generate().unwrap();
    let endpoint = registry
        .create_outbound(&account, NewEndpoint::post(url))
        .await
        .unwrap();
    let now = Utc::now();
    let payload =
        Bytes::from(serde_json::to_vec(&atllas_webhooks::fixtures::call_finished()).unwrap());
    let mut ids = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(500) {
        let batch: Vec<Delivery> = (chunk * 500..((chunk + 1) * 500).min(n))
            .map(|_| {
                let message_id = MessageId::generate().unwrap();
                ids.push(message_id.clone());
                Delivery {
                    id: DeliveryId::generate().unwrap(),
                    account: account.clone(),
                    endpoint_id: endpoint.webhook.id.clone(),
                    message_id,
                    event_type: "call.finished".into(),
                    payload: payload.clone(),
                    call_id: None,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    created_at: now,
                    updated_at: now,
                }
            })
            .collect();
        store.enqueue(&batch).await.unwrap();
    }
    let pending = store
        .deliveries(
            &account,
            &DeliveryFilter {
                state: Some(DeliveryState::Pending),
                limit: n + 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), n);
    ids
}

fn seen_counts(server: &TestServer) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for h in server.hits() {
        if let Some(id) = h.headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

fn key_spec() -> (String, KeyRing) {
    let key = EncryptionKey::generate().unwrap();
    let spec = format!("1:{}", key.to_base64().expose());
    (spec, KeyRing::new(KeyId::new(1), key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_then_restart_delivers_everything_sqlite() {
    const N: usize = 3000;
    let dir = std::env::temp_dir().join(format!("atllas-crash-{}", MessageId::generate().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crash.db");
    let server = TestServer::start().await;
    let (spec, keys) = key_spec();
    let store: Arc<dyn Store> =
        Arc::new(atllas_webhooks::store::sqlite::SqliteStore::open(&db).unwrap());
    let ids = seed(store.clone(), keys, server.url("hook"), N).await;
    drop(store);
    let store_arg = format!("sqlite:{}", db.display());

    let mut first = spawn_worker(&store_arg, &spec);
    let started = Instant::now();
    while server.hits().len() < N / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first worker delivered too little"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first worker exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = server.hits().len();
    assert!(at_kill < N, "killed in the middle (saw {at_kill} of {N})");

    let mut second = spawn_worker(&store_arg, &spec);
    let status = wait(&mut second, Duration::from_secs(120));
    assert!(status.success(), "{status:?}");

    let counts = seen_counts(&server);
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {N} message ids never arrived",
        missing.len()
    );
    let duplicates: usize = counts.values().filter(|c| **c > 1).count();
    assert!(
        duplicates <= MAX_IN_FLIGHT,
        "{duplicates} message ids arrived twice; at most the {MAX_IN_FLIGHT} in flight at the kill may"
    );
    assert!(counts.values().all(|c| *c <= 2));
    eprintln!(
        "sqlite crash: {N} deliveries, killed after {at_kill} arrived, {duplicates} delivered twice, all {} ids arrived",
        counts.len()
    );
    let store = atllas_webhooks::store::sqlite::SqliteStore::open(&db).unwrap();
    assert_eq!(
        store.next_due().await.unwrap(),
        None,
        "nothing left in the queue"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `DATABASE_URL`, or a failure that says what to set: the PostgreSQL tests never pass
/// silently.
#[cfg(feature = "postgres")]
fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run the PostgreSQL crash tests")
    })
}

#[cfg(feature = "postgres")]
async fn pg_world(n: usize, server: &TestServer) -> (String, String, String, Vec<MessageId>) {
    let url = database_url();
    let schema = format!(
        "crash_{}",
        MessageId::generate()
            .unwrap()
            .as_str()
            .to_lowercase()
            .replace("msg_", "")
    );
    let store: Arc<dyn Store> = Arc::new(
        atllas_webhooks::store::postgres::PostgresStore::connect_with_schema(&url, &schema)
            .await
            .unwrap(),
    );
    let (spec, keys) = key_spec();
    let ids = seed(store, keys, server.url("hook"), n).await;
    (url, schema, spec, ids)
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_drain_one_postgres_backlog_without_duplicates() {
    const N: usize = 2000;
    let server = TestServer::start().await;
    let (url, schema, spec, ids) = pg_world(N, &server).await;
    let store_arg = format!("postgres:{url}");
    let mut a = spawn_worker_with(&store_arg, &spec, &["--pg-schema", &schema]);
    let mut b = spawn_worker_with(&store_arg, &spec, &["--pg-schema", &schema]);
    assert!(wait(&mut a, Duration::from_secs(120)).success());
    assert!(wait(&mut b, Duration::from_secs(120)).success());
    let counts = seen_counts(&server);
    assert_eq!(counts.len(), N, "every message id arrived");
    assert!(ids.iter().all(|id| counts.contains_key(id.as_str())));
    let twice = counts.values().filter(|c| **c > 1).count();
    assert_eq!(
        twice, 0,
        "no message was delivered twice (no lease expired)"
    );
    eprintln!("postgres: two workers drained {N} deliveries, none twice");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_then_restart_delivers_everything_postgres() {
    const N: usize = 3000;
    let server = TestServer::start().await;
    let (url, schema, spec, ids) = pg_world(N, &server).await;
    let store_arg = format!("postgres:{url}");
    let mut first = spawn_worker_with(&store_arg, &spec, &["--pg-schema", &schema]);
    let started = Instant::now();
    while server.hits().len() < N / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first worker delivered too little"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first worker exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = server.hits().len();
    assert!(at_kill < N);
    let mut second = spawn_worker_with(&store_arg, &spec, &["--pg-schema", &schema]);
    assert!(wait(&mut second, Duration::from_secs(120)).success());
    let counts = seen_counts(&server);
    let missing = ids
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .count();
    assert_eq!(missing, 0, "{missing} of {N} message ids never arrived");
    let twice = counts.values().filter(|c| **c > 1).count();
    assert!(
        twice <= MAX_IN_FLIGHT,
        "{twice} arrived twice; at most the {MAX_IN_FLIGHT} in flight at the kill may"
    );
    eprintln!(
        "postgres crash: {N} deliveries, killed after {at_kill} arrived, {twice} delivered twice, all arrived"
    );
}
