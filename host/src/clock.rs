//! Time as the service reads it: the system clock, shifted by hand in tests so that leases run
//! out, retention windows pass and retries come due without waiting. One [`Clock`] is shared by
//! the store and every worker of a process; nothing else here.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The system clock plus a shift that only [`Clock::advance`] changes (zero in production).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    shift_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        crate::now_ms() + self.shift_ms.load(Ordering::Relaxed)
    }

    /// Move this clock (and every handle cloned from it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.shift_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_handle() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(other.now_ms() - before >= 3_600_000);
        assert!(Clock::system().now_ms() < other.now_ms(), "a fresh clock is not shifted");
    }
}
