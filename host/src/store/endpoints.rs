//! Endpoints: create within the tenant's cap, update, rotate the secret, delete (failing the
//! deliveries not yet made).
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, url, event_types, headers, secret, enabled, description, signing, timeout_ms, ordered_by, \
         rate_limit_per_s, previous_secret, previous_secret_until, disabled_reason, failing_since, signature_headers"
    };
}

/// The rate limit as text, cast back in SQL. Through the Any driver sqlx 0.9.0 declares a NULL
/// `f64` as `float4` (`any/arguments.rs` swaps Real and Double): a PostgreSQL connection that
/// prepared the statement with no limit then refused a limit's 8 bytes ("incorrect binary data
/// format in bind parameter"). A text parameter is text whether or not it is NULL.
fn rate(ep: &Endpoint) -> Option<String> {
    ep.rate_limit_per_s.map(|r| r.to_string())
}

/// The endpoint's signature header names as stored: NULL for the defaults.
fn header_names(ep: &Endpoint) -> Option<String> {
    (!ep.header_names.is_default()).then(|| serde_json::to_string(&ep.header_names).expect("names serialize"))
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Bind an endpoint's settings as `$1`…`$10` — url, event types, headers, enabled,
/// description, signing, timeout, ordering, rate limit (text: [`rate`]), signature header
/// names — the order both the insert and the update take them in.
fn bind_settings<'q>(q: AnyQuery<'q>, ep: &'q Endpoint) -> AnyQuery<'q> {
    q.bind(&ep.url)
        .bind(serde_json::to_string(&ep.event_types).expect("strings serialize"))
        .bind(Value::Object(ep.headers.clone()).to_string())
        .bind(ep.enabled as i64)
        .bind(&ep.description)
        .bind(ep.signing.as_str())
        .bind(ep.timeout_ms)
        .bind(&ep.ordered_by)
        .bind(rate(ep))
        .bind(header_names(ep))
}

impl Store {
    /// Create an endpoint unless the tenant already has `max`.
    pub async fn create_endpoint(&self, ep: &Endpoint, max: u64) -> Result<Insert> {
        let mut tx = self.begin(true).await?;
        if at_cap(&mut tx, self.backend, "endpoints", &ep.tenant_id, max).await? {
            return Ok(Insert::Full);
        }
        let now = self.now_ms();
        let insert = sqlx::query(
            "INSERT INTO endpoints (url, event_types, headers, enabled, description, signing, timeout_ms, ordered_by,
                 rate_limit_per_s, signature_headers, id, tenant_id, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CAST($9 AS DOUBLE PRECISION), $10, $11, $12, $13, $14, $15)",
        );
        bind_settings(insert, ep)
            .bind(&ep.id)
            .bind(ep.tenant_id.as_str())
            .bind(self.keys.seal(ep.tenant_id.as_str(), &ep.secret))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Insert::Created)
    }

    /// Write back an endpoint's settings (the API reads, changes, then updates).
    pub async fn update_endpoint(&self, ep: &Endpoint) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let update = sqlx::query(
            "UPDATE endpoints SET url = $1, event_types = $2, headers = $3, enabled = $4, description = $5, signing = $6,
                 timeout_ms = $7, ordered_by = $8, rate_limit_per_s = CAST($9 AS DOUBLE PRECISION), signature_headers = $10,
                 disabled_reason = $11, failing_since = $12, updated_at = $13
             WHERE tenant_id = $14 AND id = $15",
        );
        let r = bind_settings(update, ep)
            .bind(&ep.disabled_reason)
            .bind(ep.failing_since)
            .bind(self.now_ms())
            .bind(ep.tenant_id.as_str())
            .bind(&ep.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Delete an endpoint; its deliveries not yet made fail with the reason.
    pub async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool> {
        self.delete_target(tenant, id.as_str(), ("endpoints", "delivery", "endpoint_id", "endpoint deleted")).await
    }

    /// Delete a delivery target — `(table, job kind, the jobs' column naming it, reason)` —
    /// and fail its unfinished jobs with the reason. False when there was none.
    pub(super) async fn delete_target(
        &self,
        tenant: &TenantId,
        id: &str,
        (table, kind, column, reason): (&str, &str, &str, &str),
    ) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        // The names come from the two callers' constants, never input.
        let gone = sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE tenant_id = $1 AND id = $2")))
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if gone {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'failed', last_error = $1, lease_until = NULL, updated_at = $2
                 WHERE kind = $3 AND tenant_id = $4 AND {column} = $5 AND status IN ('pending', 'running')"
            )))
            .bind(reason)
            .bind(self.now_ms())
            .bind(kind)
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// Replace the endpoint's secret; the old one keeps signing until `previous_until` (unix ms).
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        new_secret: &str,
        previous_until: i64,
    ) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let r = sqlx::query(
            "UPDATE endpoints SET previous_secret = secret, previous_secret_until = $1, secret = $2, updated_at = $3
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(previous_until)
        .bind(self.keys.seal(tenant.as_str(), new_secret))
        .bind(self.now_ms())
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| endpoint(r, &self.keys)).collect()
    }

    pub async fn endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>> {
        let row =
            sqlx::query(concat!("SELECT ", endpoint_columns!(), " FROM endpoints WHERE tenant_id = $1 AND id = $2"))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(|r| endpoint(r, &self.keys)).transpose()
    }
}
