//! What the persistent backends' queue figures (`sqlite_*`, `postgres_*`) share: a batch of
//! deliveries, the store's queue cycle (enqueue a batch, lease it, finish every lease as
//! delivered) and the batched-vs-single-row claim.

use std::time::{Duration, Instant};

use atllas_webhooks::ids::{AccountId, DeliveryId, MessageId, WebhookId};
use atllas_webhooks::store::{Delivery, DeliveryState, Lease, LeaseOutcome, QueueStore};
use bytes::Bytes;
use chrono::Utc;

use crate::{Config, Side, note};

/// Deliveries per batch: enqueued at once, leased at once.
pub const BATCH: usize = 64;

/// How long a lease lasts (never reached: every lease is finished at once).
pub const LEASE_FOR: Duration = Duration::from_secs(60);

/// The seed's `call.finished` event as JSON: the payload of every delivery.
pub fn payload() -> Bytes {
    Bytes::from(
        serde_json::to_vec(&atllas_webhooks::fixtures::call_finished())
            .expect("the seed event serialises"),
    )
}

/// `BATCH` new pending deliveries, due a second ago, with fresh random ids.
pub fn batch(payload: &Bytes) -> Vec<Delivery> {
    let account = AccountId::new("acct_bench");
    let endpoint = WebhookId::new("webhook_bench");
    let now = Utc::now() - chrono::Duration::seconds(1);
    (0..BATCH)
        .map(|_| Delivery {
            id: DeliveryId::generate().expect("the OS random generator (delivery id)"),
            account: account.clone(),
            endpoint_id: endpoint.clone(),
            message_id: MessageId::generate().expect("the OS random generator (message id)"),
            event_type: "call.finished".into(),
            payload: payload.clone(),
            call_id: None,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            updated_at: now,
        })
        .collect()
}

/// Leases up to `limit` due deliveries and finishes each as delivered; how many it leased.
pub async fn lease_and_finish(store: &dyn QueueStore, limit: usize) -> usize {
    let leases = store
        .lease(Utc::now(), limit, LEASE_FOR)
        .await
        .expect("the store leases due deliveries");
    finish_all(store, &leases).await;
    leases.len()
}

/// The queue cycle on a store: enqueue `batch`, lease it, finish every lease. Rows leased.
pub async fn store_cycle(store: &dyn QueueStore, batch: &[Delivery]) -> usize {
    store
        .enqueue(batch)
        .await
        .expect("the store enqueues a batch");
    lease_and_finish(store, BATCH).await
}

/// Times `work`: what it returns and how long it took.
pub async fn timed(work: impl Future<Output = usize>) -> (usize, Duration) {
    let start = Instant::now();
    let rows = work.await;
    (rows, start.elapsed())
}

/// Runs `cycle` until `length` has passed (at least once). Each cycle returns the rows it
/// handled and the time they count for (the cycle times what it measures, so that setting
/// up a batch stays out); rows per second of that time.
pub async fn rows_per_sec(
    length: Duration,
    mut cycle: impl AsyncFnMut() -> (usize, Duration),
) -> f64 {
    let start = Instant::now();
    let (mut rows, mut busy) = (0usize, Duration::ZERO);
    loop {
        let (r, t) = cycle().await;
        rows += r;
        busy += t;
        if start.elapsed() >= length {
            break;
        }
    }
    rows as f64 / busy.as_secs_f64().max(1e-9)
}

/// One warm-up pair, then `cfg.pairs` pairs of a `baseline` slice and a `subject` slice of
/// `length` each ([`rows_per_sec`]) (a side that `RATIOS_PROFILE` leaves out does not run): subject rows/s
/// over baseline rows/s, one ratio per pair. Notes the median rows/s of each side.
pub async fn paired_rates(
    name: &str,
    cfg: &Config,
    length: Duration,
    mut baseline: impl AsyncFnMut() -> (usize, Duration),
    mut subject: impl AsyncFnMut() -> (usize, Duration),
) -> Vec<f64> {
    let (run_b, run_s) = (cfg.runs(Side::Baseline), cfg.runs(Side::Subject));
    let mut ratios = Vec::with_capacity(cfg.pairs);
    let (mut base, mut subj) = (Vec::new(), Vec::new());
    for pair in 0..=cfg.pairs {
        let b = if run_b {
            rows_per_sec(length, &mut baseline).await
        } else {
            1.0
        };
        let s = if run_s {
            rows_per_sec(length, &mut subject).await
        } else {
            1.0
        };
        if pair > 0 {
            ratios.push(s / b);
            base.push(b);
            subj.push(s);
        }
    }
    note!(
        "{name}: median baseline {:.0} rows/s, subject {:.0} rows/s ({} ms slices)",
        median(&mut base),
        median(&mut subj),
        length.as_millis()
    );
    ratios
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A batched claim against single-row claims on `store`: one warm-up pair, then
/// `cfg.pairs` pairs of `BATCH` leases of one row (the baseline) and one lease of `BATCH`
/// rows (the subject), each on a queue holding exactly `BATCH` due rows; the time of the
/// single-row leases over the time of the batched one. The finishes are not timed.
pub async fn claim_batch(
    name: &str,
    store: &dyn QueueStore,
    cfg: &Config,
    payload: &Bytes,
) -> Vec<f64> {
    let (run_b, run_s) = (cfg.runs(Side::Baseline), cfg.runs(Side::Subject));
    let mut ratios = Vec::with_capacity(cfg.pairs);
    let (mut singles_us, mut batched_us) = (Vec::new(), Vec::new());
    for pair in 0..=cfg.pairs {
        let mut single = Duration::from_nanos(1);
        if run_b {
            store
                .enqueue(&batch(payload))
                .await
                .expect("the store enqueues a batch");
            let t = Instant::now();
            let mut leases = Vec::with_capacity(BATCH);
            for _ in 0..BATCH {
                leases.extend(
                    store
                        .lease(Utc::now(), 1, LEASE_FOR)
                        .await
                        .expect("the store leases one row"),
                );
            }
            single = t.elapsed();
            assert_eq!(
                leases.len(),
                BATCH,
                "the single-row leases take the whole batch"
            );
            finish_all(store, &leases).await;
        }
        let mut batched = Duration::from_nanos(1);
        if run_s {
            store
                .enqueue(&batch(payload))
                .await
                .expect("the store enqueues a batch");
            let t = Instant::now();
            let leases = store
                .lease(Utc::now(), BATCH, LEASE_FOR)
                .await
                .expect("the store leases a batch");
            batched = t.elapsed();
            assert_eq!(
                leases.len(),
                BATCH,
                "the batched lease takes the whole batch"
            );
            finish_all(store, &leases).await;
        }
        if pair > 0 {
            ratios.push(single.as_secs_f64() / batched.as_secs_f64());
            singles_us.push(single.as_secs_f64() * 1e6);
            batched_us.push(batched.as_secs_f64() * 1e6);
        }
    }
    note!(
        "{name}: median {BATCH} single-row leases {:.0} us, one lease of {BATCH} {:.0} us",
        median(&mut singles_us),
        median(&mut batched_us)
    );
    ratios
}

/// Finishes every lease as delivered in one `finish_many`, as the worker writes the
/// outcomes of its completed attempts.
async fn finish_all(store: &dyn QueueStore, leases: &[Lease]) {
    let items: Vec<(&Lease, LeaseOutcome)> = leases
        .iter()
        .map(|l| (l, LeaseOutcome::Succeeded))
        .collect();
    store
        .finish_many(&items, Utc::now())
        .await
        .expect("the store records the successes");
}
