//! The durable embedded backend: one SQLite database file (feature `sqlite`, on by
//! default; SQLite is compiled in, nothing to install).
//!
//! ```no_run
//! use atllas_webhooks::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
//!
//! # fn main() -> Result<(), atllas_webhooks::store::StoreError> {
//! // WAL, synchronous=NORMAL: a crash of the process loses nothing committed.
//! let store = SqliteStore::open("webhooks.db")?;
//! // synchronous=FULL: every committed transaction also survives a power loss.
//! let strict = SqliteStore::open_with(
//!     "strict.db",
//!     SqliteOptions::default().with_synchronous(Synchronous::Full),
//! )?;
//! # let _ = (store, strict);
//! # Ok(())
//! # }
//! ```
//!
//! # Execution
//!
//! The store holds one connection behind a [`std::sync::Mutex`]. Every operation of the
//! storage traits runs as one closure on tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]), so the async executor never waits on disk; a batch
//! (enqueueing deliveries, leasing, completing a call) is one transaction in one closure,
//! with cached prepared statements. Called outside a tokio runtime, an operation runs on the
//! calling thread instead. Opening ([`SqliteStore::open`]) is a plain blocking call: it
//! applies the pragmas and the migrations.
//!
//! Several stores (in one process or several) may open the same file: writes take SQLite's
//! write lock (`BEGIN IMMEDIATE`, waiting up to the busy timeout), and lease tokens come from
//! a counter in the database, so no two leases ever share a token, across restarts too.
//!
//! # Durability
//!
//! The database runs in WAL mode. With the default [`Synchronous::Normal`], a transaction
//! that committed survives a crash or kill of the process (the WAL is in the operating
//! system's hands); only a power loss or an operating system crash can lose the last
//! transactions before the next checkpoint (never corrupting the database). Choose
//! [`Synchronous::Full`] when every committed transaction must survive a power loss too,
//! at the cost of one `fsync` per commit.
//!
//! # Schema
//!
//! Migrations are SQL compiled into the binary, numbered by `PRAGMA user_version` and
//! applied on open in one transaction; opening a database that a newer version of this
//! crate migrated further fails rather than guessing. Tables: `campaigns`,
//! `settings_versions`, `inbound_webhooks` (unique `slug`), `endpoints`, `calls`,
//! `deliveries`, `delivery_attempts`, `request_log`, `idempotency` and `queue_meta` (the
//! lease token counter). Scalar fields are columns; nested ones (campaign settings, sealed
//! headers and secrets, contact, call origin and result, action items, ignored keys) are
//! JSON text; a delivery's payload is a BLOB, byte for byte.
//!
//! Timestamps are INTEGER microseconds since the Unix epoch (UTC), the precision of
//! PostgreSQL's `timestamptz`: a time with sub-microsecond digits reads back truncated to
//! the microsecond. (Times nested inside JSON fields keep every digit.)
//!
//! # Log retention
//!
//! [`LogRetention`] is enforced on every append: the delivery log keeps the newest
//! `attempts_per_endpoint` attempts of each endpoint, the request log the newest
//! `requests_per_account` requests of each account (and of unknown slugs). Expired
//! idempotency keys are swept every 1024 claims.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{LogRetention, StoreError, StoreResult};

mod calls;
mod codec;
mod logs;
mod queue;
mod schema;
mod webhooks;

use codec::{DbError, DbResult};

/// How many idempotency claims pass between two sweeps of expired keys.
const IDEMPOTENCY_SWEEP_EVERY: u64 = 1024;

/// SQLite's `synchronous` setting, in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `NORMAL`: committed transactions survive a crash of the process; a power loss may
    /// lose the last ones (the database stays consistent). The default.
    #[default]
    Normal,
    /// `FULL`: every committed transaction survives a power loss too; one `fsync` per
    /// commit.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How a [`SqliteStore`] is opened.
