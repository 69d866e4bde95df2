//! The delivery worker: for each due delivery, send it, record the attempt, and schedule the
//! retry, the permanent failure or the dead letter; keep each endpoint's failure streak and
//! disable it after sustained failure.
//!
//! Fairness: at most `endpoint_concurrency` deliveries are in flight per endpoint and an
//! endpoint's `rate_limit_per_s` is a token bucket, so one slow or limited receiver never holds
//! the shared slots; saturated endpoints are left out of the next claim. Ordering per key is
//! the store's claim rule (only the oldest unfinished delivery of a key is due).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::policy::{self, Verdict};
use super::{Response, Sender};
use crate::jobs::{Pump, pump};
use crate::store::{AttemptRecord, DeliveryState, Job, JobKind, JobWork, Store, StoreError, Ticket};
use crate::{Config, Wakeups};

/// A token bucket: `rate` tokens a second, holding at most `max(rate, 1)`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

/// In-process per-endpoint limits.
#[derive(Debug, Default)]
struct Gate {
    /// Each endpoint's in-flight slots (`cap` permits), made when first used.
    slots: HashMap<String, Arc<Semaphore>>,
    buckets: HashMap<String, Bucket>,
    /// Endpoints whose bucket is empty, until when (unix ms).
    throttled_until: HashMap<String, i64>,
}

impl Gate {
    /// Endpoints the next claim must leave out.
    fn saturated(&mut self, now: i64) -> Vec<String> {
        self.throttled_until.retain(|_, until| *until > now);
        let mut out: Vec<String> =
            self.slots.iter().filter(|(_, s)| s.available_permits() == 0).map(|(k, _)| k.clone()).collect();
        out.extend(self.throttled_until.keys().cloned());
        out
    }

    /// The endpoint's in-flight slots.
    fn slots(&mut self, endpoint: &str, cap: usize) -> Arc<Semaphore> {
        self.slots.entry(endpoint.to_string()).or_insert_with(|| Arc::new(Semaphore::new(cap))).clone()
    }

    /// Take a slot for the endpoint unless it is full.
    fn enter(&mut self, endpoint: &str, cap: usize) -> Option<OwnedSemaphorePermit> {
        self.slots(endpoint, cap).try_acquire_owned().ok()
    }

    /// Take a token at `rate`/s; `Err(when)` if none is available before `when` (unix ms).
    fn take(&mut self, endpoint: &str, rate: f64, now: i64) -> Result<(), i64> {
        let burst = rate.max(1.0);
        let b = self.buckets.entry(endpoint.to_string()).or_insert(Bucket { tokens: burst, last_ms: now });
        b.tokens = (b.tokens + (now - b.last_ms) as f64 / 1000.0 * rate).min(burst);
        b.last_ms = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            // Saturating: a rate stored before it was bounded cannot overflow the clock.
            let when = now.saturating_add(((1.0 - b.tokens) / rate * 1000.0).ceil() as i64);
            self.throttled_until.insert(endpoint.to_string(), when);
            Err(when)
        }
    }
}

/// How many deliveries may be handed over in memory at once (see the pump's settings).
const HANDED: usize = 1024;

/// Run the delivery worker until `stop` turns true.
pub async fn run(store: Store, sender: Sender, wake: Arc<Wakeups>, config: Arc<Config>, stop: watch::Receiver<bool>) {
    let cap = config.endpoint_concurrency.max(1);
    let settings = Pump {
        kind: JobKind::Delivery,
        concurrency: config.delivery_concurrency,
        idle_poll: config.idle_poll,
        lease: config.job_lease.max(config.delivery_timeout * 2),
        // Deliveries without an ordering key come from the plugin stage in memory, up to a
        // quarter of the places to one endpoint; past that they wait in the store.
        handed: HANDED,
        handed_per_key: HANDED / 4,
    };
    let lease = settings.lease;
    // Deliveries in flight at once, claimed or handed over alike.
    let sending = Arc::new(Semaphore::new(config.delivery_concurrency.max(1)));
    let gate = Arc::new(Mutex::new(Gate::default()));
    let claim = |n, _woken| {
        let exclude = gate.lock().expect("gate lock").saturated(store.now_ms());
        let store = store.clone();
        async move { store.claim_deliveries(n, lease, &exclude).await }
    };
    pump(store.clone(), settings, &wake.delivery, stop, claim, |job, ticket| {
        let (store, sender, config, gate, sending) =
            (store.clone(), sender.clone(), config.clone(), gate.clone(), sending.clone());
        async move {
            let endpoint = job.work.target().to_string();
            let entered = gate.lock().expect("gate lock").enter(&endpoint, cap);
            let permit = match (entered, &ticket) {
                (Some(permit), _) => permit,
                // Handed over: wait for the endpoint's next free slot.
                (None, Some(_)) => {
                    let slots = gate.lock().expect("gate lock").slots(&endpoint, cap);
                    slots.acquire_owned().await.expect("semaphore never closed")
                }
                (None, None) => {
                    // Claimed in the same batch as others for a full endpoint: put it back.
                    if let Err(e) = store.defer(&job, store.now_ms()).await {
                        tracing::error!(job_id = job.id, error = %e, "could not put back a delivery; its lease will expire");
                    }
                    return;
                }
            };
            let sending = sending.acquire_owned().await.expect("semaphore never closed");
            let slot = Slot { _permits: (permit, sending), _ticket: ticket };
            let (tenant, event_id, job_id) = (job.tenant_id.clone(), job.event_id.clone(), job.id);
            match deliver(&store, &sender, &config, &gate, slot, job).await {
                Ok(Some(disabled_event)) => {
                    tracing::warn!(%tenant, endpoint, event_id = %disabled_event, "endpoint disabled after sustained failure");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(%tenant, %event_id, job_id, error = %e, "recording a delivery failed; it will be retried when its lease expires")
                }
            }
        }
    })
    .await;
}

