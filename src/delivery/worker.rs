//! The delivery loop (feature `worker`): leases due deliveries and runs many attempts at
//! once, with a bound on the total in flight and on each endpoint, so that a slow or dead
//! endpoint never delays deliveries to healthy ones.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{AttemptReport, DeliveryEngine, DeliveryError};
use crate::ids::WebhookId;
use crate::store::{Lease, Store};

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

type Done = (WebhookId, Result<AttemptReport, DeliveryError>);

impl<S: Store + ?Sized + 'static> DeliveryEngine<S> {
    /// Runs the delivery loop until `shutdown` resolves, then lets attempts in flight
    /// finish for up to [`shutdown_grace`](super::DeliveryConfig::shutdown_grace) and
    /// releases the rest to the queue (due at once, attempt count unchanged).
    pub async fn run(
        self: Arc<Self>,
        waker: Waker,
        shutdown: impl Future<Output = ()> + Send,
    ) -> WorkerStats {
        let mut stats = WorkerStats::default();
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, Arc<Lease>> = HashMap::new();
        let mut per_endpoint: HashMap<WebhookId, usize> = HashMap::new();
        let cfg = self.config.clone();
        tokio::pin!(shutdown);

        loop {
            let mut started = 0usize;
            let free = cfg.max_in_flight.saturating_sub(tasks.len());
            if free > 0 {
                match self.lease(free.min(cfg.batch_size)).await {
                    Ok(leases) => {
                        let now = self.registry.clock().now();
                        for lease in leases {
                            let ep = lease.delivery.endpoint_id.clone();
                            let busy = per_endpoint.get(&ep).copied().unwrap_or(0);
                            if busy >= cfg.per_endpoint {
                                let later = now
                                    + chrono::Duration::from_std(cfg.saturated_backoff)
                                        .unwrap_or_default();
                                if self.registry.store().release(&lease, later).await.is_ok() {
                                    stats.deferred += 1;
                                }
                                continue;
                            }
                            *per_endpoint.entry(ep.clone()).or_insert(0) += 1;
                            let engine = self.clone();
                            let lease = Arc::new(lease);
                            let held = lease.clone();
                            let handle = tasks
                                .spawn(async move { (ep, engine.attempt_leased(&lease).await) });
                            running.insert(handle.id(), held);
                            started += 1;
                        }
                    }
                    Err(_) => stats.errors += 1,
                }
            }
            // Collect what finished without waiting.
            while let Some(done) = tasks.try_join_next_with_id() {
                settle(done, &mut running, &mut per_endpoint, &mut stats);
            }
            if started > 0 && tasks.len() < cfg.max_in_flight {
                // More may be due right away.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::task::yield_now() => continue,
                }
            }
            let sleep = if tasks.len() >= cfg.max_in_flight {
                // Every slot is taken: wait for one to free up.
                cfg.idle_poll
            } else {
                self.idle_sleep().await
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    settle(done, &mut running, &mut per_endpoint, &mut stats);
                }
                () = waker.0.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }

        // Shutdown: no new leases; let attempts in flight finish for a while.
        let grace = tokio::time::sleep(cfg.shutdown_grace);
        tokio::pin!(grace);
        while !tasks.is_empty() {
            tokio::select! {
                Some(done) = tasks.join_next_with_id() => {
                    settle(done, &mut running, &mut per_endpoint, &mut stats);
                }
                () = &mut grace => break,
            }
        }
        tasks.abort_all();
        while let Some(done) = tasks.join_next_with_id().await {
            settle(done, &mut running, &mut per_endpoint, &mut stats);
        }
        let now = self.registry.clock().now();
        for (_, lease) in running.drain() {
            if self.registry.store().release(&lease, now).await.is_ok() {
                stats.released_at_shutdown += 1;
            }
        }
        stats
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

fn settle(
    done: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    running: &mut HashMap<tokio::task::Id, Arc<Lease>>,
    per_endpoint: &mut HashMap<WebhookId, usize>,
    stats: &mut WorkerStats,
) {
    let (id, ep, result) = match done {
        Ok((id, (ep, result))) => (id, Some(ep), Some(result)),
        // Aborted or panicked: the lease stays in `running` to be released.
        Err(e) => {
            let id = e.id();
            let ep = running.get(&id).map(|l| l.delivery.endpoint_id.clone());
            if let Some(ep) = &ep
                && let Some(n) = per_endpoint.get_mut(ep)
            {
                *n = n.saturating_sub(1);
            }
            if e.is_panic() {
                stats.errors += 1;
            }
            return;
        }
    };
    running.remove(&id);
    if let Some(ep) = ep
        && let Some(n) = per_endpoint.get_mut(&ep)
    {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_endpoint.remove(&ep);
        }
    }
    match result {
        Some(Ok(report)) => {
            stats.attempts += 1;
            if report.success {
                stats.delivered += 1;
            }
        }
        _ => stats.errors += 1,
    }
}
