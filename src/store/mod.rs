//! Storage: async traits split by concern, and the backends.
//!
//! | trait | holds |
//! | --- | --- |
//! | [`WebhookStore`] | campaigns and their settings versions, inbound webhooks, endpoints |
//! | [`CallStore`] | calls; completing a call and enqueueing its deliveries in one step |
//! | [`QueueStore`] | the delivery queue: leases with expiry, outcomes, dead letters |
//! | [`LogStore`] | the delivery log and the request log |
//! | [`IdempotencyStore`] | `Idempotency-Key` claims and remembered answers |
//!
//! [`Store`] is all four; every backend implements it. [`memory::MemoryStore`] is always
//! compiled; `sqlite::SqliteStore`, the durable embedded default, comes with the `sqlite`
//! feature (on by default); `postgres::PostgresStore` (feature `postgres`) serves many
//! processes on many machines from one PostgreSQL database.
//!
//! Every read and write of account data takes the [`AccountId`] it is scoped to; an id that
//! belongs to another account answers [`StoreError::NotFound`], exactly as an id that does
//! not exist, so existence never leaks across accounts. Only the paths that have no account
//! yet are unscoped: finding an inbound webhook by its slug (the request carries nothing
//! else) and leasing due deliveries (the worker serves every account).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::campaign::{Campaign, SettingsVersion};
use crate::ids::{AccountId, CallId, CampaignId, DeliveryId, WebhookId};

/// The conformance suite every backend must pass (feature `conformance`).
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod records;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use records::{
    CallOrigin, CallRecord, CallState, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryState,
    Endpoint, EndpointKind, InboundWebhook, Lease, LeaseOutcome, RequestLogEntry, RequestOutcome,
    SealedHeader, SealedSecret, TransportErrorKind, event_type,
};

