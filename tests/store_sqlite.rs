//! The SQLite backend: the storage conformance suite (in memory and on files in WAL mode),
//! durability across reopening, migrations, leases held by a process that died, several
//! stores on one file, retention and corrupt data.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use atllas_webhooks::campaign::{Campaign, CampaignKind, CampaignSettings};
use atllas_webhooks::ids::{
    AccountId, CallId, DeliveryId, MessageId, WebhookId, new_slug, random_bytes,
};
use atllas_webhooks::model::{Call, CallStatus, Contact, HttpMethod};
use atllas_webhooks::store::conformance;
use atllas_webhooks::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use atllas_webhooks::store::{
    CallOrigin, CallRecord, CallState, CallStore, Delivery, DeliveryAttempt, DeliveryFilter,
    DeliveryState, Endpoint, EndpointKind, IdempotencyClaim, IdempotencyStore, InboundWebhook,
    LeaseOutcome, LogRetention, LogStore, QueueStore, RequestLogEntry, RequestOutcome, Store,
    StoreError, StoredResponse, WebhookStore,
};
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};

// ---------------------------------------------------------------------------------------
// The conformance suite
// ---------------------------------------------------------------------------------------

/// One test per check, each on a fresh database in memory.
mod in_memory {
    atllas_webhooks::store_conformance_tests!(|| async {
        atllas_webhooks::store::sqlite::SqliteStore::open_in_memory().expect("open in memory")
    });
}

