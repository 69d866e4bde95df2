//! Each tenant's outbound policy: the operator's (`HOOKHOST_OUTBOUND_ALLOW`, plain http or not)
//! widened by the internal ranges the operator granted that tenant alone (`outbound_allow` on
//! its ceiling). Workers keep a tenant's policy for a few seconds, so a changed ceiling reaches
//! deliveries and sink writes within [`TTL`]; the API reads it afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::Value;

use super::OutboundPolicy;
use crate::plugin::Ceiling;
use crate::store::{Store, StoreError};
use crate::{Config, TenantId};

/// How long a worker keeps a tenant's policy.
pub const TTL: Duration = Duration::from_secs(5);
/// Tenants kept at most; past that the cache starts over.
const MAX_TENANTS: usize = 4096;

/// The internal ranges a tenant's stored ceiling grants it (the default ceiling's when it has
/// none of its own).
pub fn granted(config: &Config, stored_ceiling: Option<&Value>) -> Vec<IpNet> {
    let default = Ceiling::default_for(&config.plugin_limits).with_overrides(&config.tenant_ceiling);
    let ceiling = default.and_then(|c| match stored_ceiling {
        Some(stored) => c.with_overrides(stored),
        None => Ok(c),
    });
    ceiling.map(|c| c.0.outbound_allow).unwrap_or_default()
}

/// Tenants' outbound policies, read from the store and kept for [`TTL`].
#[derive(Debug)]
pub struct TenantPolicies {
    config: Arc<Config>,
    base: OutboundPolicy,
    cache: Mutex<HashMap<TenantId, (Instant, Arc<OutboundPolicy>)>>,
}

impl TenantPolicies {
    pub fn new(config: Arc<Config>) -> Self {
        let base = OutboundPolicy::from_config(&config);
        Self { config, base, cache: Mutex::new(HashMap::new()) }
    }

    /// The tenant's policy, read now.
    pub async fn read(&self, store: &Store, tenant: &TenantId) -> Result<OutboundPolicy, StoreError> {
        let settings = store.limit_settings(tenant).await?;
        Ok(self.base.widened(&granted(&self.config, settings.ceiling.as_ref())))
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
