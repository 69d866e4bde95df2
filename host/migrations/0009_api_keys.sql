-- Tenants' api keys (sha256 of the key), several at once while one rotates out: a key is valid
-- until expires_at (NULL: until rotated or revoked). tenants.api_key_hash is no longer read.
CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    prefix     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
INSERT INTO api_keys (key_hash, tenant_id, prefix, created_at)
    SELECT api_key_hash, id, 'legacy_' || substr(api_key_hash, 1, 8), created_at FROM tenants;
