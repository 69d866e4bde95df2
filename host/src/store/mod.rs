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

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Any, AnyPool, AssertSqlSafe, Row};

use crate::normalize::CanonicalEvent;
use crate::normalize::billing::Billing;
use crate::normalize::calls::{CallState, Emit};
use crate::secrets::Keyring;
use crate::{TenantId, now_ms};

/// Errors of the store. Everything here is an internal fault from a caller's point of view.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The job's lease passed to another worker (it expired and was claimed again): this
    /// worker's result was discarded, nothing written.
    #[error("the lease of job {0} was taken over; the result was discarded")]
    StaleLease(i64),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

mod bookkeeping;
mod keys;
mod plugins;
mod retention;

pub use keys::ApiKeyInfo;
pub use retention::{Retention, Swept};

use bookkeeping::Bookkeeping;
pub use plugins::{
    ChainRule, KvPut, LimitSettings, PluginInfo, PluginQuotas, PluginVersion, Upload, UsageRow, VersionDelete,
    VersionInfo,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static MIGRATOR_PG: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-pg");

/// A job is due when pending and its time has come, or when running and its lease has run
/// out (its worker died). `$3` is the time now.
/// (The `IN` lets the `jobs_ready` index narrow to live jobs: finished ones are kept.)
const DUE: &str = "status IN ('pending', 'running') AND ((status = 'pending' AND run_at <= $3) OR (status = 'running' AND lease_until < $3))";

/// The columns a claimed job is read from (see [`job`]).
const JOB_COLUMNS: &str =
    "id, tenant_id, event_id, endpoint_id, message_id, body, body_id, attempts, sink_id, external_id,
     record_version, lease_token";

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

/// A tenant as the API sees it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
}

/// A raw request kept as evidence.
#[derive(Debug, Clone)]
pub struct ReceiptRecord {
    pub tenant_id: TenantId,
    pub provider: &'static str,
    pub route: String,
    /// Headers as a JSON object (name → value).
    pub headers: Value,
    pub body: Vec<u8>,
    pub received_at: i64,
}

/// Which receipts to list.
#[derive(Debug, Clone, Default)]
pub struct ReceiptFilter {
    pub provider: Option<String>,
    /// accepted | duplicate | rejected
    pub verdict: Option<String>,
    /// Only receipts with a smaller id (paging backwards).
    pub before: Option<i64>,
}

/// A kept receipt, as the audit API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReceiptSummary {
    pub id: i64,
    pub provider: String,
    pub route: String,
    pub received_at: i64,
    pub verdict: String,
    pub reason: Option<String>,
    pub event_id: Option<String>,
    pub body_bytes: i64,
}

/// A tracked number's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NumberSettings {
    pub e164: String,
    pub forward_to: Option<String>,
    pub label: String,
    pub voicemail: bool,
}

/// What applying a call signal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallApplied {
    pub event_ids: Vec<String>,
    pub duplicate: bool,
    /// The call's state after the signal.
    pub state: CallState,
}

/// What accepting a verified receipt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: String,
    /// True when an event with the same provider identity was already stored.
    pub duplicate: bool,
}

/// A delivery endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub tenant_id: TenantId,
    pub url: String,
    pub event_types: Vec<String>,
    pub headers: serde_json::Map<String, Value>,
    pub secret: String,
    pub enabled: bool,
    pub description: String,
    /// `standard` (Standard Webhooks) or `hookhost` (`X-Hookhost-Signature: t=…,v1=…`).
    pub signing: String,
    pub timeout_ms: Option<i64>,
    /// Payload field whose value orders this endpoint's deliveries (e.g. `call_id`).
    pub ordered_by: Option<String>,
    pub rate_limit_per_s: Option<f64>,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
}

impl Endpoint {
    /// A new endpoint with the defaults: every event type, enabled, Standard Webhooks signing,
    /// the service's timeout, unordered, unlimited.
    pub fn new(tenant_id: TenantId, url: String, secret: String) -> Self {
        Endpoint {
            id: crate::new_id("ep"),
            tenant_id,
            url,
            event_types: vec!["*".into()],
            headers: serde_json::Map::new(),
            secret,
            enabled: true,
            description: String::new(),
            signing: "standard".into(),
            timeout_ms: None,
            ordered_by: None,
            rate_limit_per_s: None,
            previous_secret: None,
            previous_secret_until: None,
            disabled_reason: None,
            failing_since: None,
        }
    }

    /// The secrets that sign at `now_ms`: the current one, then the previous during its overlap.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now_ms < until
        {
            out.push(prev);
        }
        out
    }
}

macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, url, event_types, headers, secret, enabled, description, signing, timeout_ms, ordered_by, \
         rate_limit_per_s, previous_secret, previous_secret_until, disabled_reason, failing_since"
    };
}

/// Kinds of leased work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Plugin,
    Delivery,
    Sink,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Plugin => "plugin",
            JobKind::Delivery => "delivery",
            JobKind::Sink => "sink",
        }
    }
}

/// A leased job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub tenant_id: TenantId,
    pub event_id: String,
    pub endpoint_id: Option<String>,
    pub message_id: Option<String>,
    /// The delivery body or sink record (a shared delivery body is read with the claim).
    pub body: Option<String>,
    /// A delivery's shared body, when it has no body of its own.
    pub body_id: Option<i64>,
    /// The lease token this worker's claim took (fresh and random at every claim): every
    /// write of the job's outcome is `WHERE id = … AND lease_token = <this>`, so a worker whose
    /// lease ran out and was claimed again writes nothing.
    pub lease: Option<i64>,
    /// Attempts made before this one.
    pub attempts: i64,
    pub sink_id: Option<String>,
    pub external_id: Option<String>,
    pub record_version: Option<i64>,
}

/// A stored canonical event with its processing state.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: CanonicalEvent,
    /// `event.payload` as stored (JSON text).
    pub payload_json: String,
    pub status: String,
    pub error: Option<String>,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attempt {
    pub delivery_id: i64,
    pub event_id: String,
    pub endpoint_id: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub duration_ms: i64,
    pub outcome: String,
    pub attempted_at: i64,
}

/// One plugin invocation, as recorded.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PluginRun {
    pub plugin_name: String,
    pub plugin_version: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub fuel_used: Option<i64>,
    pub wall_us: i64,
    pub logs: String,
    pub ran_at: i64,
    pub peak_memory: Option<i64>,
}

/// Everything a finished plugin job writes.
#[derive(Debug, Default)]
pub struct PluginJobDone {
    pub runs: Vec<PluginRun>,
    /// The event's new status: `processed`, `dropped` or `failed` (ignored with `retry_at`).
    pub status: &'static str,
    /// Run the job again at this time (unix ms) instead of finishing it: the runs are
    /// recorded, the event stays pending with `error`, no output or key-value write is kept.
    pub retry_at: Option<i64>,
    pub error: Option<String>,
    pub outputs: Outputs,
    pub kv_writes: Vec<(String, Option<String>)>,
    pub kv_max_keys: u64,
}

/// A delivery to enqueue once the plugin has run.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub endpoint_id: String,
    pub message_id: String,
    /// Shared by the deliveries of one body (one per endpoint): stored once.
    pub body: Arc<str>,
    /// Deliveries to the same endpoint sharing a key go out one at a time, in order.
    pub ordering_key: Option<String>,
}

/// A sink write to enqueue once the plugin has run.
#[derive(Debug, Clone)]
pub struct NewSinkWrite {
    pub sink_id: String,
    pub external_id: String,
    /// Stable across retries and duplicates of the same write: the sink's `Idempotency-Key`.
    pub idempotency_key: String,
    pub record: String,
    /// The write applies only if newer than the version the sink already holds.
    pub version: i64,
}

/// What a plugin job produces.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub deliveries: Vec<NewDelivery>,
    pub sink_writes: Vec<NewSinkWrite>,
}

/// A CRM sink.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sink {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: TenantId,
    pub name: String,
    /// `http-upsert` or `sql`.
    pub kind: String,
    /// Kind-specific settings.
    pub config: Value,
    /// Events the default mapping writes (payload keyed by `external_id_field`).
    pub event_types: Vec<String>,
    pub external_id_field: Option<String>,
}

/// What one delivery attempt returned, as recorded.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The first KiB of the response body.
    pub excerpt: Option<String>,
    pub duration_ms: i64,
}

/// A delivery (one envelope to one endpoint) and where it stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub endpoint_id: String,
    pub message_id: String,
    /// pending | succeeded | failed
    pub status: String,
    /// For failed deliveries: true when retries ran out (dead letter), false when permanent.
    pub dead_letter: bool,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub replay: bool,
    pub manual_retries: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How a delivery attempt ended, for the job's next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Succeeded,
    /// Retry at this time (unix ms).
    RetryAt(i64),
    /// Permanent failure (non-retryable status).
    Failed,
    /// Retries exhausted: dead letter.
    Dead,
    /// Not sent: the sink already holds a newer version of the record.
    Skipped,
}

impl DeliveryState {
    pub fn outcome(self) -> &'static str {
        match self {
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::RetryAt(_) => "retry",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
            DeliveryState::Skipped => "skipped",
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
    /// The lease clock: this process's clock plus an offset — on PostgreSQL the database's
    /// clock as last measured, so replicas' clock skew cannot shorten a lease.
    clock: Arc<LeaseClock>,
    /// Seals and opens the secrets stored in rows (provider secrets, endpoint secrets, sink
    /// settings).
    keys: Arc<Keyring>,
}

/// See [`Store::now_ms`].
#[derive(Debug, Default)]
struct LeaseClock {
    offset_ms: std::sync::atomic::AtomicI64,
    /// When the offset was last measured (this process's unix ms; 0: never).
    measured_at: std::sync::atomic::AtomicI64,
}

/// How often the database's clock is read again.
const CLOCK_REFRESH_MS: i64 = 30_000;

/// A call signal's step over the call's state (see `normalize::calls::step`). A step may run
/// more than once (a batch that failed is applied again one request at a time); only the run
/// that commits counts.
pub type CallStep = Box<dyn Fn(&mut CallState) -> Vec<Emit> + Send + Sync>;

/// A provider request to commit, and where to send the outcome once committed.
enum WriteRequest {
    Accept {
        receipt: ReceiptRecord,
        event: CanonicalEvent,
        dedupe_key: String,
        reply: tokio::sync::oneshot::Sender<Result<Accepted>>,
    },
    /// A rejected request's evidence.
    Reject { receipt: ReceiptRecord, reason: String, reply: tokio::sync::oneshot::Sender<Result<()>> },
    Call {
        receipt: ReceiptRecord,
        call_sid: String,
        receipt_key: String,
        occurred_at: i64,
        step: CallStep,
        reply: tokio::sync::oneshot::Sender<Result<CallApplied>>,
    },
}

/// What a write returns once committed.
enum Written {
    Accept(Accepted),
    Reject,
    Call(Box<CallApplied>),
}

impl Batched for WriteRequest {
    type Out = Written;

    async fn apply(&self, tx: &mut sqlx::Transaction<'static, Any>, backend: Backend) -> Result<Written> {
        match self {
            WriteRequest::Accept { receipt, event, dedupe_key, .. } => {
                accept_one(tx, receipt, event, dedupe_key).await.map(Written::Accept)
            }
            WriteRequest::Reject { receipt, reason, .. } => {
                insert_receipt(&mut **tx, receipt, "rejected", Some(reason), None, None).await.map(|()| Written::Reject)
            }
            WriteRequest::Call { receipt, call_sid, receipt_key, occurred_at, step, .. } => {
                call_in(tx, backend, receipt, call_sid, receipt_key, *occurred_at, step)
                    .await
                    .map(|c| Written::Call(Box::new(c)))
            }
        }
    }

