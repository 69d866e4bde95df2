-- Whether the tenant receives contact.created / contact.updated (off by default, so an endpoint
-- subscribed to * does not start getting a new event type unannounced). Contacts are kept
-- either way.
ALTER TABLE tenants ADD COLUMN contact_events BIGINT NOT NULL DEFAULT 0;
