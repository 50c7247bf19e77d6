//! The conformance suite: the checks every storage backend must pass, so that the
//! in-memory, SQLite and PostgreSQL backends keep the documented semantics of
//! [`WebhookStore`], [`CallStore`], [`QueueStore`] and [`LogStore`] alike.
//!
//! Compiled with the `conformance` feature. Each check is a plain `async fn` taking a store
//! (`&S` with `S: Store + ?Sized`, so concrete backends and `&dyn Store` both work); it
//! panics with a message naming the broken rule. The suite does not depend on an async
//! runtime: the caller supplies one.
//!
//! | check | covers |
//! | --- | --- |
//! | [`campaigns_and_settings_versions`] | insert, get, update, settings versions, listing, isolation |
//! | [`inbound_webhooks_and_slugs`] | slugs (unique, any account, freed on change and delete), response endpoint deleted with its webhook |
//! | [`endpoints_and_dead_letters`] | insert, get, update, delete, listing, `all_endpoints`; deleting turns pending deliveries into dead letters |
//! | [`calls_listing_and_state`] | insert, get, `set_call_state`, listing newest first with campaign filter and limit |
//! | [`complete_call_is_atomic`] | result and deliveries stored together or not at all; completed, cancelled, foreign calls |
//! | [`queue_leases`] | lease order, limit and expiry; finish, stale tokens, release, `next_due` |
//! | [`delivery_listing`] | `delivery`, `deliveries` with every filter, duplicate ids |
//! | [`redelivery_and_kill_pending`] | `redeliver`, `redeliver_dead_since`, `kill_pending` |
//! | [`delivery_attempt_log`] | attempts newest first, success filter, limit, isolation |
//! | [`batched_writes`] | `finish_many` per lease (stale ones `false`), `append_attempts` |
//! | [`request_log`] | requests newest first per account, unknown slugs (`None`), limit |
//! | [`endpoint_health`](crate::store::conformance::endpoint_health) | `record_health` and `disable_endpoint` touch only their fields; isolation |
//! | [`idempotency_keys`](crate::store::conformance::idempotency_keys) | claim, in flight, done, expiry, abandon, scoping by account and webhook |
//!
//! # Running it
//!
//! In the backend's test crate (which has `tokio` with the `macros` and `rt` features),
//! [`store_conformance_tests!`](crate::store_conformance_tests) makes one test per check,
//! each on a fresh store from the factory, so failures are reported per check:
//!
//! ```
//! use atllas_webhooks::store::memory::MemoryStore;
//!
//! atllas_webhooks::store_conformance_tests!(|| async { MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! [`run_all`] runs every check in turn under whatever runtime the caller uses; the checks
//! can also be called one by one.
//!
//! # Shared databases
//!
//! Every check works in accounts of its own ([`AccountId::generate`]), so checks can run
//! side by side against one database, and against a database that holds data of earlier
//! runs, with two exceptions that no account id can scope:
//!
//! - [`queue_leases`] leases from the global queue and reads [`QueueStore::next_due`]. It
//!   works in the year 2001 while every other check enqueues deliveries due in 2030 or
//!   later, so the checks never lease each other's deliveries; it leaves nothing pending
//!   behind when it passes. It needs that nothing else is due before 2030 in the store: a
//!   run of it that failed midway may leave such deliveries (empty the queue then), and two
//!   runs of the suite must not share a database at the same time.
//! - [`batched_writes`] leases from the global queue too, in the same era as
//!   [`queue_leases`]: the two must not run side by side. It leaves nothing pending behind
//!   when it passes.
//! - [`request_log`] reads the global log of unknown slugs; it tells its own entries by
//!   their random slugs.
//!
//! # Time
//!
//! Checks pass explicit timestamps (whole seconds, from 2030-01-01T00:00:00Z) wherever the
//! semantics depend on time; they never read the clock. A backend must store timestamps to
//! at least one-second precision and return them unchanged.
//!
//! # Readings the suite pins
//!
//! Where the trait docs leave room, the suite expects what a backend author would:
//!
//! - Inserting a record (campaign, inbound webhook, endpoint, call, delivery) whose id
//!   exists is a [`StoreError::Conflict`] and changes nothing; so is a delivery id that
//!   exists in [`enqueue`](crate::store::QueueStore::enqueue) or
//!   [`complete_call`](crate::store::CallStore::complete_call), which then completes
//!   nothing.
//! - Updates and deletes are scoped by the record's account: another account's id answers
//!   [`StoreError::NotFound`], and an update never creates a record.
//! - A delivery is due when `next_attempt_at <= now` (due exactly now counts); `finish`
//!   sets `updated_at` to its `now`; `finish` of a lease whose delivery was killed
//!   meanwhile returns `false`; `release` of a stale lease does nothing.
//! - Deleting an endpoint, or an inbound webhook with its response endpoint, keeps the
//!   deliveries: the pending ones become dead letters, still readable and listed.
//! - Logs are newest first by their `at`, also when an entry is appended late; entries at
//!   the same `at` come in no particular order. An endpoint or account without entries
//!   lists none (not an error).
//!
//! [`run_all`]: crate::store::conformance::run_all
//! [`campaigns_and_settings_versions`]: crate::store::conformance::campaigns_and_settings_versions
//! [`inbound_webhooks_and_slugs`]: crate::store::conformance::inbound_webhooks_and_slugs
//! [`endpoints_and_dead_letters`]: crate::store::conformance::endpoints_and_dead_letters
//! [`calls_listing_and_state`]: crate::store::conformance::calls_listing_and_state
//! [`complete_call_is_atomic`]: crate::store::conformance::complete_call_is_atomic
//! [`queue_leases`]: crate::store::conformance::queue_leases
//! [`delivery_listing`]: crate::store::conformance::delivery_listing
//! [`redelivery_and_kill_pending`]: crate::store::conformance::redelivery_and_kill_pending
//! [`delivery_attempt_log`]: crate::store::conformance::delivery_attempt_log
//! [`batched_writes`]: crate::store::conformance::batched_writes
//! [`request_log`]: crate::store::conformance::request_log
//! [`endpoint_health`]: crate::store::conformance::endpoint_health
//! [`idempotency_keys`]: crate::store::conformance::idempotency_keys
//! [`WebhookStore`]: crate::store::WebhookStore
//! [`CallStore`]: crate::store::CallStore
//! [`QueueStore`]: crate::store::QueueStore
//! [`LogStore`]: crate::store::LogStore
//! [`QueueStore::next_due`]: crate::store::QueueStore::next_due
//! [`AccountId::generate`]: crate::ids::AccountId::generate

use std::fmt::Debug;
use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{
    CallOrigin, CallRecord, CallState, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryState,
    Endpoint, EndpointKind, InboundWebhook, Lease, LeaseOutcome, RequestLogEntry, RequestOutcome,
    SealedHeader, SealedSecret, Store, StoreError, StoreResult, TransportErrorKind,
};
use crate::campaign::{Campaign, CampaignKind, CampaignSettings, CampaignStatus};
use crate::ids::{
    AccountId, CallId, CampaignId, DeliveryId, MessageId, WebhookId, new_slug, random_bytes,
};
use crate::model::{Call, CallStatus, Contact, HttpMethod};
use crate::secrets::{KeyRing, SealContext, Sealed};
use crate::validate::IgnoredKey;

// ---------------------------------------------------------------------------------------
// Running the suite
// ---------------------------------------------------------------------------------------

/// Runs every check in turn, each on a fresh store from `factory`. Panics on the first
/// failure. The caller supplies the async runtime.
///
/// ```
/// use atllas_webhooks::store::conformance;
/// use atllas_webhooks::store::memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// conformance::run_all(|| async { MemoryStore::new() }).await;
/// # }
/// ```
pub async fn run_all<S, F, Fut>(factory: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    crate::__store_conformance_for_each_check!(__store_conformance_run_each, factory);
}

/// The checks that can run side by side on one store (every one but [`queue_leases`] and
/// [`batched_writes`], which lease from the global queue), one after another. Backends'
/// tests run it from several tasks at once against one database, as several services
/// sharing it would.
pub async fn run_shareable<S: Store + ?Sized>(store: &S) {
    campaigns_and_settings_versions(store).await;
    inbound_webhooks_and_slugs(store).await;
    endpoints_and_dead_letters(store).await;
    calls_listing_and_state(store).await;
    complete_call_is_atomic(store).await;
    delivery_listing(store).await;
    redelivery_and_kill_pending(store).await;
    delivery_attempt_log(store).await;
    request_log(store).await;
    endpoint_health(store).await;
    idempotency_keys(store).await;
}

/// Generates one `#[tokio::test]` per conformance check, each running on a fresh store.
///
/// The argument is a factory: anything callable with no arguments that returns a future of
/// the store (a closure `|| async { … }`, or the name of an `async fn`). The store must
/// implement [`Store`](crate::store::Store). The tests are named after the checks in
/// [`store::conformance`](crate::store::conformance); invoke the macro in a test file or a
/// module of its own. The calling crate needs `tokio` with the `macros` and `rt` features
/// (a dev-dependency is enough); the suite itself does not depend on it.
///
/// ```
/// use atllas_webhooks::store::memory::MemoryStore;
///
/// async fn fresh_store() -> MemoryStore {
///     MemoryStore::new()
/// }
///
/// atllas_webhooks::store_conformance_tests!(fresh_store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__store_conformance_for_each_check!(__store_conformance_test_fns, $factory);
    };
}

/// The list of checks, handed to a callback macro (keeps [`run_all`] and
/// [`store_conformance_tests!`](crate::store_conformance_tests) in step).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_for_each_check {
    ($callback:ident, $($args:tt)*) => {
        $crate::$callback! {
            [$($args)*]
            campaigns_and_settings_versions
            inbound_webhooks_and_slugs
            endpoints_and_dead_letters
            calls_listing_and_state
            complete_call_is_atomic
            queue_leases
            delivery_listing
            redelivery_and_kill_pending
            delivery_attempt_log
            batched_writes
            request_log
            endpoint_health
            idempotency_keys
        }
    };
}

/// One `#[tokio::test]` per check (used by `store_conformance_tests!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_test_fns {
    ([$factory:expr] $($check:ident)*) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let store = ($factory)().await;
                $crate::store::conformance::$check(&store).await;
            }
        )*
    };
}

/// Every check in turn (used by `run_all`).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_run_each {
    ([$factory:ident] $($check:ident)*) => {
        $(
            $crate::store::conformance::$check(&$factory().await).await;
        )*
    };
}

// ---------------------------------------------------------------------------------------
// Fixtures and assertions
// ---------------------------------------------------------------------------------------

/// 2030-01-01T00:00:00Z: the time every check but [`queue_leases`] works from.
fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
}

/// 2001-01-01T00:00:00Z: the era of [`queue_leases`], before anything else is due.
fn queue_base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
}

fn secs(s: i64) -> Duration {
    Duration::seconds(s)
}

fn std_secs(s: u64) -> std::time::Duration {
    std::time::Duration::from_secs(s)
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    random_bytes(&mut b).expect("the OS random generator");
    u32::from_be_bytes(b)
}

fn account() -> AccountId {
    AccountId::generate().expect("the OS random generator")
}

fn webhook_id() -> WebhookId {
    WebhookId::generate().expect("the OS random generator")
}

fn slug() -> String {
    new_slug().expect("the OS random generator")
}

fn prompt(p: &str) -> CampaignSettings {
    CampaignSettings {
        prompt: Some(p.into()),
        voice: Some("alloy".into()),
        language: Some("en-US".into()),
        ..CampaignSettings::default()
    }
}

fn campaign(account: &AccountId, name: &str, created_at: DateTime<Utc>) -> Campaign {
    Campaign::new(
        account.clone(),
        name,
        CampaignKind::Inbound,
        prompt("Qualify the lead."),
        created_at,
    )
    .expect("valid campaign settings")
}

fn inbound(
    account: &AccountId,
    campaign: Option<&CampaignId>,
    enabled: bool,
    created_at: DateTime<Utc>,
) -> InboundWebhook {
    InboundWebhook {
        id: webhook_id(),
        account: account.clone(),
        slug: slug(),
        campaign_id: campaign.cloned(),
        enabled,
        response_endpoint: None,
        created_at,
        updated_at: created_at,
    }
}

