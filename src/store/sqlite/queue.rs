//! [`QueueStore`]: the delivery queue, leases and dead letters.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::SqliteStore;
use super::codec::{DbResult, from_ts, get_delivery_state, get_event_type, get_ts, list_limit, ts};
use crate::ids::{AccountId, CallId, DeliveryId, MessageId, WebhookId};
use crate::store::{
    Delivery, DeliveryFilter, Lease, LeaseOutcome, QueueStore, StoreError, StoreResult,
};

const DELIVERY_COLS: &str = "id, account, endpoint_id, message_id, event_type, payload, \
     call_id, state, attempts, next_attempt_at, last_error, created_at, updated_at";

pub(super) fn delivery_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: DeliveryId::new(row.get::<_, String>(0)?),
        account: AccountId::new(row.get::<_, String>(1)?),
        endpoint_id: WebhookId::new(row.get::<_, String>(2)?),
        message_id: MessageId::new(row.get::<_, String>(3)?),
        event_type: get_event_type(row, 4)?,
        payload: Bytes::from(row.get::<_, Vec<u8>>(5)?),
        call_id: row.get::<_, Option<String>>(6)?.map(CallId::new),
        state: get_delivery_state(row, 7)?,
        attempts: row.get(8)?,
        next_attempt_at: get_ts(row, 9)?,
        last_error: row.get(10)?,
        created_at: get_ts(row, 11)?,
        updated_at: get_ts(row, 12)?,
    })
}

/// Inserts new deliveries with one cached statement; an id that exists (stored, or twice
/// in the batch) fails with a conflict, and the caller's transaction then rolls back.
pub(super) fn insert_deliveries(tx: &Transaction<'_>, deliveries: &[Delivery]) -> DbResult<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO deliveries (id, account, endpoint_id, message_id, event_type, payload, \
         call_id, state, attempts, next_attempt_at, last_error, created_at, updated_at, due_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?10)",
    )?;
    for d in deliveries {
        st.execute(params![
            d.id.as_str(),
            d.account.as_str(),
            d.endpoint_id.as_str(),
            d.message_id.as_str(),
            d.event_type,
            &d.payload[..],
            d.call_id.as_ref().map(CallId::as_str),
            d.state.as_str(),
            d.attempts,
            ts(d.next_attempt_at),
            d.last_error,
            ts(d.created_at),
            ts(d.updated_at),
        ])?;
    }
    Ok(())
}

/// Turns the endpoint's pending deliveries (leased ones too) into dead letters.
pub(super) fn kill_pending_tx(
    conn: &Connection,
    account: &str,
    endpoint: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> DbResult<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET state = 'dead', last_error = ?3, updated_at = ?4, \
             lease_token = NULL, lease_until = NULL \
             WHERE account = ?1 AND endpoint_id = ?2 AND state = 'pending'",
        )?
        .execute(params![account, endpoint, reason, ts(now)])?)
}

/// Column list of a revival: pending, due now, lease dropped (message id, attempts and
/// last error kept).
const REVIVE: &str = "state = 'pending', next_attempt_at = ?1, due_at = ?1, updated_at = ?1, \
     lease_token = NULL, lease_until = NULL";

