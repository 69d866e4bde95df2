-- Rejected receipts are kept for less long than the rest: the sweeper finds the oldest of them
-- by this index.
CREATE INDEX receipts_by_verdict ON receipts (verdict, id);
