//! What the browser console reads and keeps beyond the API's rows: its sign-in sessions, the
//! tenants an operator picks from, an event's kept provider requests, and the activity
//! counts its overview charts. Owns the `console_sessions` statements; the console decides who
//! may call them and never sees a session token, only its digest.

use sqlx::Row;

use super::shared::verdict;
use super::{Result, Store, Verdict};
use crate::TenantId;

/// A console session as stored (the browser holds the token, the table its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The tenant the pages show; an operator's session has none until it picks one.
    pub tenant: Option<TenantId>,
    pub operator: bool,
    /// SHA-256 (hex) of the credential the session was opened with.
    pub credential_hash: String,
    /// The session's anti-forgery token, sent back by every form.
    pub csrf: String,
    pub expires_at: i64,
}

/// One kept provider request, whole: the first link of an event's evidence chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptDetail {
    pub id: i64,
    pub provider: String,
    pub route: String,
    /// The request's headers as kept (a JSON object).
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub received_at: i64,
    pub verdict: Verdict,
    pub reason: Option<String>,
}

/// A delivery or sink write an event made, with what it sends.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// A sink write (its `endpoint_id` is then the sink's id) rather than a delivery.
    pub sink: bool,
    pub delivery: super::Delivery,
    /// The body as sent (the envelope, or the sink's record), unless retention took it.
    pub body: Option<String>,
}

/// Counts in one time bucket of the overview's charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub events: i64,
    pub attempts: i64,
    /// Attempts that did not get a 2xx.
    pub failed_attempts: i64,
}

