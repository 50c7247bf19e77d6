//! The persistent backends' queue figures. They are reported as skipped: the issue asks for
//! the backends against bare rusqlite / bare tokio-postgres running the same SQL, which is
//! not written yet. [`queue_ratio`] (the backend against the memory store) is the scaffold:
//!
//! ```ignore
//! pub fn sqlite_queue(cfg: &Config) -> Outcome {
//!     queue_ratio("sqlite_queue", cfg, || Arc::new(SqliteStore::open_in_memory().unwrap()))
//! }
//! ```
//!
//! plus a target in `figures()` (`main.rs`). [`queue_ratio`] measures the queue cycle
//! (enqueue a batch, lease it, finish every lease) on the backend against the same cycle on
//! the [`MemoryStore`], in alternating slices: backend cycles/s over memory cycles/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atllas_webhooks::ids::{AccountId, DeliveryId, MessageId, WebhookId};
use atllas_webhooks::model::CallFinished;
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{Delivery, DeliveryState, LeaseOutcome, Store};
use bytes::Bytes;
use chrono::Utc;

use crate::{Config, Outcome, note};

/// Deliveries per cycle.
const BATCH: usize = 64;

pub fn postgres_queue(_cfg: &Config) -> Outcome {
    Outcome::Skipped("the bare-tokio-postgres baseline is not written yet".into())
}

/// Enqueue `BATCH` deliveries, lease them, finish each as delivered.
async fn cycle(store: &dyn Store, payload: &Bytes, endpoint: &WebhookId) {
    let account = AccountId::new("acct_bench");
    let now = Utc::now() - chrono::Duration::seconds(1);
    let batch: Vec<Delivery> = (0..BATCH)
        .map(|_| Delivery {
            id: DeliveryId::generate().expect("id"),
            account: account.clone(),
            endpoint_id: endpoint.clone(),
            message_id: MessageId::generate().expect("id"),
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
    store.enqueue(&batch).await.expect("enqueue");
    let leases = store
        .lease(Utc::now(), BATCH, Duration::from_secs(60))
        .await
        .expect("lease");
    for lease in &leases {
        store
            .finish(lease, LeaseOutcome::Succeeded, Utc::now())
            .await
            .expect("finish");
    }
}

/// Cycles per second of `store` over a slice of `length`.
async fn rate(store: &dyn Store, length: Duration, payload: &Bytes) -> f64 {
    let endpoint = WebhookId::new("webhook_bench");
    let start = Instant::now();
    let mut cycles = 0u64;
    while start.elapsed() < length {
        cycle(store, payload, &endpoint).await;
        cycles += 1;
    }
    cycles as f64 / start.elapsed().as_secs_f64()
}

/// Backend queue cycles/s over memory-store queue cycles/s, in alternating slices, each
/// on a fresh store.
#[allow(dead_code)] // Called by the backends' figures once they are in the tree.
pub fn queue_ratio(name: &str, cfg: &Config, make: impl Fn() -> Arc<dyn Store>) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payload = Bytes::from(
        serde_json::to_vec(&atllas_webhooks::fixtures::call_finished()).expect("serialisable"),
    );
    let length = cfg.slice * 2;
    let mut ratios = Vec::new();
    rt.block_on(async {
        for pair in 0..=cfg.pairs {
            let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let b = rate(&*memory, length, &payload).await;
            drop(memory);
            let backend = make();
            let s = rate(&*backend, length, &payload).await;
            drop(backend);
            if pair > 0 {
                ratios.push(s / b);
            } else {
                note!("{name}: first slice memory {b:.0} cycles/s, backend {s:.0} cycles/s");
            }
        }
    });
    Outcome::Ratios(ratios)
}
