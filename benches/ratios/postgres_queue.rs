//! The PostgreSQL store's figures (`--features postgres`, a database in `DATABASE_URL`):
//!
//! - `postgres_queue`: `PostgresStore`'s queue cycle (enqueue a batch of 64, lease them,
//!   finish each as delivered) against bare tokio-postgres (one plain connection, prepared
//!   statements) running the same three statements in the same round trips, rows/s over
//!   rows/s. Both sides work on one schema, migrated by the store: the same tables,
//!   indexes, sequence and statistics, and the same dead-row state of the queue table,
//!   which the store's own `VACUUM` (every 5 000 queue changes it makes) keeps clean for
//!   both. On a schema of its own the bare side, which runs the store's statements but not
//!   its maintenance, would walk over more and more dead queue entries (autovacuum may be
//!   off, as on this project's machines), and the ratio would flatter the store. Every
//!   cycle drains what it enqueued, so neither side ever sees the other's rows.
//! - `postgres_claim_batch`: one lease of 64 against 64 leases of one, on the store: the
//!   single-row time over the batched time.
//! - `postgres_churn`: the store's claim rate (lease 64, finish each; the enqueue before it
//!   is not timed) on a schema that has seen [`Config::churn`] completed deliveries, over
//!   the same on a fresh schema.
//!
//! Without `DATABASE_URL`, or with a database that cannot be reached, each figure is
//! skipped and says why. The figures work in throwaway schemas named
//! `awb_<unix seconds>_<random>` and drop them at the end; a run that dies leaves them,
//! and the next run drops those more than an hour old.

use std::time::{Duration, Instant};

use atllas_webhooks::ids::random_bytes;
use atllas_webhooks::store::postgres::{PostgresConfig, PostgresStore};
use atllas_webhooks::store::{Delivery, QueueStore};
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use crate::queue::{self, BATCH};
use crate::{Config, Outcome, note};

/// The delivery columns, in the store's order.
const COLS: &str = "id, account, endpoint_id, message_id, event_type, payload, call_id, state, \
     attempts, next_attempt_at, last_error, created_at, updated_at";

/// `PostgresStore::enqueue`'s statement (`ENQUEUE_SQL` in src/store/postgres/mod.rs): the
/// batch as 13 arrays, inserted with `unnest`, the pending ones queued.
fn enqueue_sql() -> String {
    format!(
        "WITH d AS (\
            INSERT INTO deliveries ({COLS}) \
            SELECT {COLS} FROM unnest(\
            $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[], \
            $8::text[], $9::bigint[], $10::timestamptz[], $11::text[], $12::timestamptz[], \
            $13::timestamptz[]) AS t({COLS}) \
            RETURNING id, state, next_attempt_at\
         ), q AS (\
            INSERT INTO delivery_queue (id, due_at) \
            SELECT id, next_attempt_at FROM d WHERE state = 'pending'\
         ) SELECT count(*) FROM d"
    )
}

/// `PostgresStore::lease`'s statement (`LEASE_SQL`).
const LEASE_SQL: &str = "WITH due AS MATERIALIZED (\
        SELECT id, due_at FROM delivery_queue \
        WHERE due_at <= $1 \
        ORDER BY due_at \
        LIMIT $2 \
        FOR UPDATE SKIP LOCKED\
     ), leased AS (\
        UPDATE delivery_queue \
        SET lease_token = nextval('delivery_lease_tokens'), lease_until = $3, due_at = $3 \
        WHERE id = ANY (ARRAY(SELECT id FROM due)) \
        RETURNING id, lease_token, lease_until\
     ) \
     SELECT d.id, d.account, d.endpoint_id, d.message_id, d.event_type, d.payload, d.call_id, \
     d.state, d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.updated_at, \
     leased.lease_token, leased.lease_until, due.due_at \
     FROM leased JOIN due ON due.id = leased.id JOIN deliveries AS d ON d.id = leased.id";

