//! The plugin sandbox: the only module that imports wasmtime.
//!
//! Owns the one `bindgen!` of the `hookhost:plugin` world, the engine (pooling allocator, fuel,
//! epoch interruption), per-invocation limits and the operator's ceilings ([`limits`]), the
//! instance slots every instantiation holds ([`slots`]), the bounded cache of compiled plugins,
//! the compile budget, and the host side of the imports (`log`, `kv-get`, `now-ms`). Each
//! invocation gets a fresh instance from a cached `PluginPre`; nothing of one invocation is
//! visible to the next.
//!
//! # Sandbox defaults (deny by default)
//! - WASI: stdin closed, stdout/stderr discarded, no environment, no arguments, no preopened
//!   directories, every socket address and name lookup denied. Rust guests import those
//!   interfaces; they are linked so the component instantiates, and grant nothing.
//! - CPU: a fuel budget ([`Limits::fuel`]) and a wall-clock deadline ([`Limits::timeout`])
//!   enforced by epoch interruption (2 ms ticks), yielding to tokio at each tick so a spinning
//!   plugin never holds a worker thread.
//! - Memory: linear memory capped at [`Limits::memory_bytes`]; growth beyond traps and is
//!   recorded as `memory_limit`.
//! - Output: at most [`Limits::max_actions`] actions and [`Limits::output_bytes`] of payload.
//! - Logs: at most [`Limits::log_bytes`] captured per invocation; the rest is cut.
//!
//! - HTTP: `http-fetch` only to the tenant's `http_allow` hosts, through [`fetch`] (its own
//!   client, with the deliveries' address guard), within the invocation's deadline.
//!
//! Must not touch SQL, nor decide where an event goes: [`stored`] reads plugins through the
//! store, and the router stage ([`crate::route`]) runs chains on events.

mod artifacts;
mod cache;
pub mod chain;
pub mod dryrun;
pub mod fetch;
mod host;
pub mod limits;
pub mod local;
pub mod slots;
pub mod stored;
pub mod template;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config as WasmConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::TenantId;
use crate::deliver::request::Shaped;
use crate::normalize::CanonicalEvent;
use fetch::{FetchRequest, Fetcher, HttpRules};
pub use limits::{Ceiling, Limits, LimitsError, POOL_MAX_MEMORY};

/// `hookhost:plugin@0.2.0` (`wit/plugin.wit`), the world plugins are built against today.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `hookhost:plugin@0.1.0` (`wit/v0.1/plugin.wit`, frozen): components built against it keep
/// loading; [`version`] turns what they return into 0.2.0 terms.
mod bindings_v1 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

mod version;

use bindings::hookhost::plugin::{host as imports, types as wit};
pub use host::HostState;
use host::Limiter;

/// Engine-level faults (not a plugin's misbehaviour, which is a [`Failure`]).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("not a valid plugin component: {0}")]
    Invalid(String),
    #[error("wasmtime engine: {0:#}")]
    Engine(#[source] wasmtime::Error),
    /// The engine's settings cannot work (a memory limit above the pool, a bad ceiling).
    #[error("plugin engine settings: {0}")]
    Settings(String),
    #[error("plugin engine {what}: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("compile task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Longest key and value a plugin (or the API) may write to the key-value store.
pub const KV_MAX_KEY_BYTES: usize = 256;
pub const KV_MAX_VALUE_BYTES: usize = 64 << 10;
/// `kv-set` calls per invocation.
const KV_MAX_WRITES: usize = 64;

/// Instances that can be live at once (pool slots). Invocations beyond wait for a slot.
const POOL_INSTANCES: u32 = 256;
/// Linear memory kept mapped per pool slot between instances, by default
/// (`HOOKHOST_PLUGIN_KEEP_RESIDENT`). Interpreters compiled to wasm (componentize-py's CPython,
/// componentize-js's SpiderMonkey) dirty megabytes of their snapshot heap on every event; with
/// 2 MiB kept, each of those pages faulted again at the next event (pipeline bench, part 3).
pub const DEFAULT_KEEP_RESIDENT: usize = 32 << 20;
/// What one component may hold, checked when it is compiled (an upload over them is refused
/// with the reason): core instances, linear memories and tables, all nested modules counted.
/// The pool holds this much for every slot, so no instantiation can find it exhausted.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
pub const MAX_TABLES_PER_COMPONENT: u32 = 4;
const EPOCH_TICK: Duration = Duration::from_millis(2);
/// Instances one tenant may hold at once unless configured ([`PluginEngine::with_tenant_slots`]).
const DEFAULT_TENANT_SLOTS: usize = 4;
/// Compiled code kept unless configured ([`PluginEngine::with_cache_bytes`]).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// What a plugin asked for, in host terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// With `request`, the plugin's whole request (0.2.0) instead of the envelope of `payload`.
    Deliver {
        event_type: String,
        payload: String,
        endpoints: Vec<String>,
        request: Option<Box<Shaped>>,
    },
    Sink {
        sink: String,
        external_id: String,
        data: String,
    },
    Drop {
        reason: String,
    },
}

