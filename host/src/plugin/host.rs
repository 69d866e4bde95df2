//! The host side of a plugin's imports — captured logs, the key-value store (reads from the
//! tenant's store, writes kept for the caller to apply), the clock, allow-listed outbound HTTP —
//! and the memory and table limiter. One [`HostState`] per invocation; nothing outlives it.

use super::*;

/// Per-store host state.
pub struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) tenant: TenantId,
    pub(super) kv: Kv,
    pub(super) kv_write: bool,
    pub(super) kv_writes: Vec<(String, Option<String>)>,
    pub(super) logs: String,
    pub(super) log_cap: usize,
    pub(super) fetcher: Option<Fetcher>,
    pub(super) http: HttpRules,
    pub(super) outbound_allow: Vec<ipnet::IpNet>,
    pub(super) fetches: usize,
    pub(super) deadline: Instant,
    /// A fault of the host inside an import (the invocation is a host fault, not a trap).
    pub(super) host_fault: Option<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit::Host for HostState {}

impl imports::Host for HostState {
    async fn log(&mut self, level: imports::Level, message: String) -> wasmtime::Result<()> {
        if self.logs.len() >= self.log_cap {
            return Ok(());
        }
        let level = match level {
            imports::Level::Debug => "debug",
            imports::Level::Info => "info",
            imports::Level::Warn => "warn",
            imports::Level::Error => "error",
        };
        let line = format!("{level}: {message}\n");
        let room = self.log_cap - self.logs.len();
        if line.len() <= room {
            self.logs.push_str(&line);
        } else {
            let mut cut = room;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            self.logs.push_str(&line[..cut]);
            self.logs.push_str("…[log limit]\n");
        }
        Ok(())
    }

    async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        if let Some((_, v)) = self.kv_writes.iter().rev().find(|(k, _)| *k == key) {
            return Ok(v.clone());
        }
        match &self.kv {
            Kv::Store(store) | Kv::DryRun(store) => match store.kv_get(&self.tenant, &key).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    self.host_fault = Some(format!("kv-get: {e}"));
                    Err(e.into())
                }
            },
            Kv::Map(map) => Ok(map.get(&key).cloned()),
        }
    }

    async fn kv_set(&mut self, key: String, value: Option<String>) -> wasmtime::Result<Result<(), String>> {
        if !self.kv_write {
            return Ok(Err("kv_write is not granted to this tenant's plugins".into()));
        }
        if key.is_empty() || key.len() > KV_MAX_KEY_BYTES {
            return Ok(Err(format!("keys are 1 to {KV_MAX_KEY_BYTES} bytes")));
        }
        if value.as_ref().is_some_and(|v| v.len() > KV_MAX_VALUE_BYTES) {
            return Ok(Err(format!("values are at most {KV_MAX_VALUE_BYTES} bytes")));
        }
        if self.kv_writes.len() >= KV_MAX_WRITES {
            return Ok(Err(format!("at most {KV_MAX_WRITES} writes per invocation")));
        }
        self.kv_writes.push((key, value));
        Ok(Ok(()))
    }

    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::now_ms().max(0) as u64)
    }

    async fn http_fetch(
        &mut self,
        req: imports::HttpRequest,
    ) -> wasmtime::Result<Result<imports::HttpResponse, String>> {
        let Some(fetcher) = self.fetcher.clone() else {
            return Ok(Err("outbound HTTP is not available in this runner".into()));
        };
        if self.http.allow.is_empty() {
            return Ok(Err("http fetch is not granted: the tenant's http_allow list is empty".into()));
        }
        if self.fetches >= self.http.max_requests {
            return Ok(Err(format!("at most {} requests per invocation", self.http.max_requests)));
        }
        self.fetches += 1;
        let request = FetchRequest { method: req.method, url: req.url, headers: req.headers, body: req.body };
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let read_only = matches!(self.kv, Kv::DryRun(_));
        Ok(fetcher
            .fetch(request, &self.http, &self.outbound_allow, remaining, read_only)
            .await
            .map(|r| imports::HttpResponse { status: r.status, headers: r.headers, body: r.body }))
    }
}

/// Memory and table caps that record when they were hit, so the trap can be named.
pub(super) struct Limiter {
    pub(super) memory_cap: usize,
    pub(super) memory_hit: bool,
    /// Linear memory held by the instance now and at most, bytes (all its memories).
    pub(super) memory_now: usize,
    pub(super) memory_peak: usize,
}

const TABLE_CAP: usize = 100_000;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_now - current.min(self.memory_now) + desired;
        if total > self.memory_cap {
            self.memory_hit = true;
            wasmtime::bail!("memory limit of {} bytes exceeded (wanted {total})", self.memory_cap);
        }
        self.memory_now = total;
        self.memory_peak = self.memory_peak.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > TABLE_CAP {
            wasmtime::bail!("table limit of {TABLE_CAP} elements exceeded");
        }
        Ok(true)
    }
}
