//! Stored plugins made ready to run: an uploaded version compiled and its outcome recorded
//! ([`compile_version`], [`recover_compiles`]: the only writes here, a version's compile state),
//! a stored version compiled (from the engine's cache when it has it) into a chain [`Stage`],
//! and a tenant's effective limits. Shared by the API, the router stage, the dry run and the
//! CLI.

use std::sync::Arc;

use super::chain::Stage;
use super::{Limits, PluginEngine, PluginError};
use crate::TenantId;
use crate::store::{LimitSettings, PluginState, PluginVersion, Store, StoreError};

/// Why a plugin job (or a dry run) could not be carried out: a fault of the host, not of the
/// plugin, whose misbehaviour is an outcome.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("stored plugin {0} v{1} is missing")]
    MissingPlugin(String, i64),
}

/// Compile an uploaded version (`compiling`) within the compile budget, check that it
/// instantiates under the tenant's limits, and record it `ready` — kept compiled, and active if
/// it was uploaded to be — or `invalid` with the reason. A fault of the host (the store, the
/// engine) leaves it compiling: the next start compiles it again.
pub async fn compile_version(
    store: &Store,
    engine: &Arc<PluginEngine>,
    tenant: &TenantId,
    version: &PluginVersion,
    bytes: Vec<u8>,
) -> Result<PluginState, WorkError> {
    let outcome = match engine.compile_in_turn(bytes).await {
        Ok(compiled) => {
            let limits = tenant_limits(store, engine, tenant).await?;
            match engine.instantiate(&compiled, tenant, &limits).await {
                Ok(()) => {
                    engine.remember(&version.digest, compiled);
                    Ok(())
                }
                Err(e) => Err(format!("not a usable plugin: {e}")),
            }
        }
        Err(PluginError::Invalid(reason)) => Err(format!("not a valid plugin component: {reason}")),
        Err(fault) => return Err(fault.into()),
    };
    let activated = store.finish_compile(tenant, &version.name, version.version, outcome.clone()).await?;
    let (name, v) = (&version.name, version.version);
    match outcome {
        Ok(()) => {
            tracing::info!(%tenant, plugin = name, version = v, activated, "plugin version compiled: ready");
            Ok(PluginState::Ready)
        }
        Err(reason) => {
            tracing::warn!(%tenant, plugin = name, version = v, %reason, "plugin version refused: invalid");
            Ok(PluginState::Invalid)
        }
    }
}

/// Compile, one after another, every version a stop or a crash left `compiling`.
pub async fn recover_compiles(store: Store, engine: Arc<PluginEngine>) {
    let left = match store.compiling_versions().await {
        Ok(left) => left,
        Err(e) => return tracing::warn!(error = %e, "could not read plugin versions left compiling"),
    };
    for (tenant, version) in left {
        let bytes = match store.plugin_component(&tenant, &version.name, version.version).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(e) => return tracing::warn!(error = %e, "could not read a plugin version left compiling"),
        };
        if let Err(e) = compile_version(&store, &engine, &tenant, &version, bytes).await {
            tracing::warn!(%tenant, plugin = version.name, version = version.version, error = %e, "plugin version still compiling");
        }
    }
}

/// One stored plugin version, compiled (from the engine's cache when it has it).
pub async fn stage(
    store: &Store,
    engine: &Arc<PluginEngine>,
    tenant: &TenantId,
    version: PluginVersion,
) -> Result<Stage, WorkError> {
    let compiled = engine
        .get_or_compile(&version.digest, || async {
            store
                .plugin_component(tenant, &version.name, version.version)
                .await?
                .ok_or_else(|| WorkError::MissingPlugin(version.name.clone(), version.version))
        })
        .await?;
    Ok(Stage { version, compiled })
}

/// The tenant's limits: the configured defaults with its overrides, within its ceiling.
pub async fn tenant_limits(store: &Store, engine: &PluginEngine, tenant: &TenantId) -> Result<Limits, WorkError> {
    Ok(limits_from(engine, &store.limit_settings(tenant).await?))
}

/// The limits these stored settings give under the engine's defaults and ceiling.
pub fn limits_from(engine: &PluginEngine, settings: &LimitSettings) -> Limits {
    engine.ceiling(settings.ceiling.as_ref()).effective(engine.limits(), settings.overrides.as_ref())
}
