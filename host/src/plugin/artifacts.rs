//! Compiled components kept on disk between runs: wasmtime's serialized artifacts, one file per
//! component, named by the SHA-256 of the component's bytes and of the engine's compatibility
//! hash (wasmtime's version and every setting that changes code), so a restarted process or
//! another one sharing the directory loads a component instead of compiling it again, and an
//! engine that would compile differently never picks up another's file. wasmtime checks each
//! file's header against the engine again when it loads it; a file that does not load is
//! compiled again and replaced.
//!
//! Loading runs the file's native code: the directory must be writable by hookhost alone (it is
//! created owner-only). Files are written to a temporary name and renamed, so a reader never
//! sees half of one. The directory holds at most its byte budget: after each write the least
//! recently used files (by modification time, renewed at each load) are removed until it fits.
//! Must not decide what is compiled: [`super::PluginEngine::compile`] does.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The artifact directory.
pub(super) struct Artifacts {
    dir: PathBuf,
    max_bytes: u64,
}

/// Feeds the engine's compatibility hash into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("read with finalize")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl Artifacts {
    pub(super) fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        Ok(Artifacts { dir: dir.to_path_buf(), max_bytes })
    }

    /// The file name of `bytes` compiled by an engine like `engine`.
    pub(super) fn key(&self, engine: &Engine, bytes: &[u8]) -> String {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        h.0.update(Sha256::digest(bytes));
        format!("{}.cwasm", hex::encode(h.0.finalize()))
    }

    /// The component stored under `key`, if there is one that loads in `engine`.
    #[allow(unsafe_code)]
    pub(super) fn load(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.dir.join(key);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `keep` (serialized by this engine's wasmtime) into a
        // directory only hookhost can write; wasmtime checks its header against the engine.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                // Used now: the last to be removed when the directory is over its budget.
                let _ = std::fs::File::open(&path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "a kept compiled plugin does not load; compiling it again");
                None
            }
        }
    }

    /// Keep `component` under `key`. A failure costs only a compile later: logged, not returned.
    pub(super) fn keep(&self, component: &Component, key: &str) {
        let written = component.serialize().map_err(std::io::Error::other).and_then(|bytes| {
            let tmp = self.dir.join(format!("{key}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, self.dir.join(key))
        });
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not keep a compiled plugin on disk");
        }
        if let Err(e) = self.trim() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not trim the compiled plugins kept on disk");
        }
    }

    /// Remove the least recently used files until the directory holds at most its budget.
    fn trim(&self) -> std::io::Result<()> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && entry.path().extension().is_some_and(|e| e == "cwasm") {
                files.push((meta.modified()?, meta.len(), entry.path()));
            }
        }
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            std::fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_foreign_file_is_not_loaded() {
        let dir = std::env::temp_dir().join(format!("hookhost-artifacts-test-{}", std::process::id()));
        let artifacts = Artifacts::open(&dir, 1 << 20).unwrap();
        let engine = Engine::default();
        let key = artifacts.key(&engine, b"component bytes");
        assert_eq!(key, artifacts.key(&engine, b"component bytes"), "stable");
        assert_ne!(key, artifacts.key(&engine, b"other bytes"));
        assert!(artifacts.load(&engine, &key).is_none(), "nothing kept yet");
        std::fs::write(dir.join(&key), b"\x7fELF not a wasmtime artifact").unwrap();
        assert!(artifacts.load(&engine, &key).is_none(), "a damaged file is refused by wasmtime's check");
        let mut other = wasmtime::Config::new();
        other.consume_fuel(true);
        let other = Engine::new(&other).unwrap();
        assert_ne!(key, artifacts.key(&other, b"component bytes"), "another engine's settings, another file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_directory_keeps_to_its_budget_least_recently_used_out() {
        let dir = std::env::temp_dir().join(format!("hookhost-artifacts-trim-{}", std::process::id()));
        let artifacts = Artifacts::open(&dir, 250).unwrap();
        let t = |s| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        for (name, at) in [("a.cwasm", 3), ("b.cwasm", 1), ("c.cwasm", 2)] {
            std::fs::write(dir.join(name), [0u8; 100]).unwrap();
            std::fs::File::open(dir.join(name)).unwrap().set_modified(t(at)).unwrap();
        }
        std::fs::write(dir.join("other.txt"), [0u8; 500]).unwrap();
        artifacts.trim().unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["a.cwasm", "c.cwasm", "other.txt"], "the oldest goes; files not ours stay");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
