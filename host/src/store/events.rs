//! Canonical events as stored: paging, the newest ones, one with its routing revision, and the
//! plugin runs recorded for it.
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

impl Store {
    /// A tenant's events as `q` selects them: after its cursor oldest first, or before it
    /// newest first; by number, type pattern and time.
    pub async fn events_page(&self, tenant: &TenantId, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let (exact, under) = match &q.event_type {
            None => (None, None),
            Some(TypePattern::Exact(t)) => (Some(t.as_str()), None),
            Some(TypePattern::Under(p)) => (None, Some(p.as_str())),
        };
        let (cursor, order) = if q.newest_first { ("seq < $4", "DESC") } else { ("seq > $4", "ASC") };
        let sql = format!(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error
             FROM events WHERE tenant_id = $1 AND ($2 IS NULL OR contact = $3) AND ($5 IS NULL OR {cursor})
               AND ($6 IS NULL OR event_type = $7) AND ($8 IS NULL OR substr(event_type, 1, $9) = $10)
               AND ($11 IS NULL OR occurred_at >= $12) AND ($13 IS NULL OR occurred_at < $14)
             ORDER BY seq {order} LIMIT $15"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(q.contact.as_deref())
            .bind(q.contact.as_deref())
            .bind(q.cursor.unwrap_or(0))
            .bind(q.cursor)
            .bind(exact)
            .bind(exact)
            .bind(under)
            .bind(under.map_or(0, |u| u.len() as i32)) // substr takes an int4 on PostgreSQL
            .bind(under)
            .bind(q.since)
            .bind(q.since)
            .bind(q.until)
            .bind(q.until)
            .bind(q.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_event).collect()
    }

    /// The tenant's `limit` newest events, newest first.
    pub async fn recent_events(&self, tenant: &TenantId, limit: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error
             FROM events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_event).collect()
    }

    pub async fn event(&self, tenant: &TenantId, event_id: &str) -> Result<Option<StoredEvent>> {
        let row = sqlx::query(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error
             FROM events WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored_event).transpose()
    }

    /// The event with its tenant's configuration revision (bumped by triggers whenever the
    /// tenant's endpoints, sinks, plugins, chain or limits change), read together so a worker
    /// can tell whether the configuration it cached still holds for this event.
    pub async fn event_with_config_rev(&self, tenant: &TenantId, event_id: &str) -> Result<Option<(StoredEvent, i64)>> {
        let row = sqlx::query(
            "SELECT e.seq, e.id, e.tenant_id, e.event_type, e.occurred_at, e.source, e.is_test, e.payload, e.status,
                    e.error, t.config_rev
             FROM events e JOIN tenants t ON t.id = e.tenant_id WHERE e.tenant_id = $1 AND e.id = $2",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| Ok((stored_event(r)?, r.get("config_rev")))).transpose()
    }

    /// The rows of `table` (a per-event record: plugin runs, delivery attempts) for one event of
    /// a tenant, in the order written.
    pub(super) async fn event_rows(
        &self,
        table: &'static str,
        columns: &'static str,
        tenant: &TenantId,
        event_id: &str,
    ) -> Result<Vec<AnyRow>> {
        let sql = format!("SELECT {columns} FROM {table} WHERE tenant_id = $1 AND event_id = $2 ORDER BY id");
        Ok(sqlx::query(AssertSqlSafe(sql)).bind(tenant.as_str()).bind(event_id).fetch_all(&self.pool).await?)
    }

    pub async fn plugin_runs(&self, tenant: &TenantId, event_id: &str) -> Result<Vec<PluginRun>> {
        let columns = "plugin_name, plugin_version, outcome, error, fuel_used, wall_us, logs, ran_at, peak_memory";
        let rows = self.event_rows("plugin_runs", columns, tenant, event_id).await?;
        Ok(rows
            .into_iter()
            .map(|r| PluginRun {
                plugin_name: r.get("plugin_name"),
                plugin_version: r.get("plugin_version"),
                outcome: r.get("outcome"),
                error: r.get("error"),
                fuel_used: r.get("fuel_used"),
                wall_us: r.get("wall_us"),
                logs: r.get("logs"),
                ran_at: r.get("ran_at"),
                peak_memory: r.get("peak_memory"),
            })
            .collect())
    }
}
