//! The delivery worker: for each due delivery job, send it, record the attempt, and schedule
//! the retry, the permanent failure or the dead letter.

use std::sync::Arc;

use tokio::sync::watch;

use super::policy::{self, Verdict};
use super::{Response, Sender};
use crate::jobs::{Pump, pump};
use crate::store::{DeliveryState, Job, JobKind, Store, StoreError};
use crate::{Config, Wakeups, now_ms};

/// Run the delivery worker until `stop` turns true.
pub async fn run(store: Store, sender: Sender, wake: Arc<Wakeups>, config: Arc<Config>, stop: watch::Receiver<bool>) {
    let settings = Pump {
        kind: JobKind::Delivery,
        concurrency: config.delivery_concurrency,
        lease: config.job_lease.max(config.delivery_timeout * 2),
        idle_poll: config.idle_poll,
    };
    pump(store.clone(), settings, &wake.delivery, stop, |job| {
        let (store, sender, config) = (store.clone(), sender.clone(), config.clone());
        async move {
            let (tenant, event_id, job_id) = (job.tenant_id.clone(), job.event_id.clone(), job.id);
            if let Err(e) = deliver(&store, &sender, &config, job).await {
                tracing::error!(%tenant, %event_id, job_id, error = %e, "recording a delivery failed; it will be retried when its lease expires");
            }
        }
    })
    .await;
}

async fn deliver(store: &Store, sender: &Sender, config: &Config, job: Job) -> Result<(), StoreError> {
    let endpoint_id = job.endpoint_id.clone().unwrap_or_default();
    let endpoint = store.endpoint(&job.tenant_id, &endpoint_id).await?;
    let (Some(ep), Some(message_id), Some(body)) = (endpoint, job.message_id.as_deref(), job.body.as_deref()) else {
        let why = "endpoint no longer exists";
        return store.record_attempt(&job, DeliveryState::Failed, None, Some(why), 0).await;
    };
    if !ep.enabled {
        return store.record_attempt(&job, DeliveryState::Failed, None, Some("endpoint is disabled"), 0).await;
    }
    let Response { status, error, retry_after, duration } = sender.send(&ep, message_id, body).await;
    let verdict = policy::classify(status);
    let attempt = job.attempts as usize + 1;
    let state =
        policy::next_state(verdict, attempt, &config.retry_schedule, retry_after, now_ms(), rand::random::<f64>());
    let level_ok = verdict == Verdict::Success;
    if level_ok {
        tracing::debug!(tenant = %job.tenant_id, event_id = %job.event_id, endpoint = %ep.id, attempt, ?status, "delivered");
    } else {
        tracing::warn!(tenant = %job.tenant_id, event_id = %job.event_id, endpoint = %ep.id, attempt, ?status, error = error.as_deref().unwrap_or(""), next = ?state, "delivery attempt failed");
    }
    store.record_attempt(&job, state, status, error.as_deref(), duration.as_millis() as i64).await
}
