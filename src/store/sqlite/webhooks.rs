//! [`WebhookStore`]: campaigns, settings versions, inbound webhooks, endpoints.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::SqliteStore;
use super::codec::{
    DbResult, enum_name, get_enum, get_json, get_ts, get_ts_opt, to_json, ts, ts_opt,
};
use super::queue::kill_pending_tx;
use crate::campaign::{Campaign, CampaignStatus, SettingsVersion};
use crate::ids::{AccountId, CampaignId, WebhookId};
use crate::model::HttpMethod;
use crate::store::{Endpoint, InboundWebhook, StoreError, StoreResult, WebhookStore};

/// Why the pending deliveries of a deleted endpoint died.
const DELETED: &str = "webhook deleted";

const CAMPAIGN_COLS: &str =
    "id, account, name, kind, status, settings_version, settings, created_at, updated_at";

fn campaign_row(row: &Row<'_>) -> rusqlite::Result<Campaign> {
    let status: String = row.get(4)?;
    Ok(Campaign {
        id: CampaignId::new(row.get::<_, String>(0)?),
        account: AccountId::new(row.get::<_, String>(1)?),
        name: row.get(2)?,
        kind: get_enum(row, 3)?,
        status: CampaignStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                format!("unknown campaign status {status:?}").into(),
            )
        })?,
        settings_version: row.get(5)?,
        settings: get_json(row, 6)?,
        created_at: get_ts(row, 7)?,
        updated_at: get_ts(row, 8)?,
    })
}

const INBOUND_COLS: &str =
    "id, account, slug, campaign_id, enabled, response_endpoint, created_at, updated_at";

/// `inbound_by_slug`, which every inbound request runs: built once.
static BY_SLUG_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {INBOUND_COLS} FROM inbound_webhooks WHERE slug = ?1")
});

fn inbound_row(row: &Row<'_>) -> rusqlite::Result<InboundWebhook> {
    Ok(InboundWebhook {
        id: WebhookId::new(row.get::<_, String>(0)?),
        account: AccountId::new(row.get::<_, String>(1)?),
        slug: row.get(2)?,
        campaign_id: row.get::<_, Option<String>>(3)?.map(CampaignId::new),
        enabled: row.get(4)?,
        response_endpoint: row.get::<_, Option<String>>(5)?.map(WebhookId::new),
        created_at: get_ts(row, 6)?,
        updated_at: get_ts(row, 7)?,
    })
}

const ENDPOINT_COLS: &str = "id, account, kind, url, method, headers, secrets, managed_by, \
     enabled, disabled_reason, last_success_at, failing_since, created_at, updated_at";

fn endpoint_row(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
    Ok(Endpoint {
        id: WebhookId::new(row.get::<_, String>(0)?),
        account: AccountId::new(row.get::<_, String>(1)?),
        kind: get_json(row, 2)?,
        url: row.get(3)?,
        method: get_enum::<HttpMethod>(row, 4)?,
        headers: get_json(row, 5)?,
        secrets: get_json(row, 6)?,
        managed_by: row.get(7)?,
        enabled: row.get(8)?,
        disabled_reason: row.get(9)?,
        last_success_at: get_ts_opt(row, 10)?,
        failing_since: get_ts_opt(row, 11)?,
        created_at: get_ts(row, 12)?,
        updated_at: get_ts(row, 13)?,
    })
}

/// Stores a settings version unless that version is stored already.
fn insert_version(tx: &Transaction<'_>, v: &SettingsVersion) -> DbResult<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO settings_versions (campaign_id, version, settings, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        v.campaign_id.as_str(),
        v.version,
        to_json(&v.settings)?,
        ts(v.created_at)
    ])?;
    Ok(())
}

fn endpoint_by_id(conn: &Connection, account: &str, id: &str) -> DbResult<Endpoint> {
    let sql = format!("SELECT {ENDPOINT_COLS} FROM endpoints WHERE id = ?1 AND account = ?2");
    conn.prepare_cached(&sql)?
        .query_row(params![id, account], endpoint_row)
        .optional()?
        .ok_or_else(|| StoreError::not_found("webhook", id).into())
}

