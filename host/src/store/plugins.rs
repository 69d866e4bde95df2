//! The plugin registry in the store: named plugins with immutable versions, which version of
//! each is active, the tenant's chain, its limit overrides, its key-value store, and the
//! recorded cost of each invocation. Every query is scoped by tenant.
//!
//! Owns SQL only; what a chain or a limit means is the plugin module's business.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use super::{PluginState, Result, Store, StoreError, decode};
use crate::TenantId;

/// A stored plugin version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    pub name: String,
    pub version: i64,
    pub digest: String,
}

/// One version as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub version: i64,
    pub digest: String,
    pub size_bytes: i64,
    pub created_at: i64,
    pub active: bool,
    /// `compiling`, `ready` or `invalid`; only a ready version may be activated.
    pub state: PluginState,
    /// Why the version is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A named plugin with its versions, oldest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    pub name: String,
    pub active_version: Option<i64>,
    pub versions: Vec<VersionInfo>,
}

/// One rule of a tenant's chain: events whose type matches `pattern` run through `plugins` in
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainRule {
    #[serde(rename = "match")]
    pub pattern: String,
    pub plugins: Vec<String>,
}

/// One recorded invocation, for usage figures.
/// A tenant's stored limit settings: its own overrides and the operator's ceiling.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitSettings {
    pub overrides: Option<Value>,
    pub ceiling: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct UsageRow {
    pub name: String,
    pub version: i64,
    pub outcome: String,
    pub fuel_used: Option<i64>,
    pub wall_us: i64,
    pub peak_memory: Option<i64>,
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// A new version was stored.
    Created(PluginVersion),
    /// The same bytes were already stored under this name: that version.
    Existing(PluginVersion),
    /// Storing it would pass a quota: which, and the message.
    OverQuota(&'static str, String),
}

/// A tenant's plugin quotas.
#[derive(Debug, Clone, Copy)]
pub struct PluginQuotas {
    /// Named plugins.
    pub plugins: u64,
    /// Versions of one plugin.
    pub versions: u64,
    /// Component bytes stored, all versions of all plugins.
    pub bytes: u64,
}

/// What deleting one version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionDelete {
    Deleted,
    /// The version is active: activate another or delete the plugin.
    Active,
    NotFound,
}

/// The version of `name` stored with `digest`, if any.
async fn stored_version(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    name: &str,
    digest: &str,
) -> Result<Option<i64>> {
    Ok(sqlx::query("SELECT version FROM plugins WHERE tenant_id = $1 AND name = $2 AND digest = $3")
        .bind(tenant.as_str())
        .bind(name)
        .bind(digest)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.get("version")))
}

/// The quota a new version of `name` (`size` bytes) would pass, if any.
async fn over_quota(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    name: &str,
    size: u64,
    q: PluginQuotas,
) -> Result<Option<(&'static str, String)>> {
    let row = sqlx::query(
        "SELECT COUNT(DISTINCT name) AS plugins,
                COALESCE(SUM(CASE WHEN name = $2 THEN 1 ELSE 0 END), 0) AS versions,
                COALESCE(SUM(length(component)), 0) AS bytes
         FROM plugins WHERE tenant_id = $1",
    )
    .bind(tenant.as_str())
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    let (plugins, versions, bytes): (i64, i64, i64) = (row.get("plugins"), row.get("versions"), row.get("bytes"));
    Ok(if versions == 0 && plugins as u64 >= q.plugins {
        Some(("plugins", format!("the tenant has {plugins} plugins, its quota; delete one first")))
    } else if versions as u64 >= q.versions {
        Some((
            "plugin_versions",
            format!("plugin {name:?} has {versions} versions, its quota; delete inactive versions first"),
        ))
    } else if bytes as u64 + size > q.bytes {
        Some((
            "plugin_bytes",
            format!("{bytes} bytes of components stored; {size} more would pass the quota of {}", q.bytes),
        ))
    } else {
        None
    })
}