/// Why an invocation did not produce actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The plugin returned its own error.
    PluginError,
    Trap,
    FuelExhausted,
    Deadline,
    MemoryLimit,
    OutputLimit,
    /// The plugin returned its own error marked `retryable`.
    Retryable,
    /// The host failed the invocation (no instance slot, a store error inside an import): not
    /// the plugin's fault, tried again.
    HostFault,
}

impl Failure {
    /// The recorded name of the outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::PluginError => "plugin_error",
            Failure::Trap => "trap",
            Failure::FuelExhausted => "fuel_exhausted",
            Failure::Deadline => "deadline",
            Failure::MemoryLimit => "memory_limit",
            Failure::OutputLimit => "output_limit",
            Failure::Retryable => "plugin_error",
            Failure::HostFault => "host_fault",
        }
    }

    /// Whether the event may succeed if tried again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, Failure::Retryable | Failure::HostFault)
    }
}

/// How one invocation ended, with what it cost.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub outcome: Result<Vec<Action>, (Failure, String)>,
    pub fuel_used: u64,
    pub wall: Duration,
    pub logs: String,
    /// The most linear memory the instance held at once, bytes.
    pub peak_memory: u64,
    /// Key-value writes the plugin made, in order (`None` deletes); the caller applies them.
    pub kv_writes: Vec<(String, Option<String>)>,
}

/// Where `kv-get` reads from, and whether the invocation may have effects.
#[derive(Debug, Clone)]
pub enum Kv {
    /// The tenant's key-value store.
    Store(crate::store::Store),
    /// The tenant's key-value store, for a dry run: the caller discards writes, and
    /// `http-fetch` sends only GET and HEAD.
    DryRun(crate::store::Store),
    /// A fixed map (the CLI runner).
    Map(Arc<HashMap<String, String>>),
}

/// A plugin compiled and linked, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Compiled {
    pre: Arc<version::Pre>,
    /// Size of its compiled code in memory, bytes.
    code_bytes: usize,
}

impl Compiled {
    /// Size of the compiled code held in memory, bytes.
    pub fn code_bytes(&self) -> usize {
        self.code_bytes
    }

    /// The version of the `hookhost:plugin` world the component was built against.
    pub fn world(&self) -> &'static str {
        self.pre.world()
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled(..)")
    }
}

/// The engine, linker and compiled-plugin cache shared by every invocation.
pub struct PluginEngine {
    sandbox: Sandbox,
    linker: Linker<HostState>,
    cache: Mutex<cache::CodeCache>,
    compiles: Arc<tokio::sync::Semaphore>,
    slots: slots::Slots,
    limits: Limits,
    ceiling: Ceiling,
    runtime: Option<PluginRuntime>,
    /// Where compiled components are kept between runs ([`artifacts`]), if anywhere.
    artifacts: Option<artifacts::Artifacts>,
    /// Components compiled from their bytes, and loaded compiled from `artifacts`.
    compiled_from: [std::sync::atomic::AtomicU64; 2],
}

/// What one invocation needs of the engine; cheap to clone, so an invocation can be a task of
/// its own.
#[derive(Clone)]
struct Sandbox {
    engine: Engine,
    fetcher: Option<Fetcher>,
}

/// The threads plugins run on, apart from the threads that answer providers and the API: a
/// plugin spinning to its deadline competes with them for the CPU as a thread among threads
/// (the kernel's fair share), not as a task holding a shared worker for each epoch slice.
struct PluginRuntime(Option<tokio::runtime::Runtime>);

