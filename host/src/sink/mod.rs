//! CRM sinks: where plugins' `sink` actions and the default mapping write records, keyed by
//! external id, never twice and never older over newer.
//!
//! - `http-upsert`: `PUT {base_url}/{object}/{external_id}` with the record as JSON, an
//!   `Idempotency-Key` stable across retries, the sink's own headers (e.g. auth), and the
//!   delivery retry rules.
//! - `sql`: an upsert into a table of a SQLite or PostgreSQL database given by URL,
//!   `(external_id PRIMARY KEY, version, record, updated_at)`, applied only when the record's
//!   version is newer than the row's.
//!
//! Writes to one record run one at a time, and a write whose version is not newer than the one
//! already written is skipped. This module owns the SQL it sends to *tenants'* databases; it
//! must not touch hookhost's own tables (that is the store's).

pub mod postgres;
pub mod worker;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};

use crate::TenantId;
use crate::deliver::{OutboundPolicy, validate_url};

/// Sink database pools kept; past that they are dropped and reopened on use.
const MAX_POOLS: usize = 256;

/// Why a sink cannot be configured or written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Invalid(String),
    #[error("only the operator may configure a sqlite sink (it writes to the server's disk)")]
    OperatorOnly,
    #[error("sink database: {0}")]
    Database(#[from] sqlx::Error),
    /// Refused by a rule (outbound guard, the service's settings) or a connection error put in
    /// our words: what the tenant is told.
    #[error("sink database refused: {0}")]
    Refused(String),
}

/// The version a record is written at: its `version` or `updated_at` (integers), else the
/// time of the event that produced it.
pub fn record_version(record: &Value, occurred_at: i64) -> i64 {
    ["version", "updated_at"].iter().find_map(|k| record.get(*k).and_then(Value::as_i64)).unwrap_or(occurred_at)
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where a sink writes, with its kind's settings (stored sealed, as JSON without `kind`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SinkConfig {
    /// `PUT {base_url}/{object}/{external_id}` with the sink's own headers.
    HttpUpsert {
        base_url: String,
        object: String,
        #[serde(default)]
        headers: std::collections::BTreeMap<String, String>,
    },
    /// An upsert into `table` of the SQLite or PostgreSQL database at `database_url`.
    Sql { database_url: String, table: String },
}

impl SinkConfig {
    /// `http-upsert` or `sql`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::HttpUpsert { .. } => "http-upsert",
            SinkConfig::Sql { .. } => "sql",
        }
    }

    /// The settings as stored: the JSON object without `kind`.
    pub fn settings(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("a sink config serializes");
        v.as_object_mut().expect("an object").remove("kind");
        v
    }

    /// A stored kind and settings read back.
    pub fn from_stored(kind: &str, settings: Value) -> Result<Self, serde_json::Error> {
        let mut v = settings;
        if let Some(map) = v.as_object_mut() {
            map.insert("kind".into(), Value::String(kind.into()));
        }
        serde_json::from_value(v)
    }

    /// The settings as the API shows them: header values and database passwords hidden.
    pub fn redacted(&self) -> Value {
        let mut shown = self.clone();
        match &mut shown {
            SinkConfig::HttpUpsert { headers, .. } => headers.values_mut().for_each(|v| *v = "…".into()),
            SinkConfig::Sql { database_url, .. } => {
                if let Ok(mut u) = reqwest::Url::parse(database_url)
                    && u.password().is_some()
                {
                    let _ = u.set_password(Some("…"));
                    *database_url = u.to_string();
                }
            }
        }
        shown.settings()
    }
}