    /// Send the outcome (`Ok` only once committed).
    fn answer(self, outcome: Result<Written>) {
        let mismatch = || StoreError::Corrupt("a write's outcome does not match its request".into());
        match self {
            WriteRequest::Accept { reply, .. } => drop(reply.send(outcome.and_then(|w| match w {
                Written::Accept(a) => Ok(a),
                _ => Err(mismatch()),
            }))),
            WriteRequest::Reject { reply, .. } => drop(reply.send(outcome.and_then(|w| match w {
                Written::Reject => Ok(()),
                _ => Err(mismatch()),
            }))),
            WriteRequest::Call { reply, .. } => drop(reply.send(outcome.and_then(|w| match w {
                Written::Call(c) => Ok(*c),
                _ => Err(mismatch()),
            }))),
        }
    }
}

/// Most accepts committed together.
const GROUP_COMMIT_MAX: usize = 256;

/// A request a batching writer task (the group committer, the bookkeeper) applies inside its
/// transaction and answers once that transaction has committed.
trait Batched: Sized {
    type Out;
    async fn apply(&self, tx: &mut sqlx::Transaction<'static, Any>, backend: Backend) -> Result<Self::Out>;
    /// Send the outcome (`Ok` only once committed).
    fn answer(self, outcome: Result<Self::Out>);
}

/// How a batching writer takes its turns on the writer.
struct Turns {
    /// What its requests are, for the log.
    what: &'static str,
    /// Commits on disk before they return (see [`begin_on`]).
    durable: bool,
    /// Counted up while it waits for the writer.
    announce: Option<Arc<AtomicUsize>>,
    /// While this counts anyone waiting, it commits what it has applied and hands the writer
    /// over.
    yield_to: Option<Arc<AtomicUsize>>,
}

/// A batching writer: until every sender is gone, take the requests waiting (at most `max`),
/// apply them in one transaction (or a first part of them, see [`Turns::yield_to`]), commit,
/// then answer each. A batch that fails is rolled back and applied again one request at a
/// time, so a failing request fails alone.
async fn write_batches<R: Batched>(
    write: AnyPool,
    backend: Backend,
    mut rx: tokio::sync::mpsc::Receiver<R>,
    max: usize,
    turns: Turns,
) {
    let mut batch = Vec::with_capacity(max);
    loop {
        if batch.is_empty() && rx.recv_many(&mut batch, max).await == 0 {
            return;
        }
        match apply_batch(&write, backend, &batch, &turns, turns.yield_to.as_deref()).await {
            Ok(outcomes) => {
                let n = outcomes.len();
                batch.drain(..n).zip(outcomes).for_each(|(req, o)| req.answer(Ok(o)));
            }
            Err(e) if batch.len() == 1 => {
                tracing::error!(error = %e, what = turns.what, "a write failed");
                if let Some(req) = batch.pop() {
                    req.answer(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = batch.len(), what = turns.what, "a batch of writes failed; applying them one by one");
                for req in batch.drain(..) {
                    let outcome = apply_batch(&write, backend, std::slice::from_ref(&req), &turns, None).await;
                    if let Err(e) = &outcome {
                        tracing::error!(error = %e, what = turns.what, "a write failed");
                    }
                    req.answer(outcome.map(|mut o| o.remove(0)));
                }
            }
        }
    }
}

/// Apply `requests` in one transaction, or a first part of them (at least one) once `yield_to`
/// counts anyone waiting, and commit. Returns the outcomes of those applied.
async fn apply_batch<R: Batched>(
    write: &AnyPool,
    backend: Backend,
    requests: &[R],
    turns: &Turns,
    yield_to: Option<&AtomicUsize>,
) -> Result<Vec<R::Out>> {
    if let Some(waiting) = &turns.announce {
        waiting.fetch_add(1, Ordering::AcqRel);
    }
    let tx = begin_on(write, backend, turns.durable).await;
    if let Some(waiting) = &turns.announce {
        waiting.fetch_sub(1, Ordering::AcqRel);
    }
    let mut tx = tx?;
    let mut outcomes = Vec::with_capacity(requests.len());
    for req in requests {
        outcomes.push(req.apply(&mut tx, backend).await?);
        if yield_to.is_some_and(|w| w.load(Ordering::Acquire) > 0) {
            break;
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// A write transaction. `durable` commits are on disk before `commit` returns (SQLite
/// `synchronous = FULL`; PostgreSQL's default `synchronous_commit`): for everything an
/// acknowledgement promises (accepted events, API changes). Worker bookkeeping commits without
/// (SQLite `NORMAL`, PostgreSQL `synchronous_commit = off`): losing one to a power cut only
/// repeats work (at-least-once), and the next durable commit syncs it anyway.
async fn begin_on(write: &AnyPool, backend: Backend, durable: bool) -> Result<sqlx::Transaction<'static, Any>> {
    Ok(match (backend, durable) {
        (Backend::Sqlite, true) => write.begin_with("PRAGMA synchronous = FULL; BEGIN IMMEDIATE").await?,
        (Backend::Sqlite, false) => write.begin_with("PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE").await?,
        (Backend::Postgres, true) => write.begin().await?,
        (Backend::Postgres, false) => {
            let mut tx = write.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            tx
        }
    })
}

/// What creating a capped, named row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Created,
    /// Its name is taken.
    Duplicate,
    /// The tenant is at its cap for these rows.
    Full,
}

/// Whether the tenant already has `max` rows of `table` (endpoints or sinks), counted under
/// the tenant's lock for that table, so concurrent creations cannot pass the cap together.
async fn at_cap(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    table: &'static str,
    tenant: &TenantId,
    max: u64,
) -> Result<bool> {
    serialize_on(tx, backend, table, tenant.as_str()).await?;
    // `table` is one of two constants, never input.
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = $1");
    let n: i64 = sqlx::query(AssertSqlSafe(sql)).bind(tenant.as_str()).fetch_one(&mut **tx).await?.get("n");
    Ok(n as u64 >= max)
}

/// Serialize read-modify-write transactions on the row named by (`scope`, `key`), which may
/// not exist yet: on PostgreSQL a transaction-scoped advisory lock, so replicas take turns;
/// on SQLite nothing, as its one writer already does.
async fn serialize_on(tx: &mut sqlx::Transaction<'_, Any>, backend: Backend, scope: &str, key: &str) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) l")
            .bind(format!("{scope}\u{1f}{key}"))
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The statements of one call signal: read the call's state, apply `step`, store the state,
/// the events it emits (each with its plugin job) and the receipt (a `duplicate` when the
/// state machine had already applied it).
async fn call_in(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    receipt: &ReceiptRecord,
    call_sid: &str,
    receipt_key: &str,
    occurred_at: i64,
    step: &CallStep,
) -> Result<CallApplied> {
    let now = now_ms();
    let tenant = &receipt.tenant_id;
    serialize_on(tx, backend, tenant.as_str(), call_sid).await?;
    let row = sqlx::query("SELECT state FROM calls WHERE tenant_id = $1 AND call_sid = $2")
        .bind(tenant.as_str())
        .bind(call_sid)
        .fetch_optional(&mut **tx)
        .await?;
    let mut state: CallState = match row {
        Some(r) => serde_json::from_str(&r.get::<String, _>("state"))
            .map_err(|e| StoreError::Corrupt(format!("call state: {e}")))?,
        None => CallState::default(),
    };
    let already = state.seen.iter().any(|k| k == receipt_key);
    let emits = step(&mut state);
    sqlx::query(
        "INSERT INTO calls (tenant_id, call_sid, state, outcome, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, call_sid) DO UPDATE SET state = excluded.state, outcome = excluded.outcome,
                 updated_at = excluded.updated_at",
    )
    .bind(tenant.as_str())
    .bind(call_sid)
    .bind(serde_json::to_string(&state).expect("call state serializes"))
    .bind(&state.outcome)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let mut event_ids = Vec::new();
    for e in emits {
        let event = CanonicalEvent {
            id: crate::new_id("evt"),
            tenant_id: tenant.clone(),
            event_type: e.event_type,
            occurred_at,
            source: receipt.provider,
            is_test: false,
            payload: e.payload,
        };
        let key = format!("{receipt_key}#{}", event.event_type);
        if insert_event_with_job(tx, &event, &key, receipt.received_at).await? {
            event_ids.push(event.id);
        }
    }
    let verdict = if already { "duplicate" } else { "accepted" };
    insert_receipt(&mut **tx, receipt, verdict, None, Some(receipt_key), event_ids.first().map(String::as_str)).await?;
    Ok(CallApplied { event_ids, duplicate: already, state })
}

/// The statements of one accept: the event unless its dedupe key is known, its plugin job,
/// and the receipt with its verdict.
async fn accept_one(
    tx: &mut sqlx::Transaction<'_, Any>,
    receipt: &ReceiptRecord,
    event: &CanonicalEvent,
    dedupe_key: &str,
) -> Result<Accepted> {
    let inserted = insert_event_with_job(tx, event, dedupe_key, receipt.received_at).await?;
    let accepted = if inserted {
        Accepted { event_id: event.id.clone(), duplicate: false }
    } else {
        let existing: String = sqlx::query("SELECT id FROM events WHERE tenant_id = $1 AND dedupe_key = $2")
            .bind(event.tenant_id.as_str())
            .bind(dedupe_key)
            .fetch_one(&mut **tx)
            .await?
            .get("id");
        Accepted { event_id: existing, duplicate: true }
    };
    let verdict = if accepted.duplicate { "duplicate" } else { "accepted" };
    insert_receipt(&mut **tx, receipt, verdict, None, Some(dedupe_key), Some(&accepted.event_id)).await?;
    Ok(accepted)
}

impl Store {
    /// Open the database at `url` (SQLite, created if missing, or PostgreSQL) and run its
    /// migrations.
    /// Open (and migrate) the database at `url`; `keys` seal and open the secrets in its rows
    /// (rows still in the clear, or sealed with an older key, are sealed again now).
    pub async fn connect(url: &str, keys: Keyring) -> Result<Self> {
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
                // them on each new connection.
                let settings = || {
                    AnyPoolOptions::new().after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::raw_sql(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;
                                 PRAGMA foreign_keys = ON",
                            )
                            .execute(conn)
                            .await
                            .map(drop)
                        })
                    })
                };
                let write = settings().max_connections(1).connect(url).await?;
                let pool = settings().max_connections(8).connect(url).await?;
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
        // It counts itself while it waits for the writer, and on SQLite (one writer
        // connection) the bookkeeper then hands the writer over, so an acknowledgement never
        // waits behind a whole batch of bookkeeping.
        let accepts_waiting = Arc::new(AtomicUsize::new(0));
        let (accepts, rx) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        let turns =
            Turns { what: "provider request", durable: true, announce: Some(accepts_waiting.clone()), yield_to: None };
        tokio::spawn(write_batches(write.clone(), backend, rx, GROUP_COMMIT_MAX, turns));
        let (bookkeeping, rx) = tokio::sync::mpsc::channel(4 * bookkeeping::BATCH_MAX);
        let yield_to = (backend == Backend::Sqlite).then_some(accepts_waiting);
        let turns = Turns { what: "worker bookkeeping", durable: false, announce: None, yield_to };
        tokio::spawn(write_batches(write.clone(), backend, rx, bookkeeping::BATCH_MAX, turns));
        let store = Self { pool, write, backend, accepts, bookkeeping, clock: Arc::default(), keys: Arc::new(keys) };
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

    // ---- tenants and provider secrets ----

    /// Create a tenant with its first api key (`api_key_hash`, known by `prefix`).
    pub async fn create_tenant(&self, id: &TenantId, name: &str, api_key_hash: &str, prefix: &str) -> Result<()> {
        let mut tx = self.begin(true).await?;
        let now = now_ms();
        sqlx::query("INSERT INTO tenants (id, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.as_str())
            .bind(name)
            .bind(api_key_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        keys::insert_key(&mut tx, id, api_key_hash, prefix, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name FROM tenants WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| Tenant { id: TenantId::from_stored(r.get("id")), name: r.get("name") }))
    }

    pub async fn set_provider_secret(&self, tenant: &TenantId, provider: &str, secret: &str) -> Result<()> {
        let mut tx = self.begin(true).await?;
        sqlx::query(
            "INSERT INTO provider_configs (tenant_id, provider, secret, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, provider) DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(provider)
        .bind(self.keys.seal(tenant.as_str(), secret))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant `id` (if it exists) with its secret for `provider` (if it set one), in one
    /// read: what every provider request needs first.
    pub async fn tenant_with_secret(&self, id: &str, provider: &str) -> Result<Option<(TenantId, Option<String>)>> {
        let row = sqlx::query(
            "SELECT t.id, p.secret FROM tenants t
             LEFT JOIN provider_configs p ON p.tenant_id = t.id AND p.provider = $1 WHERE t.id = $2",
        )
        .bind(provider)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let tenant: String = r.get("id");
        let secret = r.get::<Option<String>, _>("secret").map(|s| self.keys.open(&tenant, &s)).transpose()?;
        Ok(Some((TenantId::from_stored(tenant), secret)))
    }

    // ---- ingest ----

    /// Keep a rejected request as evidence (bad signature, stale timestamp, malformed body).
    /// Keep a rejected request's evidence, committed with the group commit's next batch (no
    /// transaction or fsync of its own).
    pub async fn record_rejected(&self, receipt: &ReceiptRecord, reason: &str) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest::Reject { receipt: receipt.clone(), reason: reason.to_string(), reply };
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.accepts.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// In one transaction: keep the receipt, store the event unless its dedupe key is already
    /// known, and enqueue its plugin job. Only after this returns may the provider get a 2xx.
    pub async fn accept(&self, receipt: &ReceiptRecord, event: &CanonicalEvent, dedupe_key: &str) -> Result<Accepted> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest::Accept {
            receipt: receipt.clone(),
            event: event.clone(),
            dedupe_key: dedupe_key.to_string(),
            reply,
        };
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.accepts.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Receipts of a tenant, newest first (without bodies).
    pub async fn receipts(&self, tenant: &TenantId, filter: &ReceiptFilter, limit: i64) -> Result<Vec<ReceiptSummary>> {
        let rows = sqlx::query(
            "SELECT id, provider, route, received_at, verdict, reason, event_id,
                    COALESCE(body_len, length(body)) AS body_bytes
             FROM receipts WHERE tenant_id = $1 AND ($2 IS NULL OR provider = $3) AND ($4 IS NULL OR verdict = $5)
               AND ($6 IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $8",
        )
        .bind(tenant.as_str())
        .bind(&filter.provider)
        .bind(&filter.provider)
        .bind(&filter.verdict)
        .bind(&filter.verdict)
        .bind(filter.before)
        .bind(filter.before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ReceiptSummary {
                id: r.get("id"),
                provider: r.get("provider"),
                route: r.get("route"),
                received_at: r.get("received_at"),
                verdict: r.get("verdict"),
                reason: r.get("reason"),
                event_id: r.get("event_id"),
                body_bytes: r.get("body_bytes"),
            })
            .collect())
    }

    // ---- numbers and calls ----

    pub async fn put_number(&self, tenant: &TenantId, n: &NumberSettings) -> Result<()> {
        let mut tx = self.begin(true).await?;
        sqlx::query(
            "INSERT INTO numbers (tenant_id, e164, forward_to, label, voicemail, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, e164) DO UPDATE SET forward_to = excluded.forward_to, label = excluded.label,
                 voicemail = excluded.voicemail, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(&n.e164)
        .bind(&n.forward_to)
        .bind(&n.label)
        .bind(n.voicemail as i64)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn number(&self, tenant: &TenantId, e164: &str) -> Result<Option<NumberSettings>> {
        let row =
            sqlx::query("SELECT e164, forward_to, label, voicemail FROM numbers WHERE tenant_id = $1 AND e164 = $2")
                .bind(tenant.as_str())
                .bind(e164)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| NumberSettings {
            e164: r.get("e164"),
            forward_to: r.get("forward_to"),
            label: r.get("label"),
            voicemail: r.get::<i64, _>("voicemail") != 0,
        }))
    }

    /// A call's state, if hookhost has heard of it.
    pub async fn call(&self, tenant: &TenantId, call_sid: &str) -> Result<Option<CallState>> {
        let row = sqlx::query("SELECT state FROM calls WHERE tenant_id = $1 AND call_sid = $2")
            .bind(tenant.as_str())
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            serde_json::from_str(&r.get::<String, _>("state"))
                .map_err(|e| StoreError::Corrupt(format!("call state: {e}")))
        })
        .transpose()
    }

    /// In one durable transaction: read the call's state, apply `step` to it, store the
    /// state, the events it emits (each with its plugin job) and the receipt. The receipt is a
    /// `duplicate` when the state machine had already applied it.
    pub async fn apply_call(
        &self,
        receipt: &ReceiptRecord,
        call_sid: &str,
        receipt_key: &str,
        occurred_at: i64,
        step: CallStep,
    ) -> Result<CallApplied> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest::Call {
            receipt: receipt.clone(),
            call_sid: call_sid.to_string(),
            receipt_key: receipt_key.to_string(),
            occurred_at,
            step,
            reply,
        };
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.accepts.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    // ---- contacts and messages ----

    /// In one durable transaction: store `sms.received` (and the keyword's event), attach the
    /// message to the sender's contact and apply an opt-out/opt-in, and keep the receipt. A
    /// repeated `MessageSid` changes nothing and is kept as a `duplicate` receipt.
    pub async fn apply_sms(
        &self,
        receipt: &ReceiptRecord,
        receipt_key: &str,
        contact: &str,
        events: &[(String, Value)],
        opt: Option<(bool, &str)>,
    ) -> Result<Accepted> {
        let mut tx = self.begin(true).await?;
        let now = now_ms();
        let tenant = &receipt.tenant_id;
        let mut event_ids = Vec::new();
        for (event_type, payload) in events {
            let event = CanonicalEvent {
                id: crate::new_id("evt"),
                tenant_id: tenant.clone(),
                event_type: event_type.clone(),
                occurred_at: receipt.received_at / 1000,
                source: receipt.provider,
                is_test: false,
                payload: payload.clone(),
            };
            if insert_event_with_job(&mut tx, &event, &format!("{receipt_key}#{event_type}"), receipt.received_at)
                .await?
            {
                event_ids.push(event.id);
            }
        }
        let duplicate = event_ids.is_empty();
        if !duplicate {
            sqlx::query(
                "INSERT INTO contacts (tenant_id, e164, messages, last_message_at, created_at) VALUES ($1, $2, 1, $3, $4)
                 ON CONFLICT (tenant_id, e164) DO UPDATE SET messages = contacts.messages + 1, last_message_at = excluded.last_message_at",
            )
            .bind(tenant.as_str())
            .bind(contact)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some((opted_out, keyword)) = opt {
                sqlx::query(
                    "UPDATE contacts SET opted_out = $1, opt_changed_at = $2, last_keyword = $3 WHERE tenant_id = $4 AND e164 = $5",
                )
                .bind(opted_out as i64)
                .bind(now)
                .bind(keyword)
                .bind(tenant.as_str())
                .bind(contact)
                .execute(&mut *tx)
                .await?;
            }
        }
        let verdict = if duplicate { "duplicate" } else { "accepted" };
        insert_receipt(&mut *tx, receipt, verdict, None, Some(receipt_key), event_ids.first().map(String::as_str))
            .await?;
        tx.commit().await?;
        let event_id = event_ids.into_iter().next().unwrap_or_default();
        Ok(Accepted { event_id, duplicate })
    }

    /// A contact's thread and opt-out state.
    pub async fn contact(&self, tenant: &TenantId, e164: &str) -> Result<Option<Value>> {
        let row = sqlx::query(
            "SELECT e164, opted_out, opt_changed_at, last_keyword, messages, last_message_at FROM contacts WHERE tenant_id = $1 AND e164 = $2",
        )
        .bind(tenant.as_str())
        .bind(e164)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            serde_json::json!({
                "e164": r.get::<String, _>("e164"),
                "opted_out": r.get::<i64, _>("opted_out") != 0,
                "opt_changed_at": r.get::<Option<i64>, _>("opt_changed_at"),
                "last_keyword": r.get::<Option<String>, _>("last_keyword"),
                "messages": r.get::<i64, _>("messages"),
                "last_message_at": r.get::<Option<i64>, _>("last_message_at"),
            })
        }))
    }

