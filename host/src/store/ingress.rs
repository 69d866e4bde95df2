//! Provider requests as evidence: the group-committed accept, rejected receipts, the
//! receipts listing and receipt replay.
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

impl Store {
    /// Keep a request as evidence only — `Rejected` (bad signature, stale timestamp, malformed
    /// body) or `Ignored` (verified, but no event) — with the reason, committed with the group
    /// commit's next batch (no transaction or fsync of its own).
    pub async fn keep_receipt(&self, receipt: &ReceiptRecord, verdict: Verdict, reason: &str) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest::Keep { receipt: receipt.clone(), verdict, reason: reason.to_string(), reply };
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.accepts.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// In one transaction: keep the receipt, store the event unless its dedupe key is already
    /// known, and enqueue its plugin job. Only after this returns may the provider get a 2xx.
    pub async fn accept(&self, receipt: &ReceiptRecord, event: &CanonicalEvent, dedupe_key: &str) -> Result<Accepted> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest::Accept {
            receipt: receipt.clone(),
            event: event.clone(),
            dedupe_key: dedupe_key.to_string(),
            reply,
        };
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.accepts.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Receipts of a tenant, newest first (without bodies).
    pub async fn receipts(&self, tenant: &TenantId, filter: &ReceiptFilter, limit: i64) -> Result<Vec<ReceiptSummary>> {
        let rows = sqlx::query(
            "SELECT id, provider, route, received_at, verdict, reason, event_id,
                    COALESCE(body_len, length(body)) AS body_bytes
             FROM receipts WHERE tenant_id = $1 AND ($2 IS NULL OR provider = $3) AND ($4 IS NULL OR verdict = $5)
               AND ($6 IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $8",
        )
        .bind(tenant.as_str())
        .bind(&filter.provider)
        .bind(&filter.provider)
        .bind(filter.verdict.map(Verdict::as_str))
        .bind(filter.verdict.map(Verdict::as_str))
        .bind(filter.before)
        .bind(filter.before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReceiptSummary {
                    id: r.get("id"),
                    provider: r.get("provider"),
                    route: r.get("route"),
                    received_at: r.get("received_at"),
                    verdict: verdict(r)?,
                    reason: r.get("reason"),
                    event_id: r.get("event_id"),
                    body_bytes: r.get("body_bytes"),
                })
            })
            .collect()
    }

    /// A kept receipt with its body.
    pub async fn receipt(&self, tenant: &TenantId, id: i64) -> Result<Option<KeptReceipt>> {
        let row =
            sqlx::query("SELECT provider, verdict, dedupe_key, body FROM receipts WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(KeptReceipt {
                provider: r.get("provider"),
                verdict: verdict(&r)?,
                dedupe_key: r.get("dedupe_key"),
                body: r.get("body"),
            })
        })
        .transpose()
    }

    /// The events a receipt produced (their dedupe keys are the receipt's, or start with it + `#`).
    pub async fn events_of_receipt(&self, tenant: &TenantId, dedupe_key: &str) -> Result<Vec<CanonicalEvent>> {
        let rows = sqlx::query(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error FROM events
             WHERE tenant_id = $1 AND (dedupe_key = $2 OR substr(dedupe_key, 1, $3) = $4) AND replay_of IS NULL ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(dedupe_key)
        .bind(dedupe_key.len() as i32 + 1) // substr takes an int4 on PostgreSQL
        .bind(format!("{dedupe_key}#"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| stored_event(r).map(|e| e.event)).collect()
    }

    /// Store `events` as fresh events replaying receipt `receipt_id` (new ids, plugin jobs).
    pub async fn insert_replays(
        &self,
        tenant: &TenantId,
        receipt_id: i64,
        events: &[CanonicalEvent],
    ) -> Result<Vec<String>> {
        let mut tx = self.begin(true).await?;
        let mut stage = self.stage();
        let now = self.now_ms();
        let mut ids = Vec::new();
        for e in events {
            let key = format!("replay:{receipt_id}:{}", e.id);
            if insert_event_with_job(&mut tx, &mut stage, e, &key, now).await? {
                sqlx::query("UPDATE events SET replay_of = $1 WHERE tenant_id = $2 AND id = $3")
                    .bind(receipt_id)
                    .bind(tenant.as_str())
                    .bind(&e.id)
                    .execute(&mut *tx)
                    .await?;
                ids.push(e.id.clone());
            }
        }
        tx.commit().await?;
        stage.publish();
        Ok(ids)
    }
}
