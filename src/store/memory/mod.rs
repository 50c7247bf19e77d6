//! The in-memory backend: always compiled, for tests, demos and embedding without
//! persistence. One mutex guards everything; no lock is held across an `await`.

use std::collections::VecDeque;

use foldhash::{HashMap, HashSet, HashSetExt};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    CallRecord, CallState, CallStore, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryState,
    Endpoint, IdempotencyClaim, IdempotencyStore, InboundWebhook, Lease, LeaseOutcome,
    LogRetention, LogStore, QueueStore, RequestLogEntry, StoreError, StoreResult, StoredResponse,
    WebhookStore,
};
use crate::campaign::{Campaign, SettingsVersion};
use crate::ids::{AccountId, CallId, CampaignId, DeliveryId, WebhookId};
use crate::model::Call;

mod calls;
mod deliveries;

use calls::Calls;
use deliveries::{Deliveries, Select};

/// Batches up to this size are checked for repeated delivery ids pairwise, larger ones with
/// a set.
const SMALL_BATCH: usize = 16;

/// A store that keeps everything in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    retention: LogRetention,
}

#[derive(Debug, Default)]
struct Inner {
    campaigns: HashMap<CampaignId, Campaign>,
    versions: HashMap<(CampaignId, u32), SettingsVersion>,
    inbound: HashMap<WebhookId, InboundWebhook>,
    slugs: HashMap<String, WebhookId>,
    endpoints: HashMap<WebhookId, Endpoint>,
    calls: Calls,
    deliveries: Deliveries,
    attempts: HashMap<WebhookId, VecDeque<DeliveryAttempt>>,
    requests: HashMap<Option<AccountId>, VecDeque<Slot<RequestLogEntry>>>,
    /// Keyed by what clients send (`Idempotency-Key`), so hashed with SipHash and a key from
    /// the OS (std's default) rather than foldhash, which does not claim to resist chosen
    /// collisions.
    idempotency: std::collections::HashMap<(AccountId, WebhookId, String), Idem>,
}

/// A log entry on cache lines of its own. Requests are handled on several threads at once,
/// and consecutive entries are written by different ones: entries that shared a cache line
/// made each write wait for the line to come back from the other core (measured on
/// `inbound_http`, as for the calls table's rows).
#[derive(Debug)]
#[repr(align(64))]
struct Slot<T>(T);

#[derive(Debug)]
struct Idem {
    expires_at: DateTime<Utc>,
    response: Option<StoredResponse>,
}

impl MemoryStore {
    /// An empty store with the default log retention.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given log retention.
    pub fn with_retention(retention: LogRetention) -> Self {
        MemoryStore {
            inner: Mutex::default(),
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // breaks invariants more than the panic itself did; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every record as JSON lines, for inspecting what the store holds (tests use it to
    /// check that no secret is stored in clear).
    pub fn dump(&self) -> String {
        let g = self.lock();
        let mut out = String::new();
        let mut push = |v: Result<String, serde_json::Error>| {
            out.push_str(&v.unwrap_or_default());
            out.push('\n');
        };
        g.campaigns
            .values()
            .for_each(|c| push(serde_json::to_string(c)));
        g.inbound
            .values()
            .for_each(|c| push(serde_json::to_string(c)));
        g.endpoints
            .values()
            .for_each(|c| push(serde_json::to_string(c)));
        g.calls
            .iter()
            .for_each(|c| push(serde_json::to_string(&g.calls.record(c))));
        g.deliveries
            .all()
            .for_each(|c| push(serde_json::to_string(&c)));
        g.attempts
            .values()
            .flatten()
            .for_each(|c| push(serde_json::to_string(c)));
        g.requests
            .values()
            .flatten()
            .for_each(|c| push(serde_json::to_string(&c.0)));
        out
    }
}

fn owned<'a, T>(
    map: &'a HashMap<impl std::hash::Hash + Eq + std::borrow::Borrow<str>, T>,
    id: &str,
    account: &AccountId,
    account_of: impl Fn(&T) -> &AccountId,
    what: &'static str,
) -> StoreResult<&'a T> {
    map.get(id)
        .filter(|r| account_of(r) == account)
        .ok_or_else(|| StoreError::not_found(what, id))
}

