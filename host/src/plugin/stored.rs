//! Stored plugins made ready to run: a stored version compiled (from the engine's cache when
//! it has it) into a chain [`Stage`], and a tenant's effective limits. Shared by the router
//! stage, the dry run and the CLI; reads the store, never writes it.

use std::sync::Arc;

use super::chain::Stage;
use super::{Limits, PluginEngine, PluginError};
use crate::TenantId;
use crate::store::{LimitSettings, PluginVersion, Store, StoreError};

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
