//! The plugin worker: for each plugin job, run the tenant's plugin chain on the stored event
//! (or pass the event through when no plugin applies), record every invocation, apply the
//! plugins' key-value writes, and turn the resulting actions into delivery and sink jobs — all
//! committed together. Also resolves a tenant's stages and limits for the dry run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;

use super::chain::{self, Stage};
use super::{Action, Failure, Kv, Limits, PluginEngine, PluginError};
use crate::deliver::subscribed;
use crate::jobs::{Pump, pump};
use crate::normalize::{CanonicalEvent, billing, envelope};
use crate::sink::record_version;
use crate::store::{
    Endpoint, Job, JobKind, NewDelivery, NewSinkWrite, Outputs, PluginJobDone, PluginRun, PluginVersion, Sink, Store,
    StoreError,
};
use crate::{Config, TenantId, Wakeups, now_ms};

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

/// Run the plugin worker until `stop` turns true. At most `plugin_tenant_concurrency` of one
/// tenant's events are in its plugins at once, so a slow or hostile plugin holds a few slots,
/// never all of them.
pub async fn run(
    store: Store,
    engine: Arc<PluginEngine>,
    wake: Arc<Wakeups>,
    config: Arc<Config>,
    stop: watch::Receiver<bool>,
) {
    let settings = Pump { kind: JobKind::Plugin, concurrency: config.plugin_concurrency, idle_poll: config.idle_poll };
    let (lease, per_tenant) = (config.job_lease, config.plugin_tenant_concurrency.max(1));
    let busy: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let claim = |n| {
        let (store, busy) = (store.clone(), busy.clone());
        async move {
            let snapshot = busy.lock().expect("busy lock").clone();
            let jobs = store.claim_plugin_jobs(n, lease, &snapshot, per_tenant).await?;
            let mut busy = busy.lock().expect("busy lock");
            for job in &jobs {
                *busy.entry(job.tenant_id.to_string()).or_default() += 1;
            }
            Ok(jobs)
        }
    };
    pump(store.clone(), settings, &wake.plugin, stop, claim, |job| {
        let (store, engine, wake, config, busy) = (store.clone(), engine.clone(), wake.clone(), config.clone(), busy.clone());
        async move {
            let (tenant, event_id) = (job.tenant_id.clone(), job.event_id.clone());
            match process(&store, &engine, &config, job).await {
                Ok(written) if written > 0 => {
                    wake.delivery.notify_one();
                    wake.sink.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(%tenant, %event_id, error = %e, "plugin job failed; it will be retried when its lease expires"),
            }
            let mut busy = busy.lock().expect("busy lock");
            if let Some(n) = busy.get_mut(tenant.as_str()) {
                *n -= 1;
                if *n == 0 {
                    busy.remove(tenant.as_str());
                }
            }
        }
    })
    .await;
}

/// The plugins `event_type` runs through for `tenant`, compiled: the chain's first matching
/// rule (plugins without an active version are skipped), or with no chain every active plugin
/// in upload order.
pub async fn stages_for(
    store: &Store,
    engine: &Arc<PluginEngine>,
    tenant: &TenantId,
    event_type: &str,
) -> Result<Vec<Stage>, WorkError> {
    let active = store.active_plugins(tenant).await?;
    let chosen: Vec<PluginVersion> = match store.chain(tenant).await? {
        None => active,
        Some(rules) => match chain::select(&rules, event_type) {
            None => Vec::new(),
            Some(names) => names.iter().filter_map(|n| active.iter().find(|p| &p.name == n).cloned()).collect(),
        },
    };
    let mut stages = Vec::with_capacity(chosen.len());
    for version in chosen {
        stages.push(stage(store, engine, tenant, version).await?);
    }
    Ok(stages)
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

/// The tenant's limits: the configured defaults with its overrides.
pub async fn tenant_limits(store: &Store, engine: &PluginEngine, tenant: &TenantId) -> Result<Limits, WorkError> {
    let defaults = engine.limits();
    let Some(overrides) = store.limit_overrides(tenant).await? else { return Ok(defaults.clone()) };
    Ok(defaults.with_overrides(&overrides).unwrap_or_else(|e| {
        tracing::warn!(%tenant, error = %e, "stored limit overrides no longer apply; using the defaults");
        defaults.clone()
    }))
}

/// Process one plugin job; returns how many deliveries and sink writes it enqueued.
async fn process(store: &Store, engine: &Arc<PluginEngine>, config: &Config, job: Job) -> Result<usize, WorkError> {
    let Some(stored) = store.event(&job.tenant_id, &job.event_id).await? else {
        return Err(StoreError::Corrupt(format!("plugin job {} names a missing event", job.id)).into());
    };
    let event = stored.event;
    if event.source == "stripe" {
        sync_billing(store, &event).await?;
    }
    let endpoints: Vec<Endpoint> = store.endpoints(&job.tenant_id).await?.into_iter().filter(|e| e.enabled).collect();
    let sinks = store.sinks(&job.tenant_id).await?;

    let stages = stages_for(store, engine, &job.tenant_id, &event.event_type).await?;
    if stages.is_empty() {
        let outputs = Outputs {
            deliveries: fan_out(&event, &endpoints, &event.id, &event.event_type, &event.payload, &[]),
            sink_writes: default_mapping(&event, &sinks, &event.id, &event.event_type, &event.payload),
        };
        store.finish_without_plugin(&job, &outputs).await?;
        return Ok(outputs.deliveries.len() + outputs.sink_writes.len());
    }
    let limits = tenant_limits(store, engine, &job.tenant_id).await?;
    let ran = chain::run(engine, &stages, &event, &limits, Kv::Store(store.clone())).await;

    let mut outputs = Outputs::default();
    let mut notes = Vec::new();
    let (status, error) = match &ran.outcome {
        Ok(actions) => match apply(&event, &endpoints, &sinks, actions.clone(), &mut outputs, &mut notes) {
            Ok(status) => (status, (!notes.is_empty()).then(|| notes.join("; "))),
            Err(msg) => {
                outputs = Outputs::default();
                ("failed", Some(format!("{}: {msg}", Failure::PluginError.as_str())))
            }
        },
        Err(f) => ("failed", Some(format!("{} in {}: {}", f.failure.as_str(), f.plugin, f.message))),
    };
    if status == "failed" {
        tracing::warn!(tenant = %job.tenant_id, event_id = %event.id, error = error.as_deref().unwrap_or(""), "plugin invocation failed");
    }
    let kv_writes = ran.kv_writes();
    let runs: Vec<PluginRun> = ran
        .runs
        .into_iter()
        .map(|(version, inv)| {
            let (outcome, error) = match inv.outcome {
                Ok(_) => ("ok".to_string(), None),
                Err((failure, msg)) => (failure.as_str().to_string(), Some(msg)),
            };
            let labels = [("outcome", outcome.as_str())];
            crate::metrics::count(&crate::metrics::PLUGIN_RUNS, &labels);
            crate::metrics::observe(&crate::metrics::PLUGIN_FUEL, &labels, inv.fuel_used as f64);
            crate::metrics::observe(&crate::metrics::PLUGIN_SECONDS, &labels, inv.wall.as_secs_f64());
            PluginRun {
                plugin_name: version.name,
                plugin_version: version.version,
                outcome,
                error,
                fuel_used: Some(inv.fuel_used as i64),
                wall_us: inv.wall.as_micros() as i64,
                logs: inv.logs,
                ran_at: now_ms(),
                peak_memory: Some(inv.peak_memory as i64),
            }
        })
        .collect();
    let done = PluginJobDone {
        runs: &runs,
        status,
        error: error.as_deref(),
        outputs: &outputs,
        kv_writes: &kv_writes,
        kv_max_keys: config.kv_max_keys,
    };
    let refused = store.finish_plugin_job(&job, &done).await?;
    if refused > 0 {
        tracing::warn!(tenant = %job.tenant_id, event_id = %event.id, refused, "plugin key-value writes refused: the tenant's key quota is full");
    }
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