#[async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue(&self, deliveries: &[Delivery]) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let deliveries = deliveries.to_vec();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            insert_deliveries(&tx, &deliveries)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn lease(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease_for: std::time::Duration,
    ) -> StoreResult<Vec<Lease>> {
        let until = chrono::Duration::from_std(lease_for)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .ok_or_else(|| StoreError::Backend(format!("lease duration {lease_for:?}")))?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn, _| {
            let until_us = ts(until);
            // What is stored, so that the lease end reads the same everywhere.
            let lease_until = from_ts(0, until_us)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let due: Vec<Delivery> = {
                let sql = format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries \
                     WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at, id LIMIT ?2"
                );
                let mut st = tx.prepare_cached(&sql)?;
                let rows = st.query_map(params![ts(now), limit], delivery_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            if due.is_empty() {
                return Ok(Vec::new());
            }
            let first: i64 = tx
                .prepare_cached("SELECT next_token FROM queue_meta WHERE id = 1")?
                .query_row([], |r| r.get(0))?;
            let mut out = Vec::with_capacity(due.len());
            {
                let mut st = tx.prepare_cached(
                    "UPDATE deliveries SET lease_token = ?2, lease_until = ?3, due_at = ?3 \
                     WHERE id = ?1",
                )?;
                let mut next = first;
                for delivery in due {
                    let token = next;
                    next += 1;
                    st.execute(params![delivery.id.as_str(), token, until_us])?;
                    out.push(Lease {
                        delivery,
                        token: u64::try_from(token).map_err(|_| {
                            StoreError::Corrupt(format!("lease token counter is {token}"))
                        })?,
                        lease_until,
                    });
                }
                tx.prepare_cached("UPDATE queue_meta SET next_token = ?1 WHERE id = 1")?
                    .execute([next])?;
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: LeaseOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // Tokens this store hands out fit in an i64; any other is stale.
        let Ok(token) = i64::try_from(lease.token) else {
            return Ok(false);
        };
        let id = lease.delivery.id.clone();
        self.run(move |conn, _| finish_row(conn, id.as_str(), token, outcome, now))
            .await
    }

    async fn finish_many(
        &self,
        items: &[(&Lease, LeaseOutcome)],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        // Tokens this store hands out fit in an i64; any other is stale.
        let rows: Vec<(DeliveryId, Option<i64>, LeaseOutcome)> = items
            .iter()
            .map(|(lease, outcome)| {
                (
                    lease.delivery.id.clone(),
                    i64::try_from(lease.token).ok(),
                    outcome.clone(),
                )
            })
            .collect();
        self.run(move |conn, _| {
            // One transaction for the batch: one commit instead of one per lease.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut held = Vec::with_capacity(rows.len());
            for (id, token, outcome) in rows {
                held.push(match token {
                    Some(token) => finish_row(&tx, id.as_str(), token, outcome, now)?,
                    None => false,
                });
            }
            tx.commit()?;
            Ok(held)
        })
        .await
    }

    async fn release(&self, lease: &Lease, due_at: DateTime<Utc>) -> StoreResult<()> {
        let Ok(token) = i64::try_from(lease.token) else {
            return Ok(());
        };
        let id = lease.delivery.id.clone();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "UPDATE deliveries SET next_attempt_at = ?3, due_at = ?3, lease_token = NULL, \
                 lease_until = NULL WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'",
            )?
            .execute(params![id.as_str(), token, ts(due_at)])?;
            Ok(())
        })
        .await
    }

    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.run(move |conn, _| {
            let due: Option<i64> = conn
                .prepare_cached(
                    "SELECT due_at FROM deliveries WHERE state = 'pending' \
                     ORDER BY due_at LIMIT 1",
                )?
                .query_row([], |r| r.get(0))
                .optional()?;
            Ok(due.map(|v| from_ts(0, v)).transpose()?)
        })
        .await
    }

    async fn delivery(&self, account: &AccountId, id: &DeliveryId) -> StoreResult<Delivery> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| {
            let sql =
                format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = ?1 AND account = ?2");
            conn.prepare_cached(&sql)?
                .query_row(params![id.as_str(), account.as_str()], delivery_row)
                .optional()?
                .ok_or_else(|| StoreError::not_found("delivery", &id).into())
        })
        .await
    }

    async fn deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<Delivery>> {
        let (account, filter) = (account.clone(), filter.clone());
        self.run(move |conn, _| {
            // One statement per combination of filters, so each can use its index.
            let mut sql = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE account = ?1");
            if filter.endpoint_id.is_some() {
                sql.push_str(" AND endpoint_id = ?2");
            }
            if filter.state.is_some() {
                sql.push_str(" AND state = ?3");
            }
            if filter.since.is_some() {
                sql.push_str(" AND created_at >= ?4");
            }
            sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?5");
            // Numbered parameters: the statement has five slots (?5 is always there), and
            // a slot its filters do not use is simply never read.
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map(
                params![
                    account.as_str(),
                    filter.endpoint_id.as_ref().map(WebhookId::as_str),
                    filter.state.map(|s| s.as_str()),
                    filter.since.map(ts),
                    list_limit(filter.limit),
                ],
                delivery_row,
            )?;
            let out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(out)
        })
        .await
    }

    async fn redeliver(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<Delivery> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(&format!(
                "UPDATE deliveries SET {REVIVE} \
                 WHERE id = ?2 AND account = ?3 AND state <> 'pending'"
            ))?
            .execute(params![ts(now), id.as_str(), account.as_str()])?;
            let sql =
                format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = ?1 AND account = ?2");
            let d = tx
                .prepare_cached(&sql)?
                .query_row(params![id.as_str(), account.as_str()], delivery_row)
                .optional()?
                .ok_or_else(|| StoreError::not_found("delivery", &id))?;
            tx.commit()?;
            Ok(d)
        })
        .await
    }

    async fn redeliver_dead_since(
        &self,
        account: &AccountId,
        endpoint: Option<&WebhookId>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let (account, endpoint) = (account.clone(), endpoint.cloned());
        self.run(move |conn, _| {
            let n = match &endpoint {
                Some(e) => conn
                    .prepare_cached(&format!(
                        "UPDATE deliveries SET {REVIVE} WHERE account = ?2 AND endpoint_id = ?4 \
                         AND state = 'dead' AND created_at >= ?3"
                    ))?
                    .execute(params![ts(now), account.as_str(), ts(since), e.as_str()])?,
                None => conn
                    .prepare_cached(&format!(
                        "UPDATE deliveries SET {REVIVE} WHERE account = ?2 \
                         AND state = 'dead' AND created_at >= ?3"
                    ))?
                    .execute(params![ts(now), account.as_str(), ts(since)])?,
            };
            Ok(n)
        })
        .await
    }

    async fn kill_pending(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let (account, endpoint, reason) = (account.clone(), endpoint.clone(), reason.to_owned());
        self.run(move |conn, _| {
            kill_pending_tx(conn, account.as_str(), endpoint.as_str(), &reason, now)
        })
        .await
    }
}

