//! `sqlite_queue`: the SQLite store's queue cycle (enqueue a batch, lease it, finish every
//! lease) against bare rusqlite running the same SQL on the same schema, pragmas and batch
//! size; and the batched claim against single-row claims.

use std::time::{Duration, Instant};

use atllas_webhooks::ids::{AccountId, DeliveryId, MessageId, WebhookId};
use atllas_webhooks::store::sqlite::SqliteStore;
use atllas_webhooks::store::{Delivery, DeliveryState, LeaseOutcome, QueueStore};
use bytes::Bytes;
use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior, params};

use crate::{Config, Outcome, note};

const BATCH: usize = 64;

fn deliveries(payload: &Bytes) -> Vec<Delivery> {
    let account = AccountId::new("acct_bench");
    let endpoint = WebhookId::new("webhook_bench");
    let now = Utc::now() - chrono::Duration::seconds(1);
    (0..BATCH)
        .map(|_| Delivery {
            id: DeliveryId::generate().expect("id"),
            account: account.clone(),
            endpoint_id: endpoint.clone(),
            message_id: MessageId::generate().expect("id"),
            event_type: "call.finished".into(),
            payload: payload.clone(),
            call_id: None,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            updated_at: now,
        })
        .collect()
}

fn us(t: chrono::DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The same statements the store runs, straight on a connection.
fn bare_cycle(conn: &mut Connection, batch: &[Delivery]) -> rusqlite::Result<()> {
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
    for (id, _, _) in &leased {
        conn.prepare_cached(
            "UPDATE deliveries SET state = 'succeeded', last_error = NULL, updated_at = ?3, \
             attempts = attempts + 1, lease_token = NULL, lease_until = NULL \
             WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'",
        )?
        .execute(params![id, token, us(Utc::now())])?;
        token += 1;
    }
    Ok(())
}

async fn store_cycle(store: &SqliteStore, batch: &[Delivery]) {
    store.enqueue(batch).await.expect("enqueue");
    let leases = store
        .lease(Utc::now(), BATCH, Duration::from_secs(60))
        .await
        .expect("lease");
    for l in &leases {
        store
            .finish(l, LeaseOutcome::Succeeded, Utc::now())
            .await
            .expect("finish");
    }
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

/// Store rows/s over bare rows/s for the enqueue + lease + complete cycle.
pub fn sqlite_queue(cfg: &Config) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payload =
        Bytes::from(serde_json::to_vec(&atllas_webhooks::fixtures::call_finished()).expect("json"));
    let length = cfg.slice * 2;
    let store_path = temp_db("store");
    let bare_path = temp_db("bare");
    let store = SqliteStore::open(&store_path).expect("open");
    // The bare side: the store's schema and pragmas, then plain rusqlite on it.
    drop(SqliteStore::open(&bare_path).expect("schema"));
    let mut bare = Connection::open(&bare_path).expect("open bare");
    bare.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    )
    .expect("pragmas");
    let mut ratios = Vec::new();
    rt.block_on(async {
        for pair in 0..=cfg.pairs {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < length {
                let batch = deliveries(&payload);
                bare_cycle(&mut bare, &batch).expect("bare cycle");
                n += 1;
            }
            let base = n as f64 / start.elapsed().as_secs_f64();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < length {
                let batch = deliveries(&payload);
                store_cycle(&store, &batch).await;
                n += 1;
            }
            let subject = n as f64 / start.elapsed().as_secs_f64();
            if pair == 0 {
                note!("sqlite_queue: warm-up bare {:.0} rows/s, store {:.0} rows/s", base * BATCH as f64, subject * BATCH as f64);
            } else {
                ratios.push(subject / base);
            }
        }
        // Batched claim vs single-row claims, on the store.
        let mut claim = Vec::new();
        for _ in 0..cfg.pairs.clamp(3, 10) {
            store.enqueue(&deliveries(&payload)).await.expect("enqueue");
            let t = Instant::now();
            let leases = store.lease(Utc::now(), BATCH, Duration::from_secs(60)).await.expect("lease");
            let batched = t.elapsed();
            for l in &leases {
                store.finish(l, LeaseOutcome::Succeeded, Utc::now()).await.expect("finish");
            }
            store.enqueue(&deliveries(&payload)).await.expect("enqueue");
            let t = Instant::now();
            let mut singles = Vec::new();
            for _ in 0..BATCH {
                singles.extend(store.lease(Utc::now(), 1, Duration::from_secs(60)).await.expect("lease"));
            }
            let single = t.elapsed();
            for l in &singles {
                store.finish(l, LeaseOutcome::Succeeded, Utc::now()).await.expect("finish");
            }
            claim.push(single.as_secs_f64() / batched.as_secs_f64().max(1e-9));
        }
        claim.sort_by(f64::total_cmp);
        note!(
            "sqlite_queue: a batched claim of {BATCH} is {:.1}x {BATCH} single-row claims (median of {}; target >= 3)",
            claim[claim.len() / 2],
            claim.len()
        );
    });
    drop(store);
    drop(bare);
    remove(&store_path);
    remove(&bare_path);
    Outcome::Ratios(ratios)
}
