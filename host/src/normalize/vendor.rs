//! Generic telephony vendors (Standard Webhooks–signed JSON) → canonical events. Two common
//! envelopes are understood: `{event_type, timestamp_utc, payload, is_test}` with snake-case
//! call types, and topic style (`{"topic"|"type"|"event": "CALL_RECEIVED", "data"|"payload"}`).
//! Anything else is kept as `vendor.{vendor}.{type}`, never refused. A call's lifecycle
//! (`call_initiated` … `call_ended`, `error`, and `CALL_RECEIVED`, sent after the call ended)
//! is read by [`call`] for the per-call state machine, so vendor calls close exactly once like
//! Twilio's. Pure.

use serde_json::{Map, Value};

use super::calls::{Party, Signal};
use super::{NormalizeError, Normalized};

/// Whether `s` can name a vendor in a route: `[a-z0-9_-]`, 1 to 32 characters.
pub fn valid_vendor(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn canonical(vendor_type: &str) -> Option<&'static str> {
    Some(match vendor_type {
        "call_initiated" => "call.initiated",
        "CALL_RECEIVED" => "call.completed",
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
    // One spelling of the call's id: a string, whether sent as `call_id`, `call.id` or a topic's `id`.
    let call_id = payload
        .get("call_id")
        .or_else(|| payload.get("call").and_then(|c| c.get("id")))
        .or_else(|| if vendor_type == "CALL_RECEIVED" { payload.get("id") } else { None })
        .and_then(id_text);
    if let Some(id) = call_id {
        payload.insert("call_id".into(), id.into());
    }
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

/// An id as text: a string as is, a number in decimal.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A vendor call event, for the per-call state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorCall {
    /// The vendor's call id (as text).
    pub call_id: String,
    pub party: Party,
    pub signal: Signal,
}

/// The call lifecycle signal in a normalized vendor event, if it is one: from/to (`from`,
/// `from_number`, `to`, `to_number`, or under `call`), direction `inbound`/`outbound` (from
/// `direction` or a topic's `type`; the vendor's spelling kept as `direction_raw`).
pub fn call(n: &Normalized) -> Option<VendorCall> {
    let p = n.payload.as_object()?;
    let vendor_type = p.get("vendor_event_type")?.as_str()?;
    let call_id = p.get("call_id")?.as_str()?.to_string();
    let nested = p.get("call").and_then(Value::as_object);
    let text = |keys: &[&str]| {
        keys.iter().find_map(|k| {
            p.get(*k).or_else(|| nested.and_then(|c| c.get(*k))).and_then(Value::as_str).filter(|s| !s.is_empty())
        })
    };
    let raw_direction =
        if vendor_type == "CALL_RECEIVED" { text(&["type", "direction"]) } else { text(&["direction"]) };
    let direction = raw_direction.map(|d| d.to_ascii_lowercase()).map(|d| {
        if d.starts_with("out") {
            "outbound".to_string()
        } else if d.starts_with("in") {
            "inbound".to_string()
        } else {
            d
        }
    });
    let mut details = Map::new();
    if let Some(raw) = raw_direction.filter(|r| Some(*r) != direction.as_deref()) {
        details.insert("direction_raw".into(), raw.into());
    }
    let party = Party {
        call_id: Some(call_id.clone()),
        from: text(&["from", "from_number"]).map(str::to_string),
        to: text(&["to", "to_number"]).map(str::to_string),
        direction,
        ..Party::default()
    };
    let status = |s: &str| Signal::Status { status: s.into(), sequence: None, duration_s: None, recording_url: None };
    let signal = match vendor_type {
        "call_initiated" => status("initiated"),
        "call_ringing" => status("ringing"),
        "call_answered" => status("in-progress"),
        "error" | "call_failed" => Signal::Resolved {
            outcome: "failed".into(),
            reason: text(&["error_message", "reason"]).unwrap_or("error").to_string(),
            duration_s: None,
            recording_url: None,
        },
        "call_ended" | "CALL_RECEIVED" => {
            let minutes = p.get("length_in_minutes").and_then(Value::as_f64);
            let seconds = p.get("duration").or_else(|| p.get("duration_s")).and_then(Value::as_i64);
            let duration_s = seconds.or(minutes.map(|m| (m * 60.0).round() as i64));
            for (k, v) in p {
                if !["call_id", "from", "to", "direction", "type", "vendor_event_type"].contains(&k.as_str()) {
                    details.insert(k.clone(), v.clone());
                }
            }
            Signal::Ended {
                // A call reported after it ended answered if it lasted; a live call if it was answered.
                answered: (vendor_type == "CALL_RECEIVED").then(|| duration_s.unwrap_or(0) > 0),
                duration_s,
                recording_url: text(&["recording_url"]).map(str::to_string),
                details,
            }
        }
        _ => return None,
    };
    Some(VendorCall { call_id, party, signal })
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

    fn vendor_call(body: &str) -> VendorCall {
        call(&event("acme", body.as_bytes(), "m", 5).unwrap().0).expect("a call event")
    }

    #[test]
    fn the_custom_envelope_drives_the_call_machine_with_text_ids() {
        let ended = vendor_call(
            r#"{"event_type":"call_ended","timestamp_utc":1760084597,"payload":{"from":"+905555555555","to":"+905555555554",
                "direction":"outbound","source":"salprebox:S","call_id":1,"transcript":[{"type":"ai","message":"Hi"}]}}"#,
        );
        assert_eq!(ended.call_id, "1", "an integer id becomes text");
        assert_eq!(ended.party.direction.as_deref(), Some("outbound"));
        assert_eq!(ended.party.from.as_deref(), Some("+905555555555"));
        let Signal::Ended { answered: None, details, .. } = ended.signal else { panic!("{:?}", ended.signal) };
        assert_eq!(details["transcript"][0]["message"], "Hi");
        assert_eq!(details["source"], "salprebox:S");
        let error = vendor_call(
            r#"{"event_type":"error","payload":{"call":{"id":1,"from":"+905555555555","direction":"outbound"},"error_message":"no route"}}"#,
        );
        assert_eq!(error.call_id, "1");
        assert_eq!(error.party.from.as_deref(), Some("+905555555555"), "read under call");
        assert!(
            matches!(error.signal, Signal::Resolved { ref outcome, ref reason, .. } if outcome == "failed" && reason == "no route")
        );
        let answered = vendor_call(r#"{"event_type":"call_answered","payload":{"call_id":"c9"}}"#);
        assert!(matches!(answered.signal, Signal::Status { ref status, .. } if status == "in-progress"));
        let transcript =
            event("acme", br#"{"event_type":"transcript","payload":{"call":{"id":1},"transcript":"hi"}}"#, "m", 5);
        let n = transcript.unwrap().0;
        assert_eq!(n.payload["call_id"], "1");
        assert!(call(&n).is_none(), "a transcript is not a lifecycle signal");
    }

    #[test]
    fn call_received_is_a_completed_call() {
        let topic = |minutes: f64| {
            format!(
                r#"{{"topic":"CALL_RECEIVED","data":{{"id":"c-77","from_number":"+14158675309","to":"+18005551212","type":"INBOUND","length_in_minutes":{minutes},"length":"2m 30s","recording_url":"https://r/1"}}}}"#
            )
        };
        let (n, _) = event("acme", topic(2.5).as_bytes(), "m", 5).unwrap();
        assert_eq!(n.event_type, "call.completed");
        let c = call(&n).unwrap();
        assert_eq!(c.call_id, "c-77");
        assert_eq!(c.party.from.as_deref(), Some("+14158675309"));
        assert_eq!(c.party.direction.as_deref(), Some("inbound"));
        let Signal::Ended { answered, duration_s, recording_url, details } = c.signal else { panic!() };
        assert_eq!((answered, duration_s, recording_url.as_deref()), (Some(true), Some(150), Some("https://r/1")));
        assert_eq!(details["direction_raw"], "INBOUND");
        assert_eq!(details["length"], "2m 30s");
        let c = call(&event("acme", topic(0.0).as_bytes(), "m", 5).unwrap().0).unwrap();
        assert!(matches!(c.signal, Signal::Ended { answered: Some(false), .. }), "nobody talked: missed");
    }

    #[test]
    fn vendor_names() {
        assert!(valid_vendor("acme-voice_2"));
        assert!(!valid_vendor("Acme"));
        assert!(!valid_vendor(""));
        assert!(!valid_vendor("a/b"));
    }
}
