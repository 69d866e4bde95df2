-- Uploads answer before their component is compiled: a version is `compiling` until its
-- compilation ends `ready` or `invalid` (with the reason). A version uploaded to be activated
-- (`POST /v1/tenants/{id}/plugins`) becomes active when it is ready. Versions stored before
-- were compiled at upload: ready.
ALTER TABLE plugins ADD COLUMN state TEXT NOT NULL DEFAULT 'ready';
ALTER TABLE plugins ADD COLUMN state_reason TEXT;
ALTER TABLE plugins ADD COLUMN activate_when_ready INTEGER NOT NULL DEFAULT 0;