/// `PostgresStore::finish`'s statement for a final outcome (`FINISH_DONE_SQL`).
const FINISH_SQL: &str = "WITH q AS (\
        DELETE FROM delivery_queue WHERE id = $1 AND lease_token = $2 RETURNING id\
     ) \
     UPDATE deliveries SET state = $3, attempts = attempts + 1, last_error = $4, \
     updated_at = $5 \
     WHERE id = (SELECT id FROM q)";

/// Where the figures run: the database, the schemas they made (dropped at the end), and a
/// plain connection for setting up and cleaning up.
struct Database {
    url: String,
    admin: Client,
    schemas: std::sync::Mutex<Vec<String>>,
}

impl Database {
    /// Connects to `url`, or says why it cannot; drops the bench schemas that runs more
    /// than an hour old left behind.
    async fn open(url: &str) -> Result<Self, String> {
        let admin = connect(url, None).await?;
        admin
            .batch_execute(
                r"DO $$
                DECLARE s text;
                BEGIN
                    FOR s IN SELECT nspname FROM pg_namespace
                             WHERE nspname ~ '^awb_[0-9]+_[0-9a-f]+$'
                               AND split_part(nspname, '_', 2)::bigint
                                   < extract(epoch FROM now())::bigint - 3600
                    LOOP
                        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
                    END LOOP;
                END $$",
            )
            .await
            .map_err(|e| format!("dropping stale bench schemas: {e}"))?;
        Ok(Database {
            url: url.to_owned(),
            admin,
            schemas: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A store (default configuration) on a fresh schema of its own.
    async fn store(&self) -> PostgresStore {
        let mut b = [0u8; 6];
        random_bytes(&mut b).expect("the OS random generator (schema name)");
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let schema = format!("awb_{}_{hex}", Utc::now().timestamp());
        self.schemas
            .lock()
            .expect("the schema list is never poisoned: nothing panics holding it")
            .push(schema.clone());
        PostgresStore::connect_with_schema(&self.url, &schema)
            .await
            .expect("connecting a store on a fresh schema (the database answered a moment ago)")
    }

    /// A plain tokio-postgres connection whose `search_path` is the store's schema, set as
    /// the store sets it (a startup option).
    async fn bare(&self, store: &PostgresStore) -> Client {
        connect(&self.url, store.schema())
            .await
            .expect("a plain connection (the database answered a moment ago)")
    }

    /// Drops every schema [`Database::store`] made.
    async fn drop_schemas(&self) {
        let schemas = std::mem::take(
            &mut *self
                .schemas
                .lock()
                .expect("the schema list is never poisoned: nothing panics holding it"),
        );
        for s in schemas {
            // The name is ours: lowercase letters, digits and `_`.
            if let Err(e) = self
                .admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))
                .await
            {
                note!("dropping schema {s} failed: {e}");
            }
        }
    }
}

/// One plain connection, its driver spawned on the current runtime.
async fn connect(url: &str, schema: Option<&str>) -> Result<Client, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("DATABASE_URL is not a valid database URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if let Some(schema) = schema {
        config.options(format!("-c search_path={schema}"));
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}"));
        format!(
            "DATABASE_URL is unreachable: {e}{}",
            cause.unwrap_or_default()
        )
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            note!("a bench connection ended: {e}");
        }
    });
    Ok(client)
}

/// Runs `body` on the database in `DATABASE_URL`, then drops the schemas it made; skipped
/// (saying why) without a database.
fn with_database(body: impl AsyncFnOnce(&Database) -> Outcome) -> Outcome {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            return Outcome::Skipped(
                "DATABASE_URL is not set, e.g. postgres://postgres@127.0.0.1:5432/test".into(),
            );
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let db = match Database::open(&url).await {
            Ok(db) => db,
            Err(why) => return Outcome::Skipped(why),
        };
        let outcome = body(&db).await;
        db.drop_schemas().await;
        outcome
    })
}

/// The bare side's prepared statements.
struct Statements {
    enqueue: Statement,
    lease: Statement,
    finish: Statement,
}

