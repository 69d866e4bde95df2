-- A delivery whose request a plugin shaped (hookhost:plugin@0.2.0): method, path suffix, extra
-- headers and content type as JSON; NULL for hookhost's envelope. The body is stored as every
-- delivery's (body or body_id).
ALTER TABLE jobs ADD COLUMN request TEXT;
