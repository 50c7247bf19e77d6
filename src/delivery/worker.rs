//! The delivery loop (feature `worker`): leases due deliveries and runs many attempts at
//! once, with a bound on the total in flight and on each endpoint, so that a slow or dead
//! endpoint never delays deliveries to healthy ones.
//!
//! Shape: `max_in_flight` long-lived *slot* tasks each take a lease from a small queue,
//! attempt it and take the next; one *dispatcher* (the task running
//! [`DeliveryEngine::run`]) keeps that queue filled with leases in batches. A slot wakes the
//! dispatcher only when the queue runs low, so an attempt costs no task spawn and no
//! wake-up of a central loop (measured: the `delivery_loopback` figure of
//! `cargo bench --bench ratios`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::task::JoinSet;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::engine::Sink;
use super::timer::SlotTimer;
use super::{DeliveryEngine, DeliveryError};
use crate::ids::WebhookId;
use crate::store::{DeliveryAttempt, Lease, LeaseOutcome, Store};

/// Most writes (log entries and outcomes) stored in one batch.
const WRITE_BATCH: usize = 256;

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Attempts made.
    pub attempts: u64,
    /// Attempts that delivered.
    pub delivered: u64,
    /// Leases put back because their endpoint was saturated.
    pub deferred: u64,
    /// Leases given back unattempted at shutdown.
    pub released_at_shutdown: u64,
    /// Attempts that failed with a store or engine error (retried after the lease).
    pub errors: u64,
}

/// A handle to wake a worker when new deliveries were enqueued.
#[derive(Debug, Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    /// A new handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the worker now instead of at its next poll.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// The state the dispatcher and the slots share.
struct Pool {
    state: Mutex<PoolState>,
    /// Slots wait here for work.
    work: Notify,
    /// The dispatcher waits here for the queue to run low.
    low: Notify,
    /// Below this many queued leases a slot wakes the dispatcher.
    low_water: usize,
    /// Attempts handed to the writer and not stored yet. Leasing slows down when they pile
    /// up (a stalled store), so that they stay bounded.
    unwritten: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct PoolState {
    /// Leased, not yet taken by a slot.
    queue: VecDeque<Arc<Lease>>,
    /// The lease each slot is attempting, so that a stopped slot's lease can be released.
    running: Vec<Option<Arc<Lease>>>,
    /// Leases queued or running per endpoint.
    per_endpoint: foldhash::HashMap<WebhookId, usize>,
    stats: WorkerStats,
    closed: bool,
}

impl PoolState {
    fn busy(&self) -> usize {
        self.running.iter().filter(|r| r.is_some()).count()
    }

