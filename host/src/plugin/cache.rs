//! The compiled-code cache: plugins compiled and linked, by component digest, bounded by the
//! bytes of code they hold. The least recently used goes first when a new one would not fit;
//! an evicted plugin is compiled again on its next use. Owns nothing but the map.

use std::collections::HashMap;

use super::Compiled;

/// Compiled plugins by digest, at most `capacity` bytes of code.
pub(super) struct CodeCache {
    capacity: usize,
    bytes: usize,
    clock: u64,
    entries: HashMap<String, (Compiled, u64)>,
}

impl CodeCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self { capacity, bytes: 0, clock: 0, entries: HashMap::new() }
    }

    pub(super) fn get(&mut self, digest: &str) -> Option<Compiled> {
        self.clock += 1;
        let (compiled, used) = self.entries.get_mut(digest)?;
        *used = self.clock;
        Some(compiled.clone())
    }

    /// Keep `compiled`, evicting the least recently used until it fits. One larger than the
    /// whole cache is not kept (its users hold it while they run).
    pub(super) fn insert(&mut self, digest: &str, compiled: Compiled) {
        self.clock += 1;
        if let Some((old, _)) = self.entries.remove(digest) {
            self.bytes -= old.code_bytes;
        }
        let size = compiled.code_bytes;
        if size > self.capacity {
            return;
        }
        while self.bytes + size > self.capacity {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(d, _)| d.clone()) else {
                break;
            };
            if let Some((evicted, _)) = self.entries.remove(&oldest) {
                self.bytes -= evicted.code_bytes;
                tracing::debug!(digest = %oldest, bytes = evicted.code_bytes, "compiled plugin evicted from the cache");
            }
        }
        self.bytes += size;
        self.entries.insert(digest.to_string(), (compiled, self.clock));
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
