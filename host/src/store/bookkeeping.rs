//! Worker bookkeeping committed in batches: finished plugin jobs and delivery and sink
//! attempts, from every worker task, go to one task (the store's batching writer, shared with
//! the group committer) that applies whatever is waiting in one transaction on the writer
//! (without `synchronous = FULL`: see `begin_on`), then answers each. A batch that fails is
//! rolled back and its requests applied one by one, so one bad request fails alone. Owns these
//! statements; the [`Store`](super::Store) methods that send the requests are the only way in.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, Row};

use super::plugins::{self, KvPut};
use super::{
    AttemptRecord, Backend, Batched, DeliveryState, EventStatus, Job, JobKind, JobStatus, JobWork, Outputs,
    PluginJobDone, Result, Staged, disable_endpoint, insert_delivery,
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

    async fn apply(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        _backend: Backend,
        stage: &mut Staged,
    ) -> Result<Applied> {
        match self {
            Bookkeeping::FinishPlugin { job, done, now, .. } => {
                finish_plugin_job(tx, stage, job, done, *now).await.map(|r| r.map_or(Applied::Stale, Applied::Refused))
            }
            Bookkeeping::Attempt { job, state, record, disable_after, now, .. } => {
                record_attempt(tx, stage, job, *state, record, *disable_after, *now)
                    .await
                    .map(|r| r.map_or(Applied::Stale, Applied::Disabled))
            }
        }
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

/// Record a finished plugin job's runs, apply its key-value writes, set the event's state and
/// enqueue its deliveries and sink writes. Returns the key-value writes refused for the quota.
async fn finish_plugin_job(
    tx: &mut sqlx::Transaction<'static, Any>,
    stage: &mut Staged,
    job: &Job,
    done: &PluginJobDone,
    now: i64,
) -> Result<Option<usize>> {
    // The fence first: a worker whose lease was taken over writes nothing.
    let (job_status, run_at) = match done.retry_at {
        Some(at) => (JobStatus::Pending, Some(at)),
        None if done.status == EventStatus::Failed => (JobStatus::Failed, None),
        None => (JobStatus::Succeeded, None),
    };
    if !fenced_update(tx, job, job_status, run_at, done.error.as_deref(), now).await? {
        return Ok(None);
    }
    for run in &done.runs {
        sqlx::query(
            "INSERT INTO plugin_runs (tenant_id, event_id, plugin_name, plugin_version, outcome, error, fuel_used,
                 wall_us, logs, ran_at, peak_memory)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
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
        .bind(run.peak_memory)
        .execute(&mut **tx)
        .await?;
    }
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
        sqlx::query("UPDATE events SET error = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(done.error.as_deref())
            .bind(job.tenant_id.as_str())
            .bind(&job.event_id)
            .execute(&mut **tx)
            .await?;
        return Ok(Some(refused));
    }
    complete_plugin_job(tx, stage, job, done.status, done.error.as_deref(), &done.outputs, now).await?;
    Ok(Some(refused))
}

/// Move a claimed job to its next state, only while `job.lease` is still its lease; false
/// (nothing written) when the lease was taken over.
async fn fenced_update(
    tx: &mut sqlx::Transaction<'static, Any>,
    job: &Job,
    status: JobStatus,
    run_at: Option<i64>,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = $1, run_at = COALESCE($2, run_at), attempts = attempts + 1, lease_until = NULL,
             last_error = $3, updated_at = $4
         WHERE id = $5 AND status = 'running' AND lease_token = $6",
    )
    .bind(status.as_str())
    .bind(run_at)
    .bind(error)
    .bind(now)
    .bind(job.id)
    .bind(job.lease)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

async fn complete_plugin_job(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    job: &Job,
    event_status: EventStatus,
    error: Option<&str>,
    outputs: &Outputs,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE events SET status = $1, error = $2 WHERE tenant_id = $3 AND id = $4")
        .bind(event_status.as_str())
        .bind(error)
        .bind(job.tenant_id.as_str())
        .bind(&job.event_id)
        .execute(&mut **tx)
        .await?;
    // A body sent to several endpoints is stored once and shared by their deliveries.
    let mut shared: Vec<(Arc<str>, Option<i64>)> = Vec::new();
    for d in &outputs.deliveries {
        let copies = outputs.deliveries.iter().filter(|o| Arc::ptr_eq(&o.body, &d.body)).count();
        let body_id = if copies < 2 {
            None
        } else if let Some((_, id)) = shared.iter().find(|(b, _)| Arc::ptr_eq(b, &d.body)) {
            *id
        } else {
            let id: i64 =
                sqlx::query("INSERT INTO bodies (tenant_id, event_id, body) VALUES ($1, $2, $3) RETURNING id")
                    .bind(job.tenant_id.as_str())
                    .bind(&job.event_id)
                    .bind(&*d.body)
                    .fetch_one(&mut **tx)
                    .await?
                    .get("id");
            shared.push((d.body.clone(), Some(id)));
            Some(id)
        };
        insert_delivery(&mut **tx, stage, &job.tenant_id, &job.event_id, d, body_id, false, now).await?;
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
    Ok(())
}

/// Record a delivery or sink attempt, move the job to its next state and keep the endpoint's
/// failure streak. When the streak has lasted `disable_after`, the endpoint is disabled and an
/// `endpoint.disabled` event is stored for the tenant's other endpoints; its id is returned.
async fn record_attempt(
    tx: &mut sqlx::Transaction<'static, Any>,
    stage: &mut Staged,
    job: &Job,
    state: DeliveryState,
    record: &AttemptRecord,
    disable_after: Option<Duration>,
    now: i64,
) -> Result<Option<Option<String>>> {
    let endpoint_id = job.work.target();
    let (status, run_at) = match state {
        DeliveryState::Succeeded | DeliveryState::Skipped => (JobStatus::Succeeded, None),
        DeliveryState::RetryAt(at) => (JobStatus::Pending, Some(at)),
        DeliveryState::Failed => (JobStatus::Failed, None),
        DeliveryState::Dead => (JobStatus::Dead, None),
    };
    // The fence first: an attempt whose lease was taken over records nothing, and can never
    // reopen a job another worker finished (or a deleted endpoint failed).
    if !fenced_update(tx, job, status, run_at, record.error.as_deref(), now).await? {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO delivery_attempts (job_id, tenant_id, event_id, endpoint_id, attempt, status_code, error,
             response_excerpt, duration_ms, outcome, attempted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(job.id)
    .bind(job.tenant_id.as_str())
    .bind(&job.event_id)
    .bind(endpoint_id)
    .bind(job.attempts + 1)
    .bind(record.status_code.map(i64::from))
    .bind(&record.error)
    .bind(&record.excerpt)
    .bind(record.duration_ms)
    .bind(state.outcome())
    .bind(now)
    .execute(&mut **tx)
    .await?;

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
    let mut disabled_event = None;
    if job.work.kind() == JobKind::Sink || state == DeliveryState::Skipped {
        // Sinks have no health streak.
    } else if state == DeliveryState::Succeeded {
        sqlx::query(
            "UPDATE endpoints SET failing_since = NULL WHERE tenant_id = $1 AND id = $2 AND failing_since IS NOT NULL",
        )
        .bind(job.tenant_id.as_str())
        .bind(endpoint_id)
        .execute(&mut **tx)
        .await?;
    } else {
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
        if let (Some(since), Some(after)) = (since, disable_after)
            && now - since >= after.as_millis() as i64
        {
            disabled_event = disable_endpoint(tx, stage, &job.tenant_id, endpoint_id, since, now).await?;
        }
    }
    Ok(Some(disabled_event))
}
