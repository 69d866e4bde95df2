//! Tenants and their provider secrets (sealed at rest: [`Keyring`]), and the start-up pass
//! that seals stored secrets in the clear or under an older key.
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

/// A tenant row's settings columns.
fn settings(r: &AnyRow) -> Result<TenantSettings> {
    let country = r.get::<Option<String>, _>("default_country");
    let default_country = country
        .map(|c| c.parse::<Country>().map_err(|e| StoreError::Corrupt(format!("tenant default country: {e}"))))
        .transpose()?;
    Ok(TenantSettings { default_country, contact_events: r.get::<i64, _>("contact_events") != 0 })
}

impl Store {
    /// Create a tenant with its first api key (`api_key_hash`, known by `prefix`).
    pub async fn create_tenant(&self, id: &TenantId, name: &str, api_key_hash: &str, prefix: &str) -> Result<()> {
        let mut tx = self.begin(true).await?;
        let now = self.now_ms();
        sqlx::query("INSERT INTO tenants (id, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.as_str())
            .bind(name)
            .bind(api_key_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        keys::insert_key(&mut tx, id, api_key_hash, prefix, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name FROM tenants WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| Tenant { id: TenantId::from_stored(r.get("id")), name: r.get("name") }))
    }

    pub async fn set_provider_secret(&self, tenant: &TenantId, provider: &str, secret: &str) -> Result<()> {
        let mut tx = self.begin(true).await?;
        sqlx::query(
            "INSERT INTO provider_configs (tenant_id, provider, secret, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, provider) DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(provider)
        .bind(self.keys.seal(tenant.as_str(), secret))
        .bind(self.now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant `id` (if it exists) with its secret for `provider` (if it set one) and its
    /// settings, in one read: what every provider request needs first.
    pub async fn hook_tenant(&self, id: &str, provider: &str) -> Result<Option<HookTenant>> {
        let row = sqlx::query(
            "SELECT t.id, t.default_country, t.contact_events, p.secret FROM tenants t
             LEFT JOIN provider_configs p ON p.tenant_id = t.id AND p.provider = $1 WHERE t.id = $2",
        )
        .bind(provider)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let tenant: String = r.get("id");
        let secret = r.get::<Option<String>, _>("secret").map(|s| self.keys.open(&tenant, &s)).transpose()?;
        Ok(Some(HookTenant { settings: settings(&r)?, tenant: TenantId::from_stored(tenant), secret }))
    }

    /// The tenant's settings.
    pub async fn settings(&self, tenant: &TenantId) -> Result<TenantSettings> {
        let row = sqlx::query("SELECT default_country, contact_events FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        settings(&row)
    }

    /// Replace the tenant's settings.
    pub async fn put_settings(&self, tenant: &TenantId, s: &TenantSettings) -> Result<()> {
        let mut tx = self.begin(true).await?;
        sqlx::query("UPDATE tenants SET default_country = $1, contact_events = $2 WHERE id = $3")
            .bind(s.default_country.as_ref().map(Country::to_string))
            .bind(s.contact_events as i64)
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Seal every stored secret that is in the clear or sealed with another key than the
    /// sealing one (a database from before secrets were sealed, or a key rotation); returns
    /// how many. Each value is replaced only if unchanged since read, so replicas starting
    /// together do not undo each other.
    pub(super) async fn seal_stored_secrets(&self) -> Result<u64> {
        // (table, the row's key column, its secret columns)
        const SEALED: [(&str, &str, &[&str]); 3] = [
            ("provider_configs", "provider", &["secret"]),
            ("endpoints", "id", &["secret", "previous_secret"]),
            ("sinks", "id", &["config"]),
        ];
        let current = format!("enc1:{}:%", self.keys.current_id());
        let mut sealed = 0;
        for (table, key, columns) in SEALED {
            for column in columns {
                // Constants above, never input.
                let select = format!(
                    "SELECT tenant_id, {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL AND {column} NOT LIKE $1"
                );
                let rows = sqlx::query(AssertSqlSafe(select)).bind(&current).fetch_all(&self.pool).await?;
                if rows.is_empty() {
                    continue;
                }
                let update =
                    format!("UPDATE {table} SET {column} = $1 WHERE tenant_id = $2 AND {key} = $3 AND {column} = $4");
                let mut tx = self.begin(true).await?;
                for r in &rows {
                    let (tenant, k, v): (String, String, String) = (r.get("tenant_id"), r.get("k"), r.get("v"));
                    let resealed = self.keys.seal(&tenant, &self.keys.open(&tenant, &v)?);
                    sealed += sqlx::query(AssertSqlSafe(update.clone()))
                        .bind(resealed)
                        .bind(&tenant)
                        .bind(&k)
                        .bind(&v)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
            }
        }
        Ok(sealed)
    }
}
