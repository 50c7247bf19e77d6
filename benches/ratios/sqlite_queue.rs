//! `sqlite_queue`: the SQLite store's queue cycle (enqueue a batch, lease it, finish every
//! lease) against bare rusqlite running the same SQL on the same schema, pragmas and batch
//! size. `sqlite_claim_batch`: the store's batched claim against single-row claims.

use atllas_webhooks::ids::MessageId;
use atllas_webhooks::store::Delivery;
use atllas_webhooks::store::sqlite::SqliteStore;
use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior, params};

use crate::queue::{self, BATCH};
use crate::{Config, Outcome};

fn us(t: chrono::DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The same statements the store runs, straight on a connection.
fn bare_cycle(conn: &mut Connection, batch: &[Delivery]) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO deliveries (id, account, endpoint_id, message_id, event_type, payload, \
             call_id, state, attempts, next_attempt_at, last_error, created_at, updated_at, due_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?10)",
        )?;
        for d in batch {
            st.execute(params![
                d.id.as_str(),
                d.account.as_str(),
                d.endpoint_id.as_str(),
                d.message_id.as_str(),
                d.event_type,
                &d.payload[..],
                Option::<&str>::None,
                "pending",
                d.attempts,
                us(d.next_attempt_at),
                d.last_error,
                us(d.created_at),
                us(d.updated_at),
            ])?;
        }
    }
    tx.commit()?;
    let now = Utc::now();
    let until = us(now + chrono::Duration::seconds(60));
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut leased: Vec<(String, i64, Vec<u8>)> = Vec::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT id, account, endpoint_id, message_id, event_type, payload, call_id, state, \
             attempts, next_attempt_at, last_error, created_at, updated_at FROM deliveries \
             WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
        )?;
        let rows = st.query_map(params![us(now), BATCH as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(8)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        for r in rows {
            leased.push(r?);
        }
        let first: i64 = tx
            .prepare_cached("SELECT next_token FROM queue_meta WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        let mut up = tx.prepare_cached(
            "UPDATE deliveries SET lease_token = ?2, lease_until = ?3, due_at = ?3 WHERE id = ?1",
        )?;
        let mut next = first;
        for (id, _, _) in &leased {
            up.execute(params![id, next, until])?;
            next += 1;
        }
        tx.prepare_cached("UPDATE queue_meta SET next_token = ?1 WHERE id = 1")?
            .execute([next])?;
    }
    tx.commit()?;
    let mut token: i64 =
        conn.query_row("SELECT next_token FROM queue_meta WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    token -= leased.len() as i64;
    // The outcomes in one transaction, as `SqliteStore::finish_many` writes them.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = us(Utc::now());
    for (id, _, _) in &leased {
        tx.prepare_cached(
            "UPDATE deliveries SET state = 'succeeded', last_error = NULL, updated_at = ?3, \
             attempts = attempts + 1, lease_token = NULL, lease_until = NULL \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'",
        )?
        .execute(params![id, token, done])?;
        token += 1;
    }
    tx.commit()?;
    Ok(leased.len())
}

fn temp_db(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "atllas-bench-{tag}-{}.db",
        MessageId::generate().expect("id")
    ))
}

fn remove(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Store rows/s over bare rows/s for the enqueue + lease + complete cycle.
pub fn sqlite_queue(cfg: &Config) -> Outcome {
    let rt = runtime();
    let payload = queue::payload();
    let store_path = temp_db("store");
    let bare_path = temp_db("bare");
    let store = SqliteStore::open(&store_path).expect("opening the store's database");
    // The bare side: the store's schema and pragmas, then plain rusqlite on it.
    drop(SqliteStore::open(&bare_path).expect("creating the baseline's schema"));
    let mut bare = Connection::open(&bare_path).expect("opening the baseline's database");
    bare.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    )
    .expect("the store's pragmas");
    let ratios = rt.block_on(queue::paired_rates(
        "sqlite_queue",
        cfg,
        cfg.slice * 2,
        async || {
            let batch = queue::batch(&payload);
            queue::timed(async { bare_cycle(&mut bare, &batch).expect("the baseline's cycle") })
                .await
        },
        async || {
            let batch = queue::batch(&payload);
            queue::timed(queue::store_cycle(&store, &batch)).await
        },
    ));
    drop(store);
    drop(bare);
    remove(&store_path);
    remove(&bare_path);
    Outcome::Ratios(ratios)
}

/// The time of `BATCH` single-row leases over that of one lease of `BATCH` rows, on the
/// store.
pub fn sqlite_claim_batch(cfg: &Config) -> Outcome {
    let rt = runtime();
    let payload = queue::payload();
    let path = temp_db("claim");
    let store = SqliteStore::open(&path).expect("opening the store's database");
    let ratios = rt.block_on(queue::claim_batch(
        "sqlite_claim_batch",
        &store,
        cfg,
        &payload,
    ));
    drop(store);
    remove(&path);
    Outcome::Ratios(ratios)
}