/// A real sealed value: binary, different every time.
fn sealed(owner: &WebhookId, name: &str, plaintext: &str) -> Sealed {
    KeyRing::generate()
        .and_then(|ring| ring.seal(plaintext.as_bytes(), SealContext::new(owner.as_str(), name)))
        .expect("sealing a fixture secret")
}

fn endpoint(account: &AccountId, kind: EndpointKind, created_at: DateTime<Utc>) -> Endpoint {
    let id = webhook_id();
    Endpoint {
        headers: vec![SealedHeader {
            name: "x-api-key".into(),
            value: sealed(&id, "x-api-key", "key-123"),
        }],
        secrets: vec![SealedSecret {
            value: sealed(
                &id,
                "signing-secret:1",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            seq: 1,
            created_at,
            expires_at: None,
        }],
        url: format!("https://hooks.example.com/{id}"),
        id,
        account: account.clone(),
        kind,
        method: HttpMethod::Post,
        managed_by: None,
        enabled: true,
        disabled_reason: None,
        last_success_at: None,
        failing_since: None,
        created_at,
        updated_at: created_at,
    }
}

fn call_record(
    account: &AccountId,
    campaign: &Campaign,
    origin: CallOrigin,
    created_at: DateTime<Utc>,
) -> CallRecord {
    CallRecord {
        id: CallId::generate().expect("the OS random generator"),
        account: account.clone(),
        campaign_id: Some(campaign.id.clone()),
        settings_version: campaign.settings_version,
        origin,
        contact: Contact {
            first_name: Some("Jane".into()),
            last_name: Some("Smith".into()),
            email: Some("jane@example.com".into()),
            ..Contact::new("+15551234567")
        },
        state: CallState::Queued,
        cancel_reason: None,
        result: None,
        action_items: Vec::new(),
        created_at,
        updated_at: created_at,
    }
}

fn call_result(call: &CallId, status: CallStatus) -> Call {
    Call::new(call.as_str(), status)
        .with_summary("Jane asked for a demo next week.")
        .with_duration(95)
        .with_tokens_consumed(12)
}

fn delivery(
    account: &AccountId,
    endpoint: &WebhookId,
    call: Option<&CallId>,
    created_at: DateTime<Utc>,
    due: DateTime<Utc>,
) -> Delivery {
    let id = DeliveryId::generate().expect("the OS random generator");
    Delivery {
        payload: Bytes::from(format!(
            r#"{{"type":"call.finished","data":{{"delivery":"{id}","note":"é ✓ \" \\"}}}}"#
        )),
        id,
        account: account.clone(),
        endpoint_id: endpoint.clone(),
        message_id: MessageId::generate().expect("the OS random generator"),
        event_type: "call.finished".into(),
        call_id: call.cloned(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        created_at,
        updated_at: created_at,
    }
}

fn attempt(
    account: &AccountId,
    endpoint: &WebhookId,
    at: DateTime<Utc>,
    status: Option<u16>,
) -> DeliveryAttempt {
    let success = status.is_some_and(|s| (200..300).contains(&s));
    DeliveryAttempt {
        account: account.clone(),
        endpoint_id: endpoint.clone(),
        delivery_id: Some(DeliveryId::generate().expect("the OS random generator")),
        message_id: MessageId::generate().expect("the OS random generator"),
        event_type: "call.finished".into(),
        attempt: 1,
        at,
        status,
        error: if status.is_none() {
            Some(TransportErrorKind::Timeout)
        } else {
            None
        },
        error_message: if success { None } else { Some("no 2xx".into()) },
        response_body: if success { "ok".into() } else { "nope".into() },
        duration_ms: 120,
        success,
        test: false,
    }
}

fn request(account: Option<&AccountId>, at: DateTime<Utc>, status: u16) -> RequestLogEntry {
    RequestLogEntry {
        account: account.cloned(),
        webhook_id: account.map(|_| webhook_id()),
        slug: Some(slug()),
        slug_known: account.is_some(),
        at,
        status,
        outcome: if status == 201 {
            RequestOutcome::Placed
        } else {
            RequestOutcome::Rejected
        },
        code: (status != 201).then_some("invalid_request".into()),
        message: format!("answered {status}").into(),
        ignored_keys: vec![IgnoredKey {
            path: "data.first_name".into(),
            suggestion: Some("data.firstName".into()),
        }],
        call_id: None,
    }
}

fn delivery_ids(v: &[Delivery]) -> Vec<&str> {
    v.iter().map(|d| d.id.as_str()).collect()
}

fn lease_ids(v: &[Lease]) -> Vec<&str> {
    v.iter().map(|l| l.delivery.id.as_str()).collect()
}

#[track_caller]
fn assert_not_found<T: Debug>(r: StoreResult<T>, rule: &str) {
    match r {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{rule}: expected StoreError::NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(r: StoreResult<T>, rule: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{rule}: expected StoreError::Conflict, got {other:?}"),
    }
}

/// The parts of a delivery that never change: who, where, what.
#[track_caller]
fn assert_same_message(got: &Delivery, want: &Delivery, rule: &str) {
    assert_eq!(got.id, want.id, "{rule}: delivery id");
    assert_eq!(got.account, want.account, "{rule}: account");
    assert_eq!(got.endpoint_id, want.endpoint_id, "{rule}: endpoint");
    assert_eq!(got.message_id, want.message_id, "{rule}: message id");
    assert_eq!(got.event_type, want.event_type, "{rule}: event type");
    assert_eq!(got.payload, want.payload, "{rule}: payload bytes");
    assert_eq!(got.call_id, want.call_id, "{rule}: call id");
    assert_eq!(got.created_at, want.created_at, "{rule}: created_at");
}

async fn get_delivery<S: Store + ?Sized>(store: &S, account: &AccountId, d: &Delivery) -> Delivery {
    store
        .delivery(account, &d.id)
        .await
        .unwrap_or_else(|e| panic!("delivery({}) of its account: {e}", d.id))
}

async fn lease<S: Store + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    limit: usize,
    lease_for: u64,
) -> Vec<Lease> {
    store
        .lease(now, limit, std_secs(lease_for))
        .await
        .expect("lease")
}

// ---------------------------------------------------------------------------------------
// Campaigns
// ---------------------------------------------------------------------------------------

/// Campaigns: insert (a taken id is a conflict), get, update (a new `settings_version` is
/// stored, old versions stay readable, an update keeping the version leaves it as saved),
/// listing oldest first, and isolation (another account's campaign is
/// [`StoreError::NotFound`] for every read and write).
pub async fn campaigns_and_settings_versions<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();

    let mut c1 = campaign(&a, "First", t0);
    let c2 = campaign(&a, "Second", t0 + secs(20));
    let c3 = campaign(&a, "Third", t0 + secs(10));
    for c in [&c1, &c2, &c3] {
        store.insert_campaign(c).await.expect("insert_campaign");
    }

    assert_eq!(
        store.campaign(&a, &c1.id).await.expect("campaign"),
        c1,
        "campaign() returns the campaign as inserted"
    );
    let v1 = store
        .settings_version(&a, &c1.id, 1)
        .await
        .expect("settings_version 1 after insert_campaign");
    assert_eq!(
        v1,
        c1.current_version(),
        "insert_campaign stores the campaign's settings version"
    );
    assert_not_found(
        store.settings_version(&a, &c1.id, 2).await,
        "a settings version never saved",
    );

    let mut dup = c2.clone();
    dup.name = "Duplicate".into();
    assert_conflict(
        store.insert_campaign(&dup).await,
        "insert_campaign with an id that exists",
    );
    assert_eq!(
        store.campaign(&a, &c2.id).await.expect("campaign"),
        c2,
        "a refused insert_campaign changes nothing"
    );

    // An edit makes settings version 2.
    c1.name = "First, renamed".into();
    let v2 = c1
        .edit_settings(prompt("Book a demo."), t0 + secs(30))
        .expect("edit_settings");
    store.update_campaign(&c1).await.expect("update_campaign");
    assert_eq!(
        store.campaign(&a, &c1.id).await.expect("campaign"),
        c1,
        "update_campaign replaces the campaign"
    );
    assert_eq!(
        store
            .settings_version(&a, &c1.id, 2)
            .await
            .expect("settings_version 2"),
        v2,
        "update_campaign with a new settings_version stores that version"
    );
    assert_eq!(
        store
            .settings_version(&a, &c1.id, 1)
            .await
            .expect("settings_version 1"),
        v1,
        "older settings versions stay readable after an edit"
    );

    // A status change keeps the version.
    c1.set_status(CampaignStatus::Active, t0 + secs(40))
        .expect("draft -> active");
    store.update_campaign(&c1).await.expect("update_campaign");
    assert_eq!(
        store.campaign(&a, &c1.id).await.expect("campaign"),
        c1,
        "update_campaign replaces the campaign (status change)"
    );
    assert_eq!(
        store
            .settings_version(&a, &c1.id, 2)
            .await
            .expect("settings_version 2"),
        v2,
        "an update that keeps settings_version leaves that version as it was saved"
    );
    assert_not_found(
        store.settings_version(&a, &c1.id, 3).await,
        "no version is made by an update that keeps settings_version",
    );

    assert_eq!(
        store.campaigns(&a).await.expect("campaigns"),
        vec![c1.clone(), c3.clone(), c2.clone()],
        "campaigns() lists the account's campaigns oldest first (by created_at)"
    );

    // Isolation.
    assert_eq!(
        store.campaigns(&b).await.expect("campaigns"),
        Vec::<Campaign>::new(),
        "an account without campaigns lists none"
    );
    let cb = campaign(&b, "B's", t0 + secs(5));
    store.insert_campaign(&cb).await.expect("insert_campaign");
    assert_eq!(
        store.campaigns(&b).await.expect("campaigns"),
        vec![cb.clone()],
        "campaigns() lists only the account's own campaigns"
    );
    assert_eq!(
        store.campaigns(&a).await.expect("campaigns").len(),
        3,
        "campaigns() lists only the account's own campaigns"
    );
    assert_not_found(
        store.campaign(&b, &c1.id).await,
        "campaign() of another account's campaign",
    );
    assert_not_found(
        store.campaign(&a, &cb.id).await,
        "campaign() of another account's campaign",
    );
    assert_not_found(
        store.settings_version(&b, &c1.id, 1).await,
        "settings_version() of another account's campaign",
    );
    let mut hijack = c1.clone();
    hijack.account = b.clone();
    hijack.name = "hijacked".into();
    assert_not_found(
        store.update_campaign(&hijack).await,
        "update_campaign() of another account's campaign",
    );
    assert_eq!(
        store.campaign(&a, &c1.id).await.expect("campaign"),
        c1,
        "a refused update_campaign changes nothing"
    );
    assert_not_found(
        store
            .campaign(&a, &CampaignId::generate().expect("rng"))
            .await,
        "campaign() of an id that does not exist",
    );
    let ghost = campaign(&a, "Ghost", t0);
    assert_not_found(
        store.update_campaign(&ghost).await,
        "update_campaign() of a campaign never inserted",
    );
    assert_not_found(
        store.campaign(&a, &ghost.id).await,
        "update_campaign() does not create a campaign",
    );
}

// ---------------------------------------------------------------------------------------
// Inbound webhooks
// ---------------------------------------------------------------------------------------

/// Inbound webhooks: insert, get, [`inbound_by_slug`](super::WebhookStore::inbound_by_slug)
/// (any account, disabled ones too), slug uniqueness across accounts, update with a slug
/// change (the old slug stops resolving and is free again, a taken slug is a conflict),
/// delete (slug freed, response endpoint deleted, its pending deliveries dead), listing
/// oldest first, isolation.
pub async fn inbound_webhooks_and_slugs<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let camp = campaign(&a, "Inbound", t0);
    store.insert_campaign(&camp).await.expect("insert_campaign");

    let w1 = inbound(&a, Some(&camp.id), true, t0);
    let w2 = inbound(&a, None, false, t0 + secs(20));
    let w3 = inbound(&a, None, true, t0 + secs(10));
    let wb = inbound(&b, None, true, t0 + secs(5));
    for w in [&w1, &w2, &w3, &wb] {
        store.insert_inbound(w).await.expect("insert_inbound");
    }

    assert_eq!(
        store.inbound(&a, &w1.id).await.expect("inbound"),
        w1,
        "inbound() returns the webhook as inserted"
    );
    assert_eq!(
        store
            .inbound_by_slug(&w1.slug)
            .await
            .expect("inbound_by_slug"),
        Some(w1.clone()),
        "inbound_by_slug() finds a webhook by its slug"
    );
    assert_eq!(
        store
            .inbound_by_slug(&w2.slug)
            .await
            .expect("inbound_by_slug"),
        Some(w2.clone()),
        "inbound_by_slug() returns disabled webhooks too"
    );
    assert_eq!(
        store
            .inbound_by_slug(&wb.slug)
            .await
            .expect("inbound_by_slug"),
        Some(wb.clone()),
        "inbound_by_slug() finds webhooks of any account"
    );
    assert_eq!(
        store
            .inbound_by_slug(&slug())
            .await
            .expect("inbound_by_slug"),
        None,
        "inbound_by_slug() of an unknown slug is None, not an error"
    );
    assert_eq!(
        store.inbound_webhooks(&a).await.expect("inbound_webhooks"),
        vec![w1.clone(), w3.clone(), w2.clone()],
        "inbound_webhooks() lists the account's webhooks oldest first"
    );
    assert_eq!(
        store.inbound_webhooks(&b).await.expect("inbound_webhooks"),
        vec![wb.clone()],
        "inbound_webhooks() lists only the account's own webhooks"
    );

    // Slugs are unique across accounts.
    let mut taken = inbound(&b, None, true, t0 + secs(1));
    taken.slug = w1.slug.clone();
    assert_conflict(
        store.insert_inbound(&taken).await,
        "insert_inbound() with a slug another account's webhook has",
    );
    assert_not_found(
        store.inbound(&b, &taken.id).await,
        "a refused insert_inbound stores nothing",
    );
    assert_eq!(
        store
            .inbound_by_slug(&w1.slug)
            .await
            .expect("inbound_by_slug"),
        Some(w1.clone()),
        "a refused insert_inbound leaves the slug's owner"
    );
    let mut dup = w3.clone();
    dup.slug = slug();
    assert_conflict(
        store.insert_inbound(&dup).await,
        "insert_inbound() with an id that exists",
    );
    assert_eq!(
        store
            .inbound_by_slug(&dup.slug)
            .await
            .expect("inbound_by_slug"),
        None,
        "a refused insert_inbound claims no slug"
    );
    assert_eq!(
        store.inbound(&a, &w3.id).await.expect("inbound"),
        w3,
        "a refused insert_inbound changes nothing"
    );

    // Changing the slug.
    let old_slug = w1.slug.clone();
    let mut w1b = w1.clone();
    w1b.slug = slug();
    w1b.enabled = false;
    w1b.updated_at = t0 + secs(30);
    store.update_inbound(&w1b).await.expect("update_inbound");
    assert_eq!(
        store.inbound(&a, &w1.id).await.expect("inbound"),
        w1b,
        "update_inbound() replaces the webhook"
    );
    assert_eq!(
        store
            .inbound_by_slug(&old_slug)
            .await
            .expect("inbound_by_slug"),
        None,
        "after a slug change the old slug no longer resolves"
    );
    assert_eq!(
        store
            .inbound_by_slug(&w1b.slug)
            .await
            .expect("inbound_by_slug"),
        Some(w1b.clone()),
        "after a slug change the new slug resolves"
    );
    let mut reuse = inbound(&a, None, true, t0 + secs(40));
    reuse.slug = old_slug.clone();
    store
        .insert_inbound(&reuse)
        .await
        .expect("insert_inbound with a slug given up by a slug change");
    assert_eq!(
        store
            .inbound_by_slug(&old_slug)
            .await
            .expect("inbound_by_slug"),
        Some(reuse.clone()),
        "a slug given up by a slug change can be taken again"
    );

    let mut clash = w1b.clone();
    clash.slug = w2.slug.clone();
    assert_conflict(
        store.update_inbound(&clash).await,
        "update_inbound() to a slug of the same account",
    );
    clash.slug = wb.slug.clone();
    assert_conflict(
        store.update_inbound(&clash).await,
        "update_inbound() to a slug of another account",
    );
    assert_eq!(
        store.inbound(&a, &w1.id).await.expect("inbound"),
        w1b,
        "a refused update_inbound changes nothing"
    );
    assert_eq!(
        store
            .inbound_by_slug(&w1b.slug)
            .await
            .expect("inbound_by_slug"),
        Some(w1b.clone()),
        "a refused update_inbound keeps the webhook's slug"
    );
    assert_eq!(
        store
            .inbound_by_slug(&w2.slug)
            .await
            .expect("inbound_by_slug"),
        Some(w2.clone()),
        "a refused update_inbound leaves the slug's owner"
    );

    // Updating without a slug change.
    let mut w3b = w3.clone();
    w3b.campaign_id = Some(camp.id.clone());
    w3b.updated_at = t0 + secs(45);
    store.update_inbound(&w3b).await.expect("update_inbound");
    assert_eq!(
        store
            .inbound_by_slug(&w3.slug)
            .await
            .expect("inbound_by_slug"),
        Some(w3b.clone()),
        "update_inbound() keeping the slug keeps it resolving, to the new record"
    );

    // Isolation.
    assert_not_found(
        store.inbound(&b, &w1.id).await,
        "inbound() of another account's webhook",
    );
    let mut hijack = w3b.clone();
    hijack.account = b.clone();
    hijack.slug = slug();
    assert_not_found(
        store.update_inbound(&hijack).await,
        "update_inbound() of another account's webhook",
    );
    assert_eq!(
        store.inbound(&a, &w3.id).await.expect("inbound"),
        w3b,
        "a refused update_inbound changes nothing"
    );
    assert_eq!(
        store
            .inbound_by_slug(&hijack.slug)
            .await
            .expect("inbound_by_slug"),
        None,
        "a refused update_inbound claims no slug"
    );
    assert_not_found(
        store.delete_inbound(&b, &w2.id).await,
        "delete_inbound() of another account's webhook",
    );
    assert_eq!(
        store.inbound(&a, &w2.id).await.expect("inbound"),
        w2,
        "a refused delete_inbound deletes nothing"
    );
    assert_not_found(
        store.inbound(&a, &webhook_id()).await,
        "inbound() of an id that does not exist",
    );
    let ghost = inbound(&a, None, true, t0);
    assert_not_found(
        store.update_inbound(&ghost).await,
        "update_inbound() of a webhook never inserted",
    );
    assert_eq!(
        store
            .inbound_by_slug(&ghost.slug)
            .await
            .expect("inbound_by_slug"),
        None,
        "update_inbound() does not create a webhook"
    );

    // Deleting takes the response endpoint along.
    let resp = endpoint(
        &a,
        EndpointKind::Response {
            inbound: w1.id.clone(),
        },
        t0 + secs(50),
    );
    let other = endpoint(&a, EndpointKind::Outbound, t0 + secs(51));
    store.insert_endpoint(&resp).await.expect("insert_endpoint");
    store
        .insert_endpoint(&other)
        .await
        .expect("insert_endpoint");
    let mut w1c = w1b.clone();
    w1c.response_endpoint = Some(resp.id.clone());
    store.update_inbound(&w1c).await.expect("update_inbound");
    let to_resp = delivery(&a, &resp.id, None, t0 + secs(52), t0 + secs(3600));
    let to_other = delivery(&a, &other.id, None, t0 + secs(53), t0 + secs(3600));
    store
        .enqueue(&[to_resp.clone(), to_other.clone()])
        .await
        .expect("enqueue");

    store
        .delete_inbound(&a, &w1.id)
        .await
        .expect("delete_inbound");
    assert_not_found(
        store.inbound(&a, &w1.id).await,
        "inbound() after delete_inbound",
    );
    assert_eq!(
        store
            .inbound_by_slug(&w1c.slug)
            .await
            .expect("inbound_by_slug"),
        None,
        "a deleted webhook's slug no longer resolves"
    );
    assert_not_found(
        store.endpoint(&a, &resp.id).await,
        "delete_inbound() deletes the webhook's response endpoint",
    );
    assert_eq!(
        store.endpoint(&a, &other.id).await.expect("endpoint"),
        other,
        "delete_inbound() leaves other endpoints"
    );
    assert_eq!(
        get_delivery(store, &a, &to_resp).await.state,
        DeliveryState::Dead,
        "the deleted response endpoint's pending deliveries become dead letters"
    );
    assert_eq!(
        get_delivery(store, &a, &to_other).await.state,
        DeliveryState::Pending,
        "other endpoints' deliveries stay pending"
    );
    let mut again = inbound(&b, None, true, t0 + secs(60));
    again.slug = w1c.slug.clone();
    store
        .insert_inbound(&again)
        .await
        .expect("insert_inbound with the slug of a deleted webhook");
    assert_eq!(
        store
            .inbound_by_slug(&w1c.slug)
            .await
            .expect("inbound_by_slug"),
        Some(again),
        "a deleted webhook's slug can be taken again"
    );
    assert_eq!(
        store.inbound_webhooks(&a).await.expect("inbound_webhooks"),
        vec![w3b, w2, reuse],
        "inbound_webhooks() after a delete, oldest first"
    );
    assert_not_found(
        store.delete_inbound(&a, &w1.id).await,
        "delete_inbound() of a webhook deleted already",
    );

    store
        .kill_pending(&a, &other.id, "conformance cleanup", t0 + secs(70))
        .await
        .expect("kill_pending");
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

/// Endpoints: insert (a taken id is a conflict), get (sealed headers and secrets byte for
/// byte), update, listing oldest first, `all_endpoints` across accounts, isolation, and
/// delete: the endpoint is gone and its pending deliveries become dead letters (still
/// readable, same message id), while dead letters and other endpoints' deliveries stay.
pub async fn endpoints_and_dead_letters<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let hook = inbound(&a, None, true, t0);
    store.insert_inbound(&hook).await.expect("insert_inbound");

    let e1 = endpoint(&a, EndpointKind::Outbound, t0);
    let e2 = endpoint(
        &a,
        EndpointKind::Response {
            inbound: hook.id.clone(),
        },
        t0 + secs(20),
    );
    let e3 = endpoint(&a, EndpointKind::Outbound, t0 + secs(10));
    let eb = endpoint(&b, EndpointKind::Outbound, t0 + secs(15));
    for e in [&e1, &e2, &e3, &eb] {
        store.insert_endpoint(e).await.expect("insert_endpoint");
    }

    assert_eq!(
        store.endpoint(&a, &e1.id).await.expect("endpoint"),
        e1,
        "endpoint() returns the endpoint as inserted, sealed values byte for byte"
    );
    assert_eq!(
        store.endpoint(&a, &e2.id).await.expect("endpoint"),
        e2,
        "endpoint() returns a response endpoint with its inbound webhook"
    );
    assert_eq!(
        store.endpoints(&a).await.expect("endpoints"),
        vec![e1.clone(), e3.clone(), e2.clone()],
        "endpoints() lists the account's endpoints oldest first"
    );
    assert_eq!(
        store.endpoints(&b).await.expect("endpoints"),
        vec![eb.clone()],
        "endpoints() lists only the account's own endpoints"
    );
    let all = store.all_endpoints().await.expect("all_endpoints");
    let ours: Vec<&str> = all
        .iter()
        .filter(|e| [&e1.id, &e2.id, &e3.id, &eb.id].contains(&&e.id))
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(
        ours,
        vec![
            e1.id.as_str(),
            e3.id.as_str(),
            eb.id.as_str(),
            e2.id.as_str()
        ],
        "all_endpoints() holds every account's endpoints, oldest first"
    );
    assert!(
        all.windows(2).all(|w| w[0].created_at <= w[1].created_at),
        "all_endpoints() is ordered oldest first"
    );
    assert_eq!(
        all.iter().find(|e| e.id == eb.id),
        Some(&eb),
        "all_endpoints() returns whole records"
    );

    let mut dup = e3.clone();
    dup.url = "https://elsewhere.example.com/".into();
    assert_conflict(
        store.insert_endpoint(&dup).await,
        "insert_endpoint() with an id that exists",
    );
    assert_eq!(
        store.endpoint(&a, &e3.id).await.expect("endpoint"),
        e3,
        "a refused insert_endpoint changes nothing"
    );

    // Update every field that can change.
    let mut e1b = e1.clone();
    e1b.url = "https://hooks.example.com/moved?x=1".into();
    e1b.method = HttpMethod::Get;
    e1b.headers.push(SealedHeader {
        name: "authorization".into(),
        value: sealed(&e1.id, "authorization", "Bearer t"),
    });
    e1b.secrets[0].expires_at = Some(t0 + secs(86_400));
    e1b.secrets.insert(
        0,
        SealedSecret {
            value: sealed(&e1.id, "signing-secret:2", "whsec_second"),
            seq: 2,
            created_at: t0 + secs(30),
            expires_at: None,
        },
    );
    e1b.managed_by = Some("Zapier".into());
    e1b.enabled = false;
    e1b.disabled_reason = Some("410 Gone".into());
    e1b.last_success_at = Some(t0 + secs(25));
    e1b.failing_since = Some(t0 + secs(26));
    e1b.updated_at = t0 + secs(30);
    store.update_endpoint(&e1b).await.expect("update_endpoint");
    assert_eq!(
        store.endpoint(&a, &e1.id).await.expect("endpoint"),
        e1b,
        "update_endpoint() replaces every field"
    );

    // Isolation.
    assert_not_found(
        store.endpoint(&b, &e1.id).await,
        "endpoint() of another account's endpoint",
    );
    assert_not_found(
        store.endpoint(&a, &eb.id).await,
        "endpoint() of another account's endpoint",
    );
    let mut hijack = e1b.clone();
    hijack.account = b.clone();
    hijack.url = "https://attacker.example.com/".into();
    assert_not_found(
        store.update_endpoint(&hijack).await,
        "update_endpoint() of another account's endpoint",
    );
    assert_eq!(
        store.endpoint(&a, &e1.id).await.expect("endpoint"),
        e1b,
        "a refused update_endpoint changes nothing"
    );
    assert_not_found(
        store.delete_endpoint(&b, &e1.id).await,
        "delete_endpoint() of another account's endpoint",
    );
    assert_eq!(
        store.endpoint(&a, &e1.id).await.expect("endpoint"),
        e1b,
        "a refused delete_endpoint deletes nothing"
    );
    let ghost = endpoint(&a, EndpointKind::Outbound, t0);
    assert_not_found(
        store.update_endpoint(&ghost).await,
        "update_endpoint() of an endpoint never inserted",
    );
    assert_not_found(
        store.endpoint(&a, &ghost.id).await,
        "update_endpoint() does not create an endpoint",
    );
    assert_not_found(
        store.delete_endpoint(&a, &webhook_id()).await,
        "delete_endpoint() of an id that does not exist",
    );

    // Deleting: pending deliveries become dead letters.
    let old = delivery(&a, &e3.id, None, t0 + secs(30), t0 + secs(3600));
    store
        .enqueue(std::slice::from_ref(&old))
        .await
        .expect("enqueue");
    assert_eq!(
        store
            .kill_pending(&a, &e3.id, "disabled by the user", t0 + secs(40))
            .await
            .expect("kill_pending"),
        1,
        "kill_pending() counts the deliveries it killed"
    );
    let p1 = delivery(&a, &e3.id, None, t0 + secs(50), t0 + secs(3600));
    let p2 = delivery(&a, &e3.id, None, t0 + secs(51), t0 + secs(7200));
    let keep = delivery(&a, &e1.id, None, t0 + secs(52), t0 + secs(3600));
    store
        .enqueue(&[p1.clone(), p2.clone(), keep.clone()])
        .await
        .expect("enqueue");

    store
        .delete_endpoint(&a, &e3.id)
        .await
        .expect("delete_endpoint");
    assert_not_found(
        store.endpoint(&a, &e3.id).await,
        "endpoint() after delete_endpoint",
    );
    assert_eq!(
        store.endpoints(&a).await.expect("endpoints"),
        vec![e1b.clone(), e2.clone()],
        "endpoints() after delete_endpoint"
    );
    assert!(
        !store
            .all_endpoints()
            .await
            .expect("all_endpoints")
            .iter()
            .any(|e| e.id == e3.id),
        "all_endpoints() after delete_endpoint"
    );
    for p in [&p1, &p2] {
        let d = get_delivery(store, &a, p).await;
        let rule = "a deleted endpoint's pending delivery becomes a dead letter";
        assert_same_message(&d, p, rule);
        assert_eq!(d.state, DeliveryState::Dead, "{rule}");
        assert_eq!(d.attempts, p.attempts, "{rule}: attempts unchanged");
        assert!(d.last_error.is_some(), "{rule}: last_error says why");
    }
    let o = get_delivery(store, &a, &old).await;
    assert_eq!(
        (o.state, o.last_error.as_deref()),
        (DeliveryState::Dead, Some("disabled by the user")),
        "a dead letter stays as it was when its endpoint is deleted"
    );
    assert_eq!(
        get_delivery(store, &a, &keep).await.state,
        DeliveryState::Pending,
        "deleting an endpoint leaves other endpoints' deliveries pending"
    );
    let filter = DeliveryFilter {
        endpoint_id: Some(e3.id.clone()),
        state: Some(DeliveryState::Dead),
        ..DeliveryFilter::default()
    };
    assert_eq!(
        store
            .deliveries(&a, &filter)
            .await
            .expect("deliveries")
            .len(),
        3,
        "a deleted endpoint's dead letters are still listed"
    );
    assert_not_found(
        store.delete_endpoint(&a, &e3.id).await,
        "delete_endpoint() of an endpoint deleted already",
    );

    store
        .kill_pending(&a, &e1.id, "conformance cleanup", t0 + secs(60))
        .await
        .expect("kill_pending");
}

