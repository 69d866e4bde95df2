//! Worker bookkeeping committed in batches: finished plugin jobs and delivery and sink
//! attempts, from every worker task, go to one task (the store's batching writer, shared with
//! the group committer) that applies whatever is waiting in one transaction on the writer
//! (without `synchronous = FULL`: see `begin_on`), then answers each. The common writes of a
//! batch share statements — one fenced update for every job, one insert each for runs,
//! deliveries and attempts, one update each for events and recovered endpoints — so a batch
//! costs a handful of statements whatever its size; the rare ones (key-value writes, shared
//! bodies, sink writes, failure streaks) go row by row. A batch that fails is rolled back and
//! its requests applied one by one, so one bad request fails alone. Owns these statements; the
//! [`Store`](super::Store) methods that send the requests are the only way in.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, AssertSqlSafe, Row};

use super::plugins::{self, KvPut};
use super::{
    AttemptRecord, Backend, Batched, DeliveryRow, DeliveryState, EventStatus, Job, JobKind, JobStatus, JobWork,
    PluginJobDone, PluginRun, ROWS_PER_STATEMENT, Result, Staged, disable_endpoint, insert_deliveries, rows_of,
};

/// Most requests applied in one transaction.
pub(super) const BATCH_MAX: usize = 64;

type Reply<T> = tokio::sync::oneshot::Sender<Result<T>>;

/// One piece of bookkeeping and where its outcome goes.
pub(super) enum Bookkeeping {
    FinishPlugin {
        job: Job,
        done: PluginJobDone,
        /// The store's time when the worker sent it (unix ms).
        now: i64,
        reply: Reply<usize>,
    },
    Attempt {
        job: Job,
        state: DeliveryState,
        record: AttemptRecord,
        disable_after: Option<Duration>,
        now: i64,
        reply: Reply<Option<String>>,
    },
}

/// What a request returns once committed.
pub(super) enum Applied {
    Refused(usize),
    Disabled(Option<String>),
    /// The job's lease had been taken over: nothing was written.
    Stale,
}

impl Batched for Bookkeeping {
    type Out = Applied;

    /// The whole batch at once, in a handful of statements.
    async fn apply_all(
        requests: &[Self],
        tx: &mut sqlx::Transaction<'static, Any>,
        _backend: Backend,
        stage: &mut Staged,
    ) -> Result<Vec<Applied>> {
        apply_all(requests, tx, stage).await
    }

    fn answer(self, outcome: Result<Applied>) {
        match self {
            Bookkeeping::FinishPlugin { job, reply, .. } => drop(reply.send(outcome.and_then(|a| match a {
                Applied::Refused(n) => Ok(n),
                Applied::Disabled(_) => Ok(0),
                Applied::Stale => Err(stale(&job)),
            }))),
            Bookkeeping::Attempt { job, state, record, reply, .. } => {
                if matches!(outcome, Ok(Applied::Disabled(_))) {
                    let kind = job.work.kind().as_str();
                    let class = crate::metrics::status_class(record.status_code);
                    crate::metrics::count(
                        &crate::metrics::ATTEMPTS,
                        &[("kind", kind), ("outcome", state.outcome()), ("status_class", class)],
                    );
                }
                drop(reply.send(outcome.and_then(|a| match a {
                    Applied::Disabled(d) => Ok(d),
                    Applied::Refused(_) => Ok(None),
                    Applied::Stale => Err(stale(&job)),
                })))
            }
        }
    }
}

/// A result discarded because `job`'s lease was taken over: counted and logged.
fn stale(job: &Job) -> super::StoreError {
    let kind = job.work.kind().as_str();
    crate::metrics::count(&crate::metrics::STALE, &[("kind", kind)]);
    tracing::warn!(job_id = job.id, kind, tenant = %job.tenant_id, event_id = %job.event_id, "result discarded: the job's lease was taken over");
    super::StoreError::StaleLease(job.id)
}