impl PluginRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle()
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        // Dropping a runtime may happen inside another runtime: do not block there.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Build the engine and start its epoch ticker (a thread that ends with the engine).
    pub fn new(limits: Limits) -> Result<Self, PluginError> {
        Self::with_keep_resident(limits, DEFAULT_KEEP_RESIDENT)
    }

    /// As [`PluginEngine::new`], keeping up to `keep_resident` bytes of each pool slot's linear
    /// memory mapped between instances (reset to the initial image in place) instead of handing
    /// them back to the kernel: a later instance of the same plugin then takes no page faults
    /// there. The pages a plugin never touched cost nothing either way.
    pub fn with_keep_resident(limits: Limits, keep_resident: usize) -> Result<Self, PluginError> {
        let engine_err = PluginError::Engine;
        if limits.memory_bytes > POOL_MAX_MEMORY {
            return Err(PluginError::Settings(format!("memory limit above the pool's {POOL_MAX_MEMORY} bytes")));
        }
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 8)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .total_core_instances(POOL_INSTANCES * MAX_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(POOL_INSTANCES * MAX_MEMORIES_PER_COMPONENT)
            .total_tables(POOL_INSTANCES * MAX_TABLES_PER_COMPONENT)
            .max_memory_size(POOL_MAX_MEMORY)
            .linear_memory_keep_resident(keep_resident)
            .table_keep_resident(64 << 10)
            // Reset only the pages an instance dirtied (Linux 6.7+; otherwise the whole
            // kept-resident prefix is memset): most of a plugin's memory is never touched.
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut cfg = WasmConfig::new();
        cfg.consume_fuel(true).epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // One compilation takes one core: the compile budget bounds them, and an upload never
        // takes every core from the threads answering providers.
        cfg.parallel_compilation(false);
        let engine = Engine::new(&cfg).map_err(engine_err)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(engine_err)?;
        bindings_v1::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(engine_err)?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("hookhost-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|source| PluginError::Thread { what: "epoch thread", source })?;

        Ok(Self {
            sandbox: Sandbox { engine, fetcher: None },
            linker,
            cache: Mutex::new(cache::CodeCache::new(DEFAULT_CACHE_BYTES)),
            compiles: Arc::new(tokio::sync::Semaphore::new(1)),
            slots: slots::Slots::new(POOL_INSTANCES as usize, DEFAULT_TENANT_SLOTS),
            ceiling: Ceiling::default_for(&limits),
            limits,
            runtime: None,
            artifacts: None,
            compiled_from: Default::default(),
        })
    }

    /// Keep compiled components in `dir` (created, owner-only), so a restart or another process
    /// sharing it loads them instead of compiling again.
    /// At most `max_bytes` are kept there; the least recently used files go first.
    pub fn with_artifacts(mut self, dir: &std::path::Path, max_bytes: u64) -> Result<Self, PluginError> {
        let opened = artifacts::Artifacts::open(dir, max_bytes);
        self.artifacts = Some(opened.map_err(|source| PluginError::Thread { what: "artifact directory", source })?);
        Ok(self)
    }

    /// Components compiled from their bytes, and loaded already compiled from the artifact
    /// directory, since the engine started.
    pub fn compile_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.compiled_from[0].load(Relaxed), self.compiled_from[1].load(Relaxed))
    }

    /// Give plugins outbound HTTP through `fetcher` (still only to each tenant's `http_allow`).
    pub fn with_fetcher(mut self, fetcher: Fetcher) -> Self {
        self.sandbox.fetcher = Some(fetcher);
        self
    }

    /// Run invocations on `threads` threads of their own (0: on the caller's runtime).
    pub fn with_threads(mut self, threads: usize) -> Result<Self, PluginError> {
        if threads > 0 {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("hookhost-plugin")
                .enable_all()
                .build()
                .map_err(|source| PluginError::Thread { what: "plugin threads", source })?;
            self.runtime = Some(PluginRuntime(Some(rt)));
        }
        Ok(self)
    }

    /// Let one tenant hold at most `per_tenant` instances at once (worker invocations, dry
    /// runs and upload checks together).
    pub fn with_tenant_slots(mut self, per_tenant: usize) -> Self {
        self.slots = slots::Slots::new(POOL_INSTANCES as usize, per_tenant);
        self
    }

    /// Run at most `n` compilations at once (each on one core, off the runtime's threads).
    pub fn with_compile_concurrency(mut self, n: usize) -> Self {
        self.compiles = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// Keep at most `bytes` of compiled code; the least recently used goes first.
    pub fn with_cache_bytes(self, bytes: usize) -> Self {
        *self.cache.lock().expect("cache lock") = cache::CodeCache::new(bytes);
        self
    }

    /// Hold tenants without a ceiling of their own to the default ceiling with the operator's
    /// `overrides` (`HOOKHOST_TENANT_CEILING`).
    pub fn with_default_ceiling(mut self, overrides: &serde_json::Value) -> Result<Self, PluginError> {
        self.ceiling = Ceiling::configured(&self.limits, overrides)
            .map_err(|e| PluginError::Settings(format!("default tenant ceiling: {e}")))?;
        Ok(self)
    }

    /// The default limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A tenant's ceiling: the default one with the operator's stored overrides for it.
    pub fn ceiling(&self, stored: Option<&serde_json::Value>) -> Ceiling {
        self.ceiling.for_tenant(stored)
    }

    /// Compile and link a component, checking it is a plugin of our world whose imports the
    /// host satisfies and that it fits the per-component caps. CPU-heavy (tens of ms to
    /// seconds) and outside the compile budget: tools call it; the service uses
    /// [`compile_in_turn`](Self::compile_in_turn). With an artifact directory, a component
    /// compiled before (by this engine's wasmtime and settings) is loaded from it instead, and
    /// one compiled now is kept there.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, PluginError> {
        use std::sync::atomic::Ordering::Relaxed;
        let engine = &self.sandbox.engine;
        let invalid = |e: wasmtime::Error| PluginError::Invalid(format!("{e:#}"));
        let stored = self.artifacts.as_ref().map(|a| (a, a.key(engine, bytes)));
        if let Some((artifacts, key)) = &stored
            && let Some(component) = artifacts.load(engine, key)
        {
            self.compiled_from[1].fetch_add(1, Relaxed);
            return self.link(component);
        }
        let component = Component::new(engine, bytes).map_err(invalid)?;
        self.compiled_from[0].fetch_add(1, Relaxed);
        if let Some((artifacts, key)) = &stored {
            artifacts.keep(&component, key);
        }
        self.link(component)
    }

    /// Link a compiled component against the host and check it is a plugin of one of our worlds.
    fn link(&self, component: Component) -> Result<Compiled, PluginError> {
        let invalid = |e: wasmtime::Error| PluginError::Invalid(format!("{e:#}"));
        let image = component.image_range();
        let code_bytes = (image.end as usize).saturating_sub(image.start as usize);
        let pre = self.linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = version::Pre::new(pre).map_err(PluginError::Invalid)?;
        Ok(Compiled { pre: Arc::new(pre), code_bytes })
    }

    /// [`compile`](Self::compile) within the compile budget, on a blocking thread.
    pub async fn compile_in_turn(self: &Arc<Self>, bytes: Vec<u8>) -> Result<Compiled, PluginError> {
        self.in_turn(None, bytes).await
    }

    /// Compile `bytes` when the compile budget gives a turn, unless by then the cache holds
    /// `digest` (events that missed together wait for one compile, not one each).
    async fn in_turn(self: &Arc<Self>, digest: Option<&str>, bytes: Vec<u8>) -> Result<Compiled, PluginError> {
        let _turn = self.compiles.clone().acquire_owned().await.expect("the compile semaphore is never closed");
        if let Some(c) = digest.and_then(|d| self.cache.lock().expect("cache lock").get(d)) {
            return Ok(c);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.compile(&bytes)).await?
    }

    /// The compiled plugin for `digest`, compiling `load()`'s bytes on a miss.
    pub async fn get_or_compile<F, Fut, E>(self: &Arc<Self>, digest: &str, load: F) -> Result<Compiled, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, E>>,
        E: From<PluginError>,
    {
        if let Some(c) = self.cache.lock().expect("cache lock").get(digest) {
            return Ok(c);
        }
        let compiled = self.in_turn(Some(digest), load().await?).await?;
        self.remember(digest, compiled.clone());
        Ok(compiled)
    }

    /// Remember a compiled plugin under its digest (after an upload compiled it).
    pub fn remember(&self, digest: &str, compiled: Compiled) {
        self.cache.lock().expect("cache lock").insert(digest, compiled);
    }

    /// Compiled code held in the cache, bytes, and how many plugins.
    pub fn cached(&self) -> (usize, usize) {
        let cache = self.cache.lock().expect("cache lock");
        (cache.bytes(), cache.len())
    }

    /// Instantiate `plugin` under `limits` without calling it: checks that its initial state
    /// fits the limits (an upload's last check), and measures instantiation alone.
    pub async fn instantiate(&self, plugin: &Compiled, tenant: &TenantId, limits: &Limits) -> Result<(), String> {
        let _slot = self.slots.acquire(tenant).await;
        let mut store = self
            .sandbox
            .new_store(tenant, limits, Kv::Map(Arc::default()), Instant::now())
            .map_err(|e| format!("{e:#}"))?;
        let memory_hit = |store: &Store<HostState>| store.data().limiter.memory_hit;
        match plugin.pre.instantiate(&mut store).await {
            Ok(_) => Ok(()),
            Err(e) if memory_hit(&store) => {
                Err(format!("its initial memory does not fit the memory limit of {} bytes: {e:#}", limits.memory_bytes))
            }
            Err(e) => Err(format!("it does not instantiate: {e:#}")),
        }
    }

    /// Run `plugin` on `event` in a fresh instance under `limits` (on the plugin threads when
    /// the engine has them).
    pub async fn invoke(&self, plugin: &Compiled, event: &CanonicalEvent, limits: &Limits, kv: Kv) -> Invocation {
        self.invoke_json(plugin, event, event.payload.to_string(), limits, kv).await
    }

    /// [`invoke`](Self::invoke) with the event's payload given as its JSON text (`payload`
    /// stands for `event.payload`, which is not read): the text as stored or as the previous
    /// chain stage returned it goes to the guest without being parsed and written again.
    pub async fn invoke_json(
        &self,
        plugin: &Compiled,
        event: &CanonicalEvent,
        payload: String,
        limits: &Limits,
        kv: Kv,
    ) -> Invocation {
        let input = wit::Event {
            id: event.id.clone(),
            tenant_id: event.tenant_id.to_string(),
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at.max(0) as u64,
            source: event.source.to_string(),
            is_test: event.is_test,
            payload,
        };
        // The slot is held while the instance lives; the deadline starts once it is had.
        let slot = self.slots.acquire(&event.tenant_id).await;
        let run = self.sandbox.clone().invoke(plugin.clone(), input, event.tenant_id.clone(), limits.clone(), kv, slot);
        match &self.runtime {
            None => run.await,
            Some(rt) => rt.handle().spawn(run).await.unwrap_or_else(|e| Invocation {
                outcome: Err((Failure::Trap, format!("the invocation's task ended: {e}"))),
                fuel_used: 0,
                wall: Duration::ZERO,
                logs: String::new(),
                peak_memory: 0,
                kv_writes: Vec::new(),
            }),
        }
    }
}

