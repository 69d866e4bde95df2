//! Handing work from stage to stage in memory. A job the store commits while its worker runs
//! in this process is inserted already leased to this process and handed to the worker here,
//! with the data the worker would otherwise read back: no claim, no read. The database keeps
//! the row for durability and recovery — a crash leaves it leased, and it is claimed again when
//! the lease runs out (at once on SQLite, whose start releases every lease) — and serves the
//! jobs that could not be handed over: a worker not running, its in-memory bounds full, a
//! retry, another replica's work.
//!
//! Owns the lanes (one per job kind), their bounds and the tickets that keep them, and the
//! "pending rows committed" flags that tell a worker when a claim from the database can find
//! anything. Must not run SQL: the store inserts the rows, the workers run the jobs.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{Job, JobKind};

/// The lanes of one process, shared by the store and its workers.
#[derive(Debug, Default)]
pub struct Wakeups {
    pub plugin: Lane,
    pub delivery: Lane,
    pub sink: Lane,
}

impl Wakeups {
    pub fn lane(&self, kind: JobKind) -> &Lane {
        match kind {
            JobKind::Plugin => &self.plugin,
            JobKind::Delivery => &self.delivery,
            JobKind::Sink => &self.sink,
        }
    }
}

/// One stage's way in: jobs handed over in memory, and a flag raised when pending rows were
/// committed for it.
#[derive(Debug, Default)]
pub struct Lane {
    /// Pending rows were committed since the worker last claimed.
    pending: AtomicBool,
    notify: Notify,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether a worker takes from this lane: jobs are handed over only then.
    open: Option<Bounds>,
    queue: VecDeque<Handed>,
    /// Jobs handed over and not finished, in all and by key (tenant or endpoint).
    total: usize,
    by_key: HashMap<String, usize>,
}

/// How much of a lane may be held in memory at once, and the lease its jobs are inserted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub total: usize,
    pub per_key: usize,
    pub lease: std::time::Duration,
}

/// A job handed over, with the ticket that counts it against its lane's bounds until the
/// worker is done with it (dropped).
#[derive(Debug)]
pub struct Handed {
    pub job: Job,
    pub ticket: Ticket,
}

/// One place in a lane's bounds; given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    state: Arc<Mutex<State>>,
    key: String,
    lease_ms: i64,
}

impl Ticket {
    /// The lease the job's row is inserted with (ms).
    pub fn lease_ms(&self) -> i64 {
        self.lease_ms
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.state.lock().expect("lane lock");
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.by_key.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.by_key.remove(&self.key);
            }
        }
    }
}

impl Lane {
    /// Pending rows for this stage were committed: raise the flag and wake the worker.
    pub fn pending(&self) {
        self.pending.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether pending rows were committed since the last call (lowers the flag).
    pub fn take_pending(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }

    /// Wait until a job is handed over or pending rows are committed.
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// A worker now takes from this lane, holding at most `bounds` in memory.
    pub fn open(&self, bounds: Bounds) {
        self.state.lock().expect("lane lock").open = Some(bounds);
    }

    /// The worker stops: nothing more is handed over; returns the jobs still queued (their
    /// rows are leased to this process: the caller puts them back).
    pub fn close(&self) -> Vec<Handed> {
        let mut s = self.state.lock().expect("lane lock");
        s.open = None;
        s.queue.drain(..).collect()
    }

    /// A place for one job of `key`, if the lane is open and within its bounds.
    pub fn reserve(&self, key: &str) -> Option<Ticket> {
        let mut s = self.state.lock().expect("lane lock");
        let bounds = s.open?;
        let held = s.by_key.get(key).copied().unwrap_or(0);
        if s.total >= bounds.total || held >= bounds.per_key {
            return None;
        }
        s.total += 1;
        *s.by_key.entry(key.to_string()).or_default() += 1;
        Some(Ticket { state: self.state.clone(), key: key.to_string(), lease_ms: bounds.lease.as_millis() as i64 })
    }

    /// Hand committed jobs over and wake the worker.
    pub fn push(&self, handed: impl IntoIterator<Item = Handed>) {
        let mut s = self.state.lock().expect("lane lock");
        let before = s.queue.len();
        s.queue.extend(handed);
        let added = s.queue.len() > before;
        drop(s);
        if added {
            self.notify.notify_one();
        }
    }

    /// Up to `n` jobs handed over, oldest first.
    pub fn take(&self, n: usize) -> Vec<Handed> {
        let mut s = self.state.lock().expect("lane lock");
        let n = n.min(s.queue.len());
        s.queue.drain(..n).collect()
    }
}

/// What one transaction hands over and leaves pending, published once it has committed
/// ([`Staged::publish`]); dropped uncommitted, its tickets are given back.
#[derive(Debug)]
pub struct Staged {
    wake: Arc<Wakeups>,
    handed: Vec<(JobKind, Handed)>,
    pending: [bool; 3],
}

impl Staged {
    pub fn new(wake: Arc<Wakeups>) -> Self {
        Staged { wake, handed: Vec::new(), pending: [false; 3] }
    }