/// Validate a sink's kind-specific settings from an API body; returns the config to store.
pub fn validate_config(
    kind: &str,
    body: &Map<String, Value>,
    policy: &OutboundPolicy,
    operator: bool,
) -> Result<SinkConfig, SinkError> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    match kind {
        "http-upsert" => {
            let base = text("base_url").ok_or_else(|| SinkError::Invalid("base_url is required".into()))?;
            validate_url(base, policy).map_err(|e| SinkError::Invalid(e.to_string()))?;
            let object =
                text("object").ok_or_else(|| SinkError::Invalid("object is required (e.g. \"contacts\")".into()))?;
            if !object.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(SinkError::Invalid("object must be a plain path segment".into()));
            }
            let headers = body.get("headers").cloned().unwrap_or_else(|| json!({}));
            let headers: Option<std::collections::BTreeMap<String, String>> =
                serde_json::from_value(headers).ok().filter(|m: &std::collections::BTreeMap<String, String>| {
                    m.iter().all(|(k, v)| {
                        axum::http::HeaderName::try_from(k.as_str()).is_ok()
                            && axum::http::HeaderValue::from_str(v).is_ok()
                    })
                });
            let Some(headers) = headers else {
                return Err(SinkError::Invalid(
                    "headers must be an object of valid header names and string values".into(),
                ));
            };
            let (base_url, object) = (base.trim_end_matches('/').to_string(), object.to_string());
            Ok(SinkConfig::HttpUpsert { base_url, object, headers })
        }
        "sql" => {
            let url = text("database_url").ok_or_else(|| SinkError::Invalid("database_url is required".into()))?;
            let table = text("table").ok_or_else(|| SinkError::Invalid("table is required".into()))?;
            if !is_identifier(table) {
                return Err(SinkError::Invalid(
                    "table must be an identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63)".into(),
                ));
            }
            if url.starts_with("sqlite:") {
                if !operator {
                    return Err(SinkError::OperatorOnly);
                }
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                // Parsed strictly here; the host is resolved and checked at every connect.
                let target = postgres::PgTarget::parse(url)?;
                if let Ok(ip) = target.host.parse::<std::net::IpAddr>()
                    && !crate::deliver::guard::permitted(ip, &policy.allow)
                {
                    return Err(SinkError::Refused(format!(
                        "{ip} is an internal address this tenant may not reach (outbound_allow)"
                    )));
                }
            } else {
                return Err(SinkError::Invalid("database_url must be sqlite:… or postgres://…".into()));
            }
            Ok(SinkConfig::Sql { database_url: url.to_string(), table: table.to_string() })
        }
        other => Err(SinkError::Invalid(format!("unknown sink kind {other:?}; known: http-upsert, sql"))),
    }
}

enum Target {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Connections to tenants' sink databases, opened on first use and kept.
#[derive(Default)]
pub struct SqlSinks {
    pools: Mutex<HashMap<String, std::sync::Arc<Target>>>,
}

impl std::fmt::Debug for SqlSinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlSinks")
    }
}

