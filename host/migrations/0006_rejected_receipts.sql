-- A rejected request keeps only the first KiB of its body, with the whole body's length and
-- SHA-256 (NULL for accepted and duplicate receipts, which keep their body whole).
ALTER TABLE receipts ADD COLUMN body_len INTEGER;
ALTER TABLE receipts ADD COLUMN body_sha256 TEXT;