// ---------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------

/// Calls: insert (a taken id is a conflict), get, every origin, `set_call_state` (state,
/// cancel reason, `updated_at`), listing newest first with the campaign filter and the
/// limit, isolation.
pub async fn calls_listing_and_state<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let ca = campaign(&a, "A", t0);
    let ca2 = campaign(&a, "A2", t0);
    let cb = campaign(&b, "B", t0);
    for c in [&ca, &ca2, &cb] {
        store.insert_campaign(c).await.expect("insert_campaign");
    }
    let hook = inbound(&a, Some(&ca.id), true, t0);
    store.insert_inbound(&hook).await.expect("insert_inbound");

    let mut k1 = call_record(
        &a,
        &ca,
        CallOrigin::InboundWebhook {
            webhook: hook.id.clone(),
        },
        t0 + secs(10),
    );
    let k2 = call_record(&a, &ca2, CallOrigin::OutboundCampaign, t0 + secs(30));
    let k3 = call_record(&a, &ca, CallOrigin::TestCall, t0 + secs(40));
    let mut k4 = call_record(&a, &ca, CallOrigin::OutboundCampaign, t0 + secs(20));
    let kb = call_record(&b, &cb, CallOrigin::TestCall, t0 + secs(25));
    for k in [&k1, &k2, &k3, &k4, &kb] {
        store.insert_call(k).await.expect("insert_call");
    }

    for k in [&k1, &k2, &k3] {
        assert_eq!(
            &store.call(&a, &k.id).await.expect("call"),
            k,
            "call() returns the call as inserted"
        );
    }
    let acct = &a;
    let list = move |campaign: Option<&CampaignId>, limit: usize| {
        let campaign = campaign.cloned();
        async move {
            store
                .calls(acct, campaign.as_ref(), limit)
                .await
                .expect("calls")
        }
    };
    assert_eq!(
        list(None, 10).await,
        vec![k3.clone(), k2.clone(), k4.clone(), k1.clone()],
        "calls() lists the account's calls newest first (by created_at)"
    );
    assert_eq!(
        list(Some(&ca.id), 10).await,
        vec![k3.clone(), k4.clone(), k1.clone()],
        "calls() with a campaign lists only that campaign's calls"
    );
    assert_eq!(
        list(Some(&ca2.id), 10).await,
        vec![k2.clone()],
        "calls() with a campaign lists only that campaign's calls"
    );
    assert_eq!(
        list(None, 2).await,
        vec![k3.clone(), k2.clone()],
        "calls() returns at most `limit` calls, the newest"
    );
    assert_eq!(
        list(Some(&ca.id), 1).await,
        vec![k3.clone()],
        "calls() applies the limit after the campaign filter"
    );
    assert_eq!(
        list(Some(&cb.id), 10).await,
        Vec::<CallRecord>::new(),
        "calls() with another account's campaign lists nothing"
    );
    assert_eq!(
        store.calls(&b, None, 10).await.expect("calls"),
        vec![kb.clone()],
        "calls() lists only the account's own calls"
    );

    let mut dup = k2.clone();
    dup.state = CallState::Dialing;
    assert_conflict(
        store.insert_call(&dup).await,
        "insert_call() with an id that exists",
    );
    assert_eq!(
        store.call(&a, &k2.id).await.expect("call"),
        k2,
        "a refused insert_call changes nothing"
    );

    store
        .set_call_state(&a, &k1.id, CallState::Dialing, None, t0 + secs(50))
        .await
        .expect("set_call_state");
    k1.state = CallState::Dialing;
    k1.updated_at = t0 + secs(50);
    assert_eq!(
        store.call(&a, &k1.id).await.expect("call"),
        k1,
        "set_call_state() sets the state and updated_at"
    );
    store
        .set_call_state(
            &a,
            &k4.id,
            CallState::Cancelled,
            Some("campaign is paused".into()),
            t0 + secs(60),
        )
        .await
        .expect("set_call_state");
    k4.state = CallState::Cancelled;
    k4.cancel_reason = Some("campaign is paused".into());
    k4.updated_at = t0 + secs(60);
    assert_eq!(
        store.call(&a, &k4.id).await.expect("call"),
        k4,
        "set_call_state() sets the state, the cancel reason and updated_at"
    );

    // Isolation.
    assert_not_found(
        store.call(&b, &k1.id).await,
        "call() of another account's call",
    );
    assert_not_found(
        store.call(&a, &kb.id).await,
        "call() of another account's call",
    );
    assert_not_found(
        store
            .set_call_state(
                &b,
                &k1.id,
                CallState::Cancelled,
                Some("x".into()),
                t0 + secs(70),
            )
            .await,
        "set_call_state() of another account's call",
    );
    assert_eq!(
        store.call(&a, &k1.id).await.expect("call"),
        k1,
        "a refused set_call_state changes nothing"
    );
    assert_not_found(
        store
            .set_call_state(
                &a,
                &CallId::generate().expect("rng"),
                CallState::Dialing,
                None,
                t0 + secs(70),
            )
            .await,
        "set_call_state() of an id that does not exist",
    );
}

