//! Routes of the plugin platform: the registry (upload, list, activate, delete), dry runs,
//! the chain, per-tenant limits, the key-value store and usage figures.
//!
//! Like the rest of the API: parse, authorize, call the store or the plugin engine, map the
//! result to HTTP. No SQL and no wasmtime here.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::views::*;
use super::{ApiError, AppState, TenantAuth, json_body, read_body};
use crate::TenantId;
use crate::plugin::dryrun::{MAX_LAST, dry_run};
use crate::plugin::stored::{WorkError, compile_version, stage};
use crate::plugin::{Ceiling, KV_MAX_KEY_BYTES, KV_MAX_VALUE_BYTES};
use crate::store::{ChainRule, KvPut, LimitSettings, PluginQuotas, PluginState, Upload, UsageRow, VersionDelete};

/// The name the skeleton's `POST /v1/tenants/{id}/plugins` stores under.
pub const DEFAULT_PLUGIN: &str = "default";

impl From<WorkError> for ApiError {
    fn from(e: WorkError) -> Self {
        match e {
            WorkError::Store(e) => ApiError::Store(e),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Plugin names: 1 to 64 of `a-z 0-9 - _`, starting with a letter or digit; `usage` is a route.
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name != "usage";
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "invalid plugin name {name:?}: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit (not \"usage\")"
        )))
    }
}

/// Validate, precompile and store an uploaded component as a version of `name`.
pub(super) async fn store_upload(
    state: &AppState,
    tenant: &TenantId,
    name: &str,
    headers: &HeaderMap,
    bytes: axum::body::Bytes,
    activate: bool,
) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/wasm") {
        return Err(ApiError::UnsupportedMediaType("plugins are uploaded as Content-Type: application/wasm".into()));
    }
    // A component's preamble: `\0asm`, then the component layer's version (a core module's
    // is 1.0.0.0). Anything else is refused now; the rest is checked by compiling it.
    if !bytes.starts_with(b"\0asm") || bytes.get(6..8) != Some(&[1, 0]) {
        tracing::warn!(%tenant, plugin = name, "plugin upload refused: not a component");
        return Err(ApiError::Unprocessable(
            "not a valid plugin component: not a WebAssembly component (a core module, or not WebAssembly at all); build it for wasm32-wasip2 or with a component toolchain".into(),
        ));
    }
    let digest = hex::encode(Sha256::digest(&bytes));
    let quotas = plugin_quotas(&state.config);
    let upload = state.store.add_plugin_version(tenant, name, &digest, &bytes, activate, quotas).await?;
    let (status, v) = match upload {
        Upload::Created(v) => (StatusCode::ACCEPTED, v),
        Upload::Existing(v) => (StatusCode::OK, v),
        Upload::OverQuota(quota, message) => {
            tracing::warn!(%tenant, plugin = name, quota, "plugin upload refused: over quota");
            return Err(ApiError::Quota { quota, message });
        }
    };
    tracing::info!(%tenant, plugin = name, version = v.version, %digest, activate, new = status == StatusCode::ACCEPTED, "plugin uploaded");
    if status == StatusCode::ACCEPTED {
        // Compiled in the background, within the compile budget: the upload answers now.
        let (store, engine, tenant, version) = (state.store.clone(), state.plugins.clone(), tenant.clone(), v.clone());
        let bytes = bytes.to_vec();
        tokio::spawn(async move {
            if let Err(e) = compile_version(&store, &engine, &tenant, &version, bytes).await {
                tracing::error!(%tenant, plugin = version.name, version = version.version, error = %e, "plugin version left compiling: the next start compiles it");
            }
        });
    }
    // A new version is answered as it was stored (its compile may already have ended: `GET`
    // tells); the same bytes again, as the version stands now.
    let (active, state_now, reason) = if status == StatusCode::ACCEPTED {
        (false, PluginState::Compiling, None)
    } else {
        let info = state.store.plugins(tenant).await?.into_iter().find(|p| p.name == v.name);
        let now = info.and_then(|p| p.versions.into_iter().find(|i| i.version == v.version));
        let gone = || ApiError::NotFound(format!("version {} of {:?} was deleted meanwhile", v.version, v.name));
        let now = now.ok_or_else(gone)?;
        (now.active, now.state, now.reason)
    };
    let view = UploadedVersion { name: v.name, version: v.version, digest: v.digest, active, state: state_now, reason };
    Ok((status, Json(view)).into_response())
}

fn plugin_quotas(config: &crate::Config) -> PluginQuotas {
    PluginQuotas {
        plugins: config.max_plugins,
        versions: config.max_plugin_versions,
        bytes: config.max_plugin_storage_bytes,
    }
}

