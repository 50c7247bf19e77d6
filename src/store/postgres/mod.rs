//! The PostgreSQL backend (feature `postgres`): one database shared by many engine
//! processes on many machines.
//!
//! ```no_run
//! use atllas_webhooks::store::QueueStore;
//! use atllas_webhooks::store::postgres::{PostgresConfig, PostgresStore};
//!
//! # async fn run() -> Result<(), atllas_webhooks::store::StoreError> {
//! let store = PostgresStore::connect_with(
//!     "postgres://app@db.internal:5432/webhooks",
//!     PostgresConfig::default().with_max_connections(16),
//! )
//! .await?;
//! let due = store.next_due().await?;
//! # let _ = due;
//! # Ok(())
//! # }
//! ```
//!
//! # Connections
//!
//! [`PostgresStore`] holds a [`deadpool_postgres`] pool of `tokio-postgres` connections
//! ([`PostgresConfig::max_connections`], 10 by default). Connections are made and driven
//! on the Tokio runtime that is current when they are first needed: create and use the
//! store inside one runtime. Every statement is prepared once per connection and cached
//! (`prepare_cached`).
//!
//! The store speaks to the database without TLS ([`tokio_postgres::NoTls`]): it is meant for
//! a database on a private network or the same host. To use TLS, build a
//! [`deadpool_postgres::Pool`] with the TLS connector of your choice and hand it to
//! [`PostgresStore::from_pool`].
//!
//! # Schema and migrations
//!
//! The tables live in the first schema of the connection's `search_path` (usually
//! `public`), or in a schema of their own with [`PostgresStore::connect_with_schema`] /
//! [`PostgresConfig::schema`]: that schema is created if needed and set as the
//! `search_path` of every pooled connection (a startup option of the connection, so it
//! costs no round trip). Tests use one fresh schema per test for isolation; an application
//! can use it to keep several environments in one database.
//!
//! The migrations are compiled into the crate and applied on connect, in one transaction
//! that holds `pg_advisory_xact_lock` (keyed by the schema name): processes starting at the
//! same time apply them once, the others wait and then find them applied. Applied versions
//! are recorded in `schema_migrations`. A database migrated by a newer version of this
//! crate is used as it is (migrations only ever add).
//!
//! | table | holds |
//! | --- | --- |
//! | `campaigns`, `settings_versions` | campaigns; every saved settings version |
//! | `inbound_webhooks` | inbound webhooks; `slug` is unique |
//! | `endpoints` | outbound and response webhooks; kind, headers, secrets as JSONB |
//! | `calls` | calls; origin, contact, result as JSONB |
//! | `deliveries` | every delivery, its state and history; payload as BYTEA |
//! | `delivery_queue` | the pending deliveries: when each is due, its lease |
//! | `delivery_attempts`, `request_log` | the logs |
//! | `idempotency` | `Idempotency-Key` claims |
//!
//! # The queue
//!
//! `delivery_queue` holds one narrow row per pending delivery (`deliveries.state =
//! 'pending'` exactly when it has one): what a partial index `ON deliveries (due_at) WHERE
//! state = 'pending'` would hold, made a table so that leasing rewrites these small rows
//! and never the wide delivery row with its payload and three indexes. A row is due at
//! `due_at`: the delivery's `next_attempt_at` while unleased, the lease end while leased,
//! so a lease that expires makes the delivery due again with no sweeper.
//!
//! [`lease`](QueueStore::lease) is one statement: it locks the oldest due queue rows with
//! `FOR UPDATE SKIP LOCKED` (so workers on any machine never wait for nor get the same
//! rows), stamps each with a fresh token from the `delivery_lease_tokens` sequence (unique
//! across processes and restarts; never reused, whatever rolls back) and moves its
//! `due_at` to the lease end, returning the deliveries joined in.
//! [`finish`](QueueStore::finish) and [`release`](QueueStore::release) are one statement
//! each, conditional on `lease_token = $token`: a stale token matches no queue row and
//! changes nothing. A final outcome deletes the queue row; the delivery's own update then
//! touches no indexed column, so it is a HOT update (no index entry, pruned in place).
//! Queue rows are always locked before their deliveries, so outcomes and kills running at
//! once do not deadlock each other.
//!
//! # Maintenance
//!
//! Every lease and outcome leaves a dead queue row version and a dead entry at the old end
//! of the `due_at` index, which claiming walks over until `VACUUM` clears them; without it
//! the claim rate falls with the number of deliveries ever handled. The migration tunes
//! autovacuum for `delivery_queue`, but autovacuum may be off (as on this project's test
//! machines) or slow, so the store also runs `VACUUM (SKIP_LOCKED) delivery_queue` itself,
//! in the background on a pooled connection, after every
//! [`PostgresConfig::vacuum_every`] queue changes it made (5 000 by default; one at a time;
//! skipped while another process's runs). The queue holds only pending deliveries, so this
//! takes milliseconds however long the history. It needs the table's owner (the role that
//! ran the migrations); turn it off with `vacuum_every: None` where autovacuum is trusted.
//! `deliveries` itself only grows by inserts and HOT updates and needs no such help.
//!
//! # Fidelity
//!
//! Timestamps are stored to the microsecond (`TIMESTAMPTZ`); finer digits are cut. Text
//! cannot hold NUL characters in PostgreSQL: a record with one is refused with
//! [`StoreError::Backend`]. Unique violations are [`StoreError::Conflict`]; every other
//! database or pool failure is [`StoreError::Backend`]; rows that cannot be read back into
//! records are [`StoreError::Corrupt`].
//!
//! # Log retention
//!
//! Reads of the delivery log and the request log honour [`LogRetention`] exactly (only the
//! newest entries within the bound are ever listed). Older rows are deleted lazily: on
//! about one append in sixteen, pipelined with the insert, so appends stay one round trip.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Json, ToSql};
use tokio_postgres::{NoTls, Row};

pub use deadpool_postgres;

use super::{
    CallRecord, CallState, CallStore, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryState,
    Endpoint, IdempotencyClaim, IdempotencyStore, InboundWebhook, Lease, LeaseOutcome,
    LogRetention, LogStore, QueueStore, RequestLogEntry, StoreError, StoreResult, StoredResponse,
    TransportErrorKind, WebhookStore,
};
use crate::campaign::{Campaign, CampaignSettings, SettingsVersion};
use crate::ids::{AccountId, CallId, CampaignId, DeliveryId, MessageId, WebhookId};
use crate::model::Call;

// ---------------------------------------------------------------------------------------
// Configuration and connecting
// ---------------------------------------------------------------------------------------

/// How [`PostgresStore::connect_with`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// Most connections the pool opens (10 by default).
    pub max_connections: usize,
    /// A schema of its own: created if needed and used as the `search_path` of every
    /// pooled connection. `None` (the default) uses the connection's own `search_path`.
    /// A name of lowercase ASCII letters, digits and `_`, not starting with a digit, at
    /// most 63 bytes.
    pub schema: Option<String>,
    /// Limit on opening one connection (10 s by default); `None` waits as long as the OS.
    pub connect_timeout: Option<Duration>,
    /// Limit on waiting for a free pooled connection (30 s by default); `None` waits
    /// forever.
    pub wait_timeout: Option<Duration>,
    /// How many log entries are kept.
    pub log_retention: LogRetention,
    /// Run `VACUUM (SKIP_LOCKED) delivery_queue` in the background after this many queue
    /// row changes (leases, outcomes, releases, kills) made through this store; `None` or
    /// 0 never does. 5 000 by default. See [the module docs](self#maintenance).
    pub vacuum_every: Option<u64>,
}

impl Default for PostgresConfig {
    /// 10 connections, no schema of its own, 10 s to connect, 30 s to wait for a
    /// connection, the default log retention, a `VACUUM` of the queue every 5 000 changes.
    fn default() -> Self {
        PostgresConfig {
            max_connections: 10,
            schema: None,
            connect_timeout: Some(Duration::from_secs(10)),
            wait_timeout: Some(Duration::from_secs(30)),
            log_retention: LogRetention::default(),
            vacuum_every: Some(5_000),
        }
    }
}

impl PostgresConfig {
    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`schema`](Self::schema).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets [`log_retention`](Self::log_retention).
    pub fn with_log_retention(mut self, retention: LogRetention) -> Self {
        self.log_retention = retention;
        self
    }

    /// Sets [`vacuum_every`](Self::vacuum_every).
    pub fn with_vacuum_every(mut self, changes: Option<u64>) -> Self {
        self.vacuum_every = changes;
        self
    }
}

/// One migration: a version and the SQL that brings the schema to it.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Only ever append.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("migrations/0001_initial.sql"),
}];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// First key of the migration advisory lock ("atlw"); the second is the schema's hash.
const MIGRATION_LOCK_CLASS: i32 = 0x6174_6c77;

