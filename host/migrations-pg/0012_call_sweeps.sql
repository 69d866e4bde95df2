-- When an open call's parent ended while its outcome still waits on a dial result (unix ms):
-- the sweeper settles it HOOKHOST_CALL_SETTLE later, and abandons open calls silent for
-- HOOKHOST_CALL_ABANDON. Open calls are found through the partial index, whatever the table's size.
ALTER TABLE calls ADD COLUMN ended_at BIGINT;
CREATE INDEX calls_open ON calls (updated_at) WHERE outcome IS NULL;
