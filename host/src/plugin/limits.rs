//! Per-invocation sandbox limits and who may set them.
//!
//! Limits have two owners. The operator sets each tenant's [`Ceiling`]: the most it may use of
//! every limit, and the capabilities it is granted (`kv_write`, `http_allow`, `outbound_allow`;
//! none by default). The tenant sets its own overrides at or below the ceiling and can narrow,
//! never widen, its capabilities. The effective limits of an invocation are the configured
//! defaults with the tenant's overrides, clamped to its ceiling, so a ceiling lowered later
//! takes effect at once.
//!
//! Pure: parses and checks JSON, owns no state, touches neither SQL nor wasmtime.

use std::time::Duration;

use ipnet::IpNet;
use serde_json::{Value, json};

use super::fetch::{self, HttpRules};

/// Per-invocation limits, and the capabilities the invocation has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly wasm instructions) per invocation.
    pub fuel: u64,
    /// Wall-clock deadline per invocation, instantiation included.
    pub timeout: Duration,
    /// Linear memory cap per instance, bytes.
    pub memory_bytes: usize,
    /// Sum of the sizes of the returned actions' payloads, bytes.
    pub output_bytes: usize,
    /// Actions per invocation.
    pub max_actions: usize,
    /// Log bytes captured per invocation.
    pub log_bytes: usize,
    /// Whether the plugin may write the tenant's key-value store (`kv-set`).
    pub kv_write: bool,
    /// Outbound HTTP (`http-fetch`): allowed hosts (none by default), timeout, caps.
    pub http: HttpRules,
    /// Internal address ranges this tenant's outbound requests (deliveries, sinks, fetches)
    /// may reach beyond the operator's global `HOOKHOST_OUTBOUND_ALLOW`.
    pub outbound_allow: Vec<IpNet>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 500_000_000,
            timeout: Duration::from_secs(1),
            memory_bytes: 64 << 20,
            output_bytes: 1 << 20,
            max_actions: 100,
            log_bytes: 16 << 10,
            kv_write: false,
            http: HttpRules::default(),
            outbound_allow: Vec::new(),
        }
    }
}

/// The largest memory a pool slot can hold; per-invocation caps are at most this.
pub const POOL_MAX_MEMORY: usize = 256 << 20;

/// Why a tenant's limits were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// Not a limit, wrong type, or out of the absolute range.
    #[error("{0}")]
    Invalid(String),
    /// Above the operator's ceiling for this tenant.
    #[error("{field} {value} is above this tenant's ceiling of {ceiling}")]
    AboveCeiling { field: String, value: String, ceiling: String },
    /// A capability the operator has not granted.
    #[error("{field}: {detail}; only the operator grants capabilities (PUT /v1/tenants/{{id}}/ceiling)")]
    NotGranted { field: String, detail: String },
}

