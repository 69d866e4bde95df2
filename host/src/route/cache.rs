//! Each tenant's routing (enabled endpoints, sinks, active plugins, chain, limits) cached per
//! configuration revision: the revision comes with the event in one read, and the routing is
//! read again only when it changed, on this replica or another. Also picks the plugins an
//! event type runs through. Reads the store; writes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::TenantId;
use crate::plugin::chain::{self, Stage};
use crate::plugin::stored::{WorkError, limits_from, stage};
use crate::plugin::{Limits, PluginEngine};
use crate::store::{ChainRule, Endpoint, PluginVersion, Sink, Store};

/// What a tenant's plugin jobs are routed by, as of one configuration revision. Endpoints are
/// here for routing (ids, event types, ordering field) only: a delivery reads its endpoint's
/// URL and secrets afresh when it is sent.
pub(super) struct Routing {
    rev: i64,
    pub endpoints: Vec<Endpoint>,
    pub sinks: Vec<Sink>,
    active: Vec<PluginVersion>,
    chain: Option<Vec<ChainRule>>,
    pub limits: Limits,
}

impl Routing {
    /// The plugins `event_type` runs through, compiled: the chain's first matching rule
    /// (plugins without an active version are skipped), or with no chain every active plugin
    /// in upload order.
    pub async fn stages(
        &self,
        store: &Store,
        engine: &Arc<PluginEngine>,
        tenant: &TenantId,
        event_type: &str,
    ) -> Result<Vec<Stage>, WorkError> {
        let chosen: Vec<PluginVersion> = match self.chain.as_deref() {
            None => self.active.clone(),
            Some(rules) => match chain::select(rules, event_type) {
                None => Vec::new(),
                Some(names) => {
                    names.iter().filter_map(|n| self.active.iter().find(|p| &p.name == n).cloned()).collect()
                }
            },
        };
        let mut stages = Vec::with_capacity(chosen.len());
        for version in chosen {
            stages.push(stage(store, engine, tenant, version).await?);
        }
        Ok(stages)
    }
}

/// Tenants cached at most; past that the cache starts over (a miss costs five reads).
const ROUTING_CACHE_MAX: usize = 4096;

/// Each tenant's routing as last read.
#[derive(Default)]
pub(super) struct RoutingCache {
    by_tenant: Mutex<HashMap<TenantId, Arc<Routing>>>,
}

impl RoutingCache {
    /// The tenant's routing at revision `rev` (read with the event): the cached one if it is of
    /// that revision, else read from the store. Reading after the revision can only see a newer
    /// configuration, which the next event's revision then replaces.
    pub async fn get(
        &self,
        store: &Store,
        engine: &PluginEngine,
        tenant: &TenantId,
        rev: i64,
    ) -> Result<Arc<Routing>, WorkError> {
        let cached = self.by_tenant.lock().expect("routing lock").get(tenant).filter(|r| r.rev == rev).cloned();
        if let Some(routing) = cached {
            return Ok(routing);
        }
        let routing = Arc::new(Routing {
            rev,
            endpoints: store.endpoints(tenant).await?.into_iter().filter(|e| e.enabled).collect(),
            sinks: store.sinks(tenant).await?,
            active: store.active_plugins(tenant).await?,
            chain: store.chain(tenant).await?,
            limits: limits_from(engine, &store.limit_settings(tenant).await?),
        });
        let mut map = self.by_tenant.lock().expect("routing lock");
        if map.len() >= ROUTING_CACHE_MAX && !map.contains_key(tenant) {
            map.clear();
        }
        if map.get(tenant).is_none_or(|r| r.rev <= rev) {
            map.insert(tenant.clone(), routing.clone());
        }
        Ok(routing)
    }
}