// ---------------------------------------------------------------------------------------
// Completing calls
// ---------------------------------------------------------------------------------------

/// [`complete_call`](super::CallStore::complete_call): the result is stored (state
/// `Completed`) and the deliveries enqueued together; completing twice, completing a
/// cancelled call, completing another account's call or a call that does not exist
/// enqueues nothing; when a delivery cannot be stored (its id exists) the call is not
/// completed either.
pub async fn complete_call_is_atomic<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let camp = campaign(&a, "A", t0);
    let camp_b = campaign(&b, "B", t0);
    store.insert_campaign(&camp).await.expect("insert_campaign");
    store
        .insert_campaign(&camp_b)
        .await
        .expect("insert_campaign");
    let e = endpoint(&a, EndpointKind::Outbound, t0);
    let eb = endpoint(&b, EndpointKind::Outbound, t0);
    store.insert_endpoint(&e).await.expect("insert_endpoint");
    store.insert_endpoint(&eb).await.expect("insert_endpoint");

    let dialing = |at| {
        let mut k = call_record(&a, &camp, CallOrigin::TestCall, at);
        k.state = CallState::Dialing;
        k
    };
    let k = dialing(t0);
    let kx = dialing(t0 + secs(1));
    let kc = call_record(&a, &camp, CallOrigin::OutboundCampaign, t0 + secs(2));
    let kq = call_record(&a, &camp, CallOrigin::OutboundCampaign, t0 + secs(3));
    for c in [&k, &kx, &kc, &kq] {
        store.insert_call(c).await.expect("insert_call");
    }
    store
        .set_call_state(
            &a,
            &kc.id,
            CallState::Cancelled,
            Some("out of credits".into()),
            t0 + secs(4),
        )
        .await
        .expect("set_call_state");

    // Completing stores the result and enqueues the deliveries.
    let result = call_result(&k.id, CallStatus::Finished);
    let d1 = delivery(&a, &e.id, Some(&k.id), t0 + secs(100), t0 + secs(100));
    let mut d2 = delivery(&a, &e.id, Some(&k.id), t0 + secs(100), t0 + secs(100));
    d2.event_type = "call.completed".into();
    store
        .complete_call(
            &a,
            &k.id,
            &result,
            &["Email pricing".to_string()],
            &[d1.clone(), d2.clone()],
            t0 + secs(100),
        )
        .await
        .expect("complete_call");
    let mut done = k.clone();
    done.state = CallState::Completed;
    done.result = Some(Box::new(result.clone()));
    done.action_items = vec!["Email pricing".to_string()];
    done.updated_at = t0 + secs(100);
    assert_eq!(
        store.call(&a, &k.id).await.expect("call"),
        done,
        "complete_call() stores the result, state Completed and updated_at"
    );
    assert_eq!(
        get_delivery(store, &a, &d1).await,
        d1,
        "complete_call() enqueues its deliveries as given"
    );
    assert_eq!(
        get_delivery(store, &a, &d2).await,
        d2,
        "complete_call() enqueues its deliveries as given"
    );
    let of_e = DeliveryFilter {
        endpoint_id: Some(e.id.clone()),
        ..DeliveryFilter::default()
    };
    let (acct, of_e) = (&a, &of_e);
    let count = move || async move {
        store
            .deliveries(acct, of_e)
            .await
            .expect("deliveries")
            .len()
    };
    assert_eq!(count().await, 2, "complete_call() enqueued two deliveries");

    // Twice.
    let d3 = delivery(&a, &e.id, Some(&k.id), t0 + secs(200), t0 + secs(200));
    assert_conflict(
        store
            .complete_call(
                &a,
                &k.id,
                &call_result(&k.id, CallStatus::Missed),
                &[],
                std::slice::from_ref(&d3),
                t0 + secs(200),
            )
            .await,
        "complete_call() of a call completed already",
    );
    assert_eq!(
        store.call(&a, &k.id).await.expect("call"),
        done,
        "completing twice keeps the first result"
    );
    assert_not_found(
        store.delivery(&a, &d3.id).await,
        "completing twice enqueues nothing",
    );

    // A cancelled call.
    let d4 = delivery(&a, &e.id, Some(&kc.id), t0 + secs(200), t0 + secs(200));
    assert_conflict(
        store
            .complete_call(
                &a,
                &kc.id,
                &call_result(&kc.id, CallStatus::Finished),
                &[],
                std::slice::from_ref(&d4),
                t0 + secs(200),
            )
            .await,
        "complete_call() of a cancelled call",
    );
    let got = store.call(&a, &kc.id).await.expect("call");
    assert_eq!(
        (got.state, got.result, got.cancel_reason.as_deref()),
        (CallState::Cancelled, None, Some("out of credits")),
        "a refused complete_call leaves a cancelled call as it was"
    );
    assert_not_found(
        store.delivery(&a, &d4.id).await,
        "completing a cancelled call enqueues nothing",
    );

    // A queued call may complete, with no deliveries at all.
    let result_q = call_result(&kq.id, CallStatus::Failed);
    store
        .complete_call(&a, &kq.id, &result_q, &[], &[], t0 + secs(300))
        .await
        .expect("complete_call of a queued call without deliveries");
    let got = store.call(&a, &kq.id).await.expect("call");
    assert_eq!(
        (got.state, got.result),
        (CallState::Completed, Some(Box::new(result_q))),
        "complete_call() of a queued call"
    );

    // Another account, or no such call.
    let d5 = delivery(&b, &eb.id, Some(&kx.id), t0 + secs(400), t0 + secs(400));
    assert_not_found(
        store
            .complete_call(
                &b,
                &kx.id,
                &call_result(&kx.id, CallStatus::Finished),
                &[],
                std::slice::from_ref(&d5),
                t0 + secs(400),
            )
            .await,
        "complete_call() of another account's call",
    );
    assert_not_found(
        store.delivery(&b, &d5.id).await,
        "completing another account's call enqueues nothing",
    );
    let got = store.call(&a, &kx.id).await.expect("call");
    assert_eq!(
        (got.state, got.result),
        (CallState::Dialing, None),
        "a refused complete_call leaves the call as it was"
    );
    let ghost = CallId::generate().expect("rng");
    let d6 = delivery(&a, &e.id, Some(&ghost), t0 + secs(400), t0 + secs(400));
    assert_not_found(
        store
            .complete_call(
                &a,
                &ghost,
                &call_result(&ghost, CallStatus::Finished),
                &[],
                std::slice::from_ref(&d6),
                t0 + secs(400),
            )
            .await,
        "complete_call() of a call that does not exist",
    );
    assert_not_found(
        store.delivery(&a, &d6.id).await,
        "completing a call that does not exist enqueues nothing",
    );

    // Both or neither: a delivery that cannot be stored leaves the call as it was.
    let d7 = delivery(&a, &e.id, Some(&kx.id), t0 + secs(500), t0 + secs(500));
    let mut clash = delivery(&a, &e.id, Some(&kx.id), t0 + secs(500), t0 + secs(500));
    clash.id = d1.id.clone();
    let r = store
        .complete_call(
            &a,
            &kx.id,
            &call_result(&kx.id, CallStatus::Finished),
            &[],
            &[d7.clone(), clash],
            t0 + secs(500),
        )
        .await;
    assert!(
        r.is_err(),
        "complete_call() with a delivery id that exists must fail, got {r:?}"
    );
    let got = store.call(&a, &kx.id).await.expect("call");
    assert_eq!(
        (got.state, got.result),
        (CallState::Dialing, None),
        "complete_call() is atomic: when its deliveries cannot be enqueued the call is not completed"
    );
    assert_not_found(
        store.delivery(&a, &d7.id).await,
        "complete_call() is atomic: a failed completion enqueues none of its deliveries",
    );
    assert_eq!(
        get_delivery(store, &a, &d1).await,
        d1,
        "a failed complete_call does not overwrite the delivery whose id it reused"
    );
    assert_eq!(count().await, 2, "a failed complete_call enqueues nothing");
    store
        .complete_call(
            &a,
            &kx.id,
            &call_result(&kx.id, CallStatus::Finished),
            &[],
            std::slice::from_ref(&d7),
            t0 + secs(600),
        )
        .await
        .expect("complete_call after a failed attempt");
    assert_eq!(
        get_delivery(store, &a, &d7).await,
        d7,
        "complete_call() after a failed attempt enqueues its deliveries"
    );

    store
        .kill_pending(&a, &e.id, "conformance cleanup", t0 + secs(700))
        .await
        .expect("kill_pending");
}

