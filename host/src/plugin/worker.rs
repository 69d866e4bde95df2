//! The plugin worker: for each plugin job, run the tenant's active plugin on the stored event
//! (or pass the event through when there is none), record the invocation, and turn the
//! resulting actions into delivery jobs — all committed together.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use super::{Action, Compiled, Failure, Kv, PluginEngine, PluginError};
use crate::deliver::subscribed;
use crate::jobs::{Pump, pump};
use crate::normalize::{CanonicalEvent, billing, envelope};
use crate::sink::record_version;
use crate::store::{Endpoint, Job, JobKind, NewDelivery, NewSinkWrite, Outputs, PluginRun, Sink, Store, StoreError};
use crate::{Config, Wakeups, now_ms};

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("stored plugin {0} v{1} is missing")]
    MissingPlugin(String, i64),
}

/// Run the plugin worker until `stop` turns true.
pub async fn run(
    store: Store,
    engine: Arc<PluginEngine>,
    wake: Arc<Wakeups>,
    config: Arc<Config>,
    stop: watch::Receiver<bool>,
) {
    let settings = Pump { kind: JobKind::Plugin, concurrency: config.plugin_concurrency, idle_poll: config.idle_poll };
    let lease = config.job_lease;
    let claim = |n| store.claim(JobKind::Plugin, n, lease);
    pump(store.clone(), settings, &wake.plugin, stop, claim, |job| {
        let (store, engine, wake) = (store.clone(), engine.clone(), wake.clone());
        async move {
            let (tenant, event_id) = (job.tenant_id.clone(), job.event_id.clone());
            match process(&store, &engine, job).await {
                Ok(written) if written > 0 => {
                    wake.delivery.notify_one();
                    wake.sink.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(%tenant, %event_id, error = %e, "plugin job failed; it will be retried when its lease expires"),
            }
        }
    })
    .await;
}

/// Process one plugin job; returns how many deliveries it enqueued.
async fn process(store: &Store, engine: &Arc<PluginEngine>, job: Job) -> Result<usize, WorkError> {
    let Some(stored) = store.event(&job.tenant_id, &job.event_id).await? else {
        return Err(StoreError::Corrupt(format!("plugin job {} names a missing event", job.id)).into());
    };
    let event = stored.event;
    if event.source == "stripe" {
        sync_billing(store, &event).await?;
    }
    let endpoints: Vec<Endpoint> = store.endpoints(&job.tenant_id).await?.into_iter().filter(|e| e.enabled).collect();

    let sinks = store.sinks(&job.tenant_id).await?;

    let Some(active) = store.active_plugin(&job.tenant_id).await? else {
        let outputs = Outputs {
            deliveries: fan_out(&event, &endpoints, &event.id, &event.event_type, &event.payload, &[]),
            sink_writes: default_mapping(&event, &sinks, &event.id, &event.event_type, &event.payload),
        };
        store.finish_without_plugin(&job, &outputs).await?;
        return Ok(outputs.deliveries.len() + outputs.sink_writes.len());
    };

    let compiled: Compiled = engine
        .get_or_compile(&active.digest, || async {
            store
                .plugin_component(&job.tenant_id, &active.name, active.version)
                .await?
                .ok_or_else(|| WorkError::MissingPlugin(active.name.clone(), active.version))
        })
        .await?;
    let limits = engine.limits().clone();
    let inv = engine.invoke(&compiled, &event, &limits, Kv::Store(store.clone())).await;

    let mut outputs = Outputs::default();
    let mut notes = Vec::new();
    let (status, outcome, error) = match inv.outcome {
        Ok(actions) => match apply(&event, &endpoints, &sinks, actions, &mut outputs, &mut notes) {
            Ok(status) => (status, "ok".to_string(), (!notes.is_empty()).then(|| notes.join("; "))),
            Err(msg) => {
                outputs = Outputs::default();
                ("failed", Failure::PluginError.as_str().to_string(), Some(msg))
            }
        },
        Err((failure, msg)) => ("failed", failure.as_str().to_string(), Some(msg)),
    };
    if status == "failed" {
        tracing::warn!(tenant = %job.tenant_id, event_id = %event.id, outcome, error = error.as_deref().unwrap_or(""), "plugin invocation failed");
    }
    let run = PluginRun {
        plugin_name: active.name,
        plugin_version: active.version,
        outcome,
        error,
        fuel_used: Some(inv.fuel_used as i64),
        wall_us: inv.wall.as_micros() as i64,
        logs: inv.logs,
        ran_at: now_ms(),
    };
    store.finish_plugin_job(&job, &run, status, &outputs).await?;
    Ok(outputs.deliveries.len() + outputs.sink_writes.len())
}

/// Apply a Stripe event to the tenant's billing record (idempotent and monotonic, so running
/// again after a crash is harmless).
async fn sync_billing(store: &Store, event: &CanonicalEvent) -> Result<(), StoreError> {
    let p = &event.payload;
    let (Some(ty), Some(id)) = (p["stripe_event_type"].as_str(), p["stripe_event_id"].as_str()) else { return Ok(()) };
    let changed =
        store.update_billing(&event.tenant_id, |b| billing::apply(b, ty, event.occurred_at, id, &p["object"])).await?;
    if changed {
        tracing::debug!(tenant = %event.tenant_id, stripe_event = id, "billing record updated");
    }
    Ok(())
}

/// Turn actions into deliveries and sink writes. Returns the event's status (`processed` or
/// `dropped`), or an error message when the output is unusable (then nothing is written).
fn apply(
    event: &CanonicalEvent,
    endpoints: &[Endpoint],
    sinks: &[Sink],
    actions: Vec<Action>,
    out: &mut Outputs,
    notes: &mut Vec<String>,
) -> Result<&'static str, String> {
    let mut used = false;
    let mut n = 0usize;
    for (i, action) in actions.into_iter().enumerate() {
        match action {
            Action::Deliver { event_type, payload, endpoints: only } => {
                let payload: Value =
                    serde_json::from_str(&payload).map_err(|e| format!("deliver action payload is not JSON: {e}"))?;
                if event_type.is_empty() {
                    return Err("deliver action has an empty event type".into());
                }
                let message_id = if n == 0 { event.id.clone() } else { format!("{}_{n}", event.id) };
                n += 1;
                out.deliveries.extend(fan_out(event, endpoints, &message_id, &event_type, &payload, &only));
                out.sink_writes.extend(default_mapping(event, sinks, &message_id, &event_type, &payload));
                used = true;
            }
            Action::Sink { sink, external_id, data } => {
                let record: Value =
                    serde_json::from_str(&data).map_err(|e| format!("sink action record is not JSON: {e}"))?;
                if external_id.is_empty() {
                    return Err("sink action has an empty external id".into());
                }
                let Some(target) = sinks.iter().find(|s| s.name == sink) else {
                    notes.push(format!("sink action for unknown sink {sink:?} not applied"));
                    continue;
                };
                out.sink_writes.push(NewSinkWrite {
                    sink_id: target.id.clone(),
                    idempotency_key: format!("{}:{}:{external_id}:{i}", event.id, target.name),
                    version: record_version(&record, event.occurred_at),
                    external_id,
                    record: record.to_string(),
                });
                used = true;
            }
            Action::Drop { reason } => notes.push(format!("dropped: {reason}")),
        }
    }
    if !used && notes.is_empty() {
        notes.push("dropped: plugin returned no actions".into());
    }
    Ok(if used { "processed" } else { "dropped" })
}

