-- A revision of each tenant's routing configuration (endpoints, sinks, active plugins, chain,
-- limits), bumped by triggers on every change, so a worker may cache the configuration and
-- re-read it only when the revision it reads with an event differs. An endpoint's failure
-- streak (`failing_since`) and secrets are not routing: they do not bump it.
ALTER TABLE tenants ADD COLUMN config_rev BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION bump_config_rev() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE tenants SET config_rev = config_rev + 1 WHERE id = OLD.tenant_id;
    ELSE
        UPDATE tenants SET config_rev = config_rev + 1 WHERE id = NEW.tenant_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER endpoints_rev AFTER INSERT OR DELETE OR UPDATE OF event_types, enabled, ordered_by ON endpoints
    FOR EACH ROW EXECUTE FUNCTION bump_config_rev();
CREATE TRIGGER sinks_rev AFTER INSERT OR DELETE OR UPDATE ON sinks
    FOR EACH ROW EXECUTE FUNCTION bump_config_rev();
CREATE TRIGGER plugins_rev AFTER INSERT OR DELETE OR UPDATE OF active, digest ON plugins
    FOR EACH ROW EXECUTE FUNCTION bump_config_rev();
CREATE TRIGGER plugin_chains_rev AFTER INSERT OR DELETE OR UPDATE ON plugin_chains
    FOR EACH ROW EXECUTE FUNCTION bump_config_rev();
CREATE TRIGGER tenant_limits_rev AFTER INSERT OR DELETE OR UPDATE ON tenant_limits
    FOR EACH ROW EXECUTE FUNCTION bump_config_rev();
