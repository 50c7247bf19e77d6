//! [`LogStore`] (delivery log, request log, bounded by the retention) and
//! [`IdempotencyStore`].

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::codec::{
    enum_name, get_enum, get_enum_opt, get_event_type, get_json, get_ts, get_u64, int, list_limit,
    to_json, ts,
};
use super::{IDEMPOTENCY_SWEEP_EVERY, SqliteStore};
use crate::ids::{AccountId, CallId, DeliveryId, MessageId, WebhookId};
use crate::store::{
    DeliveryAttempt, IdempotencyClaim, IdempotencyStore, LogStore, RequestLogEntry, StoreResult,
    StoredResponse,
};

const ATTEMPT_COLS: &str = "account, endpoint_id, delivery_id, message_id, event_type, \
     attempt, at, status, error, error_message, response_body, duration_ms, success, test";

fn attempt_row(row: &Row<'_>) -> rusqlite::Result<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        account: AccountId::new(row.get::<_, String>(0)?),
        endpoint_id: WebhookId::new(row.get::<_, String>(1)?),
        delivery_id: row.get::<_, Option<String>>(2)?.map(DeliveryId::new),
        message_id: MessageId::new(row.get::<_, String>(3)?),
        event_type: get_event_type(row, 4)?,
        attempt: row.get(5)?,
        at: get_ts(row, 6)?,
        status: row.get(7)?,
        error: get_enum_opt(row, 8)?,
        error_message: row.get(9)?,
        response_body: row.get(10)?,
        duration_ms: get_u64(row, 11)?,
        success: row.get(12)?,
        test: row.get(13)?,
    })
}

const REQUEST_COLS: &str = "account, webhook_id, slug, slug_known, at, status, outcome, code, \
     message, ignored_keys, call_id";

fn request_row(row: &Row<'_>) -> rusqlite::Result<RequestLogEntry> {
    Ok(RequestLogEntry {
        account: row.get::<_, Option<String>>(0)?.map(AccountId::new),
        webhook_id: row.get::<_, Option<String>>(1)?.map(WebhookId::new),
        slug: row.get(2)?,
        slug_known: row.get(3)?,
        at: get_ts(row, 4)?,
        status: row.get(5)?,
        outcome: get_enum(row, 6)?,
        code: row.get::<_, Option<String>>(7)?.map(Cow::Owned),
        message: Cow::Owned(row.get(8)?),
        ignored_keys: get_json(row, 9)?,
        call_id: row.get::<_, Option<String>>(10)?.map(CallId::new),
    })
}

