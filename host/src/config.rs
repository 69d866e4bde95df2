//! Settings: what the service reads at start, validated once. Parsing helpers for durations,
//! retry schedules and CIDR lists live here. Must not read the environment anywhere else.

use std::time::Duration;

use ipnet::IpNet;

use crate::plugin::Limits;

/// Largest plugin component accepted on upload unless configured (`HOOKHOST_MAX_PLUGIN_BYTES`):
/// componentize-py and componentize-js components are 10–20 MB.
pub const DEFAULT_MAX_PLUGIN_BYTES: usize = 64 << 20;

/// Everything the service is configured with. Built by the CLI from flags and `HOOKHOST_*`
/// variables, or directly by tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://…` database URL; created on first run.
    pub database_url: String,
    /// Operator bearer token for `/v1/…` (all tenants).
    pub admin_token: String,
    /// The keys secrets are sealed with (`HOOKHOST_SECRET_KEY`: base64, comma-separated, the
    /// sealing one first); on SQLite, `None` keeps one in a file beside the database.
    pub secret_key: Option<String>,
    /// Base URL providers sign against (no trailing slash), e.g. `https://hooks.example.com`.
    pub public_url: String,
    /// Delays between delivery attempts; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Largest provider request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Largest plugin component accepted on upload.
    pub max_plugin_bytes: usize,
    /// Time an endpoint has to answer a delivery.
    pub delivery_timeout: Duration,
    /// Outbound address ranges let through although private/loopback/link-local.
    pub outbound_allow: Vec<IpNet>,
    /// Stripe signature timestamp tolerance.
    pub stripe_tolerance: Duration,
    /// Sandbox limits for each plugin invocation.
    pub plugin_limits: Limits,
    /// The ceiling of tenants the operator has not given one of their own: overrides (a JSON
    /// object of limit fields and capabilities) of the defaults above, with no capability.
    pub tenant_ceiling: serde_json::Value,
    /// Plugin invocations run at once.
    pub plugin_concurrency: usize,
    /// Plugin invocations of one tenant in flight at once, so one tenant's slow or hostile
    /// plugin cannot take every slot.
    pub plugin_tenant_concurrency: usize,
    /// Keys a tenant's key-value store may hold.
    pub kv_max_keys: u64,
    /// Attempts of a plugin job whose failure may pass (a host fault, a `retryable` plugin
    /// error) before its event is `failed`.
    pub plugin_attempts: u32,
    /// Delay before the second attempt; doubles for each one after.
    pub plugin_retry_backoff: Duration,
    /// Plugin compilations at once (each takes one core).
    pub compile_concurrency: usize,
    /// Compiled plugin code kept in memory, bytes (least recently used out).
    pub plugin_cache_bytes: usize,
    /// Where compiled plugins are kept between runs (`None`: not kept; compiled at each start).
    pub plugin_artifacts: Option<std::path::PathBuf>,
    /// Most bytes kept there (least recently used out).
    pub plugin_artifacts_bytes: u64,
    /// Linear memory kept mapped per sandbox pool slot between instances, bytes.
    pub plugin_keep_resident: usize,
    /// Per-tenant quotas: named plugins, versions of one plugin, stored component bytes.
    pub max_plugins: u64,
    pub max_plugin_versions: u64,
    pub max_plugin_storage_bytes: u64,
    /// Per-tenant caps on endpoints and sinks.
    pub max_endpoints: u64,
    pub max_sinks: u64,
    /// Bytes one event may enqueue across its deliveries and sink writes (each distinct body
    /// counted once).
    pub max_event_fanout_bytes: usize,
    /// Budgets of rejected provider requests per source address and per tenant (429 beyond).
    pub rejected_per_address: crate::ingest::throttle::Rate,
    pub rejected_per_tenant: crate::ingest::throttle::Rate,
    /// How long receipts, events, finished jobs, attempts and plugin runs are kept.
    pub retention: Duration,
    /// How long rejected receipts are kept.
    pub rejected_retention: Duration,
    /// How often the retention sweeper runs.
    pub sweep_interval: Duration,
    /// How long after its parent ended a call still waiting on its dial result is closed from
    /// what is known.
    pub call_settle: Duration,
    /// How long an open call may go without any signal before it is closed as failed.
    pub call_abandon: Duration,
    /// Connections open at once on the listener.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
    /// Bearer token `/metrics` asks for (open when `None`).
    pub metrics_token: Option<String>,
    /// Longest a dry run request works; events not reached by then are reported as skipped.
    pub dry_run_timeout: Duration,
    /// Threads that run plugin invocations, apart from those that answer HTTP (0: none of
    /// their own; plugins then share the service's runtime).
    pub plugin_threads: usize,
    /// Deliveries in flight at once.
    pub delivery_concurrency: usize,
    /// Longest a worker sleeps before looking for due jobs again.
    pub idle_poll: Duration,
    /// How long a claimed job is leased before another worker may take it.
    pub job_lease: Duration,
    /// Deliveries in flight at once to one endpoint (so one slow receiver cannot hold others).
    pub endpoint_concurrency: usize,
    /// Disable an endpoint whose every attempt has failed for this long (`None`: never).
    pub endpoint_disable_after: Option<Duration>,
    /// How long a rotated-out endpoint secret keeps signing.
    pub secret_overlap: Duration,
    /// Allow plain-http endpoint URLs to any host (otherwise only to allow-listed addresses).
    pub allow_http: bool,
    /// How long a console sign-in lasts.
    pub console_session: Duration,
    /// Console sign-in attempts per source address: rate per second, burst.
    pub console_sign_ins: crate::ingest::throttle::Rate,
}

