-- The number an event concerns (a message's contact, a call's other party), so a number's
-- timeline is one index range; and calls by time, newest first, for the calls listing.
ALTER TABLE events ADD COLUMN contact TEXT;
CREATE INDEX events_by_contact ON events (tenant_id, contact, seq) WHERE contact IS NOT NULL;
CREATE INDEX calls_by_time ON calls (tenant_id, created_at);