/// Deletes an endpoint of the account (if it is there) and kills its pending deliveries;
/// whether it was there.
fn remove_endpoint(
    tx: &Transaction<'_>,
    account: &str,
    id: &str,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let removed = tx
        .prepare_cached("DELETE FROM endpoints WHERE id = ?1 AND account = ?2")?
        .execute(params![id, account])?;
    kill_pending_tx(tx, account, id, DELETED, now)?;
    Ok(removed > 0)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let c = campaign.clone();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "INSERT INTO campaigns (id, account, name, kind, status, settings_version, \
                 settings, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                c.id.as_str(),
                c.account.as_str(),
                c.name,
                enum_name(&c.kind)?,
                c.status.as_str(),
                c.settings_version,
                to_json(&c.settings)?,
                ts(c.created_at),
                ts(c.updated_at),
            ])?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO settings_versions (campaign_id, version, settings, \
                 created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                c.id.as_str(),
                c.settings_version,
                to_json(&c.settings)?,
                ts(c.updated_at)
            ])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn campaign(&self, account: &AccountId, id: &CampaignId) -> StoreResult<Campaign> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| {
            let sql =
                format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ?1 AND account = ?2");
            conn.prepare_cached(&sql)?
                .query_row(params![id.as_str(), account.as_str()], campaign_row)
                .optional()?
                .ok_or_else(|| StoreError::not_found("campaign", &id).into())
        })
        .await
    }

    async fn update_campaign(&self, campaign: &Campaign) -> StoreResult<()> {
        let c = campaign.clone();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx
                .prepare_cached(
                    "UPDATE campaigns SET name = ?3, kind = ?4, status = ?5, \
                     settings_version = ?6, settings = ?7, created_at = ?8, updated_at = ?9 \
                     WHERE id = ?1 AND account = ?2",
                )?
                .execute(params![
                    c.id.as_str(),
                    c.account.as_str(),
                    c.name,
                    enum_name(&c.kind)?,
                    c.status.as_str(),
                    c.settings_version,
                    to_json(&c.settings)?,
                    ts(c.created_at),
                    ts(c.updated_at),
                ])?;
            if n == 0 {
                return Err(StoreError::not_found("campaign", &c.id).into());
            }
            insert_version(&tx, &c.current_version())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn campaigns(&self, account: &AccountId) -> StoreResult<Vec<Campaign>> {
        let account = account.clone();
        self.run(move |conn, _| {
            let sql = format!(
                "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE account = ?1 \
                 ORDER BY created_at, id"
            );
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map([account.as_str()], campaign_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn settings_version(
        &self,
        account: &AccountId,
        campaign: &CampaignId,
        version: u32,
    ) -> StoreResult<SettingsVersion> {
        let (account, campaign) = (account.clone(), campaign.clone());
        self.run(move |conn, _| {
            conn.prepare_cached(
                "SELECT v.settings, v.created_at FROM settings_versions v \
                 JOIN campaigns c ON c.id = v.campaign_id \
                 WHERE c.id = ?1 AND c.account = ?2 AND v.version = ?3",
            )?
            .query_row(
                params![campaign.as_str(), account.as_str(), version],
                |row| {
                    Ok(SettingsVersion {
                        campaign_id: campaign.clone(),
                        version,
                        settings: get_json(row, 0)?,
                        created_at: get_ts(row, 1)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::not_found("settings version", format!("{campaign}@{version}")).into()
            })
        })
        .await
    }

    async fn insert_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()> {
        let w = webhook.clone();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO inbound_webhooks (id, account, slug, campaign_id, enabled, \
                 response_endpoint, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                w.id.as_str(),
                w.account.as_str(),
                w.slug,
                w.campaign_id.as_ref().map(CampaignId::as_str),
                w.enabled,
                w.response_endpoint.as_ref().map(WebhookId::as_str),
                ts(w.created_at),
                ts(w.updated_at),
            ])?;
            Ok(())
        })
        .await
    }

    async fn inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<InboundWebhook> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| {
            let sql = format!(
                "SELECT {INBOUND_COLS} FROM inbound_webhooks WHERE id = ?1 AND account = ?2"
            );
            conn.prepare_cached(&sql)?
                .query_row(params![id.as_str(), account.as_str()], inbound_row)
                .optional()?
                .ok_or_else(|| StoreError::not_found("inbound webhook", &id).into())
        })
        .await
    }

    async fn inbound_by_slug(&self, slug: &str) -> StoreResult<Option<InboundWebhook>> {
        let slug = slug.to_owned();
        self.run(move |conn, _| {
            Ok(conn
                .prepare_cached(&BY_SLUG_SQL)?
                .query_row([slug.as_str()], inbound_row)
                .optional()?)
        })
        .await
    }

    async fn update_inbound(&self, webhook: &InboundWebhook) -> StoreResult<()> {
        let w = webhook.clone();
        self.run(move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE inbound_webhooks SET slug = ?3, campaign_id = ?4, enabled = ?5, \
                     response_endpoint = ?6, created_at = ?7, updated_at = ?8 \
                     WHERE id = ?1 AND account = ?2",
                )?
                .execute(params![
                    w.id.as_str(),
                    w.account.as_str(),
                    w.slug,
                    w.campaign_id.as_ref().map(CampaignId::as_str),
                    w.enabled,
                    w.response_endpoint.as_ref().map(WebhookId::as_str),
                    ts(w.created_at),
                    ts(w.updated_at),
                ])?;
            if n == 0 {
                return Err(StoreError::not_found("inbound webhook", &w.id).into());
            }
            Ok(())
        })
        .await
    }

    async fn delete_inbound(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()> {
        let (account, id) = (account.clone(), id.clone());
        let now = Utc::now();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let response: Option<Option<String>> = tx
                .prepare_cached(
                    "SELECT response_endpoint FROM inbound_webhooks \
                     WHERE id = ?1 AND account = ?2",
                )?
                .query_row(params![id.as_str(), account.as_str()], |r| r.get(0))
                .optional()?;
            let Some(response) = response else {
                return Err(StoreError::not_found("inbound webhook", &id).into());
            };
            tx.prepare_cached("DELETE FROM inbound_webhooks WHERE id = ?1 AND account = ?2")?
                .execute(params![id.as_str(), account.as_str()])?;
            if let Some(resp) = response {
                remove_endpoint(&tx, account.as_str(), &resp, now)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn inbound_webhooks(&self, account: &AccountId) -> StoreResult<Vec<InboundWebhook>> {
        let account = account.clone();
        self.run(move |conn, _| {
            let sql = format!(
                "SELECT {INBOUND_COLS} FROM inbound_webhooks WHERE account = ?1 \
                 ORDER BY created_at, id"
            );
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map([account.as_str()], inbound_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn insert_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let e = endpoint.clone();
        self.run(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO endpoints (id, account, kind, url, method, headers, secrets, \
                 managed_by, enabled, disabled_reason, last_success_at, failing_since, \
                 created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                e.id.as_str(),
                e.account.as_str(),
                to_json(&e.kind)?,
                e.url,
                e.method.as_str(),
                to_json(&e.headers)?,
                to_json(&e.secrets)?,
                e.managed_by,
                e.enabled,
                e.disabled_reason,
                ts_opt(e.last_success_at),
                ts_opt(e.failing_since),
                ts(e.created_at),
                ts(e.updated_at),
            ])?;
            Ok(())
        })
        .await
    }

    async fn endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<Endpoint> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| endpoint_by_id(conn, account.as_str(), id.as_str()))
            .await
    }

    async fn update_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let e = endpoint.clone();
        self.run(move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE endpoints SET kind = ?3, url = ?4, method = ?5, headers = ?6, \
                     secrets = ?7, managed_by = ?8, enabled = ?9, disabled_reason = ?10, \
                     last_success_at = ?11, failing_since = ?12, created_at = ?13, \
                     updated_at = ?14 WHERE id = ?1 AND account = ?2",
                )?
                .execute(params![
                    e.id.as_str(),
                    e.account.as_str(),
                    to_json(&e.kind)?,
                    e.url,
                    e.method.as_str(),
                    to_json(&e.headers)?,
                    to_json(&e.secrets)?,
                    e.managed_by,
                    e.enabled,
                    e.disabled_reason,
                    ts_opt(e.last_success_at),
                    ts_opt(e.failing_since),
                    ts(e.created_at),
                    ts(e.updated_at),
                ])?;
            if n == 0 {
                return Err(StoreError::not_found("webhook", &e.id).into());
            }
            Ok(())
        })
        .await
    }

    async fn delete_endpoint(&self, account: &AccountId, id: &WebhookId) -> StoreResult<()> {
        let (account, id) = (account.clone(), id.clone());
        let now = Utc::now();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !remove_endpoint(&tx, account.as_str(), id.as_str(), now)? {
                // Dropping the transaction rolls back the kill too.
                return Err(StoreError::not_found("webhook", &id).into());
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn endpoints(&self, account: &AccountId) -> StoreResult<Vec<Endpoint>> {
        let account = account.clone();
        self.run(move |conn, _| {
            let sql = format!(
                "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = ?1 \
                 ORDER BY created_at, id"
            );
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map([account.as_str()], endpoint_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn all_endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        self.run(move |conn, _| {
            let sql = format!("SELECT {ENDPOINT_COLS} FROM endpoints ORDER BY created_at, id");
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st.query_map([], endpoint_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn record_health(
        &self,
        account: &AccountId,
        id: &WebhookId,
        success: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Endpoint> {
        let (account, id) = (account.clone(), id.clone());
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let sql = if success {
                "UPDATE endpoints SET last_success_at = ?3, failing_since = NULL \
                 WHERE id = ?1 AND account = ?2"
            } else {
                "UPDATE endpoints SET failing_since = coalesce(failing_since, ?3) \
                 WHERE id = ?1 AND account = ?2"
            };
            let n =
                tx.prepare_cached(sql)?
                    .execute(params![id.as_str(), account.as_str(), ts(now)])?;
            if n == 0 {
                return Err(StoreError::not_found("webhook", &id).into());
            }
            let e = endpoint_by_id(&tx, account.as_str(), id.as_str())?;
            tx.commit()?;
            Ok(e)
        })
        .await
    }

    async fn disable_endpoint(
        &self,
        account: &AccountId,
        id: &WebhookId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (account, id, reason) = (account.clone(), id.clone(), reason.to_owned());
        self.run(move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE endpoints SET enabled = 0, disabled_reason = ?3, updated_at = ?4 \
                     WHERE id = ?1 AND account = ?2",
                )?
                .execute(params![id.as_str(), account.as_str(), reason, ts(now)])?;
            if n == 0 {
                return Err(StoreError::not_found("webhook", &id).into());
            }
            Ok(())
        })
        .await
    }
}