impl Bookkeeping {
    fn job(&self) -> &Job {
        match self {
            Bookkeeping::FinishPlugin { job, .. } | Bookkeeping::Attempt { job, .. } => job,
        }
    }

    /// The job's next state: (status, run again at, last error, now).
    fn next(&self) -> (JobStatus, Option<i64>, Option<&str>, i64) {
        match self {
            Bookkeeping::FinishPlugin { done, now, .. } => {
                let status = match done.retry_at {
                    Some(_) => JobStatus::Pending,
                    None if done.status == EventStatus::Failed => JobStatus::Failed,
                    None => JobStatus::Succeeded,
                };
                (status, done.retry_at, done.error.as_deref(), *now)
            }
            Bookkeeping::Attempt { state, record, now, .. } => {
                let (status, run_at) = match state {
                    DeliveryState::Succeeded | DeliveryState::Skipped => (JobStatus::Succeeded, None),
                    DeliveryState::RetryAt(at) => (JobStatus::Pending, Some(*at)),
                    DeliveryState::Failed => (JobStatus::Failed, None),
                    DeliveryState::Dead => (JobStatus::Dead, None),
                };
                (status, run_at, record.error.as_deref(), *now)
            }
        }
    }
}

/// The rows a batch writes together.
#[derive(Default)]
struct Shared<'a> {
    runs: Vec<(&'a Job, &'a PluginRun)>,
    /// (job, new status — none: unchanged, error).
    events: Vec<(&'a Job, Option<EventStatus>, Option<&'a str>)>,
    deliveries: Vec<DeliveryRow<'a>>,
    attempts: Vec<(&'a Job, DeliveryState, &'a AttemptRecord, i64)>,
    /// Endpoints a delivery just reached.
    recovered: Vec<&'a Job>,
}

async fn apply_all(
    requests: &[Bookkeeping],
    tx: &mut sqlx::Transaction<'static, Any>,
    stage: &mut Staged,
) -> Result<Vec<Applied>> {
    // The fence first: a worker whose lease was taken over writes nothing, and can never
    // reopen a job another worker finished (or a deleted endpoint failed).
    let held = fence(tx, requests).await?;
    let mut shared = Shared::default();
    let mut out = Vec::with_capacity(requests.len());
    for req in requests {
        if !held.contains(&req.job().id) {
            out.push(Applied::Stale);
            continue;
        }
        out.push(match req {
            Bookkeeping::FinishPlugin { job, done, now, .. } => {
                Applied::Refused(finish_plugin_job(tx, stage, &mut shared, job, done, *now).await?)
            }
            Bookkeeping::Attempt { job, state, record, disable_after, now, .. } => {
                shared.attempts.push((job, *state, record, *now));
                Applied::Disabled(after_attempt(tx, stage, &mut shared, job, *state, *disable_after, *now).await?)
            }
        });
    }
    write_shared(tx, stage, &shared).await?;
    Ok(out)
}

/// Move every request's job to its next state, only while the request's lease is still the
/// job's; the ids moved.
async fn fence(tx: &mut sqlx::Transaction<'static, Any>, requests: &[Bookkeeping]) -> Result<HashSet<i64>> {
    let mut held = HashSet::with_capacity(requests.len());
    for chunk in requests.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (f_id, f_token, f_status, f_run_at, f_error, f_now) AS (VALUES {})
             UPDATE jobs SET status = v.f_status, run_at = COALESCE(v.f_run_at, jobs.run_at), attempts = attempts + 1,
                 lease_until = NULL, last_error = v.f_error, updated_at = v.f_now
             FROM v WHERE jobs.id = v.f_id AND jobs.status = 'running' AND jobs.lease_token = v.f_token
             RETURNING id",
            rows_of(
                Backend::of(tx),
                "(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT))",
                chunk.len()
            )
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for req in chunk {
            let (status, run_at, error, now) = req.next();
            q = q.bind(req.job().id).bind(req.job().lease).bind(status.as_str()).bind(run_at).bind(error).bind(now);
        }
        held.extend(q.fetch_all(&mut **tx).await?.iter().map(|r| r.get::<i64, _>("id")));
    }
    Ok(held)
}

