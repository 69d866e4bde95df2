-- A fresh random token per claim: every write of a job's outcome is fenced on it, so a worker
-- whose lease ran out and was claimed again writes nothing.
ALTER TABLE jobs ADD COLUMN lease_token INTEGER;