/// Inserts into a log kept newest first by time (an entry appended late with an earlier
/// time goes where its time puts it; among equal times the later appended comes first), so
/// that listing and retention go by time, as a backend ordering by the timestamp does.
///
/// Keeps at most `cap` entries and returns the one that fell out, for the caller to drop
/// after releasing the lock.
///
/// A full log is a ring of exactly `cap` slots (shrunk to it once), and the oldest entry
/// leaves before the newest comes in: the newest then takes the slot the oldest left, whose
/// memory was just read, instead of another slot that has gone cold.
fn push_bounded<T>(
    log: &mut VecDeque<T>,
    entry: T,
    at: impl Fn(&T) -> DateTime<Utc>,
    cap: usize,
) -> Option<T> {
    let when = at(&entry);
    let pos = log.iter().position(|e| at(e) <= when).unwrap_or(log.len());
    if log.len() < cap {
        log.insert(pos, entry);
        return None;
    }
    if pos >= cap {
        // Older than every entry kept.
        return Some(entry);
    }
    if log.capacity() > cap {
        log.shrink_to(cap);
    }
    let evicted = log.pop_back();
    log.insert(pos, entry);
    log.truncate(cap);
    evicted
}

impl Inner {
    /// Refuses a batch that reuses a delivery id (stored already, or twice in the batch),
    /// before anything is changed.
    fn check_new_deliveries(&self, deliveries: &[Delivery]) -> StoreResult<()> {
        // A fan-out is a handful of deliveries: compare pairwise. Large batches (bulk
        // enqueues) use a set, so the check stays linear instead of quadratic.
        let mut seen: HashSet<&str> = if deliveries.len() > SMALL_BATCH {
            HashSet::with_capacity(deliveries.len())
        } else {
            HashSet::new()
        };
        for (i, d) in deliveries.iter().enumerate() {
            let repeated = if deliveries.len() > SMALL_BATCH {
                !seen.insert(d.id.as_str())
            } else {
                deliveries[..i].iter().any(|e| e.id == d.id)
            };
            if repeated || self.deliveries.contains(d.id.as_str()) {
                return Err(StoreError::Conflict(format!("delivery {} exists", d.id)));
            }
        }
        Ok(())
    }

    /// Removes an endpoint; its pending deliveries become dead letters.
    fn remove_endpoint(
        &mut self,
        account: &AccountId,
        id: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        self.endpoints.remove(id.as_str());
        let pending = self.deliveries.ids(&Select {
            account,
            endpoint: Some(id),
            state: Some(DeliveryState::Pending),
            since: None,
        });
        for d in pending {
            self.deliveries.kill(&d, reason, now);
        }
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let mut g = self.lock();
        if g.campaigns.contains_key(campaign.id.as_str()) {
            return Err(StoreError::Conflict(format!(
                "campaign {} exists",
                campaign.id
            )));
        }
        let v = campaign.current_version();
        g.versions.insert((campaign.id.clone(), v.version), v);
        g.campaigns.insert(campaign.id.clone(), campaign.clone());
        Ok(())
    }

    async fn campaign(&self, account: &AccountId, id: &CampaignId) -> StoreResult<Campaign> {
        let g = self.lock();
        owned(
            &g.campaigns,
            id.as_str(),
            account,
            |c| &c.account,
            "campaign",
        )
        .cloned()
    }

