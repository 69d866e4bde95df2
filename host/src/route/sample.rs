//! An endpoint test's request: the sample event run through the tenant's plugins as a real
//! event would be (with no side effects: key-value writes discarded, fetches read-only), so the
//! receiver sees the contract those plugins produce, with `is_test` set. Reads the store;
//! writes nothing and sends nothing (the API sends what this returns).

use std::sync::Arc;

use super::cache::RoutingCache;
use super::fanout;
use crate::deliver::request::Shape;
use crate::normalize::CanonicalEvent;
use crate::plugin::stored::WorkError;
use crate::plugin::{Kv, PluginEngine, chain};
use crate::store::{Endpoint, Store};

/// What an endpoint test sends, or why it sends nothing.
#[derive(Debug)]
pub enum Sample {
    Send {
        message_id: String,
        body: String,
        request: Option<Shape>,
    },
    /// The plugins failed on the sample, or produced no delivery for this endpoint.
    Nothing(String),
}

/// The first delivery `event` makes to `endpoint` through the tenant's plugins (the event as
/// it is when no plugin applies). The endpoint counts as subscribed to every type: a test is
/// sent whatever it subscribes to.
pub async fn sample(
    store: &Store,
    engine: &Arc<PluginEngine>,
    endpoint: &Endpoint,
    event: &CanonicalEvent,
) -> Result<Sample, WorkError> {
    let tenant = &event.tenant_id;
    let routing = RoutingCache::default().get(store, engine, tenant, 0).await?;
    let stages = routing.stages(store, engine, tenant, &event.event_type).await?;
    let target = [Endpoint { event_types: vec!["*".into()], ..endpoint.clone() }];
    let routed = if stages.is_empty() {
        fanout::pass_through(event, &target, &[])
    } else {
        let kv = Kv::DryRun(store.clone());
        let ran = chain::run(engine, &stages, event, event.payload.to_string(), &routing.limits, kv).await;
        let actions = match ran.outcome {
            Ok(actions) => actions,
            Err(f) => return Ok(Sample::Nothing(format!("{} in {}: {}", f.failure.as_str(), f.plugin, f.message))),
        };
        match fanout::apply(event, &target, &[], actions) {
            Ok(routed) => routed,
            Err(e) => return Ok(Sample::Nothing(format!("plugin_error: {e}"))),
        }
    };
    Ok(match routed.outputs.deliveries.into_iter().next() {
        Some(d) => Sample::Send {
            message_id: d.message_id,
            body: d.body.to_string(),
            request: d.request.map(|s| s.as_ref().clone()),
        },
        None => {
            let why = if routed.notes.is_empty() { "no delivery".to_string() } else { routed.notes.join("; ") };
            Sample::Nothing(format!("the tenant's plugins made no delivery to this endpoint: {why}"))
        }
    })
}
