-- hookhost schema v1. Every tenant-owned row carries tenant_id; every query filters on it.
-- Times are unix milliseconds.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,   -- sha256 hex of the tenant's api key
    created_at   INTEGER NOT NULL
);

CREATE TABLE provider_configs (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    provider   TEXT NOT NULL,            -- twilio | stripe
    secret     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);

-- Raw evidence: every request that reached a tenant's hook route, whatever its verdict.
CREATE TABLE receipts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    route       TEXT NOT NULL,
    headers     TEXT NOT NULL,           -- JSON object
    body        BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    verdict     TEXT NOT NULL,           -- accepted | duplicate | rejected
    reason      TEXT,
    dedupe_key  TEXT,
    event_id    TEXT
);
CREATE INDEX receipts_by_tenant ON receipts (tenant_id, id);

-- Canonical events; seq is the polling cursor.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,        -- unix seconds, as the provider says
    source      TEXT NOT NULL,
    is_test     INTEGER NOT NULL DEFAULT 0,
    payload     TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',  -- pending | processed | dropped | failed
    error       TEXT,
    replay_of   INTEGER,                 -- the receipt this event replays, if it is a replay
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);

CREATE TABLE endpoints (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    url         TEXT NOT NULL,
    event_types TEXT NOT NULL,           -- JSON array of patterns (`*`, `call.*`, `call.missed`)
    headers     TEXT NOT NULL,           -- JSON object of extra headers
    secret      TEXT NOT NULL,           -- whsec_…
    enabled     INTEGER NOT NULL DEFAULT 1,
    description TEXT NOT NULL DEFAULT '',
    signing     TEXT NOT NULL DEFAULT 'standard',  -- standard | hookhost
    timeout_ms  INTEGER,                 -- NULL: the service default
    ordered_by  TEXT,                    -- payload field whose value orders deliveries (e.g. call_id)
    rate_limit_per_s REAL,               -- NULL: unlimited
    previous_secret       TEXT,          -- still signs until previous_secret_until (rotation)
    previous_secret_until INTEGER,
    disabled_reason TEXT,                -- why it was disabled (auto-disable), NULL when enabled
    failing_since   INTEGER,             -- first failed attempt of the current failure streak
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id);

CREATE TABLE plugins (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,            -- sha256 hex of the component bytes
    component  BLOB NOT NULL,
    active     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- The outbox: plugin and delivery work, leased by workers.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,           -- plugin | delivery | sink
    tenant_id   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_seq   INTEGER NOT NULL,        -- the event's seq: orders a key's deliveries by event order
    endpoint_id TEXT,                    -- delivery only
    sink_id     TEXT,                    -- sink only
    external_id TEXT,                    -- sink only: the record's id in the sink
    record_version INTEGER,              -- sink only: a write applies only if newer than the sink's
    message_id  TEXT,                    -- delivery: the webhook-id receivers dedupe on; sink: the Idempotency-Key
    body        TEXT,                    -- delivery: the envelope, exactly as sent; sink: the record
    ordering_key TEXT,                   -- delivery only: deliveries sharing it go out in order
    replay      INTEGER NOT NULL DEFAULT 0,  -- delivery only: 1 when made by a replay
    manual_retries INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,           -- pending | running | succeeded | failed | dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_at      INTEGER NOT NULL,
    lease_until INTEGER,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs (kind, status, run_at);
CREATE INDEX jobs_by_event ON jobs (tenant_id, event_id);
CREATE INDEX jobs_by_endpoint ON jobs (endpoint_id, status, created_at);
CREATE INDEX jobs_ordering ON jobs (endpoint_id, ordering_key, status, event_seq);
CREATE INDEX jobs_tenant_stage ON jobs (tenant_id, kind, status, event_seq);

-- Attempts of deliveries and of sink writes (endpoint_id then holds the sink id).
CREATE TABLE delivery_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       INTEGER NOT NULL,
    tenant_id    TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    response_excerpt TEXT,               -- first KiB of the response body
    duration_ms  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,          -- succeeded | retry | failed | dead
    attempted_at INTEGER NOT NULL
);
CREATE INDEX attempts_by_event ON delivery_attempts (tenant_id, event_id);

CREATE TABLE plugin_runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    plugin_name    TEXT NOT NULL,
    plugin_version INTEGER NOT NULL,
    outcome        TEXT NOT NULL,        -- ok | plugin_error | trap | fuel_exhausted | deadline | memory_limit | output_limit
    error          TEXT,
    fuel_used      INTEGER,
    wall_us        INTEGER NOT NULL,
    logs           TEXT NOT NULL,
    ran_at         INTEGER NOT NULL
);
CREATE INDEX plugin_runs_by_event ON plugin_runs (tenant_id, event_id);

CREATE TABLE kv (
    tenant_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- CRM sinks: where sink actions (and the default mapping) write records.
CREATE TABLE sinks (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id),
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,     -- http-upsert | sql
    config            TEXT NOT NULL,     -- JSON: kind-specific settings
    event_types       TEXT NOT NULL,     -- JSON array: events written by the default mapping
    external_id_field TEXT,              -- default mapping: payload field holding the external id
    created_at        INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

-- The newest record version written per external id: older writes are skipped.
CREATE TABLE sink_versions (
    sink_id     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (sink_id, external_id)
);

-- Tracked business numbers: where an inbound call is forwarded, and whether voicemail follows.
CREATE TABLE numbers (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    e164       TEXT NOT NULL,
    forward_to TEXT,
    label      TEXT NOT NULL DEFAULT '',
    voicemail  INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, e164)
);

-- The per-call outcome state machine's state (normalize::calls::CallState as JSON).
CREATE TABLE calls (
    tenant_id  TEXT NOT NULL,
    call_sid   TEXT NOT NULL,
    state      TEXT NOT NULL,
    outcome    TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, call_sid)
);

-- Contacts: a tenant's customers by number, their message thread and opt-out state.
CREATE TABLE contacts (
    tenant_id       TEXT NOT NULL,
    e164            TEXT NOT NULL,
    opted_out       INTEGER NOT NULL DEFAULT 0,
    opt_changed_at  INTEGER,
    last_keyword    TEXT,
    messages        INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, e164)
);

-- Each tenant's billing state from Stripe (normalize::billing::Billing as JSON).
CREATE TABLE billing (
    tenant_id  TEXT PRIMARY KEY,
    record     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