impl Sandbox {
    /// A fresh store for one invocation: limiter, fuel and the epoch deadline of `limits`,
    /// counted from `started`.
    fn new_store(
        &self,
        tenant: &TenantId,
        limits: &Limits,
        kv: Kv,
        started: Instant,
    ) -> wasmtime::Result<Store<HostState>> {
        let state = HostState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: Limiter { memory_cap: limits.memory_bytes, memory_hit: false, memory_now: 0, memory_peak: 0 },
            tenant: tenant.clone(),
            kv,
            kv_write: limits.kv_write,
            kv_writes: Vec::new(),
            logs: String::new(),
            log_cap: limits.log_bytes,
            fetcher: self.fetcher.clone(),
            http: limits.http.clone(),
            outbound_allow: limits.outbound_allow.clone(),
            fetches: 0,
            deadline: started + limits.timeout,
            host_fault: None,
        };
        let mut store = Store::try_new(&self.engine, state)?;
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(limits.fuel)?;
        let deadline = started + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        Ok(store)
    }

    async fn invoke(
        self,
        plugin: Compiled,
        input: wit::Event,
        tenant: TenantId,
        limits: Limits,
        kv: Kv,
        _slot: slots::Slot,
    ) -> Invocation {
        let started = Instant::now();
        let mut store = match self.new_store(&tenant, &limits, kv, started) {
            Ok(s) => s,
            Err(e) => {
                return Invocation {
                    outcome: Err((Failure::HostFault, format!("could not create a sandbox: {e:#}"))),
                    fuel_used: 0,
                    wall: started.elapsed(),
                    logs: String::new(),
                    peak_memory: 0,
                    kv_writes: Vec::new(),
                };
            }
        };

        let call = plugin.pre.handle(&mut store, &input);
        // The epoch callback stops guest code at the deadline; the outer timeout also bounds
        // time spent in host imports. A little slack lets the callback report it first.
        let result = tokio::time::timeout(limits.timeout + EPOCH_TICK * 5, call).await;
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let outcome = match result {
            Err(_elapsed) => {
                Err((Failure::Deadline, format!("deadline of {} ms exceeded", limits.timeout.as_millis())))
            }
            Ok(Ok(Ok(actions))) => check_output(actions, &limits),
            Ok(Ok(Err(e))) if e.retryable => {
                Err((Failure::Retryable, format!("{}: {} (retryable)", e.code, e.message)))
            }
            Ok(Ok(Err(e))) => Err((Failure::PluginError, format!("{}: {}", e.code, e.message))),
            Ok(Err(_)) if store.data().host_fault.is_some() => {
                Err((Failure::HostFault, store.data().host_fault.clone().unwrap_or_default()))
            }
            Ok(Err(trap)) => Err(classify(&trap, store.data().limiter.memory_hit, &limits)),
        };
        let data = store.data_mut();
        let logs = std::mem::take(&mut data.logs);
        // A failed invocation's writes are discarded with its outcome.
        let kv_writes = if outcome.is_ok() { std::mem::take(&mut data.kv_writes) } else { Vec::new() };
        let peak_memory = data.limiter.memory_peak as u64;
        Invocation { outcome, fuel_used, wall: started.elapsed(), logs, peak_memory, kv_writes }
    }
}

