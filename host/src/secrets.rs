//! Secrets at rest: provider secrets, endpoint signing secrets and sink settings are stored
//! sealed with XChaCha20-Poly1305 (the `chacha20poly1305` crate) under the service's key, bound
//! to the tenant they belong to (associated data), as `enc1:<key id>:<base64 nonce+ciphertext>`.
//!
//! The keyring is the service's: `HOOKHOST_SECRET_KEY` (base64 of 32 bytes; several separated by
//! commas while rotating — the first seals, all open), or on SQLite without it a key file beside
//! the database, created with mode 0600. Owns the cipher and the key file; knows no SQL.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc1:";

/// Why secrets cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("HOOKHOST_SECRET_KEY: {0}")]
    BadKey(String),
    #[error(
        "HOOKHOST_SECRET_KEY is required on PostgreSQL (every replica needs the same key): generate one with `hookhost secrets new-key`"
    )]
    KeyRequired,
    #[error("key file {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
    #[error("a stored secret was sealed with key {0}, which is not in HOOKHOST_SECRET_KEY")]
    UnknownKey(String),
    #[error("a stored secret does not open with its key (altered, or moved to another tenant)")]
    Tampered,
}

/// The service's keys: the first seals, every one opens.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

/// A fresh random key, base64 (what `HOOKHOST_SECRET_KEY` takes).
pub fn new_key() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

impl Keyring {
    /// Keys from `spec`: base64 keys of 32 bytes, comma-separated, the sealing one first.
    pub fn parse(spec: &str) -> Result<Keyring, SecretError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bytes = B64.decode(part).map_err(|_| SecretError::BadKey("keys are base64".into()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| SecretError::BadKey("each key is 32 bytes (44 base64 characters)".into()))?;
            keys.push((key_id(&key), XChaCha20Poly1305::new(&key.into())));
        }
        if keys.is_empty() {
            return Err(SecretError::BadKey("no key given".into()));
        }
        Ok(Keyring { keys })
    }

    /// A keyring of one fresh key (tests, throwaway databases).
    pub fn generate() -> Keyring {
        Keyring::parse(&new_key()).expect("a fresh key parses")
    }

    /// The service's keyring: `spec` when given; else, for a SQLite database, its key file
    /// (`<database>.key`, created with mode 0600 on first use, its path logged); PostgreSQL
    /// requires `spec`.
    pub fn load(spec: Option<&str>, database_url: &str) -> Result<Keyring, SecretError> {
        if let Some(spec) = spec.filter(|s| !s.trim().is_empty()) {
            return Keyring::parse(spec);
        }
        let path = key_file_of(database_url).ok_or(SecretError::KeyRequired)?;
        Keyring::parse(&read_or_create_key_file(&path)?)
    }

    /// The id of the sealing key (the first 8 hex digits of its SHA-256).
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Seal `plaintext`, bound to `context` (the tenant it belongs to).
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let (id, cipher) = &self.keys[0];
        let nonce: [u8; 24] = rand::random();
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 seals any length used here");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{id}:{}", B64.encode(out))
    }

    /// Open a stored value sealed for `context`. A value not sealed (a row written before
    /// secrets were sealed) is returned as it is; [`Keyring::needs_sealing`] finds those.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, SecretError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let (id, data) = rest.split_once(':').ok_or(SecretError::Tampered)?;
        let (_, cipher) =
            self.keys.iter().find(|(k, _)| k == id).ok_or_else(|| SecretError::UnknownKey(id.to_string()))?;
        let bytes = B64.decode(data).map_err(|_| SecretError::Tampered)?;
        if bytes.len() < 24 {
            return Err(SecretError::Tampered);
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| SecretError::Tampered)?;
        let plain = cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| SecretError::Tampered)?;
        String::from_utf8(plain).map_err(|_| SecretError::Tampered)
    }

    /// Whether `stored` should be sealed again: plaintext, or sealed with another key than
    /// the sealing one.
    pub fn needs_sealing(&self, stored: &str) -> bool {
        match stored.strip_prefix(PREFIX).and_then(|r| r.split_once(':')) {
            Some((id, _)) => id != self.current_id(),
            None => true,
        }
    }
}

fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

/// `<database file>.key` for a SQLite URL.
pub fn key_file_of(database_url: &str) -> Option<PathBuf> {
    let path = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(format!("{path}.key")))
}

fn read_or_create_key_file(path: &Path) -> Result<String, SecretError> {
    let err = |source| SecretError::KeyFile { path: path.to_path_buf(), source };
    match std::fs::read_to_string(path) {
        Ok(s) => {
            warn_if_open(path);
            Ok(s.trim().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = new_key();
            write_key_file(path, &key).map_err(err)?;
            tracing::warn!(path = %path.display(), "HOOKHOST_SECRET_KEY is not set: secrets are sealed with a new key kept in this file (mode 0600); back it up with the database");
            Ok(key)
        }
        Err(e) => Err(err(e)),
    }
}

/// Write a key file readable by its owner only (replacing one that exists).
pub fn write_key_file(path: &Path, key: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("key.new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(key.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn warn_if_open(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the secret key file can be read by others than its owner: chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_for_their_tenant_only_and_rotate() {
        let old = Keyring::generate();
        let sealed = old.seal("ten_a", "whsec_topsecret");
        assert!(sealed.starts_with("enc1:") && !sealed.contains("topsecret"));
        assert_eq!(old.open("ten_a", &sealed).unwrap(), "whsec_topsecret");
        assert!(matches!(old.open("ten_b", &sealed), Err(SecretError::Tampered)), "bound to its tenant");
        assert_ne!(old.seal("ten_a", "x"), old.seal("ten_a", "x"), "a fresh nonce each time");
        assert_eq!(old.open("ten_a", "legacy plaintext").unwrap(), "legacy plaintext");
        assert!(old.needs_sealing("legacy plaintext") && !old.needs_sealing(&sealed));

        let new_key = new_key();
        let old_key = B64.encode([0u8; 32]);
        let both = Keyring::parse(&format!("{new_key},{old_key}")).unwrap();
        let by_old = Keyring::parse(&old_key).unwrap().seal("ten_a", "s");
        assert_eq!(both.open("ten_a", &by_old).unwrap(), "s", "every key opens");
        assert!(both.needs_sealing(&by_old), "sealed again with the first");
        let only_new = Keyring::parse(&new_key).unwrap();
        assert!(matches!(only_new.open("ten_a", &by_old), Err(SecretError::UnknownKey(_))));
        for bad in ["", "abc", "AAAA"] {
            assert!(Keyring::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_sqlite_database_gets_a_private_key_file() {
        let dir = std::env::temp_dir().join(format!("hh-key-{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/h.db", dir.display());
        let first = Keyring::load(None, &url).unwrap();
        let again = Keyring::load(None, &url).unwrap();
        assert_eq!(first.current_id(), again.current_id(), "the same key on the next start");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("h.db.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(Keyring::load(None, "postgres://x/y"), Err(SecretError::KeyRequired)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