    async fn update_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let mut g = self.lock();
        owned(
            &g.campaigns,
            campaign.id.as_str(),
            &campaign.account,
            |c| &c.account,
            "campaign",
        )?;
        let key = (campaign.id.clone(), campaign.settings_version);
        g.versions
            .entry(key)
            .or_insert_with(|| campaign.current_version());
        g.campaigns.insert(campaign.id.clone(), campaign.clone());
        Ok(())
    }

    async fn campaigns(&self, account: &AccountId) -> StoreResult<Vec<Campaign>> {
        let g = self.lock();
        let mut v: Vec<Campaign> = g
            .campaigns
            .values()
            .filter(|c| &c.account == account)
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(v)
    }

    async fn settings_version(
        &self,
        account: &AccountId,
        campaign: &CampaignId,
        version: u32,
    ) -> StoreResult<SettingsVersion> {
        let g = self.lock();
        owned(
            &g.campaigns,
            campaign.as_str(),
            account,
            |c| &c.account,
            "campaign",
        )?;
        g.versions
            .get(&(campaign.clone(), version))
            .cloned()
            .ok_or_else(|| {
                StoreError::not_found("settings version", format!("{campaign}@{version}"))
            })
    }

    async fn insert_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()> {
        let mut g = self.lock();
        if g.slugs.contains_key(&webhook.slug) {
            return Err(StoreError::Conflict("slug is taken".into()));
        }
        if g.inbound.contains_key(webhook.id.as_str()) {
            return Err(StoreError::Conflict(format!(
                "webhook {} exists",
                webhook.id
            )));
        }
        g.slugs.insert(webhook.slug.clone(), webhook.id.clone());
        g.inbound.insert(webhook.id.clone(), webhook.clone());
        Ok(())
    }

    async fn inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<InboundWebhook> {
        let g = self.lock();
        owned(
            &g.inbound,
            id.as_str(),
            account,
            |w| &w.account,
            "inbound webhook",
        )
        .cloned()
    }

    async fn inbound_by_slug(&self, slug: &str) -> StoreResult<Option<InboundWebhook>> {
        let g = self.lock();
        Ok(g.slugs
            .get(slug)
            .and_then(|id| g.inbound.get(id.as_str()))
            .cloned())
    }

    async fn update_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()> {
        let mut g = self.lock();
        let old = owned(
            &g.inbound,
            webhook.id.as_str(),
            &webhook.account,
            |w| &w.account,
            "inbound webhook",
        )?
        .clone();
        if old.slug != webhook.slug {
            if g.slugs.contains_key(&webhook.slug) {
                return Err(StoreError::Conflict("slug is taken".into()));
            }
            g.slugs.remove(&old.slug);
            g.slugs.insert(webhook.slug.clone(), webhook.id.clone());
        }
        g.inbound.insert(webhook.id.clone(), webhook.clone());
        Ok(())
    }

    async fn delete_inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()> {
        let mut g = self.lock();
        let old = owned(
            &g.inbound,
            id.as_str(),
            account,
            |w| &w.account,
            "inbound webhook",
        )?
        .clone();
        g.slugs.remove(&old.slug);
        g.inbound.remove(id.as_str());
        if let Some(resp) = &old.response_endpoint {
            g.remove_endpoint(account, resp, "webhook deleted", Utc::now());
        }
        Ok(())
    }

    async fn inbound_webhooks(&self, account: &AccountId) -> StoreResult<Vec<InboundWebhook>> {
        let g = self.lock();
        let mut v: Vec<InboundWebhook> = g
            .inbound
            .values()
            .filter(|w| &w.account == account)
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(v)
    }

    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let mut g = self.lock();
        if g.endpoints.contains_key(endpoint.id.as_str()) {
            return Err(StoreError::Conflict(format!(
                "webhook {} exists",
                endpoint.id
            )));
        }
        g.endpoints.insert(endpoint.id.clone(), endpoint.clone());
        Ok(())
    }

    async fn endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<Endpoint> {
        let g = self.lock();
        owned(
            &g.endpoints,
            id.as_str(),
            account,
            |e| &e.account,
            "webhook",
        )
        .cloned()
    }

    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let mut g = self.lock();
        owned(
            &g.endpoints,
            endpoint.id.as_str(),
            &endpoint.account,
            |e| &e.account,
            "webhook",
        )?;
        g.endpoints.insert(endpoint.id.clone(), endpoint.clone());
        Ok(())
    }

    async fn delete_endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()> {
        let mut g = self.lock();
        owned(
            &g.endpoints,
            id.as_str(),
            account,
            |e| &e.account,
            "webhook",
        )?;
        g.remove_endpoint(account, id, "webhook deleted", Utc::now());
        Ok(())
    }

    async fn endpoints(&self, account: &AccountId) -> StoreResult<Vec<Endpoint>> {
        let g = self.lock();
        let mut v: Vec<Endpoint> = g
            .endpoints
            .values()
            .filter(|e| &e.account == account)
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(v)
    }

    async fn record_health(
        &self,
        account: &AccountId,
        id: &WebhookId,
        success: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Endpoint> {
        let mut g = self.lock();
        let e = g
            .endpoints
            .get_mut(id.as_str())
            .filter(|e| &e.account == account)
            .ok_or_else(|| StoreError::not_found("webhook", id))?;
        if success {
            e.last_success_at = Some(now);
            e.failing_since = None;
        } else if e.failing_since.is_none() {
            e.failing_since = Some(now);
        }
        Ok(e.clone())
    }

    async fn disable_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut g = self.lock();
        let e = g
            .endpoints
            .get_mut(id.as_str())
            .filter(|e| &e.account == account)
            .ok_or_else(|| StoreError::not_found("webhook", id))?;
        e.enabled = false;
        e.disabled_reason = Some(reason.to_owned());
        e.updated_at = now;
        Ok(())
    }

    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let g = self.lock();
        let mut v: Vec<Endpoint> = g.endpoints.values().cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(v)
    }
}