impl SqlSinks {
    /// The pool for a tenant's sink database. A PostgreSQL host is resolved and checked under
    /// the tenant's `policy` each time, and the pool is that of the checked address (for this
    /// tenant alone: another tenant's policy may differ).
    async fn target(
        &self,
        tenant: &TenantId,
        policy: &OutboundPolicy,
        url: &str,
    ) -> Result<std::sync::Arc<Target>, SinkError> {
        let pg = if url.starts_with("sqlite:") { None } else { Some(postgres::PgTarget::parse(url)?) };
        let addr = match &pg {
            Some(t) => Some(t.checked_address(policy).await?),
            None => None,
        };
        let key = format!("{tenant}\u{1f}{}\u{1f}{url}", addr.map(|a| a.to_string()).unwrap_or_default());
        if let Some(t) = self.pools.lock().expect("pools lock").get(&key) {
            return Ok(t.clone());
        }
        let target = if let (Some(pg), Some(addr)) = (&pg, addr) {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(pg.options(addr))
                .await
                .map_err(|e| {
                    tracing::warn!(%tenant, host = %pg.host, %addr, error = %e, "sink database connection failed");
                    postgres::tenant_error(&e)
                })?;
            Target::Postgres(pool)
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10));
            Target::Sqlite(sqlx::sqlite::SqlitePoolOptions::new().max_connections(2).connect_with(opts).await?)
        };
        let target = std::sync::Arc::new(target);
        let mut pools = self.pools.lock().expect("pools lock");
        if pools.len() >= MAX_POOLS {
            pools.clear();
        }
        pools.insert(key, target.clone());
        Ok(target)
    }

    /// Connect and create the table if it does not exist.
    pub async fn prepare(
        &self,
        tenant: &TenantId,
        policy: &OutboundPolicy,
        url: &str,
        table: &str,
    ) -> Result<(), SinkError> {
        if !is_identifier(table) {
            return Err(SinkError::Invalid("bad table name".into()));
        }
        let target = self.target(tenant, policy, url).await?;
        let columns = match &*target {
            Target::Sqlite(_) => {
                "external_id TEXT PRIMARY KEY, version INTEGER NOT NULL, record TEXT NOT NULL, updated_at INTEGER NOT NULL"
            }
            Target::Postgres(_) => {
                "external_id TEXT PRIMARY KEY, version BIGINT NOT NULL, record JSONB NOT NULL, updated_at BIGINT NOT NULL"
            }
        };
        let create = AssertSqlSafe(format!("CREATE TABLE IF NOT EXISTS {table} ({columns})"));
        match &*target {
            Target::Sqlite(p) => sqlx::query(create).execute(p).await.map(drop)?,
            Target::Postgres(p) => {
                sqlx::query(create).execute(p).await.map(drop).map_err(|e| postgres::tenant_error(&e))?
            }
        }
        Ok(())
    }

    /// Upsert the record if its version is newer than the row's; true when it was applied.
    #[allow(clippy::too_many_arguments)]
    pub async fn upsert(
        &self,
        tenant: &TenantId,
        policy: &OutboundPolicy,
        url: &str,
        table: &str,
        external_id: &str,
        version: i64,
        record: &str,
    ) -> Result<bool, SinkError> {
        self.prepare(tenant, policy, url, table).await?;
        let now = crate::now_ms();
        // One statement for both databases but for the placeholders (and PostgreSQL's jsonb).
        macro_rules! upsert {
            ($pool:expr, $values:literal) => {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} (external_id, version, record, updated_at) VALUES ({})
                     ON CONFLICT (external_id) DO UPDATE SET version = excluded.version, record = excluded.record,
                         updated_at = excluded.updated_at
                     WHERE excluded.version > {table}.version",
                    $values
                )))
                .bind(external_id)
                .bind(version)
                .bind(record)
                .bind(now)
                .execute($pool)
                .await
            };
        }
        let applied = match &*self.target(tenant, policy, url).await? {
            Target::Sqlite(p) => upsert!(p, "?, ?, ?, ?")?.rows_affected(),
            Target::Postgres(p) => {
                upsert!(p, "$1, $2, $3::jsonb, $4").map_err(|e| postgres::tenant_error(&e))?.rows_affected()
            }
        };
        Ok(applied == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_identifiers() {
        assert_eq!(record_version(&json!({ "version": 7 }), 100), 7);
        assert_eq!(record_version(&json!({ "updated_at": 9 }), 100), 9);
        assert_eq!(record_version(&json!({ "version": "x" }), 100), 100);
        assert!(is_identifier("crm_calls"));
        assert!(!is_identifier("calls; DROP TABLE x"));
        assert!(!is_identifier("1calls"));
    }

    #[test]
    fn config_validation() {
        let policy = OutboundPolicy { allow: crate::config::parse_cidrs("127.0.0.0/8").unwrap(), allow_http: false };
        let body = |v: Value| v.as_object().unwrap().clone();
        let ok = validate_config(
            "http-upsert",
            &body(json!({ "base_url": "http://127.0.0.1:9/api/", "object": "contacts",
            "headers": { "authorization": "Bearer x" } })),
            &policy,
            false,
        )
        .unwrap();
        assert_eq!(ok.settings()["base_url"], "http://127.0.0.1:9/api");
        assert_eq!(ok.redacted()["headers"]["authorization"], "…");
        assert_eq!(SinkConfig::from_stored(ok.kind(), ok.settings()).unwrap(), ok, "stored and read back");
        assert!(
            validate_config(
                "http-upsert",
                &body(json!({ "base_url": "http://10.0.0.1/", "object": "c" })),
                &policy,
                false
            )
            .is_err()
        );
        assert!(
            validate_config(
                "http-upsert",
                &body(json!({ "base_url": "https://crm.example", "object": "a/b" })),
                &policy,
                false
            )
            .is_err()
        );
        let sql = body(json!({ "database_url": "sqlite:///tmp/x.db", "table": "calls" }));
        assert!(matches!(validate_config("sql", &sql, &policy, false), Err(SinkError::OperatorOnly)));
        assert!(validate_config("sql", &sql, &policy, true).is_ok());
        let pg = body(json!({ "database_url": "postgres://u:secret@127.0.0.1:5432/test", "table": "calls" }));
        let c = validate_config("sql", &pg, &policy, false).unwrap();
        assert!(!c.redacted()["database_url"].as_str().unwrap().contains("secret"));
        assert!(SinkConfig::from_stored("ftp", c.settings()).is_err(), "an unknown stored kind is refused");
        let pg_private = body(json!({ "database_url": "postgres://10.1.1.1/test", "table": "calls" }));
        assert!(validate_config("sql", &pg_private, &policy, false).is_err());
        assert!(
            validate_config("sql", &body(json!({ "database_url": "sqlite:x.db", "table": "x y" })), &policy, true)
                .is_err()
        );
        assert!(validate_config("ftp", &body(json!({})), &policy, true).is_err());
    }
}