/// The skeleton's upload: a new version of the plugin named `default`, activated at once.
pub(super) async fn upload_plugin(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.config.max_plugin_bytes).await?;
    store_upload(&state, &tenant, DEFAULT_PLUGIN, &headers, bytes, true).await
}

pub(super) async fn upload_named(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    // Authenticated before a byte of the body is read; read before any other answer, so the
    // connection stays usable whatever it is.
    let bytes = read_body(body, state.config.max_plugin_bytes).await?;
    check_name(&name)?;
    store_upload(&state, &tenant, &name, &headers, bytes, false).await
}

pub(super) async fn list_plugins(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<PluginList>, ApiError> {
    let plugins = state.store.plugins(&tenant).await?;
    Ok(Json(PluginList { data: plugins }))
}

pub(super) async fn get_plugin(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<crate::store::PluginInfo>, ApiError> {
    let plugin = state.store.plugins(&tenant).await?.into_iter().find(|p| p.name == name);
    let plugin = plugin.ok_or_else(|| ApiError::NotFound(format!("no plugin {name:?}")))?;
    Ok(Json(plugin))
}

pub(super) async fn delete_plugin(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if let Some(rules) = state.store.chain(&tenant).await?
        && rules.iter().any(|r| r.plugins.contains(&name))
    {
        return Err(ApiError::Conflict(format!("plugin {name:?} is in the tenant's chain; change the chain first")));
    }
    if !state.store.delete_plugin(&tenant, &name).await? {
        return Err(ApiError::NotFound(format!("no plugin {name:?}")));
    }
    tracing::info!(%tenant, plugin = name, "plugin deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Why a version cannot run: 404 when there is none, 409 while it compiles or when invalid.
async fn not_ready(state: &AppState, tenant: &TenantId, name: &str, version: i64) -> ApiError {
    match state.store.version_state(tenant, name, version).await {
        Err(e) => e.into(),
        Ok(None) => ApiError::NotFound(format!("plugin {name:?} has no version {version}")),
        Ok(Some((PluginState::Compiling, _))) => {
            ApiError::Conflict(format!("version {version} of {name:?} is still compiling; try again when it is ready"))
        }
        Ok(Some((s, reason))) => ApiError::Conflict(format!(
            "version {version} of {name:?} is {s}: {}",
            reason.unwrap_or_else(|| "not ready".into())
        )),
    }
}

fn parse_version(v: &str) -> Result<i64, ApiError> {
    v.trim_start_matches('v').parse().map_err(|_| ApiError::NotFound(format!("no version {v:?}")))
}

/// Delete one inactive version (the active one → 409: activate another first).
pub(super) async fn delete_version(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, name, v)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let version = parse_version(&v)?;
    match state.store.delete_plugin_version(&tenant, &name, version).await? {
        VersionDelete::Deleted => {
            tracing::info!(%tenant, plugin = name, version, "plugin version deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        VersionDelete::Active => Err(ApiError::Conflict(format!(
            "version {version} of {name:?} is active; activate another version or delete the plugin"
        ))),
        VersionDelete::NotFound => Err(ApiError::NotFound(format!("plugin {name:?} has no version {version}"))),
    }
}

pub(super) async fn activate(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, name, v)): Path<(String, String, String)>,
) -> Result<Json<Activated>, ApiError> {
    let version = parse_version(&v)?;
    if !state.store.activate_plugin(&tenant, &name, version).await? {
        return Err(not_ready(&state, &tenant, &name, version).await);
    }
    tracing::info!(%tenant, plugin = name, version, "plugin version activated");
    Ok(Json(Activated { name, version, active: true }))
}

pub(super) async fn dry_run_version(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, name, v)): Path<(String, String, String)>,
    body: Result<Json<DryRunRequest>, JsonRejection>,
) -> Result<Json<DryRunView>, ApiError> {
    let req = json_body(body)?;
    if !(1..=MAX_LAST).contains(&req.last) {
        return Err(ApiError::Unprocessable(format!("last must be between 1 and {MAX_LAST}")));
    }
    let version = parse_version(&v)?;
    if state.store.version_state(&tenant, &name, version).await?.is_some_and(|(s, _)| s != PluginState::Ready) {
        return Err(not_ready(&state, &tenant, &name, version).await);
    }
    let candidate = state
        .store
        .plugin_version(&tenant, &name, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("plugin {name:?} has no version {version}")))?;
    let candidate = stage(&state.store, &state.plugins, &tenant, candidate).await?;
    let ran = dry_run(&state.store, &state.plugins, &tenant, candidate, req.last, state.config.dry_run_timeout).await?;
    Ok(Json(DryRunView { name, version, results: ran.results, skipped: ran.skipped }))
}