    // ---- billing ----

    /// Read, change and write the tenant's billing record in one transaction. Derived state:
    /// worker-level durability (a lost commit is re-applied from the event).
    pub async fn update_billing<F>(&self, tenant: &TenantId, f: F) -> Result<bool>
    where
        F: FnOnce(&mut Billing) -> bool,
    {
        let mut tx = self.begin(false).await?;
        serialize_on(&mut tx, self.backend, "billing", tenant.as_str()).await?;
        let row = sqlx::query("SELECT record FROM billing WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let mut b: Billing = match row {
            Some(r) => serde_json::from_str(&r.get::<String, _>("record"))
                .map_err(|e| StoreError::Corrupt(format!("billing: {e}")))?,
            None => Billing::default(),
        };
        let changed = f(&mut b);
        sqlx::query(
            "INSERT INTO billing (tenant_id, record, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(serde_json::to_string(&b).expect("billing serializes"))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn billing(&self, tenant: &TenantId) -> Result<Billing> {
        let row = sqlx::query("SELECT record FROM billing WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => serde_json::from_str(&r.get::<String, _>("record"))
                .map_err(|e| StoreError::Corrupt(format!("billing: {e}"))),
            None => Ok(Billing::default()),
        }
    }

    // ---- receipt replay ----

    /// A kept receipt with its body: (provider, verdict, dedupe key, body).
    pub async fn receipt(
        &self,
        tenant: &TenantId,
        id: i64,
    ) -> Result<Option<(String, String, Option<String>, Vec<u8>)>> {
        let row =
            sqlx::query("SELECT provider, verdict, dedupe_key, body FROM receipts WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| (r.get("provider"), r.get("verdict"), r.get("dedupe_key"), r.get("body"))))
    }

    /// The events a receipt produced (their dedupe keys are the receipt's, or start with it + `#`).
    pub async fn events_of_receipt(&self, tenant: &TenantId, dedupe_key: &str) -> Result<Vec<CanonicalEvent>> {
        let rows = sqlx::query(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error FROM events
             WHERE tenant_id = $1 AND (dedupe_key = $2 OR substr(dedupe_key, 1, $3) = $4) AND replay_of IS NULL ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(dedupe_key)
        .bind(dedupe_key.len() as i32 + 1) // substr takes an int4 on PostgreSQL
        .bind(format!("{dedupe_key}#"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| stored_event(r).map(|e| e.event)).collect()
    }

    /// Store `events` as fresh events replaying receipt `receipt_id` (new ids, plugin jobs).
    pub async fn insert_replays(
        &self,
        tenant: &TenantId,
        receipt_id: i64,
        events: &[CanonicalEvent],
    ) -> Result<Vec<String>> {
        let mut tx = self.begin(true).await?;
        let now = now_ms();
        let mut ids = Vec::new();
        for e in events {
            let key = format!("replay:{receipt_id}:{}", e.id);
            if insert_event_with_job(&mut tx, e, &key, now).await? {
                sqlx::query("UPDATE events SET replay_of = $1 WHERE tenant_id = $2 AND id = $3")
                    .bind(receipt_id)
                    .bind(tenant.as_str())
                    .bind(&e.id)
                    .execute(&mut *tx)
                    .await?;
                ids.push(e.id.clone());
            }
        }
        tx.commit().await?;
        Ok(ids)
    }

    // ---- events ----

    /// Events of a tenant after the cursor `after` (a seq), oldest first.
    pub async fn events_page(&self, tenant: &TenantId, after: i64, limit: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error
             FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_event).collect()
    }

    /// The tenant's `limit` newest events, newest first.
    pub async fn recent_events(&self, tenant: &TenantId, limit: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error
             FROM events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_event).collect()
    }

    pub async fn event(&self, tenant: &TenantId, event_id: &str) -> Result<Option<StoredEvent>> {
        let row = sqlx::query(
            "SELECT seq, id, tenant_id, event_type, occurred_at, source, is_test, payload, status, error
             FROM events WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored_event).transpose()
    }

    /// The event with its tenant's configuration revision (bumped by triggers whenever the
    /// tenant's endpoints, sinks, plugins, chain or limits change), read together so a worker
    /// can tell whether the configuration it cached still holds for this event.
    pub async fn event_with_config_rev(&self, tenant: &TenantId, event_id: &str) -> Result<Option<(StoredEvent, i64)>> {
        let row = sqlx::query(
            "SELECT e.seq, e.id, e.tenant_id, e.event_type, e.occurred_at, e.source, e.is_test, e.payload, e.status,
                    e.error, t.config_rev
             FROM events e JOIN tenants t ON t.id = e.tenant_id WHERE e.tenant_id = $1 AND e.id = $2",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| Ok((stored_event(r)?, r.get("config_rev")))).transpose()
    }

    pub async fn plugin_runs(&self, tenant: &TenantId, event_id: &str) -> Result<Vec<PluginRun>> {
        let rows = sqlx::query(
            "SELECT plugin_name, plugin_version, outcome, error, fuel_used, wall_us, logs, ran_at, peak_memory
             FROM plugin_runs WHERE tenant_id = $1 AND event_id = $2 ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PluginRun {
                plugin_name: r.get("plugin_name"),
                plugin_version: r.get("plugin_version"),
                outcome: r.get("outcome"),
                error: r.get("error"),
                fuel_used: r.get("fuel_used"),
                wall_us: r.get("wall_us"),
                logs: r.get("logs"),
                ran_at: r.get("ran_at"),
                peak_memory: r.get("peak_memory"),
            })
            .collect())
    }

    // ---- endpoints ----

    /// Create an endpoint unless the tenant already has `max`.
    pub async fn create_endpoint(&self, ep: &Endpoint, max: u64) -> Result<Insert> {
        let mut tx = self.begin(true).await?;
        if at_cap(&mut tx, self.backend, "endpoints", &ep.tenant_id, max).await? {
            return Ok(Insert::Full);
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO endpoints (id, tenant_id, url, event_types, headers, secret, enabled, description, signing,
                 timeout_ms, ordered_by, rate_limit_per_s, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&ep.id)
        .bind(ep.tenant_id.as_str())
        .bind(&ep.url)
        .bind(serde_json::to_string(&ep.event_types).expect("strings serialize"))
        .bind(Value::Object(ep.headers.clone()).to_string())
        .bind(self.keys.seal(ep.tenant_id.as_str(), &ep.secret))
        .bind(ep.enabled as i64)
        .bind(&ep.description)
        .bind(&ep.signing)
        .bind(ep.timeout_ms)
        .bind(&ep.ordered_by)
        .bind(ep.rate_limit_per_s)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Insert::Created)
    }

    /// Write back an endpoint's settings (the API reads, changes, then updates).
    pub async fn update_endpoint(&self, ep: &Endpoint) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let r = sqlx::query(
            "UPDATE endpoints SET url = $1, event_types = $2, headers = $3, enabled = $4, description = $5, signing = $6,
                 timeout_ms = $7, ordered_by = $8, rate_limit_per_s = $9, disabled_reason = $10, failing_since = $11, updated_at = $12
             WHERE tenant_id = $13 AND id = $14",
        )
        .bind(&ep.url)
        .bind(serde_json::to_string(&ep.event_types).expect("strings serialize"))
        .bind(Value::Object(ep.headers.clone()).to_string())
        .bind(ep.enabled as i64)
        .bind(&ep.description)
        .bind(&ep.signing)
        .bind(ep.timeout_ms)
        .bind(&ep.ordered_by)
        .bind(ep.rate_limit_per_s)
        .bind(&ep.disabled_reason)
        .bind(ep.failing_since)
        .bind(now_ms())
        .bind(ep.tenant_id.as_str())
        .bind(&ep.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Delete an endpoint; its deliveries not yet made fail with the reason.
    pub async fn delete_endpoint(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        self.delete_target(tenant, id, ("endpoints", "delivery", "endpoint_id", "endpoint deleted")).await
    }

    /// Delete a delivery target — `(table, job kind, the jobs' column naming it, reason)` —
    /// and fail its unfinished jobs with the reason. False when there was none.
    async fn delete_target(
        &self,
        tenant: &TenantId,
        id: &str,
        (table, kind, column, reason): (&str, &str, &str, &str),
    ) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        // The names come from the two callers' constants, never input.
        let gone = sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE tenant_id = $1 AND id = $2")))
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if gone {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'failed', last_error = $1, lease_until = NULL, updated_at = $2
                 WHERE kind = $3 AND tenant_id = $4 AND {column} = $5 AND status IN ('pending', 'running')"
            )))
            .bind(reason)
            .bind(now_ms())
            .bind(kind)
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// Replace the endpoint's secret; the old one keeps signing until `previous_until` (unix ms).
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        new_secret: &str,
        previous_until: i64,
    ) -> Result<bool> {
        let mut tx = self.begin(true).await?;
        let r = sqlx::query(
            "UPDATE endpoints SET previous_secret = secret, previous_secret_until = $1, secret = $2, updated_at = $3
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(previous_until)
        .bind(self.keys.seal(tenant.as_str(), new_secret))
        .bind(now_ms())
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| endpoint(r, &self.keys)).collect()
    }