/// A directory of database files under the system temp dir, removed (with every `-wal`
/// and `-shm` file in it) when dropped, also when a test panics.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let mut b = [0u8; 8];
        random_bytes(&mut b).expect("the OS random generator");
        let dir = std::env::temp_dir().join(format!(
            "atllas-sqlite-{tag}-{}-{:016x}",
            std::process::id(),
            u64::from_be_bytes(b)
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every check in turn, each on a fresh database file in WAL mode.
#[tokio::test]
async fn conformance_on_files() {
    let dir = TempDir::new("conformance");
    let n = AtomicUsize::new(0);
    let (dir_ref, n_ref) = (&dir, &n);
    conformance::run_all(|| async move {
        let i = n_ref.fetch_add(1, Ordering::Relaxed);
        SqliteStore::open(dir_ref.file(&format!("check-{i}.db"))).expect("open")
    })
    .await;
    assert!(
        n.load(Ordering::Relaxed) >= 13,
        "every check ran on its own file"
    );
    assert!(dir.file("check-0.db").exists(), "the databases are files");
}

/// The checks also take a trait object.
#[tokio::test]
async fn checks_take_a_dyn_store() {
    let store = SqliteStore::open_in_memory().expect("open");
    let store: &dyn Store = &store;
    conformance::queue_leases(store).await;
    conformance::request_log(store).await;
}

/// Several checks side by side on one file, from several threads, as against a shared
/// database; then again over what they left behind, from a store opened anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_share_one_file() {
    let dir = TempDir::new("shared");
    let path = dir.file("shared.db");
    let store = Arc::new(SqliteStore::open(&path).expect("open"));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            conformance::run_shareable(&*s).await;
            if i == 0 {
                conformance::queue_leases(&*s).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("a check panicked");
    }
    drop(store);
    let again = SqliteStore::open(&path).expect("reopen");
    conformance::queue_leases(&again).await;
    conformance::request_log(&again).await;
    conformance::delivery_listing(&again).await;
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid date")
}

fn secs(s: i64) -> Duration {
    Duration::seconds(s)
}

fn account() -> AccountId {
    AccountId::generate().expect("rng")
}

fn endpoint(account: &AccountId, at: DateTime<Utc>) -> Endpoint {
    Endpoint {
        id: WebhookId::generate().expect("rng"),
        account: account.clone(),
        kind: EndpointKind::Outbound,
        url: "https://hooks.example.com/in".into(),
        method: HttpMethod::Post,
        headers: Vec::new(),
        secrets: Vec::new(),
        managed_by: None,
        enabled: true,
        disabled_reason: None,
        last_success_at: None,
        failing_since: None,
        created_at: at,
        updated_at: at,
    }
}

fn delivery(account: &AccountId, endpoint: &WebhookId, due: DateTime<Utc>) -> Delivery {
    let id = DeliveryId::generate().expect("rng");
    Delivery {
        payload: Bytes::from(format!(r#"{{"type":"call.finished","id":"{id}"}}"#)),
        id,
        account: account.clone(),
        endpoint_id: endpoint.clone(),
        message_id: MessageId::generate().expect("rng"),
        event_type: "call.finished".into(),
        call_id: None,
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        created_at: due,
        updated_at: due,
    }
}

fn attempt(account: &AccountId, endpoint: &WebhookId, at: DateTime<Utc>) -> DeliveryAttempt {
    DeliveryAttempt {
        account: account.clone(),
        endpoint_id: endpoint.clone(),
        delivery_id: None,
        message_id: MessageId::generate().expect("rng"),
        event_type: "call.finished".into(),
        attempt: 1,
        at,
        status: Some(200),
        error: None,
        error_message: None,
        response_body: "ok".into(),
        duration_ms: 12,
        success: true,
        test: false,
    }
}

fn request(account: Option<&AccountId>, at: DateTime<Utc>) -> RequestLogEntry {
    RequestLogEntry {
        account: account.cloned(),
        webhook_id: None,
        slug: Some(new_slug().expect("rng")),
        slug_known: account.is_some(),
        at,
        status: 201,
        outcome: RequestOutcome::Placed,
        code: None,
        message: "placed".into(),
        ignored_keys: Vec::new(),
        call_id: None,
    }
}

/// A raw connection to the same file, for what the store itself never does.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open the file directly")
}

// ---------------------------------------------------------------------------------------
// Durability and migrations
// ---------------------------------------------------------------------------------------

/// Everything written is there after the store is dropped and the file opened again, and
/// the deliveries are leasable.
#[tokio::test]
async fn everything_survives_reopening() {
    let dir = TempDir::new("durable");
    let path = dir.file("durable.db");
    let a = account();
    let t = t0();

    let camp = Campaign::new(
        a.clone(),
        "Durable",
        CampaignKind::Inbound,
        CampaignSettings {
            prompt: Some("Qualify the lead.".into()),
            ..CampaignSettings::default()
        },
        t,
    )
    .expect("campaign");
    let hook = InboundWebhook {
        id: WebhookId::generate().expect("rng"),
        account: a.clone(),
        slug: new_slug().expect("rng"),
        campaign_id: Some(camp.id.clone()),
        enabled: true,
        response_endpoint: None,
        created_at: t,
        updated_at: t,
    };
    let e = endpoint(&a, t);
    let call = CallRecord {
        id: CallId::generate().expect("rng"),
        account: a.clone(),
        campaign_id: Some(camp.id.clone()),
        settings_version: 1,
        origin: CallOrigin::InboundWebhook {
            webhook: hook.id.clone(),
        },
        contact: Contact::new("+15551234567"),
        state: CallState::Dialing,
        cancel_reason: None,
        result: None,
        action_items: Vec::new(),
        created_at: t,
        updated_at: t,
    };
    let result = Call::new(call.id.as_str(), CallStatus::Finished).with_summary("Done.");
    let d1 = delivery(&a, &e.id, t + secs(10));
    let d2 = delivery(&a, &e.id, t + secs(20));
    let d3 = delivery(&a, &e.id, t + secs(30));
    let at = attempt(&a, &e.id, t + secs(5));
    let req = request(Some(&a), t + secs(6));
    let answer = StoredResponse {
        status: 201,
        body: Bytes::from_static(b"{\"success\":true}"),
        call_id: Some(call.id.clone()),
    };

    {
        let store = SqliteStore::open(&path).expect("open");
        store.insert_campaign(&camp).await.expect("insert_campaign");
        store.insert_inbound(&hook).await.expect("insert_inbound");
        store.insert_endpoint(&e).await.expect("insert_endpoint");
        store.insert_call(&call).await.expect("insert_call");
        store
            .complete_call(
                &a,
                &call.id,
                &result,
                &["Send pricing".to_string()],
                &[d1.clone(), d2.clone()],
                t + secs(9),
            )
            .await
            .expect("complete_call");
        store
            .enqueue(std::slice::from_ref(&d3))
            .await
            .expect("enqueue");
        store
            .append_attempt(at.clone())
            .await
            .expect("append_attempt");
        store
            .append_request(req.clone())
            .await
            .expect("append_request");
        assert_eq!(
            store
                .claim_idempotent(&a, &hook.id, "k", t, t + secs(86_400))
                .await
                .expect("claim"),
            IdempotencyClaim::New
        );
        store
            .finish_idempotent(&a, &hook.id, "k", &answer)
            .await
            .expect("finish_idempotent");
        // Dropped here without any shutdown step, as a killed process would leave it.
    }

    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.campaign(&a, &camp.id).await.expect("campaign"), camp);
    assert_eq!(
        store
            .settings_version(&a, &camp.id, 1)
            .await
            .expect("settings_version"),
        camp.current_version()
    );
    assert_eq!(
        store.inbound_by_slug(&hook.slug).await.expect("by slug"),
        Some(hook.clone())
    );
    assert_eq!(store.endpoint(&a, &e.id).await.expect("endpoint"), e);
    let got = store.call(&a, &call.id).await.expect("call");
    assert_eq!(
        (got.state, got.result, got.action_items),
        (
            CallState::Completed,
            Some(Box::new(result)),
            vec!["Send pricing".to_string()]
        )
    );
    for d in [&d1, &d2, &d3] {
        assert_eq!(&store.delivery(&a, &d.id).await.expect("delivery"), d);
    }
    assert_eq!(
        store.attempts(&a, &e.id, None, 10).await.expect("attempts"),
        vec![at]
    );
    assert_eq!(
        store.requests(Some(&a), 10).await.expect("requests"),
        vec![req]
    );
    assert_eq!(
        store
            .claim_idempotent(&a, &hook.id, "k", t + secs(1), t + secs(86_400))
            .await
            .expect("claim"),
        IdempotencyClaim::Done(answer)
    );

    let leases = store
        .lease(t + secs(60), 10, StdDuration::from_secs(30))
        .await
        .expect("lease");
    let ids: Vec<&DeliveryId> = leases.iter().map(|l| &l.delivery.id).collect();
    assert_eq!(
        ids,
        vec![&d1.id, &d2.id, &d3.id],
        "leasable, oldest due first"
    );
    for l in &leases {
        assert!(
            store
                .finish(l, LeaseOutcome::Succeeded, t + secs(61))
                .await
                .expect("finish")
        );
    }
}

/// Opening a database twice migrates it once; the data stays.
#[tokio::test]
async fn migrations_are_idempotent() {
    let dir = TempDir::new("migrate");
    let path = dir.file("twice.db");
    let a = account();
    let e = endpoint(&a, t0());
    {
        let first = SqliteStore::open(&path).expect("first open");
        first.insert_endpoint(&e).await.expect("insert_endpoint");
        // A second store on the same file while the first is open.
        let second = SqliteStore::open(&path).expect("second open, first still open");
        assert_eq!(second.endpoint(&a, &e.id).await.expect("endpoint"), e);
    }
    let third = SqliteStore::open(&path).expect("third open");
    assert_eq!(third.endpoint(&a, &e.id).await.expect("endpoint"), e);
    drop(third);

    let conn = raw(&path);
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, SqliteStore::schema_version());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal", "WAL mode is persistent in the file");
    let tokens: i64 = conn
        .query_row("SELECT count(*) FROM queue_meta", [], |r| r.get(0))
        .expect("queue_meta");
    assert_eq!(tokens, 1, "the token counter is seeded once");
}