    fn endpoint_done(&mut self, ep: &WebhookId) {
        if let Some(n) = self.per_endpoint.get_mut(ep) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_endpoint.remove(ep);
            }
        }
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // Slots never panic while holding the lock (plain bookkeeping); keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records what slot `slot` did with its last lease (if any), then takes its next
    /// lease, under one lock; `None` once the worker is stopping.
    async fn next(&self, slot: usize, mut finished: Option<Finished>) -> Option<Arc<Lease>> {
        loop {
            let notified = self.work.notified();
            {
                let mut st = self.lock();
                if let Some((lease, result)) = finished.take() {
                    st.settle(slot, &lease, result);
                }
                if let Some(lease) = st.queue.pop_front() {
                    if let Some(cell) = st.running.get_mut(slot) {
                        *cell = Some(lease.clone());
                    }
                    let low = st.queue.len() < self.low_water;
                    drop(st);
                    if low {
                        self.low.notify_one();
                    }
                    return Some(lease);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }
}

/// A slot's last lease and what came of it: `Some(result)` if attempted, `None` if given
/// back unattempted.
type Finished = (Arc<Lease>, Option<Result<bool, DeliveryError>>);

impl PoolState {
    /// Slot `slot` is done with `lease`.
    fn settle(&mut self, slot: usize, lease: &Lease, result: Option<Result<bool, DeliveryError>>) {
        if let Some(cell) = self.running.get_mut(slot) {
            *cell = None;
        }
        self.endpoint_done(&lease.delivery.endpoint_id);
        match result {
            None => {}
            Some(Ok(success)) => {
                self.stats.attempts += 1;
                if success {
                    self.stats.delivered += 1;
                }
            }
            Some(Err(_)) => self.stats.errors += 1,
        }
    }
}

/// What an attempt leaves for the writer: its log entry and its lease's outcome.
struct Write {
    attempt: Option<DeliveryAttempt>,
    lease: Arc<Lease>,
    outcome: LeaseOutcome,
    at: DateTime<Utc>,
}

/// The slots' side of the writer: attempts hand their log entry and outcome over and go on
/// with the next lease; the writer stores what has accumulated in one batch (one
/// transaction on SQLite) while the next attempts run: a group commit.
struct Writes {
    tx: mpsc::UnboundedSender<Write>,
    pool: Arc<Pool>,
}

impl Sink for Writes {
    fn done(
        &self,
        attempt: Option<DeliveryAttempt>,
        lease: &Arc<Lease>,
        outcome: LeaseOutcome,
        at: DateTime<Utc>,
    ) {
        // Counted before it is sent, so that the writer never counts it off first.
        self.pool
            .unwritten
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self.tx.send(Write {
            attempt,
            lease: lease.clone(),
            outcome,
            at,
        });
        if sent.is_err() {
            // No writer (it outlives every slot, so only after a bug): the lease expires
            // and the delivery is attempted again.
            self.pool
                .unwritten
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Stores the slots' writes in batches until every sender is gone: log entries first, then
/// the outcomes (as an attempt on its own does). A failed batch is counted as errors; its
/// leases are not finished, so they expire and are attempted again.
async fn write_loop<S: Store + ?Sized + 'static>(
    engine: Arc<DeliveryEngine<S>>,
    pool: Arc<Pool>,
    mut rx: mpsc::UnboundedReceiver<Write>,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    // Whatever arrived while the previous batch was being written makes the next batch.
    while rx.recv_many(&mut buf, WRITE_BATCH).await > 0 {
        // Sized once: a batch that grows one push at a time reallocates its way up.
        let mut attempts = Vec::with_capacity(buf.len());
        let mut leases = Vec::with_capacity(buf.len());
        let mut outcomes = Vec::with_capacity(buf.len());
        let mut now = None;
        for write in buf.drain(..) {
            attempts.extend(write.attempt);
            leases.push(write.lease);
            outcomes.push(write.outcome);
            now = now.max(Some(write.at));
        }
        let count = leases.len();
        // In a task of its own, so that a store that panics costs this batch (counted as
        // errors; its leases expire and are attempted again), not the writer.
        let batch_engine = engine.clone();
        let written = tokio::spawn(async move {
            let store = batch_engine.registry.store();
            let mut failed = 0;
            if !attempts.is_empty() && store.append_attempts(attempts).await.is_err() {
                failed += 1;
            }
            if let Some(now) = now {
                let items: Vec<(&Lease, LeaseOutcome)> =
                    leases.iter().map(|l| &**l).zip(outcomes).collect();
                if store.finish_many(&items, now).await.is_err() {
                    failed += items.len() as u64;
                }
            }
            failed
        })
        .await;
        let failed = written.unwrap_or(count as u64);
        pool.unwritten
            .fetch_sub(count, std::sync::atomic::Ordering::Relaxed);
        if failed > 0 {
            pool.lock().stats.errors += failed;
        }
    }
}

/// One slot: attempts leases one after another until the worker stops.
async fn slot<S: Store + ?Sized + 'static>(
    engine: Arc<DeliveryEngine<S>>,
    pool: Arc<Pool>,
    writes: Arc<Writes>,
    index: usize,
) {
    let timeout = chrono::Duration::from_std(engine.config.request_timeout).unwrap_or_default();
    let mut timer = SlotTimer::new(engine.config.request_timeout);
    let mut finished = None;
    while let Some(lease) = pool.next(index, finished.take()).await {
        // A lease that waited in the queue must still outlast the request; otherwise put it
        // back rather than risk another worker sending it at the same time.
        let now = engine.registry.clock().now();
        if lease.lease_until <= now + timeout {
            let _ = engine.registry.store().release(&lease, now).await;
            finished = Some((lease, None));
            continue;
        }
        let result = engine
            .attempt_leased(&lease, Some(&*writes), &mut timer)
            .await
            .map(|r| r.success);
        finished = Some((lease, Some(result)));
    }
}

impl<S: Store + ?Sized + 'static> DeliveryEngine<S> {
    /// Runs the delivery loop until `shutdown` resolves, then lets attempts in flight
    /// finish for up to [`shutdown_grace`](super::DeliveryConfig::shutdown_grace) and
    /// releases the rest to the queue (due at once, attempt count unchanged).
    ///
    /// Each attempt is bounded by [`request_timeout`](super::DeliveryConfig::request_timeout),
    /// enforced here ([`HttpClient::send_bounded`](super::HttpClient::send_bounded)).
    pub async fn run(
        self: Arc<Self>,
        waker: Waker,
        shutdown: impl Future<Output = ()> + Send,
    ) -> WorkerStats {
        let cfg = self.config.clone();
        let slots_n = cfg.max_in_flight.max(1);
        // Leases kept queued beyond the slots, so a slot that finishes finds work at once.
        let prefetch = cfg.batch_size.clamp(1, slots_n);
        let pool = Arc::new(Pool {
            state: Mutex::new(PoolState {
                running: vec![None; slots_n],
                ..PoolState::default()
            }),
            work: Notify::new(),
            low: Notify::new(),
            low_water: prefetch.div_ceil(2),
            unwritten: std::sync::atomic::AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let writes = Arc::new(Writes {
            tx,
            pool: pool.clone(),
        });
        let writer = tokio::spawn(write_loop(self.clone(), pool.clone(), rx));
        let mut slots: JoinSet<()> = JoinSet::new();
        let mut slot_of: HashMap<tokio::task::Id, usize> = HashMap::new();
        for index in 0..slots_n {
            let handle = slots.spawn(slot(self.clone(), pool.clone(), writes.clone(), index));
            slot_of.insert(handle.id(), index);
        }
        tokio::pin!(shutdown);

        loop {
            let (free, queued) = {
                let st = pool.lock();
                // Up to `slots_n` outcomes may wait for the writer before leasing slows.
                let unwritten = pool.unwritten.load(std::sync::atomic::Ordering::Relaxed);
                let held = st.busy() + st.queue.len() + unwritten.saturating_sub(slots_n);
                ((slots_n + prefetch).saturating_sub(held), st.queue.len())
            };
            let mut full_batch = false;
            if free > 0 && queued < pool.low_water.max(1) {
                let want = free.min(cfg.batch_size.max(1));
                match self.lease(want).await {
                    Ok(leases) => {
                        full_batch = leases.len() == want;
                        self.dispatch(&pool, leases).await;
                    }
                    Err(_) => pool.lock().stats.errors += 1,
                }
            }
            if full_batch {
                // More may be due right away.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::task::yield_now() => continue,
                }
            }
            let sleep = self.idle_sleep().await;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(ended) = slots.join_next_with_id() => {
                    // A slot only ends by panicking: its lease expires and is retried;
                    // start a new slot in its place.
                    let id = match &ended {
                        Ok((id, ())) => *id,
                        Err(e) => e.id(),
                    };
                    if let Some(index) = slot_of.remove(&id) {
                        let mut st = pool.lock();
                        st.stats.errors += 1;
                        if let Some(lease) = st.running.get_mut(index).and_then(Option::take) {
                            st.endpoint_done(&lease.delivery.endpoint_id);
                        }
                        drop(st);
                        let handle =
                            slots.spawn(slot(self.clone(), pool.clone(), writes.clone(), index));
                        slot_of.insert(handle.id(), index);
                    }
                }
                () = pool.low.notified() => {}
                () = waker.0.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }

        // Shutdown: no new leases; queued ones go back at once; attempts in flight get the
        // grace period.
        let now = self.registry.clock().now();
        let queued: Vec<Arc<Lease>> = {
            let mut st = pool.lock();
            st.closed = true;
            st.queue.drain(..).collect()
        };
        pool.work.notify_waiters();
        let mut released = 0;
        for lease in &queued {
            if self.registry.store().release(lease, now).await.is_ok() {
                released += 1;
            }
        }
        let grace = tokio::time::sleep(cfg.shutdown_grace);
        tokio::pin!(grace);
        while !slots.is_empty() {
            tokio::select! {
                _ = slots.join_next() => {}
                () = &mut grace => break,
            }
        }
        slots.abort_all();
        while slots.join_next().await.is_some() {}
        // Every slot is gone: the writer stores what is left and stops.
        drop(writes);
        let _ = writer.await;
        let now = self.registry.clock().now();
        let stopped: Vec<Arc<Lease>> = pool
            .lock()
            .running
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for lease in &stopped {
            if self.registry.store().release(lease, now).await.is_ok() {
                released += 1;
            }
        }
        let mut stats = pool.lock().stats;
        stats.released_at_shutdown += released;
        stats
    }

    /// Queues fresh leases for the slots; a lease whose endpoint already has
    /// `per_endpoint` queued or running goes back to the store for `saturated_backoff`.
    async fn dispatch(&self, pool: &Pool, leases: Vec<Lease>) {
        let cfg = &self.config;
        let mut saturated = Vec::new();
        let mut queued = 0;
        {
            let mut st = pool.lock();
            for lease in leases {
                let busy = st.per_endpoint.get(&lease.delivery.endpoint_id).copied();
                if busy.unwrap_or(0) >= cfg.per_endpoint {
                    saturated.push(lease);
                    continue;
                }
                match st.per_endpoint.get_mut(&lease.delivery.endpoint_id) {
                    Some(n) => *n += 1,
                    None => {
                        st.per_endpoint
                            .insert(lease.delivery.endpoint_id.clone(), 1);
                    }
                }
                st.queue.push_back(Arc::new(lease));
                queued += 1;
            }
        }
        for _ in 0..queued {
            pool.work.notify_one();
        }
        if saturated.is_empty() {
            return;
        }
        let later = self.registry.clock().now()
            + chrono::Duration::from_std(cfg.saturated_backoff).unwrap_or_default();
        let mut deferred = 0;
        for lease in &saturated {
            if self.registry.store().release(lease, later).await.is_ok() {
                deferred += 1;
            }
        }
        pool.lock().stats.deferred += deferred;
    }

    /// How long to sleep when idle: until the next delivery is due, at most `idle_poll`.
    async fn idle_sleep(&self) -> std::time::Duration {
        let poll = self.config.idle_poll;
        match self.registry.store().next_due().await {
            Ok(Some(at)) => (at - self.registry.clock().now())
                .to_std()
                .unwrap_or_default()
                .clamp(std::time::Duration::from_millis(1), poll),
            _ => poll,
        }
    }
}