    pub async fn endpoint(&self, tenant: &TenantId, id: &str) -> Result<Option<Endpoint>> {
        let row =
            sqlx::query(concat!("SELECT ", endpoint_columns!(), " FROM endpoints WHERE tenant_id = $1 AND id = $2"))
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(|r| endpoint(r, &self.keys)).transpose()
    }

    // ---- jobs ----

    /// Lease up to `limit` due jobs of `kind` for `lease`. A job whose lease expired (its worker
    /// died) is due again.
    pub async fn claim(&self, kind: JobKind, limit: i64, lease: Duration) -> Result<Vec<Job>> {
        let mut tx = self.begin(false).await?;
        self.sync_clock().await?;
        let now = self.now_ms();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'running', lease_until = $1, updated_at = $2, lease_token = $7
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE kind = $3 AND status IN ('pending', 'running')
                   AND ((status = 'pending' AND run_at <= $4) OR (status = 'running' AND lease_until < $5))
                 ORDER BY run_at, id LIMIT $6 {lock})
             RETURNING {JOB_COLUMNS}",
            lock = self.backend.skip_locked(),
        )))
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(kind.as_str())
        .bind(now)
        .bind(now)
        .bind(limit)
        .bind(lease_token())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(job).collect())
    }

    /// Lease up to `limit` due plugin jobs, taking at most `per_tenant` of one tenant's in
    /// flight: `busy` holds how many each tenant already has running here.
    pub async fn claim_plugin_jobs(
        &self,
        limit: i64,
        lease: Duration,
        busy: &std::collections::HashMap<String, usize>,
        per_tenant: usize,
    ) -> Result<Vec<Job>> {
        let mut tx = self.begin(false).await?;
        self.sync_clock().await?;
        let now = self.now_ms();
        // Candidates: the oldest due jobs of tenants below their share, read in index order
        // (pending by run_at, then any whose lease ran out) and cut at `limit * per_tenant`,
        // so a claim costs the same whatever the backlog. Ranked per tenant, the first `limit`
        // within each tenant's share are taken. Window functions cannot lock rows, so
        // PostgreSQL locks the choice afterwards, skipping rows another replica holds and
        // re-checking that each is still due.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'running', lease_until = $1, updated_at = $2, lease_token = $8
             WHERE id IN (SELECT id FROM jobs WHERE id IN (
                 SELECT d.id FROM (
                     SELECT id, run_at, tenant_id,
                            ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY run_at, id) AS rn
                     FROM (
                         SELECT * FROM (
                             SELECT id, run_at, tenant_id FROM jobs
                             WHERE kind = 'plugin' AND status = 'pending' AND run_at <= $3 AND {open}
                             ORDER BY run_at, id LIMIT $7) p
                         UNION ALL
                         SELECT * FROM (
                             SELECT id, run_at, tenant_id FROM jobs
                             WHERE kind = 'plugin' AND status = 'running' AND lease_until < $3 AND {open}
                             LIMIT $7) r
                     ) c
                 ) d
                 WHERE d.rn + COALESCE((SELECT CAST(value AS BIGINT) FROM {busy} WHERE key = d.tenant_id), 0) <= $5
                 ORDER BY d.run_at, d.id LIMIT $6) AND {due} {lock})
             RETURNING {JOB_COLUMNS}",
            open = format_args!(
                "tenant_id NOT IN (SELECT key FROM {} WHERE CAST(value AS BIGINT) >= $5)",
                self.backend.json_entries("$4")
            ),
            due = DUE,
            busy = self.backend.json_entries("$4"),
            lock = self.backend.skip_locked(),
        )))
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(serde_json::to_string(busy).expect("counts serialize"))
        .bind(per_tenant as i64)
        .bind(limit)
        .bind(limit * per_tenant as i64)
        .bind(lease_token())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(job).collect())
    }

    /// When the earliest pending job of `kind` is due (unix ms), if any.
    pub async fn next_due(&self, kind: JobKind) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(run_at) AS due FROM jobs WHERE kind = $1 AND status = 'pending'")
            .bind(kind.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get("due"))
    }

    /// Finish a plugin job: record its runs, apply the plugins' key-value writes, set the
    /// event's state and enqueue its deliveries and sink writes, all in one transaction
    /// (batched with other workers' bookkeeping). Returns the key-value writes refused for the
    /// quota.
    pub async fn finish_plugin_job(&self, job: &Job, done: PluginJobDone) -> Result<usize> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.book(Bookkeeping::FinishPlugin { job: job.clone(), done, reply }, answer).await
    }

    /// Finish a plugin job for a tenant with no plugin: deliver the canonical event as it is.
    pub async fn finish_without_plugin(&self, job: &Job, outputs: Outputs) -> Result<()> {
        let done = PluginJobDone { status: "processed", outputs, ..Default::default() };
        self.finish_plugin_job(job, done).await.map(drop)
    }

    async fn book<T>(&self, request: Bookkeeping, answer: tokio::sync::oneshot::Receiver<Result<T>>) -> Result<T> {
        let closed = || StoreError::Corrupt("the bookkeeper stopped".into());
        self.bookkeeping.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    // ---- sinks ----

    /// Create a sink unless its name is taken or the tenant already has `max`.
    pub async fn create_sink(&self, sink: &Sink, max: u64) -> Result<Insert> {
        let mut tx = self.begin(true).await?;
        if at_cap(&mut tx, self.backend, "sinks", &sink.tenant_id, max).await? {
            return Ok(Insert::Full);
        }
        let r = sqlx::query(
            "INSERT INTO sinks (id, tenant_id, name, kind, config, event_types, external_id_field, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(&sink.id)
        .bind(sink.tenant_id.as_str())
        .bind(&sink.name)
        .bind(&sink.kind)
        .bind(self.keys.seal(sink.tenant_id.as_str(), &sink.config.to_string()))
        .bind(serde_json::to_string(&sink.event_types).expect("strings serialize"))
        .bind(&sink.external_id_field)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if r.rows_affected() == 1 { Insert::Created } else { Insert::Duplicate })
    }

    /// Delete a sink and fail its unfinished writes. False when there was none.
    pub async fn delete_sink(&self, tenant: &TenantId, id: &str) -> Result<bool> {
        self.delete_target(tenant, id, ("sinks", "sink", "sink_id", "sink deleted")).await
    }

    pub async fn sinks(&self, tenant: &TenantId) -> Result<Vec<Sink>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, kind, config, event_types, external_id_field FROM sinks WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| sink(r, &self.keys)).collect()
    }

    pub async fn sink(&self, tenant: &TenantId, id: &str) -> Result<Option<Sink>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, kind, config, event_types, external_id_field FROM sinks WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|r| sink(r, &self.keys)).transpose()
    }

    /// The newest version written to a sink for an external id.
    pub async fn sink_version(&self, sink_id: &str, external_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT version FROM sink_versions WHERE sink_id = $1 AND external_id = $2")
            .bind(sink_id)
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("version")))
    }

    /// Lease due sink writes; writes to the same record (sink, external id) run one at a time.
    pub async fn claim_sink_writes(&self, limit: i64, lease: Duration) -> Result<Vec<Job>> {
        let mut tx = self.begin(false).await?;
        self.sync_clock().await?;
        let now = self.now_ms();
        // One write per record at a time: the oldest due write of each (sink, external id).
        // PostgreSQL then locks those it takes, skipping any another replica holds.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'running', lease_until = $1, updated_at = $2, lease_token = $5
             WHERE id IN (SELECT id FROM jobs WHERE id IN (
                 SELECT MIN(j.id) FROM jobs j
                 WHERE j.kind = 'sink'
                   AND j.status IN ('pending', 'running')
                   AND ((j.status = 'pending' AND j.run_at <= $3) OR (j.status = 'running' AND j.lease_until < $3))
                   AND NOT EXISTS (
                       SELECT 1 FROM jobs o WHERE o.kind = 'sink' AND o.sink_id = j.sink_id AND o.external_id = j.external_id
                         AND o.id != j.id AND o.status = 'running' AND o.lease_until >= $3)
                 GROUP BY j.sink_id, j.external_id
                 ORDER BY MIN(j.run_at)
                 LIMIT $4) AND {due} {lock})
             RETURNING {JOB_COLUMNS}",
            due = DUE,
            lock = self.backend.skip_locked(),
        )))
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(limit)
        .bind(lease_token())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(job).collect())
    }

    /// Record a delivery attempt, move the job to its next state and keep the endpoint's
    /// failure streak, in one transaction. When the streak has lasted `disable_after`, the
    /// endpoint is disabled and an `endpoint.disabled` event is stored for the tenant's other
    /// endpoints; its id is returned.
    pub async fn record_attempt(
        &self,
        job: &Job,
        state: DeliveryState,
        attempt: &AttemptRecord,
        disable_after: Option<Duration>,
    ) -> Result<Option<String>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = Bookkeeping::Attempt { job: job.clone(), state, record: attempt.clone(), disable_after, reply };
        self.book(request, answer).await
    }

    /// Seal every stored secret that is in the clear or sealed with another key than the
    /// sealing one (a database from before secrets were sealed, or a key rotation); returns
    /// how many. Each value is replaced only if unchanged since read, so replicas starting
    /// together do not undo each other.
    async fn seal_stored_secrets(&self) -> Result<u64> {
        // (table, the row's key column, its secret columns)
        const SEALED: [(&str, &str, &[&str]); 3] = [
            ("provider_configs", "provider", &["secret"]),
            ("endpoints", "id", &["secret", "previous_secret"]),
            ("sinks", "id", &["config"]),
        ];
        let current = format!("enc1:{}:%", self.keys.current_id());
        let mut sealed = 0;
        for (table, key, columns) in SEALED {
            for column in columns {
                // Constants above, never input.
                let select = format!(
                    "SELECT tenant_id, {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL AND {column} NOT LIKE $1"
                );
                let rows = sqlx::query(AssertSqlSafe(select)).bind(&current).fetch_all(&self.pool).await?;
                if rows.is_empty() {
                    continue;
                }
                let update =
                    format!("UPDATE {table} SET {column} = $1 WHERE tenant_id = $2 AND {key} = $3 AND {column} = $4");
                let mut tx = self.begin(true).await?;
                for r in &rows {
                    let (tenant, k, v): (String, String, String) = (r.get("tenant_id"), r.get("k"), r.get("v"));
                    let resealed = self.keys.seal(&tenant, &self.keys.open(&tenant, &v)?);
                    sealed += sqlx::query(AssertSqlSafe(update.clone()))
                        .bind(resealed)
                        .bind(&tenant)
                        .bind(&k)
                        .bind(&v)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
            }
        }
        Ok(sealed)
    }

    /// The time leases are counted in (unix ms): on PostgreSQL the database's clock (measured
    /// every 30 s), on SQLite this process's.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.clock.offset_ms.load(Ordering::Relaxed)
    }

    /// On PostgreSQL, read the database's clock again when the last reading is 30 s old.
    async fn sync_clock(&self) -> Result<()> {
        let local = now_ms();
        if self.backend != Backend::Postgres
            || local - self.clock.measured_at.load(Ordering::Relaxed) < CLOCK_REFRESH_MS
        {
            return Ok(());
        }
        let db: i64 = sqlx::query("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now")
            .fetch_one(&self.pool)
            .await?
            .get("now");
        let after = now_ms();
        self.clock.offset_ms.store(db - (local + after) / 2, Ordering::Relaxed);
        self.clock.measured_at.store(after, Ordering::Relaxed);
        Ok(())
    }

    /// Move the lease clock by `ms` (tests: a lease running out without waiting for it).
    pub fn advance_lease_clock(&self, ms: i64) {
        self.clock.offset_ms.fetch_add(ms, Ordering::Relaxed);
        self.clock.measured_at.store(i64::MAX / 2, Ordering::Relaxed);
    }

    /// Put a claimed job back, untried, to run at `run_at` (rate limiting, a full share):
    /// only while this worker still holds its lease.
    pub async fn defer(&self, job: &Job, run_at: i64) -> Result<()> {
        let mut tx = self.begin(false).await?;
        let held = sqlx::query(
            "UPDATE jobs SET status = 'pending', run_at = $1, lease_until = NULL, updated_at = $2
             WHERE id = $3 AND status = 'running' AND lease_token = $4",
        )
        .bind(run_at)
        .bind(now_ms())
        .bind(job.id)
        .bind(job.lease)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        if held { Ok(()) } else { Err(StoreError::StaleLease(job.id)) }
    }

    /// Extend this worker's lease on a running job to `lease` from now; when the lease now
    /// ends, or `StaleLease` when the job is no longer this worker's.
    pub async fn renew(&self, job: &Job, lease: Duration) -> Result<i64> {
        self.sync_clock().await?;
        let until = self.now_ms() + lease.as_millis() as i64;
        let mut tx = self.begin(false).await?;
        let held =
            sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND status = 'running' AND lease_token = $3")
                .bind(until)
                .bind(job.id)
                .bind(job.lease)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        tx.commit().await?;
        if held { Ok(until) } else { Err(StoreError::StaleLease(job.id)) }
    }

    /// Lease due deliveries: only to enabled endpoints, none to the endpoints in `exclude`
    /// (saturated or rate-limited here), and for an ordering key only the unfinished one of the
    /// earliest event, once no earlier event of the tenant is still in the plugin stage.
    pub async fn claim_deliveries(&self, limit: i64, lease: Duration, exclude: &[String]) -> Result<Vec<Job>> {
        let mut tx = self.begin(false).await?;
        self.sync_clock().await?;
        let now = self.now_ms();
        let excluded = serde_json::to_string(exclude).expect("strings serialize");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'running', lease_until = $1, updated_at = $2, lease_token = $7
             WHERE id IN (
                 SELECT j.id FROM jobs j JOIN endpoints e ON e.id = j.endpoint_id AND e.tenant_id = j.tenant_id
                 WHERE j.kind = 'delivery' AND e.enabled = 1 AND j.status IN ('pending', 'running')
                   AND ((j.status = 'pending' AND j.run_at <= $3) OR (j.status = 'running' AND j.lease_until < $4))
                   AND j.endpoint_id NOT IN (SELECT value FROM {excluded})
                   AND (j.ordering_key IS NULL OR (
                       NOT EXISTS (
                           SELECT 1 FROM jobs o WHERE o.kind = 'delivery' AND o.endpoint_id = j.endpoint_id
                             AND o.ordering_key = j.ordering_key AND o.status IN ('pending', 'running')
                             AND (o.event_seq < j.event_seq OR (o.event_seq = j.event_seq AND o.id < j.id)))
                       -- an earlier event still in the plugin stage may yet produce a delivery for this key
                       AND NOT EXISTS (
                           SELECT 1 FROM jobs p WHERE p.tenant_id = j.tenant_id AND p.kind = 'plugin'
                             AND p.status IN ('pending', 'running') AND p.event_seq < j.event_seq)))
                 ORDER BY j.run_at, j.id LIMIT $6 {lock})
             RETURNING {JOB_COLUMNS}",
            excluded = self.backend.json_values("$5"),
            lock = self.backend.pick("", "FOR UPDATE OF j SKIP LOCKED"),
        )))
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(excluded)
        .bind(limit)
        .bind(lease_token())
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs: Vec<Job> = rows.iter().map(job).collect();
        // Bodies shared by several deliveries, read once for the whole claim.
        let shared: Vec<i64> = jobs.iter().filter(|j| j.body.is_none()).filter_map(|j| j.body_id).collect();
        if !shared.is_empty() {
            let marks: Vec<String> = (1..=shared.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT id, body FROM bodies WHERE id IN ({})", marks.join(", "));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in &shared {
                q = q.bind(*id);
            }
            let bodies: HashMap<i64, String> =
                q.fetch_all(&mut *tx).await?.iter().map(|r| (r.get("id"), r.get("body"))).collect();
            for j in jobs.iter_mut().filter(|j| j.body.is_none()) {
                j.body = j.body_id.and_then(|id| bodies.get(&id).cloned());
            }
        }
        tx.commit().await?;
        Ok(jobs)
    }

    /// Deliveries of a tenant, newest first, optionally by status (`pending`, `succeeded`,
    /// `failed`) and endpoint.
    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        status: Option<&str>,
        endpoint_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let statuses: &[&str] = match status {
            None => &["pending", "running", "succeeded", "failed", "dead"],
            Some("pending") => &["pending", "running"],
            Some("succeeded") => &["succeeded"],
            Some("failed") => &["failed", "dead"],
            Some(_) => &[],
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, event_id, endpoint_id, message_id, status, attempts, run_at, last_error, replay, manual_retries,
                 created_at, updated_at
             FROM jobs WHERE kind = 'delivery' AND tenant_id = $1 AND status IN (SELECT value FROM {statuses})
               AND ($3 IS NULL OR endpoint_id = $4)
             ORDER BY id DESC LIMIT $5",
            statuses = self.backend.json_values("$2"),
        )))
        .bind(tenant.as_str())
        .bind(serde_json::to_string(statuses).expect("strings serialize"))
        .bind(endpoint_id)
        .bind(endpoint_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let raw: String = r.get("status");
                let status = match raw.as_str() {
                    "pending" | "running" => "pending",
                    "dead" => "failed",
                    other => other,
                };
                Delivery {
                    id: r.get("id"),
                    event_id: r.get("event_id"),
                    endpoint_id: r.get::<Option<String>, _>("endpoint_id").unwrap_or_default(),
                    message_id: r.get::<Option<String>, _>("message_id").unwrap_or_default(),
                    status: status.to_string(),
                    dead_letter: raw == "dead",
                    attempts: r.get("attempts"),
                    next_attempt_at: (status == "pending").then(|| r.get("run_at")),
                    last_error: r.get("last_error"),
                    replay: r.get::<i64, _>("replay") != 0,
                    manual_retries: r.get("manual_retries"),
                    created_at: r.get("created_at"),
                    updated_at: r.get("updated_at"),
                }
            })
            .collect())
    }

    /// Queue a failed delivery again, now, with a fresh retry schedule. `None` when there is no
    /// such delivery, `Some(false)` when it has not failed.
    pub async fn retry_delivery(&self, tenant: &TenantId, id: i64) -> Result<Option<bool>> {
        let mut tx = self.begin(true).await?;
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET status = 'pending', run_at = $1, attempts = 0, manual_retries = manual_retries + 1,
                 lease_until = NULL, updated_at = $2
             WHERE kind = 'delivery' AND tenant_id = $3 AND id = $4 AND status IN ('failed', 'dead')",
        )
        .bind(now)
        .bind(now)
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(Some(true));
        }
        let exists = sqlx::query("SELECT 1 FROM jobs WHERE kind = 'delivery' AND tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        tx.commit().await?;
        Ok(exists.then_some(false))
    }

    /// Queue again every failed delivery of an endpoint created at or after `since` (unix ms).
    pub async fn recover(&self, tenant: &TenantId, endpoint_id: &str, since: i64) -> Result<u64> {
        let mut tx = self.begin(true).await?;
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET status = 'pending', run_at = $1, attempts = 0, manual_retries = manual_retries + 1,
                 lease_until = NULL, updated_at = $2
             WHERE kind = 'delivery' AND tenant_id = $3 AND endpoint_id = $4 AND status IN ('failed', 'dead') AND created_at >= $5",
        )
        .bind(now)
        .bind(now)
        .bind(tenant.as_str())
        .bind(endpoint_id)
        .bind(since)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// Queue a new delivery of the event to an endpoint, marked as a replay: the envelopes
    /// the event produced before (as the plugin shaped them), or `fallback` when it produced none.
    pub async fn replay(
        &self,
        tenant: &TenantId,
        event_id: &str,
        endpoint_id: &str,
        fallback: NewDelivery,
    ) -> Result<Vec<i64>> {
        let now = now_ms();
        let mut tx = self.begin(true).await?;
        let previous = sqlx::query(
            "SELECT message_id, COALESCE(j.body, (SELECT b.body FROM bodies b WHERE b.id = j.body_id)) AS body, ordering_key
             FROM jobs j WHERE kind = 'delivery' AND tenant_id = $1 AND event_id = $2
               AND id = (SELECT MIN(id) FROM jobs f WHERE f.kind = 'delivery' AND f.tenant_id = $1 AND f.event_id = $2
                           AND f.message_id = j.message_id)
             ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut deliveries: Vec<NewDelivery> = previous
            .into_iter()
            .map(|r| NewDelivery {
                endpoint_id: endpoint_id.to_string(),
                message_id: r.get("message_id"),
                body: r.get::<String, _>("body").into(),
                ordering_key: r.get("ordering_key"),
            })
            .collect();
        if deliveries.is_empty() {
            deliveries.push(fallback);
        }
        let mut ids = Vec::new();
        for d in &deliveries {
            ids.push(insert_delivery(&mut *tx, tenant, event_id, d, None, true, now).await?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Replays made (event replays' deliveries and receipt replays' events), for metrics.
    pub async fn replay_count(&self) -> Result<i64> {
        let n: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE kind = 'delivery' AND replay = 1)
                  + (SELECT COUNT(*) FROM events WHERE replay_of IS NOT NULL) AS n",
        )
        .fetch_one(&self.pool)
        .await?
        .get("n");
        Ok(n)
    }

    /// Delivery attempts for one event of a tenant, in order.
    pub async fn attempts(&self, tenant: &TenantId, event_id: &str) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT job_id, event_id, endpoint_id, attempt, status_code, error, response_excerpt, duration_ms, outcome,
                 attempted_at
             FROM delivery_attempts WHERE tenant_id = $1 AND event_id = $2 ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Attempt {
                delivery_id: r.get("job_id"),
                event_id: r.get("event_id"),
                endpoint_id: r.get("endpoint_id"),
                attempt: r.get("attempt"),
                status_code: r.get("status_code"),
                error: r.get("error"),
                response_excerpt: r.get("response_excerpt"),
                duration_ms: r.get("duration_ms"),
                outcome: r.get("outcome"),
                attempted_at: r.get("attempted_at"),
            })
            .collect())
    }

    /// Count of jobs by (kind, status), for health and tests.
    /// Per job kind, how old (ms) the oldest pending job is.
    pub async fn oldest_pending(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, MIN(created_at) AS oldest FROM jobs WHERE status = 'pending' GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        let now = now_ms();
        Ok(rows.into_iter().map(|r| (r.get("kind"), now - r.get::<i64, _>("oldest"))).collect())
    }

    pub async fn job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows =
            sqlx::query("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status ORDER BY kind, status")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| (r.get("kind"), r.get("status"), r.get("n"))).collect())
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