///
/// ```
/// use std::time::Duration;
/// use atllas_webhooks::store::LogRetention;
/// use atllas_webhooks::store::sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::default()
///     .with_synchronous(Synchronous::Full)
///     .with_busy_timeout(Duration::from_secs(10))
///     .with_retention(LogRetention { attempts_per_endpoint: 500, requests_per_account: 500 });
/// assert_eq!(options.synchronous(), Synchronous::Full);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    busy_timeout: Duration,
    retention: LogRetention,
}

impl Default for SqliteOptions {
    /// [`Synchronous::Normal`], a busy timeout of 5 seconds, the default [`LogRetention`].
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            retention: LogRetention::default(),
        }
    }
}

impl SqliteOptions {
    /// Sets the `synchronous` setting (see [`Synchronous`]).
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets how long a write waits for another connection's write lock before failing
    /// with [`StoreError::Backend`].
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the log retention.
    pub fn with_retention(mut self, retention: LogRetention) -> Self {
        self.retention = retention;
        self
    }

    /// The `synchronous` setting.
    pub fn synchronous(&self) -> Synchronous {
        self.synchronous
    }

    /// The busy timeout.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The log retention.
    pub fn retention(&self) -> LogRetention {
        self.retention
    }
}

/// A store in one SQLite database. Cloning is cheap and shares the connection.
///
/// See the [module docs](self) for the execution model, durability and schema.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

