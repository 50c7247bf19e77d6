-- atllas-webhooks, migration 1: the initial schema.
--
-- Ids, slugs and keys are TEXT COLLATE "C": byte order (as the in-memory backend sorts),
-- and cheaper comparisons than a linguistic collation. Nested values (settings, endpoint
-- kind, headers, sealed secrets, call origin, contact and result) are JSONB written by
-- serde; sealed values are base64 inside it. Timestamps are TIMESTAMPTZ (microseconds).

CREATE TABLE campaigns (
    id               TEXT COLLATE "C" PRIMARY KEY,
    account          TEXT COLLATE "C" NOT NULL,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    settings_version BIGINT NOT NULL,
    settings         JSONB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX campaigns_by_account ON campaigns (account, created_at, id);

CREATE TABLE settings_versions (
    campaign_id TEXT COLLATE "C" NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    settings    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (campaign_id, version)
);

CREATE TABLE inbound_webhooks (
    id                TEXT COLLATE "C" PRIMARY KEY,
    account           TEXT COLLATE "C" NOT NULL,
    slug              TEXT COLLATE "C" NOT NULL CONSTRAINT inbound_webhooks_slug_unique UNIQUE,
    campaign_id       TEXT COLLATE "C",
    enabled           BOOLEAN NOT NULL,
    response_endpoint TEXT COLLATE "C",
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX inbound_webhooks_by_account ON inbound_webhooks (account, created_at, id);

CREATE TABLE endpoints (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account         TEXT COLLATE "C" NOT NULL,
    kind            JSONB NOT NULL,
    url             TEXT NOT NULL,
    method          TEXT NOT NULL,
    headers         JSONB NOT NULL,
    secrets         JSONB NOT NULL,
    managed_by      TEXT,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    last_success_at TIMESTAMPTZ,
    failing_since   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX endpoints_by_account ON endpoints (account, created_at, id);
CREATE INDEX endpoints_by_created ON endpoints (created_at, id);

CREATE TABLE calls (
    id               TEXT COLLATE "C" PRIMARY KEY,
    account          TEXT COLLATE "C" NOT NULL,
    campaign_id      TEXT COLLATE "C",
    settings_version BIGINT NOT NULL,
    origin           JSONB NOT NULL,
    contact          JSONB NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('queued', 'dialing', 'cancelled', 'completed')),
    cancel_reason    TEXT,
    result           JSONB,
    action_items     TEXT[] NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX calls_by_account ON calls (account, created_at DESC, id DESC);
CREATE INDEX calls_by_campaign ON calls (campaign_id, created_at DESC, id DESC)
    WHERE campaign_id IS NOT NULL;

-- Lease tokens: unique across processes, machines and restarts (a sequence never hands out
-- a value twice, whatever rolls back).
CREATE SEQUENCE delivery_lease_tokens AS BIGINT;

-- Deliveries: the record and its history. `state` is the truth (pending, succeeded, dead).
-- No index covers a column that an attempt changes (state, attempts, next_attempt_at,
-- last_error, updated_at), so recording an outcome is a HOT update whenever its page has
-- room: no index entry is added, and the old row version is pruned from its page without
-- VACUUM. fillfactor 80 keeps that room on each page.
CREATE TABLE deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account         TEXT COLLATE "C" NOT NULL,
    endpoint_id     TEXT COLLATE "C" NOT NULL,
    message_id      TEXT COLLATE "C" NOT NULL,
    event_type      TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    call_id         TEXT COLLATE "C",
    state           TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'dead')),
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX deliveries_by_account ON deliveries (account, created_at DESC, id DESC);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, created_at DESC, id DESC);

-- The queue: exactly the pending deliveries, one narrow row each (what a partial index
-- `ON deliveries (due_at) WHERE state = 'pending'` would hold, as a table of its own).
-- `due_at` is when the delivery may be leased next: its `next_attempt_at` while unleased,
-- its lease end while leased, so an expired lease is simply due again. Leasing rewrites
-- only these small rows (and their two small indexes), never the wide delivery row, and
-- the table never holds the finished history, so claiming costs the same after millions
-- of finished deliveries as on a fresh database.
--
-- A lease moves `due_at`, an indexed column, so leases are not HOT updates, and an
-- outcome deletes the row: each leaves a dead row version and a dead index entry at the
-- old end of `delivery_queue_due`, which claiming would walk over until VACUUM clears
-- them. The table is small, so VACUUM is cheap: autovacuum runs on it after 1% of it
-- changed (instead of 20%) without cost-based sleeping, and the store itself runs
-- `VACUUM (SKIP_LOCKED) delivery_queue` every few thousand changes (`vacuum_every`), for
-- databases whose autovacuum is off or slow. fillfactor 70 lets a leased row's new version
-- stay on its page. VACUUM does not truncate the table: the queue empties and fills all
-- the time, and truncating takes a lock that stalls every lease. Its statistics swing
-- with it (a VACUUM of a drained queue records zero rows), so the statements on it are
-- written to have one sensible plan whatever the estimates. A DBA may tune these with
-- ALTER TABLE ... SET (...).
CREATE TABLE delivery_queue (
    id          TEXT COLLATE "C" PRIMARY KEY,
    due_at      TIMESTAMPTZ NOT NULL,
    lease_token BIGINT,
    lease_until TIMESTAMPTZ
) WITH (
    fillfactor = 70,
    vacuum_truncate = false,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
CREATE INDEX delivery_queue_due ON delivery_queue (due_at);

CREATE TABLE delivery_attempts (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account       TEXT COLLATE "C" NOT NULL,
    endpoint_id   TEXT COLLATE "C" NOT NULL,
    delivery_id   TEXT COLLATE "C",
    message_id    TEXT COLLATE "C" NOT NULL,
    event_type    TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    status        INTEGER,
    error         TEXT,
    error_message TEXT,
    response_body TEXT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    success       BOOLEAN NOT NULL,
    test          BOOLEAN NOT NULL
);
CREATE INDEX delivery_attempts_by_endpoint ON delivery_attempts (endpoint_id, at DESC, seq DESC);

CREATE TABLE request_log (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account      TEXT COLLATE "C",
    webhook_id   TEXT COLLATE "C",
    slug         TEXT,
    slug_known   BOOLEAN NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    status       INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    code         TEXT,
    message      TEXT NOT NULL,
    ignored_keys JSONB NOT NULL,
    call_id      TEXT COLLATE "C"
);
-- Serves `account = $1` and `account IS NULL` (requests to unknown slugs) alike.
CREATE INDEX request_log_by_account ON request_log (account, at DESC, seq DESC);

CREATE TABLE idempotency (
    account    TEXT COLLATE "C" NOT NULL,
    webhook_id TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    status     INTEGER,
    body       BYTEA,
    call_id    TEXT COLLATE "C",
    PRIMARY KEY (account, webhook_id, key)
);
CREATE INDEX idempotency_expiry ON idempotency (expires_at);
