-- A tenant's settings: the ISO 3166-1 alpha-2 country national phone numbers are read in
-- (NULL: none; such numbers are kept as the provider sent them).
ALTER TABLE tenants ADD COLUMN default_country TEXT;