/// What every clone of a store shares.
struct Shared {
    conn: Mutex<Connection>,
    retention: LogRetention,
    /// Where the database is; `None` in memory.
    path: Option<PathBuf>,
    /// Idempotency claims since the store was opened (drives the sweep of expired keys).
    claims: AtomicU64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("retention", &self.shared.retention)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path` with the default options: WAL mode,
    /// `synchronous=NORMAL`, foreign keys on, a 5-second busy timeout; applies the
    /// migrations it lacks. Blocking.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the database file at `path` with `options`. Blocking.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<Self> {
        let path = path.as_ref();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| {
            StoreError::Backend(format!("opening SQLite database {}: {e}", path.display()))
        })?;
        Self::setup(conn, Some(path.to_path_buf()), &options)
    }

    /// A private database in memory, gone when the last clone of the store is dropped
    /// (for tests and demos; no WAL).
    pub fn open_in_memory() -> StoreResult<Self> {
        Self::open_in_memory_with(SqliteOptions::default())
    }

    /// A private database in memory with `options` (only the retention matters).
    pub fn open_in_memory_with(options: SqliteOptions) -> StoreResult<Self> {
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::Backend(format!("opening SQLite in memory: {e}")))?;
        Self::setup(conn, None, &options)
    }

    fn setup(
        mut conn: Connection,
        path: Option<PathBuf>,
        options: &SqliteOptions,
    ) -> StoreResult<Self> {
        configure(&mut conn, path.is_some(), options).map_err(DbError::into_store)?;
        schema::migrate(&mut conn).map_err(DbError::into_store)?;
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                conn: Mutex::new(conn),
                retention: options.retention,
                path,
                claims: AtomicU64::new(0),
            }),
        })
    }

    /// The database file; `None` for a store in memory.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The log retention in force.
    pub fn retention(&self) -> LogRetention {
        self.shared.retention
    }

    /// The schema version of this build (what `PRAGMA user_version` reads after opening).
    pub fn schema_version() -> u32 {
        schema::VERSION
    }

    /// Runs `f` with the connection on the blocking pool (or right here outside a tokio
    /// runtime). A panic inside `f` is resumed in the caller; any transaction it left open
    /// was rolled back when its guard dropped.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Shared) -> DbResult<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let task = move || {
            // A panic while holding the lock left no transaction open (rusqlite rolls
            // back on drop), so the connection is still usable.
            let mut conn = shared.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn, &shared).map_err(DbError::into_store)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => match handle.spawn_blocking(task).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(StoreError::Backend(format!("storage task failed: {e}"))),
            },
            Err(_) => task(),
        }
    }
}

/// Pragmas and connection settings.
fn configure(conn: &mut Connection, file: bool, options: &SqliteOptions) -> DbResult<()> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(128);
    if file {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "SQLite refused WAL mode (journal_mode is {mode}); is the file on a network file system?"
            ))
            .into());
        }
    }
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_builder() {
        let o = SqliteOptions::default();
        assert_eq!(o.synchronous(), Synchronous::Normal);
        assert_eq!(o.busy_timeout(), Duration::from_secs(5));
        assert_eq!(o.retention(), LogRetention::default());
        let o = o
            .with_synchronous(Synchronous::Full)
            .with_busy_timeout(Duration::from_millis(10));
        assert_eq!(o.synchronous(), Synchronous::Full);
        assert_eq!(o.busy_timeout(), Duration::from_millis(10));
    }

    #[test]
    fn pragmas_are_applied() {
        let store = SqliteStore::open_in_memory_with(
            SqliteOptions::default().with_synchronous(Synchronous::Full),
        )
        .expect("open");
        let conn = store.shared.conn.lock().expect("lock");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(sync, 2, "FULL");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(fk, 1);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(version, i64::from(SqliteStore::schema_version()));
    }

    #[test]
    fn works_outside_a_runtime() {
        use crate::store::QueueStore;
        let store = SqliteStore::open_in_memory().expect("open");
        let due = block_on_inline(store.next_due());
        assert_eq!(due, Ok(None));
    }

    /// Polls a future to completion on this thread (no runtime): the store runs its
    /// closures inline then, so the future is ready at the first poll.
    fn block_on_inline<F: std::future::Future>(fut: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod plans {
    /// The hot paths search their indexes instead of scanning tables.
    #[test]
    fn hot_paths_use_their_indexes() {
        let store = super::SqliteStore::open_in_memory().expect("open");
        let conn = store.shared.conn.lock().expect("lock");
        let cases = [
            (
                "SELECT id FROM deliveries WHERE state = 'pending' AND due_at <= ?1 \
                 ORDER BY due_at, id LIMIT ?2",
                "SEARCH deliveries USING COVERING INDEX deliveries_due",
            ),
            (
                "SELECT due_at FROM deliveries WHERE state = 'pending' ORDER BY due_at LIMIT 1",
                "deliveries_due",
            ),
            (
                "UPDATE deliveries SET state = 'dead' \
                 WHERE account = ?1 AND endpoint_id = ?2 AND state = 'pending'",
                "SEARCH deliveries USING INDEX deliveries_by_endpoint",
            ),
            (
                "SELECT payload FROM deliveries WHERE account = ?1 \
                 ORDER BY created_at DESC, id DESC LIMIT ?5",
                "SEARCH deliveries USING INDEX deliveries_by_account",
            ),
            (
                "DELETE FROM delivery_attempts WHERE seq IN (SELECT seq FROM delivery_attempts \
                 WHERE endpoint_id = ?1 ORDER BY at DESC, seq DESC LIMIT -1 OFFSET ?2)",
                "SEARCH delivery_attempts USING COVERING INDEX attempts_by_endpoint",
            ),
            (
                "DELETE FROM request_log WHERE seq IN (SELECT seq FROM request_log \
                 WHERE account IS ?1 ORDER BY at DESC, seq DESC LIMIT -1 OFFSET ?2)",
                "SEARCH request_log USING COVERING INDEX requests_by_account",
            ),
            (
                "SELECT message FROM request_log WHERE account IS ?1 \
                 ORDER BY at DESC, seq DESC LIMIT ?2",
                "SEARCH request_log USING INDEX requests_by_account",
            ),
        ];
        for (sql, want) in cases {
            let mut st = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepare");
            // Parameters stay unbound (NULL): the plan does not depend on them.
            let mut rows = st.raw_query();
            let mut plan: Vec<String> = Vec::new();
            while let Some(row) = rows.next().expect("plan row") {
                plan.push(row.get(3).expect("detail"));
            }
            assert!(
                plan.iter().any(|step| step.contains(want)),
                "{sql}: expected {want:?} in {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{sql}: sorts in a temporary b-tree: {plan:?}"
            );
        }
    }
}
