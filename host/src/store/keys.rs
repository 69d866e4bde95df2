//! Tenants' api keys: several valid at once while one rotates out, each known by its prefix,
//! stored as a SHA-256 digest (the key itself is shown once, at creation). Owns the `api_keys`
//! statements; the API decides who may call them.

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store};
use crate::TenantId;

/// A key as listed: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub prefix: String,
    pub created_at: i64,
    /// Unix ms; `None` until the key is rotated out.
    pub expires_at: Option<i64>,
}

impl Store {
    /// The tenant whose unexpired api key hashes to `hash`, as of `now` (unix ms).
    pub async fn tenant_by_key_hash(&self, hash: &str, now: i64) -> Result<Option<TenantId>> {
        let row = sqlx::query(
            "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| TenantId::from_stored(r.get("tenant_id"))))
    }

    /// Add a key; every key of the tenant still valid past `now + overlap_ms` now expires then.
    /// Returns when the previous keys expire (`None` when there were none).
    pub async fn rotate_api_key(
        &self,
        tenant: &TenantId,
        hash: &str,
        prefix: &str,
        now: i64,
        overlap_ms: i64,
    ) -> Result<Option<i64>> {
        let until = now + overlap_ms;
        let mut tx = self.begin(true).await?;
        let previous = sqlx::query(
            "UPDATE api_keys SET expires_at = $1 WHERE tenant_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(until)
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        insert_key(&mut tx, tenant, hash, prefix, now).await?;
        tx.commit().await?;
        Ok((previous > 0).then_some(until))
    }

    /// The tenant's keys still valid at `now`, newest first.
    pub async fn api_keys(&self, tenant: &TenantId, now: i64) -> Result<Vec<ApiKeyInfo>> {
        let rows = sqlx::query(
            "SELECT prefix, created_at, expires_at FROM api_keys
             WHERE tenant_id = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at DESC, prefix",
        )
        .bind(tenant.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ApiKeyInfo {
                prefix: r.get("prefix"),
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
            })
            .collect())
    }

    /// Revoke the tenant's key with `prefix` at once. False when it has none.
    pub async fn revoke_api_key(&self, tenant: &TenantId, prefix: &str) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let gone = sqlx::query("DELETE FROM api_keys WHERE tenant_id = $1 AND prefix = $2")
            .bind(tenant.as_str())
            .bind(prefix)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(gone)
    }
}

pub(super) async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &TenantId,
    hash: &str,
    prefix: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO api_keys (key_hash, tenant_id, prefix, created_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(tenant.as_str())
        .bind(prefix)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