/// Append or claim calls, out of this many, also sweep old rows.
const TRIM_ONE_IN: u64 = 16;
const SWEEP_ONE_IN: u64 = 64;
/// Most expired idempotency keys one sweep deletes.
const SWEEP_BATCH: i64 = 500;

/// A [`Store`](super::Store) in PostgreSQL, safe to share between any number of
/// processes and machines.
pub struct PostgresStore {
    pool: Pool,
    schema: Option<String>,
    retention: LogRetention,
    ticket: AtomicU64,
    vacuum: Arc<Vacuum>,
}

/// The queue's own `VACUUM`, for databases whose autovacuum is off or slow.
struct Vacuum {
    every: u64,
    changes: AtomicU64,
    running: AtomicBool,
    runs: AtomicU64,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's own Debug would print the connection configuration.
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool.status())
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with the default [`PostgresConfig`] and applies the migrations.
    /// `url` is a libpq URL or key-value string (`postgres://user@host:5432/db`).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PostgresConfig::default()).await
    }

    /// Connects using (and creating, if needed) a schema of its own, set as the
    /// `search_path` of every pooled connection, and applies the migrations there. Two
    /// stores on the same schema share their data; on different schemas they share
    /// nothing. The tests use a fresh schema per test.
    pub async fn connect_with_schema(url: &str, schema: &str) -> StoreResult<Self> {
        Self::connect_with(url, PostgresConfig::default().with_schema(schema)).await
    }

    /// Connects as `config` says and applies the migrations.
    pub async fn connect_with(url: &str, config: PostgresConfig) -> StoreResult<Self> {
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid database URL: {}", chain(&e))))?;
        if let Some(schema) = &config.schema {
            check_schema_name(schema)?;
            let options = match pg.get_options() {
                Some(o) if !o.trim().is_empty() => format!("{o} -c search_path={schema}"),
                _ => format!("-c search_path={schema}"),
            };
            pg.options(options);
        }
        if let (None, Some(t)) = (pg.get_connect_timeout(), config.connect_timeout) {
            pg.connect_timeout(t);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("atllas-webhooks");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(config.wait_timeout)
            .create_timeout(config.connect_timeout)
            .build()
            .map_err(|e| StoreError::Backend(format!("building the pool: {e}")))?;
        let store = Self::new(
            pool,
            config.schema,
            config.log_retention,
            config.vacuum_every,
        );
        store.migrate().await?;
        Ok(store)
    }

    /// Uses a pool the application built (with TLS, say), applies the migrations in the
    /// first schema of its connections' `search_path`, and takes the log retention and
    /// [`vacuum_every`](PostgresConfig::vacuum_every) from `config` (its connection
    /// settings and schema are not used). The pool needs a runtime set
    /// (`Runtime::Tokio1`) for its timeouts.
    pub async fn from_pool(pool: Pool, config: PostgresConfig) -> StoreResult<Self> {
        let store = Self::new(pool, None, config.log_retention, config.vacuum_every);
        store.migrate().await?;
        Ok(store)
    }

    fn new(
        pool: Pool,
        schema: Option<String>,
        retention: LogRetention,
        vacuum_every: Option<u64>,
    ) -> Self {
        let mut seed = [0u8; 8];
        // A failed read only makes the sampling of log trims predictable; that is fine.
        let _ = crate::ids::random_bytes(&mut seed);
        PostgresStore {
            pool,
            schema,
            retention,
            ticket: AtomicU64::new(u64::from_le_bytes(seed)),
            vacuum: Arc::new(Vacuum {
                every: vacuum_every.unwrap_or(0),
                changes: AtomicU64::new(0),
                running: AtomicBool::new(false),
                runs: AtomicU64::new(0),
            }),
        }
    }

    /// The connection pool (for health checks, metrics or the application's own queries).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema of its own, when it was connected with one.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The newest schema version this crate knows (the number of its migrations).
    pub fn schema_version() -> i32 {
        MIGRATIONS.last().map_or(0, |m| m.version)
    }

    /// Applies the migrations that are not applied yet (connecting does this already).
    /// Safe to call any number of times, from any number of processes at once: one
    /// transaction holding `pg_advisory_xact_lock` (keyed by the schema) does the work,
    /// the others wait for it and find nothing left to do.
    pub async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => {
                let row = client
                    .query_one("SELECT current_schema()", &[])
                    .await
                    .map_err(db_error)?;
                col::<Option<String>>(&row, 0)?.ok_or_else(|| {
                    StoreError::Backend(
                        "no schema to create the tables in: the search_path names no existing schema"
                            .into(),
                    )
                })?
            }
        };
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&MIGRATION_LOCK_CLASS, &lock_key(&schema)],
        )
        .await
        .map_err(db_error)?;
        if self.schema.is_some() {
            let exists = tx
                .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
                .await
                .map_err(db_error)?
                .is_some();
            if !exists {
                // The name was checked: lowercase letters, digits and `_` only.
                tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
                    .await
                    .map_err(db_error)?;
            }
        }
        tx.batch_execute(CREATE_MIGRATIONS_TABLE)
            .await
            .map_err(db_error)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| col::<i32>(r, 0))
            .collect::<StoreResult<_>>()?;
        for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
            tx.batch_execute(m.sql).await.map_err(|e| {
                StoreError::Backend(format!(
                    "migration {} ({}): {}",
                    m.version,
                    m.name,
                    chain(&e)
                ))
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&m.version, &m.name],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("no database connection: {}", chain(&e))))
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let c = self.client().await?;
        let st = c.prepare_cached(sql).await.map_err(db_error)?;
        c.query(&st, params).await.map_err(db_error)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let c = self.client().await?;
        let st = c.prepare_cached(sql).await.map_err(db_error)?;
        c.execute(&st, params).await.map_err(db_error)
    }

    /// How many background `VACUUM`s of the queue this store has completed.
    pub fn vacuum_runs(&self) -> u64 {
        self.vacuum.runs.load(Ordering::Relaxed)
    }

    /// Counts `n` queue row changes; past every [`PostgresConfig::vacuum_every`] of them,
    /// starts a `VACUUM (SKIP_LOCKED) delivery_queue` in the background (one at a time per
    /// store; one waiting for another process's is skipped).
    fn queue_changed(&self, n: u64) {
        let v = &self.vacuum;
        if v.every == 0 || n == 0 {
            return;
        }
        let before = v.changes.fetch_add(n, Ordering::Relaxed);
        if before / v.every == (before + n) / v.every {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if v.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, v) = (self.pool.clone(), self.vacuum.clone());
        runtime.spawn(async move {
            if let Ok(client) = pool.get().await {
                // A failure (no privilege, say) only means autovacuum has to do it.
                if client
                    .batch_execute("VACUUM (SKIP_LOCKED) delivery_queue")
                    .await
                    .is_ok()
                {
                    v.runs.fetch_add(1, Ordering::Relaxed);
                }
            }
            v.running.store(false, Ordering::Release);
        });
    }

    /// True on about one call in `one_in` (spread over calls, not strided).
    fn sample(&self, one_in: u64) -> bool {
        splitmix64(self.ticket.fetch_add(1, Ordering::Relaxed)).is_multiple_of(one_in)
    }
}

fn check_schema_name(schema: &str) -> StoreResult<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && !schema.as_bytes()[0].is_ascii_digit()
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "invalid schema name {schema:?}: use lowercase ASCII letters, digits and _ (at most 63, not starting with a digit)"
        )))
    }
}

/// FNV-1a of the schema name: a stable advisory lock key.
fn lock_key(schema: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in schema.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(h.to_ne_bytes())
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------
// Errors and conversions
// ---------------------------------------------------------------------------------------

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Unique violations (23505) are conflicts; everything else is a backend failure. The
/// database's detail is left out: it quotes the key, and a slug is a secret.
fn db_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(match db.constraint() {
                Some("inbound_webhooks_slug_unique") => "slug is taken".to_owned(),
                Some("campaigns_pkey") => "campaign exists".to_owned(),
                Some("inbound_webhooks_pkey") | Some("endpoints_pkey") => {
                    "webhook exists".to_owned()
                }
                Some("calls_pkey") => "call exists".to_owned(),
                Some("deliveries_pkey") => "delivery exists".to_owned(),
                Some(c) => format!("unique constraint {c} violated"),
                None => "unique constraint violated".to_owned(),
            })
        }
        Some(db) => {
            StoreError::Backend(format!("{} (SQLSTATE {})", db.message(), db.code().code()))
        }
        None => StoreError::Backend(chain(&e)),
    }
}