// ---- chain ----

pub(super) async fn put_chain(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    body: Result<Json<Vec<ChainRule>>, JsonRejection>,
) -> Result<Json<ChainView>, ApiError> {
    let rules = json_body(body)?;
    let known: Vec<String> = state.store.plugins(&tenant).await?.into_iter().map(|p| p.name).collect();
    for (i, rule) in rules.iter().enumerate() {
        let p = &rule.pattern;
        let valid =
            p == "*" || (!p.is_empty() && !p.contains('*')) || p.strip_suffix(".*").is_some_and(|s| !s.contains('*'));
        if !valid {
            return Err(ApiError::Unprocessable(format!(
                "rule {i}: match {p:?} is not \"*\", a type, or \"prefix.*\""
            )));
        }
        if rule.plugins.len() > 16 {
            return Err(ApiError::Unprocessable(format!("rule {i}: at most 16 plugins")));
        }
        if let Some(unknown) = rule.plugins.iter().find(|n| !known.contains(n)) {
            return Err(ApiError::Unprocessable(format!("rule {i}: no plugin {unknown:?}")));
        }
    }
    if rules.len() > 100 {
        return Err(ApiError::Unprocessable("at most 100 rules".into()));
    }
    state.store.set_chain(&tenant, Some(&rules)).await?;
    tracing::info!(%tenant, rules = rules.len(), "plugin chain set");
    Ok(Json(ChainView { chain: Some(rules), implicit: None }))
}

