//! The plugin worker: for each plugin job, run the tenant's plugin chain on the stored event
//! (or pass the event through when no plugin applies), record every invocation, apply the
//! plugins' key-value writes, and turn the resulting actions into delivery and sink jobs — all
//! committed together. Also resolves a tenant's stages and limits for the dry run.
//!
//! Each tenant's routing (enabled endpoints, sinks, active plugins, chain, limits) is cached
//! per configuration revision: the revision comes with the event in one read, and the routing
//! is read again only when it changed, on this replica or another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use super::chain::{self, Stage};
use super::{Action, Failure, Kv, Limits, PluginEngine, PluginError};
use crate::deliver::subscribed;
use crate::jobs::{Pump, pump};
use crate::normalize::{CanonicalEvent, billing, envelope};
use crate::sink::record_version;
use crate::store::{
    ChainRule, Endpoint, Job, JobKind, LimitSettings, NewDelivery, NewSinkWrite, Outputs, PluginJobDone, PluginRun,
    PluginVersion, Sink, Store, StoreError,
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

/// A tenant's plugin jobs held here: how many are leased, and the slots that let at most its
/// share of them run at once.
struct TenantSlots {
    leased: usize,
    run: Arc<Semaphore>,
}

/// Run the plugin worker until `stop` turns true. At most `plugin_tenant_concurrency` of one
/// tenant's events are in its plugins at once, so a slow or hostile plugin holds a few slots,
/// never all of them. Each tenant may hold twice its share of leases: the jobs past its share
/// wait here, so a slot that frees runs the tenant's next job at once rather than after the
/// next claim (a write, queued behind every other).
pub async fn run(
    store: Store,
    engine: Arc<PluginEngine>,
    wake: Arc<Wakeups>,
    config: Arc<Config>,
    stop: watch::Receiver<bool>,
) {
    let settings = Pump {
        kind: JobKind::Plugin,
        concurrency: config.plugin_concurrency * 2,
        idle_poll: config.idle_poll,
        lease: config.job_lease,
    };
    let (lease, per_tenant) = (config.job_lease, config.plugin_tenant_concurrency.max(1));
    let running = Arc::new(Semaphore::new(config.plugin_concurrency.max(1)));
    let busy: Arc<Mutex<HashMap<String, TenantSlots>>> = Arc::default();
    let routing = Arc::new(RoutingCache::default());
    // Whether the last claim that went to the store took all it asked for.
    let last_full = Arc::new(AtomicBool::new(true));
    let claim = |n: i64, woken: bool| {
        let (store, busy, last_full) = (store.clone(), busy.clone(), last_full.clone());
        async move {
            let leased: HashMap<String, usize> =
                busy.lock().expect("busy lock").iter().map(|(t, s)| (t.clone(), s.leased)).collect();
            // A claim is a write, queued behind every other. Skip it while it cannot help:
            // no work announced since the last one, which found no more than it took, and
            // every tenant here still has jobs waiting for its slots. A tenant is refilled
            // once its waiting jobs have started, so claims take a share at a time.
            let waiting_everywhere = !leased.is_empty() && leased.values().all(|&n| n > per_tenant);
            if !woken && !last_full.load(Ordering::Relaxed) && waiting_everywhere {
                return Ok(Vec::new());
            }
            let jobs = store.claim_plugin_jobs(n, lease, &leased, per_tenant * 2).await?;
            last_full.store(jobs.len() as i64 >= n, Ordering::Relaxed);
            let mut busy = busy.lock().expect("busy lock");
            for job in &jobs {
                busy.entry(job.tenant_id.to_string())
                    .or_insert_with(|| TenantSlots { leased: 0, run: Arc::new(Semaphore::new(per_tenant)) })
                    .leased += 1;
            }
            Ok(jobs)
        }
    };
    pump(store.clone(), settings, &wake.plugin, stop, claim, |job| {
        let (store, engine, wake, config, busy, routing, running) =
            (store.clone(), engine.clone(), wake.clone(), config.clone(), busy.clone(), routing.clone(), running.clone());
        let claimed = Instant::now();
        async move {
            let (tenant, event_id) = (job.tenant_id.clone(), job.event_id.clone());
            let tenant_slots = busy.lock().expect("busy lock").get(tenant.as_str()).map(|s| s.run.clone());
            let tenant_slot = match tenant_slots {
                Some(slots) => Some(slots.acquire_owned().await.expect("semaphore never closed")),
                None => None,
            };
            let slot = running.acquire_owned().await.expect("semaphore never closed");
            if claimed.elapsed() > lease / 2 {
                // Waited so long that its lease might run out while it runs: hand it back.
                if let Err(e) = store.defer(&job, now_ms()).await {
                    tracing::error!(%tenant, %event_id, error = %e, "could not put back a plugin job; its lease will expire");
                }
            } else {
                match process(&store, &engine, &config, &routing, job).await {
                    // Wake only the workers with new work: a claim that finds none is a write too.
                    Ok((deliveries, sink_writes)) => {
                        if deliveries > 0 {
                            wake.delivery.notify_one();
                        }
                        if sink_writes > 0 {
                            wake.sink.notify_one();
                        }
                    }
                    Err(e) => tracing::error!(%tenant, %event_id, error = %e, "plugin job failed; it will be retried when its lease expires"),
                }
            }
            drop((slot, tenant_slot));
            let mut busy = busy.lock().expect("busy lock");
            if let Some(s) = busy.get_mut(tenant.as_str()) {
                s.leased -= 1;
                if s.leased == 0 {
                    busy.remove(tenant.as_str());
                }
            }
        }
    })
    .await;
}

/// The plugins `event_type` runs through for a tenant with these active plugins and chain,
/// compiled: the chain's first matching rule (plugins without an active version are skipped),
/// or with no chain every active plugin in upload order.
async fn select_stages(
    store: &Store,
    engine: &Arc<PluginEngine>,
    tenant: &TenantId,
    active: &[PluginVersion],
    rules: Option<&[ChainRule]>,
    event_type: &str,
) -> Result<Vec<Stage>, WorkError> {
    let chosen: Vec<PluginVersion> = match rules {
        None => active.to_vec(),
        Some(rules) => match chain::select(rules, event_type) {
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

/// The tenant's limits: the configured defaults with its overrides, within its ceiling.
pub async fn tenant_limits(store: &Store, engine: &PluginEngine, tenant: &TenantId) -> Result<Limits, WorkError> {
    Ok(limits_from(engine, &store.limit_settings(tenant).await?))
}

fn limits_from(engine: &PluginEngine, settings: &LimitSettings) -> Limits {
    engine.ceiling(settings.ceiling.as_ref()).effective(engine.limits(), settings.overrides.as_ref())
}

/// What a tenant's plugin jobs are routed by, as of one configuration revision. Endpoints are
/// here for routing (ids, event types, ordering field) only: a delivery reads its endpoint's
/// URL and secrets afresh when it is sent.
struct Routing {
    rev: i64,
    endpoints: Vec<Endpoint>,
    sinks: Vec<Sink>,
    active: Vec<PluginVersion>,
    chain: Option<Vec<ChainRule>>,
    limits: Limits,
}

/// Tenants cached at most; past that the cache starts over (a miss costs five reads).
const ROUTING_CACHE_MAX: usize = 4096;

/// Each tenant's routing as last read.
#[derive(Default)]
struct RoutingCache {
    by_tenant: Mutex<HashMap<TenantId, Arc<Routing>>>,
}

impl RoutingCache {
    /// The tenant's routing at revision `rev` (read with the event): the cached one if it is of
    /// that revision, else read from the store. Reading after the revision can only see a newer
    /// configuration, which the next event's revision then replaces.
    async fn get(
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

/// Process one plugin job; returns how many deliveries and sink writes it enqueued.
async fn process(
    store: &Store,
    engine: &Arc<PluginEngine>,
    config: &Config,
    cache: &RoutingCache,
    job: Job,
) -> Result<(usize, usize), WorkError> {
    let Some((stored, rev)) = store.event_with_config_rev(&job.tenant_id, &job.event_id).await? else {
        return Err(StoreError::Corrupt(format!("plugin job {} names a missing event", job.id)).into());
    };
    let (event, payload_json) = (stored.event, stored.payload_json);
    if event.source == "stripe" {
        sync_billing(store, &event).await?;
    }
    let routing = cache.get(store, engine, &job.tenant_id, rev).await?;
    let (endpoints, sinks) = (&routing.endpoints, &routing.sinks);
    let stages =
        select_stages(store, engine, &job.tenant_id, &routing.active, routing.chain.as_deref(), &event.event_type)
            .await?;
    if stages.is_empty() {
        let outputs = Outputs {
            deliveries: fan_out(&event, endpoints, &event.id, &event.event_type, &event.payload, &[]),
            sink_writes: default_mapping(&event, sinks, &event.id, &event.event_type, &event.payload),
        };
        if let Err(msg) = within_fan_out_budget(&outputs, config.max_event_fanout_bytes) {
            tracing::warn!(tenant = %job.tenant_id, event_id = %event.id, error = %msg, "event over the fan-out budget");
            let error = Some(format!("{}: {msg}", Failure::OutputLimit.as_str()));
            let done = PluginJobDone { status: "failed", error, ..Default::default() };
            store.finish_plugin_job(&job, done).await?;
            return Ok((0, 0));
        }
        let written = (outputs.deliveries.len(), outputs.sink_writes.len());
        store.finish_without_plugin(&job, outputs).await?;
        return Ok(written);
    }
    let ran = chain::run(engine, &stages, &event, payload_json, &routing.limits, Kv::Store(store.clone())).await;

    let mut outputs = Outputs::default();
    let mut notes = Vec::new();
    let (status, error) = match &ran.outcome {
        Ok(actions) => match apply(&event, endpoints, sinks, actions.clone(), &mut outputs, &mut notes) {
            Ok(status) => match within_fan_out_budget(&outputs, config.max_event_fanout_bytes) {
                Ok(()) => (status, (!notes.is_empty()).then(|| notes.join("; "))),
                Err(msg) => {
                    outputs = Outputs::default();
                    ("failed", Some(format!("{}: {msg}", Failure::OutputLimit.as_str())))
                }
            },
            Err(msg) => {
                outputs = Outputs::default();
                ("failed", Some(format!("{}: {msg}", Failure::PluginError.as_str())))
            }
        },
        Err(f) => ("failed", Some(format!("{} in {}: {}", f.failure.as_str(), f.plugin, f.message))),
    };
    // A failure that may pass is tried again later, within the attempt budget.
    let attempt = job.attempts + 1;
    let retry_at = match &ran.outcome {
        Err(f) if f.failure.is_retryable() && attempt < i64::from(config.plugin_attempts) => {
            Some(now_ms() + retry_delay(config, attempt))
        }
        _ => None,
    };
    let error = match (retry_at, error) {
        (Some(_), Some(e)) => Some(format!("attempt {attempt} of {}: {e}; retrying", config.plugin_attempts)),
        (None, Some(e)) if attempt > 1 => Some(format!("{e} (after {attempt} attempts)")),
        (_, e) => e,
    };
    if retry_at.is_some() {
        tracing::info!(tenant = %job.tenant_id, event_id = %event.id, attempt, error = error.as_deref().unwrap_or(""), "plugin job will be retried");
    } else if status == "failed" {
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
    let written = (outputs.deliveries.len(), outputs.sink_writes.len());
    let done = PluginJobDone { runs, status, retry_at, error, outputs, kv_writes, kv_max_keys: config.kv_max_keys };
    let refused = store.finish_plugin_job(&job, done).await?;
    if refused > 0 {
        tracing::warn!(tenant = %job.tenant_id, event_id = %event.id, refused, "plugin key-value writes refused: the tenant's key quota is full");
    }
    Ok(written)
}

/// Delay before attempt `attempt + 1` (`attempt` ≥ 1 made): the backoff, doubled for each
/// attempt after the first, at most an hour.
fn retry_delay(config: &Config, attempt: i64) -> i64 {
    let base = config.plugin_retry_backoff.as_millis() as i64;
    base.saturating_mul(1 << (attempt - 1).clamp(0, 20)).min(3_600_000)
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
    // One body, shared by every endpoint's delivery (and stored once).
    let body: Arc<str> = envelope(message_id, event_type, event.occurred_at, &event.tenant_id, payload, event.is_test)
        .to_string()
        .into();
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

/// Whether what an event enqueues fits `budget`: every delivery's body (as sent, once per
/// endpoint) and every sink record, in bytes. Refused with the reason otherwise.
fn within_fan_out_budget(outputs: &Outputs, budget: usize) -> Result<(), String> {
    let bytes: usize = outputs.deliveries.iter().map(|d| d.body.len()).sum::<usize>()
        + outputs.sink_writes.iter().map(|w| w.record.len()).sum::<usize>();
    if bytes > budget {
        return Err(format!(
            "the event would enqueue {bytes} bytes ({} deliveries, {} sink writes), more than the {budget} allowed",
            outputs.deliveries.len(),
            outputs.sink_writes.len()
        ));
    }
    Ok(())
}

/// The value of `field` in the payload as a key (strings and numbers only).
fn ordering_key(payload: &Value, field: &str) -> Option<String> {
    match payload.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