/// A finished plugin job's own writes: its key-value writes and shared bodies now, its runs,
/// event state and deliveries into `shared`, its sink writes. Returns the key-value writes
/// refused for the quota.
async fn finish_plugin_job<'a>(
    tx: &mut sqlx::Transaction<'static, Any>,
    stage: &mut Staged,
    shared: &mut Shared<'a>,
    job: &'a Job,
    done: &'a PluginJobDone,
    now: i64,
) -> Result<usize> {
    shared.runs.extend(done.runs.iter().map(|r| (job, r)));
    let mut refused = 0;
    for (key, value) in &done.kv_writes {
        if plugins::kv_write(&mut *tx, &job.tenant_id, key, value.as_deref(), done.kv_max_keys, now).await?
            == KvPut::QuotaExceeded
        {
            refused += 1;
        }
    }
    if done.retry_at.is_some() {
        // Tried again later: the event stays pending with the reason, nothing else is written.
        shared.events.push((job, None, done.error.as_deref()));
        return Ok(refused);
    }
    shared.events.push((job, Some(done.status), done.error.as_deref()));
    // A body sent to several endpoints is stored once and shared by their deliveries.
    let outputs = &done.outputs;
    let mut bodies: Vec<(Arc<str>, i64)> = Vec::new();
    for d in &outputs.deliveries {
        let copies = outputs.deliveries.iter().filter(|o| Arc::ptr_eq(&o.body, &d.body)).count();
        let body_id = if copies < 2 {
            None
        } else if let Some((_, id)) = bodies.iter().find(|(b, _)| Arc::ptr_eq(b, &d.body)) {
            Some(*id)
        } else {
            let id: i64 =
                sqlx::query("INSERT INTO bodies (tenant_id, event_id, body) VALUES ($1, $2, $3) RETURNING id")
                    .bind(job.tenant_id.as_str())
                    .bind(&job.event_id)
                    .bind(&*d.body)
                    .fetch_one(&mut **tx)
                    .await?
                    .get("id");
            bodies.push((d.body.clone(), id));
            Some(id)
        };
        let (tenant, event_id) = (&job.tenant_id, job.event_id.as_str());
        shared.deliveries.push(DeliveryRow { tenant, event_id, d, shared: body_id, replay: false, now });
    }
    for w in &outputs.sink_writes {
        sqlx::query(
            "INSERT INTO jobs (kind, tenant_id, event_id, event_seq, sink_id, external_id, record_version, message_id, body,
                 status, run_at, created_at, updated_at)
             VALUES ('sink', $1, $2, (SELECT seq FROM events WHERE tenant_id = $3 AND id = $4), $5, $6, $7, $8, $9, 'pending', $10, $11, $12)",
        )
        .bind(job.tenant_id.as_str())
        .bind(&job.event_id)
        .bind(job.tenant_id.as_str())
        .bind(&job.event_id)
        .bind(&w.sink_id)
        .bind(&w.external_id)
        .bind(w.version)
        .bind(&w.idempotency_key)
        .bind(&w.record)
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        stage.pending(JobKind::Sink);
    }
    Ok(refused)
}

