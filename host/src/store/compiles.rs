//! Plugin versions' compile state: a version is stored `compiling` at upload, then `ready` or
//! `invalid` (with the reason) when its compilation ends — on the replica that took the upload,
//! or after a crash on whichever starts next ([`Store::compiling_versions`]). A version uploaded
//! to be activated becomes active when it is ready, in the same transaction.
//!
//! Part of [`Store`](super::Store): SQL only; compiling is the plugin engine's business.

use super::plugins::{plugin_state, set_active};
use super::*;

impl Store {
    /// Record how the compilation of a `compiling` version ended: `Ok` ready (and active, if it
    /// was uploaded to be), `Err(reason)` invalid. Applied once: a version no longer compiling
    /// (or deleted meanwhile) is left as it is. Returns whether the version became active.
    pub async fn finish_compile(
        &self,
        tenant: &TenantId,
        name: &str,
        version: i64,
        outcome: std::result::Result<(), String>,
    ) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let (state, reason) = match &outcome {
            Ok(()) => (PluginState::Ready, None),
            Err(reason) => (PluginState::Invalid, Some(reason.as_str())),
        };
        let row = sqlx::query(
            "UPDATE plugins SET state = $1, state_reason = $2
             WHERE tenant_id = $3 AND name = $4 AND version = $5 AND state = 'compiling'
             RETURNING activate_when_ready",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(tenant.as_str())
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let activate = row.is_some_and(|r| r.get::<i64, _>("activate_when_ready") != 0) && outcome.is_ok();
        let activated = activate && set_active(&mut tx, tenant, name, version).await?;
        tx.commit().await?;
        Ok(activated)
    }

    /// Every version still `compiling` (its compilation was cut short by a stop or a crash),
    /// oldest first.
    pub async fn compiling_versions(&self) -> Result<Vec<(TenantId, PluginVersion)>> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, version, digest FROM plugins WHERE state = 'compiling' ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let version = PluginVersion { name: r.get("name"), version: r.get("version"), digest: r.get("digest") };
                (TenantId::from_stored(r.get("tenant_id")), version)
            })
            .collect())
    }

    /// A version's compile state and, when invalid, why; `None` when there is no such version.
    pub async fn version_state(
        &self,
        tenant: &TenantId,
        name: &str,
        version: i64,
    ) -> Result<Option<(PluginState, Option<String>)>> {
        let row =
            sqlx::query("SELECT state, state_reason FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3")
                .bind(tenant.as_str())
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((plugin_state(r.get("state"))?, r.get("state_reason")))),
        }
    }
}
