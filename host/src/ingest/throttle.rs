//! Token buckets on rejected provider requests: one per source address and one per tenant. A
//! request that would be rejected (bad signature, unknown tenant, malformed) takes a token from
//! both; when either is empty it is answered 429 with `Retry-After` and not stored. Accepted
//! requests never take tokens. Time is passed in (unix ms), so tests drive it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// Parse `20/s,100` style settings: `rate,burst` (tokens per second, bucket size).
    pub fn parse(s: &str) -> Result<Rate, String> {
        let (rate, burst) = s.split_once(',').ok_or_else(|| format!("{s:?}: expected rate,burst (e.g. 20,100)"))?;
        let num = |v: &str| v.trim().trim_end_matches("/s").parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0);
        match (num(rate), num(burst)) {
            (Some(per_second), Some(burst)) if burst >= 1.0 => Ok(Rate { per_second, burst }),
            _ => Err(format!("{s:?}: rate and burst must be positive numbers, burst at least 1")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Bucket {
    /// Refill to `now`; whether a token is there.
    fn refill(&mut self, rate: Rate, now_ms: i64) -> bool {
        let elapsed = (now_ms.saturating_sub(self.at_ms)).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at_ms = now_ms;
        self.tokens >= 1.0
    }

    /// Milliseconds until a token is there.
    fn wait_ms(&self, rate: Rate) -> i64 {
        (((1.0 - self.tokens).max(0.0) / rate.per_second) * 1000.0).ceil().min(3_600_000.0) as i64
    }
}

/// Buckets kept per kind; past that, full ones are forgotten (a full bucket is the default).
const MAX_BUCKETS: usize = 100_000;

/// The buckets of rejected requests.
#[derive(Debug)]
pub struct Throttle {
    per_address: Rate,
    per_tenant: Rate,
    buckets: Mutex<(HashMap<IpAddr, Bucket>, HashMap<String, Bucket>)>,
}

impl Throttle {
    pub fn new(per_address: Rate, per_tenant: Rate) -> Self {
        Self { per_address, per_tenant, buckets: Mutex::new((HashMap::new(), HashMap::new())) }
    }

    /// Take a token for a rejected request from `source` to `tenant` (either may be unknown);
    /// `Err(retry_after_ms)` when one of the buckets is empty (nothing is taken then).
    pub fn take(&self, source: Option<IpAddr>, tenant: Option<&str>, now_ms: i64) -> Result<(), i64> {
        let mut guard = self.buckets.lock().expect("throttle lock");
        let (addrs, tenants) = &mut *guard;
        let still_spent = |rate: Rate| {
            move |b: &mut Bucket| {
                let mut now = *b;
                now.refill(rate, now_ms);
                now.tokens < rate.burst
            }
        };
        if addrs.len() >= MAX_BUCKETS {
            let keep = still_spent(self.per_address);
            addrs.retain(|_, b| keep(b));
        }
        if tenants.len() >= MAX_BUCKETS {
            let keep = still_spent(self.per_tenant);
            tenants.retain(|_, b| keep(b));
        }
        let fresh = |rate: Rate| Bucket { tokens: rate.burst, at_ms: now_ms };
        let mut addr = source.map(|ip| *addrs.entry(ip).or_insert_with(|| fresh(self.per_address)));
        let mut ten = tenant.map(|t| *tenants.entry(t.to_string()).or_insert_with(|| fresh(self.per_tenant)));
        let addr_ok = addr.as_mut().is_none_or(|b| b.refill(self.per_address, now_ms));
        let ten_ok = ten.as_mut().is_none_or(|b| b.refill(self.per_tenant, now_ms));
        let result = if addr_ok && ten_ok {
            if let Some(b) = addr.as_mut() {
                b.tokens -= 1.0;
            }
            if let Some(b) = ten.as_mut() {
                b.tokens -= 1.0;
            }
            Ok(())
        } else {
            let wait_a = addr.filter(|_| !addr_ok).map_or(0, |b| b.wait_ms(self.per_address));
            let wait_t = ten.filter(|_| !ten_ok).map_or(0, |b| b.wait_ms(self.per_tenant));
            Err(wait_a.max(wait_t).max(1))
        };
        if let (Some(ip), Some(b)) = (source, addr) {
            addrs.insert(ip, b);
        }
        if let (Some(t), Some(b)) = (tenant, ten) {
            tenants.insert(t.to_string(), b);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_its_rate_and_a_tenant_is_shared() {
        let t = Throttle::new(Rate { per_second: 20.0, burst: 100.0 }, Rate { per_second: 100.0, burst: 150.0 });
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "198.51.100.9".parse().unwrap();
        let now = 1_000_000;
        assert!((0..100).all(|_| t.take(Some(a), Some("ten_x"), now).is_ok()));
        let wait = t.take(Some(a), Some("ten_x"), now).unwrap_err();
        assert_eq!(wait, 50, "a token every 50 ms at 20/s");
        assert!(t.take(Some(a), Some("ten_x"), now + 50).is_ok());
        // Another address reaches the same tenant until the tenant's bucket (150, refilled by 5
        // in those 50 ms) is empty.
        assert!((0..54).all(|_| t.take(Some(b), Some("ten_x"), now + 50).is_ok()));
        assert!(t.take(Some(b), Some("ten_x"), now + 50).is_err(), "the tenant's bucket is shared");
        assert!(t.take(Some(b), Some("ten_y"), now + 50).is_ok(), "another tenant is not");
        assert!(t.take(None, None, now).is_ok());
    }

    #[test]
    fn settings_parse() {
        assert_eq!(Rate::parse("20/s,100").unwrap(), Rate { per_second: 20.0, burst: 100.0 });
        assert!(Rate::parse("0,100").is_err() && Rate::parse("1e-300").is_err() && Rate::parse("5,0").is_err());
    }
}
