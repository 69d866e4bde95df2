//! CRM sinks: create within the tenant's cap, list, delete, and the newest version written per
//! record.
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

impl Store {
    /// Create a sink unless its name is taken or the tenant already has `max`.
    pub async fn create_sink(&self, sink: &Sink, max: u64) -> Result<Insert> {
        let mut tx = self.begin(true).await?;
        if at_cap(&mut tx, self.backend, "sinks", &sink.tenant_id, max).await? {
            return Ok(Insert::Full);
        }
        let r = sqlx::query(
            "INSERT INTO sinks (id, tenant_id, name, kind, config, event_types, external_id_field, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(&sink.id)
        .bind(sink.tenant_id.as_str())
        .bind(&sink.name)
        .bind(sink.config.kind())
        .bind(self.keys.seal(sink.tenant_id.as_str(), &sink.config.settings().to_string()))
        .bind(serde_json::to_string(&sink.event_types).expect("strings serialize"))
        .bind(&sink.external_id_field)
        .bind(self.now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if r.rows_affected() == 1 { Insert::Created } else { Insert::Duplicate })
    }

    /// Delete a sink and fail its unfinished writes. False when there was none.
    pub async fn delete_sink(&self, tenant: &TenantId, id: &SinkId) -> Result<bool> {
        self.delete_target(tenant, id.as_str(), ("sinks", "sink", "sink_id", "sink deleted")).await
    }

    pub async fn sinks(&self, tenant: &TenantId) -> Result<Vec<Sink>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, kind, config, event_types, external_id_field FROM sinks WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| sink(r, &self.keys)).collect()
    }

    pub async fn sink(&self, tenant: &TenantId, id: &SinkId) -> Result<Option<Sink>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, kind, config, event_types, external_id_field FROM sinks WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| sink(r, &self.keys)).transpose()
    }

    /// The newest version written to a sink for an external id.
    pub async fn sink_version(&self, sink_id: &SinkId, external_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT version FROM sink_versions WHERE sink_id = $1 AND external_id = $2")
            .bind(sink_id)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("version")))
    }
}
