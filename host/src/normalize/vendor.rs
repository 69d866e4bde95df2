//! Generic telephony vendors (Standard Webhooks–signed JSON) → canonical events. Two common
//! envelopes are understood: `{event_type, timestamp_utc, payload, is_test}` with snake-case
//! call types, and topic style (`{"topic"|"type"|"event": "CALL_RECEIVED", "data"|"payload"}`).
//! Anything else is kept as `vendor.{vendor}.{type}`, never refused. Pure.

use serde_json::{Map, Value};

use super::{NormalizeError, Normalized};

/// Whether `s` can name a vendor in a route: `[a-z0-9_-]`, 1 to 32 characters.
pub fn valid_vendor(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn canonical(vendor_type: &str) -> Option<&'static str> {
    Some(match vendor_type {
        "call_initiated" | "CALL_RECEIVED" => "call.initiated",
        "call_ringing" => "call.ringing",
        "call_answered" => "call.answered",
        "call_ended" => "call.ended",
        "transcript" | "call_transcript" => "call.transcript",
        "error" | "call_failed" => "call.failed",
        "SMS_RECEIVED" => "sms.received",
        "SMS_SENT" => "sms.sent",
        "CONTACT_CREATED" => "contact.created",
        "CONTACT_UPDATED" => "contact.updated",
        _ => return None,
    })
}

/// Normalize a verified vendor body. `message_id` is the `webhook-id` (the dedupe identity);
/// `signed_at` the `webhook-timestamp`. Returns the normalized event and whether the vendor
/// marked it a test.
pub fn event(
    vendor: &str,
    body: &[u8],
    message_id: &str,
    signed_at: i64,
) -> Result<(Normalized, bool), NormalizeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| NormalizeError::Malformed(format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| NormalizeError::Malformed("not a JSON object".into()))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let vendor_type = text("event_type")
        .or_else(|| text("topic"))
        .or_else(|| text("type"))
        .or_else(|| text("event"))
        .unwrap_or("unknown");
    let data = obj.get("payload").or_else(|| obj.get("data")).cloned().unwrap_or_else(|| v.clone());
    let mut payload = match data {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("data".into(), other);
            m
        }
    };
    payload.insert("vendor".into(), vendor.into());
    payload.insert("vendor_event_type".into(), vendor_type.into());
    payload.insert("vendor_message_id".into(), message_id.into());
    let event_type = match canonical(vendor_type) {
        Some(t) => t.to_string(),
        None => {
            let clean: String = vendor_type
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c.to_ascii_lowercase() } else { '_' })
                .take(64)
                .collect();
            format!("vendor.{vendor}.{clean}")
        }
    };
    let occurred_at =
        obj.get("timestamp_utc").or_else(|| obj.get("timestamp")).and_then(Value::as_i64).unwrap_or(signed_at);
    let is_test = obj.get("is_test").and_then(Value::as_bool).unwrap_or(false);
    Ok((
        Normalized {
            event_type,
            occurred_at,
            payload: Value::Object(payload),
            dedupe_key: format!("vendor:{vendor}:{message_id}"),
        },
        is_test,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_styles_and_unknowns() {
        let (n, test) = event("acme", br#"{"event_type":"transcript","timestamp_utc":1760000000,"payload":{"call_id":"c1","text":"hi"},"is_test":true}"#, "msg_1", 5).unwrap();
        assert_eq!(n.event_type, "call.transcript");
        assert_eq!(n.occurred_at, 1760000000);
        assert_eq!(n.payload["call_id"], "c1");
        assert_eq!(n.payload["vendor"], "acme");
        assert!(test);
        let (n, _) =
            event("acme", br#"{"topic":"CONTACT_CREATED","data":{"id":"k1","phone":"+14155550100"}}"#, "msg_2", 5)
                .unwrap();
        assert_eq!(n.event_type, "contact.created");
        assert_eq!(n.occurred_at, 5);
        assert_eq!(n.dedupe_key, "vendor:acme:msg_2");
        let (n, _) = event("acme", br#"{"type":"Queue Overflow!","data":[1,2]}"#, "msg_3", 5).unwrap();
        assert_eq!(n.event_type, "vendor.acme.queue_overflow_");
        assert_eq!(n.payload["data"], serde_json::json!([1, 2]));
        let (n, _) = event("acme", br#"{"hello":"world"}"#, "msg_4", 5).unwrap();
        assert_eq!(n.event_type, "vendor.acme.unknown");
        assert!(event("acme", b"[]", "m", 5).is_err());
        assert!(event("acme", b"nope", "m", 5).is_err());
    }

    #[test]
    fn vendor_names() {
        assert!(valid_vendor("acme-voice_2"));
        assert!(!valid_vendor("Acme"));
        assert!(!valid_vendor(""));
        assert!(!valid_vendor("a/b"));
    }
}
