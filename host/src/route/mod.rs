//! The router stage: for each plugin job, read the stored event and the tenant's routing,
//! apply Stripe events to the billing record, run the tenant's plugin chain (or pass the event
//! through when no plugin applies), and turn the result into delivery and sink jobs — recorded
//! with every invocation and the plugins' key-value writes, committed together.
//!
//! Owns tenant scheduling of plugin jobs, the routing cache ([`cache`]), fan-out and the
//! default sink mapping ([`fanout`]), plugin retries, and endpoint tests' requests ([`sample`]). Must not touch wasmtime (the sandbox
//! and chains are [`crate::plugin`]'s) nor SQL (the store's).

mod cache;
mod fanout;
pub mod sample;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};

use crate::jobs::{Pump, pump};
use crate::normalize::{CanonicalEvent, billing};
use crate::plugin::stored::WorkError;
use crate::plugin::{Failure, Kv, PluginEngine, chain};
use crate::store::{EventStatus, Job, JobKind, PluginJobDone, PluginRun, Store, StoreError, Ticket};
use crate::{Config, Wakeups};
use cache::RoutingCache;
use fanout::Routed;

/// A tenant's plugin jobs held here: how many are leased, and the slots that let at most its
/// share of them run at once.
struct TenantSlots {
    leased: usize,
    run: Arc<Semaphore>,
}

/// How many plugin jobs may be handed over in memory at once (see the pump's settings).
const HANDED: usize = 1024;

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
    let (lease, per_tenant) = (config.job_lease, config.plugin_tenant_concurrency.max(1));
    let settings = Pump {
        kind: JobKind::Plugin,
        concurrency: config.plugin_concurrency * 2,
        idle_poll: config.idle_poll,
        lease,
        // Events accepted here come to the router in memory, up to a quarter of the places
        // to one tenant; past that they wait in the store.
        handed: HANDED,
        handed_per_key: HANDED / 4,
    };
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
            Ok(jobs)
        }
    };
    pump(store.clone(), settings, &wake.plugin, stop, claim, |job, ticket| {
        let (store, engine, config, routing, running) =
            (store.clone(), engine.clone(), config.clone(), routing.clone(), running.clone());
        let claimed = Instant::now();
        // Counted before the pump takes or claims more (claimed or handed over alike).
        let mut held = Held::new(busy.clone(), &job, per_tenant, ticket);
        async move {
            let (tenant, event_id) = (job.tenant_id.clone(), job.event_id.clone());
            let tenant_slots = held.busy.lock().expect("busy lock").get(tenant.as_str()).map(|s| s.run.clone());
            if let Some(slots) = tenant_slots {
                held.permits.push(slots.acquire_owned().await.expect("semaphore never closed"));
            }
            held.permits.push(running.acquire_owned().await.expect("semaphore never closed"));
            if claimed.elapsed() > lease / 2 {
                // Waited so long that its lease might run out while it runs: hand it back.
                if let Err(e) = store.defer(&job, store.now_ms()).await {
                    tracing::error!(%tenant, %event_id, error = %e, "could not put back a plugin job; its lease will expire");
                }
            } else {
                // The deliveries and sink writes it enqueues reach their workers from the store.
                if let Err(e) = process(&store, &engine, &config, &routing, job, held).await {
                    tracing::error!(%tenant, %event_id, error = %e, "plugin job failed; it will be retried when its lease expires");
                }
            }
        }
    })
    .await;
}

/// A plugin job's places in the router: its tenant's leased count, its run slots and its
/// handoff ticket. Given back once its plugins have run (or when it is dropped): waiting for
/// the bookkeeper holds none of them, so a tenant's share bounds its plugins, not its writes.
struct Held {
    busy: Arc<Mutex<HashMap<String, TenantSlots>>>,
    tenant: String,
    permits: Vec<tokio::sync::OwnedSemaphorePermit>,
    _ticket: Option<Ticket>,
}

impl Held {
    fn new(
        busy: Arc<Mutex<HashMap<String, TenantSlots>>>,
        job: &Job,
        per_tenant: usize,
        ticket: Option<Ticket>,
    ) -> Self {
        let tenant = job.tenant_id.to_string();
        busy.lock()
            .expect("busy lock")
            .entry(tenant.clone())
            .or_insert_with(|| TenantSlots { leased: 0, run: Arc::new(Semaphore::new(per_tenant)) })
            .leased += 1;
        Held { busy, tenant, permits: Vec::new(), _ticket: ticket }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.permits.clear();
        let mut busy = self.busy.lock().expect("busy lock");
        if let Some(s) = busy.get_mut(&self.tenant) {
            s.leased -= 1;
            if s.leased == 0 {
                busy.remove(&self.tenant);
            }
        }
    }
}

