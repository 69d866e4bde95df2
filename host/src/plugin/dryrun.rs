//! The dry run: a plugin version run on a tenant's most recent stored events, beside the
//! plugin's active version, with no side effects — no deliveries, sink writes, key-value
//! writes or recorded runs. Reads the store; writes nothing. Bounded: at most [`MAX_LAST`]
//! events, every invocation through the tenant's instance slots like any other, and a
//! deadline for the whole request past which the events not reached are reported skipped.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::chain::{self, ChainRun, Stage};
use super::local::actions_json;
use super::stored::{WorkError, stage, tenant_limits};
use super::{Kv, PluginEngine};
use crate::TenantId;
use crate::normalize::CanonicalEvent;
use crate::store::Store;

/// Events a dry run may look at.
pub const MAX_LAST: i64 = 1000;

/// What a dry run found.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    /// One result per event run, newest first.
    pub results: Vec<Value>,
    /// Events not run: the request's deadline came first.
    pub skipped: usize,
}

/// Run `candidate` (a stored version, or a component not uploaded yet) on the tenant's `last`
/// newest events, and the active version of the plugin of the same name beside it, for at most
/// `budget`. One result per event, newest first:
/// `{"event_id","event_type","actions","active_actions","changed"}` plus `"error"` /
/// `"active_error"` when a run failed. `active_actions` is null when the plugin has no active
/// version.
pub async fn dry_run(
    store: &Store,
    engine: &Arc<PluginEngine>,
    tenant: &TenantId,
    candidate: Stage,
    last: i64,
    budget: Duration,
) -> Result<DryRun, WorkError> {
    let deadline = tokio::time::Instant::now() + budget;
    let limits = tenant_limits(store, engine, tenant).await?;
    let active = store.active_plugins(tenant).await?.into_iter().find(|p| p.name == candidate.version.name);
    let active = match active {
        Some(v) => Some(stage(store, engine, tenant, v).await?),
        None => None,
    };
    let kv = Kv::DryRun(store.clone());
    let mut out = DryRun::default();
    let events = store.recent_events(tenant, last.clamp(1, MAX_LAST)).await?;
    let total = events.len();
    for stored in events {
        let (event, payload) = (stored.event, stored.payload_json);
        let run = |s: Stage| {
            let (event, payload, limits, kv) = (&event, payload.clone(), &limits, kv.clone());
            async move { chain::run(engine, std::slice::from_ref(&s), event, payload, limits, kv).await }
        };
        let both = async {
            let new = describe(&event, &run(candidate.clone()).await);
            let old = match &active {
                Some(s) => Some(describe(&event, &run(s.clone()).await)),
                None => None,
            };
            (new, old)
        };
        let Ok((new, old)) = tokio::time::timeout_at(deadline, both).await else {
            out.skipped = total - out.results.len();
            tracing::info!(%tenant, skipped = out.skipped, "dry run stopped at its deadline");
            break;
        };
        let changed = old.as_ref() != Some(&new);
        let mut r = json!({
            "event_id": event.id,
            "event_type": event.event_type,
            "actions": new.0,
            "active_actions": old.as_ref().map(|o| o.0.clone()),
            "changed": changed,
        });
        if let Some(e) = new.1 {
            r["error"] = e;
        }
        if let Some(e) = old.and_then(|o| o.1) {
            r["active_error"] = e;
        }
        out.results.push(r);
    }
    Ok(out)
}

/// A run as JSON: its actions (null when it failed) and its error, if any.
fn describe(event: &CanonicalEvent, run: &ChainRun) -> (Value, Option<Value>) {
    match &run.outcome {
        Ok(actions) => (Value::Array(actions_json(event, actions)), None),
        Err(f) => (Value::Null, Some(json!({ "outcome": f.failure.as_str(), "message": f.message }))),
    }
}