// ---------------------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------------------

/// The global queue, in the year 2001 (see the module docs): `lease` hands out only due
/// deliveries (due exactly now counts), oldest due first, at most `limit`, until
/// `now + lease_for`, and not again while the lease lasts; an expired lease is handed out
/// again with a new token; `finish` records `Succeeded`, `Retry` and `Dead` (attempts + 1,
/// state, `next_attempt_at`, `last_error`) and returns `false`, changing nothing, for a
/// stale or finished lease or a delivery killed meanwhile; `release` makes the delivery due
/// again at once without counting an attempt; `next_due` counts leased deliveries from
/// their lease end; a redelivered succeeded delivery is leased again with its message id.
pub async fn queue_leases<S: Store + ?Sized>(store: &S) {
    let q = queue_base();
    let a = account();
    let e = endpoint(&a, EndpointKind::Outbound, q);
    store.insert_endpoint(&e).await.expect("insert_endpoint");
    let next_due = move || async move { store.next_due().await.expect("next_due") };

    let d1 = delivery(&a, &e.id, None, q, q + secs(10));
    let d2 = delivery(&a, &e.id, None, q + secs(1), q + secs(5));
    let d3 = delivery(&a, &e.id, None, q + secs(2), q + secs(20));
    let d4 = delivery(&a, &e.id, None, q + secs(3), q + secs(1000));
    store
        .enqueue(&[d1.clone(), d2.clone(), d3.clone(), d4.clone()])
        .await
        .expect("enqueue");
    assert_eq!(
        next_due().await,
        Some(q + secs(5)),
        "next_due() is when the earliest pending delivery is due"
    );
    assert!(
        lease(store, q + secs(4), 10, 30).await.is_empty(),
        "lease() hands out nothing before it is due"
    );

    // Oldest due first, at most `limit`.
    let l_d2 = lease(store, q + secs(10), 1, 30).await;
    assert_eq!(
        lease_ids(&l_d2),
        vec![d2.id.as_str()],
        "lease() hands out the oldest due first, at most `limit`"
    );
    let l_d2 = l_d2.into_iter().next().expect("one lease");
    assert_same_message(&l_d2.delivery, &d2, "a lease carries the delivery");
    assert_eq!(
        (l_d2.delivery.state, l_d2.delivery.attempts),
        (DeliveryState::Pending, 0),
        "a lease carries the delivery as stored (attempts before this one)"
    );
    assert_eq!(
        l_d2.lease_until,
        q + secs(40),
        "a lease lasts until now + lease_for"
    );
    let l_d1 = lease(store, q + secs(10), 10, 30).await;
    assert_eq!(
        lease_ids(&l_d1),
        vec![d1.id.as_str()],
        "lease() hands out a delivery due exactly now, and not the one leased already"
    );
    let l_d1 = l_d1.into_iter().next().expect("one lease");
    assert_ne!(l_d1.token, l_d2.token, "every lease has its own token");
    let l_d3 = lease(store, q + secs(20), 10, 60).await;
    assert_eq!(
        lease_ids(&l_d3),
        vec![d3.id.as_str()],
        "lease() hands out only what is due and not leased"
    );
    let l_d3 = l_d3.into_iter().next().expect("one lease");
    assert!(
        lease(store, q + secs(30), 10, 60).await.is_empty(),
        "a leased delivery is not handed out again while its lease lasts"
    );
    assert_eq!(
        next_due().await,
        Some(q + secs(40)),
        "next_due() counts leased deliveries from their lease end"
    );

    // Succeeded.
    assert!(
        store
            .finish(&l_d2, LeaseOutcome::Succeeded, q + secs(15))
            .await
            .expect("finish"),
        "finish() with the current lease returns true"
    );
    let got = get_delivery(store, &a, &d2).await;
    assert_same_message(&got, &d2, "finish(Succeeded)");
    assert_eq!(
        (got.state, got.attempts, got.last_error.as_deref()),
        (DeliveryState::Succeeded, 1, None),
        "finish(Succeeded): state Succeeded, attempts + 1, no error"
    );
    assert_eq!(
        got.updated_at,
        q + secs(15),
        "finish() sets updated_at to now"
    );
    assert!(
        !store
            .finish(&l_d2, LeaseOutcome::Succeeded, q + secs(16))
            .await
            .expect("finish"),
        "finish() of a lease finished already returns false"
    );
    assert_eq!(
        get_delivery(store, &a, &d2).await.attempts,
        1,
        "finishing twice counts one attempt"
    );

    // Retry.
    assert!(
        store
            .finish(
                &l_d1,
                LeaseOutcome::Retry {
                    next_attempt_at: q + secs(100),
                    error: "HTTP 503".into(),
                },
                q + secs(17),
            )
            .await
            .expect("finish"),
        "finish() with the current lease returns true"
    );
    let got = get_delivery(store, &a, &d1).await;
    assert_same_message(&got, &d1, "finish(Retry)");
    assert_eq!(
        (
            got.state,
            got.attempts,
            got.next_attempt_at,
            got.last_error.as_deref()
        ),
        (DeliveryState::Pending, 1, q + secs(100), Some("HTTP 503")),
        "finish(Retry): pending, attempts + 1, due at next_attempt_at, last_error set"
    );
    assert_eq!(
        next_due().await,
        Some(q + secs(80)),
        "next_due() after a retry: the earliest of lease ends and due times"
    );

    // Expiry, stale tokens.
    assert!(
        lease(store, q + secs(79), 10, 60).await.is_empty(),
        "nothing is handed out before a lease ends or a retry is due"
    );
    let l_d3b = lease(store, q + secs(81), 10, 60).await;
    assert_eq!(
        lease_ids(&l_d3b),
        vec![d3.id.as_str()],
        "a delivery whose lease expired is handed out again"
    );
    let l_d3b = l_d3b.into_iter().next().expect("one lease");
    assert_ne!(
        l_d3b.token, l_d3.token,
        "a delivery leased again gets a new token"
    );
    assert_eq!(
        l_d3b.delivery.attempts, 0,
        "an expired lease counts no attempt"
    );
    assert_eq!(l_d3b.lease_until, q + secs(141), "the new lease's end");
    assert!(
        !store
            .finish(&l_d3, LeaseOutcome::Succeeded, q + secs(82))
            .await
            .expect("finish"),
        "finish() with a stale token (expired and leased again) returns false"
    );
    let got = get_delivery(store, &a, &d3).await;
    assert_eq!(
        (got.state, got.attempts, got.last_error.as_deref()),
        (DeliveryState::Pending, 0, None),
        "finish() with a stale token changes nothing"
    );
    store.release(&l_d3, q + secs(82)).await.expect("release");
    assert!(
        lease(store, q + secs(82), 10, 60).await.is_empty(),
        "release() with a stale token does not free the current holder's lease"
    );
    assert!(
        store
            .finish(
                &l_d3b,
                LeaseOutcome::Dead {
                    error: "HTTP 410 Gone".into(),
                },
                q + secs(83),
            )
            .await
            .expect("finish"),
        "finish() with the new token returns true"
    );
    let got = get_delivery(store, &a, &d3).await;
    assert_same_message(&got, &d3, "finish(Dead)");
    assert_eq!(
        (got.state, got.attempts, got.last_error.as_deref()),
        (DeliveryState::Dead, 1, Some("HTTP 410 Gone")),
        "finish(Dead): a dead letter, attempts + 1, last_error set"
    );
    assert!(
        !store
            .finish(&l_d3b, LeaseOutcome::Succeeded, q + secs(84))
            .await
            .expect("finish"),
        "finish() of a dead letter's lease finished already returns false"
    );

    // Release.
    let d5 = delivery(&a, &e.id, None, q + secs(4), q + secs(90));
    store
        .enqueue(std::slice::from_ref(&d5))
        .await
        .expect("enqueue");
    let l_d5 = lease(store, q + secs(90), 10, 300).await;
    assert_eq!(lease_ids(&l_d5), vec![d5.id.as_str()], "lease() of d5");
    let l_d5 = l_d5.into_iter().next().expect("one lease");
    store.release(&l_d5, q + secs(90)).await.expect("release");
    assert_eq!(
        next_due().await,
        Some(q + secs(90)),
        "a released delivery is due again at the time given"
    );
    let l_d5b = lease(store, q + secs(90), 10, 300).await;
    assert_eq!(
        lease_ids(&l_d5b),
        vec![d5.id.as_str()],
        "a released delivery is handed out again at once"
    );
    let l_d5b = l_d5b.into_iter().next().expect("one lease");
    assert_eq!(
        l_d5b.delivery.attempts, 0,
        "release() does not count an attempt"
    );
    assert_eq!(
        get_delivery(store, &a, &d5).await.attempts,
        0,
        "release() does not count an attempt"
    );
    assert!(
        !store
            .finish(&l_d5, LeaseOutcome::Succeeded, q + secs(91))
            .await
            .expect("finish"),
        "finish() of a released lease returns false"
    );
    assert!(
        store
            .finish(
                &l_d5b,
                LeaseOutcome::Retry {
                    next_attempt_at: q + secs(200),
                    error: "timeout".into(),
                },
                q + secs(91),
            )
            .await
            .expect("finish"),
        "finish() with the current lease returns true"
    );

    // Order and limit over several due deliveries.
    let d6 = delivery(&a, &e.id, None, q + secs(7), q + secs(150));
    let d7 = delivery(&a, &e.id, None, q + secs(5), q + secs(160));
    let d8 = delivery(&a, &e.id, None, q + secs(6), q + secs(170));
    store
        .enqueue(&[d8.clone(), d6.clone(), d7.clone()])
        .await
        .expect("enqueue");
    let first = lease(store, q + secs(300), 2, 60).await;
    assert_eq!(
        lease_ids(&first),
        vec![d1.id.as_str(), d6.id.as_str()],
        "lease() hands out the oldest due first (by due time, not creation or enqueue order), at most `limit`"
    );
    let second = lease(store, q + secs(300), 2, 60).await;
    assert_eq!(
        lease_ids(&second),
        vec![d7.id.as_str(), d8.id.as_str()],
        "the next lease() continues with the next oldest due"
    );
    let third = lease(store, q + secs(300), 10, 60).await;
    assert_eq!(
        lease_ids(&third),
        vec![d5.id.as_str()],
        "a retried delivery is handed out once its retry is due"
    );
    assert!(
        lease(store, q + secs(300), 10, 60).await.is_empty(),
        "nothing else is due"
    );
    let l_d1b = first.into_iter().next().expect("d1's lease");
    assert_eq!(
        l_d1b.delivery.attempts, 1,
        "a lease carries the attempts made before"
    );

    // Killed while leased: the lease can no longer be finished.
    assert_eq!(
        store
            .kill_pending(&a, &e.id, "webhook disabled", q + secs(301))
            .await
            .expect("kill_pending"),
        6,
        "kill_pending() counts pending deliveries, leased ones included"
    );
    assert!(
        !store
            .finish(
                &l_d1b,
                LeaseOutcome::Retry {
                    next_attempt_at: q + secs(400),
                    error: "HTTP 500".into(),
                },
                q + secs(302),
            )
            .await
            .expect("finish"),
        "finish() of a lease whose delivery was killed meanwhile returns false"
    );
    let got = get_delivery(store, &a, &d1).await;
    assert_eq!(
        (got.state, got.attempts, got.last_error.as_deref()),
        (DeliveryState::Dead, 1, Some("webhook disabled")),
        "a refused finish() leaves the dead letter as it was"
    );

    // A succeeded delivery redelivered is leased again with its message id.
    let re = store
        .redeliver(&a, &d2.id, q + secs(500))
        .await
        .expect("redeliver");
    assert_same_message(&re, &d2, "redeliver() of a succeeded delivery");
    assert_eq!(
        (re.state, re.next_attempt_at),
        (DeliveryState::Pending, q + secs(500)),
        "redeliver() of a succeeded delivery: pending, due now"
    );
    let l_re = lease(store, q + secs(500), 10, 60).await;
    assert_eq!(
        lease_ids(&l_re),
        vec![d2.id.as_str()],
        "a redelivered delivery is handed out"
    );
    let l_re = l_re.into_iter().next().expect("one lease");
    assert_eq!(
        l_re.delivery.message_id, d2.message_id,
        "a redelivery keeps the message id"
    );
    let before = l_re.delivery.attempts;
    assert!(
        store
            .finish(&l_re, LeaseOutcome::Succeeded, q + secs(501))
            .await
            .expect("finish"),
        "finish() of a redelivery"
    );
    assert_eq!(
        get_delivery(store, &a, &d2).await.attempts,
        before + 1,
        "finish() adds one attempt"
    );

    assert!(
        next_due().await.is_none_or(|t| t >= base()),
        "next_due() is None once this check's deliveries are all finished (other checks only enqueue from 2030 on)"
    );
}

