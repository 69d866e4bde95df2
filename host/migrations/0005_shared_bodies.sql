-- A delivery body shared by several deliveries of one event (one per endpoint): stored once,
-- referenced by the jobs (whose own body is then NULL). A body sent to one endpoint stays
-- inline in its job.
CREATE TABLE bodies (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX bodies_by_event ON bodies (tenant_id, event_id);
ALTER TABLE jobs ADD COLUMN body_id INTEGER;