#[async_trait]
impl CallStore for MemoryStore {
    async fn insert_call(&self, call: &CallRecord) -> StoreResult<()> {
        self.lock().calls.insert(call)
    }

    async fn call(&self, account: &AccountId, id: &CallId) -> StoreResult<CallRecord> {
        let g = self.lock();
        g.calls
            .get(id.as_str())
            .filter(|c| &c.account == account)
            .map(|c| g.calls.record(c))
            .ok_or_else(|| StoreError::not_found("call", id))
    }

    async fn set_call_state(
        &self,
        account: &AccountId,
        id: &CallId,
        state: CallState,
        cancel_reason: Option<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut g = self.lock();
        g.calls
            .get_mut(id.as_str())
            .filter(|c| &c.account == account)
            .ok_or_else(|| StoreError::not_found("call", id))?
            .set_state(state, cancel_reason, now);
        Ok(())
    }

    async fn calls(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
        limit: usize,
    ) -> StoreResult<Vec<CallRecord>> {
        let g = self.lock();
        let mut v: Vec<CallRecord> = g
            .calls
            .iter()
            .filter(|c| {
                &c.account == account
                    && campaign.is_none_or(|id| c.campaign_id.as_ref() == Some(id))
            })
            .map(|c| g.calls.record(c))
            .collect();
        v.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        v.truncate(if limit == 0 { 100 } else { limit });
        Ok(v)
    }

    async fn complete_call(
        &self,
        account: &AccountId,
        id: &CallId,
        result: &Call,
        action_items: &[String],
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut g = self.lock();
        let call = g
            .calls
            .get(id.as_str())
            .filter(|c| &c.account == account)
            .ok_or_else(|| StoreError::not_found("call", id))?;
        if matches!(call.state, CallState::Completed | CallState::Cancelled) {
            return Err(StoreError::Conflict(format!(
                "call {id} is already {}",
                call.state.as_str()
            )));
        }
        // Both or neither: refuse the deliveries before the call changes.
        g.check_new_deliveries(deliveries)?;
        let Some(call) = g.calls.get_mut(id.as_str()) else {
            return Err(StoreError::not_found("call", id));
        };
        call.complete(result, action_items, now);
        for d in deliveries {
            g.deliveries.insert(d)?;
        }
        Ok(())
    }
}

#[async_trait]
impl QueueStore for MemoryStore {
    async fn enqueue(&self, deliveries: &[Delivery]) -> StoreResult<()> {
        let mut g = self.lock();
        g.check_new_deliveries(deliveries)?;
        for d in deliveries {
            g.deliveries.insert(d)?;
        }
        Ok(())
    }