impl Store {
    /// Keep a new session (and forget the expired ones).
    pub async fn open_session(&self, id_hash: &str, session: &ConsoleSession) -> Result<()> {
        let now = self.now_ms();
        let mut tx = self.begin(true).await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, tenant_id, is_operator, credential_hash, csrf, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id_hash)
        .bind(session.tenant.as_ref().map(TenantId::as_str))
        .bind(i64::from(session.operator))
        .bind(&session.credential_hash)
        .bind(&session.csrf)
        .bind(now)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The unexpired session whose token hashes to `id_hash`. A tenant's session lives only as
    /// long as the api key it was opened with (a rotated-out or revoked key ends it); whether an
    /// operator's credential is still the operator token is the caller's to check.
    pub async fn console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>> {
        let now = self.now_ms();
        let row = sqlx::query(
            "SELECT s.tenant_id, s.is_operator, s.credential_hash, s.csrf, s.expires_at FROM console_sessions s
             WHERE s.id_hash = $1 AND s.expires_at > $2
               AND (s.is_operator = 1 OR EXISTS (SELECT 1 FROM api_keys k WHERE k.key_hash = s.credential_hash
                    AND k.tenant_id = s.tenant_id AND (k.expires_at IS NULL OR k.expires_at > $3)))",
        )
        .bind(id_hash)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ConsoleSession {
            tenant: r.get::<Option<String>, _>("tenant_id").map(TenantId::from_stored),
            operator: r.get::<i64, _>("is_operator") != 0,
            credential_hash: r.get("credential_hash"),
            csrf: r.get("csrf"),
            expires_at: r.get("expires_at"),
        }))
    }

    /// Point an operator's session at `tenant`. False when there is no such operator session.
    pub async fn pick_session_tenant(&self, id_hash: &str, tenant: &TenantId) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let n = sqlx::query("UPDATE console_sessions SET tenant_id = $1 WHERE id_hash = $2 AND is_operator = 1")
            .bind(tenant.as_str())
            .bind(id_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Sign a session out.
    pub async fn close_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.begin(true).await?;
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1").bind(id_hash).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tenants by name, for an operator's picker (`(id, name)`).
    pub async fn tenant_names(&self, limit: i64) -> Result<Vec<(TenantId, String)>> {
        let rows = sqlx::query("SELECT id, name FROM tenants ORDER BY name, id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (TenantId::from_stored(r.get("id")), r.get("name"))).collect())
    }

    /// The provider requests kept for `event_id`, oldest first.
    pub async fn event_receipts(&self, tenant: &TenantId, event_id: &str) -> Result<Vec<ReceiptDetail>> {
        let rows = sqlx::query(
            "SELECT id, provider, route, headers, body, received_at, verdict, reason FROM receipts
             WHERE tenant_id = $1 AND event_id = $2 ORDER BY id LIMIT 100",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(receipt_detail).collect()
    }

    /// The deliveries and sink writes an event made, oldest first, with their bodies.
    pub async fn event_outbound(&self, tenant: &TenantId, event_id: &str) -> Result<Vec<Outbound>> {
        let rows = sqlx::query(
            "SELECT j.kind, j.id, j.event_id, COALESCE(j.endpoint_id, j.sink_id) AS endpoint_id, j.message_id, j.status,
                    j.attempts, j.run_at, j.last_error, j.replay, j.manual_retries, j.created_at, j.updated_at,
                    COALESCE(j.body, b.body) AS sent
             FROM jobs j LEFT JOIN bodies b ON b.id = j.body_id AND b.tenant_id = j.tenant_id
             WHERE j.tenant_id = $1 AND j.event_id = $2 AND j.kind IN ('delivery', 'sink') ORDER BY j.id LIMIT 1000",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Outbound {
                sink: r.get::<String, _>("kind") == "sink",
                delivery: super::deliveries::delivery(r),
                body: r.get("sent"),
            })
            .collect())
    }

    /// Events, delivery attempts and failed attempts of the tenant in `buckets` buckets of
    /// `bucket_ms` ending now, oldest bucket first.
    pub async fn activity(&self, tenant: &TenantId, bucket_ms: i64, buckets: usize) -> Result<Vec<Activity>> {
        let since = self.now_ms() - bucket_ms * buckets as i64;
        let mut out = vec![Activity::default(); buckets];
        let rows = sqlx::query(
            "SELECT b, SUM(ev) AS events, SUM(att) AS attempts, SUM(bad) AS failed FROM (
                SELECT (created_at - $1) / $2 AS b, 1 AS ev, 0 AS att, 0 AS bad FROM events
                 WHERE tenant_id = $3 AND created_at >= $4
                UNION ALL
                SELECT (attempted_at - $5) / $6, 0, 1, CASE WHEN status_code BETWEEN 200 AND 299 THEN 0 ELSE 1 END
                  FROM delivery_attempts WHERE tenant_id = $7 AND attempted_at >= $8
             ) t GROUP BY b",
        )
        .bind(since)
        .bind(bucket_ms)
        .bind(tenant.as_str())
        .bind(since)
        .bind(since)
        .bind(bucket_ms)
        .bind(tenant.as_str())
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            if let Some(a) = out.get_mut(r.get::<i64, _>("b") as usize) {
                *a =
                    Activity { events: r.get("events"), attempts: r.get("attempts"), failed_attempts: r.get("failed") };
            }
        }
        Ok(out)
    }

    /// The tenant's jobs not yet finished, by kind (`plugin`, `delivery`, `sink`).
    pub async fn backlog(&self, tenant: &TenantId) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM jobs WHERE tenant_id = $1 AND status IN ('pending', 'running')
             GROUP BY kind ORDER BY kind",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get("kind"), r.get("n"))).collect())
    }

    /// The providers the tenant has set a secret for (`twilio`, `stripe`, `exotel`, `vendor:…`).
    pub async fn configured_providers(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT provider FROM provider_configs WHERE tenant_id = $1 ORDER BY provider")
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get("provider")).collect())
    }

    /// The Twilio voice requests kept for one call (its signals), oldest first.
    pub async fn call_receipts(&self, tenant: &TenantId, call_sid: &str) -> Result<Vec<ReceiptDetail>> {
        let keys = [
            format!("twilio:inbound:{call_sid}"),
            format!("twilio:call:{call_sid}:"),
            format!("twilio:dial:{call_sid}:"),
        ];
        let rows = sqlx::query(
            "SELECT id, provider, route, headers, body, received_at, verdict, reason FROM receipts
             WHERE tenant_id = $1 AND provider = 'twilio'
               AND (dedupe_key = $2 OR substr(dedupe_key, 1, $3) = $4 OR substr(dedupe_key, 1, $5) = $6)
             ORDER BY id LIMIT 200",
        )
        .bind(tenant.as_str())
        .bind(&keys[0])
        .bind(keys[1].len() as i32) // substr takes an int4 on PostgreSQL
        .bind(&keys[1])
        .bind(keys[2].len() as i32)
        .bind(&keys[2])
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(receipt_detail).collect()
    }
}

/// A `receipts` row read whole.
fn receipt_detail(r: &sqlx::any::AnyRow) -> Result<ReceiptDetail> {
    let headers: String = r.get("headers");
    Ok(ReceiptDetail {
        id: r.get("id"),
        provider: r.get("provider"),
        route: r.get("route"),
        headers: serde_json::from_str(&headers).map_err(super::decode("receipt headers"))?,
        body: r.get("body"),
        received_at: r.get("received_at"),
        verdict: verdict(r)?,
        reason: r.get("reason"),
    })
}
