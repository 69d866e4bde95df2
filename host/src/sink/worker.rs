//! The sink worker: for each due sink write, skip it if the sink already holds a newer version
//! of the record, else write it (HTTP upsert or SQL upsert) with the delivery retry rules, and
//! record the attempt.

use std::sync::Arc;

use tokio::sync::watch;

use super::{SinkConfig, SqlSinks};
use crate::deliver::Sender;
use crate::deliver::policy::{self, Verdict};
use crate::jobs::{Pump, pump};
use crate::store::{AttemptRecord, DeliveryState, Job, JobKind, JobWork, Store, StoreError};
use crate::{Config, Wakeups};

/// Run the sink worker until `stop` turns true.
pub async fn run(store: Store, sender: Sender, wake: Arc<Wakeups>, config: Arc<Config>, stop: watch::Receiver<bool>) {
    let lease = config.job_lease.max(config.delivery_timeout * 2);
    // Sink writes are claimed from the store (one write per record at a time is the claim's
    // rule), never handed over in memory.
    let settings = Pump {
        kind: JobKind::Sink,
        concurrency: config.delivery_concurrency,
        idle_poll: config.idle_poll,
        lease,
        handed: 0,
        handed_per_key: 0,
    };
    let sql = Arc::new(SqlSinks::default());
    let claim = |n, _woken| store.claim_sink_writes(n, lease);
    pump(store.clone(), settings, &wake.sink, stop, claim, |job, _ticket| {
        let (store, sender, config, sql) = (store.clone(), sender.clone(), config.clone(), sql.clone());
        async move {
            let (tenant, event_id, job_id) = (job.tenant_id.clone(), job.event_id.clone(), job.id);
            if let Err(e) = write(&store, &sender, &sql, &config, job).await {
                tracing::error!(%tenant, %event_id, job_id, error = %e, "recording a sink write failed; it will be retried when its lease expires");
            }
        }
    })
    .await;
}

async fn write(store: &Store, sender: &Sender, sql: &SqlSinks, config: &Config, job: Job) -> Result<(), StoreError> {
    let JobWork::Sink { sink_id, external_id, version, message_id, record } = job.work.clone() else {
        let record = AttemptRecord { error: Some("not a sink write".into()), ..Default::default() };
        return store.record_attempt(&job, DeliveryState::Failed, &record, None).await.map(drop);
    };
    let Some(sink) = store.sink(&job.tenant_id, &sink_id).await? else {
        let record = AttemptRecord { error: Some("sink no longer exists".into()), ..Default::default() };
        return store.record_attempt(&job, DeliveryState::Failed, &record, None).await.map(drop);
    };
    if let Some(held) = store.sink_version(&sink_id, &external_id).await?
        && held >= version
    {
        let note = format!("skipped: the sink already holds version {held} (this is {version})");
        let record = AttemptRecord { error: Some(note), ..Default::default() };
        return store.record_attempt(&job, DeliveryState::Skipped, &record, None).await.map(drop);
    }
    let started = std::time::Instant::now();
    let (status, error, excerpt, retry_after, applied) = match &sink.config {
        SinkConfig::HttpUpsert { base_url: base, object, headers } => {
            let ext: String = form_urlencoded::byte_serialize(external_id.as_bytes()).collect();
            let mut headers: Vec<(String, String)> = headers.clone().into_iter().collect();
            headers.push(("idempotency-key".into(), message_id));
            headers.push(("x-hookhost-record-version".into(), version.to_string()));
            let outbound = sender.policies().get(store, &job.tenant_id).await?;
            let r = sender.put_json(&format!("{base}/{object}/{ext}"), &outbound, &headers, &record).await;
            (r.status, r.error, r.excerpt, r.retry_after, true)
        }
        SinkConfig::Sql { database_url: url, table } => {
            let outbound = sender.policies().get(store, &job.tenant_id).await?;
            match sql.upsert(&job.tenant_id, &outbound, url, table, &external_id, version, &record).await {
                Ok(applied) => (Some(200), None, None, None, applied),
                Err(e) => (None, Some(e.to_string()), None, None, false),
            }
        }
    };
    let verdict = policy::classify(status);
    let state = match verdict {
        Verdict::Success if !applied => DeliveryState::Skipped,
        _ => policy::next_state(
            verdict,
            job.attempts as usize + 1,
            &config.retry_schedule,
            retry_after,
            store.now_ms(),
            rand::random::<f64>(),
        ),
    };
    if verdict != Verdict::Success {
        tracing::warn!(tenant = %job.tenant_id, sink = %sink.name, %external_id, ?status, error = error.as_deref().unwrap_or(""), next = ?state, "sink write failed");
    }
    let note = (state == DeliveryState::Skipped).then(|| "skipped: the row holds a newer version".to_string());
    let record = AttemptRecord {
        status_code: status,
        error: error.or(note),
        excerpt,
        duration_ms: started.elapsed().as_millis() as i64,
    };
    store.record_attempt(&job, state, &record, None).await.map(drop)
}