/// An endpoint's in-flight slot (and the delivery's handoff ticket), given back when dropped:
/// as soon as the HTTP exchange ends; recording the attempt need not hold it.
struct Slot {
    /// The endpoint's slot and the process's.
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    _ticket: Option<Ticket>,
}

/// Make one attempt; returns the id of an `endpoint.disabled` event if this attempt disabled
/// the endpoint.
async fn deliver(
    store: &Store,
    sender: &Sender,
    config: &Config,
    gate: &Mutex<Gate>,
    slot: Slot,
    job: Job,
) -> Result<Option<String>, StoreError> {
    let JobWork::Delivery { endpoint_id, message_id, body, request } = &job.work else {
        let record = AttemptRecord { error: Some("not a delivery".into()), ..Default::default() };
        return store.record_attempt(&job, DeliveryState::Failed, &record, None).await;
    };
    let Some(ep) = store.endpoint(&job.tenant_id, endpoint_id).await? else {
        let record = AttemptRecord { error: Some("endpoint no longer exists".into()), ..Default::default() };
        return store.record_attempt(&job, DeliveryState::Failed, &record, None).await;
    };
    if !ep.enabled {
        // Handed over (or claimed) just before the endpoint was disabled: it waits in the
        // store, as the claim leaves it, until the endpoint is enabled again.
        store.defer(&job, store.now_ms()).await?;
        return Ok(None);
    }
    if let Some(rate) = ep.rate_limit_per_s.filter(|r| *r > 0.0) {
        let taken = gate.lock().expect("gate lock").take(ep.id.as_str(), rate, store.now_ms());
        if let Err(when) = taken {
            store.defer(&job, when).await?;
            return Ok(None);
        }
    }
    let outbound = sender.policies().get(store, &job.tenant_id).await?;
    let Response { status, error, retry_after, excerpt, duration } =
        sender.send(&ep, &outbound, message_id, body, request.as_ref()).await;
    drop(slot);
    let verdict = policy::classify(status);
    let attempt = job.attempts as usize + 1;
    let state = policy::next_state(
        verdict,
        attempt,
        &config.retry_schedule,
        retry_after,
        store.now_ms(),
        rand::random::<f64>(),
    );
    if verdict == Verdict::Success {
        tracing::debug!(tenant = %job.tenant_id, event_id = %job.event_id, endpoint = %ep.id, attempt, ?status, "delivered");
    } else {
        tracing::warn!(tenant = %job.tenant_id, event_id = %job.event_id, endpoint = %ep.id, attempt, ?status,
            error = error.as_deref().unwrap_or(""), next = ?state, "delivery attempt failed");
    }
    let record = AttemptRecord { status_code: status, error, excerpt, duration_ms: duration.as_millis() as i64 };
    store.record_attempt(&job, state, &record, config.endpoint_disable_after).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_caps_in_flight_per_endpoint() {
        let mut g = Gate::default();
        let a1 = g.enter("a", 2).unwrap();
        let _a2 = g.enter("a", 2).unwrap();
        assert!(g.enter("a", 2).is_none());
        let _b = g.enter("b", 2).unwrap();
        assert_eq!(g.saturated(0), vec!["a".to_string()]);
        drop(a1);
        assert!(g.saturated(0).is_empty());
    }

    #[test]
    fn token_bucket_spaces_requests() {
        let mut g = Gate::default();
        // 2/s: a burst of 2, then one every 500 ms.
        assert_eq!(g.take("a", 2.0, 0), Ok(()));
        assert_eq!(g.take("a", 2.0, 0), Ok(()));
        assert_eq!(g.take("a", 2.0, 0), Err(500));
        assert_eq!(g.saturated(100), vec!["a".to_string()]);
        assert_eq!(g.take("a", 2.0, 500), Ok(()));
        assert!(g.saturated(600).is_empty());
        // 0.5/s: one, then one every 2 s.
        assert_eq!(g.take("b", 0.5, 0), Ok(()));
        assert_eq!(g.take("b", 0.5, 1000), Err(2000));
    }
}
