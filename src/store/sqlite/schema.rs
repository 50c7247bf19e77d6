//! The schema, as numbered migrations compiled into the binary.
//!
//! Migration `n` (1-based) takes a database from `PRAGMA user_version = n - 1` to `n`.
//! Released migrations are never edited; a change is a new migration at the end.

use rusqlite::{Connection, TransactionBehavior};

use super::codec::DbResult;
use crate::store::StoreError;

/// Version 1: every table of the storage traits.
///
/// Timestamps are INTEGER microseconds since the epoch. A delivery's `due_at` is when the
/// queue next hands it out: its lease end while leased (`lease_token` set), else
/// `next_attempt_at`; the partial index on pending rows makes leasing and `next_due` an
/// index range scan.
const V1: &str = r#"
CREATE TABLE campaigns (
    id               TEXT PRIMARY KEY NOT NULL,
    account          TEXT NOT NULL,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    settings_version INTEGER NOT NULL,
    settings         TEXT NOT NULL,           -- JSON
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX campaigns_by_account ON campaigns (account, created_at, id);

CREATE TABLE settings_versions (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    settings    TEXT NOT NULL,                -- JSON
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, version)
) WITHOUT ROWID;

CREATE TABLE inbound_webhooks (
    id                TEXT PRIMARY KEY NOT NULL,
    account           TEXT NOT NULL,
    slug              TEXT NOT NULL UNIQUE,
    campaign_id       TEXT,
    enabled           INTEGER NOT NULL,
    response_endpoint TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX inbound_by_account ON inbound_webhooks (account, created_at, id);

CREATE TABLE endpoints (
    id              TEXT PRIMARY KEY NOT NULL,
    account         TEXT NOT NULL,
    kind            TEXT NOT NULL,            -- JSON
    url             TEXT NOT NULL,
    method          TEXT NOT NULL,
    headers         TEXT NOT NULL,            -- JSON, values sealed
    secrets         TEXT NOT NULL,            -- JSON, values sealed
    managed_by      TEXT,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    last_success_at INTEGER,
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX endpoints_by_account ON endpoints (account, created_at, id);
CREATE INDEX endpoints_by_created ON endpoints (created_at, id);

CREATE TABLE calls (
    id               TEXT PRIMARY KEY NOT NULL,
    account          TEXT NOT NULL,
    campaign_id      TEXT,
    settings_version INTEGER NOT NULL,
    origin           TEXT NOT NULL,           -- JSON
    contact          TEXT NOT NULL,           -- JSON
    state            TEXT NOT NULL,
    cancel_reason    TEXT,
    result           TEXT,                    -- JSON
    action_items     TEXT NOT NULL,           -- JSON
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX calls_by_account ON calls (account, created_at, id);
CREATE INDEX calls_by_campaign ON calls (account, campaign_id, created_at, id);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    account         TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         BLOB NOT NULL,
    call_id         TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'dead')),
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    lease_token     INTEGER,
    lease_until     INTEGER,
    due_at          INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (due_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_by_account ON deliveries (account, created_at, id);
CREATE INDEX deliveries_by_endpoint ON deliveries (account, endpoint_id, state, created_at);

CREATE TABLE delivery_attempts (
    seq           INTEGER PRIMARY KEY,
    account       TEXT NOT NULL,
    endpoint_id   TEXT NOT NULL,
    delivery_id   TEXT,
    message_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    status        INTEGER,
    error         TEXT,
    error_message TEXT,
    response_body TEXT NOT NULL,
    duration_ms   INTEGER NOT NULL,
    success       INTEGER NOT NULL,
    test          INTEGER NOT NULL
);
CREATE INDEX attempts_by_endpoint ON delivery_attempts (endpoint_id, at, seq);

CREATE TABLE request_log (
    seq          INTEGER PRIMARY KEY,
    account      TEXT,                        -- NULL: an unknown slug
    webhook_id   TEXT,
    slug         TEXT,
    slug_known   INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    code         TEXT,
    message      TEXT NOT NULL,
    ignored_keys TEXT NOT NULL,               -- JSON
    call_id      TEXT
);
CREATE INDEX requests_by_account ON request_log (account, at, seq);

CREATE TABLE idempotency (
    account    TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    status     INTEGER,                       -- NULL while in flight
    body       BLOB,
    call_id    TEXT,
    PRIMARY KEY (account, webhook_id, key)
);
CREATE INDEX idempotency_expiry ON idempotency (expires_at);

CREATE TABLE queue_meta (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_token INTEGER NOT NULL
);
INSERT INTO queue_meta (id, next_token) VALUES (1, 1);
"#;

/// Every migration, in order.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this build migrates to.
pub(super) const VERSION: u32 = MIGRATIONS.len() as u32;

/// Applies the migrations the database lacks, in one transaction. A database at a newer
/// version than this build knows is refused.
pub(super) fn migrate(conn: &mut Connection) -> DbResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = u32::try_from(current)
        .map_err(|_| StoreError::Corrupt(format!("schema version {current} is not a version")))?;
    if current > VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this build's {VERSION}: \
             open it with a newer version of atllas-webhooks"
        ))
        .into());
    }
    if current == VERSION {
        return Ok(());
    }
    for sql in &MIGRATIONS[current as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}