/// A database migrated by a newer build is refused, not guessed at.
#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new("newer");
    let path = dir.file("newer.db");
    drop(SqliteStore::open(&path).expect("open"));
    raw(&path)
        .pragma_update(None, "user_version", SqliteStore::schema_version() + 1)
        .expect("set user_version");
    match SqliteStore::open(&path) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

/// `synchronous=FULL` can be chosen; the store works the same.
#[tokio::test]
async fn full_synchronous_works() {
    let dir = TempDir::new("full");
    let store = SqliteStore::open_with(
        dir.file("full.db"),
        SqliteOptions::default().with_synchronous(Synchronous::Full),
    )
    .expect("open");
    conformance::queue_leases(&store).await;
}

// ---------------------------------------------------------------------------------------
// Leases across processes
// ---------------------------------------------------------------------------------------

/// A lease held by a process that died (its store dropped without finishing) expires, and
/// a store opened anew on the file hands the delivery out again with a different token;
/// the dead holder's token can no longer finish it.
#[tokio::test]
async fn a_dead_holders_lease_expires() {
    let dir = TempDir::new("dead");
    let path = dir.file("queue.db");
    let a = account();
    let t = Utc
        .with_ymd_and_hms(2002, 6, 1, 0, 0, 0)
        .single()
        .expect("date");
    let e = endpoint(&a, t);
    let d = delivery(&a, &e.id, t);

    let old = {
        let store_a = SqliteStore::open(&path).expect("open A");
        store_a.insert_endpoint(&e).await.expect("insert_endpoint");
        store_a
            .enqueue(std::slice::from_ref(&d))
            .await
            .expect("enqueue");
        let mut leases = store_a
            .lease(t, 10, StdDuration::from_secs(1))
            .await
            .expect("lease A");
        assert_eq!(leases.len(), 1);
        leases.remove(0)
        // A is dropped here without finishing.
    };

    let store_b = SqliteStore::open(&path).expect("open B");
    assert!(
        store_b
            .lease(t, 10, StdDuration::from_secs(30))
            .await
            .expect("lease B")
            .is_empty(),
        "the lease still holds until it ends"
    );
    assert_eq!(
        store_b.next_due().await.expect("next_due"),
        Some(t + secs(1)),
        "the dead holder's lease end is when it is due again"
    );
    let leases = store_b
        .lease(t + secs(2), 10, StdDuration::from_secs(30))
        .await
        .expect("lease B");
    assert_eq!(leases.len(), 1, "the expired lease is handed out again");
    let new = &leases[0];
    assert_eq!(new.delivery.id, d.id);
    assert_ne!(new.token, old.token, "a new token, never the dead holder's");
    assert!(
        new.token > old.token,
        "tokens keep counting across restarts"
    );
    assert!(
        !store_b
            .finish(&old, LeaseOutcome::Succeeded, t + secs(3))
            .await
            .expect("finish"),
        "the dead holder's token is stale"
    );
    assert!(
        store_b
            .finish(new, LeaseOutcome::Succeeded, t + secs(3))
            .await
            .expect("finish"),
        "the new holder finishes it"
    );
    assert_eq!(
        store_b
            .delivery(&a, &d.id)
            .await
            .expect("delivery")
            .attempts,
        1
    );
}