/// The default mapping: every sink subscribed to `event_type` gets the payload, keyed by its
/// `external_id_field`.
fn default_mapping(
    event: &CanonicalEvent,
    sinks: &[Sink],
    message_id: &str,
    event_type: &str,
    payload: &Value,
) -> Vec<NewSinkWrite> {
    sinks
        .iter()
        .filter(|s| subscribed(&s.event_types, event_type))
        .filter_map(|s| {
            let external_id = ordering_key(payload, s.external_id_field.as_deref()?)?;
            Some(NewSinkWrite {
                sink_id: s.id.clone(),
                idempotency_key: format!("{message_id}:{}:{external_id}", s.name),
                version: record_version(payload, event.occurred_at),
                external_id,
                record: payload.to_string(),
            })
        })
        .collect()
}

/// One delivery per enabled endpoint subscribed to `event_type` (and named in `only`, if any).
fn fan_out(
    event: &CanonicalEvent,
    endpoints: &[Endpoint],
    message_id: &str,
    event_type: &str,
    payload: &Value,
    only: &[String],
) -> Vec<NewDelivery> {
    let body =
        envelope(message_id, event_type, event.occurred_at, &event.tenant_id, payload, event.is_test).to_string();
    endpoints
        .iter()
        .filter(|ep| subscribed(&ep.event_types, event_type) && (only.is_empty() || only.contains(&ep.id)))
        .map(|ep| NewDelivery {
            endpoint_id: ep.id.clone(),
            message_id: message_id.to_string(),
            body: body.clone(),
            ordering_key: ep.ordered_by.as_deref().and_then(|field| ordering_key(payload, field)),
        })
        .collect()
}

/// The value of `field` in the payload as a key (strings and numbers only).
fn ordering_key(payload: &Value, field: &str) -> Option<String> {
    match payload.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