/// A retention cap as an SQL offset (at least 1 entry is kept).
fn cap(n: usize) -> i64 {
    i64::try_from(n.max(1)).unwrap_or(i64::MAX)
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn append_attempt(&self, attempt: DeliveryAttempt) -> StoreResult<()> {
        self.append_attempts(vec![attempt]).await
    }

    async fn append_attempts(&self, attempts: Vec<DeliveryAttempt>) -> StoreResult<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(attempts.len());
        for a in attempts {
            let duration_ms = int(a.duration_ms, "duration_ms")?;
            let error = a.error.as_ref().map(enum_name).transpose()?;
            rows.push((a, duration_ms, error));
        }
        self.run(move |conn, shared| {
            // One transaction for the batch; retention once per endpoint at the end.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut endpoints: Vec<WebhookId> = Vec::new();
            for (a, duration_ms, error) in &rows {
                tx.prepare_cached(
                    "INSERT INTO delivery_attempts (account, endpoint_id, delivery_id, message_id, \
                     event_type, attempt, at, status, error, error_message, response_body, \
                     duration_ms, success, test) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )?
                .execute(params![
                    a.account.as_str(),
                    a.endpoint_id.as_str(),
                    a.delivery_id.as_ref().map(DeliveryId::as_str),
                    a.message_id.as_str(),
                    a.event_type,
                    a.attempt,
                    ts(a.at),
                    a.status,
                    error,
                    a.error_message,
                    a.response_body,
                    duration_ms,
                    a.success,
                    a.test,
                ])?;
                if !endpoints.contains(&a.endpoint_id) {
                    endpoints.push(a.endpoint_id.clone());
                }
            }
            // Keep the newest `attempts_per_endpoint` of each endpoint.
            for endpoint in &endpoints {
                tx.prepare_cached(
                    "DELETE FROM delivery_attempts WHERE seq IN (\
                     SELECT seq FROM delivery_attempts WHERE endpoint_id = ?1 \
                     ORDER BY at DESC, seq DESC LIMIT -1 OFFSET ?2)",
                )?
                .execute(params![
                    endpoint.as_str(),
                    cap(shared.retention.attempts_per_endpoint)
                ])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn attempts(
        &self,
        account: &AccountId,
        endpoint: &WebhookId,
        success: Option<bool>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryAttempt>> {
        let (account, endpoint) = (account.clone(), endpoint.clone());
        self.run(move |conn, _| {
            let sql = format!(
                "SELECT {ATTEMPT_COLS} FROM delivery_attempts \
                 WHERE endpoint_id = ?1 AND account = ?2 {} \
                 ORDER BY at DESC, seq DESC LIMIT ?4",
                if success.is_some() {
                    "AND success = ?3"
                } else {
                    ""
                }
            );
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map(
                params![
                    endpoint.as_str(),
                    account.as_str(),
                    success,
                    list_limit(limit)
                ],
                attempt_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn append_request(&self, entry: RequestLogEntry) -> StoreResult<()> {
        let r = entry;
        let outcome = enum_name(&r.outcome)?;
        let ignored = to_json(&r.ignored_keys)?;
        self.run(move |conn, shared| {
            let account = r.account.as_ref().map(AccountId::as_str);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT INTO request_log (account, webhook_id, slug, slug_known, at, status, \
                 outcome, code, message, ignored_keys, call_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                account,
                r.webhook_id.as_ref().map(WebhookId::as_str),
                r.slug,
                r.slug_known,
                ts(r.at),
                r.status,
                outcome,
                r.code.as_deref(),
                &*r.message,
                ignored,
                r.call_id.as_ref().map(CallId::as_str),
            ])?;
            // Keep the newest `requests_per_account` of this account (or of unknown slugs).
            tx.prepare_cached(
                "DELETE FROM request_log WHERE seq IN (\
                 SELECT seq FROM request_log WHERE account IS ?1 \
                 ORDER BY at DESC, seq DESC LIMIT -1 OFFSET ?2)",
            )?
            .execute(params![account, cap(shared.retention.requests_per_account)])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn requests(
        &self,
        account: Option<&AccountId>,
        limit: usize,
    ) -> StoreResult<Vec<RequestLogEntry>> {
        let account = account.cloned();
        self.run(move |conn, _| {
            let sql = format!(
                "SELECT {REQUEST_COLS} FROM request_log WHERE account IS ?1 \
                 ORDER BY at DESC, seq DESC LIMIT ?2"
            );
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map(
                params![account.as_ref().map(AccountId::as_str), list_limit(limit)],
                request_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<IdempotencyClaim> {
        let (account, webhook, key) = (account.clone(), webhook.clone(), key.to_owned());
        self.run(move |conn, shared| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claims = shared.claims.fetch_add(1, Ordering::Relaxed);
            if claims % IDEMPOTENCY_SWEEP_EVERY == IDEMPOTENCY_SWEEP_EVERY - 1 {
                tx.prepare_cached("DELETE FROM idempotency WHERE expires_at <= ?1")?
                    .execute([ts(now)])?;
            }
            type Existing = (i64, Option<u16>, Option<Vec<u8>>, Option<String>);
            let existing: Option<Existing> = tx
                .prepare_cached(
                    "SELECT expires_at, status, body, call_id FROM idempotency \
                     WHERE account = ?1 AND webhook_id = ?2 AND key = ?3",
                )?
                .query_row(params![account.as_str(), webhook.as_str(), key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            if let Some((live_until, status, body, call_id)) = existing
                && live_until > ts(now)
            {
                return Ok(match status {
                    Some(status) => IdempotencyClaim::Done(StoredResponse {
                        status,
                        body: Bytes::from(body.unwrap_or_default()),
                        call_id: call_id.map(CallId::new),
                    }),
                    None => IdempotencyClaim::InFlight,
                });
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO idempotency (account, webhook_id, key, expires_at, \
                 status, body, call_id) VALUES (?1, ?2, ?3, ?4, NULL, NULL, NULL)",
            )?
            .execute(params![
                account.as_str(),
                webhook.as_str(),
                key,
                ts(expires_at)
            ])?;
            tx.commit()?;
            Ok(IdempotencyClaim::New)
        })
        .await
    }

    async fn finish_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let (account, webhook, key) = (account.clone(), webhook.clone(), key.to_owned());
        let response = response.clone();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "UPDATE idempotency SET status = ?4, body = ?5, call_id = ?6 \
                 WHERE account = ?1 AND webhook_id = ?2 AND key = ?3",
            )?
            .execute(params![
                account.as_str(),
                webhook.as_str(),
                key,
                response.status,
                &response.body[..],
                response.call_id.as_ref().map(CallId::as_str),
            ])?;
            Ok(())
        })
        .await
    }

    async fn abandon_idempotent(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        key: &str,
    ) -> StoreResult<()> {
        let (account, webhook, key) = (account.clone(), webhook.clone(), key.to_owned());
        self.run(move |conn, _| {
            conn.prepare_cached(
                "DELETE FROM idempotency WHERE account = ?1 AND webhook_id = ?2 AND key = ?3",
            )?
            .execute(params![account.as_str(), webhook.as_str(), key])?;
            Ok(())
        })
        .await
    }
}
