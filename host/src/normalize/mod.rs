//! The canonical event model and the mapping from each provider's verified request to it.
//!
//! Pure functions over values: no I/O, no clock (the caller passes the receipt time), no SQL.
//! The envelope here is the public contract of DESIGN.md.

pub mod billing;
pub mod calls;
pub mod exotel;
pub mod sms;
pub mod stripe;
pub mod twilio;
pub mod vendor;

use serde_json::{Value, json};

use crate::TenantId;

/// A canonical event, as stored and as given to plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalEvent {
    /// `evt_…`.
    pub id: String,
    pub tenant_id: TenantId,
    /// e.g. `call.missed`, `billing.subscription.updated`.
    pub event_type: String,
    /// Unix seconds, when the provider says it happened (receipt time if it does not say).
    pub occurred_at: i64,
    /// The provider it came from.
    pub source: &'static str,
    pub is_test: bool,
    /// Canonical payload (an object), always carrying the provider's identifiers.
    pub payload: Value,
}

impl CanonicalEvent {
    /// hookhost's own `endpoint.disabled`: every attempt to `url` failed from `since_ms` until
    /// `now_ms`; delivered to the tenant's other endpoints.
    pub fn endpoint_disabled(tenant: &TenantId, endpoint_id: &str, url: &str, since_ms: i64, now_ms: i64) -> Self {
        Self {
            id: crate::new_event_id(),
            tenant_id: tenant.clone(),
            event_type: "endpoint.disabled".into(),
            occurred_at: now_ms / 1000,
            source: "hookhost",
            is_test: false,
            payload: json!({
                "endpoint_id": endpoint_id,
                "url": url,
                "reason": Self::disabled_reason(since_ms, now_ms),
                "failing_since": since_ms / 1000,
            }),
        }
    }

    /// Why an endpoint failing since `since_ms` was disabled at `now_ms`.
    pub fn disabled_reason(since_ms: i64, now_ms: i64) -> String {
        format!("every delivery attempt failed for {} s", (now_ms - since_ms) / 1000)
    }

    /// The number this event concerns, for the number's timeline: a message's `contact`, or a
    /// call's other party (`to` when the call went out, else `from`).
    pub fn contact(&self) -> Option<&str> {
        let p = |k: &str| self.payload.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        if let Some(c) = p("contact") {
            return Some(c);
        }
        if !self.event_type.starts_with("call.") {
            return None;
        }
        let outbound = p("direction").is_some_and(|d| d.starts_with("outbound"));
        if outbound { p("to") } else { p("from") }
    }

    /// The envelope endpoints receive for this event unchanged.
    pub fn envelope(&self) -> Value {
        envelope(&self.id, &self.event_type, self.occurred_at, &self.tenant_id, &self.payload, self.is_test)
    }
}

/// The message id of an event's `n`-th delivered message (from 0): the event's id, then
/// `{id}_1`, `{id}_2`, … — what receivers deduplicate on.
pub fn message_id(event_id: &str, n: usize) -> String {
    if n == 0 { event_id.to_string() } else { format!("{event_id}_{n}") }
}

/// The delivery envelope of DESIGN.md.
pub fn envelope(
    id: &str,
    event_type: &str,
    timestamp_utc: i64,
    tenant: &TenantId,
    payload: &Value,
    is_test: bool,
) -> Value {
    json!({
        "id": id,
        "event_type": event_type,
        "timestamp_utc": timestamp_utc,
        "tenant_id": tenant,
        "payload": payload,
        "is_test": is_test,
    })
}

/// A provider request turned into canonical terms, before it gets an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub event_type: String,
    pub occurred_at: i64,
    pub payload: Value,
    /// The provider's identity of this request; a second request with the same key is a
    /// duplicate.
    pub dedupe_key: String,
}

/// Why a verified request could not be normalized.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NormalizeError {
    #[error("missing required field {0}")]
    Missing(&'static str),
    #[error("malformed body: {0}")]
    Malformed(String),
}

/// The stored name of a source, as a static string.
pub fn source_name(s: &str) -> Option<&'static str> {
    ["twilio", "stripe", "exotel", "vendor", "hookhost"].into_iter().find(|k| *k == s)
}

/// Parse an RFC 3339 time (`2026-11-24T10:00:00Z`, `…+05:30`, fractional seconds ignored) to
/// unix seconds (the `time` crate's RFC 3339 parser).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_the_other_party_as_its_contact() {
        let e = |t: &str, payload: Value| CanonicalEvent {
            id: "evt_1".into(),
            tenant_id: TenantId::from_stored("t".into()),
            event_type: t.into(),
            occurred_at: 0,
            source: "twilio",
            is_test: false,
            payload,
        };
        let call = |dir: &str| json!({ "from": "+14158675309", "to": "+18005551212", "direction": dir });
        assert_eq!(e("call.completed", call("inbound")).contact(), Some("+14158675309"));
        assert_eq!(e("call.completed", call("outbound-dial")).contact(), Some("+18005551212"));
        assert_eq!(
            e("sms.delivered", json!({ "contact": "+14158675309", "from": "+1800" })).contact(),
            Some("+14158675309")
        );
        assert_eq!(e("billing.invoice.paid", json!({ "from": "+14158675309" })).contact(), None);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-01-01T12:01:00Z"), Some(1_767_268_860));
        assert_eq!(parse_rfc3339("2026-01-01T17:31:00.250+05:30"), Some(1_767_268_860));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