    async fn lease(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease_for: std::time::Duration,
    ) -> StoreResult<Vec<Lease>> {
        let lease_for = chrono::Duration::from_std(lease_for)
            .map_err(|e| StoreError::Backend(format!("lease duration: {e}")))?;
        let until = now + lease_for;
        let leased = self.lock().deliveries.lease(now, limit, until);
        Ok(leased
            .into_iter()
            .map(|(delivery, token)| Lease {
                delivery,
                token,
                lease_until: until,
            })
            .collect())
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: LeaseOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(self
            .lock()
            .deliveries
            .finish(lease.delivery.id.as_str(), lease.token, outcome, now))
    }

    async fn finish_many(
        &self,
        items: &[(&Lease, LeaseOutcome)],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let mut g = self.lock();
        Ok(items
            .iter()
            .map(|(lease, outcome)| {
                g.deliveries.finish(
                    lease.delivery.id.as_str(),
                    lease.token,
                    outcome.clone(),
                    now,
                )
            })
            .collect())
    }

    async fn release(&self, lease: &Lease, due_at: DateTime<Utc>) -> StoreResult<()> {
        self.lock()
            .deliveries
            .release(lease.delivery.id.as_str(), lease.token, due_at);
        Ok(())
    }

    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.lock().deliveries.next_due())
    }

    async fn delivery(&self, account: &AccountId, id: &DeliveryId) -> StoreResult<Delivery> {
        self.lock()
            .deliveries
            .get(account, id.as_str())
            .ok_or_else(|| StoreError::not_found("delivery", id))
    }

    async fn deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<Delivery>> {
        let select = Select {
            account,
            endpoint: filter.endpoint_id.as_ref(),
            state: filter.state,
            since: filter.since,
        };
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        Ok(self.lock().deliveries.select(&select, limit))
    }

    async fn redeliver(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<Delivery> {
        let mut g = self.lock();
        if g.deliveries.get(account, id.as_str()).is_none() {
            return Err(StoreError::not_found("delivery", id));
        }
        g.deliveries.revive(id.as_str(), now);
        g.deliveries
            .get(account, id.as_str())
            .ok_or_else(|| StoreError::not_found("delivery", id))
    }

    async fn redeliver_dead_since(
        &self,
        account: &AccountId,
        endpoint: Option<&WebhookId>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let mut g = self.lock();
        let ids = g.deliveries.ids(&Select {
            account,
            endpoint,
            state: Some(DeliveryState::Dead),
            since: Some(since),
        });
        for id in &ids {
            g.deliveries.revive(id, now);
        }
        Ok(ids.len())
    }

    async fn kill_pending(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let mut g = self.lock();
        let ids = g.deliveries.ids(&Select {
            account,
            endpoint: Some(endpoint),
            state: Some(DeliveryState::Pending),
            since: None,
        });
        for id in &ids {
            g.deliveries.kill(id, reason, now);
        }
        Ok(ids.len())
    }
}

#[async_trait]
impl LogStore for MemoryStore {
    async fn append_attempt(&self, attempt: DeliveryAttempt) -> StoreResult<()> {
        self.append_attempts(vec![attempt]).await
    }

    async fn append_attempts(&self, attempts: Vec<DeliveryAttempt>) -> StoreResult<()> {
        let cap = self.retention.attempts_per_endpoint.max(1);
        let mut evicted = Vec::new();
        {
            let mut g = self.lock();
            let n = attempts.len();
            for (i, attempt) in attempts.into_iter().enumerate() {
                let log = match g.attempts.get_mut(attempt.endpoint_id.as_str()) {
                    Some(log) => log,
                    None => g.attempts.entry(attempt.endpoint_id.clone()).or_default(),
                };
                if let Some(old) = push_bounded(log, attempt, |a| a.at, cap) {
                    // Sized at the first eviction (the rest of the batch may evict too),
                    // not grown by doubling; nothing is allocated while logs fill up.
                    if evicted.capacity() == 0 {
                        evicted.reserve(n - i);
                    }
                    evicted.push(old);
                }
            }
        }
        // Freed after the lock is released.
        drop(evicted);
        Ok(())
    }

