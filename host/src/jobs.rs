//! The job pump shared by the router stage and the delivery and sink workers: claim due jobs with a lease,
//! run each under a concurrency limit while renewing its lease, sleep until woken or until the
//! next job is due, stop on shutdown and let in-flight jobs finish. Owns no job semantics and
//! no SQL of its own.
//!
//! A job's lease is renewed every third of it while the job runs, so long work keeps its job;
//! when a renewal finds the job taken over, or the store cannot be reached until the lease is
//! nearly out, the work is stopped — before anyone else may claim it — so a process never runs
//! a job another worker (or itself) holds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::store::{Job, JobKind, Store, StoreError};

/// Settings of one pump.
#[derive(Debug, Clone)]
pub struct Pump {
    pub kind: JobKind,
    pub concurrency: usize,
    pub idle_poll: Duration,
    /// The lease claims take, and renewals extend.
    pub lease: Duration,
}

/// Run `handle` on every job `claim(n, woken)` leases, until `stop` turns true. `woken` says
/// whether new work was announced (`notify`) since the last claim.
pub async fn pump<C, CFut, H, Fut>(
    store: Store,
    pump: Pump,
    notify: &Notify,
    mut stop: watch::Receiver<bool>,
    claim: C,
    handle: H,
) where
    C: Fn(i64, bool) -> CFut,
    CFut: Future<Output = Result<Vec<Job>, StoreError>>,
    H: Fn(Job) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(pump.concurrency));
    let mut running = JoinSet::new();
    let mut woken = true;
    while !*stop.borrow() {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits().clamp(1, 64) as i64;
        let jobs = match claim(free, std::mem::take(&mut woken)).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(kind = ?pump.kind, error = %e, "claiming jobs failed; retrying");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            let now = store.now_ms();
            let wait = match store.next_due(pump.kind).await {
                Ok(Some(due)) if due > now => {
                    Duration::from_millis((due - now).min(pump.idle_poll.as_millis() as i64) as u64)
                }
                // Nothing pending, or pending and due but not claimable now (its tenant at its
                // share, its endpoint at its limit or disabled, its row locked by another
                // replica): look again when one of ours ends, on a wake-up, or after the idle
                // poll; never spin on the claim.
                _ => pump.idle_poll,
            };
            tokio::select! {
                _ = notify.notified() => woken = true,
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for job in jobs {
            let permit = slots.clone().acquire_owned().await.expect("semaphore never closed");
            // Every log line of the job carries its kind, id, tenant and event.
            let span = tracing::info_span!("job", kind = pump.kind.as_str(), job_id = job.id, tenant = %job.tenant_id,
                event_id = %job.event_id);
            let held = keep_lease(store.clone(), job.clone(), pump.lease);
            let fut = handle(job);
            running.spawn(
                async move {
                    tokio::select! {
                        () = fut => {}
                        () = held => tracing::warn!("job stopped: its lease could not be kept"),
                    }
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
    while running.join_next().await.is_some() {}
}

/// Renew `job`'s lease every third of `lease`; returns (and so stops the job's work) when the
/// job was taken over, or when renewals failed until the lease is nearly out.
async fn keep_lease(store: Store, job: Job, lease: Duration) {
    let mut until = store.now_ms() + lease.as_millis() as i64;
    let margin = (lease.as_millis() as i64 / 6).max(1);
    let mut wait = lease / 3;
    loop {
        tokio::time::sleep(wait).await;
        match store.renew(&job, lease).await {
            Ok(new_until) => {
                until = new_until;
                wait = lease / 3;
            }
            Err(StoreError::StaleLease(_)) => {
                tracing::warn!(job_id = job.id, "the job's lease was taken over");
                return;
            }
            Err(e) => {
                tracing::warn!(job_id = job.id, error = %e, "renewing a lease failed");
                // Give the job up while the lease still holds, retrying until then.
                let left = until - margin - store.now_ms();
                if left <= 0 {
                    return;
                }
                wait = Duration::from_millis((left as u64).min(margin as u64));
            }
        }
    }
}