fn classify(err: &wasmtime::Error, memory_hit: bool, limits: &Limits) -> (Failure, String) {
    if err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        return (Failure::HostFault, format!("no sandbox instance free: {err:#}"));
    }
    if memory_hit {
        return (Failure::MemoryLimit, format!("memory limit of {} bytes exceeded", limits.memory_bytes));
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (Failure::FuelExhausted, format!("fuel budget of {} exhausted", limits.fuel)),
        Some(Trap::Interrupt) => (Failure::Deadline, format!("deadline of {} ms exceeded", limits.timeout.as_millis())),
        _ => {
            let mut msg = format!("{err:#}");
            msg.truncate(msg.floor_char_boundary(2000));
            (Failure::Trap, msg)
        }
    }
}

fn check_output(actions: Vec<wit::Action>, limits: &Limits) -> Result<Vec<Action>, (Failure, String)> {
    if actions.len() > limits.max_actions {
        return Err((
            Failure::OutputLimit,
            format!("{} actions returned, limit {}", actions.len(), limits.max_actions),
        ));
    }
    // Counted before anything is parsed: an oversized output costs nothing more.
    let bytes: usize = actions.iter().map(output_bytes).sum();
    if bytes > limits.output_bytes {
        return Err((Failure::OutputLimit, format!("{bytes} bytes of output, limit {}", limits.output_bytes)));
    }
    let convert = |(i, action)| {
        Ok(match action {
            wit::Action::Deliver(d) => {
                let request = match d.request {
                    None => None,
                    Some(r) => Some(Box::new(
                        Shaped::new(&r.method, r.path, r.headers, &r.content_type, r.body)
                            .map_err(|e| (Failure::PluginError, format!("action {i}: deliver request refused: {e}")))?,
                    )),
                };
                Action::Deliver { event_type: d.event_type, payload: d.payload, endpoints: d.endpoints, request }
            }
            wit::Action::Sink(s) => Action::Sink { sink: s.sink, external_id: s.external_id, data: s.data },
            wit::Action::Drop(reason) => Action::Drop { reason },
        })
    };
    actions.into_iter().enumerate().map(convert).collect()
}

/// What an action's output counts against [`Limits::output_bytes`].
fn output_bytes(action: &wit::Action) -> usize {
    match action {
        wit::Action::Deliver(d) => {
            let request = d.request.as_ref().map_or(0, |r| {
                r.body.len() + r.path.len() + r.headers.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>()
            });
            d.payload.len() + d.event_type.len() + request
        }
        wit::Action::Sink(s) => s.data.len() + s.external_id.len(),
        wit::Action::Drop(_) => 0,
    }
}