/// Two stores on one file (as two processes would be) leasing at once never hand out the
/// same delivery twice, and every token is unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_never_double_lease() {
    let dir = TempDir::new("race");
    let path = dir.file("race.db");
    let a = account();
    let t = Utc
        .with_ymd_and_hms(2003, 1, 1, 0, 0, 0)
        .single()
        .expect("date");
    let e = endpoint(&a, t);
    let first = SqliteStore::open(&path).expect("open");
    let second = SqliteStore::open(&path).expect("open");
    first.insert_endpoint(&e).await.expect("insert_endpoint");
    let all: Vec<Delivery> = (0..200)
        .map(|i| delivery(&a, &e.id, t + Duration::milliseconds(i)))
        .collect();
    first.enqueue(&all).await.expect("enqueue");

    let mut tasks = Vec::new();
    for store in [first.clone(), second.clone(), first.clone(), second.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let leases = store
                    .lease(t + secs(1), 7, StdDuration::from_secs(3600))
                    .await
                    .expect("lease");
                if leases.is_empty() {
                    return got;
                }
                got.extend(leases.into_iter().map(|l| (l.delivery.id, l.token)));
            }
        }));
    }
    let mut ids = HashSet::new();
    let mut tokens = HashSet::new();
    for task in tasks {
        for (id, token) in task.await.expect("a leasing task panicked") {
            assert!(ids.insert(id), "a delivery was leased twice");
            assert!(tokens.insert(token), "a token was handed out twice");
        }
    }
    assert_eq!(ids.len(), all.len(), "every delivery was leased once");
    assert_eq!(
        first
            .kill_pending(&a, &e.id, "cleanup", t + secs(2))
            .await
            .expect("kill_pending"),
        200
    );
}

// ---------------------------------------------------------------------------------------
// Retention, conflicts, corrupt data
// ---------------------------------------------------------------------------------------