pub(super) async fn get_chain(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<ChainView>, ApiError> {
    let chain = state.store.chain(&tenant).await?;
    let implicit: Vec<String> = state.store.active_plugins(&tenant).await?.into_iter().map(|p| p.name).collect();
    Ok(Json(match chain {
        Some(rules) => ChainView { chain: Some(rules), implicit: None },
        // No chain: every active plugin, in upload order, for every event.
        None => ChainView { chain: None, implicit: Some(vec![ChainRule { pattern: "*".into(), plugins: implicit }]) },
    }))
}

pub(super) async fn delete_chain(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<StatusCode, ApiError> {
    state.store.set_chain(&tenant, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- limits ----

/// Only what was set (no nulls), so a later change of a default reaches this tenant.
fn kept(overrides: &Value) -> Value {
    let kept: serde_json::Map<String, Value> = overrides
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// The limits view: effective limits, the tenant's own overrides and its ceiling.
fn limits_view(state: &AppState, settings: &LimitSettings) -> LimitsView {
    let ceiling = state.plugins.ceiling(settings.ceiling.as_ref());
    LimitsView {
        limits: ceiling.effective(state.plugins.limits(), settings.overrides.as_ref()).to_json(),
        overrides: settings.overrides.clone().unwrap_or_else(|| json!({})),
        ceiling: ceiling.to_json(),
    }
}

/// A tenant's (or the operator's) own limits: each at most the tenant's ceiling (422
/// `above_ceiling`), capabilities only as granted by it (403 `capability_not_granted`).
pub(super) async fn put_limits(
    State(state): State<AppState>,
    TenantAuth { tenant, operator }: TenantAuth,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<LimitsView>, ApiError> {
    let overrides = json_body(body)?;
    let mut settings = state.store.limit_settings(&tenant).await?;
    let ceiling = state.plugins.ceiling(settings.ceiling.as_ref());
    if let Err(e) = ceiling.check(state.plugins.limits(), &overrides) {
        tracing::warn!(%tenant, operator, error = %e, "plugin limits refused");
        return Err(e.into());
    }
    let stored = kept(&overrides);
    state.store.set_limit_overrides(&tenant, &stored).await?;
    tracing::info!(%tenant, operator, overrides = %stored, "plugin limits set");
    settings.overrides = Some(stored);
    Ok(Json(limits_view(&state, &settings)))
}

pub(super) async fn get_limits(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<LimitsView>, ApiError> {
    Ok(Json(limits_view(&state, &state.store.limit_settings(&tenant).await?)))
}

/// The operator's ceiling over a tenant's limits and the capabilities it grants (operator
/// token only). Fields as limits, plus `outbound_allow`; absent fields take the configured
/// default ceiling.
pub(super) async fn put_ceiling(
    State(state): State<AppState>,
    TenantAuth { tenant, operator }: TenantAuth,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<LimitsView>, ApiError> {
    if !operator {
        tracing::warn!(%tenant, "a tenant key tried to set its own ceiling");
        return Err(ApiError::Forbidden);
    }
    let overrides = json_body(body)?;
    Ceiling::default_for(state.plugins.limits()).with_overrides(&overrides).map_err(ApiError::Unprocessable)?;
    let stored = kept(&overrides);
    state.store.set_ceiling(&tenant, &stored).await?;
    tracing::info!(%tenant, ceiling = %stored, "tenant ceiling set");
    Ok(Json(limits_view(&state, &state.store.limit_settings(&tenant).await?)))
}

pub(super) async fn get_ceiling(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<CeilingView>, ApiError> {
    let settings = state.store.limit_settings(&tenant).await?;
    Ok(Json(CeilingView {
        ceiling: state.plugins.ceiling(settings.ceiling.as_ref()).to_json(),
        overrides: settings.ceiling.unwrap_or_else(|| json!({})),
    }))
}

// ---- key-value ----

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > KV_MAX_KEY_BYTES {
        return Err(ApiError::Unprocessable(format!("keys are 1 to {KV_MAX_KEY_BYTES} bytes")));
    }
    Ok(())
}

pub(super) async fn put_kv(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, key)): Path<(String, String)>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, KV_MAX_VALUE_BYTES).await?;
    check_key(&key)?;
    if bytes.len() > KV_MAX_VALUE_BYTES {
        return Err(ApiError::PayloadTooLarge(format!("values are at most {KV_MAX_VALUE_BYTES} bytes")));
    }
    let value =
        String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::Unprocessable("values are UTF-8 text".into()))?;
    match state.store.kv_put(&tenant, &key, &value, state.config.kv_max_keys).await? {
        KvPut::Stored => Ok(StatusCode::NO_CONTENT.into_response()),
        KvPut::QuotaExceeded => Err(ApiError::Conflict(format!(
            "the tenant's key-value store is full ({} keys); delete keys first",
            state.config.kv_max_keys
        ))),
    }
}

pub(super) async fn get_kv(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let value =
        state.store.kv_get(&tenant, &key).await?.ok_or_else(|| ApiError::NotFound(format!("no key {key:?}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], value).into_response())
}

pub(super) async fn delete_kv(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !state.store.kv_delete(&tenant, &key).await? {
        return Err(ApiError::NotFound(format!("no key {key:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---- usage ----

pub(super) async fn usage(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<UsageList>, ApiError> {
    let rows = state.store.usage_rows(&tenant).await?;
    Ok(Json(UsageList { data: summarize(rows) }))
}

/// Per plugin version: invocations, failures by reason, fuel and wall-time percentiles, peak
/// memory.
fn summarize(rows: Vec<UsageRow>) -> Vec<UsageView> {
    let mut by_version: BTreeMap<(String, i64), Vec<UsageRow>> = BTreeMap::new();
    for r in rows {
        by_version.entry((r.name.clone(), r.version)).or_default().push(r);
    }
    by_version
        .into_iter()
        .map(|((name, version), runs)| {
            let mut failures: BTreeMap<String, u64> = BTreeMap::new();
            for r in runs.iter().filter(|r| r.outcome != "ok") {
                *failures.entry(r.outcome.clone()).or_default() += 1;
            }
            let mut fuel: Vec<i64> = runs.iter().filter_map(|r| r.fuel_used).collect();
            let mut wall: Vec<i64> = runs.iter().map(|r| r.wall_us).collect();
            UsageView {
                name,
                version,
                invocations: runs.len(),
                failures,
                fuel: percentiles(&mut fuel),
                wall_us: percentiles(&mut wall),
                peak_memory_bytes: runs.iter().filter_map(|r| r.peak_memory).max(),
            }
        })
        .collect()
}

/// p50, p90, p99 and max of `values` (nearest rank); nulls when empty.
fn percentiles(values: &mut [i64]) -> Percentiles {
    values.sort_unstable();
    let rank = |p: f64| -> Option<i64> {
        if values.is_empty() {
            return None;
        }
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        Some(values[i])
    };
    Percentiles { p50: rank(0.50), p90: rank(0.90), p99: rank(0.99), max: values.last().copied() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<i64> = (1..=100).rev().collect();
        let all = |n| Some(n);
        assert_eq!(percentiles(&mut v), Percentiles { p50: all(50), p90: all(90), p99: all(99), max: all(100) });
        assert_eq!(percentiles(&mut []), Percentiles { p50: None, p90: None, p99: None, max: None });
    }

    #[test]
    fn plugin_names() {
        for ok in ["filter", "enrich-owner", "v2_reshape", "0day"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Filter", "-x", "usage", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
