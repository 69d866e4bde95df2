-- The operator's ceiling over each tenant's limits and the capabilities it grants (a JSON
-- object whose absent keys take the configured default ceiling). NULL: the default ceiling.
ALTER TABLE tenant_limits ADD COLUMN ceiling TEXT;