fn corrupt(what: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Column `idx` of a row; a value that does not decode is [`StoreError::Corrupt`].
fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).map_err(|e| {
        let name = row.columns().get(idx).map_or("?", |c| c.name());
        corrupt(format_args!("column {name}: {}", chain(&e)))
    })
}

fn json_col<T: DeserializeOwned>(row: &Row, idx: usize) -> StoreResult<T> {
    col::<Json<T>>(row, idx).map(|j| j.0)
}

fn opt_json_col<T: DeserializeOwned>(row: &Row, idx: usize) -> StoreResult<Option<T>> {
    col::<Option<Json<T>>>(row, idx).map(|j| j.map(|j| j.0))
}

fn u32_col(row: &Row, idx: usize) -> StoreResult<u32> {
    let v: i64 = col(row, idx)?;
    u32::try_from(v).map_err(|_| corrupt(format_args!("column {idx}: {v} is not a u32")))
}

fn u16_col(row: &Row, idx: usize) -> StoreResult<u16> {
    let v: i32 = col(row, idx)?;
    u16::try_from(v).map_err(|_| corrupt(format_args!("column {idx}: {v} is not a u16")))
}

/// A fieldless serde enum as its name.
fn enum_text<T: Serialize>(v: &T) -> StoreResult<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(StoreError::Backend(format!(
            "expected a name, serialized as {other}"
        ))),
        Err(e) => Err(StoreError::Backend(format!("serializing: {e}"))),
    }
}

/// A fieldless serde enum from its name in column `idx`.
fn enum_col<T: DeserializeOwned>(row: &Row, idx: usize) -> StoreResult<T> {
    let s: String = col(row, idx)?;
    serde_json::from_value(serde_json::Value::String(s))
        .map_err(|e| corrupt(format_args!("column {idx}: {e}")))
}

fn call_state_col(row: &Row, idx: usize) -> StoreResult<CallState> {
    match col::<&str>(row, idx)? {
        "queued" => Ok(CallState::Queued),
        "dialing" => Ok(CallState::Dialing),
        "cancelled" => Ok(CallState::Cancelled),
        "completed" => Ok(CallState::Completed),
        other => Err(corrupt(format_args!("unknown call state {other:?}"))),
    }
}

fn delivery_state_col(row: &Row, idx: usize) -> StoreResult<DeliveryState> {
    match col::<&str>(row, idx)? {
        "pending" => Ok(DeliveryState::Pending),
        "succeeded" => Ok(DeliveryState::Succeeded),
        "dead" => Ok(DeliveryState::Dead),
        other => Err(corrupt(format_args!("unknown delivery state {other:?}"))),
    }
}

fn transport_error_col(row: &Row, idx: usize) -> StoreResult<Option<TransportErrorKind>> {
    Ok(match col::<Option<&str>>(row, idx)? {
        None => None,
        Some("timeout") => Some(TransportErrorKind::Timeout),
        Some("connect") => Some(TransportErrorKind::Connect),
        Some("dns") => Some(TransportErrorKind::Dns),
        Some("tls") => Some(TransportErrorKind::Tls),
        Some("blocked") => Some(TransportErrorKind::Blocked),
        Some("other") => Some(TransportErrorKind::Other),
        Some(other) => return Err(corrupt(format_args!("unknown error kind {other:?}"))),
    })
}

/// A list limit: 0 means the default of 100.
fn limit_param(limit: usize) -> i64 {
    let limit = if limit == 0 { 100 } else { limit };
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn count_param(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count_result(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

const CAMPAIGN_COLS: &str =
    "id, account, name, kind, status, settings_version, settings, created_at, updated_at";

fn campaign_row(row: &Row) -> StoreResult<Campaign> {
    Ok(Campaign {
        id: CampaignId::new(col::<String>(row, 0)?),
        account: AccountId::new(col::<String>(row, 1)?),
        name: col(row, 2)?,
        kind: enum_col(row, 3)?,
        status: enum_col(row, 4)?,
        settings_version: u32_col(row, 5)?,
        settings: json_col(row, 6)?,
        created_at: col(row, 7)?,
        updated_at: col(row, 8)?,
    })
}

const INBOUND_COLS: &str =
    "id, account, slug, campaign_id, enabled, response_endpoint, created_at, updated_at";

fn inbound_row(row: &Row) -> StoreResult<InboundWebhook> {
    Ok(InboundWebhook {
        id: WebhookId::new(col::<String>(row, 0)?),
        account: AccountId::new(col::<String>(row, 1)?),
        slug: col(row, 2)?,
        campaign_id: col::<Option<String>>(row, 3)?.map(CampaignId::new),
        enabled: col(row, 4)?,
        response_endpoint: col::<Option<String>>(row, 5)?.map(WebhookId::new),
        created_at: col(row, 6)?,
        updated_at: col(row, 7)?,
    })
}

const ENDPOINT_COLS: &str = "id, account, kind, url, method, headers, secrets, managed_by, \
     enabled, disabled_reason, last_success_at, failing_since, created_at, updated_at";

fn endpoint_row(row: &Row) -> StoreResult<Endpoint> {
    Ok(Endpoint {
        id: WebhookId::new(col::<String>(row, 0)?),
        account: AccountId::new(col::<String>(row, 1)?),
        kind: json_col(row, 2)?,
        url: col(row, 3)?,
        method: enum_col(row, 4)?,
        headers: json_col(row, 5)?,
        secrets: json_col(row, 6)?,
        managed_by: col(row, 7)?,
        enabled: col(row, 8)?,
        disabled_reason: col(row, 9)?,
        last_success_at: col(row, 10)?,
        failing_since: col(row, 11)?,
        created_at: col(row, 12)?,
        updated_at: col(row, 13)?,
    })
}

const CALL_COLS: &str = "id, account, campaign_id, settings_version, origin, contact, state, \
     cancel_reason, result, action_items, created_at, updated_at";

fn call_row(row: &Row) -> StoreResult<CallRecord> {
    Ok(CallRecord {
        id: CallId::new(col::<String>(row, 0)?),
        account: AccountId::new(col::<String>(row, 1)?),
        campaign_id: col::<Option<String>>(row, 2)?.map(CampaignId::new),
        settings_version: u32_col(row, 3)?,
        origin: json_col(row, 4)?,
        contact: json_col(row, 5)?,
        state: call_state_col(row, 6)?,
        cancel_reason: col(row, 7)?,
        result: opt_json_col(row, 8)?,
        action_items: col(row, 9)?,
        created_at: col(row, 10)?,
        updated_at: col(row, 11)?,
    })
}

/// The delivery columns, in the order [`delivery_row`] reads them.
macro_rules! delivery_cols {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "account, ",
            $p,
            "endpoint_id, ",
            $p,
            "message_id, ",
            $p,
            "event_type, ",
            $p,
            "payload, ",
            $p,
            "call_id, ",
            $p,
            "state, ",
            $p,
            "attempts, ",
            $p,
            "next_attempt_at, ",
            $p,
            "last_error, ",
            $p,
            "created_at, ",
            $p,
            "updated_at"
        )
    };
}
const DELIVERY_COLS: &str = delivery_cols!("");
/// How many columns [`delivery_row`] reads.
const DELIVERY_NCOLS: usize = 13;

fn delivery_row(row: &Row) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: DeliveryId::new(col::<String>(row, 0)?),
        account: AccountId::new(col::<String>(row, 1)?),
        endpoint_id: WebhookId::new(col::<String>(row, 2)?),
        message_id: MessageId::new(col::<String>(row, 3)?),
        event_type: crate::store::event_type(col(row, 4)?),
        payload: Bytes::from(col::<Vec<u8>>(row, 5)?),
        call_id: col::<Option<String>>(row, 6)?.map(CallId::new),
        state: delivery_state_col(row, 7)?,
        attempts: u32_col(row, 8)?,
        next_attempt_at: col(row, 9)?,
        last_error: col(row, 10)?,
        created_at: col(row, 11)?,
        updated_at: col(row, 12)?,
    })
}

const ATTEMPT_COLS: &str = "account, endpoint_id, delivery_id, message_id, event_type, attempt, \
     at, status, error, error_message, response_body, duration_ms, success, test";

fn attempt_row(row: &Row) -> StoreResult<DeliveryAttempt> {
    let duration: i64 = col(row, 11)?;
    Ok(DeliveryAttempt {
        account: AccountId::new(col::<String>(row, 0)?),
        endpoint_id: WebhookId::new(col::<String>(row, 1)?),
        delivery_id: col::<Option<String>>(row, 2)?.map(DeliveryId::new),
        message_id: MessageId::new(col::<String>(row, 3)?),
        event_type: crate::store::event_type(col(row, 4)?),
        attempt: u32_col(row, 5)?,
        at: col(row, 6)?,
        status: match col::<Option<i32>>(row, 7)? {
            None => None,
            Some(_) => Some(u16_col(row, 7)?),
        },
        error: transport_error_col(row, 8)?,
        error_message: col(row, 9)?,
        response_body: col(row, 10)?,
        duration_ms: u64::try_from(duration)
            .map_err(|_| corrupt(format_args!("duration_ms {duration} is negative")))?,
        success: col(row, 12)?,
        test: col(row, 13)?,
    })
}

