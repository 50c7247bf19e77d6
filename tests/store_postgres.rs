//! The storage conformance suite on PostgreSQL, and what only a shared database shows: two
//! processes (two pools) draining one queue, a lease expiring from one to the other,
//! migrations applied twice and at once.
//!
//! These tests need a PostgreSQL database in `DATABASE_URL`, e.g.
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`; without it every test fails.
//!
//! Each test works in a fresh schema named `awt_<unix seconds>_<random>`
//! ([`PostgresStore::connect_with_schema`]). The tests of this file that finish drop theirs;
//! the conformance checks leave theirs (the macro gives no hook after a check), and every
//! run drops the `awt_…` schemas more than an hour old.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atllas_webhooks::ids::{AccountId, CampaignId, DeliveryId, MessageId, WebhookId, random_bytes};
use atllas_webhooks::store::postgres::{PostgresConfig, PostgresStore};
use atllas_webhooks::store::{
    Delivery, DeliveryAttempt, DeliveryState, IdempotencyClaim, IdempotencyStore, LeaseOutcome,
    LogRetention, LogStore, QueueStore, RequestLogEntry, RequestOutcome, StoreError, WebhookStore,
    conformance,
};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};

const HINT: &str = "set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test";

/// The database to test against; a test without one fails, it never passes silently.
fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("DATABASE_URL is not set: the PostgreSQL store tests need a database; {HINT}"),
    }
}

/// A schema name no other test uses: `awt_<unix seconds>_<random>`.
fn new_schema() -> String {
    let mut b = [0u8; 6];
    random_bytes(&mut b).expect("the OS random generator");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("awt_{}_{hex}", Utc::now().timestamp())
}

async fn connect(schema: &str) -> PostgresStore {
    PostgresStore::connect_with_schema(&database_url(), schema)
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL (schema {schema}): {e}; {HINT}"))
}

/// Drops the test schemas of runs that ended more than an hour ago (once per test binary).
async fn drop_old_schemas(store: &PostgresStore) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let sql = r"DO $$
        DECLARE s text;
        BEGIN
            FOR s IN SELECT nspname FROM pg_namespace
                     WHERE nspname ~ '^awt_[0-9]+_[0-9a-f]+$'
                       AND split_part(nspname, '_', 2)::bigint
                           < extract(epoch FROM now())::bigint - 3600
            LOOP
                EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
            END LOOP;
        END $$";
    let result = match store.pool().get().await {
        Ok(client) => client.batch_execute(sql).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("dropping old test schemas failed (harmless): {e}");
    }
}

async fn drop_schema(store: &PostgresStore) {
    let schema = store
        .schema()
        .expect("a test store has a schema of its own");
    let client = store.pool().get().await.expect("a connection");
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .expect("dropping the test schema");
}

/// The backend's invariant: a delivery is pending exactly when it has a queue row.
async fn assert_queue_matches_pending(store: &PostgresStore) {
    let client = store.pool().get().await.expect("a connection");
    let row = client
        .query_one(
            "SELECT \
               (SELECT count(*) FROM deliveries d WHERE d.state = 'pending' \
                  AND NOT EXISTS (SELECT 1 FROM delivery_queue q WHERE q.id = d.id)), \
               (SELECT count(*) FROM delivery_queue q WHERE NOT EXISTS \
                  (SELECT 1 FROM deliveries d WHERE d.id = q.id AND d.state = 'pending'))",
            &[],
        )
        .await
        .expect("checking the queue");
    let (unqueued, stray): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (unqueued, stray),
        (0, 0),
        "pending deliveries without a queue row, queue rows without a pending delivery"
    );
}

/// The conformance factory: a store on a fresh schema.
async fn fresh_store() -> PostgresStore {
    let store = connect(&new_schema()).await;
    drop_old_schemas(&store).await;
    store
}

atllas_webhooks::store_conformance_tests!(fresh_store);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
}

fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

fn delivery(
    account: &AccountId,
    endpoint: &WebhookId,
    created_at: DateTime<Utc>,
    due: DateTime<Utc>,
) -> Delivery {
    let id = DeliveryId::generate().expect("rng");
    Delivery {
        payload: Bytes::from(format!(r#"{{"type":"call.finished","delivery":"{id}"}}"#)),
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
        created_at,
        updated_at: created_at,
    }
}

/// Two stores with pools of their own on one schema (two engine processes on one
/// database) lease one backlog at once: every delivery is handed out once, to one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_lease_the_same_delivery() {
    let schema = new_schema();
    let a = Arc::new(connect(&schema).await);
    let b = Arc::new(connect(&schema).await);
    let account = AccountId::generate().expect("rng");
    let endpoint = WebhookId::generate().expect("rng");
    let backlog: Vec<Delivery> = (0..500)
        .map(|i| delivery(&account, &endpoint, t0(), t0() + secs(i % 60)))
        .collect();
    a.enqueue(&backlog).await.expect("enqueue 500 in one batch");
    let now = t0() + secs(3600);

    let start = Arc::new(tokio::sync::Barrier::new(2));
    let worker = |store: Arc<PostgresStore>, mut turn: usize| {
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            let mut got = Vec::new();
            loop {
                turn += 1;
                let limit = 1 + turn % 13;
                let leases = store
                    .lease(now, limit, Duration::from_secs(600))
                    .await
                    .expect("lease");
                if leases.is_empty() {
                    break;
                }
                assert!(leases.len() <= limit, "lease() returns at most `limit`");
                for l in leases {
                    assert!(
                        store
                            .finish(&l, LeaseOutcome::Succeeded, now)
                            .await
                            .expect("finish"),
                        "the holder of a fresh lease can finish it"
                    );
                    got.push(l.delivery.id.as_str().to_owned());
                }
            }
            got
        })
    };
    let (got_a, got_b) = tokio::join!(worker(a.clone(), 0), worker(b.clone(), 7));
    let (got_a, got_b) = (got_a.expect("worker a"), got_b.expect("worker b"));

    let set_a: HashSet<&str> = got_a.iter().map(String::as_str).collect();
    let set_b: HashSet<&str> = got_b.iter().map(String::as_str).collect();
    assert_eq!(set_a.len(), got_a.len(), "store a got no delivery twice");
    assert_eq!(set_b.len(), got_b.len(), "store b got no delivery twice");
    assert!(
        set_a.is_disjoint(&set_b),
        "no delivery was leased by both stores: {:?}",
        set_a.intersection(&set_b).collect::<Vec<_>>()
    );
    let union: HashSet<&str> = set_a.union(&set_b).copied().collect();
    let all: HashSet<&str> = backlog.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(union.len(), 500, "every delivery was leased");
    assert_eq!(union, all, "the union is the backlog");
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both stores leased some ({} and {})",
        got_a.len(),
        got_b.len()
    );
    assert_eq!(
        a.next_due().await.expect("next_due"),
        None,
        "nothing is left"
    );
    assert_queue_matches_pending(&a).await;
    drop_schema(&a).await;
}

/// A lease that expires in one process is handed to the other with a new token; the first
/// holder can then neither finish nor release it.
#[tokio::test]
async fn an_expired_lease_moves_to_the_other_process() {
    let schema = new_schema();
    let a = connect(&schema).await;
    let b = connect(&schema).await;
    let account = AccountId::generate().expect("rng");
    let endpoint = WebhookId::generate().expect("rng");
    let d = delivery(&account, &endpoint, t0(), t0());
    a.enqueue(std::slice::from_ref(&d)).await.expect("enqueue");

    let la = a
        .lease(t0(), 10, Duration::from_secs(30))
        .await
        .expect("lease");
    assert_eq!(la.len(), 1, "a leases the delivery");
    let la = &la[0];
    assert!(
        b.lease(t0() + secs(29), 10, Duration::from_secs(30))
            .await
            .expect("lease")
            .is_empty(),
        "b gets nothing while a's lease lasts"
    );
    let lb = b
        .lease(t0() + secs(31), 10, Duration::from_secs(30))
        .await
        .expect("lease");
    assert_eq!(lb.len(), 1, "b leases the delivery once a's lease expired");
    let lb = &lb[0];
    assert_eq!(lb.delivery.id, d.id);
    assert_ne!(lb.token, la.token, "the new lease has a new token");
    assert_eq!(lb.lease_until, t0() + secs(61));

    assert!(
        !a.finish(la, LeaseOutcome::Succeeded, t0() + secs(32))
            .await
            .expect("finish"),
        "a's finish with the stale token returns false"
    );
    a.release(la, t0() + secs(32)).await.expect("release");
    assert!(
        a.lease(t0() + secs(33), 10, Duration::from_secs(30))
            .await
            .expect("lease")
            .is_empty(),
        "a's release with the stale token does not free b's lease"
    );
    let got = b.delivery(&account, &d.id).await.expect("delivery");
    assert_eq!(
        (got.state, got.attempts),
        (DeliveryState::Pending, 0),
        "the stale finish changed nothing"
    );
    assert!(
        b.finish(
            lb,
            LeaseOutcome::Retry {
                next_attempt_at: t0() + secs(100),
                error: "HTTP 503".into(),
            },
            t0() + secs(34),
        )
        .await
        .expect("finish"),
        "b finishes with its token"
    );
    let got = a.delivery(&account, &d.id).await.expect("delivery");
    assert_eq!(
        (got.state, got.attempts, got.next_attempt_at),
        (DeliveryState::Pending, 1, t0() + secs(100)),
        "b's outcome is what both see"
    );
    assert_eq!(
        a.next_due().await.expect("next_due"),
        Some(t0() + secs(100))
    );
    drop_schema(&a).await;
}

/// Migrations run on connect: several processes connecting to a new schema at once, and
/// connecting or migrating again later, leave one record per migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_when_run_twice_and_concurrently() {
    let schema = new_schema();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let schema = schema.clone();
        set.spawn(async move { connect(&schema).await });
    }
    let mut stores = Vec::new();
    while let Some(store) = set.join_next().await {
        stores.push(store.expect("a concurrent connect"));
    }
    let again = connect(&schema).await;
    again.migrate().await.expect("migrate again");
    again.migrate().await.expect("and again");

    let client = again.pool().get().await.expect("a connection");
    let row = client
        .query_one("SELECT count(*), max(version) FROM schema_migrations", &[])
        .await
        .expect("schema_migrations");
    let (count, max): (i64, Option<i32>) = (row.get(0), row.get(1));
    let version = PostgresStore::schema_version();
    assert_eq!(count, i64::from(version), "one record per migration");
    assert_eq!(max, Some(version), "every migration is applied");
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .expect("information_schema")
        .get(0);
    assert_eq!(
        tables, 11,
        "ten tables and schema_migrations, in the schema"
    );
    drop(client);

    // Every store works on the one schema.
    let account = AccountId::generate().expect("rng");
    let endpoint = WebhookId::generate().expect("rng");
    for s in &stores {
        let d = delivery(&account, &endpoint, t0(), t0() + secs(86_400));
        s.enqueue(std::slice::from_ref(&d)).await.expect("enqueue");
        again
            .delivery(&account, &d.id)
            .await
            .expect("seen by another");
    }
    drop_schema(&again).await;
}

/// Timestamps keep microseconds and lose what is finer (`TIMESTAMPTZ`).
#[tokio::test]
async fn timestamps_keep_microseconds() {
    let store = fresh_store().await;
    let account = AccountId::generate().expect("rng");
    let endpoint = WebhookId::generate().expect("rng");
    let micros = t0() + chrono::Duration::microseconds(123_456);
    let nanos = micros + chrono::Duration::nanoseconds(789);
    let mut d = delivery(&account, &endpoint, micros, t0() + secs(86_400));
    d.updated_at = nanos;
    store
        .enqueue(std::slice::from_ref(&d))
        .await
        .expect("enqueue");
    let got = store.delivery(&account, &d.id).await.expect("delivery");
    assert_eq!(got.created_at, micros, "microseconds are kept");
    assert_eq!(got.updated_at, micros, "nanoseconds are cut");
    drop_schema(&store).await;
}

/// A row that no longer decodes into its record is `Corrupt`, not a panic.
#[tokio::test]
async fn undecodable_rows_are_corrupt() {
    use atllas_webhooks::campaign::{Campaign, CampaignKind, CampaignSettings};
    let store = fresh_store().await;
    let account = AccountId::generate().expect("rng");
    let campaign = Campaign::new(
        account.clone(),
        "C",
        CampaignKind::Inbound,
        CampaignSettings {
            prompt: Some("Hi".into()),
            ..CampaignSettings::default()
        },
        t0(),
    )
    .expect("campaign");
    store
        .insert_campaign(&campaign)
        .await
        .expect("insert_campaign");
    let client = store.pool().get().await.expect("a connection");
    client
        .execute(
            "UPDATE campaigns SET settings = '\"not settings\"'::jsonb, kind = 'sideways' WHERE id = $1",
            &[&campaign.id.as_str()],
        )
        .await
        .expect("damaging the row");
    drop(client);
    match store.campaign(&account, &campaign.id).await {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
    match store
        .campaign(&account, &CampaignId::generate().expect("rng"))
        .await
    {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected StoreError::NotFound, got {other:?}"),
    }
    drop_schema(&store).await;
}

/// A schema name that is not a plain lowercase identifier is refused before connecting.
#[tokio::test]
async fn schema_names_are_checked() {
    let url = database_url();
    for bad in [
        "",
        "Upper",
        "1digit",
        "semi;colon",
        "quote\"",
        &"x".repeat(64),
    ] {
        match PostgresStore::connect_with_schema(&url, bad).await {
            Err(StoreError::Backend(msg)) => assert!(msg.contains("schema"), "{msg}"),
            other => panic!("schema {bad:?}: expected a refusal, got {other:?}"),
        }
    }
}

/// Several checks side by side on one store, as against a shared production database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_share_one_schema() {
    let store = Arc::new(fresh_store().await);
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
    // Again, over what the first runs left behind.
    conformance::queue_leases(&*store).await;
    conformance::request_log(&*store).await;
    conformance::delivery_listing(&*store).await;
    assert_queue_matches_pending(&store).await;
    drop_schema(&store).await;
}

/// The logs list at most the retention's newest entries, whatever is still stored, and
/// older rows are deleted along the way (lazily: on about one append in sixteen).
#[tokio::test]
async fn logs_keep_the_newest_within_the_retention() {
    let schema = new_schema();
    let config = PostgresConfig::default()
        .with_schema(&schema)
        .with_log_retention(LogRetention {
            attempts_per_endpoint: 5,
            requests_per_account: 5,
        });
    let store = PostgresStore::connect_with(&database_url(), config)
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL: {e}; {HINT}"));
    let account = AccountId::generate().expect("rng");
    let endpoint = WebhookId::generate().expect("rng");
    let mut attempts = Vec::new();
    let mut requests = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..200 {
        let at = t0() + secs(i);
        let a = DeliveryAttempt {
            account: account.clone(),
            endpoint_id: endpoint.clone(),
            delivery_id: None,
            message_id: MessageId::generate().expect("rng"),
            event_type: "call.finished".into(),
            attempt: 1,
            at,
            status: Some(if i % 3 == 0 { 200 } else { 500 }),
            error: None,
            error_message: None,
            response_body: format!("#{i}"),
            duration_ms: 10,
            success: i % 3 == 0,
            test: false,
        };
        store
            .append_attempt(a.clone())
            .await
            .expect("append_attempt");
        attempts.push(a);
        for (acct, log) in [(Some(&account), &mut requests), (None, &mut unknown)] {
            let r = RequestLogEntry {
                account: acct.cloned(),
                webhook_id: None,
                slug: Some(format!("s{i}")),
                slug_known: acct.is_some(),
                at,
                status: 201,
                outcome: RequestOutcome::Placed,
                code: None,
                message: format!("#{i}").into(),
                ignored_keys: Vec::new(),
                call_id: None,
            };
            store
                .append_request(r.clone())
                .await
                .expect("append_request");
            log.push(r);
        }
    }
    let newest = |v: &[DeliveryAttempt]| v.iter().rev().take(5).cloned().collect::<Vec<_>>();
    assert_eq!(
        store
            .attempts(&account, &endpoint, None, 100)
            .await
            .expect("attempts"),
        newest(&attempts),
        "attempts() lists only the newest `attempts_per_endpoint`"
    );
    assert_eq!(
        store
            .attempts(&account, &endpoint, Some(true), 100)
            .await
            .expect("attempts"),
        newest(&attempts)
            .into_iter()
            .filter(|a| a.success)
            .collect::<Vec<_>>(),
        "the success filter applies within the retained entries"
    );
    assert_eq!(
        store.requests(Some(&account), 100).await.expect("requests"),
        requests.iter().rev().take(5).cloned().collect::<Vec<_>>(),
        "requests() lists only the newest `requests_per_account`"
    );
    assert_eq!(
        store.requests(None, 100).await.expect("requests"),
        unknown.iter().rev().take(5).cloned().collect::<Vec<_>>(),
        "requests(None) too"
    );
    let client = store.pool().get().await.expect("a connection");
    for table in ["delivery_attempts", "request_log"] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert!(
            n < if table == "request_log" { 400 } else { 200 },
            "old {table} rows are deleted ({n} left)"
        );
    }
    drop(client);
    drop_schema(&store).await;
}

/// Expired idempotency keys are swept along the way (on about one claim in 64).
#[tokio::test]
async fn expired_idempotency_keys_are_swept() {
    let store = fresh_store().await;
    let account = AccountId::generate().expect("rng");
    let webhook = WebhookId::generate().expect("rng");
    for i in 0..100 {
        let claim = store
            .claim_idempotent(
                &account,
                &webhook,
                &format!("old-{i}"),
                t0(),
                t0() + secs(1),
            )
            .await
            .expect("claim");
        assert_eq!(claim, IdempotencyClaim::New);
    }
    let later = t0() + secs(10);
    for i in 0..1000 {
        store
            .claim_idempotent(
                &account,
                &webhook,
                &format!("new-{i}"),
                later,
                later + secs(60),
            )
            .await
            .expect("claim");
    }
    let client = store.pool().get().await.expect("a connection");
    let expired: i64 = client
        .query_one(
            "SELECT count(*) FROM idempotency WHERE expires_at <= $1",
            &[&later],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(expired, 0, "expired keys were swept");
    drop(client);
    assert_eq!(
        store
            .claim_idempotent(&account, &webhook, "new-1", later, later + secs(60))
            .await
            .expect("claim"),
        IdempotencyClaim::InFlight,
        "live keys are kept"
    );
    drop_schema(&store).await;
}

/// The store vacuums its queue in the background every `vacuum_every` changes.
#[tokio::test]
async fn the_queue_is_vacuumed_every_so_many_changes() {
    let schema = new_schema();
    let config = PostgresConfig::default()
        .with_schema(&schema)
        .with_vacuum_every(Some(10));
    let store = PostgresStore::connect_with(&database_url(), config)
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL: {e}; {HINT}"));
    let account = AccountId::generate().expect("rng");
    let endpoint = WebhookId::generate().expect("rng");
    let backlog: Vec<Delivery> = (0..20)
        .map(|_| delivery(&account, &endpoint, t0(), t0()))
        .collect();
    store.enqueue(&backlog).await.expect("enqueue");
    for l in store
        .lease(t0(), 20, Duration::from_secs(60))
        .await
        .expect("lease")
    {
        assert!(
            store
                .finish(&l, LeaseOutcome::Succeeded, t0())
                .await
                .expect("finish")
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.vacuum_runs() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no VACUUM ran after 40 queue changes with vacuum_every 10"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop_schema(&store).await;
}