/// A key-value write asked for by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvPut {
    Stored,
    /// The tenant already has the maximum number of keys.
    QuotaExceeded,
}

/// Runs considered for usage figures, newest first.
const USAGE_WINDOW: i64 = 100_000;

impl Store {
    /// Store `component` as the next version of `name`, `compiling` (or find the version with
    /// the same digest), to be made the active version of `name` when ready if `activate`.
    pub async fn add_plugin_version(
        &self,
        tenant: &TenantId,
        name: &str,
        digest: &str,
        component: &[u8],
        activate: bool,
        quotas: PluginQuotas,
    ) -> Result<Upload> {
        let mut tx = self.begin(true).await?;
        // Concurrent uploads of one tenant count their quotas one after the other.
        super::serialize_on(&mut tx, self.backend, "plugins", tenant.as_str()).await?;
        let existing = stored_version(&mut tx, tenant, name, digest).await?;
        if existing.is_none()
            && let Some((quota, message)) = over_quota(&mut tx, tenant, name, component.len() as u64, quotas).await?
        {
            return Ok(Upload::OverQuota(quota, message));
        }
        let version = match existing {
            Some(v) => v,
            None => {
                let v: i64 = sqlx::query(
                    "SELECT COALESCE(MAX(version), 0) + 1 AS v FROM plugins WHERE tenant_id = $1 AND name = $2",
                )
                .bind(tenant.as_str())
                .bind(name)
                .fetch_one(&mut *tx)
                .await?
                .get("v");
                sqlx::query(
                    "INSERT INTO plugins (tenant_id, name, version, digest, component, active, created_at, state,
                         activate_when_ready)
                     VALUES ($1, $2, $3, $4, $5, 0, $6, 'compiling', $7)",
                )
                .bind(tenant.as_str())
                .bind(name)
                .bind(v)
                .bind(digest)
                .bind(component)
                .bind(self.now_ms())
                .bind(activate as i64)
                .execute(&mut *tx)
                .await?;
                v
            }
        };
        if activate && existing.is_some() {
            // Active now if it is ready; when it is, if it is still compiling.
            set_active(&mut tx, tenant, name, version).await?;
            sqlx::query(
                "UPDATE plugins SET activate_when_ready = 1
                 WHERE tenant_id = $1 AND name = $2 AND version = $3 AND state = 'compiling'",
            )
            .bind(tenant.as_str())
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let pv = PluginVersion { name: name.to_string(), version, digest: digest.to_string() };
        Ok(if existing.is_some() { Upload::Existing(pv) } else { Upload::Created(pv) })
    }