/// Process one plugin job.
async fn process(
    store: &Store,
    engine: &Arc<PluginEngine>,
    config: &Config,
    cache: &RoutingCache,
    job: Job,
    held: Held,
) -> Result<(), WorkError> {
    let Some((stored, rev)) = store.event_with_config_rev(&job.tenant_id, &job.event_id).await? else {
        return Err(StoreError::Corrupt(format!("plugin job {} names a missing event", job.id)).into());
    };
    let (event, payload_json) = (stored.event, stored.payload_json);
    if event.source == "stripe" {
        sync_billing(store, &event).await?;
    }
    let routing = cache.get(store, engine, &job.tenant_id, rev).await?;
    let (endpoints, sinks) = (&routing.endpoints, &routing.sinks);
    let stages = routing.stages(store, engine, &job.tenant_id, &event.event_type).await?;
    let (ran, routed) = if stages.is_empty() {
        (None, Ok(fanout::pass_through(&event, endpoints, sinks)))
    } else {
        let ran = chain::run(engine, &stages, &event, payload_json, &routing.limits, Kv::Store(store.clone())).await;
        let routed = match &ran.outcome {
            Ok(actions) => fanout::apply(&event, endpoints, sinks, actions.clone())
                .map_err(|msg| format!("{}: {msg}", Failure::PluginError.as_str())),
            Err(f) => Err(format!("{} in {}: {}", f.failure.as_str(), f.plugin, f.message)),
        };
        (Some(ran), routed)
    };
    let routed = routed.and_then(|routed| {
        fanout::within_budget(&routed.outputs, config.max_event_fanout_bytes)
            .map(|()| routed)
            .map_err(|msg| format!("{}: {msg}", Failure::OutputLimit.as_str()))
    });
    let (Routed { outputs, status, .. }, error) = match routed {
        Ok(routed) => {
            let notes = (!routed.notes.is_empty()).then(|| routed.notes.join("; "));
            (routed, notes)
        }
        Err(e) => (Routed { status: EventStatus::Failed, ..Default::default() }, Some(e)),
    };
    // A failure that may pass is tried again later, within the attempt budget.
    let attempt = job.attempts + 1;
    let retryable = ran.as_ref().is_some_and(|r| r.outcome.as_ref().is_err_and(|f| f.failure.is_retryable()));
    let retry_at = (retryable && attempt < i64::from(config.plugin_attempts))
        .then(|| store.now_ms() + retry_delay(config, attempt));
    let error = match (retry_at, error) {
        (Some(_), Some(e)) => Some(format!("attempt {attempt} of {}: {e}; retrying", config.plugin_attempts)),
        (None, Some(e)) if attempt > 1 => Some(format!("{e} (after {attempt} attempts)")),
        (_, e) => e,
    };
    if retry_at.is_some() {
        tracing::info!(tenant = %job.tenant_id, event_id = %event.id, attempt, error = error.as_deref().unwrap_or(""), "plugin job will be retried");
    } else if status == EventStatus::Failed {
        tracing::warn!(tenant = %job.tenant_id, event_id = %event.id, error = error.as_deref().unwrap_or(""), "event failed in routing");
    }
    let (runs, kv_writes) = match ran {
        Some(ran) => {
            let kv_writes = ran.kv_writes();
            (runs(ran.runs, store.now_ms()), kv_writes)
        }
        None => (Vec::new(), Vec::new()),
    };
    let done = PluginJobDone { runs, status, retry_at, error, outputs, kv_writes, kv_max_keys: config.kv_max_keys };
    drop(held);
    let refused = store.finish_plugin_job(&job, done).await?;
    if refused > 0 {
        tracing::warn!(tenant = %job.tenant_id, event_id = %event.id, refused, "plugin key-value writes refused: the tenant's key quota is full");
    }
    Ok(())
}

/// The invocations of a chain as recorded, counted in the metrics.
fn runs(invocations: Vec<(crate::store::PluginVersion, crate::plugin::Invocation)>, now: i64) -> Vec<PluginRun> {
    invocations
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
                ran_at: now,
                peak_memory: Some(inv.peak_memory as i64),
            }
        })
        .collect()
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