/// Applies one lease's outcome if the lease `token` still holds delivery `id`.
fn finish_row(
    conn: &Connection,
    id: &str,
    token: i64,
    outcome: LeaseOutcome,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    // Spelled out whole: this runs for every finished attempt (no `format!` per call).
    const DONE: &str = "UPDATE deliveries SET state = 'succeeded', last_error = NULL, \
        updated_at = ?3, attempts = attempts + 1, lease_token = NULL, lease_until = NULL \
        WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'";
    const RETRY: &str = "UPDATE deliveries SET next_attempt_at = ?3, due_at = ?3, \
        last_error = ?4, updated_at = ?5, attempts = attempts + 1, lease_token = NULL, \
        lease_until = NULL WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'";
    const DEAD: &str = "UPDATE deliveries SET state = 'dead', last_error = ?3, \
        updated_at = ?4, attempts = attempts + 1, lease_token = NULL, lease_until = NULL \
        WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'";
    let n = match outcome {
        LeaseOutcome::Succeeded => {
            conn.prepare_cached(DONE)?
                .execute(params![id, token, ts(now)])?
        }
        LeaseOutcome::Retry {
            next_attempt_at,
            error,
        } => conn.prepare_cached(RETRY)?.execute(params![
            id,
            token,
            ts(next_attempt_at),
            error,
            ts(now)
        ])?,
        LeaseOutcome::Dead { error } => {
            conn.prepare_cached(DEAD)?
                .execute(params![id, token, error, ts(now)])?
        }
    };
    Ok(n > 0)
}
