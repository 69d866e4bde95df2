-- The header names an endpoint's signature, message id and timestamp go out in, when the
-- receiver's contract names its own (e.g. X-CF-Signature, X-CF-Event-Id): a JSON object
-- {"signature", "id", "timestamp"}; NULL: the signing style's defaults.
ALTER TABLE endpoints ADD COLUMN signature_headers TEXT;