/// Whitespace runs as one space: how the statements are compared with the store's.
fn normalize(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Statements {
    /// Prepares the three statements on `client`, after checking that each is one the
    /// store has prepared (`pg_prepared_statements` of its connection; call after a store
    /// cycle, while its pool holds one connection). Err names the one that differs.
    async fn prepare(client: &Client, store: &PostgresStore) -> Result<Self, String> {
        let conn = store
            .pool()
            .get()
            .await
            .expect("a pooled connection of the store");
        let prepared: Vec<String> = conn
            .query("SELECT statement FROM pg_prepared_statements", &[])
            .await
            .expect("reading pg_prepared_statements")
            .iter()
            .map(|r| normalize(r.get::<_, &str>(0)))
            .collect();
        let enqueue = enqueue_sql();
        for (what, sql) in [
            ("enqueue", enqueue.as_str()),
            ("lease", LEASE_SQL),
            ("finish", FINISH_SQL),
        ] {
            if !prepared.contains(&normalize(sql)) {
                return Err(format!(
                    "the baseline's {what} statement is not one PostgresStore prepared: \
                     copy the store's SQL into benches/ratios/postgres_queue.rs"
                ));
            }
        }
        let prepare = async |sql: &str| {
            client
                .prepare(sql)
                .await
                .expect("the store's statement prepares on a plain connection")
        };
        Ok(Statements {
            enqueue: prepare(&enqueue).await,
            lease: prepare(LEASE_SQL).await,
            finish: prepare(FINISH_SQL).await,
        })
    }
}

/// The bare side of `postgres_queue`: what `enqueue`, `lease` and `finish(Succeeded)` send,
/// in as many round trips (each statement on its own, autocommitted), reading what a
/// worker needs of a lease (id, token, payload). Rows leased.
async fn bare_cycle(client: &Client, st: &Statements, batch: &[Delivery]) -> usize {
    let id: Vec<&str> = batch.iter().map(|d| d.id.as_str()).collect();
    let account: Vec<&str> = batch.iter().map(|d| d.account.as_str()).collect();
    let endpoint: Vec<&str> = batch.iter().map(|d| d.endpoint_id.as_str()).collect();
    let message: Vec<&str> = batch.iter().map(|d| d.message_id.as_str()).collect();
    let event: Vec<&str> = batch.iter().map(|d| &*d.event_type).collect();
    let payload: Vec<&[u8]> = batch.iter().map(|d| &d.payload[..]).collect();
    let call: Vec<Option<&str>> = batch
        .iter()
        .map(|d| d.call_id.as_ref().map(|c| c.as_str()))
        .collect();
    let state: Vec<&str> = batch.iter().map(|d| d.state.as_str()).collect();
    let attempts: Vec<i64> = batch.iter().map(|d| i64::from(d.attempts)).collect();
    let next: Vec<DateTime<Utc>> = batch.iter().map(|d| d.next_attempt_at).collect();
    let error: Vec<Option<&str>> = batch.iter().map(|d| d.last_error.as_deref()).collect();
    let created: Vec<DateTime<Utc>> = batch.iter().map(|d| d.created_at).collect();
    let updated: Vec<DateTime<Utc>> = batch.iter().map(|d| d.updated_at).collect();
    let params: [&(dyn ToSql + Sync); 13] = [
        &id, &account, &endpoint, &message, &event, &payload, &call, &state, &attempts, &next,
        &error, &created, &updated,
    ];
    client
        .execute(&st.enqueue, &params)
        .await
        .expect("the bare enqueue");

    let now = Utc::now();
    let until = now + chrono::Duration::from_std(queue::LEASE_FOR).expect("60 s fits");
    let limit = BATCH as i64;
    let rows = client
        .query(&st.lease, &[&now, &limit, &until])
        .await
        .expect("the bare lease");
    let leased: Vec<(&str, i64, &[u8])> = rows
        .iter()
        .map(|r| (r.get(0), r.get(13), r.get(5)))
        .collect();

    // The finishes in one transaction, in id order, as `PostgresStore::finish_many` runs them.
    let no_error: Option<&str> = None;
    let mut ordered = leased.clone();
    ordered.sort_by(|a, b| a.0.cmp(b.0));
    let done = Utc::now();
    client.batch_execute("BEGIN").await.expect("the bare begin");
    for (id, token, _payload) in &ordered {
        client
            .execute(&st.finish, &[id, token, &"succeeded", &no_error, &done])
            .await
            .expect("the bare finish");
    }
    client
        .batch_execute("COMMIT")
        .await
        .expect("the bare commit");
    leased.len()
}

/// Slices of the queue figures: a cycle takes tens of milliseconds, so three in-process
/// slices each.
fn slice(cfg: &Config) -> Duration {
    cfg.slice * 3
}

/// Store rows/s over bare tokio-postgres rows/s for the enqueue + lease + finish cycle.
pub fn postgres_queue(cfg: &Config) -> Outcome {
    with_database(async |db| {
        let payload = queue::payload();
        let store = db.store().await;
        let bare = db.bare(&store).await;
        // One store cycle first, so that the store has prepared its statements.
        queue::store_cycle(&store, &queue::batch(&payload)).await;
        let st = match Statements::prepare(&bare, &store).await {
            Ok(st) => st,
            Err(why) => return Outcome::Skipped(why),
        };
        Outcome::Ratios(
            queue::paired_rates(
                "postgres_queue",
                cfg,
                slice(cfg),
                async || {
                    let batch = queue::batch(&payload);
                    queue::timed(bare_cycle(&bare, &st, &batch)).await
                },
                async || {
                    let batch = queue::batch(&payload);
                    queue::timed(queue::store_cycle(&store, &batch)).await
                },
            )
            .await,
        )
    })
}

/// The time of `BATCH` single-row leases over that of one lease of `BATCH` rows, on the
/// store.
pub fn postgres_claim_batch(cfg: &Config) -> Outcome {
    with_database(async |db| {
        let payload = queue::payload();
        let store = db.store().await;
        Outcome::Ratios(queue::claim_batch("postgres_claim_batch", &store, cfg, &payload).await)
    })
}

/// Puts `n` completed deliveries through the queue of `client`'s schema the way the store's
/// traffic would, but set-based, so that a million take seconds rather than minutes.
///
/// Per chunk of deliveries, as many as make the store's `VACUUM` cadence (it counts a
/// lease and a finish per delivery, so `vacuum_every / 2` deliveries):
///
/// 1. they are inserted into `deliveries` and queued, in one statement shaped like
///    `enqueue`'s: the deliveries already `succeeded` (a real finish is a HOT update whose
///    old row version is pruned in place, so only the final version is written), their
///    queue rows due in the past (at the old end of the `due_at` index, where claiming
///    starts);
/// 2. every queue row is leased as `lease` does (a token from the sequence, `due_at` and
///    `lease_until` moved to the lease end): a new row version and a new index entry each;
/// 3. every queue row is deleted, as `finish` does;
/// 4. `VACUUM (SKIP_LOCKED) delivery_queue`, which the store runs after that many changes
///    (chunks of 2 500 and no `VACUUM` if the store's default ever stops vacuuming).
///
/// Nothing else: no `ANALYZE`, no `VACUUM` of `deliveries`; autovacuum does what the
/// server's settings say, as in production (it is off on this project's machines, so the
/// store's own `VACUUM` is all the maintenance the queue gets, as there).
async fn churn(client: &Client, n: u64, payload: &[u8], vacuum_every: Option<u64>) {
    let vacuum_every = vacuum_every.filter(|&v| v > 0);
    let chunk = vacuum_every.map_or(2_500, |v| (v / 2).max(1));
    let insert = client
        .prepare(&format!(
            "WITH d AS (\
                INSERT INTO deliveries ({COLS}) \
                SELECT 'dlv_' || left(md5(i::text), 22), 'acct_bench', 'webhook_bench', \
                'msg_' || left(md5('m' || i::text), 22), 'call.finished', $3::bytea, NULL, \
                'succeeded', 1, $4::timestamptz + i * interval '1 millisecond', NULL, \
                $4::timestamptz + i * interval '1 millisecond', \
                $4::timestamptz + i * interval '1 millisecond' \
                FROM generate_series($1::bigint, $2::bigint) AS i \
                RETURNING id, next_attempt_at\
             ) \
             INSERT INTO delivery_queue (id, due_at) SELECT id, next_attempt_at FROM d"
        ))
        .await
        .expect("preparing the churn insert");
    let lease = client
        .prepare(
            "UPDATE delivery_queue SET lease_token = nextval('delivery_lease_tokens'), \
             lease_until = $1, due_at = $1",
        )
        .await
        .expect("preparing the churn lease");
    let finish = client
        .prepare("DELETE FROM delivery_queue")
        .await
        .expect("preparing the churn finish");
    // The history ends a day ago, a millisecond apart.
    let base = Utc::now() - chrono::Duration::days(1) - chrono::Duration::milliseconds(n as i64);
    let mut first = 0u64;
    while first < n {
        let last = (first + chunk).min(n) - 1;
        let (a, b) = (first as i64, last as i64);
        client
            .execute(&insert, &[&a, &b, &payload, &base])
            .await
            .expect("the churn insert");
        let until = base + chrono::Duration::milliseconds(b) + chrono::Duration::seconds(60);
        client
            .execute(&lease, &[&until])
            .await
            .expect("the churn lease");
        client
            .execute(&finish, &[])
            .await
            .expect("the churn finish");
        if vacuum_every.is_some() {
            client
                .batch_execute("VACUUM (SKIP_LOCKED) delivery_queue")
                .await
                .expect("the churn VACUUM");
        }
        first = last + 1;
    }
}

/// The claim rate (lease `BATCH`, finish each) on a schema that has seen `cfg.churn`
/// completed deliveries over the same on a fresh schema.
pub fn postgres_churn(cfg: &Config) -> Outcome {
    with_database(async |db| {
        let payload = queue::payload();
        let fresh = db.store().await;
        let churned = db.store().await;
        let autovacuum: String = db
            .admin
            .query_one("SHOW autovacuum", &[])
            .await
            .expect("SHOW autovacuum")
            .get(0);
        let started = Instant::now();
        let client = db.bare(&churned).await;
        let vacuum_every = PostgresConfig::default().vacuum_every;
        churn(&client, cfg.churn, &payload, vacuum_every).await;
        let sizes = client
            .query_one(
                "SELECT pg_total_relation_size('deliveries'), \
                 pg_total_relation_size('delivery_queue')",
                &[],
            )
            .await
            .expect("the sizes of deliveries and delivery_queue");
        let (size, queue_size): (i64, i64) = (sizes.get(0), sizes.get(1));
        note!(
            "postgres_churn: {} completed deliveries of churn ({} mode{}) in {:.1} s: {} MiB \
             of deliveries, {} KiB of queue with its indexes (autovacuum {autovacuum}, {})",
            cfg.churn,
            cfg.mode,
            if cfg.mode == "full" {
                String::new()
            } else {
                format!("; a full run has {}", Config::full().churn)
            },
            started.elapsed().as_secs_f64(),
            size >> 20,
            queue_size >> 10,
            match vacuum_every {
                Some(v) if v > 0 => format!("the store's VACUUM every {v} queue changes"),
                _ => "the store does not VACUUM".to_owned(),
            }
        );
        drop(client);
        let claim = async |store: &PostgresStore| {
            store
                .enqueue(&queue::batch(&payload))
                .await
                .expect("the store enqueues a batch");
            queue::timed(queue::lease_and_finish(store, BATCH)).await
        };
        Outcome::Ratios(
            queue::paired_rates(
                "postgres_churn",
                cfg,
                slice(cfg),
                async || claim(&fresh).await,
                async || claim(&churned).await,
            )
            .await,
        )
    })
}