/// [`delivery`](super::QueueStore::delivery) and [`deliveries`](super::QueueStore::deliveries):
/// a delivery reads back as enqueued; listing is newest first (by `created_at`) and filters
/// by endpoint, state, `since` (inclusive) and limit (0: the default of 100), alone and
/// combined; enqueueing an id that exists is a conflict; isolation.
pub async fn delivery_listing<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let e1 = endpoint(&a, EndpointKind::Outbound, t0);
    let e2 = endpoint(&a, EndpointKind::Outbound, t0);
    let eb = endpoint(&b, EndpointKind::Outbound, t0);
    for e in [&e1, &e2, &eb] {
        store.insert_endpoint(e).await.expect("insert_endpoint");
    }
    let due = t0 + secs(86_400);
    let d1 = delivery(&a, &e1.id, None, t0, due);
    let d2 = delivery(&a, &e2.id, None, t0 + secs(10), due);
    let d3 = delivery(&a, &e1.id, None, t0 + secs(20), due);
    let d4 = delivery(&a, &e1.id, None, t0 + secs(30), due);
    let db = delivery(&b, &eb.id, None, t0 + secs(15), due);
    store
        .enqueue(&[d3.clone(), d1.clone()])
        .await
        .expect("enqueue");
    store
        .kill_pending(&a, &e1.id, "disabled", t0 + secs(25))
        .await
        .expect("kill_pending");
    store
        .enqueue(&[d4.clone(), d2.clone(), db.clone()])
        .await
        .expect("enqueue");

    assert_eq!(
        get_delivery(store, &a, &d4).await,
        d4,
        "delivery() returns the delivery as enqueued, payload byte for byte"
    );
    let acct = &a;
    let list = move |filter: DeliveryFilter| async move {
        store.deliveries(acct, &filter).await.expect("deliveries")
    };
    let ids = |v: &[&Delivery]| {
        v.iter()
            .map(|d| d.id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let got = list(DeliveryFilter::default()).await;
    assert_eq!(
        delivery_ids(&got),
        ids(&[&d4, &d3, &d2, &d1]),
        "deliveries() lists the account's deliveries newest first (by created_at); limit 0 is the default"
    );
    assert_eq!(got[0], d4, "deliveries() returns whole records");
    let of_e1 = DeliveryFilter {
        endpoint_id: Some(e1.id.clone()),
        ..DeliveryFilter::default()
    };
    assert_eq!(
        delivery_ids(&list(of_e1.clone()).await),
        ids(&[&d4, &d3, &d1]),
        "deliveries() filtered by endpoint"
    );
    assert_eq!(
        delivery_ids(
            &list(DeliveryFilter {
                state: Some(DeliveryState::Dead),
                ..DeliveryFilter::default()
            })
            .await
        ),
        ids(&[&d3, &d1]),
        "deliveries() filtered by state (dead)"
    );
    assert_eq!(
        delivery_ids(
            &list(DeliveryFilter {
                state: Some(DeliveryState::Pending),
                ..DeliveryFilter::default()
            })
            .await
        ),
        ids(&[&d4, &d2]),
        "deliveries() filtered by state (pending)"
    );
    assert!(
        list(DeliveryFilter {
            state: Some(DeliveryState::Succeeded),
            ..DeliveryFilter::default()
        })
        .await
        .is_empty(),
        "deliveries() filtered by a state none has"
    );
    assert_eq!(
        delivery_ids(
            &list(DeliveryFilter {
                since: Some(t0 + secs(10)),
                ..DeliveryFilter::default()
            })
            .await
        ),
        ids(&[&d4, &d3, &d2]),
        "deliveries() filtered by since: created at or after"
    );
    assert_eq!(
        delivery_ids(
            &list(DeliveryFilter {
                limit: 2,
                ..DeliveryFilter::default()
            })
            .await
        ),
        ids(&[&d4, &d3]),
        "deliveries() returns at most `limit`, the newest"
    );
    assert_eq!(
        delivery_ids(
            &list(DeliveryFilter {
                endpoint_id: Some(e1.id.clone()),
                state: Some(DeliveryState::Dead),
                since: Some(t0 + secs(10)),
                limit: 5,
            })
            .await
        ),
        ids(&[&d3]),
        "deliveries() with every filter at once"
    );
    assert_eq!(
        delivery_ids(
            &list(DeliveryFilter {
                endpoint_id: Some(e1.id.clone()),
                limit: 1,
                ..DeliveryFilter::default()
            })
            .await
        ),
        ids(&[&d4]),
        "deliveries() applies the limit after the filters"
    );

    // Duplicate ids.
    let mut dup = d4.clone();
    dup.event_type = "call.completed".into();
    assert_conflict(
        store.enqueue(std::slice::from_ref(&dup)).await,
        "enqueue() of a delivery id that exists",
    );
    assert_eq!(
        get_delivery(store, &a, &d4).await,
        d4,
        "a refused enqueue does not overwrite the delivery"
    );

    // Isolation.
    assert_eq!(
        delivery_ids(
            &store
                .deliveries(&b, &DeliveryFilter::default())
                .await
                .expect("deliveries")
        ),
        ids(&[&db]),
        "deliveries() lists only the account's own deliveries"
    );
    assert!(
        store
            .deliveries(&b, &of_e1)
            .await
            .expect("deliveries")
            .is_empty(),
        "deliveries() of another account's endpoint lists nothing"
    );
    assert_not_found(
        store.delivery(&b, &d1.id).await,
        "delivery() of another account's delivery",
    );
    assert_not_found(
        store.delivery(&a, &db.id).await,
        "delivery() of another account's delivery",
    );
    assert_not_found(
        store
            .delivery(&a, &DeliveryId::generate().expect("rng"))
            .await,
        "delivery() of an id that does not exist",
    );

    for (acct, e) in [(&a, &e1), (&a, &e2), (&b, &eb)] {
        store
            .kill_pending(acct, &e.id, "conformance cleanup", t0 + secs(60))
            .await
            .expect("kill_pending");
    }
}

/// [`redeliver`](super::QueueStore::redeliver) (a dead letter becomes pending, due now,
/// same message id; a pending delivery is left as it is),
/// [`redeliver_dead_since`](super::QueueStore::redeliver_dead_since) (counts and revives
/// only dead deliveries created at or after `since`, optionally of one endpoint) and
/// [`kill_pending`](super::QueueStore::kill_pending) (counts and kills only the endpoint's
/// pending deliveries), each confined to its account.
pub async fn redelivery_and_kill_pending<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let e1 = endpoint(&a, EndpointKind::Outbound, t0);
    let e2 = endpoint(&a, EndpointKind::Outbound, t0);
    let eb = endpoint(&b, EndpointKind::Outbound, t0);
    for e in [&e1, &e2, &eb] {
        store.insert_endpoint(e).await.expect("insert_endpoint");
    }
    let due = t0 + secs(86_400);
    let d1 = delivery(&a, &e1.id, None, t0, due);
    let d2 = delivery(&a, &e1.id, None, t0 + secs(10), due);
    let d3 = delivery(&a, &e2.id, None, t0 + secs(20), due);
    let d4 = delivery(&a, &e2.id, None, t0 + secs(5), due);
    let db = delivery(&b, &eb.id, None, t0 + secs(20), due);
    store
        .enqueue(&[d1.clone(), d2.clone(), d3.clone(), d4.clone(), db.clone()])
        .await
        .expect("enqueue");

    // kill_pending.
    assert_eq!(
        store
            .kill_pending(&b, &e1.id, "not yours", t0 + secs(49))
            .await
            .expect("kill_pending"),
        0,
        "kill_pending() with another account's endpoint kills nothing"
    );
    assert_eq!(
        get_delivery(store, &a, &d1).await,
        d1,
        "kill_pending() with another account changes nothing"
    );
    assert_eq!(
        store
            .kill_pending(&a, &e1.id, "disabled", t0 + secs(50))
            .await
            .expect("kill_pending"),
        2,
        "kill_pending() counts the endpoint's pending deliveries"
    );
    for d in [&d1, &d2] {
        let got = get_delivery(store, &a, d).await;
        assert_same_message(&got, d, "kill_pending()");
        assert_eq!(
            (got.state, got.attempts, got.last_error.as_deref()),
            (DeliveryState::Dead, 0, Some("disabled")),
            "kill_pending() makes dead letters with the reason as last_error"
        );
    }
    assert_eq!(
        get_delivery(store, &a, &d3).await.state,
        DeliveryState::Pending,
        "kill_pending() leaves other endpoints' deliveries"
    );
    assert_eq!(
        store
            .kill_pending(&a, &e1.id, "again", t0 + secs(51))
            .await
            .expect("kill_pending"),
        0,
        "kill_pending() does not count dead letters"
    );
    assert_eq!(
        get_delivery(store, &a, &d1).await.last_error.as_deref(),
        Some("disabled"),
        "kill_pending() leaves dead letters as they were"
    );
    assert_eq!(
        store
            .kill_pending(&a, &e2.id, "disabled", t0 + secs(52))
            .await
            .expect("kill_pending"),
        2,
        "kill_pending() of the second endpoint"
    );
    let d5 = delivery(&a, &e1.id, None, t0 + secs(30), t0 + secs(2000));
    store
        .enqueue(std::slice::from_ref(&d5))
        .await
        .expect("enqueue");

    // redeliver.
    let re = store
        .redeliver(&a, &d1.id, t0 + secs(100))
        .await
        .expect("redeliver");
    assert_same_message(&re, &d1, "redeliver()");
    assert_eq!(
        (re.state, re.next_attempt_at),
        (DeliveryState::Pending, t0 + secs(100)),
        "redeliver() makes a dead letter pending, due now"
    );
    assert_eq!(
        get_delivery(store, &a, &d1).await,
        re,
        "redeliver() returns the delivery as stored"
    );
    assert_eq!(
        store
            .redeliver(&a, &d5.id, t0 + secs(101))
            .await
            .expect("redeliver"),
        d5,
        "redeliver() leaves a pending delivery as it is"
    );
    assert_eq!(
        get_delivery(store, &a, &d5).await,
        d5,
        "redeliver() leaves a pending delivery as it is"
    );
    assert_not_found(
        store.redeliver(&b, &d2.id, t0 + secs(102)).await,
        "redeliver() of another account's delivery",
    );
    assert_eq!(
        get_delivery(store, &a, &d2).await.state,
        DeliveryState::Dead,
        "a refused redeliver() changes nothing"
    );
    assert_not_found(
        store
            .redeliver(&a, &DeliveryId::generate().expect("rng"), t0 + secs(102))
            .await,
        "redeliver() of an id that does not exist",
    );

    // redeliver_dead_since.
    let dead_since = move |acct: AccountId,
                           endpoint: Option<WebhookId>,
                           since: DateTime<Utc>,
                           now: DateTime<Utc>| async move {
        store
            .redeliver_dead_since(&acct, endpoint.as_ref(), since, now)
            .await
            .expect("redeliver_dead_since")
    };
    assert_eq!(
        dead_since(b.clone(), None, t0, t0 + secs(150)).await,
        0,
        "redeliver_dead_since() of another account revives nothing"
    );
    assert_eq!(
        dead_since(
            a.clone(),
            Some(e2.id.clone()),
            t0 + secs(10),
            t0 + secs(200)
        )
        .await,
        1,
        "redeliver_dead_since() of one endpoint counts its dead letters created at or after since"
    );
    let got = get_delivery(store, &a, &d3).await;
    assert_same_message(&got, &d3, "redeliver_dead_since()");
    assert_eq!(
        (got.state, got.next_attempt_at),
        (DeliveryState::Pending, t0 + secs(200)),
        "redeliver_dead_since() makes them pending, due now"
    );
    assert_eq!(
        get_delivery(store, &a, &d4).await.state,
        DeliveryState::Dead,
        "redeliver_dead_since() leaves dead letters created before since"
    );
    assert_eq!(
        get_delivery(store, &a, &d2).await.state,
        DeliveryState::Dead,
        "redeliver_dead_since() of one endpoint leaves other endpoints' dead letters"
    );
    assert_eq!(
        dead_since(a.clone(), None, t0 + secs(10), t0 + secs(300)).await,
        1,
        "redeliver_dead_since() counts only dead letters (not pending ones), since inclusive"
    );
    let got = get_delivery(store, &a, &d2).await;
    assert_eq!(
        (got.state, got.next_attempt_at, got.message_id),
        (
            DeliveryState::Pending,
            t0 + secs(300),
            d2.message_id.clone()
        ),
        "redeliver_dead_since() revives the dead letter created exactly at since"
    );
    assert_eq!(
        get_delivery(store, &a, &d5).await,
        d5,
        "redeliver_dead_since() leaves pending deliveries as they are"
    );
    assert_eq!(
        dead_since(a.clone(), None, t0, t0 + secs(400)).await,
        1,
        "redeliver_dead_since() with an earlier since"
    );
    assert_eq!(
        get_delivery(store, &a, &d4).await.state,
        DeliveryState::Pending,
        "redeliver_dead_since() revived the older dead letter"
    );
    assert_eq!(
        dead_since(a.clone(), None, t0, t0 + secs(500)).await,
        0,
        "redeliver_dead_since() with nothing dead"
    );
    assert_eq!(
        get_delivery(store, &b, &db).await,
        db,
        "another account's deliveries are untouched"
    );

    // kill_pending again, now over revived deliveries.
    assert_eq!(
        store
            .kill_pending(&a, &e1.id, "off", t0 + secs(600))
            .await
            .expect("kill_pending"),
        3,
        "kill_pending() counts revived and new pending deliveries"
    );
    for d in [&d1, &d2, &d5] {
        let got = get_delivery(store, &a, d).await;
        assert_eq!(
            (got.state, got.last_error.as_deref(), &got.message_id),
            (DeliveryState::Dead, Some("off"), &d.message_id),
            "kill_pending() over revived deliveries"
        );
    }

    for (acct, e) in [(&a, &e2), (&b, &eb)] {
        store
            .kill_pending(acct, &e.id, "conformance cleanup", t0 + secs(700))
            .await
            .expect("kill_pending");
    }
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

/// The delivery log: an endpoint's attempts newest first (by `at`, also when appended out
/// of order), the success filter, the limit, whole records, isolation between endpoints
/// and accounts.
pub async fn delivery_attempt_log<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let e1 = endpoint(&a, EndpointKind::Outbound, t0);
    let e2 = endpoint(&a, EndpointKind::Outbound, t0);
    let eb = endpoint(&b, EndpointKind::Outbound, t0);
    for e in [&e1, &e2, &eb] {
        store.insert_endpoint(e).await.expect("insert_endpoint");
    }
    let a1 = attempt(&a, &e1.id, t0, Some(200));
    let a2 = attempt(&a, &e1.id, t0 + secs(10), Some(500));
    let a3 = attempt(&a, &e1.id, t0 + secs(20), None);
    let mut a4 = attempt(&a, &e1.id, t0 + secs(30), Some(204));
    a4.test = true;
    a4.delivery_id = None;
    let a5 = attempt(&a, &e2.id, t0 + secs(15), Some(200));
    let ab = attempt(&b, &eb.id, t0 + secs(5), Some(410));
    // a2 is appended last, out of time order (its attempt started before a3 and a4).
    for x in [&a1, &a3, &a4, &a5, &ab, &a2] {
        store
            .append_attempt(x.clone())
            .await
            .expect("append_attempt");
    }
    let list = move |acct: AccountId, e: WebhookId, success: Option<bool>, limit: usize| async move {
        store
            .attempts(&acct, &e, success, limit)
            .await
            .expect("attempts")
    };
    assert_eq!(
        list(a.clone(), e1.id.clone(), None, 10).await,
        vec![a4.clone(), a3.clone(), a2.clone(), a1.clone()],
        "attempts() lists the endpoint's attempts newest first (by at), whole records"
    );
    assert_eq!(
        list(a.clone(), e1.id.clone(), Some(true), 10).await,
        vec![a4.clone(), a1.clone()],
        "attempts() filtered to successes"
    );
    assert_eq!(
        list(a.clone(), e1.id.clone(), Some(false), 10).await,
        vec![a3.clone(), a2.clone()],
        "attempts() filtered to failures"
    );
    assert_eq!(
        list(a.clone(), e1.id.clone(), None, 2).await,
        vec![a4.clone(), a3.clone()],
        "attempts() returns at most `limit`, the newest"
    );
    assert_eq!(
        list(a.clone(), e1.id.clone(), Some(false), 1).await,
        vec![a3.clone()],
        "attempts() applies the limit after the success filter"
    );
    assert_eq!(
        list(a.clone(), e2.id.clone(), None, 10).await,
        vec![a5.clone()],
        "attempts() lists only that endpoint's attempts"
    );
    assert!(
        list(b.clone(), e1.id.clone(), None, 10).await.is_empty(),
        "attempts() of another account's endpoint lists nothing"
    );
    assert!(
        list(a.clone(), eb.id.clone(), None, 10).await.is_empty(),
        "attempts() of another account's endpoint lists nothing"
    );
    assert_eq!(
        list(b.clone(), eb.id.clone(), None, 10).await,
        vec![ab],
        "attempts() of the account's own endpoint"
    );
    assert!(
        list(a.clone(), webhook_id(), None, 10).await.is_empty(),
        "attempts() of an endpoint without attempts lists nothing"
    );
}