/// A fresh lease token for one claim.
fn lease_token() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// Bytes of a rejected request's body kept as evidence.
pub const REJECTED_BODY_KEPT: usize = 1024;

async fn insert_receipt<'e, E: sqlx::Executor<'e, Database = Any>>(
    exec: E,
    r: &ReceiptRecord,
    verdict: &str,
    reason: Option<&str>,
    dedupe_key: Option<&str>,
    event_id: Option<&str>,
) -> Result<()> {
    // A rejected request keeps the first KiB of its body, its length and digest.
    let (body, len, digest) = if verdict == "rejected" {
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&r.body));
        (&r.body[..r.body.len().min(REJECTED_BODY_KEPT)], Some(r.body.len() as i64), Some(digest))
    } else {
        (&r.body[..], None, None)
    };
    sqlx::query(
        "INSERT INTO receipts (tenant_id, provider, route, headers, body, received_at, verdict, reason, dedupe_key, event_id,
             body_len, body_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.tenant_id.as_str())
    .bind(r.provider)
    .bind(&r.route)
    .bind(r.headers.to_string())
    .bind(body)
    .bind(r.received_at)
    .bind(verdict)
    .bind(reason)
    .bind(dedupe_key)
    .bind(event_id)
    .bind(len)
    .bind(digest)
    .execute(exec)
    .await?;
    Ok(())
}

