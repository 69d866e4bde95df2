//! The job outbox: claims with fresh lease tokens (plugin, delivery, sink), renewal, fenced
//! finishes and deferrals (through the bookkeeper), the lease clock, and outbox gauges.
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

/// Whether a job (columns prefixed `alias`) may be claimed at `$2`: pending and due, or
/// running with its lease run out (its worker died).
fn due(alias: &str) -> String {
    let a = alias;
    format!(
        "{a}status IN ('pending', 'running')
         AND (({a}status = 'pending' AND {a}run_at <= $2) OR ({a}status = 'running' AND {a}lease_until < $2))"
    )
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

impl Store {
    /// Every claim: in a new transaction, lease the jobs `picked` selects — `$1` is the lease's
    /// end, `$2` now, `$3` a fresh lease token, and `bind` adds the claim's own parameters from
    /// `$4`. Returns the open transaction (the caller commits) and the leased rows.
    async fn lease(
        &self,
        lease: Duration,
        picked: String,
        bind: impl FnOnce(AnyQuery<'_>) -> AnyQuery<'_>,
    ) -> Result<(sqlx::Transaction<'static, Any>, Vec<AnyRow>)> {
        let mut tx = self.begin(false).await?;
        self.sync_clock().await?;
        let now = self.now_ms();
        let statement = format!(
            "UPDATE jobs SET status = 'running', lease_until = $1, updated_at = $2, lease_token = $3
             WHERE id IN ({picked}) RETURNING {JOB_COLUMNS}"
        );
        let query =
            sqlx::query(AssertSqlSafe(statement)).bind(now + lease.as_millis() as i64).bind(now).bind(lease_token());
        let rows = bind(query).fetch_all(&mut *tx).await?;
        Ok((tx, rows))
    }

    /// Lease up to `limit` due jobs of `kind` for `lease`. A job whose lease expired (its worker
    /// died) is due again.
    pub async fn claim(&self, kind: JobKind, limit: i64, lease: Duration) -> Result<Vec<Job>> {
        let picked = format!(
            "SELECT id FROM jobs WHERE kind = $4 AND {due} ORDER BY run_at, id LIMIT $5 {lock}",
            due = due(""),
            lock = self.backend.skip_locked(),
        );
        let (tx, rows) = self.lease(lease, picked, |q| q.bind(kind.as_str()).bind(limit)).await?;
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
        // Candidates: the oldest due jobs of tenants below their share, read in index order
        // (pending by run_at, then any whose lease ran out) and cut at `limit * per_tenant`,
        // so a claim costs the same whatever the backlog. Ranked per tenant, the first `limit`
        // within each tenant's share are taken. Window functions cannot lock rows, so
        // PostgreSQL locks the choice afterwards, skipping rows another replica holds and
        // re-checking that each is still due.
        let picked = format!(
            "SELECT id FROM jobs WHERE id IN (
                 SELECT d.id FROM (
                     SELECT id, run_at, tenant_id,
                            ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY run_at, id) AS rn
                     FROM (
                         SELECT * FROM (
                             SELECT id, run_at, tenant_id FROM jobs
                             WHERE kind = 'plugin' AND status = 'pending' AND run_at <= $2 AND {open}
                             ORDER BY run_at, id LIMIT $7) p
                         UNION ALL
                         SELECT * FROM (
                             SELECT id, run_at, tenant_id FROM jobs
                             WHERE kind = 'plugin' AND status = 'running' AND lease_until < $2 AND {open}
                             LIMIT $7) r
                     ) c
                 ) d
                 WHERE d.rn + COALESCE((SELECT CAST(value AS BIGINT) FROM {busy} WHERE key = d.tenant_id), 0) <= $5
                 ORDER BY d.run_at, d.id LIMIT $6) AND {due} {lock}",
            open = format_args!(
                "tenant_id NOT IN (SELECT key FROM {} WHERE CAST(value AS BIGINT) >= $5)",
                self.backend.json_entries("$4")
            ),
            due = due(""),
            busy = self.backend.json_entries("$4"),
            lock = self.backend.skip_locked(),
        );
        let busy = serde_json::to_string(busy).expect("counts serialize");
        let (tx, rows) = self
            .lease(lease, picked, |q| q.bind(busy).bind(per_tenant as i64).bind(limit).bind(limit * per_tenant as i64))
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
        self.book(Bookkeeping::FinishPlugin { job: job.clone(), done, now: self.now_ms(), reply }, answer).await
    }

    pub(super) async fn book<T>(
        &self,
        request: Bookkeeping,
        answer: tokio::sync::oneshot::Receiver<Result<T>>,
    ) -> Result<T> {
        let closed = || StoreError::Corrupt("the bookkeeper stopped".into());
        self.bookkeeping.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Lease due sink writes; writes to the same record (sink, external id) run one at a time.
    pub async fn claim_sink_writes(&self, limit: i64, lease: Duration) -> Result<Vec<Job>> {
        // One write per record at a time: the oldest due write of each (sink, external id).
        // PostgreSQL then locks those it takes, skipping any another replica holds.
        let picked = format!(
            "SELECT id FROM jobs WHERE id IN (
                 SELECT MIN(j.id) FROM jobs j
                 WHERE j.kind = 'sink' AND {due_j}
                   AND NOT EXISTS (
                       SELECT 1 FROM jobs o WHERE o.kind = 'sink' AND o.sink_id = j.sink_id AND o.external_id = j.external_id
                         AND o.id != j.id AND o.status = 'running' AND o.lease_until >= $2)
                 GROUP BY j.sink_id, j.external_id
                 ORDER BY MIN(j.run_at)
                 LIMIT $4) AND {due} {lock}",
            due_j = due("j."),
            due = due(""),
            lock = self.backend.skip_locked(),
        );
        let (tx, rows) = self.lease(lease, picked, |q| q.bind(limit)).await?;
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
        let (job, record, now) = (job.clone(), attempt.clone(), self.now_ms());
        let request = Bookkeeping::Attempt { job, state, record, disable_after, now, reply };
        self.book(request, answer).await
    }

    /// The time leases and every row are counted in (unix ms): the service's clock, on
    /// PostgreSQL moved to the database's (measured every 30 s).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms() + self.db_clock.offset_ms.load(Ordering::Relaxed)
    }

    /// The service's clock this store reads.
    pub fn clock(&self) -> &crate::Clock {
        &self.clock
    }

    /// On PostgreSQL, read the database's clock again when the last reading is 30 s old. The
    /// offset is taken against the system clock, so a shifted [`Clock`](crate::Clock) stays shifted.
    pub(super) async fn sync_clock(&self) -> Result<()> {
        let local = crate::now_ms();
        if self.backend != Backend::Postgres
            || local - self.db_clock.measured_at.load(Ordering::Relaxed) < CLOCK_REFRESH_MS
        {
            return Ok(());
        }
        let db: i64 = sqlx::query("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now")
            .fetch_one(&self.pool)
            .await?
            .get("now");
        let after = crate::now_ms();
        self.db_clock.offset_ms.store(db - (local + after) / 2, Ordering::Relaxed);
        self.db_clock.measured_at.store(after, Ordering::Relaxed);
        Ok(())
    }

    /// Put a claimed job back, untried, to run at `run_at` (rate limiting, a full share):
    /// only while this worker still holds its lease.
    pub async fn defer(&self, job: &Job, run_at: i64) -> Result<()> {
        let set = "status = 'pending', run_at = $1, lease_until = NULL, updated_at = $2";
        self.update_held(job, set, run_at).await?;
        self.wake.lane(job.work.kind()).pending();
        Ok(())
    }

    /// Extend this worker's lease on a running job to `lease` from now; when the lease now
    /// ends, or `StaleLease` when the job is no longer this worker's.
    pub async fn renew(&self, job: &Job, lease: Duration) -> Result<i64> {
        self.sync_clock().await?;
        let until = self.now_ms() + lease.as_millis() as i64;
        self.update_held(job, "lease_until = $1, updated_at = $2", until).await.map(|()| until)
    }

    /// Apply `set` (`$1` is `value`, `$2` now) to `job` only while this worker holds its lease;
    /// `StaleLease` (nothing written) otherwise.
    async fn update_held(&self, job: &Job, set: &str, value: i64) -> Result<()> {
        let mut tx = self.begin(false).await?;
        let sql = format!("UPDATE jobs SET {set} WHERE id = $3 AND status = 'running' AND lease_token = $4");
        let query = sqlx::query(AssertSqlSafe(sql)).bind(value).bind(self.now_ms()).bind(job.id).bind(job.lease);
        let held = query.execute(&mut *tx).await?.rows_affected() == 1;
        tx.commit().await?;
        if held { Ok(()) } else { Err(StoreError::StaleLease(job.id)) }
    }

    /// Lease due deliveries: only to enabled endpoints, none to the endpoints in `exclude`
    /// (saturated or rate-limited here), and for an ordering key only the unfinished one of the
    /// earliest event, once no earlier event of the tenant is still in the plugin stage.
    pub async fn claim_deliveries(&self, limit: i64, lease: Duration, exclude: &[String]) -> Result<Vec<Job>> {
        let excluded = serde_json::to_string(exclude).expect("strings serialize");
        let picked = format!(
            "SELECT j.id FROM jobs j JOIN endpoints e ON e.id = j.endpoint_id AND e.tenant_id = j.tenant_id
             WHERE j.kind = 'delivery' AND e.enabled = 1 AND {due}
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
             ORDER BY j.run_at, j.id LIMIT $5 {lock}",
            due = due("j."),
            excluded = self.backend.json_values("$4"),
            lock = self.backend.pick("", "FOR UPDATE OF j SKIP LOCKED"),
        );
        let (mut tx, rows) = self.lease(lease, picked, |q| q.bind(excluded).bind(limit)).await?;
        let mut jobs: Vec<Job> = rows.iter().map(job).collect();
        // Bodies shared by several deliveries, read once for the whole claim.
        let body_ids: Vec<Option<i64>> = rows.iter().map(shared_body).collect();
        let shared: Vec<i64> = body_ids.iter().flatten().copied().collect();
        if !shared.is_empty() {
            let marks: Vec<String> = (1..=shared.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT id, body FROM bodies WHERE id IN ({})", marks.join(", "));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in &shared {
                q = q.bind(*id);
            }
            let bodies: HashMap<i64, String> =
                q.fetch_all(&mut *tx).await?.iter().map(|r| (r.get("id"), r.get("body"))).collect();
            for (j, id) in jobs.iter_mut().zip(body_ids) {
                if let (JobWork::Delivery { body, .. }, Some(id)) = (&mut j.work, id) {
                    *body = bodies.get(&id).cloned().unwrap_or_default();
                }
            }
        }
        tx.commit().await?;
        Ok(jobs)
    }

    /// Count of jobs by (kind, status), for health and tests.
    /// Per job kind, how old (ms) the oldest pending job is.
    pub async fn oldest_pending(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT kind, MIN(created_at) AS oldest FROM jobs WHERE status = 'pending' GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        let now = self.now_ms();
        Ok(rows.into_iter().map(|r| (r.get("kind"), now - r.get::<i64, _>("oldest"))).collect())
    }

    pub async fn job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows =
            sqlx::query("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status ORDER BY kind, status")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| (r.get("kind"), r.get("status"), r.get("n"))).collect())
    }
}
