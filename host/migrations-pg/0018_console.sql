-- Console sign-in sessions: the browser holds a random token, the table its SHA-256. A session
-- lives until expires_at or sign-out, and only while the credential it was opened with
-- (credential_hash: the api key's or the operator token's SHA-256) is still valid. tenant_id is
-- the tenant the pages show (an operator's session picks one; NULL until it does).
CREATE TABLE console_sessions (
    id_hash         TEXT PRIMARY KEY,
    tenant_id       TEXT REFERENCES tenants(id),
    is_operator     BIGINT NOT NULL DEFAULT 0,
    credential_hash TEXT NOT NULL,
    csrf            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- An event's evidence: the provider requests that made it, found by event.
CREATE INDEX receipts_by_event ON receipts (tenant_id, event_id) WHERE event_id IS NOT NULL;