/// After a delivery or sink attempt: a sink's newest version, and the endpoint's failure
/// streak. When the streak has lasted `disable_after`, the endpoint is disabled and an
/// `endpoint.disabled` event is stored for the tenant's other endpoints; its id is returned.
async fn after_attempt<'a>(
    tx: &mut sqlx::Transaction<'static, Any>,
    stage: &mut Staged,
    shared: &mut Shared<'a>,
    job: &'a Job,
    state: DeliveryState,
    disable_after: Option<Duration>,
    now: i64,
) -> Result<Option<String>> {
    if let (DeliveryState::Succeeded, JobWork::Sink { sink_id: sink, external_id: ext, version, .. }) =
        (state, &job.work)
    {
        sqlx::query(
            "INSERT INTO sink_versions (sink_id, external_id, version, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sink_id, external_id) DO UPDATE SET updated_at = excluded.updated_at,
                 version = CASE WHEN excluded.version > sink_versions.version THEN excluded.version ELSE sink_versions.version END",
        )
        .bind(sink)
        .bind(ext)
        .bind(version)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    if job.work.kind() == JobKind::Sink || state == DeliveryState::Skipped {
        return Ok(None); // Sinks have no health streak.
    }
    if state == DeliveryState::Succeeded {
        shared.recovered.push(job);
        return Ok(None);
    }
    let endpoint_id = job.work.target();
    let since: Option<i64> = sqlx::query(
        "UPDATE endpoints SET failing_since = COALESCE(failing_since, $1) WHERE tenant_id = $2 AND id = $3
         RETURNING failing_since",
    )
    .bind(now)
    .bind(job.tenant_id.as_str())
    .bind(endpoint_id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.get("failing_since"));
    match (since, disable_after) {
        (Some(since), Some(after)) if now - since >= after.as_millis() as i64 => {
            disable_endpoint(tx, stage, &job.tenant_id, endpoint_id, since, now).await
        }
        _ => Ok(None),
    }
}

/// The rows of a batch that share statements.
async fn write_shared(tx: &mut sqlx::Transaction<'static, Any>, stage: &mut Staged, s: &Shared<'_>) -> Result<()> {
    for chunk in s.runs.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO plugin_runs (tenant_id, event_id, plugin_name, plugin_version, outcome, error, fuel_used, wall_us,
                 logs, ran_at, peak_memory) VALUES {}",
            rows_of(Backend::of(tx), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (job, run) in chunk {
            q = q
                .bind(job.tenant_id.as_str())
                .bind(&job.event_id)
                .bind(&run.plugin_name)
                .bind(run.plugin_version)
                .bind(&run.outcome)
                .bind(&run.error)
                .bind(run.fuel_used)
                .bind(run.wall_us)
                .bind(&run.logs)
                .bind(run.ran_at)
                .bind(run.peak_memory);
        }
        q.execute(&mut **tx).await?;
    }
    for chunk in s.events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (e_tenant, e_id, e_status, e_error) AS (VALUES {})
             UPDATE events SET status = COALESCE(v.e_status, events.status), error = v.e_error
             FROM v WHERE events.tenant_id = v.e_tenant AND events.id = v.e_id",
            rows_of(
                Backend::of(tx),
                "(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT))",
                chunk.len()
            )
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (job, status, error) in chunk {
            q = q.bind(job.tenant_id.as_str()).bind(&job.event_id).bind(status.map(EventStatus::as_str)).bind(*error);
        }
        q.execute(&mut **tx).await?;
    }
    insert_deliveries(tx, stage, &s.deliveries).await?;
    for chunk in s.attempts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO delivery_attempts (job_id, tenant_id, event_id, endpoint_id, attempt, status_code, error,
                 response_excerpt, duration_ms, outcome, attempted_at) VALUES {}",
            rows_of(Backend::of(tx), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (job, state, record, now) in chunk {
            q = q
                .bind(job.id)
                .bind(job.tenant_id.as_str())
                .bind(&job.event_id)
                .bind(job.work.target())
                .bind(job.attempts + 1)
                .bind(record.status_code.map(i64::from))
                .bind(&record.error)
                .bind(&record.excerpt)
                .bind(record.duration_ms)
                .bind(state.outcome())
                .bind(*now);
        }
        q.execute(&mut **tx).await?;
    }
    for chunk in s.recovered.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (r_tenant, r_id) AS (VALUES {})
             UPDATE endpoints SET failing_since = NULL
             FROM v WHERE endpoints.tenant_id = v.r_tenant AND endpoints.id = v.r_id AND endpoints.failing_since IS NOT NULL",
            rows_of(Backend::of(tx), "(CAST(? AS TEXT), CAST(? AS TEXT))", chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for job in chunk {
            q = q.bind(job.tenant_id.as_str()).bind(job.work.target());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