    async fn attempts(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        success: Option<bool>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryAttempt>> {
        let g = self.lock();
        let limit = if limit == 0 { 100 } else { limit };
        Ok(g.attempts
            .get(endpoint.as_str())
            .map(|log| {
                log.iter()
                    .filter(|a| &a.account == account && success.is_none_or(|s| a.success == s))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn append_request(&self, entry: RequestLogEntry) -> StoreResult<()> {
        let cap = self.retention.requests_per_account.max(1);
        // Free after holding the lock: one entry per inbound request.
        let evicted = {
            let mut g = self.lock();
            let log = match g.requests.get_mut(&entry.account) {
                Some(log) => log,
                None => g.requests.entry(entry.account.clone()).or_default(),
            };
            push_bounded(log, Slot(entry), |e| e.0.at, cap)
        };
        drop(evicted);
        Ok(())
    }

    async fn requests(
        &self,
        account: Option<&AccountId>,
        limit: usize,
    ) -> StoreResult<Vec<RequestLogEntry>> {
        let g = self.lock();
        let limit = if limit == 0 { 100 } else { limit };
        Ok(g.requests
            .get(&account.cloned())
            .map(|log| log.iter().take(limit).map(|e| e.0.clone()).collect())
            .unwrap_or_default())
    }
}

/// Most idempotency keys kept; past this, expired ones are swept on the next claim.
const IDEMPOTENCY_SWEEP_AT: usize = 100_000;

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<IdempotencyClaim> {
        let mut g = self.lock();
        if g.idempotency.len() >= IDEMPOTENCY_SWEEP_AT {
            g.idempotency.retain(|_, v| v.expires_at > now);
        }
        let k = (account.clone(), webhook.clone(), key.to_owned());
        if let Some(existing) = g.idempotency.get(&k)
            && existing.expires_at > now
        {
            return Ok(match &existing.response {
                Some(r) => IdempotencyClaim::Done(r.clone()),
                None => IdempotencyClaim::InFlight,
            });
        }
        g.idempotency.insert(
            k,
            Idem {
                expires_at,
                response: None,
            },
        );
        Ok(IdempotencyClaim::New)
    }

    async fn finish_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let mut g = self.lock();
        let k = (account.clone(), webhook.clone(), key.to_owned());
        if let Some(v) = g.idempotency.get_mut(&k) {
            v.response = Some(response.clone());
        }
        Ok(())
    }

    async fn abandon_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
    ) -> StoreResult<()> {
        let mut g = self.lock();
        g.idempotency
            .remove(&(account.clone(), webhook.clone(), key.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    #[test]
    fn a_full_log_keeps_the_newest_in_a_ring_of_its_size() {
        let mut log: VecDeque<i64> = VecDeque::new();
        let cap = 5;
        for t in 1..=5 {
            assert_eq!(push_bounded(&mut log, t, |&e| at(e), cap), None);
        }
        // Full: the oldest falls out, the ring is exactly `cap` long.
        assert_eq!(push_bounded(&mut log, 6, |&e| at(e), cap), Some(1));
        assert_eq!(log.capacity(), cap);
        assert_eq!(log.iter().copied().collect::<Vec<_>>(), [6, 5, 4, 3, 2]);
        // Late entries go where their time puts them; one older than all is refused.
        assert_eq!(push_bounded(&mut log, 4, |&e| at(e), cap), Some(2));
        assert_eq!(log.iter().copied().collect::<Vec<_>>(), [6, 5, 4, 4, 3]);
        assert_eq!(push_bounded(&mut log, 1, |&e| at(e), cap), Some(1));
        assert_eq!(log.iter().copied().collect::<Vec<_>>(), [6, 5, 4, 4, 3]);
        for t in 7..100 {
            push_bounded(&mut log, t, |&e| at(e), cap);
        }
        assert_eq!(
            log.iter().copied().collect::<Vec<_>>(),
            [99, 98, 97, 96, 95]
        );
        assert_eq!(log.capacity(), cap);
    }
}
