//! Each tenant's outbound policy: the operator's (`HOOKHOST_OUTBOUND_ALLOW`, plain http or not)
//! widened by the internal ranges the operator granted that tenant alone (`outbound_allow` on
//! its ceiling). Workers keep a tenant's policy for a few seconds, so a changed ceiling reaches
//! deliveries and sink writes within [`TTL`]; the API reads it afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::OutboundPolicy;
use crate::plugin::Ceiling;
use crate::store::{Store, StoreError};
use crate::{Config, TenantId};

/// How long a worker keeps a tenant's policy.
pub const TTL: Duration = Duration::from_secs(5);
/// Tenants kept at most; past that the cache starts over.
const MAX_TENANTS: usize = 4096;

/// Tenants' outbound policies, read from the store and kept for [`TTL`].
#[derive(Debug)]
pub struct TenantPolicies {
    /// The ceiling of tenants without one of their own (its grants are theirs).
    default_ceiling: Ceiling,
    base: OutboundPolicy,
    cache: Mutex<HashMap<TenantId, (Instant, Arc<OutboundPolicy>)>>,
}

impl TenantPolicies {
    pub fn new(config: &Config) -> Self {
        let base = OutboundPolicy::from_config(config);
        // The engine refuses to start with a default ceiling that does not parse; a library
        // caller without an engine gets the defaults' (which grant nothing).
        let default_ceiling = Ceiling::configured(&config.plugin_limits, &config.tenant_ceiling)
            .unwrap_or_else(|_| Ceiling::default_for(&config.plugin_limits));
        Self { default_ceiling, base, cache: Mutex::new(HashMap::new()) }
    }

    /// The tenant's policy, read now.
    pub async fn read(&self, store: &Store, tenant: &TenantId) -> Result<OutboundPolicy, StoreError> {
        let settings = store.limit_settings(tenant).await?;
        let granted = self.default_ceiling.for_tenant(settings.ceiling.as_ref()).0.outbound_allow;
        Ok(self.base.widened(&granted))
    }

    /// The tenant's policy, at most [`TTL`] old.
    pub async fn get(&self, store: &Store, tenant: &TenantId) -> Result<Arc<OutboundPolicy>, StoreError> {
        if let Some((at, p)) = self.cache.lock().expect("policies lock").get(tenant)
            && at.elapsed() < TTL
        {
            return Ok(p.clone());
        }
        let policy = Arc::new(self.read(store, tenant).await?);
        let mut cache = self.cache.lock().expect("policies lock");
        if cache.len() >= MAX_TENANTS {
            cache.clear();
        }
        cache.insert(tenant.clone(), (Instant::now(), policy.clone()));
        Ok(policy)
    }
}