impl Config {
    /// Defaults for a database URL; the public URL defaults to `http://127.0.0.1:8080`.
    pub fn new(database_url: impl Into<String>, admin_token: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            admin_token: admin_token.into(),
            secret_key: None,
            public_url: "http://127.0.0.1:8080".into(),
            retry_schedule: parse_schedule(DEFAULT_RETRY_SCHEDULE).expect("default schedule parses"),
            max_body_bytes: 256 * 1024,
            max_plugin_bytes: DEFAULT_MAX_PLUGIN_BYTES,
            delivery_timeout: Duration::from_secs(30),
            outbound_allow: Vec::new(),
            stripe_tolerance: Duration::from_secs(300),
            plugin_limits: Limits::default(),
            tenant_ceiling: serde_json::json!({}),
            plugin_concurrency: 16,
            plugin_tenant_concurrency: 4,
            kv_max_keys: 10_000,
            plugin_attempts: 5,
            plugin_retry_backoff: Duration::from_secs(1),
            compile_concurrency: 1,
            plugin_cache_bytes: crate::plugin::DEFAULT_CACHE_BYTES,
            plugin_artifacts: Some(std::env::temp_dir().join("hookhost-artifacts")),
            plugin_artifacts_bytes: 1 << 30,
            plugin_keep_resident: crate::plugin::DEFAULT_KEEP_RESIDENT,
            max_plugins: 20,
            max_plugin_versions: 50,
            max_plugin_storage_bytes: 256 << 20,
            max_endpoints: 50,
            max_sinks: 20,
            max_event_fanout_bytes: 16 << 20,
            dry_run_timeout: Duration::from_secs(30),
            rejected_per_address: crate::ingest::throttle::Rate { per_second: 20.0, burst: 100.0 },
            rejected_per_tenant: crate::ingest::throttle::Rate { per_second: 100.0, burst: 500.0 },
            retention: Duration::from_secs(30 * 86_400),
            rejected_retention: Duration::from_secs(7 * 86_400),
            sweep_interval: Duration::from_secs(60),
            call_settle: Duration::from_secs(60),
            call_abandon: Duration::from_secs(4 * 3600),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            metrics_token: None,
            plugin_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            delivery_concurrency: 64,
            idle_poll: Duration::from_millis(500),
            job_lease: Duration::from_secs(120),
            endpoint_concurrency: 16,
            endpoint_disable_after: Some(Duration::from_secs(5 * 86_400)),
            secret_overlap: Duration::from_secs(86_400),
            allow_http: false,
            console_session: Duration::from_secs(8 * 3600),
            console_sign_ins: crate::ingest::throttle::Rate { per_second: 0.2, burst: 10.0 },
        }
    }
}

