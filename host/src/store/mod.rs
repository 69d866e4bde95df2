//! The store: every row hookhost keeps, behind one type, [`Store`].
//!
//! Owns the SQL and the schema (embedded migrations: `host/migrations/` for SQLite,
//! `host/migrations-pg/` for PostgreSQL, kept in step). SQLite through sqlx is the embedded
//! default (WAL, `synchronous=FULL`: an accepted event survives a crash or a power cut);
//! PostgreSQL is the store several replicas share (jobs leased with `FOR UPDATE SKIP LOCKED`).
//! Both run the same statements through sqlx's `Any` driver (`$N` placeholders, integer flags,
//! portable SQL); the few that differ choose by [`Backend`]. Every query on tenant data filters
//! on the tenant id it is given; callers never pass SQL in. Must not know about HTTP,
//! providers' wire formats or wasmtime.
//!
//! # Layout
//! One file per aggregate, each an `impl Store` block: `tenants` (and provider secrets),
//! `keys` (api keys), `ingress` (receipts, accept, replay), `calls` (numbers, calls, contacts,
//! billing), `events`, `endpoints`, `sinks`, `jobs` (claims, leases, fences), `deliveries`,
//! `plugins` (registry, chains, limits, key-value), `retention`; `bookkeeping` and `writer` are
//! the two batching writers, `shared` the statements several of them use, `types` the rows.
//! This file opens the database and holds what every part needs.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Any, AnyPool, AssertSqlSafe, Row};

use crate::deliver::request::Shape;
use crate::normalize::CanonicalEvent;
use crate::normalize::billing::Billing;
use crate::normalize::calls::{CallState, Emit, Party, Signal, Sweep};
use crate::phone::Country;
use crate::secrets::Keyring;
use crate::{DeliveryId, EndpointId, SinkId, TenantId};

/// Errors of the store. Everything here is an internal fault from a caller's point of view.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A stored JSON column that no longer reads as its type.
    #[error("corrupt row: {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The job's lease passed to another worker (it expired and was claimed again): this
    /// worker's result was discarded, nothing written.
    #[error("the lease of job {0} was taken over; the result was discarded")]
    StaleLease(i64),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored JSON column named `what` that does not decode, keeping serde's error.
fn decode(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |source| StoreError::Decode { what, source }
}

mod bookkeeping;
mod calls;
mod compiles;
mod console;
mod deliveries;
mod endpoints;
mod events;
mod group;
mod handoff;
mod ingress;
mod jobs;
mod keys;
mod plugins;
mod retention;
mod shared;
mod sinks;
mod states;
mod tenants;
mod types;
mod writer;

use shared::*;
pub use states::{DeliveryStatus, EventStatus, JobStatus, PluginState, SigningStyle, Verdict};
pub use types::*;
use writer::*;

pub use console::{Activity, ConsoleSession, Outbound, ReceiptDetail};
pub use handoff::{Bounds, Handed, Lane, Staged, Ticket, Wakeups};
pub use keys::ApiKeyInfo;
pub use retention::{Retention, Swept};

use bookkeeping::Bookkeeping;
pub use plugins::{
    ChainRule, KvPut, LimitSettings, PluginInfo, PluginQuotas, PluginVersion, Upload, UsageRow, VersionDelete,
    VersionInfo,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static MIGRATOR_PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-pg");

/// The columns a claimed job is read from (see [`job`]).
const JOB_COLUMNS: &str =
    "id, kind, tenant_id, event_id, endpoint_id, message_id, body, body_id, attempts, sink_id, external_id,
     record_version, lease_token, request";

/// Which database the store runs on. The SQL is written once (`$N` placeholders, which both
/// take); the few statements that differ pick theirs by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One process owns the database: one writer connection, group commit.
    Sqlite,
    /// Any number of replicas share it: jobs are leased with `FOR UPDATE SKIP LOCKED`.
    Postgres,
}

impl Backend {
    /// The backend a database URL names (`postgres://` or `postgresql://`; anything else is
    /// SQLite).
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// The backend a connection talks to.
    pub(crate) fn of(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// `sqlite` or `postgres`, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// `sqlite` when on SQLite, else `postgres`: the one place a statement's dialect is chosen.
    fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        }
    }

    /// What ends a claim's candidate SELECT: PostgreSQL locks the rows it takes and skips those
    /// another replica holds; SQLite has one writer, so its claims are atomic as they are.
    fn skip_locked(self) -> &'static str {
        self.pick("", "FOR UPDATE SKIP LOCKED")
    }

    /// Rows `key`, `value` (text) of the JSON object in parameter `param`.
    fn json_entries(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_each({param})"),
            Backend::Postgres => format!("json_each_text(CAST({param} AS json))"),
        }
    }

    /// Rows `value` (text) of the JSON array of strings in parameter `param`.
    fn json_values(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_each({param})"),
            Backend::Postgres => format!("json_array_elements_text(CAST({param} AS json))"),
        }
    }
}

/// The store handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// Readers (several connections; WAL lets them run beside the writer).
    pool: AnyPool,
    /// SQLite: the one writer connection, so writes queue here instead of spinning on SQLite's
    /// lock. PostgreSQL: the same pool as `pool`.
    write: AnyPool,
    backend: Backend,
    /// Accepts go to the group committer: many in one durable transaction, one fsync.
    accepts: tokio::sync::mpsc::Sender<WriteRequest>,
    /// Workers' bookkeeping goes to the bookkeeper: many in one transaction.
    bookkeeping: tokio::sync::mpsc::Sender<Bookkeeping>,
    /// The service's clock (shifted by hand in tests).
    clock: crate::Clock,
    /// On PostgreSQL, the database's clock as last measured, so replicas' clock skew cannot
    /// shorten a lease.
    db_clock: Arc<LeaseClock>,
    /// Seals and opens the secrets stored in rows (provider secrets, endpoint secrets, sink
    /// settings).
    keys: Arc<Keyring>,
    /// The lanes to this process's workers: jobs handed over in memory, pending rows announced.
    wake: Arc<Wakeups>,
}

