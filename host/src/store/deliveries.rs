//! Deliveries as tenants see them: listing, manual retry, recovery since a time, event replay,
//! and the attempts of an event.
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

impl Store {
    /// Deliveries of a tenant, newest first, optionally by status (`pending`, `succeeded`,
    /// `failed`) and endpoint.
    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        status: Option<DeliveryStatus>,
        endpoint_id: Option<&EndpointId>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let statuses: Vec<&str> =
            status.map_or(JobStatus::ALL, DeliveryStatus::job_statuses).iter().map(|s| s.as_str()).collect();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM jobs WHERE kind = 'delivery' AND tenant_id = $1 AND status IN (SELECT value FROM {statuses})
               AND ($3 IS NULL OR endpoint_id = $4)
             ORDER BY id DESC LIMIT $5",
            statuses = self.backend.json_values("$2"),
        )))
        .bind(tenant.as_str())
        .bind(serde_json::to_string(&statuses).expect("strings serialize"))
        .bind(endpoint_id)
        .bind(endpoint_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(delivery).collect())
    }

    /// Queue a failed delivery again, now, with a fresh retry schedule. `None` when there is no
    /// such delivery, `Some(false)` when it has not failed.
    pub async fn retry_delivery(&self, tenant: &TenantId, id: DeliveryId) -> Result<Option<bool>> {
        let mut tx = self.begin(true).await?;
        let now = self.now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET status = 'pending', run_at = $1, attempts = 0, manual_retries = manual_retries + 1,
                 lease_until = NULL, updated_at = $2
             WHERE kind = 'delivery' AND tenant_id = $3 AND id = $4 AND status IN ('failed', 'dead')",
        )
        .bind(now)
        .bind(now)
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(Some(true));
        }
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE kind = 'delivery' AND tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        tx.commit().await?;
        Ok(exists.then_some(false))
    }

    /// Queue again every failed delivery of an endpoint created at or after `since` (unix ms).
    pub async fn recover(&self, tenant: &TenantId, endpoint_id: &EndpointId, since: i64) -> Result<u64> {
        let mut tx = self.begin(true).await?;
        let now = self.now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET status = 'pending', run_at = $1, attempts = 0, manual_retries = manual_retries + 1,
                 lease_until = NULL, updated_at = $2
             WHERE kind = 'delivery' AND tenant_id = $3 AND endpoint_id = $4 AND status IN ('failed', 'dead') AND created_at >= $5",
        )
        .bind(now)
        .bind(now)
        .bind(tenant.as_str())
        .bind(endpoint_id)
        .bind(since)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// Queue a new delivery of the event to an endpoint, marked as a replay: the envelopes
    /// the event produced before (as the plugin shaped them), or `fallback` when it produced none.
    pub async fn replay(
        &self,
        tenant: &TenantId,
        event_id: &str,
        endpoint_id: &EndpointId,
        fallback: NewDelivery,
    ) -> Result<Vec<i64>> {
        let now = self.now_ms();
        let mut tx = self.begin(true).await?;
        let previous = sqlx::query(
            "SELECT message_id, COALESCE(j.body, (SELECT b.body FROM bodies b WHERE b.id = j.body_id)) AS body, ordering_key,
                    request
             FROM jobs j WHERE kind = 'delivery' AND tenant_id = $1 AND event_id = $2
               AND id = (SELECT MIN(id) FROM jobs f WHERE f.kind = 'delivery' AND f.tenant_id = $1 AND f.event_id = $2
                           AND f.message_id = j.message_id)
             ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut deliveries: Vec<NewDelivery> = previous
            .into_iter()
            .map(|r| NewDelivery {
                endpoint_id: endpoint_id.clone(),
                message_id: r.get("message_id"),
                body: r.get::<String, _>("body").into(),
                request: stored_shape(&r).map(Arc::new),
                ordering_key: r.get("ordering_key"),
            })
            .collect();
        if deliveries.is_empty() {
            deliveries.push(fallback);
        }
        let (mut ids, mut stage) = (Vec::new(), self.stage());
        for d in &deliveries {
            let row = DeliveryRow { tenant, event_id, d, shared: None, replay: true, now };
            ids.push(insert_delivery(&mut tx, &mut stage, row).await?);
        }
        tx.commit().await?;
        stage.publish();
        Ok(ids)
    }

    /// Replays made (event replays' deliveries and receipt replays' events), for metrics.
    pub async fn replay_count(&self) -> Result<i64> {
        let n: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE kind = 'delivery' AND replay = 1)
                  + (SELECT COUNT(*) FROM events WHERE replay_of IS NOT NULL) AS n",
        )
        .fetch_one(&self.pool)
        .await?
        .get("n");
        Ok(n)
    }

    /// Delivery attempts for one event of a tenant, in order.
    pub async fn attempts(&self, tenant: &TenantId, event_id: &str) -> Result<Vec<Attempt>> {
        let columns = "job_id, event_id, endpoint_id, attempt, status_code, error, response_excerpt, duration_ms, \
                       outcome, attempted_at";
        let rows = self.event_rows("delivery_attempts", columns, tenant, event_id).await?;
        Ok(rows
            .into_iter()
            .map(|r| Attempt {
                delivery_id: r.get("job_id"),
                event_id: r.get("event_id"),
                endpoint_id: r.get("endpoint_id"),
                attempt: r.get("attempt"),
                status_code: r.get("status_code"),
                error: r.get("error"),
                response_excerpt: r.get("response_excerpt"),
                duration_ms: r.get("duration_ms"),
                outcome: r.get("outcome"),
                attempted_at: r.get("attempted_at"),
            })
            .collect())
    }
}

/// The columns [`delivery`] reads.
const DELIVERY_COLUMNS: &str = "id, event_id, endpoint_id, message_id, status, attempts, run_at, last_error, replay, manual_retries, created_at, updated_at";

/// A delivery job's row as a tenant sees it.
pub(super) fn delivery(r: &AnyRow) -> Delivery {
    let raw: String = r.get("status");
    let job_status = JobStatus::parse(&raw).unwrap_or(JobStatus::Failed);
    let status = DeliveryStatus::from(job_status);
    Delivery {
        id: r.get("id"),
        event_id: r.get("event_id"),
        endpoint_id: EndpointId::from_stored(r.get::<Option<String>, _>("endpoint_id").unwrap_or_default()),
        message_id: r.get::<Option<String>, _>("message_id").unwrap_or_default(),
        status,
        dead_letter: job_status == JobStatus::Dead,
        attempts: r.get("attempts"),
        next_attempt_at: (status == DeliveryStatus::Pending).then(|| r.get("run_at")),
        last_error: r.get("last_error"),
        replay: r.get::<i64, _>("replay") != 0,
        manual_retries: r.get("manual_retries"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}