    /// Delete one version of `name` unless it is the active one.
    pub async fn delete_plugin_version(&self, tenant: &TenantId, name: &str, version: i64) -> Result<VersionDelete> {
        let mut tx = self.begin(true).await?;
        let r = sqlx::query("DELETE FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3 AND active = 0")
            .bind(tenant.as_str())
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        let outcome = if r.rows_affected() > 0 {
            VersionDelete::Deleted
        } else {
            let active =
                sqlx::query("SELECT 1 AS one FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3")
                    .bind(tenant.as_str())
                    .bind(name)
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if active.is_some() { VersionDelete::Active } else { VersionDelete::NotFound }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Make `version` the active version of `name`. False when there is no such version, or it
    /// is not ready ([`Store::version_state`] tells which).
    pub async fn activate_plugin(&self, tenant: &TenantId, name: &str, version: i64) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let found = set_active(&mut tx, tenant, name, version).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Delete every version of `name`. False when there was none.
    pub async fn delete_plugin(&self, tenant: &TenantId, name: &str) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let r = sqlx::query("DELETE FROM plugins WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// The tenant's plugins with their versions, by name.
    pub async fn plugins(&self, tenant: &TenantId) -> Result<Vec<PluginInfo>> {
        let rows = sqlx::query(
            "SELECT name, version, digest, length(component) AS size, active, created_at, state, state_reason
             FROM plugins WHERE tenant_id = $1 ORDER BY name, version",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<PluginInfo> = Vec::new();
        for r in rows {
            let name: String = r.get("name");
            let v = VersionInfo {
                version: r.get("version"),
                digest: r.get("digest"),
                size_bytes: r.get("size"),
                created_at: r.get("created_at"),
                active: r.get::<i64, _>("active") != 0,
                state: plugin_state(r.get("state"))?,
                reason: r.get("state_reason"),
            };
            match out.last_mut() {
                Some(p) if p.name == name => {
                    if v.active {
                        p.active_version = Some(v.version);
                    }
                    p.versions.push(v);
                }
                _ => out.push(PluginInfo { name, active_version: v.active.then_some(v.version), versions: vec![v] }),
            }
        }
        Ok(out)
    }

    pub async fn plugin_version(&self, tenant: &TenantId, name: &str, version: i64) -> Result<Option<PluginVersion>> {
        let row = sqlx::query(
            "SELECT name, version, digest FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(plugin_version))
    }

    /// The active version of each of the tenant's plugins, in the order the plugins were first
    /// uploaded (the implicit chain when the tenant set none).
    pub async fn active_plugins(&self, tenant: &TenantId) -> Result<Vec<PluginVersion>> {
        let rows = sqlx::query(
            "SELECT p.name, p.version, p.digest FROM plugins p
             WHERE p.tenant_id = $1 AND p.active = 1
             ORDER BY (SELECT MIN(f.created_at) FROM plugins f WHERE f.tenant_id = p.tenant_id AND f.name = p.name), p.name",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(plugin_version).collect())
    }

    pub async fn plugin_component(&self, tenant: &TenantId, name: &str, version: i64) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT component FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3")
            .bind(tenant.as_str())
            .bind(name)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("component")))
    }

    // ---- chain and limits ----

    /// The tenant's chain, if it set one.
    pub async fn chain(&self, tenant: &TenantId) -> Result<Option<Vec<ChainRule>>> {
        let row = sqlx::query("SELECT rules FROM plugin_chains WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| serde_json::from_str(r.get("rules")).map_err(decode("plugin chain"))).transpose()
    }

    /// Replace the tenant's chain; `None` removes it (back to the implicit chain).
    pub async fn set_chain(&self, tenant: &TenantId, rules: Option<&[ChainRule]>) -> Result<()> {
        let mut tx = self.begin(true).await?;
        match rules {
            Some(rules) => {
                sqlx::query(
                    "INSERT INTO plugin_chains (tenant_id, rules, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (tenant_id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at",
                )
                .bind(tenant.as_str())
                .bind(serde_json::to_string(rules).expect("rules serialize"))
                .bind(self.now_ms())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM plugin_chains WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's own limit overrides and the operator's ceiling overrides (JSON objects),
    /// each if set.
    pub async fn limit_settings(&self, tenant: &TenantId) -> Result<LimitSettings> {
        let row = sqlx::query("SELECT overrides, ceiling FROM tenant_limits WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let parse = |text: Option<String>, what: &'static str| -> Result<Option<Value>> {
            text.map(|t| serde_json::from_str(&t).map_err(decode(what))).transpose()
        };
        let Some(row) = row else { return Ok(LimitSettings::default()) };
        Ok(LimitSettings {
            overrides: parse(row.get("overrides"), "tenant limits")?,
            ceiling: parse(row.get("ceiling"), "tenant ceiling")?,
        })
    }

    /// Set the tenant's own limit overrides.
    pub async fn set_limit_overrides(&self, tenant: &TenantId, overrides: &Value) -> Result<()> {
        self.upsert_limits(tenant, "overrides", overrides).await
    }

    /// Set the operator's ceiling overrides for the tenant.
    pub async fn set_ceiling(&self, tenant: &TenantId, ceiling: &Value) -> Result<()> {
        self.upsert_limits(tenant, "ceiling", ceiling).await
    }

    async fn upsert_limits(&self, tenant: &TenantId, column: &'static str, value: &Value) -> Result<()> {
        let mut tx = self.begin(true).await?;
        // `column` is one of two constants above, never input; a new row's other column
        // starts as "no overrides" / "the default ceiling".
        let (overrides, ceiling) = if column == "ceiling" {
            (Some("{}".to_string()), Some(value.to_string()))
        } else {
            (Some(value.to_string()), None)
        };
        let sql = format!(
            "INSERT INTO tenant_limits (tenant_id, overrides, ceiling, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO UPDATE SET {column} = excluded.{column}, updated_at = excluded.updated_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(overrides)
            .bind(ceiling)
            .bind(self.now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- key-value ----

    pub async fn kv_get(&self, tenant: &TenantId, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(tenant.as_str())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("value")))
    }

    /// Set `key`, unless it is new and the tenant already holds `max_keys` keys.
    pub async fn kv_put(&self, tenant: &TenantId, key: &str, value: &str, max_keys: u64) -> Result<KvPut> {
        let mut tx = self.begin(true).await?;
        let put = kv_write(&mut tx, tenant, key, Some(value), max_keys, self.now_ms()).await?;
        tx.commit().await?;
        Ok(put)
    }

    /// Delete `key`; false when it was not set.
    pub async fn kv_delete(&self, tenant: &TenantId, key: &str) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let r = sqlx::query("DELETE FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(tenant.as_str())
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    // ---- usage ----

    /// The tenant's most recent invocations (at most 100,000), for usage figures.
    pub async fn usage_rows(&self, tenant: &TenantId) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT plugin_name, plugin_version, outcome, fuel_used, wall_us, peak_memory FROM plugin_runs
             WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(USAGE_WINDOW)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UsageRow {
                name: r.get("plugin_name"),
                version: r.get("plugin_version"),
                outcome: r.get("outcome"),
                fuel_used: r.get("fuel_used"),
                wall_us: r.get("wall_us"),
                peak_memory: r.get("peak_memory"),
            })
            .collect())
    }
}

/// Write (or with `None` delete) one key inside `tx`, respecting the key quota.
pub(super) async fn kv_write(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantId,
    key: &str,
    value: Option<&str>,
    max_keys: u64,
    now: i64,
) -> Result<KvPut> {
    let Some(value) = value else {
        sqlx::query("DELETE FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(tenant.as_str())
            .bind(key)
            .execute(&mut **tx)
            .await?;
        return Ok(KvPut::Stored);
    };
    let r = sqlx::query("UPDATE kv SET value = $1, updated_at = $2 WHERE tenant_id = $3 AND key = $4")
        .bind(value)
        .bind(now)
        .bind(tenant.as_str())
        .bind(key)
        .execute(&mut **tx)
        .await?;
    if r.rows_affected() > 0 {
        return Ok(KvPut::Stored);
    }
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM kv WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut **tx)
        .await?
        .get("n");
    if count as u64 >= max_keys {
        return Ok(KvPut::QuotaExceeded);
    }
    sqlx::query("INSERT INTO kv (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4)")
        .bind(tenant.as_str())
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(KvPut::Stored)
}

pub(super) async fn set_active(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantId,
    name: &str,
    version: i64,
) -> Result<bool> {
    // One statement: nothing changes unless the version exists and is ready.
    let r = sqlx::query(
        "UPDATE plugins SET active = CASE WHEN version = $1 THEN 1 ELSE 0 END WHERE tenant_id = $2 AND name = $3 AND EXISTS (
             SELECT 1 FROM plugins WHERE tenant_id = $4 AND name = $5 AND version = $6 AND state = 'ready')",
    )
    .bind(version)
    .bind(tenant.as_str())
    .bind(name)
    .bind(tenant.as_str())
    .bind(name)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() > 0)
}

fn plugin_version(r: &AnyRow) -> PluginVersion {
    PluginVersion { name: r.get("name"), version: r.get("version"), digest: r.get("digest") }
}

/// A stored compile state; one that does not parse is corrupt, never a default.
pub(super) fn plugin_state(text: String) -> Result<PluginState> {
    PluginState::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown plugin state {text:?}")))
}