fn job(r: &AnyRow) -> Job {
    Job {
        id: r.get("id"),
        tenant_id: TenantId::from_stored(r.get("tenant_id")),
        event_id: r.get("event_id"),
        endpoint_id: r.get("endpoint_id"),
        message_id: r.get("message_id"),
        body: r.get("body"),
        body_id: r.get("body_id"),
        lease: r.get("lease_token"),
        attempts: r.get("attempts"),
        sink_id: r.get("sink_id"),
        external_id: r.get("external_id"),
        record_version: r.get("record_version"),
    }
}

/// Insert a delivery job; with `shared`, its body is that row of `bodies`, not its own.
async fn insert_delivery<'e, E: sqlx::Executor<'e, Database = Any>>(
    exec: E,
    tenant: &TenantId,
    event_id: &str,
    d: &NewDelivery,
    shared: Option<i64>,
    replay: bool,
    now: i64,
) -> Result<i64> {
    let id = sqlx::query(
        "INSERT INTO jobs (kind, tenant_id, event_id, event_seq, endpoint_id, message_id, body, body_id, ordering_key, replay,
             status, run_at, created_at, updated_at)
         VALUES ('delivery', $1, $2, (SELECT seq FROM events WHERE tenant_id = $3 AND id = $4), $5, $6, $7, $13, $8, $9,
             'pending', $10, $11, $12)
         RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(event_id)
    .bind(tenant.as_str())
    .bind(event_id)
    .bind(&d.endpoint_id)
    .bind(&d.message_id)
    .bind(shared.is_none().then(|| d.body.to_string()))
    .bind(&d.ordering_key)
    .bind(replay as i64)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(shared)
    .fetch_one(exec)
    .await?
    .get("id");
    Ok(id)
}

/// Insert a canonical event with its plugin job; false when its dedupe key is known.
async fn insert_event_with_job(
    tx: &mut sqlx::Transaction<'_, Any>,
    event: &CanonicalEvent,
    dedupe_key: &str,
    now: i64,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO events (id, tenant_id, event_type, occurred_at, source, is_test, payload, dedupe_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
    )
    .bind(&event.id)
    .bind(event.tenant_id.as_str())
    .bind(&event.event_type)
    .bind(event.occurred_at)
    .bind(event.source)
    .bind(event.is_test as i64)
    .bind(event.payload.to_string())
    .bind(dedupe_key)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        sqlx::query(
            "INSERT INTO jobs (kind, tenant_id, event_id, event_seq, status, run_at, created_at, updated_at)
             VALUES ('plugin', $1, $2, (SELECT seq FROM events WHERE id = $3), 'pending', $4, $5, $6)",
        )
        .bind(event.tenant_id.as_str())
        .bind(&event.id)
        .bind(&event.id)
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(inserted)
}

