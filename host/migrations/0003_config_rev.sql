-- A revision of each tenant's routing configuration (endpoints, sinks, active plugins, chain,
-- limits), bumped by triggers on every change, so a worker may cache the configuration and
-- re-read it only when the revision it reads with an event differs. An endpoint's failure
-- streak (`failing_since`) and secrets are not routing: they do not bump it.
ALTER TABLE tenants ADD COLUMN config_rev INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER endpoints_rev_insert AFTER INSERT ON endpoints
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER endpoints_rev_update AFTER UPDATE OF event_types, enabled, ordered_by ON endpoints
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER endpoints_rev_delete AFTER DELETE ON endpoints
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = OLD.tenant_id; END;

CREATE TRIGGER sinks_rev_insert AFTER INSERT ON sinks
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER sinks_rev_update AFTER UPDATE ON sinks
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER sinks_rev_delete AFTER DELETE ON sinks
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = OLD.tenant_id; END;

CREATE TRIGGER plugins_rev_insert AFTER INSERT ON plugins
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER plugins_rev_update AFTER UPDATE OF active, digest ON plugins
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER plugins_rev_delete AFTER DELETE ON plugins
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = OLD.tenant_id; END;

CREATE TRIGGER plugin_chains_rev_insert AFTER INSERT ON plugin_chains
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER plugin_chains_rev_update AFTER UPDATE ON plugin_chains
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER plugin_chains_rev_delete AFTER DELETE ON plugin_chains
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = OLD.tenant_id; END;

CREATE TRIGGER tenant_limits_rev_insert AFTER INSERT ON tenant_limits
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER tenant_limits_rev_update AFTER UPDATE ON tenant_limits
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id; END;
CREATE TRIGGER tenant_limits_rev_delete AFTER DELETE ON tenant_limits
BEGIN UPDATE tenants SET config_rev = config_rev + 1 WHERE id = OLD.tenant_id; END;