impl Limits {
    /// Set one field from its JSON value, refusing wrong types and values out of range.
    fn set(&mut self, key: &str, value: &Value) -> Result<(), String> {
        let num = |lo: u64, hi: u64| -> Result<u64, String> {
            let n = value.as_u64().ok_or_else(|| format!("{key} must be a non-negative integer"))?;
            if !(lo..=hi).contains(&n) {
                return Err(format!("{key} must be between {lo} and {hi}, got {n}"));
            }
            Ok(n)
        };
        match key {
            "fuel" => self.fuel = num(1_000, 100_000_000_000)?,
            "timeout_ms" => self.timeout = Duration::from_millis(num(1, 60_000)?),
            "memory_bytes" => self.memory_bytes = num(1 << 20, POOL_MAX_MEMORY as u64)? as usize,
            "output_bytes" => self.output_bytes = num(1, 16 << 20)? as usize,
            "max_actions" => self.max_actions = num(1, 10_000)? as usize,
            "log_bytes" => self.log_bytes = num(0, 1 << 20)? as usize,
            "kv_write" => self.kv_write = value.as_bool().ok_or("kv_write must be true or false")?,
            "http_allow" => {
                let hosts: Vec<String> = serde_json::from_value(value.clone())
                    .map_err(|_| "http_allow must be a list of host names".to_string())?;
                if hosts.len() > 32 {
                    return Err("http_allow holds at most 32 hosts".into());
                }
                if let Some(bad) = hosts.iter().find(|h| !fetch::valid_pattern(h)) {
                    return Err(format!("http_allow: {bad:?} is not a host name or *.domain"));
                }
                self.http.allow = hosts;
            }
            "http_timeout_ms" => self.http.timeout = Duration::from_millis(num(1, 30_000)?),
            "http_max_bytes" => self.http.max_bytes = num(1, 4 << 20)? as usize,
            "http_max_requests" => self.http.max_requests = num(0, 32)? as usize,
            "outbound_allow" => {
                let list: Vec<String> = serde_json::from_value(value.clone())
                    .map_err(|_| "outbound_allow must be a list of CIDRs".to_string())?;
                if list.len() > 32 {
                    return Err("outbound_allow holds at most 32 ranges".into());
                }
                self.outbound_allow =
                    crate::config::parse_cidrs(&list.join(",")).map_err(|e| format!("outbound_allow: {e}"))?;
            }
            other => return Err(format!("unknown limit {other:?}")),
        }
        Ok(())
    }

    /// These limits with `overrides` applied: a JSON object with any of `fuel`, `timeout_ms`,
    /// `memory_bytes`, `output_bytes`, `max_actions`, `log_bytes`, `kv_write`, `http_allow`,
    /// `http_timeout_ms`, `http_max_bytes`, `http_max_requests`, `outbound_allow` (`null`
    /// leaves a field as it is). Unknown keys, wrong types and values out of range are refused
    /// with the reason.
    pub fn with_overrides(&self, overrides: &Value) -> Result<Limits, String> {
        let obj = overrides.as_object().ok_or("limits are a JSON object")?;
        let mut out = self.clone();
        for (key, value) in obj.iter().filter(|(_, v)| !v.is_null()) {
            out.set(key, value)?;
        }
        Ok(out)
    }

