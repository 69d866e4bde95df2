//! The job pump shared by the router stage and the delivery and sink workers: take the jobs
//! handed over in memory (committed by this process, already leased to it), claim due jobs
//! from the store when it may hold some, run each under a concurrency limit while renewing its
//! lease, sleep until woken or until the next job is due, stop on shutdown and let in-flight
//! jobs finish. Owns no job semantics and no SQL of its own.
//!
//! A claim is a write, queued behind every other, so it is made only when it can find work:
//! pending rows were committed here since the last one (the lane's flag), the last one took
//! all it asked for, a job claimed from the store finished (it may have been holding back the
//! next of its ordering key), or the next pending job falls due — at the latest after
//! `idle_poll`, which also finds leases that ran out and other replicas' work.
//!
//! A job's lease is renewed every third of it while the job runs, so long work keeps its job;
//! when a renewal finds the job taken over, or the store cannot be reached until the lease is
//! nearly out, the work is stopped — before anyone else may claim it — so a process never runs
//! a job another worker (or itself) holds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::store::{Bounds, Job, JobKind, Lane, Store, StoreError, Ticket};

/// Settings of one pump.
#[derive(Debug, Clone)]
pub struct Pump {
    pub kind: JobKind,
    /// Jobs claimed from the store running at once (jobs handed over are bounded by their
    /// lane: `handed`).
    pub concurrency: usize,
    pub idle_poll: Duration,
    /// The lease claims take, and renewals extend.
    pub lease: Duration,
    /// How many jobs may be handed over in memory at once, in all and per key (tenant or
    /// endpoint).
    pub handed: usize,
    pub handed_per_key: usize,
}

/// Run `handle` on every job handed over in `lane` (with its ticket, to give back once the
/// job no longer needs its place) and every job `claim(n, woken)` leases, until `stop` turns
/// true. `woken` says whether pending rows were committed since the last claim.
pub async fn pump<C, CFut, H, Fut>(
    store: Store,
    pump: Pump,
    lane: &Lane,
    mut stop: watch::Receiver<bool>,
    claim: C,
    handle: H,
) where
    C: Fn(i64, bool) -> CFut,
    CFut: Future<Output = Result<Vec<Job>, StoreError>>,
    H: Fn(Job, Option<Ticket>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(pump.concurrency));
    let mut running = JoinSet::new();
    lane.open(Bounds { total: pump.handed, per_key: pump.handed_per_key.max(1), lease: pump.lease });
    // When a claim may find work (see the module's doc). `woken`: pending rows were committed
    // (true at start: a previous process may have left some); `again`: a job claimed from the
    // store ended; `full`: the last claim took all it asked for.
    let (mut claim_at, mut woken, mut again, mut full) = (Instant::now(), true, false, false);
    while !*stop.borrow() {
        while let Some(done) = running.try_join_next() {
            again |= done.unwrap_or(false);
        }
        // Jobs handed over are bounded by their lane; claims by the pump's own places.
        let mut jobs: Vec<(Job, Option<Ticket>)> = lane.take(64).into_iter().map(|h| (h.job, Some(h.ticket))).collect();
        let free = slots.available_permits().min(64);
        woken |= lane.take_pending();
        if free > 0 && (woken || again || full || Instant::now() >= claim_at) {
            again = false;
            let claimed = match claim(free as i64, std::mem::take(&mut woken)).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(kind = ?pump.kind, error = %e, "claiming jobs failed; retrying");
                    Vec::new()
                }
            };
            full = claimed.len() >= free;
            claim_at = Instant::now() + pump.idle_poll;
            if claimed.is_empty() && jobs.is_empty() {
                let now = store.now_ms();
                if let Ok(Some(due)) = store.next_due(pump.kind).await
                    && due > now
                {
                    // Pending and due but not claimable now (its tenant at its share, its
                    // endpoint at its limit or disabled, its row locked by another replica)
                    // waits for one of ours to end, a wake-up or the idle poll: never a spin.
                    let wait = Duration::from_millis((due - now) as u64).max(Duration::from_millis(1));
                    claim_at = claim_at.min(Instant::now() + wait);
                }
            }
            jobs.extend(claimed.into_iter().map(|j| (j, None)));
        }
        if jobs.is_empty() {
            tokio::select! {
                _ = lane.notified() => {}
                Some(done) = running.join_next(), if !running.is_empty() => again |= done.unwrap_or(false),
                _ = tokio::time::sleep_until(claim_at), if free > 0 => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for (job, ticket) in jobs {
            let permit = match ticket {
                Some(_) => None,
                None => Some(slots.clone().acquire_owned().await.expect("semaphore never closed")),
            };
            // Every log line of the job carries its kind, id, tenant and event.
            let span = tracing::info_span!("job", kind = pump.kind.as_str(), job_id = job.id, tenant = %job.tenant_id,
                event_id = %job.event_id);
            let held = keep_lease(store.clone(), job.clone(), pump.lease);
            // A job claimed from the store says, when it ends, that a claim may find more.
            let claimed = ticket.is_none();
            let fut = handle(job, ticket);
            running.spawn(
                async move {
                    tokio::select! {
                        () = fut => {}
                        () = held => tracing::warn!("job stopped: its lease could not be kept"),
                    }
                    drop(permit);
                    claimed
                }
                .instrument(span),
            );
        }
    }
    // Jobs handed over and not started go back to the store, to run at once (here after a
    // restart, or on another replica).
    for h in lane.close() {
        if let Err(e) = store.defer(&h.job, store.now_ms()).await {
            tracing::warn!(job_id = h.job.id, error = %e, "could not put back a job; its lease will expire");
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