/// The logs keep the newest entries up to the retention, per endpoint and per account.
#[tokio::test]
async fn retention_bounds_the_logs() {
    let dir = TempDir::new("retention");
    let path = dir.file("logs.db");
    let store = SqliteStore::open_with(
        &path,
        SqliteOptions::default().with_retention(LogRetention {
            attempts_per_endpoint: 3,
            requests_per_account: 2,
        }),
    )
    .expect("open");
    let a = account();
    let b = account();
    let e1 = WebhookId::generate().expect("rng");
    let e2 = WebhookId::generate().expect("rng");
    let t = t0();
    // Out of time order: retention goes by time, not by when appended.
    for s in [5, 1, 9, 3, 7, 2] {
        store
            .append_attempt(attempt(&a, &e1, t + secs(s)))
            .await
            .expect("append_attempt");
    }
    store
        .append_attempt(attempt(&a, &e2, t))
        .await
        .expect("append_attempt");
    let kept: Vec<DateTime<Utc>> = store
        .attempts(&a, &e1, None, 100)
        .await
        .expect("attempts")
        .iter()
        .map(|x| x.at)
        .collect();
    assert_eq!(kept, vec![t + secs(9), t + secs(7), t + secs(5)]);
    assert_eq!(
        store
            .attempts(&a, &e2, None, 100)
            .await
            .expect("attempts")
            .len(),
        1,
        "retention is per endpoint"
    );

    for s in [1, 4, 2, 3] {
        store
            .append_request(request(Some(&a), t + secs(s)))
            .await
            .expect("append_request");
        store
            .append_request(request(Some(&b), t + secs(s)))
            .await
            .expect("append_request");
    }
    for acct in [&a, &b] {
        let kept: Vec<DateTime<Utc>> = store
            .requests(Some(acct), 100)
            .await
            .expect("requests")
            .iter()
            .map(|r| r.at)
            .collect();
        assert_eq!(kept, vec![t + secs(4), t + secs(3)], "per account");
    }
    drop(store);
    let conn = raw(&path);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM delivery_attempts", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 4, "pruned rows are deleted, not hidden");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM request_log", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 4);
}

/// A taken slug is a conflict that says so.
#[tokio::test]
async fn a_taken_slug_is_a_conflict() {
    let store = SqliteStore::open_in_memory().expect("open");
    let t = t0();
    let hook = |account: &AccountId, slug: &str| InboundWebhook {
        id: WebhookId::generate().expect("rng"),
        account: account.clone(),
        slug: slug.into(),
        campaign_id: None,
        enabled: true,
        response_endpoint: None,
        created_at: t,
        updated_at: t,
    };
    let slug = new_slug().expect("rng");
    store
        .insert_inbound(&hook(&account(), &slug))
        .await
        .expect("insert_inbound");
    assert_eq!(
        store.insert_inbound(&hook(&account(), &slug)).await,
        Err(StoreError::Conflict("slug is taken".into()))
    );
}

/// Stored data that does not decode is `Corrupt`, never a panic.
#[tokio::test]
async fn corrupt_rows_are_reported() {
    let dir = TempDir::new("corrupt");
    let path = dir.file("corrupt.db");
    let store = SqliteStore::open(&path).expect("open");
    let a = account();
    let e = endpoint(&a, t0());
    let d = delivery(&a, &e.id, t0());
    store.insert_endpoint(&e).await.expect("insert_endpoint");
    store
        .enqueue(std::slice::from_ref(&d))
        .await
        .expect("enqueue");

    let conn = raw(&path);
    conn.execute(
        "UPDATE endpoints SET headers = '{not json' WHERE id = ?1",
        [e.id.as_str()],
    )
    .expect("break the headers");
    conn.execute(
        "UPDATE deliveries SET created_at = ?2 WHERE id = ?1",
        rusqlite::params![d.id.as_str(), i64::MAX],
    )
    .expect("break the time");
    drop(conn);

    assert!(
        matches!(store.endpoint(&a, &e.id).await, Err(StoreError::Corrupt(_))),
        "bad JSON is Corrupt"
    );
    assert!(
        matches!(store.all_endpoints().await, Err(StoreError::Corrupt(_))),
        "bad JSON in a listing is Corrupt"
    );
    assert!(
        matches!(store.delivery(&a, &d.id).await, Err(StoreError::Corrupt(_))),
        "an out-of-range time is Corrupt"
    );
    assert!(
        matches!(
            store.deliveries(&a, &DeliveryFilter::default()).await,
            Err(StoreError::Corrupt(_))
        ),
        "an out-of-range time in a listing is Corrupt"
    );
}

/// An idempotency key is claimed once among concurrent claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_have_one_winner() {
    let store = SqliteStore::open_in_memory().expect("open");
    let a = account();
    let w = WebhookId::generate().expect("rng");
    let t = t0();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, a, w) = (store.clone(), a.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            s.claim_idempotent(&a, &w, "same", t, t + secs(60))
                .await
                .expect("claim")
        }));
    }
    let mut new = 0;
    for task in tasks {
        if task.await.expect("claim task") == IdempotencyClaim::New {
            new += 1;
        }
    }
    assert_eq!(new, 1, "exactly one claim wins");
}