/// See [`Store::now_ms`].
#[derive(Debug, Default)]
struct LeaseClock {
    offset_ms: std::sync::atomic::AtomicI64,
    /// When the offset was last measured (this process's unix ms; 0: never).
    measured_at: std::sync::atomic::AtomicI64,
}

/// SQLite's page cache for the one writer connection, in KiB (its default is 2 MiB).
const WRITER_CACHE_KIB: u32 = 64 << 10;
/// SQLite's page cache for each of the eight reader connections, in KiB (its default).
const READER_CACHE_KIB: u32 = 2 << 10;
/// How much of the SQLite file each connection maps into memory (address space, not memory).
const MMAP_BYTES: u64 = 1 << 30;

/// How often the database's clock is read again.
const CLOCK_REFRESH_MS: i64 = 30_000;

impl Store {
    /// Open (and migrate) the database at `url`; `keys` seal and open the secrets in its rows
    /// (rows still in the clear, or sealed with an older key, are sealed again now).
    pub async fn connect(url: &str, keys: Keyring) -> Result<Self> {
        Self::connect_with_clock(url, keys, crate::Clock::system()).await
    }

    /// [`connect`](Self::connect), reading time from `clock`.
    pub async fn connect_with_clock(url: &str, keys: Keyring, clock: crate::Clock) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url);
        let (pool, write) = match backend {
            Backend::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                let migrate = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
                MIGRATOR.run(&migrate).await?;
                migrate.close().await;
                // Through the Any driver the connection settings come from the URL alone: set
                // them on each new connection. The writer keeps a page cache large enough that
                // the indexes taking random keys (dedupe keys) stay in memory as the tables grow.
                // A reader's cache is dropped whenever another connection has committed since
                // its last read (WAL), so readers keep the default and map the file instead of
                // copying its pages through read().
                let settings = |cache_kib: u32| {
                    let pragmas = format!(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;
                         PRAGMA foreign_keys = ON; PRAGMA cache_size = -{cache_kib}; PRAGMA mmap_size = {MMAP_BYTES}"
                    );
                    AnyPoolOptions::new().after_connect(move |conn, _| {
                        let pragmas = pragmas.clone();
                        Box::pin(
                            async move { sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas)).execute(conn).await.map(drop) },
                        )
                    })
                };
                let write = settings(WRITER_CACHE_KIB).max_connections(1).connect(url).await?;
                let pool = settings(READER_CACHE_KIB).max_connections(8).connect(url).await?;
                (pool, write)
            }
            Backend::Postgres => {
                // The migrator takes an advisory lock: replicas starting together migrate once.
                let migrate = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
                MIGRATOR_PG.run(&migrate).await?;
                migrate.close().await;
                let pool = AnyPoolOptions::new().max_connections(16).connect(url).await?;
                (pool.clone(), pool)
            }
        };
        // Both writer tasks hold only the writer pool: they end when every Store handle is gone.
        // The group committer: provider requests, many in one durable transaction, one fsync.
        // The bookkeeper: workers' results, many in one transaction. Each batch is a handful
        // of multi-row statements, so neither holds the writer long.
        let wake = Arc::new(Wakeups::default());
        let (accepts, rx) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        let turns = Turns { what: "provider request", durable: true, wake: wake.clone() };
        tokio::spawn(write_batches(write.clone(), backend, rx, GROUP_COMMIT_MAX, turns));
        let (bookkeeping, rx) = tokio::sync::mpsc::channel(4 * bookkeeping::BATCH_MAX);
        let turns = Turns { what: "worker bookkeeping", durable: false, wake: wake.clone() };
        tokio::spawn(write_batches(write.clone(), backend, rx, bookkeeping::BATCH_MAX, turns));
        let keys = Arc::new(keys);
        let store = Self { pool, write, backend, accepts, bookkeeping, clock, db_clock: Arc::default(), keys, wake };
        let sealed = store.seal_stored_secrets().await?;
        if sealed > 0 {
            tracing::info!(sealed, key = store.keys.current_id(), "stored secrets sealed with the current key");
        }
        Ok(store)
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The lanes to this process's workers.
    pub fn wakeups(&self) -> Arc<Wakeups> {
        self.wake.clone()
    }

    /// What a transaction hands over or leaves pending, to publish once it commits.
    fn stage(&self) -> Staged {
        Staged::new(self.wake.clone())
    }

    /// A write transaction (see [`begin_on`]).
    async fn begin(&self, durable: bool) -> Result<sqlx::Transaction<'static, Any>> {
        begin_on(&self.write, self.backend, durable).await
    }

    /// Release every lease: with SQLite one process owns the database, so at start nothing
    /// else can be running a job. Returns how many jobs were released. On PostgreSQL other
    /// replicas may be running theirs: nothing is released, and a dead replica's leases expire.
    pub async fn release_all_leases(&self) -> Result<u64> {
        if self.backend == Backend::Postgres {
            return Ok(0);
        }
        let mut tx = self.begin(false).await?;
        let r = sqlx::query("UPDATE jobs SET status = 'pending', lease_until = NULL WHERE status = 'running'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.write.close().await;
    }
}

#[cfg(test)]
mod handoff_tests;
#[cfg(test)]
mod tests;
