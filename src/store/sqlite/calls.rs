//! [`CallStore`]: calls, and completing a call with its deliveries in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::SqliteStore;
use super::codec::{get_call_state, get_json, get_json_opt, get_ts, list_limit, to_json, ts};
use super::queue::insert_deliveries;
use crate::ids::{AccountId, CallId, CampaignId};
use crate::model::Call;
use crate::store::{CallRecord, CallState, CallStore, Delivery, StoreError, StoreResult};

const CALL_COLS: &str = "id, account, campaign_id, settings_version, origin, contact, state, \
     cancel_reason, result, action_items, created_at, updated_at";

fn call_row(row: &Row<'_>) -> rusqlite::Result<CallRecord> {
    Ok(CallRecord {
        id: CallId::new(row.get::<_, String>(0)?),
        account: AccountId::new(row.get::<_, String>(1)?),
        campaign_id: row.get::<_, Option<String>>(2)?.map(CampaignId::new),
        settings_version: row.get(3)?,
        origin: get_json(row, 4)?,
        contact: get_json(row, 5)?,
        state: get_call_state(row, 6)?,
        cancel_reason: row.get(7)?,
        result: get_json_opt(row, 8)?,
        action_items: get_json(row, 9)?,
        created_at: get_ts(row, 10)?,
        updated_at: get_ts(row, 11)?,
    })
}

#[async_trait]
impl CallStore for SqliteStore {
    async fn insert_call(&self, call: &CallRecord) -> StoreResult<()> {
        let c = call.clone();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO calls (id, account, campaign_id, settings_version, origin, contact, \
                 state, cancel_reason, result, action_items, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                c.id.as_str(),
                c.account.as_str(),
                c.campaign_id.as_ref().map(CampaignId::as_str),
                c.settings_version,
                to_json(&c.origin)?,
                to_json(&c.contact)?,
                c.state.as_str(),
                c.cancel_reason,
                c.result.as_ref().map(to_json).transpose()?,
                to_json(&c.action_items)?,
                ts(c.created_at),
                ts(c.updated_at),
            ])?;
            Ok(())
        })
        .await
    }

    async fn call(&self, account: &AccountId, id: &CallId) -> StoreResult<CallRecord> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| {
            let sql = format!("SELECT {CALL_COLS} FROM calls WHERE id = ?1 AND account = ?2");
            conn.prepare_cached(&sql)?
                .query_row(params![id.as_str(), account.as_str()], call_row)
                .optional()?
                .ok_or_else(|| StoreError::not_found("call", &id).into())
        })
        .await
    }

    async fn set_call_state(
        &self,
        account: &AccountId,
        id: &CallId,
        state: CallState,
        cancel_reason: Option<String>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE calls SET state = ?3, cancel_reason = ?4, updated_at = ?5 \
                     WHERE id = ?1 AND account = ?2",
                )?
                .execute(params![
                    id.as_str(),
                    account.as_str(),
                    state.as_str(),
                    cancel_reason,
                    ts(now)
                ])?;
            if n == 0 {
                return Err(StoreError::not_found("call", &id).into());
            }
            Ok(())
        })
        .await
    }

    async fn calls(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
        limit: usize,
    ) -> StoreResult<Vec<CallRecord>> {
        let (account, campaign) = (account.clone(), campaign.cloned());
        self.run(move |conn, _| {
            let sql = format!(
                "SELECT {CALL_COLS} FROM calls WHERE account = ?1 {} \
                 ORDER BY created_at DESC, id DESC LIMIT ?3",
                if campaign.is_some() {
                    "AND campaign_id = ?2"
                } else {
                    ""
                }
            );
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map(
                params![
                    account.as_str(),
                    campaign.as_ref().map(CampaignId::as_str),
                    list_limit(limit)
                ],
                call_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
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
        let (account, id) = (account.clone(), id.clone());
        let result = to_json(result)?;
        let action_items = to_json(action_items)?;
        let deliveries = deliveries.to_vec();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let state = tx
                .prepare_cached("SELECT state FROM calls WHERE id = ?1 AND account = ?2")?
                .query_row(params![id.as_str(), account.as_str()], |r| {
                    get_call_state(r, 0)
                })
                .optional()?
                .ok_or_else(|| StoreError::not_found("call", &id))?;
            if matches!(state, CallState::Completed | CallState::Cancelled) {
                return Err(StoreError::Conflict(format!(
                    "call {id} is already {}",
                    state.as_str()
                ))
                .into());
            }
            tx.prepare_cached(
                "UPDATE calls SET state = 'completed', result = ?3, action_items = ?4, \
                 updated_at = ?5 WHERE id = ?1 AND account = ?2",
            )?
            .execute(params![
                id.as_str(),
                account.as_str(),
                result,
                action_items,
                ts(now)
            ])?;
            // A delivery id that exists fails here, and the dropped transaction takes the
            // call's update back with it.
            insert_deliveries(&tx, &deliveries)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