/// Disable an endpoint whose attempts have all failed since `since`, and store the
/// `endpoint.disabled` event (the pipeline delivers it to the tenant's other endpoints).
async fn disable_endpoint(
    tx: &mut sqlx::Transaction<'_, Any>,
    tenant: &TenantId,
    endpoint_id: &str,
    since: i64,
    now: i64,
) -> Result<Option<String>> {
    let reason = format!("every delivery attempt failed for {} s", (now - since) / 1000);
    let row = sqlx::query(
        "UPDATE endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4 AND enabled = 1
         RETURNING url",
    )
    .bind(&reason)
    .bind(now)
    .bind(tenant.as_str())
    .bind(endpoint_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let url: String = row.get("url");
    let event = CanonicalEvent {
        id: crate::new_id("evt"),
        tenant_id: tenant.clone(),
        event_type: "endpoint.disabled".into(),
        occurred_at: now / 1000,
        source: "hookhost",
        is_test: false,
        payload: serde_json::json!({
            "endpoint_id": endpoint_id,
            "url": url,
            "reason": reason,
            "failing_since": since / 1000,
        }),
    };
    insert_event_with_job(tx, &event, &format!("hookhost:endpoint.disabled:{endpoint_id}:{now}"), now).await?;
    Ok(Some(event.id))
}

fn sink(r: &AnyRow, keys: &Keyring) -> Result<Sink> {
    let tenant: String = r.get("tenant_id");
    let config = keys.open(&tenant, &r.get::<String, _>("config"))?;
    let types: String = r.get("event_types");
    Ok(Sink {
        id: r.get("id"),
        tenant_id: TenantId::from_stored(r.get("tenant_id")),
        name: r.get("name"),
        kind: r.get("kind"),
        config: serde_json::from_str(&config).map_err(|e| StoreError::Corrupt(format!("sink config: {e}")))?,
        event_types: serde_json::from_str(&types).map_err(|e| StoreError::Corrupt(format!("sink event_types: {e}")))?,
        external_id_field: r.get("external_id_field"),
    })
}

fn stored_event(r: &AnyRow) -> Result<StoredEvent> {
    let payload: String = r.get("payload");
    let source: String = r.get("source");
    Ok(StoredEvent {
        seq: r.get("seq"),
        event: CanonicalEvent {
            id: r.get("id"),
            tenant_id: TenantId::from_stored(r.get("tenant_id")),
            event_type: r.get("event_type"),
            occurred_at: r.get("occurred_at"),
            source: crate::normalize::source_name(&source)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown event source {source:?}")))?,
            is_test: r.get::<i64, _>("is_test") != 0,
            payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?,
        },
        payload_json: payload,
        status: r.get("status"),
        error: r.get("error"),
    })
}

fn endpoint(r: &AnyRow, keys: &Keyring) -> Result<Endpoint> {
    let tenant: String = r.get("tenant_id");
    let open = |column: &str| r.get::<Option<String>, _>(column).map(|s| keys.open(&tenant, &s)).transpose();
    let types: String = r.get("event_types");
    let headers: String = r.get("headers");
    Ok(Endpoint {
        id: r.get("id"),
        tenant_id: TenantId::from_stored(r.get("tenant_id")),
        url: r.get("url"),
        event_types: serde_json::from_str(&types)
            .map_err(|e| StoreError::Corrupt(format!("endpoint event_types: {e}")))?,
        headers: serde_json::from_str(&headers).map_err(|e| StoreError::Corrupt(format!("endpoint headers: {e}")))?,
        secret: open("secret")?.unwrap_or_default(),
        enabled: r.get::<i64, _>("enabled") != 0,
        description: r.get("description"),
        signing: r.get("signing"),
        timeout_ms: r.get("timeout_ms"),
        ordered_by: r.get("ordered_by"),
        rate_limit_per_s: r.get("rate_limit_per_s"),
        previous_secret: open("previous_secret")?,
        previous_secret_until: r.get("previous_secret_until"),
        disabled_reason: r.get("disabled_reason"),
        failing_since: r.get("failing_since"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same keys for every store of a test (two stores on one database are two replicas).
    fn test_keys() -> Keyring {
        Keyring::parse("dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMzJieXQ=").unwrap()
    }

    fn temp_db() -> String {
        let dir = std::env::temp_dir().join(format!("hookhost-store-{}-{}", std::process::id(), crate::new_id("t")));
        std::fs::create_dir_all(&dir).unwrap();
        format!("sqlite://{}", dir.join("s.db").display())
    }

    /// A new, empty PostgreSQL database on `HOOKHOST_TEST_PG` (default: the server on
    /// 127.0.0.1), named like the end-to-end tests' so their sweep drops it later.
    async fn postgres_db() -> Result<String, sqlx::Error> {
        use sqlx::Connection;
        let admin =
            std::env::var("HOOKHOST_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        let name = format!("hh_test_{}_{}", std::process::id(), crate::new_id("unit").to_lowercase());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        let (server, _) = admin.rsplit_once('/').expect("a postgres URL ends with /database");
        Ok(format!("{server}/{name}"))
    }

    /// The databases every store test runs on: SQLite, and PostgreSQL unless no server answers
    /// (then said loudly).
    async fn databases() -> Vec<String> {
        let mut urls = vec![temp_db()];
        match postgres_db().await {
            Ok(url) => urls.push(url),
            Err(e) => eprintln!("!!! SKIPPING the PostgreSQL half of this store test: no server answers ({e})"),
        }
        urls
    }

    fn receipt(tenant: &TenantId) -> ReceiptRecord {
        ReceiptRecord {
            tenant_id: tenant.clone(),
            provider: "stripe",
            route: "/hooks/x/stripe".into(),
            headers: serde_json::json!({}),
            body: b"{}".to_vec(),
            received_at: now_ms(),
        }
    }

    fn event(tenant: &TenantId, n: usize) -> CanonicalEvent {
        CanonicalEvent {
            id: crate::new_id("evt"),
            tenant_id: tenant.clone(),
            event_type: "billing.stripe.test".into(),
            occurred_at: 0,
            source: "stripe",
            is_test: false,
            payload: serde_json::json!({ "n": n }),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_accepts_commit_together_and_dedupe_within_a_batch() {
        for url in databases().await {
            accepts_dedupe_on(&url).await;
        }
    }

    async fn accepts_dedupe_on(url: &str) {
        let store = Store::connect(url, test_keys()).await.unwrap();
        let tenant = TenantId::generate();
        store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (store, tenant) = (store.clone(), tenant.clone());
            tasks.push(tokio::spawn(async move {
                // 50 distinct identities, each sent four times.
                store.accept(&receipt(&tenant), &event(&tenant, i), &format!("stripe:evt_{}", i % 50)).await.unwrap()
            }));
        }
        let mut fresh = std::collections::HashMap::new();
        let mut duplicates = 0;
        for t in tasks {
            let a = t.await.unwrap();
            if a.duplicate {
                duplicates += 1;
            } else {
                fresh.insert(a.event_id, ());
            }
        }
        assert_eq!(fresh.len(), 50);
        assert_eq!(duplicates, 150);
        assert_eq!(store.events_page(&tenant, 0, 1000).await.unwrap().len(), 50);
        assert_eq!(store.receipts(&tenant, &ReceiptFilter::default(), 1000).await.unwrap().len(), 200);
        let dup = ReceiptFilter { verdict: Some("duplicate".into()), ..Default::default() };
        assert_eq!(store.receipts(&tenant, &dup, 1000).await.unwrap().len(), 150);
        let counts = store.job_counts().await.unwrap();
        assert_eq!(counts, vec![("plugin".to_string(), "pending".to_string(), 50)]);
    }

    /// A write that cannot be applied (here an event id already taken under another dedupe
    /// key) fails alone: the provider requests committed with it are still acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_in_a_group_commit_fails_alone() {
        for url in databases().await {
            let store = Store::connect(&url, test_keys()).await.unwrap();
            let tenant = TenantId::generate();
            store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
            let first = event(&tenant, 0);
            store.accept(&receipt(&tenant), &first, "stripe:evt_first").await.unwrap();
            let tasks: Vec<_> = (1..=30)
                .map(|i| {
                    let (store, tenant) = (store.clone(), tenant.clone());
                    let mut e = event(&tenant, i);
                    if i == 13 {
                        e.id = first.id.clone();
                    }
                    tokio::spawn(
                        async move { (i, store.accept(&receipt(&tenant), &e, &format!("stripe:evt_{i}")).await) },
                    )
                })
                .collect();
            for t in tasks {
                let (i, outcome) = t.await.unwrap();
                assert_eq!(outcome.is_ok(), i != 13, "{url}: write {i} -> {outcome:?}");
            }
            assert_eq!(store.events_page(&tenant, 0, 1000).await.unwrap().len(), 30, "{url}");
        }
    }

    /// Every change to what routes a tenant's events bumps its configuration revision (read
    /// with each event); an endpoint's failure streak and secret rotation do not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routing_changes_bump_the_config_revision() {
        for url in databases().await {
            let store = Store::connect(&url, test_keys()).await.unwrap();
            let (tenant, other) = (TenantId::generate(), TenantId::generate());
            store.create_tenant(&tenant, "t", "hash-a", "hk_test").await.unwrap();
            store.create_tenant(&other, "o", "hash-b", "hk_test").await.unwrap();
            let accepted = store.accept(&receipt(&tenant), &event(&tenant, 0), "stripe:evt_rev").await.unwrap();
            let rev = || async {
                store.event_with_config_rev(&tenant, &accepted.event_id).await.unwrap().expect("the event").1
            };
            let mut last = rev().await;
            fn changed(last: &mut i64, now: i64, what: &str) {
                assert!(now > *last, "{what} must bump the revision ({last} -> {now})");
                *last = now;
            }
            let mut ep = Endpoint::new(tenant.clone(), "https://example.com/hook".into(), "whsec_a".into());
            assert_eq!(store.create_endpoint(&ep, 1).await.unwrap(), Insert::Created);
            let mut second = ep.clone();
            second.id = crate::new_id("ep");
            assert_eq!(store.create_endpoint(&second, 1).await.unwrap(), Insert::Full, "{url}: the cap");
            changed(&mut last, rev().await, "creating an endpoint");
            ep.enabled = false;
            store.update_endpoint(&ep).await.unwrap();
            changed(&mut last, rev().await, "disabling an endpoint");
            store.rotate_secret(&tenant, &ep.id, "whsec_b", now_ms()).await.unwrap();
            assert_eq!(rev().await, last, "{url}: rotating a secret is not routing");
            let sink = Sink {
                id: crate::new_id("snk"),
                tenant_id: tenant.clone(),
                name: "crm".into(),
                kind: "http-upsert".into(),
                config: serde_json::json!({ "url": "https://example.com/crm" }),
                event_types: vec!["call.*".into()],
                external_id_field: Some("call_id".into()),
            };
            assert_eq!(store.create_sink(&sink, 5).await.unwrap(), Insert::Created);
            assert_eq!(store.create_sink(&sink, 5).await.unwrap(), Insert::Duplicate);
            changed(&mut last, rev().await, "creating a sink");
            let q = PluginQuotas { plugins: 1, versions: 2, bytes: 9 };
            store.add_plugin_version(&tenant, "p", "d1", b"wasm", true, q).await.unwrap();
            changed(&mut last, rev().await, "uploading and activating a plugin");
            store.add_plugin_version(&tenant, "p", "d2", b"wasm2", false, q).await.unwrap();
            changed(&mut last, rev().await, "uploading a version");
            // The quotas, counted in the database: versions, plugins, bytes; the same bytes again
            // are the existing version, whatever the quota.
            let over = |u: Upload| match u {
                Upload::OverQuota(quota, _) => quota,
                other => panic!("{url}: {other:?}"),
            };
            assert_eq!(
                over(store.add_plugin_version(&tenant, "p", "d3", b"w", false, q).await.unwrap()),
                "plugin_versions"
            );
            assert_eq!(over(store.add_plugin_version(&tenant, "q", "d4", b"w", false, q).await.unwrap()), "plugins");
            let roomy = PluginQuotas { versions: 3, ..q };
            assert_eq!(
                over(store.add_plugin_version(&tenant, "p", "d5", b"w", false, roomy).await.unwrap()),
                "plugin_bytes"
            );
            assert!(matches!(
                store.add_plugin_version(&tenant, "p", "d1", b"wasm", false, q).await.unwrap(),
                Upload::Existing(_)
            ));
            assert_eq!(
                store.plugin_quota(&tenant, "p", "d9", 1, q).await.unwrap().map(|o| o.0),
                Some("plugin_versions")
            );
            assert_eq!(store.delete_plugin_version(&tenant, "p", 1).await.unwrap(), VersionDelete::Active);
            assert_eq!(store.delete_plugin_version(&tenant, "p", 7).await.unwrap(), VersionDelete::NotFound);
            store.activate_plugin(&tenant, "p", 2).await.unwrap();
            changed(&mut last, rev().await, "activating a version");
            store.set_chain(&tenant, Some(&[])).await.unwrap();
            changed(&mut last, rev().await, "setting the chain");
            store.set_chain(&tenant, None).await.unwrap();
            changed(&mut last, rev().await, "removing the chain");
            store.set_limit_overrides(&tenant, &serde_json::json!({ "fuel": 1 })).await.unwrap();
            changed(&mut last, rev().await, "setting limits");
            store.delete_plugin(&tenant, "p").await.unwrap();
            changed(&mut last, rev().await, "deleting a plugin");
            store.delete_endpoint(&tenant, &ep.id).await.unwrap();
            changed(&mut last, rev().await, "deleting an endpoint");
            // Another tenant's changes leave this one's revision alone.
            store.set_chain(&other, Some(&[])).await.unwrap();
            assert_eq!(rev().await, last, "{url}: another tenant's change");
        }
    }

    /// Finished jobs sent together commit together; one that cannot be applied (its event is
    /// gone, so its delivery has no event to follow) fails alone and the others still commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_request_in_a_bookkeeping_batch_fails_alone() {
        for url in databases().await {
            let store = Store::connect(&url, test_keys()).await.unwrap();
            let tenant = TenantId::generate();
            store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
            for i in 0..21 {
                store.accept(&receipt(&tenant), &event(&tenant, i), &format!("stripe:evt_{i}")).await.unwrap();
            }
            let mut jobs = store.claim(JobKind::Plugin, 100, Duration::from_secs(60)).await.unwrap();
            assert_eq!(jobs.len(), 21);
            // A job of its own (its lease holds) whose delivery names an event that is gone.
            let mut bogus = jobs.pop().unwrap();
            bogus.event_id = "evt_gone".into();
            let bogus_id = bogus.id;
            jobs.insert(7, bogus);
            let tasks: Vec<_> = jobs
                .iter()
                .map(|job| {
                    let delivery = NewDelivery {
                        endpoint_id: "ep_x".into(),
                        message_id: job.event_id.clone(),
                        body: "{}".into(),
                        ordering_key: None,
                    };
                    let outputs = Outputs { deliveries: vec![delivery], sink_writes: Vec::new() };
                    let (store, job) = (store.clone(), job.clone());
                    tokio::spawn(async move { store.finish_without_plugin(&job, outputs).await })
                })
                .collect();
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            for (job, outcome) in jobs.iter().zip(&outcomes) {
                assert_eq!(outcome.is_ok(), job.id != bogus_id, "{url}: job {} -> {outcome:?}", job.id);
            }
            let counts = store.job_counts().await.unwrap();
            assert!(counts.contains(&("delivery".into(), "pending".into(), 20)), "{url}: {counts:?}");
            assert!(counts.contains(&("plugin".into(), "succeeded".into(), 20)), "{url}: {counts:?}");
        }
    }

    /// A worker whose lease ran out and was claimed again (the lease clock moved on, not slept
    /// for) writes nothing: its finish, attempt, defer and renewal are refused; the new holder's
    /// result stands, and a late attempt can never reopen a finished job.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_whose_lease_was_taken_over_writes_nothing() {
        for url in databases().await {
            let store = Store::connect(&url, test_keys()).await.unwrap();
            let tenant = TenantId::generate();
            store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
            store.accept(&receipt(&tenant), &event(&tenant, 1), "stripe:evt_fence").await.unwrap();
            let lease = Duration::from_secs(60);
            let first = store.claim(JobKind::Plugin, 10, lease).await.unwrap().remove(0);
            assert!(store.claim(JobKind::Plugin, 10, lease).await.unwrap().is_empty(), "{url}: leased");
            store.advance_lease_clock(61_000);
            let second = store.claim(JobKind::Plugin, 10, lease).await.unwrap().remove(0);
            assert_eq!(second.id, first.id);
            assert_ne!(second.lease, first.lease, "{url}: a fresh token");

            let outputs = |n: usize| Outputs {
                deliveries: (0..n)
                    .map(|i| NewDelivery {
                        endpoint_id: format!("ep_{i}"),
                        message_id: first.event_id.clone(),
                        body: "{}".into(),
                        ordering_key: None,
                    })
                    .collect(),
                sink_writes: Vec::new(),
            };
            let stale = |r: Result<()>| matches!(r, Err(StoreError::StaleLease(id)) if id == first.id);
            assert!(stale(store.finish_without_plugin(&first, outputs(3)).await), "{url}");
            assert!(stale(store.defer(&first, now_ms()).await), "{url}");
            assert!(matches!(store.renew(&first, lease).await, Err(StoreError::StaleLease(_))), "{url}");
            assert!(store.renew(&second, lease).await.is_ok(), "{url}: the holder renews");
            store.finish_without_plugin(&second, outputs(1)).await.unwrap();
            let counts = store.job_counts().await.unwrap();
            assert!(
                counts.contains(&("delivery".into(), "pending".into(), 1)),
                "{url}: only the holder's output: {counts:?}"
            );
            assert!(counts.contains(&("plugin".into(), "succeeded".into(), 1)), "{url}: {counts:?}");

            // A delivery finished by its new holder is not reopened by the old one's attempt.
            store.advance_lease_clock(1);
            let d1 = store.claim(JobKind::Delivery, 10, lease).await.unwrap().remove(0);
            store.advance_lease_clock(61_000);
            let d2 = store.claim(JobKind::Delivery, 10, lease).await.unwrap().remove(0);
            let ok = AttemptRecord { status_code: Some(200), ..Default::default() };
            store.record_attempt(&d2, DeliveryState::Succeeded, &ok, None).await.unwrap();
            let late = AttemptRecord { status_code: Some(500), ..Default::default() };
            let r = store.record_attempt(&d1, DeliveryState::RetryAt(now_ms()), &late, None).await;
            assert!(matches!(r, Err(StoreError::StaleLease(_))), "{url}: {r:?}");
            let counts = store.job_counts().await.unwrap();
            assert!(counts.contains(&("delivery".into(), "succeeded".into(), 1)), "{url}: never reopened: {counts:?}");
            assert_eq!(store.attempts(&tenant, &first.event_id).await.unwrap().len(), 1, "{url}: one attempt recorded");
        }
    }

    /// Rows written before secrets were sealed are sealed when the store opens; a new key
    /// put first (the old one kept to open) seals every secret again; both keep working.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stored_secrets_are_sealed_at_start_and_again_under_a_new_key() {
        for url in databases().await {
            let store = Store::connect(&url, test_keys()).await.unwrap();
            let tenant = TenantId::generate();
            store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
            // As an older version wrote it: in the clear.
            sqlx::query("INSERT INTO provider_configs (tenant_id, provider, secret, updated_at) VALUES ($1, 'twilio', 'plain-token', 0)")
                .bind(tenant.as_str())
                .execute(&store.write)
                .await
                .unwrap();
            store.close().await;
            let store = Store::connect(&url, test_keys()).await.unwrap();
            let raw: String = sqlx::query_scalar("SELECT secret FROM provider_configs WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert!(raw.starts_with(&format!("enc1:{}:", test_keys().current_id())), "{url}: {raw}");
            let secret = |s: &Store| {
                let (s, t) = (s.clone(), tenant.clone());
                async move { s.tenant_with_secret(t.as_str(), "twilio").await.unwrap().unwrap().1.unwrap() }
            };
            assert_eq!(secret(&store).await, "plain-token");
            store.close().await;
            let rotated =
                Keyring::parse(&format!("{},dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMzJieXQ=", crate::secrets::new_key()))
                    .unwrap();
            let new_id = rotated.current_id().to_string();
            let store = Store::connect(&url, rotated).await.unwrap();
            let raw: String = sqlx::query_scalar("SELECT secret FROM provider_configs WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert!(raw.starts_with(&format!("enc1:{new_id}:")), "{url}: sealed again under the new key");
            assert_eq!(secret(&store).await, "plain-token");
            store.close().await;
            let old_only = Store::connect(&url, test_keys()).await;
            assert!(matches!(old_only, Err(StoreError::Secret(_))), "{url}: the old key alone cannot open them");
        }
    }

    /// Retention deletes what is old and finished, keeps what is pending whatever its age, and
    /// keeps rejected receipts for their own, shorter time (time passed in, not slept for).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_deletes_old_rows_and_keeps_pending_ones() {
        const DAY: i64 = 86_400_000;
        for url in databases().await {
            let store = Store::connect(&url, test_keys()).await.unwrap();
            let tenant = TenantId::generate();
            store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
            let lease = Duration::from_secs(60);
            // Event 1: processed, delivered to two endpoints (one shared body), a plugin run.
            let done = store.accept(&receipt(&tenant), &event(&tenant, 1), "stripe:evt_old").await.unwrap();
            let job = store.claim(JobKind::Plugin, 10, lease).await.unwrap().remove(0);
            let body: Arc<str> = "{}".into();
            let deliveries = (0..2)
                .map(|i| NewDelivery {
                    endpoint_id: format!("ep_{i}"),
                    message_id: done.event_id.clone(),
                    body: body.clone(),
                    ordering_key: None,
                })
                .collect();
            let run = PluginRun {
                plugin_name: "p".into(),
                plugin_version: 1,
                outcome: "ok".into(),
                wall_us: 1,
                ran_at: now_ms(),
                ..Default::default()
            };
            let finished = PluginJobDone {
                runs: vec![run],
                status: "processed",
                outputs: Outputs { deliveries, sink_writes: Vec::new() },
                ..Default::default()
            };
            store.finish_plugin_job(&job, finished).await.unwrap();
            for d in store.claim(JobKind::Delivery, 10, lease).await.unwrap() {
                let ok = AttemptRecord { status_code: Some(200), ..Default::default() };
                store.record_attempt(&d, DeliveryState::Succeeded, &ok, None).await.unwrap();
            }
            // Event 2: still waiting for its plugin. A rejected request.
            let waiting = store.accept(&receipt(&tenant), &event(&tenant, 2), "stripe:evt_waiting").await.unwrap();
            store.record_rejected(&receipt(&tenant), "bad signature").await.unwrap();

            let retention =
                Retention { keep: Duration::from_secs(30 * 86_400), keep_rejected: Duration::from_secs(7 * 86_400) };
            let now = now_ms();
            assert_eq!(store.sweep(now + DAY, retention).await.unwrap().total(), 0, "{url}: nothing is old yet");
            let swept = store.sweep(now + 8 * DAY, retention).await.unwrap();
            assert_eq!(swept, Swept { receipts: 1, ..Default::default() }, "{url}: the rejected receipt, alone");
            let swept = store.sweep(now + 31 * DAY, retention).await.unwrap();
            assert_eq!(
                swept,
                Swept { receipts: 1, events: 1, jobs: 3, attempts: 2, plugin_runs: 1, bodies: 1 },
                "{url}: the finished event and all of it"
            );
            assert!(store.event(&tenant, &done.event_id).await.unwrap().is_none(), "{url}");
            assert!(store.event(&tenant, &waiting.event_id).await.unwrap().is_some(), "{url}: pending, kept");
            let counts = store.job_counts().await.unwrap();
            assert!(counts.contains(&("plugin".into(), "pending".into(), 1)), "{url}: its job kept: {counts:?}");
            let receipts = store.receipts(&tenant, &ReceiptFilter::default(), 10).await.unwrap();
            assert_eq!(receipts.len(), 1, "{url}: the pending event's receipt kept");
        }
    }

    /// Two stores on one database, as two replicas: claiming at the same time, each job is
    /// leased to exactly one of them, and every job is leased.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_claiming_together_lease_each_job_once() {
        for url in databases().await {
            let (a, b) =
                (Store::connect(&url, test_keys()).await.unwrap(), Store::connect(&url, test_keys()).await.unwrap());
            let tenant = TenantId::generate();
            a.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
            for i in 0..300 {
                a.accept(&receipt(&tenant), &event(&tenant, i), &format!("stripe:evt_{i}")).await.unwrap();
            }
            // Each claims until both together hold every job (a claim may come back empty while
            // the other holds the rows it looked at).
            let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let claimer = |store: Store| {
                let taken = taken.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    let give_up = std::time::Instant::now() + Duration::from_secs(60);
                    while taken.load(std::sync::atomic::Ordering::SeqCst) < 300 && std::time::Instant::now() < give_up {
                        let busy = std::collections::HashMap::new();
                        let jobs = store.claim_plugin_jobs(7, Duration::from_secs(60), &busy, 1000).await.unwrap();
                        taken.fetch_add(jobs.len(), std::sync::atomic::Ordering::SeqCst);
                        ids.extend(jobs.iter().map(|j| j.id));
                    }
                    ids
                })
            };
            let (ta, tb) = (claimer(a.clone()), claimer(b.clone()));
            let (ia, ib) = (ta.await.unwrap(), tb.await.unwrap());
            let mut all: Vec<i64> = ia.iter().chain(&ib).copied().collect();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), ia.len() + ib.len(), "{url}: a job was leased twice");
            assert_eq!(all.len(), 300, "{url}: every job is leased");
            assert!(a.claim(JobKind::Plugin, 10, Duration::from_secs(60)).await.unwrap().is_empty());
        }
    }
}
