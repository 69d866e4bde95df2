-- Only deliveries with an ordering key are looked up by it: the others (most) need no entry,
-- so inserting them and moving them through their states keeps one index fewer.
DROP INDEX jobs_ordering;
CREATE INDEX jobs_ordering ON jobs (endpoint_id, ordering_key, status, event_seq) WHERE ordering_key IS NOT NULL;