const REQUEST_COLS: &str = "account, webhook_id, slug, slug_known, at, status, outcome, code, message, ignored_keys, call_id";

fn request_row(row: &Row) -> StoreResult<RequestLogEntry> {
    Ok(RequestLogEntry {
        account: col::<Option<String>>(row, 0)?.map(AccountId::new),
        webhook_id: col::<Option<String>>(row, 1)?.map(WebhookId::new),
        slug: col(row, 2)?,
        slug_known: col(row, 3)?,
        at: col(row, 4)?,
        status: u16_col(row, 5)?,
        outcome: enum_col(row, 6)?,
        code: col::<Option<String>>(row, 7)?.map(Cow::Owned),
        message: Cow::Owned(col(row, 8)?),
        ignored_keys: json_col(row, 9)?,
        call_id: col::<Option<String>>(row, 10)?.map(CallId::new),
    })
}

// ---------------------------------------------------------------------------------------
// Batches of deliveries
// ---------------------------------------------------------------------------------------

/// Deliveries as one array per column, for one `INSERT … SELECT … FROM unnest(…)`.
struct DeliveryArrays<'a> {
    id: Vec<&'a str>,
    account: Vec<&'a str>,
    endpoint_id: Vec<&'a str>,
    message_id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    payload: Vec<&'a [u8]>,
    call_id: Vec<Option<&'a str>>,
    state: Vec<&'static str>,
    attempts: Vec<i64>,
    next_attempt_at: Vec<DateTime<Utc>>,
    last_error: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl<'a> DeliveryArrays<'a> {
    fn new(deliveries: &'a [Delivery]) -> Self {
        let n = deliveries.len();
        let mut a = DeliveryArrays {
            id: Vec::with_capacity(n),
            account: Vec::with_capacity(n),
            endpoint_id: Vec::with_capacity(n),
            message_id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            call_id: Vec::with_capacity(n),
            state: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            next_attempt_at: Vec::with_capacity(n),
            last_error: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
        };
        for d in deliveries {
            a.id.push(d.id.as_str());
            a.account.push(d.account.as_str());
            a.endpoint_id.push(d.endpoint_id.as_str());
            a.message_id.push(d.message_id.as_str());
            a.event_type.push(&d.event_type);
            a.payload.push(&d.payload);
            a.call_id.push(d.call_id.as_ref().map(|c| c.as_str()));
            a.state.push(d.state.as_str());
            a.attempts.push(i64::from(d.attempts));
            a.next_attempt_at.push(d.next_attempt_at);
            a.last_error.push(d.last_error.as_deref());
            a.created_at.push(d.created_at);
            a.updated_at.push(d.updated_at);
        }
        a
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.id,
            &self.account,
            &self.endpoint_id,
            &self.message_id,
            &self.event_type,
            &self.payload,
            &self.call_id,
            &self.state,
            &self.attempts,
            &self.next_attempt_at,
            &self.last_error,
            &self.created_at,
            &self.updated_at,
        ]
    }
}

/// Inserts deliveries given as 13 arrays from `$first` (`INSERT … SELECT … FROM unnest`:
/// one statement for any number of rows), and queues the pending ones, due at their
/// `next_attempt_at`. `where_clause` filters the rows; the result is CTEs `d` (the
/// deliveries inserted) and `q`, to put after `WITH` or a CTE list.
fn insert_deliveries_ctes(first: usize, where_clause: &str) -> String {
    let p: Vec<String> = (first..first + DELIVERY_NCOLS)
        .map(|i| format!("${i}"))
        .collect();
    format!(
        "d AS (\
            INSERT INTO deliveries ({DELIVERY_COLS}) \
            SELECT {DELIVERY_COLS} FROM unnest(\
            {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::bytea[], {}::text[], \
            {}::text[], {}::bigint[], {}::timestamptz[], {}::text[], {}::timestamptz[], \
            {}::timestamptz[]) AS t({DELIVERY_COLS}) {where_clause} \
            RETURNING id, state, next_attempt_at\
         ), q AS (\
            INSERT INTO delivery_queue (id, due_at) \
            SELECT id, next_attempt_at FROM d WHERE state = 'pending'\
         )",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]
    )
}

/// `inbound_by_slug`, which every inbound request runs: built once.
static BY_SLUG_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {INBOUND_COLS} FROM inbound_webhooks WHERE slug = $1"));

static ENQUEUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {} SELECT count(*) FROM d",
        insert_deliveries_ctes(1, "")
    )
});

/// Completes a call and enqueues its deliveries in one statement (so one transaction):
/// the deliveries are inserted only when the call was updated, and a unique violation
/// among them undoes the call's update too.
static COMPLETE_CALL_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH c AS (\
            UPDATE calls SET state = 'completed', result = $3, action_items = $4, updated_at = $5 \
            WHERE id = $1 AND account = $2 AND state NOT IN ('completed', 'cancelled') \
            RETURNING id\
         ), {} \
         SELECT count(*) FROM c",
        insert_deliveries_ctes(6, "WHERE EXISTS (SELECT 1 FROM c)")
    )
});

/// Leases up to `$2` deliveries due at `$1` until `$3`, in one statement: the oldest due
/// queue rows that no one else is locking, each stamped with a fresh token and due again
/// at the lease end; returned with their deliveries and when they were due.
///
/// The queue's row count swings between empty and large, so its statistics are often
/// wrong (a `VACUUM` of a drained queue records zero rows). The statements on it are
/// shaped to have one sensible plan whatever the estimates: the due rows are picked once
/// (`MATERIALIZED`), and rows are then reached by primary key through an array or a
/// scalar subquery, never by a join the planner could turn into a rescan per queue row.
const LEASE_SQL: &str = concat!(
    "WITH due AS MATERIALIZED (\
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
     SELECT ",
    delivery_cols!("d."),
    ", leased.lease_token, leased.lease_until, due.due_at \
     FROM leased JOIN due ON due.id = leased.id JOIN deliveries AS d ON d.id = leased.id"
);

/// Records a final outcome ($3: succeeded or dead) of the lease `$2` of delivery `$1`: its
/// queue row goes, the delivery is updated. A stale token matches no queue row, so nothing
/// changes.
const FINISH_DONE_SQL: &str = "WITH q AS (\
        DELETE FROM delivery_queue WHERE id = $1 AND lease_token = $2 RETURNING id\
     ) \
     UPDATE deliveries SET state = $3, attempts = attempts + 1, last_error = $4, \
     updated_at = $5 \
     WHERE id = (SELECT id FROM q)";

/// Records a failed attempt to retry at `$3` of the lease `$2` of delivery `$1`.
const FINISH_RETRY_SQL: &str = "WITH q AS (\
        UPDATE delivery_queue SET due_at = $3, lease_token = NULL, lease_until = NULL \
        WHERE id = $1 AND lease_token = $2 RETURNING id\
     ) \
     UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $3, \
     last_error = $4, updated_at = $5 \
     WHERE id = (SELECT id FROM q)";

/// Gives the lease `$2` of delivery `$1` back, due at `$3`.
const RELEASE_SQL: &str = "WITH q AS (\
        UPDATE delivery_queue SET due_at = $3, lease_token = NULL, lease_until = NULL \
        WHERE id = $1 AND lease_token = $2 RETURNING id\
     ) \
     UPDATE deliveries SET next_attempt_at = $3 WHERE id = (SELECT id FROM q)";

/// Makes the deliveries whose queue rows CTE `q` deleted dead letters: a CTE named `k`.
/// Queue rows are always locked before their deliveries (as `finish` does), so killing
/// and finishing at once cannot deadlock.
macro_rules! kill_cte {
    ($reason:literal, $now:literal) => {
        concat!(
            "k AS (UPDATE deliveries AS d SET state = 'dead', last_error = ",
            $reason,
            ", updated_at = ",
            $now,
            " FROM q WHERE d.id = q.id AND d.state = 'pending' RETURNING d.id)"
        )
    };
}

/// Puts revived deliveries (CTE `d`, pending again at `$now`) back in the queue: a CTE
/// named `q`.
macro_rules! requeue_cte {
    ($now:literal) => {
        concat!(
            "q AS (INSERT INTO delivery_queue (id, due_at) SELECT id, ",
            $now,
            "::timestamptz FROM d \
             ON CONFLICT (id) DO UPDATE SET due_at = EXCLUDED.due_at, lease_token = NULL, \
             lease_until = NULL)"
        )
    };
}