/// Errors of every backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such record in this account (it may exist in another; that is never said).
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A uniqueness or state rule was broken (a taken slug, a call completed twice).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend failed (I/O, connection, pool). Nothing was changed.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A [`StoreError::NotFound`].
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Campaigns, inbound webhooks and endpoints (outbound and response webhooks).
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new campaign and its settings version.
    async fn insert_campaign(&self, campaign: &Campaign) -> StoreResult<()>;
    /// A campaign of the account.
    async fn campaign(&self, account: &AccountId, id: &CampaignId) -> StoreResult<Campaign>;
    /// Replaces a campaign; when its `settings_version` is new, that version is stored too.
    async fn update_campaign(&self, campaign: &Campaign) -> StoreResult<()>;
    /// The account's campaigns, oldest first.
    async fn campaigns(&self, account: &AccountId) -> StoreResult<Vec<Campaign>>;
    /// One saved settings version of a campaign.
    async fn settings_version(
        &self,
        account: &AccountId,
        campaign: &CampaignId,
        version: u32,
    ) -> StoreResult<SettingsVersion>;

    /// Stores a new inbound webhook; a taken slug is a [`StoreError::Conflict`].
    async fn insert_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()>;
    /// An inbound webhook of the account.
    async fn inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<InboundWebhook>;
    /// The inbound webhook with this slug, in any account (the request path has only the
    /// slug). Disabled ones are returned too; the caller decides.
    async fn inbound_by_slug(&self, slug: &str) -> StoreResult<Option<InboundWebhook>>;
    /// Replaces an inbound webhook (its slug may change; a taken slug is a conflict).
    async fn update_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()>;
    /// Deletes an inbound webhook and its response endpoint.
    async fn delete_inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()>;
    /// The account's inbound webhooks, oldest first.
    async fn inbound_webhooks(&self, account: &AccountId) -> StoreResult<Vec<InboundWebhook>>;

    /// Stores a new endpoint.
    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()>;
    /// An endpoint of the account.
    async fn endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<Endpoint>;
    /// Replaces an endpoint.
    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()>;
    /// Deletes an endpoint; its pending deliveries become dead letters.
    async fn delete_endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()>;
    /// The account's endpoints (outbound and response), oldest first.
    async fn endpoints(&self, account: &AccountId) -> StoreResult<Vec<Endpoint>>;
    /// Every endpoint of every account (for key rotation), oldest first.
    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>>;
    /// Records a delivery outcome in an endpoint's health without touching its other
    /// fields: a success sets `last_success_at` and clears `failing_since`; a failure sets
    /// `failing_since` when it is unset. Returns the endpoint as it is afterwards.
    async fn record_health(
        &self,
        account: &AccountId,
        id: &WebhookId,
        success: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Endpoint>;
    /// Disables an endpoint with a reason, without touching its other fields.
    async fn disable_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// Calls.
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Stores a new call.
    async fn insert_call(&self, call: &CallRecord) -> StoreResult<()>;
    /// A call of the account.
    async fn call(&self, account: &AccountId, id: &CallId) -> StoreResult<CallRecord>;
    /// Sets a call's state (and cancel reason).
    async fn set_call_state(
        &self,
        account: &AccountId,
        id: &CallId,
        state: CallState,
        cancel_reason: Option<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The account's calls, newest first, optionally of one campaign.
    async fn calls(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
        limit: usize,
    ) -> StoreResult<Vec<CallRecord>>;
    /// Atomically stores a call's result (state becomes `Completed`) and enqueues the
    /// deliveries it causes: either both happen or neither. Completing a call that is
    /// already completed or cancelled is a [`StoreError::Conflict`] and enqueues nothing.
    async fn complete_call(
        &self,
        account: &AccountId,
        id: &CallId,
        result: &crate::model::Call,
        action_items: &[String],
        deliveries: &[Delivery],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// The delivery queue.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Enqueues deliveries (the Test button and redelivery use this; call results go
    /// through [`CallStore::complete_call`]).
    async fn enqueue(&self, deliveries: &[Delivery]) -> StoreResult<()>;
    /// Leases up to `limit` pending deliveries that are due at `now` (including those whose
    /// earlier lease expired), oldest due first, until `now + lease_for`. A leased delivery
    /// is not handed out again until its lease ends.
    async fn lease(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease_for: std::time::Duration,
    ) -> StoreResult<Vec<Lease>>;
    /// Records the outcome of a leased attempt (`attempts` grows by one). Returns `false`,
    /// changing nothing, when the lease was lost (it expired and another worker took it).
    async fn finish(
        &self,
        lease: &Lease,
        outcome: LeaseOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// [`finish`](Self::finish) for several leases at once, in order; for each, whether the
    /// lease was still held. The worker writes its completed attempts this way, in batches.
    /// The default finishes them one by one; a backend overrides it to use one transaction
    /// (SQLite) or one lock (memory). Items are independent: a stale one is `false` and the
    /// others are still applied.
    async fn finish_many(
        &self,
        items: &[(&Lease, LeaseOutcome)],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let mut held = Vec::with_capacity(items.len());
        for (lease, outcome) in items {
            held.push(self.finish(lease, outcome.clone(), now).await?);
        }
        Ok(held)
    }
    /// Gives a lease back unattempted (`attempts` unchanged): the delivery is due again at
    /// `due_at`. A stale token does nothing.
    async fn release(&self, lease: &Lease, due_at: DateTime<Utc>) -> StoreResult<()>;
    /// When the earliest pending delivery is due (leased ones count from their lease end).
    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// A delivery of the account.
    async fn delivery(&self, account: &AccountId, id: &DeliveryId) -> StoreResult<Delivery>;
    /// The account's deliveries, newest first.
    async fn deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<Delivery>>;
    /// Makes a delivery pending again, due at `now`, with the same message id. A delivery
    /// that is pending already is left as it is.
    async fn redeliver(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<Delivery>;
    /// Makes every dead delivery of the account created at or after `since` (optionally of
    /// one endpoint) pending again; returns how many.
    async fn redeliver_dead_since(
        &self,
        account: &AccountId,
        endpoint: Option<&WebhookId>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;
    /// Turns every pending delivery of an endpoint into a dead letter (the endpoint was
    /// disabled); returns how many.
    async fn kill_pending(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;
}

/// Retention of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    /// Delivery attempts kept per endpoint.
    pub attempts_per_endpoint: usize,
    /// Request log entries kept per account (and for unknown slugs).
    pub requests_per_account: usize,
}

impl Default for LogRetention {
    /// 1000 attempts per endpoint, 1000 requests per account.
    fn default() -> Self {
        LogRetention {
            attempts_per_endpoint: 1000,
            requests_per_account: 1000,
        }
    }
}

/// Delivery log and request log, newest first, bounded by [`LogRetention`].
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends a delivery attempt (taken by value: a backend keeps or moves it without a
    /// copy).
    async fn append_attempt(&self, attempt: DeliveryAttempt) -> StoreResult<()>;
    /// [`append_attempt`](Self::append_attempt) for several attempts, in order (the
    /// worker's batches). The default appends them one by one.
    async fn append_attempts(&self, attempts: Vec<DeliveryAttempt>) -> StoreResult<()> {
        for a in attempts {
            self.append_attempt(a).await?;
        }
        Ok(())
    }
    /// An endpoint's attempts, newest first; `success` filters by outcome.
    async fn attempts(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        success: Option<bool>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryAttempt>>;
    /// Appends an inbound request (taken by value, as [`append_attempt`](Self::append_attempt)).
    async fn append_request(&self, entry: RequestLogEntry) -> StoreResult<()>;
    /// The account's inbound requests, newest first (`None`: requests to unknown slugs).
    async fn requests(
        &self,
        account: Option<&AccountId>,
        limit: usize,
    ) -> StoreResult<Vec<RequestLogEntry>>;
}

/// A response remembered for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: bytes::Bytes,
    /// The call it placed, if any.
    pub call_id: Option<CallId>,
}

/// The state of an idempotency key when a request claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use (or the earlier one expired): go ahead, then [`IdempotencyStore::finish_idempotent`].
    New,
    /// A request with this key is still being handled.
    InFlight,
    /// Already answered: replay this.
    Done(StoredResponse),
}

/// `Idempotency-Key` bookkeeping for the inbound path, scoped by account and webhook.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` until `expires_at` unless a live claim exists. Atomic: of two concurrent
    /// claims only one gets [`IdempotencyClaim::New`].
    async fn claim_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<IdempotencyClaim>;
    /// Stores the answer of a claimed key.
    async fn finish_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()>;
    /// Drops a claim without an answer (the request failed in a way worth retrying).
    async fn abandon_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
    ) -> StoreResult<()>;
}

/// Everything a backend stores.
pub trait Store: WebhookStore + CallStore + QueueStore + LogStore + IdempotencyStore {}

impl<T: WebhookStore + CallStore + QueueStore + LogStore + IdempotencyStore + ?Sized> Store for T {}