    /// A place for a job of `kind` and `key` in its lane, if it can be handed over.
    pub fn reserve(&self, kind: JobKind, key: &str) -> Option<Ticket> {
        self.wake.lane(kind).reserve(key)
    }

    /// A job inserted leased to this process, to hand over once committed.
    pub fn hand(&mut self, kind: JobKind, job: Job, ticket: Ticket) {
        self.handed.push((kind, Handed { job, ticket }));
    }

    /// A job of `kind` inserted pending.
    pub fn pending(&mut self, kind: JobKind) {
        self.pending[index(kind)] = true;
    }

    /// The transaction committed: hand the jobs over, and tell the workers of pending rows.
    pub fn publish(mut self) {
        let wake = &self.wake;
        for kind in [JobKind::Plugin, JobKind::Delivery, JobKind::Sink] {
            if self.pending[index(kind)] {
                wake.lane(kind).pending();
            }
        }
        let mut by_kind: [Vec<Handed>; 3] = Default::default();
        for (kind, h) in self.handed.drain(..) {
            by_kind[index(kind)].push(h);
        }
        for (kind, handed) in [JobKind::Plugin, JobKind::Delivery, JobKind::Sink].into_iter().zip(by_kind) {
            wake.lane(kind).push(handed);
        }
    }
}

fn index(kind: JobKind) -> usize {
    match kind {
        JobKind::Plugin => 0,
        JobKind::Delivery => 1,
        JobKind::Sink => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;
    use crate::store::JobWork;

    fn job(id: i64) -> Job {
        Job {
            id,
            tenant_id: TenantId::from_stored("ten_a".into()),
            event_id: format!("evt_{id}"),
            lease: Some(7),
            attempts: 0,
            work: JobWork::Plugin,
        }
    }

    #[test]
    fn a_closed_lane_takes_nothing_and_an_open_one_keeps_its_bounds() {
        let lane = Lane::default();
        assert!(lane.reserve("a").is_none(), "no worker, no handover");
        lane.open(Bounds { total: 3, per_key: 2, lease: std::time::Duration::from_secs(1) });
        let (a1, a2) = (lane.reserve("a").unwrap(), lane.reserve("a").unwrap());
        assert!(lane.reserve("a").is_none(), "a key at its bound");
        let b1 = lane.reserve("b").unwrap();
        assert!(lane.reserve("c").is_none(), "the lane at its bound");
        drop(a1);
        assert!(lane.reserve("a").is_some(), "a ticket given back frees its place");
        drop((a2, b1));
        assert_eq!(lane.state.lock().unwrap().total, 0);
    }

    #[test]
    fn uncommitted_work_gives_its_places_back_and_committed_work_is_handed_over_in_order() {
        let wake = Arc::new(Wakeups::default());
        wake.plugin.open(Bounds { total: 2, per_key: 2, lease: std::time::Duration::from_secs(1) });
        let mut staged = Staged::new(wake.clone());
        let t = staged.reserve(JobKind::Plugin, "ten_a").unwrap();
        assert_eq!(t.lease_ms(), 1000);
        staged.hand(JobKind::Plugin, job(1), t);
        staged.hand(JobKind::Plugin, job(2), staged.reserve(JobKind::Plugin, "ten_a").unwrap());
        drop(staged); // rolled back
        assert!(wake.plugin.take(8).is_empty());
        let mut staged = Staged::new(wake.clone());
        staged.hand(JobKind::Plugin, job(3), staged.reserve(JobKind::Plugin, "ten_a").expect("places given back"));
        staged.hand(JobKind::Plugin, job(4), staged.reserve(JobKind::Plugin, "ten_a").unwrap());
        staged.pending(JobKind::Delivery);
        staged.publish();
        assert!(wake.delivery.take_pending() && !wake.delivery.take_pending(), "the flag is raised once");
        assert!(!wake.plugin.take_pending());
        let ids: Vec<i64> = wake.plugin.take(8).iter().map(|h| h.job.id).collect();
        assert_eq!(ids, [3, 4]);
    }

    #[test]
    fn closing_a_lane_returns_what_is_queued() {
        let lane = Lane::default();
        lane.open(Bounds { total: 4, per_key: 4, lease: std::time::Duration::from_secs(1) });
        let t = lane.reserve("a").unwrap();
        lane.push([Handed { job: job(9), ticket: t }]);
        let left = lane.close();
        assert_eq!(left.len(), 1);
        assert!(lane.reserve("a").is_none());
    }
}
