-- The plugin platform: named plugins with immutable versions, chains, per-tenant limits,
-- and what each invocation cost.

-- Per-tenant plugin chain: JSON list of {"match": pattern, "plugins": [name, …]}.
CREATE TABLE plugin_chains (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id),
    rules      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Per-tenant overrides of the sandbox limits and capabilities: a JSON object whose absent keys
-- take the configured defaults.
CREATE TABLE tenant_limits (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id),
    overrides  TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

ALTER TABLE plugin_runs ADD COLUMN peak_memory BIGINT;
CREATE INDEX plugin_runs_by_version ON plugin_runs (tenant_id, plugin_name, plugin_version);

ALTER TABLE kv ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