    /// The numeric limits as `(field, value)`, each one where more is more permissive.
    fn numbers(&self) -> [(&'static str, u64); 9] {
        [
            ("fuel", self.fuel),
            ("timeout_ms", self.timeout.as_millis() as u64),
            ("memory_bytes", self.memory_bytes as u64),
            ("output_bytes", self.output_bytes as u64),
            ("max_actions", self.max_actions as u64),
            ("log_bytes", self.log_bytes as u64),
            ("http_timeout_ms", self.http.timeout.as_millis() as u64),
            ("http_max_bytes", self.http.max_bytes as u64),
            ("http_max_requests", self.http.max_requests as u64),
        ]
    }

    /// Every limit at most `ceiling`'s, and no capability it does not grant.
    fn clamped_to(mut self, ceiling: &Limits) -> Limits {
        self.fuel = self.fuel.min(ceiling.fuel);
        self.timeout = self.timeout.min(ceiling.timeout);
        self.memory_bytes = self.memory_bytes.min(ceiling.memory_bytes);
        self.output_bytes = self.output_bytes.min(ceiling.output_bytes);
        self.max_actions = self.max_actions.min(ceiling.max_actions);
        self.log_bytes = self.log_bytes.min(ceiling.log_bytes);
        self.http.timeout = self.http.timeout.min(ceiling.http.timeout);
        self.http.max_bytes = self.http.max_bytes.min(ceiling.http.max_bytes);
        self.http.max_requests = self.http.max_requests.min(ceiling.http.max_requests);
        self.kv_write &= ceiling.kv_write;
        self.http.allow.retain(|h| fetch::host_allowed(h, &ceiling.http.allow));
        self.outbound_allow.retain(|net| ceiling.outbound_allow.iter().any(|c| c.contains(net)));
        self
    }

    /// The limits as the API shows them.
    pub fn to_json(&self) -> Value {
        json!({
            "fuel": self.fuel,
            "timeout_ms": self.timeout.as_millis() as u64,
            "memory_bytes": self.memory_bytes,
            "output_bytes": self.output_bytes,
            "max_actions": self.max_actions,
            "log_bytes": self.log_bytes,
            "kv_write": self.kv_write,
            "http_allow": self.http.allow,
            "http_timeout_ms": self.http.timeout.as_millis() as u64,
            "http_max_bytes": self.http.max_bytes,
            "http_max_requests": self.http.max_requests,
            "outbound_allow": self.outbound_allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    }
}

/// The most a tenant may use, and what it is granted: operator-owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling(pub Limits);

impl Ceiling {
    /// The ceiling of a tenant the operator has not set one for: the configured defaults, with
    /// no capability.
    pub fn default_for(defaults: &Limits) -> Ceiling {
        Ceiling(Limits {
            kv_write: false,
            http: HttpRules { allow: Vec::new(), ..defaults.http.clone() },
            outbound_allow: Vec::new(),
            ..defaults.clone()
        })
    }

    /// The ceiling of tenants without one of their own: the defaults with no capability, and
    /// the operator's `overrides` (`HOOKHOST_TENANT_CEILING`).
    pub fn configured(defaults: &Limits, overrides: &Value) -> Result<Ceiling, String> {
        Ceiling::default_for(defaults).with_overrides(overrides)
    }

    /// A tenant's ceiling: this (default) one with the operator's `stored` overrides for it; a
    /// stored ceiling that no longer parses falls back to this one (logged).
    pub fn for_tenant(&self, stored: Option<&Value>) -> Ceiling {
        let Some(stored) = stored else { return self.clone() };
        self.with_overrides(stored).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored tenant ceiling no longer applies; using the default ceiling");
            self.clone()
        })
    }

    /// This ceiling with the operator's overrides (the fields of [`Limits::with_overrides`]).
    pub fn with_overrides(&self, overrides: &Value) -> Result<Ceiling, String> {
        self.0.with_overrides(overrides).map(Ceiling)
    }

    /// Check a tenant's own overrides against this ceiling; the effective limits if they fit.
    /// An operator setting limits is held to the ceiling too (it raises the ceiling instead).
    pub fn check(&self, defaults: &Limits, overrides: &Value) -> Result<Limits, LimitsError> {
        let asked = defaults.with_overrides(overrides).map_err(LimitsError::Invalid)?;
        let set = |k: &str| overrides.get(k).is_some_and(|v| !v.is_null());
        for ((field, value), (_, max)) in asked.numbers().into_iter().zip(self.0.numbers()) {
            if set(field) && value > max {
                return Err(LimitsError::AboveCeiling {
                    field: field.into(),
                    value: value.to_string(),
                    ceiling: max.to_string(),
                });
            }
        }
        let not_granted = |field: &str, detail: String| LimitsError::NotGranted { field: field.into(), detail };
        if set("kv_write") && asked.kv_write && !self.0.kv_write {
            return Err(not_granted("kv_write", "key-value writes are not granted to this tenant".into()));
        }
        if set("http_allow")
            && let Some(h) = asked.http.allow.iter().find(|h| !fetch::host_allowed(h, &self.0.http.allow))
        {
            return Err(not_granted("http_allow", format!("host {h:?} is not granted to this tenant")));
        }
        if set("outbound_allow") {
            return Err(not_granted("outbound_allow", "internal ranges are granted on the ceiling only".into()));
        }
        Ok(self.effective(defaults, Some(overrides)))
    }

    /// The limits an invocation runs under: the defaults with the tenant's stored overrides,
    /// capabilities from this ceiling unless the tenant narrowed them, everything clamped to
    /// the ceiling. Never fails: overrides that no longer parse are ignored (and logged).
    pub fn effective(&self, defaults: &Limits, overrides: Option<&Value>) -> Limits {
        let mut base = defaults.clone();
        base.kv_write = self.0.kv_write;
        base.http.allow = self.0.http.allow.clone();
        base.outbound_allow = self.0.outbound_allow.clone();
        let mut own = overrides.cloned().unwrap_or_else(|| json!({}));
        if let Some(obj) = own.as_object_mut() {
            obj.remove("outbound_allow");
        }
        let limits = base.with_overrides(&own).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored limit overrides no longer apply; using the defaults");
            base.clone()
        });
        limits.clamped_to(&self.0)
    }

    /// The ceiling as the API shows it.
    pub fn to_json(&self) -> Value {
        self.0.to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceiling(v: Value) -> Ceiling {
        Ceiling::default_for(&Limits::default()).with_overrides(&v).unwrap()
    }

    #[test]
    fn a_tenant_cannot_go_above_its_ceiling_or_grant_itself_capabilities() {
        let d = Limits::default();
        let c = Ceiling::default_for(&d);
        let above = c.check(&d, &json!({ "timeout_ms": 60_000 })).unwrap_err();
        assert!(matches!(&above, LimitsError::AboveCeiling { field, .. } if field == "timeout_ms"), "{above}");
        assert!(matches!(c.check(&d, &json!({ "fuel": 1e11 as u64 })), Err(LimitsError::AboveCeiling { .. })));
        for grant in [
            json!({ "kv_write": true }),
            json!({ "http_allow": ["x.com"] }),
            json!({ "outbound_allow": ["10.0.0.0/8"] }),
        ] {
            assert!(matches!(c.check(&d, &grant), Err(LimitsError::NotGranted { .. })), "{grant}");
        }
        assert!(matches!(c.check(&d, &json!({ "fuel": 0 })), Err(LimitsError::Invalid(_))));
        let lower = c.check(&d, &json!({ "timeout_ms": 150, "kv_write": false })).unwrap();
        assert_eq!(lower.timeout, Duration::from_millis(150));
    }

    #[test]
    fn the_ceiling_grants_and_the_tenant_narrows() {
        let d = Limits::default();
        let c = ceiling(json!({ "kv_write": true, "http_allow": ["*.crm.example"], "timeout_ms": 3000,
                                "outbound_allow": ["10.1.0.0/16"] }));
        let e = c.effective(&d, None);
        assert!(e.kv_write, "granted capabilities apply at once");
        assert_eq!(e.http.allow, vec!["*.crm.example".to_string()]);
        assert_eq!(e.timeout, d.timeout, "the default, not the ceiling");
        assert_eq!(e.outbound_allow.len(), 1);
        let own =
            c.check(&d, &json!({ "http_allow": ["eu.crm.example"], "kv_write": false, "timeout_ms": 3000 })).unwrap();
        assert_eq!((own.kv_write, own.timeout.as_millis()), (false, 3000));
        assert!(matches!(
            c.check(&d, &json!({ "http_allow": ["crm.example.evil"] })),
            Err(LimitsError::NotGranted { .. })
        ));
        // A ceiling lowered later clamps what was stored under the old one.
        let lowered = ceiling(json!({ "timeout_ms": 200 }));
        let e = lowered.effective(&d, Some(&json!({ "timeout_ms": 3000, "http_allow": ["eu.crm.example"] })));
        assert_eq!(e.timeout, Duration::from_millis(200));
        assert!(e.http.allow.is_empty() && !e.kv_write);
    }

    #[test]
    fn a_default_above_a_lowered_ceiling_is_clamped() {
        let d = Limits::default();
        let c = ceiling(json!({ "memory_bytes": 2 << 20 }));
        assert_eq!(c.effective(&d, None).memory_bytes, 2 << 20);
    }
}