impl Config {
    /// Check what a library caller (or the CLI) set: counts that must be at least one,
    /// durations that must not be zero, limits the sandbox can hold. `run` calls it first, so a
    /// `plugin_concurrency` of 0 is refused rather than hanging the pump.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one = [
            ("plugin_concurrency", self.plugin_concurrency),
            ("plugin_tenant_concurrency", self.plugin_tenant_concurrency),
            ("delivery_concurrency", self.delivery_concurrency),
            ("endpoint_concurrency", self.endpoint_concurrency),
            ("compile_concurrency", self.compile_concurrency),
            ("max_connections", self.max_connections),
            ("plugin_attempts", self.plugin_attempts as usize),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
        }
        let not_zero = [
            ("job_lease", self.job_lease),
            ("idle_poll", self.idle_poll),
            ("delivery_timeout", self.delivery_timeout),
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("sweep_interval", self.sweep_interval),
            ("call_settle", self.call_settle),
            ("call_abandon", self.call_abandon),
            ("console_session", self.console_session),
            ("dry_run_timeout", self.dry_run_timeout),
        ];
        if let Some((name, _)) = not_zero.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::Invalid(format!("{name} must be longer than zero")));
        }
        if self.retry_schedule.is_empty() {
            return Err(ConfigError::Invalid("retry schedule is empty".into()));
        }
        if self.plugin_limits.memory_bytes > crate::plugin::POOL_MAX_MEMORY {
            return Err(ConfigError::Invalid(format!(
                "plugin memory limit above the pool's {} bytes",
                crate::plugin::POOL_MAX_MEMORY
            )));
        }
        if self.call_abandon < self.call_settle {
            return Err(ConfigError::Invalid("calls cannot be abandoned before they are settled".into()));
        }
        if self.rejected_retention > self.retention {
            return Err(ConfigError::Invalid("rejected receipts cannot be kept longer than the rest".into()));
        }
        Ok(())
    }
}

/// The retry schedule of DESIGN.md.
pub const DEFAULT_RETRY_SCHEDULE: &str = "1m,5m,30m,2h,12h,24h";

/// A bad setting, named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid duration {0:?}: expected a number with a unit ms, s, m, h or d (e.g. 50ms, 5m)")]
    Duration(String),
    #[error("invalid CIDR {0:?}: expected e.g. 127.0.0.0/8 or ::1/128")]
    Cidr(String),
    #[error("{0}")]
    Invalid(String),
}

/// Parse `50ms`, `30s`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| ConfigError::Duration(s.into()))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1_000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(ConfigError::Duration(s.into())),
    };
    Ok(Duration::from_millis(ms))
}

/// Parse a comma-separated retry schedule such as `1m,5m,30m`.
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, ConfigError> {
    let delays = s.split(',').filter(|p| !p.trim().is_empty()).map(parse_duration).collect::<Result<Vec<_>, _>>()?;
    if delays.is_empty() {
        return Err(ConfigError::Invalid("retry schedule is empty".into()));
    }
    Ok(delays)
}

/// Parse a comma-separated list of CIDRs; a bare address means just that address.
pub fn parse_cidrs(s: &str) -> Result<Vec<IpNet>, ConfigError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::Cidr(p.into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_schedules() {
        assert_eq!(parse_duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5 weeks").is_err());
        let s = parse_schedule(DEFAULT_RETRY_SCHEDULE).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s[5], Duration::from_secs(86_400));
        assert!(parse_schedule("").is_err());
    }

    #[test]
    fn settings_a_library_caller_gets_wrong_are_refused() {
        let ok = Config::new("sqlite://x.db", "t");
        assert_eq!(ok.validate(), Ok(()));
        let zero = Config { plugin_concurrency: 0, ..ok.clone() };
        assert_eq!(zero.validate(), Err(ConfigError::Invalid("plugin_concurrency must be at least 1".into())));
        let no_lease = Config { job_lease: Duration::ZERO, ..ok.clone() };
        assert!(no_lease.validate().is_err());
        let backwards = Config { rejected_retention: Duration::from_secs(90 * 86_400), ..ok };
        assert!(backwards.validate().is_err());
    }

    #[test]
    fn cidrs() {
        let v = parse_cidrs("127.0.0.0/8, ::1").unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert_eq!(parse_cidrs("10.0.0.0/33"), Err(ConfigError::Cidr("10.0.0.0/33".into())));
    }
}