/// Batched writes, as the worker makes them: `finish_many` applies each lease's outcome as
/// `finish` would and answers per item (a stale lease is `false`, the others still apply);
/// `append_attempts` appends like `append_attempt` (newest first by time in the listing).
pub async fn batched_writes<S: Store + ?Sized>(store: &S) {
    let q = queue_base();
    let a = account();
    let e = endpoint(&a, EndpointKind::Outbound, q);
    store.insert_endpoint(&e).await.expect("insert_endpoint");
    let d1 = delivery(&a, &e.id, None, q, q);
    let d2 = delivery(&a, &e.id, None, q + secs(1), q);
    let d3 = delivery(&a, &e.id, None, q + secs(2), q);
    store
        .enqueue(&[d1.clone(), d2.clone(), d3.clone()])
        .await
        .expect("enqueue");
    let leases = lease(store, q + secs(5), 10, 60).await;
    assert_eq!(leases.len(), 3, "all three are leased");
    let by_id = |d: &Delivery| {
        leases
            .iter()
            .find(|l| l.delivery.id == d.id)
            .cloned()
            .expect("leased")
    };
    let (l1, l2, l3) = (by_id(&d1), by_id(&d2), by_id(&d3));
    let mut stale = l3.clone();
    stale.token = stale.token.wrapping_add(1);
    let retry_at = q + secs(100);
    let held = store
        .finish_many(
            &[
                (&l1, LeaseOutcome::Succeeded),
                (
                    &l2,
                    LeaseOutcome::Retry {
                        next_attempt_at: retry_at,
                        error: "HTTP 500".into(),
                    },
                ),
                (&stale, LeaseOutcome::Succeeded),
            ],
            q + secs(6),
        )
        .await
        .expect("finish_many");
    assert_eq!(
        held,
        vec![true, true, false],
        "finish_many() answers per lease; a stale token is not held"
    );
    let g1 = get_delivery(store, &a, &d1).await;
    assert_eq!(
        (g1.state, g1.attempts),
        (DeliveryState::Succeeded, 1),
        "finish_many() records a success as finish() does"
    );
    let g2 = get_delivery(store, &a, &d2).await;
    assert_eq!(
        (
            g2.state,
            g2.attempts,
            g2.next_attempt_at,
            g2.last_error.as_deref()
        ),
        (DeliveryState::Pending, 1, retry_at, Some("HTTP 500")),
        "finish_many() records a retry as finish() does"
    );
    let g3 = get_delivery(store, &a, &d3).await;
    assert_eq!(
        (g3.state, g3.attempts),
        (DeliveryState::Pending, 0),
        "a stale lease in the batch changes nothing"
    );
    let held = store
        .finish_many(
            &[(
                &l3,
                LeaseOutcome::Dead {
                    error: "gone".into(),
                },
            )],
            q + secs(7),
        )
        .await
        .expect("finish_many");
    assert_eq!(held, vec![true], "the real lease still holds");
    assert_eq!(
        get_delivery(store, &a, &d3).await.state,
        DeliveryState::Dead,
        "finish_many() records a dead letter as finish() does"
    );
    assert_eq!(
        store
            .finish_many(&[], q)
            .await
            .expect("finish_many of nothing"),
        Vec::<bool>::new(),
        "an empty batch is fine"
    );

    let x1 = attempt(&a, &e.id, q, Some(200));
    let x2 = attempt(&a, &e.id, q + secs(10), Some(500));
    let x3 = attempt(&a, &e.id, q + secs(5), None);
    store
        .append_attempts(vec![x1.clone(), x2.clone(), x3.clone()])
        .await
        .expect("append_attempts");
    store
        .append_attempts(Vec::new())
        .await
        .expect("append_attempts of nothing");
    assert_eq!(
        store.attempts(&a, &e.id, None, 10).await.expect("attempts"),
        vec![x2, x3, x1],
        "append_attempts() appends every entry; listed newest first"
    );
    // Leave nothing due in [`queue_leases`]'s era (d2 is pending, retrying).
    store
        .kill_pending(&a, &e.id, "conformance cleanup", q + secs(8))
        .await
        .expect("kill_pending");
}

