//! The retry policy of DESIGN.md: success on 2xx; retry on 5xx, 408, 429, timeouts and
//! connection errors, after the configured schedule (with up to 10 % jitter, `Retry-After`
//! honoured up to a cap); any other status is a permanent failure; after the last retry the
//! delivery is dead-lettered. Pure functions.

use std::time::Duration;

use crate::store::DeliveryState;

/// The longest `Retry-After` honoured.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// How one attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Retryable,
    Permanent,
}

/// Classify a response status; `None` means no response (timeout, connection error).
pub fn classify(status: Option<u16>) -> Verdict {
    match status {
        Some(s) if (200..300).contains(&s) => Verdict::Success,
        None | Some(408) | Some(429) => Verdict::Retryable,
        Some(s) if s >= 500 => Verdict::Retryable,
        Some(_) => Verdict::Permanent,
    }
}

/// The job's next state after attempt number `attempt` (1-based) ended with `verdict`.
/// `jitter` in [0, 1) scales up to 10 % extra delay.
pub fn next_state(
    verdict: Verdict,
    attempt: usize,
    schedule: &[Duration],
    retry_after: Option<Duration>,
    now_ms: i64,
    jitter: f64,
) -> DeliveryState {
    match verdict {
        Verdict::Success => DeliveryState::Succeeded,
        Verdict::Permanent => DeliveryState::Failed,
        Verdict::Retryable => match schedule.get(attempt - 1) {
            None => DeliveryState::Dead,
            Some(base) => {
                let jittered = base.mul_f64(1.0 + 0.1 * jitter.clamp(0.0, 1.0));
                let delay = retry_after.map_or(jittered, |ra| jittered.max(ra.min(RETRY_AFTER_CAP)));
                DeliveryState::RetryAt(now_ms + delay.as_millis() as i64)
            }
        },
    }
}

/// Parse a `Retry-After` header given in seconds (an HTTP date is ignored).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Duration> {
        crate::config::parse_schedule(crate::config::DEFAULT_RETRY_SCHEDULE).unwrap()
    }

    #[test]
    fn classification() {
        assert_eq!(classify(Some(200)), Verdict::Success);
        assert_eq!(classify(Some(204)), Verdict::Success);
        for s in [Some(500), Some(503), Some(408), Some(429), None] {
            assert_eq!(classify(s), Verdict::Retryable, "{s:?}");
        }
        for s in [400, 401, 404, 410, 301] {
            assert_eq!(classify(Some(s)), Verdict::Permanent, "{s}");
        }
    }

    #[test]
    fn follows_the_schedule_then_dead_letters() {
        let s = schedule();
        assert_eq!(next_state(Verdict::Retryable, 1, &s, None, 0, 0.0), DeliveryState::RetryAt(60_000));
        assert_eq!(next_state(Verdict::Retryable, 6, &s, None, 0, 0.0), DeliveryState::RetryAt(86_400_000));
        assert_eq!(next_state(Verdict::Retryable, 7, &s, None, 0, 0.0), DeliveryState::Dead);
        assert_eq!(next_state(Verdict::Permanent, 1, &s, None, 0, 0.0), DeliveryState::Failed);
        assert_eq!(next_state(Verdict::Success, 3, &s, None, 0, 0.0), DeliveryState::Succeeded);
    }

    #[test]
    fn jitter_is_bounded_and_retry_after_honoured_with_cap() {
        let s = schedule();
        let DeliveryState::RetryAt(at) = next_state(Verdict::Retryable, 1, &s, None, 0, 0.999) else { panic!() };
        assert!((60_000..=66_000).contains(&at));
        let ra = Some(Duration::from_secs(600));
        assert_eq!(next_state(Verdict::Retryable, 1, &s, ra, 0, 0.0), DeliveryState::RetryAt(600_000));
        let huge = Some(Duration::from_secs(10 * 86_400));
        assert_eq!(next_state(Verdict::Retryable, 1, &s, huge, 0, 0.0), DeliveryState::RetryAt(86_400_000));
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