/// Makes deliveries pending again, due at `$now` (the `SET` of an `UPDATE deliveries`).
macro_rules! revive_set {
    ($now:literal) => {
        concat!(
            "SET state = 'pending', next_attempt_at = ",
            $now,
            ", updated_at = ",
            $now
        )
    };
}

// ---------------------------------------------------------------------------------------
// WebhookStore
// ---------------------------------------------------------------------------------------

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let kind = enum_text(&campaign.kind)?;
        let status = enum_text(&campaign.status)?;
        let version = i64::from(campaign.settings_version);
        self.execute(
            "WITH c AS (\
                INSERT INTO campaigns (id, account, name, kind, status, settings_version, settings, created_at, updated_at) \
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id\
             ) \
             INSERT INTO settings_versions (campaign_id, version, settings, created_at) \
             SELECT id, $6, $7, $9 FROM c \
             ON CONFLICT (campaign_id, version) DO UPDATE \
             SET settings = EXCLUDED.settings, created_at = EXCLUDED.created_at",
            &[
                &campaign.id.as_str(),
                &campaign.account.as_str(),
                &campaign.name,
                &kind,
                &status,
                &version,
                &Json(&campaign.settings),
                &campaign.created_at,
                &campaign.updated_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn campaign(&self, account: &AccountId, id: &CampaignId) -> StoreResult<Campaign> {
        let sql = format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = $1 AND account = $2");
        match self
            .query_opt(&sql, &[&id.as_str(), &account.as_str()])
            .await?
        {
            Some(row) => campaign_row(&row),
            None => Err(StoreError::not_found("campaign", id)),
        }
    }

    async fn update_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let kind = enum_text(&campaign.kind)?;
        let status = enum_text(&campaign.status)?;
        let version = i64::from(campaign.settings_version);
        let row = self
            .query_opt(
                "WITH c AS (\
                    UPDATE campaigns SET name = $3, kind = $4, status = $5, settings_version = $6, \
                    settings = $7, created_at = $8, updated_at = $9 \
                    WHERE id = $1 AND account = $2 RETURNING id\
                 ), v AS (\
                    INSERT INTO settings_versions (campaign_id, version, settings, created_at) \
                    SELECT id, $6, $7, $9 FROM c \
                    ON CONFLICT (campaign_id, version) DO NOTHING\
                 ) \
                 SELECT count(*) FROM c",
                &[
                    &campaign.id.as_str(),
                    &campaign.account.as_str(),
                    &campaign.name,
                    &kind,
                    &status,
                    &version,
                    &Json(&campaign.settings),
                    &campaign.created_at,
                    &campaign.updated_at,
                ],
            )
            .await?;
        match row.map(|r| col::<i64>(&r, 0)).transpose()? {
            Some(n) if n > 0 => Ok(()),
            _ => Err(StoreError::not_found("campaign", &campaign.id)),
        }
    }

    async fn campaigns(&self, account: &AccountId) -> StoreResult<Vec<Campaign>> {
        let sql = format!(
            "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE account = $1 ORDER BY created_at, id"
        );
        self.query(&sql, &[&account.as_str()])
            .await?
            .iter()
            .map(campaign_row)
            .collect()
    }

    async fn settings_version(
        &self,
        account: &AccountId,
        campaign: &CampaignId,
        version: u32,
    ) -> StoreResult<SettingsVersion> {
        let row = self
            .query_opt(
                "SELECT v.settings, v.created_at FROM campaigns c \
                 LEFT JOIN settings_versions v ON v.campaign_id = c.id AND v.version = $3 \
                 WHERE c.id = $1 AND c.account = $2",
                &[&campaign.as_str(), &account.as_str(), &i64::from(version)],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("campaign", campaign))?;
        let settings: Option<Json<CampaignSettings>> = col(&row, 0)?;
        let created_at: Option<DateTime<Utc>> = col(&row, 1)?;
        match (settings, created_at) {
            (Some(Json(settings)), Some(created_at)) => Ok(SettingsVersion {
                campaign_id: campaign.clone(),
                version,
                settings,
                created_at,
            }),
            _ => Err(StoreError::not_found(
                "settings version",
                format!("{campaign}@{version}"),
            )),
        }
    }

    async fn insert_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()> {
        self.execute(
            &format!("INSERT INTO inbound_webhooks ({INBOUND_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
            &[
                &webhook.id.as_str(),
                &webhook.account.as_str(),
                &webhook.slug,
                &webhook.campaign_id.as_ref().map(|c| c.as_str()),
                &webhook.enabled,
                &webhook.response_endpoint.as_ref().map(|e| e.as_str()),
                &webhook.created_at,
                &webhook.updated_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<InboundWebhook> {
        let sql =
            format!("SELECT {INBOUND_COLS} FROM inbound_webhooks WHERE id = $1 AND account = $2");
        match self
            .query_opt(&sql, &[&id.as_str(), &account.as_str()])
            .await?
        {
            Some(row) => inbound_row(&row),
            None => Err(StoreError::not_found("inbound webhook", id)),
        }
    }

    async fn inbound_by_slug(&self, slug: &str) -> StoreResult<Option<InboundWebhook>> {
        self.query_opt(&BY_SLUG_SQL, &[&slug])
            .await?
            .map(|r| inbound_row(&r))
            .transpose()
    }

    async fn update_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()> {
        let n = self
            .execute(
                "UPDATE inbound_webhooks SET slug = $3, campaign_id = $4, enabled = $5, \
                 response_endpoint = $6, created_at = $7, updated_at = $8 \
                 WHERE id = $1 AND account = $2",
                &[
                    &webhook.id.as_str(),
                    &webhook.account.as_str(),
                    &webhook.slug,
                    &webhook.campaign_id.as_ref().map(|c| c.as_str()),
                    &webhook.enabled,
                    &webhook.response_endpoint.as_ref().map(|e| e.as_str()),
                    &webhook.created_at,
                    &webhook.updated_at,
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::not_found("inbound webhook", &webhook.id));
        }
        Ok(())
    }

    async fn delete_inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()> {
        // One statement: the webhook, its response endpoint, and that endpoint's pending
        // deliveries turned dead letters, all or nothing.
        let row = self
            .query_opt(
                concat!(
                    "WITH w AS (\
                        DELETE FROM inbound_webhooks WHERE id = $1 AND account = $2 \
                        RETURNING response_endpoint\
                     ), e AS (\
                        DELETE FROM endpoints \
                        WHERE account = $2 AND id IN (SELECT response_endpoint FROM w)\
                     ), q AS (\
                        DELETE FROM delivery_queue AS dq USING deliveries AS dd, w \
                        WHERE dq.id = dd.id AND dd.account = $2 \
                          AND dd.endpoint_id = w.response_endpoint \
                        RETURNING dq.id\
                     ), ",
                    kill_cte!("'webhook deleted'", "$3"),
                    " SELECT count(*) FROM w"
                ),
                &[&id.as_str(), &account.as_str(), &Utc::now()],
            )
            .await?;
        match row.map(|r| col::<i64>(&r, 0)).transpose()? {
            Some(n) if n > 0 => Ok(()),
            _ => Err(StoreError::not_found("inbound webhook", id)),
        }
    }

    async fn inbound_webhooks(&self, account: &AccountId) -> StoreResult<Vec<InboundWebhook>> {
        let sql = format!(
            "SELECT {INBOUND_COLS} FROM inbound_webhooks WHERE account = $1 ORDER BY created_at, id"
        );
        self.query(&sql, &[&account.as_str()])
            .await?
            .iter()
            .map(inbound_row)
            .collect()
    }

    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO endpoints ({ENDPOINT_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        self.execute(
            &sql,
            &[
                &endpoint.id.as_str(),
                &endpoint.account.as_str(),
                &Json(&endpoint.kind),
                &endpoint.url,
                &endpoint.method.as_str(),
                &Json(&endpoint.headers),
                &Json(&endpoint.secrets),
                &endpoint.managed_by,
                &endpoint.enabled,
                &endpoint.disabled_reason,
                &endpoint.last_success_at,
                &endpoint.failing_since,
                &endpoint.created_at,
                &endpoint.updated_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<Endpoint> {
        let sql = format!("SELECT {ENDPOINT_COLS} FROM endpoints WHERE id = $1 AND account = $2");
        match self
            .query_opt(&sql, &[&id.as_str(), &account.as_str()])
            .await?
        {
            Some(row) => endpoint_row(&row),
            None => Err(StoreError::not_found("webhook", id)),
        }
    }

    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let n = self
            .execute(
                "UPDATE endpoints SET kind = $3, url = $4, method = $5, headers = $6, \
                 secrets = $7, managed_by = $8, enabled = $9, disabled_reason = $10, \
                 last_success_at = $11, failing_since = $12, created_at = $13, updated_at = $14 \
                 WHERE id = $1 AND account = $2",
                &[
                    &endpoint.id.as_str(),
                    &endpoint.account.as_str(),
                    &Json(&endpoint.kind),
                    &endpoint.url,
                    &endpoint.method.as_str(),
                    &Json(&endpoint.headers),
                    &Json(&endpoint.secrets),
                    &endpoint.managed_by,
                    &endpoint.enabled,
                    &endpoint.disabled_reason,
                    &endpoint.last_success_at,
                    &endpoint.failing_since,
                    &endpoint.created_at,
                    &endpoint.updated_at,
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::not_found("webhook", &endpoint.id));
        }
        Ok(())
    }

    async fn delete_endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()> {
        let row = self
            .query_opt(
                concat!(
                    "WITH e AS (\
                        DELETE FROM endpoints WHERE id = $1 AND account = $2 RETURNING id\
                     ), q AS (\
                        DELETE FROM delivery_queue AS dq USING deliveries AS dd, e \
                        WHERE dq.id = dd.id AND dd.account = $2 AND dd.endpoint_id = e.id \
                        RETURNING dq.id\
                     ), ",
                    kill_cte!("'webhook deleted'", "$3"),
                    " SELECT count(*) FROM e"
                ),
                &[&id.as_str(), &account.as_str(), &Utc::now()],
            )
            .await?;
        match row.map(|r| col::<i64>(&r, 0)).transpose()? {
            Some(n) if n > 0 => Ok(()),
            _ => Err(StoreError::not_found("webhook", id)),
        }
    }

    async fn endpoints(&self, account: &AccountId) -> StoreResult<Vec<Endpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = $1 ORDER BY created_at, id"
        );
        self.query(&sql, &[&account.as_str()])
            .await?
            .iter()
            .map(endpoint_row)
            .collect()
    }

    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLS} FROM endpoints ORDER BY created_at, id");
        self.query(&sql, &[])
            .await?
            .iter()
            .map(endpoint_row)
            .collect()
    }

    async fn record_health(
        &self,
        account: &AccountId,
        id: &WebhookId,
        success: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Endpoint> {
        let sql = format!(
            "UPDATE endpoints SET \
             last_success_at = CASE WHEN $3 THEN $4 ELSE last_success_at END, \
             failing_since = CASE WHEN $3 THEN NULL ELSE COALESCE(failing_since, $4) END \
             WHERE id = $1 AND account = $2 RETURNING {ENDPOINT_COLS}"
        );
        match self
            .query_opt(&sql, &[&id.as_str(), &account.as_str(), &success, &now])
            .await?
        {
            Some(row) => endpoint_row(&row),
            None => Err(StoreError::not_found("webhook", id)),
        }
    }

    async fn disable_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let n = self
            .execute(
                "UPDATE endpoints SET enabled = false, disabled_reason = $3, updated_at = $4 \
                 WHERE id = $1 AND account = $2",
                &[&id.as_str(), &account.as_str(), &reason, &now],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::not_found("webhook", id));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// CallStore
// ---------------------------------------------------------------------------------------

#[async_trait]
impl CallStore for PostgresStore {
    async fn insert_call(&self, call: &CallRecord) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO calls ({CALL_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        self.execute(
            &sql,
            &[
                &call.id.as_str(),
                &call.account.as_str(),
                &call.campaign_id.as_ref().map(|c| c.as_str()),
                &i64::from(call.settings_version),
                &Json(&call.origin),
                &Json(&call.contact),
                &call.state.as_str(),
                &call.cancel_reason,
                &call.result.as_ref().map(Json),
                &call.action_items,
                &call.created_at,
                &call.updated_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn call(&self, account: &AccountId, id: &CallId) -> StoreResult<CallRecord> {
        let sql = format!("SELECT {CALL_COLS} FROM calls WHERE id = $1 AND account = $2");
        match self
            .query_opt(&sql, &[&id.as_str(), &account.as_str()])
            .await?
        {
            Some(row) => call_row(&row),
            None => Err(StoreError::not_found("call", id)),
        }
    }

    async fn set_call_state(
        &self,
        account: &AccountId,
        id: &CallId,
        state: CallState,
        cancel_reason: Option<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let n = self
            .execute(
                "UPDATE calls SET state = $3, cancel_reason = $4, updated_at = $5 \
                 WHERE id = $1 AND account = $2",
                &[
                    &id.as_str(),
                    &account.as_str(),
                    &state.as_str(),
                    &cancel_reason,
                    &now,
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::not_found("call", id));
        }
        Ok(())
    }

    async fn calls(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
        limit: usize,
    ) -> StoreResult<Vec<CallRecord>> {
        let limit = limit_param(limit);
        let rows = match campaign {
            None => {
                let sql = format!(
                    "SELECT {CALL_COLS} FROM calls WHERE account = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                );
                self.query(&sql, &[&account.as_str(), &limit]).await?
            }
            Some(c) => {
                let sql = format!(
                    "SELECT {CALL_COLS} FROM calls WHERE account = $1 AND campaign_id = $2 \
                     ORDER BY created_at DESC, id DESC LIMIT $3"
                );
                self.query(&sql, &[&account.as_str(), &c.as_str(), &limit])
                    .await?
            }
        };
        rows.iter().map(call_row).collect()
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
        let arrays = DeliveryArrays::new(deliveries);
        let head: [&(dyn ToSql + Sync); 5] = [
            &id.as_str(),
            &account.as_str(),
            &Json(result),
            &action_items,
            &now,
        ];
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(5 + DELIVERY_NCOLS);
        params.extend_from_slice(&head);
        params.extend_from_slice(&arrays.params());
        let c = self.client().await?;
        let st = c
            .prepare_cached(COMPLETE_CALL_SQL.as_str())
            .await
            .map_err(db_error)?;
        let row = c.query_one(&st, &params).await.map_err(db_error)?;
        if col::<i64>(&row, 0)? > 0 {
            return Ok(());
        }
        // Nothing changed: say why.
        let st = c
            .prepare_cached("SELECT state FROM calls WHERE id = $1 AND account = $2")
            .await
            .map_err(db_error)?;
        match c
            .query_opt(&st, &[&id.as_str(), &account.as_str()])
            .await
            .map_err(db_error)?
        {
            None => Err(StoreError::not_found("call", id)),
            Some(row) => Err(StoreError::Conflict(format!(
                "call {id} is already {}",
                call_state_col(&row, 0)?.as_str()
            ))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// QueueStore
// ---------------------------------------------------------------------------------------

#[async_trait]
impl QueueStore for PostgresStore {
    async fn enqueue(&self, deliveries: &[Delivery]) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let arrays = DeliveryArrays::new(deliveries);
        self.execute(ENQUEUE_SQL.as_str(), &arrays.params()).await?;
        Ok(())
    }

    async fn lease(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease_for: Duration,
    ) -> StoreResult<Vec<Lease>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_for = chrono::Duration::from_std(lease_for)
            .map_err(|e| StoreError::Backend(format!("lease duration: {e}")))?;
        let until = now
            .checked_add_signed(lease_for)
            .ok_or_else(|| StoreError::Backend("lease end out of range".into()))?;
        let rows = self
            .query(LEASE_SQL, &[&now, &count_param(limit), &until])
            .await?;
        let mut leases = Vec::with_capacity(rows.len());
        for row in &rows {
            let token: i64 = col(row, DELIVERY_NCOLS)?;
            let prev_due: DateTime<Utc> = col(row, DELIVERY_NCOLS + 2)?;
            leases.push((
                prev_due,
                Lease {
                    delivery: delivery_row(row)?,
                    token: u64::try_from(token)
                        .map_err(|_| corrupt(format_args!("lease token {token} is negative")))?,
                    lease_until: col(row, DELIVERY_NCOLS + 1)?,
                },
            ));
        }
        self.queue_changed(u64::try_from(rows.len()).unwrap_or(u64::MAX));
        // RETURNING has no order: oldest due first, as they were picked.
        leases.sort_by_key(|a| a.0);
        Ok(leases.into_iter().map(|(_, l)| l).collect())
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: LeaseOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let Ok(token) = i64::try_from(lease.token) else {
            return Ok(false); // never handed out by this backend
        };
        let id = lease.delivery.id.as_str();
        let n = match &outcome {
            LeaseOutcome::Succeeded => {
                let state = DeliveryState::Succeeded.as_str();
                let error: Option<&str> = None;
                self.execute(FINISH_DONE_SQL, &[&id, &token, &state, &error, &now])
                    .await?
            }
            LeaseOutcome::Dead { error } => {
                let state = DeliveryState::Dead.as_str();
                self.execute(FINISH_DONE_SQL, &[&id, &token, &state, error, &now])
                    .await?
            }
            LeaseOutcome::Retry {
                next_attempt_at,
                error,
            } => {
                self.execute(
                    FINISH_RETRY_SQL,
                    &[&id, &token, next_attempt_at, error, &now],
                )
                .await?
            }
        };
        self.queue_changed(n);
        Ok(n > 0)
    }

    async fn finish_many(
        &self,
        items: &[(&Lease, LeaseOutcome)],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // The same statements as `finish`, in one transaction: one commit (one WAL flush)
        // for the batch instead of one per lease. Rows go in id order, so that two batches
        // never wait for each other's rows the other way round.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| items[a].0.delivery.id.cmp(&items[b].0.delivery.id));
        let mut c = self.client().await?;
        let done = c.prepare_cached(FINISH_DONE_SQL).await.map_err(db_error)?;
        let retry = c.prepare_cached(FINISH_RETRY_SQL).await.map_err(db_error)?;
        let tx = c.transaction().await.map_err(db_error)?;
        let mut held = vec![false; items.len()];
        let mut changed = 0;
        for i in order {
            let (lease, outcome) = &items[i];
            let Ok(token) = i64::try_from(lease.token) else {
                continue; // never handed out by this backend
            };
            let id = lease.delivery.id.as_str();
            let n = match outcome {
                LeaseOutcome::Succeeded => {
                    let state = DeliveryState::Succeeded.as_str();
                    let error: Option<&str> = None;
                    tx.execute(&done, &[&id, &token, &state, &error, &now])
                        .await
                        .map_err(db_error)?
                }
                LeaseOutcome::Dead { error } => {
                    let state = DeliveryState::Dead.as_str();
                    tx.execute(&done, &[&id, &token, &state, error, &now])
                        .await
                        .map_err(db_error)?
                }
                LeaseOutcome::Retry {
                    next_attempt_at,
                    error,
                } => tx
                    .execute(&retry, &[&id, &token, next_attempt_at, error, &now])
                    .await
                    .map_err(db_error)?,
            };
            changed += n;
            held[i] = n > 0;
        }
        tx.commit().await.map_err(db_error)?;
        self.queue_changed(changed);
        Ok(held)
    }

    async fn release(&self, lease: &Lease, due_at: DateTime<Utc>) -> StoreResult<()> {
        let Ok(token) = i64::try_from(lease.token) else {
            return Ok(());
        };
        let n = self
            .execute(RELEASE_SQL, &[&lease.delivery.id.as_str(), &token, &due_at])
            .await?;
        self.queue_changed(n);
        Ok(())
    }

    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        match self
            .query_opt("SELECT min(due_at) FROM delivery_queue", &[])
            .await?
        {
            Some(row) => col(&row, 0),
            None => Ok(None),
        }
    }

    async fn delivery(&self, account: &AccountId, id: &DeliveryId) -> StoreResult<Delivery> {
        let sql = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = $1 AND account = $2");
        match self
            .query_opt(&sql, &[&id.as_str(), &account.as_str()])
            .await?
        {
            Some(row) => delivery_row(&row),
            None => Err(StoreError::not_found("delivery", id)),
        }
    }

    async fn deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<Delivery>> {
        let account = account.as_str();
        let endpoint = filter.endpoint_id.as_ref().map(|e| e.as_str());
        let state = filter.state.map(DeliveryState::as_str);
        let limit = limit_param(filter.limit);
        let mut sql = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE account = $1");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&account];
        if let Some(e) = &endpoint {
            params.push(e);
            sql.push_str(&format!(" AND endpoint_id = ${}", params.len()));
        }
        if let Some(s) = &state {
            params.push(s);
            sql.push_str(&format!(" AND state = ${}", params.len()));
        }
        if let Some(t) = &filter.since {
            params.push(t);
            sql.push_str(&format!(" AND created_at >= ${}", params.len()));
        }
        params.push(&limit);
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT ${}",
            params.len()
        ));
        self.query(&sql, &params)
            .await?
            .iter()
            .map(delivery_row)
            .collect()
    }

    async fn redeliver(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<Delivery> {
        let sql = format!(
            concat!(
                "WITH d AS (UPDATE deliveries ",
                revive_set!("$3"),
                " WHERE id = $1 AND account = $2 AND state <> 'pending' RETURNING {cols}), ",
                requeue_cte!("$3"),
                " SELECT {cols} FROM d"
            ),
            cols = DELIVERY_COLS
        );
        if let Some(row) = self
            .query_opt(&sql, &[&id.as_str(), &account.as_str(), &now])
            .await?
        {
            return delivery_row(&row);
        }
        // Pending already (left as it is), or no such delivery.
        self.delivery(account, id).await
    }

    async fn redeliver_dead_since(
        &self,
        account: &AccountId,
        endpoint: Option<&WebhookId>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let row = match endpoint {
            None => {
                self.query_opt(
                    concat!(
                        "WITH d AS (UPDATE deliveries ",
                        revive_set!("$3"),
                        " WHERE account = $1 AND state = 'dead' AND created_at >= $2 \
                          RETURNING id), ",
                        requeue_cte!("$3"),
                        " SELECT count(*) FROM d"
                    ),
                    &[&account.as_str(), &since, &now],
                )
                .await?
            }
            Some(e) => {
                self.query_opt(
                    concat!(
                        "WITH d AS (UPDATE deliveries ",
                        revive_set!("$3"),
                        " WHERE account = $1 AND state = 'dead' AND created_at >= $2 \
                          AND endpoint_id = $4 RETURNING id), ",
                        requeue_cte!("$3"),
                        " SELECT count(*) FROM d"
                    ),
                    &[&account.as_str(), &since, &now, &e.as_str()],
                )
                .await?
            }
        };
        let n = row.map(|r| col::<i64>(&r, 0)).transpose()?.unwrap_or(0);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn kill_pending(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let row = self
            .query_opt(
                concat!(
                    "WITH q AS (\
                        DELETE FROM delivery_queue AS dq USING deliveries AS dd \
                        WHERE dq.id = dd.id AND dd.account = $1 AND dd.endpoint_id = $2 \
                        RETURNING dq.id\
                     ), ",
                    kill_cte!("$3", "$4"),
                    " SELECT count(*) FROM k"
                ),
                &[&account.as_str(), &endpoint.as_str(), &reason, &now],
            )
            .await?;
        let n = row.map(|r| col::<i64>(&r, 0)).transpose()?.unwrap_or(0);
        let n = u64::try_from(n).unwrap_or(0);
        self.queue_changed(n);
        Ok(count_result(n))
    }
}

// ---------------------------------------------------------------------------------------
// LogStore
// ---------------------------------------------------------------------------------------

#[async_trait]
impl LogStore for PostgresStore {
    async fn append_attempt(&self, attempt: DeliveryAttempt) -> StoreResult<()> {
        let duration = i64::try_from(attempt.duration_ms)
            .map_err(|_| StoreError::Backend("duration_ms out of range".into()))?;
        let insert_sql = format!(
            "INSERT INTO delivery_attempts ({ATTEMPT_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        let c = self.client().await?;
        let insert = c.prepare_cached(&insert_sql).await.map_err(db_error)?;
        let params: [&(dyn ToSql + Sync); 14] = [
            &attempt.account.as_str(),
            &attempt.endpoint_id.as_str(),
            &attempt.delivery_id.as_ref().map(|d| d.as_str()),
            &attempt.message_id.as_str(),
            &attempt.event_type,
            &i64::from(attempt.attempt),
            &attempt.at,
            &attempt.status.map(i32::from),
            &attempt.error.map(TransportErrorKind::as_str),
            &attempt.error_message,
            &attempt.response_body,
            &duration,
            &attempt.success,
            &attempt.test,
        ];
        if !self.sample(TRIM_ONE_IN) {
            c.execute(&insert, &params).await.map_err(db_error)?;
            return Ok(());
        }
        // Keep the newest `attempts_per_endpoint`: pipelined with the insert, one round trip;
        // a failed trim is no reason to fail the append.
        let trim = c
            .prepare_cached(
                "DELETE FROM delivery_attempts WHERE endpoint_id = $1 AND (at, seq) < (\
                    SELECT at, seq FROM delivery_attempts WHERE endpoint_id = $1 \
                    ORDER BY at DESC, seq DESC OFFSET $2 LIMIT 1)",
            )
            .await
            .map_err(db_error)?;
        let keep = count_param(self.retention.attempts_per_endpoint.max(1) - 1);
        let endpoint = attempt.endpoint_id.as_str();
        let trim_params: [&(dyn ToSql + Sync); 2] = [&endpoint, &keep];
        let (inserted, _) =
            tokio::join!(c.execute(&insert, &params), c.execute(&trim, &trim_params));
        inserted.map_err(db_error)?;
        Ok(())
    }

    async fn attempts(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        success: Option<bool>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryAttempt>> {
        // The inner limit applies the retention exactly, however lazily rows are deleted.
        let cap = count_param(self.retention.attempts_per_endpoint.max(1));
        let limit = limit_param(limit);
        let inner = format!(
            "SELECT {ATTEMPT_COLS}, seq FROM delivery_attempts WHERE endpoint_id = $1 \
             ORDER BY at DESC, seq DESC LIMIT $2"
        );
        let rows = match success {
            None => {
                let sql = format!(
                    "SELECT {ATTEMPT_COLS} FROM ({inner}) a WHERE account = $3 \
                     ORDER BY at DESC, seq DESC LIMIT $4"
                );
                self.query(&sql, &[&endpoint.as_str(), &cap, &account.as_str(), &limit])
                    .await?
            }
            Some(s) => {
                let sql = format!(
                    "SELECT {ATTEMPT_COLS} FROM ({inner}) a WHERE account = $3 AND success = $5 \
                     ORDER BY at DESC, seq DESC LIMIT $4"
                );
                self.query(
                    &sql,
                    &[&endpoint.as_str(), &cap, &account.as_str(), &limit, &s],
                )
                .await?
            }
        };
        rows.iter().map(attempt_row).collect()
    }

    async fn append_request(&self, entry: RequestLogEntry) -> StoreResult<()> {
        let insert_sql = format!(
            "INSERT INTO request_log ({REQUEST_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let outcome = enum_text(&entry.outcome)?;
        let c = self.client().await?;
        let insert = c.prepare_cached(&insert_sql).await.map_err(db_error)?;
        let account = entry.account.as_ref().map(|a| a.as_str());
        let params: [&(dyn ToSql + Sync); 11] = [
            &account,
            &entry.webhook_id.as_ref().map(|w| w.as_str()),
            &entry.slug,
            &entry.slug_known,
            &entry.at,
            &i32::from(entry.status),
            &outcome,
            &entry.code.as_deref(),
            &&*entry.message,
            &Json(&entry.ignored_keys),
            &entry.call_id.as_ref().map(|c| c.as_str()),
        ];
        if !self.sample(TRIM_ONE_IN) {
            c.execute(&insert, &params).await.map_err(db_error)?;
            return Ok(());
        }
        // Keep the newest `requests_per_account`: pipelined with the insert, one round trip;
        // a failed trim is no reason to fail the append.
        let keep = count_param(self.retention.requests_per_account.max(1) - 1);
        let trimmed = match account {
            Some(a) => {
                let trim = c
                    .prepare_cached(
                        "DELETE FROM request_log WHERE account = $1 AND (at, seq) < (\
                            SELECT at, seq FROM request_log WHERE account = $1 \
                            ORDER BY at DESC, seq DESC OFFSET $2 LIMIT 1)",
                    )
                    .await
                    .map_err(db_error)?;
                let trim_params: [&(dyn ToSql + Sync); 2] = [&a, &keep];
                let (inserted, _) =
                    tokio::join!(c.execute(&insert, &params), c.execute(&trim, &trim_params));
                inserted
            }
            None => {
                let trim = c
                    .prepare_cached(
                        "DELETE FROM request_log WHERE account IS NULL AND (at, seq) < (\
                            SELECT at, seq FROM request_log WHERE account IS NULL \
                            ORDER BY at DESC, seq DESC OFFSET $1 LIMIT 1)",
                    )
                    .await
                    .map_err(db_error)?;
                let trim_params: [&(dyn ToSql + Sync); 1] = [&keep];
                let (inserted, _) =
                    tokio::join!(c.execute(&insert, &params), c.execute(&trim, &trim_params));
                inserted
            }
        };
        trimmed.map_err(db_error)?;
        Ok(())
    }

    async fn requests(
        &self,
        account: Option<&AccountId>,
        limit: usize,
    ) -> StoreResult<Vec<RequestLogEntry>> {
        let cap = count_param(self.retention.requests_per_account.max(1));
        let limit = limit_param(limit).min(cap);
        let rows = match account {
            Some(a) => {
                let sql = format!(
                    "SELECT {REQUEST_COLS} FROM request_log WHERE account = $1 \
                     ORDER BY at DESC, seq DESC LIMIT $2"
                );
                self.query(&sql, &[&a.as_str(), &limit]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {REQUEST_COLS} FROM request_log WHERE account IS NULL \
                     ORDER BY at DESC, seq DESC LIMIT $1"
                );
                self.query(&sql, &[&limit]).await?
            }
        };
        rows.iter().map(request_row).collect()
    }
}

// ---------------------------------------------------------------------------------------
// IdempotencyStore
// ---------------------------------------------------------------------------------------

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn claim_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<IdempotencyClaim> {
        let c = self.client().await?;
        let claim = c
            .prepare_cached(
                "INSERT INTO idempotency (account, webhook_id, key, expires_at) \
                 VALUES ($1, $2, $3, $5) \
                 ON CONFLICT (account, webhook_id, key) DO UPDATE \
                 SET expires_at = EXCLUDED.expires_at, status = NULL, body = NULL, call_id = NULL \
                 WHERE idempotency.expires_at <= $4 \
                 RETURNING 1",
            )
            .await
            .map_err(db_error)?;
        let read = c
            .prepare_cached(
                "SELECT status, body, call_id FROM idempotency \
                 WHERE account = $1 AND webhook_id = $2 AND key = $3 AND expires_at > $4",
            )
            .await
            .map_err(db_error)?;
        let (account, webhook) = (account.as_str(), webhook.as_str());
        let claim_params: [&(dyn ToSql + Sync); 5] = [&account, &webhook, &key, &now, &expires_at];
        let mut first = None;
        if self.sample(SWEEP_ONE_IN) {
            // Expired keys are dead weight: delete a batch, pipelined with the claim. Rows
            // another sweep or claim holds are skipped, so sweeps never wait nor deadlock;
            // a failed sweep is no reason to fail the claim.
            let sweep = c
                .prepare_cached(
                    "DELETE FROM idempotency WHERE (account, webhook_id, key) IN (\
                        SELECT account, webhook_id, key FROM idempotency \
                        WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                )
                .await
                .map_err(db_error)?;
            let sweep_params: [&(dyn ToSql + Sync); 2] = [&now, &SWEEP_BATCH];
            let (_, claimed) = tokio::join!(
                c.execute(&sweep, &sweep_params),
                c.query(&claim, &claim_params)
            );
            first = Some(claimed.map_err(db_error)?);
        }
        // A live claim can disappear between the two statements (abandoned, or expired):
        // then claim again.
        for _ in 0..3 {
            let claimed = match first.take() {
                Some(rows) => rows,
                None => c.query(&claim, &claim_params).await.map_err(db_error)?,
            };
            if !claimed.is_empty() {
                return Ok(IdempotencyClaim::New);
            }
            let Some(row) = c
                .query_opt(&read, &[&account, &webhook, &key, &now])
                .await
                .map_err(db_error)?
            else {
                continue;
            };
            let status: Option<i32> = col(&row, 0)?;
            return Ok(match status {
                None => IdempotencyClaim::InFlight,
                Some(_) => IdempotencyClaim::Done(StoredResponse {
                    status: u16_col(&row, 0)?,
                    body: Bytes::from(col::<Option<Vec<u8>>>(&row, 1)?.unwrap_or_default()),
                    call_id: col::<Option<String>>(&row, 2)?.map(CallId::new),
                }),
            });
        }
        // Claimed and dropped by others three times over: someone is on it.
        Ok(IdempotencyClaim::InFlight)
    }

    async fn finish_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        self.execute(
            "UPDATE idempotency SET status = $4, body = $5, call_id = $6 \
             WHERE account = $1 AND webhook_id = $2 AND key = $3",
            &[
                &account.as_str(),
                &webhook.as_str(),
                &key,
                &i32::from(response.status),
                &response.body.as_ref(),
                &response.call_id.as_ref().map(|c| c.as_str()),
            ],
        )
        .await?;
        Ok(())
    }

    async fn abandon_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
    ) -> StoreResult<()> {
        self.execute(
            "DELETE FROM idempotency WHERE account = $1 AND webhook_id = $2 AND key = $3",
            &[&account.as_str(), &webhook.as_str(), &key],
        )
        .await?;
        Ok(())
    }
}