/// The request log: an account's requests newest first (by `at`, also when appended out of
/// order), the limit, whole records, isolation between accounts, and requests to unknown
/// slugs under the `None` account.
pub async fn request_log<S: Store + ?Sized>(store: &S) {
    let t0 = base();
    let a = account();
    let b = account();
    let r1 = request(Some(&a), t0, 201);
    let r2 = request(Some(&a), t0 + secs(10), 422);
    let r3 = request(Some(&a), t0 + secs(5), 201);
    let rb = request(Some(&b), t0 + secs(7), 201);
    // Unknown slugs share one global log: put this run's entries after anything another run
    // wrote (far in the future, at a random second) and tell them by their slugs.
    let far = Utc
        .with_ymd_and_hms(2900, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + secs(i64::from(random_u32() % 1_000_000_000));
    let u1 = request(None, far, 404);
    let u2 = request(None, far + secs(1), 404);
    for r in [&r1, &u1, &r2, &rb, &u2, &r3] {
        store
            .append_request(r.clone())
            .await
            .expect("append_request");
    }
    let list = move |acct: Option<AccountId>, limit: usize| async move {
        store
            .requests(acct.as_ref(), limit)
            .await
            .expect("requests")
    };
    assert_eq!(
        list(Some(a.clone()), 10).await,
        vec![r2.clone(), r3.clone(), r1.clone()],
        "requests() lists the account's requests newest first (by at), whole records"
    );
    assert_eq!(
        list(Some(a.clone()), 2).await,
        vec![r2.clone(), r3.clone()],
        "requests() returns at most `limit`, the newest"
    );
    assert_eq!(
        list(Some(b.clone()), 10).await,
        vec![rb],
        "requests() lists only the account's own requests"
    );
    assert!(
        list(Some(account()), 10).await.is_empty(),
        "requests() of an account without requests lists nothing"
    );

    let unknown = list(None, 1000).await;
    assert!(
        unknown.iter().all(|r| r.account.is_none()),
        "requests(None) lists only requests to unknown slugs"
    );
    let ours: Vec<&RequestLogEntry> = unknown
        .iter()
        .filter(|r| r.slug == u1.slug || r.slug == u2.slug)
        .collect();
    assert_eq!(
        ours,
        vec![&u2, &u1],
        "requests(None) lists requests to unknown slugs newest first, whole records"
    );
    assert!(
        unknown.windows(2).all(|w| w[0].at >= w[1].at),
        "requests(None) is ordered newest first"
    );
    let newest = list(None, 1).await;
    assert_eq!(newest.len(), 1, "requests(None) returns at most `limit`");
    assert!(
        newest[0].at >= u2.at,
        "requests(None) with a limit returns the newest"
    );
    assert!(
        !list(Some(a.clone()), 10)
            .await
            .iter()
            .any(|r| r.slug == u1.slug),
        "an account's requests do not include requests to unknown slugs"
    );
}

/// `record_health` and `disable_endpoint` change only the health fields (a concurrent edit
/// of the URL is not lost), answer `NotFound` across accounts.
pub async fn endpoint_health<S: Store + ?Sized>(store: &S) {
    let a = account();
    let b = account();
    let t0 = base() + secs(7_000);
    let e = endpoint(&a, EndpointKind::Outbound, t0);
    store.insert_endpoint(&e).await.expect("insert_endpoint");

    let failed = store
        .record_health(&a, &e.id, false, t0 + secs(1))
        .await
        .expect("record_health");
    assert_eq!(
        failed.failing_since,
        Some(t0 + secs(1)),
        "a first failure sets failing_since"
    );
    let again = store
        .record_health(&a, &e.id, false, t0 + secs(2))
        .await
        .expect("record_health");
    assert_eq!(
        again.failing_since,
        Some(t0 + secs(1)),
        "later failures keep the first"
    );
    let mut edited = store.endpoint(&a, &e.id).await.expect("endpoint");
    edited.url = "https://edited.example.com/".into();
    store
        .update_endpoint(&edited)
        .await
        .expect("update_endpoint");
    let ok = store
        .record_health(&a, &e.id, true, t0 + secs(3))
        .await
        .expect("record_health");
    assert_eq!(
        (ok.failing_since, ok.last_success_at),
        (None, Some(t0 + secs(3))),
        "a success clears failing_since and sets last_success_at"
    );
    assert_eq!(
        ok.url, "https://edited.example.com/",
        "record_health keeps other fields"
    );

    store
        .disable_endpoint(&a, &e.id, "gone", t0 + secs(4))
        .await
        .expect("disable_endpoint");
    let off = store.endpoint(&a, &e.id).await.expect("endpoint");
    assert!(!off.enabled, "disable_endpoint disables");
    assert_eq!(off.disabled_reason.as_deref(), Some("gone"));
    assert_eq!(
        off.url, "https://edited.example.com/",
        "disable_endpoint keeps other fields"
    );
    assert_eq!(off.last_success_at, Some(t0 + secs(3)));

    assert_not_found(
        store.record_health(&b, &e.id, true, t0).await,
        "record_health of another account's endpoint",
    );
    assert_not_found(
        store.disable_endpoint(&b, &e.id, "x", t0).await,
        "disable_endpoint of another account's endpoint",
    );
    assert!(!store.endpoint(&a, &e.id).await.expect("endpoint").enabled);
}

/// `Idempotency-Key` claims: the first claim wins, a second sees it in flight, a finished
/// one replays its answer until it expires; keys are scoped by account and webhook.
pub async fn idempotency_keys<S: Store + ?Sized>(store: &S) {
    use super::{IdempotencyClaim, StoredResponse};
    let a = account();
    let b = account();
    let w = webhook_id();
    let w2 = webhook_id();
    let t0 = base() + secs(8_000);
    let ttl = secs(86_400);
    let claim = |acc: AccountId, hook: WebhookId, key: &'static str, at: DateTime<Utc>| async move {
        store
            .claim_idempotent(&acc, &hook, key, at, at + ttl)
            .await
            .expect("claim_idempotent")
    };
    assert_eq!(
        claim(a.clone(), w.clone(), "k1", t0).await,
        IdempotencyClaim::New,
        "first claim"
    );
    assert_eq!(
        claim(a.clone(), w.clone(), "k1", t0 + secs(1)).await,
        IdempotencyClaim::InFlight,
        "a second claim while the first is handled"
    );
    assert_eq!(
        claim(b.clone(), w.clone(), "k1", t0).await,
        IdempotencyClaim::New,
        "another account's key is separate"
    );
    assert_eq!(
        claim(a.clone(), w2.clone(), "k1", t0).await,
        IdempotencyClaim::New,
        "another webhook's key is separate"
    );
    let answer = StoredResponse {
        status: 201,
        body: bytes::Bytes::from_static(br#"{"success":true}"#),
        call_id: Some(CallId::new("call_k1")),
    };
    store
        .finish_idempotent(&a, &w, "k1", &answer)
        .await
        .expect("finish_idempotent");
    assert_eq!(
        claim(a.clone(), w.clone(), "k1", t0 + secs(60)).await,
        IdempotencyClaim::Done(answer.clone()),
        "a finished key replays its answer"
    );
    assert_eq!(
        claim(a.clone(), w.clone(), "k1", t0 + ttl + secs(1)).await,
        IdempotencyClaim::New,
        "an expired key is new again"
    );
    assert_eq!(
        claim(a.clone(), w.clone(), "k2", t0).await,
        IdempotencyClaim::New
    );
    store
        .abandon_idempotent(&a, &w, "k2")
        .await
        .expect("abandon_idempotent");
    assert_eq!(
        claim(a.clone(), w.clone(), "k2", t0 + secs(1)).await,
        IdempotencyClaim::New,
        "an abandoned key can be claimed again"
    );
}
