//! The topic-style contract of `004_…` in the seeds: each delivery's whole body is
//! `{"topic": TOPIC, "data": {…}}` with the seed's field names, and the deliver action's type
//! is the topic, so an endpoint subscribes to `CALL_RECEIVED`, `SMS_SENT`, … or `*`:
//!
//! | hookhost event | topic | data |
//! |---|---|---|
//! | `call.completed` (after the call ended) | `CALL_RECEIVED` | `id`, `start_date`, `recording_url`, `from_number`, `from_name`, `to`, `to_name`, `length_in_minutes`, `length` (`2m 30s`), `tag`, `summary`, `one_sentence_summary`, `transcriptions`, `concatenated_transcript`, `data_collected`, `type` (`INBOUND`/`OUTBOUND`), `integration_id`, `transfer_from`, `transfer_to`, `user_email`, `original_to_number`, `original_to_name`, `transfer_original_call_id` |
//! | `sms.received` / `sms.sent` | `SMS_RECEIVED` / `SMS_SENT` | `id`, `direction`, `type` (`SMS`/`MMS`), `content`, `sent_at`, `from_number`, `to_number`, `from_name`, `to_name` |
//! | `contact.created` / `contact.updated` | `CONTACT_CREATED` / `CONTACT_UPDATED` | `id`, `name`, `last_name`, `company`, `emails`, `numbers` |
//!
//! Datetimes are RFC 3339 (UTC). Names come from the tenant's key-value entries `name:{e164}`
//! (null, or `""` where the seed's field is a plain string, when unknown); `user_email` from
//! `topics:user_email`. A forwarded call has `transfer_to` (the number it went to) and
//! `transfer_original_call_id`. hookhost emits `contact.*` when the tenant's setting
//! `contact_events` is on. Other events are dropped: the contract has no topic for them.
use hookhost_sdk::events::Canonical;
use hookhost_sdk::serde_json::{Value, json};
use hookhost_sdk::{Action, Event, Plugin, PluginError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

struct Topics;

/// A duration as the seed writes it: `2m 30s`, `45s`.
fn human(seconds: i64) -> String {
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s}s"),
        (m, s) => format!("{m}m {s}s"),
    }
}

/// Unix seconds as an RFC 3339 UTC datetime.
fn datetime(unix: i64) -> Result<String, PluginError> {
    let bad = |e: String| PluginError { code: "bad_time".into(), message: e, retryable: false };
    let t = OffsetDateTime::from_unix_timestamp(unix).map_err(|e| bad(e.to_string()))?;
    t.format(&Rfc3339).map_err(|e| bad(e.to_string()))
}

/// The name the tenant keeps for a number, if any.
fn name_of(number: Option<&str>) -> Option<String> {
    hookhost_sdk::kv_get(&format!("name:{}", number?))
}

fn topic(name: &str, data: Value) -> Action {
    hookhost_sdk::deliver_raw(name, &json!({ "topic": name, "data": data })).into()
}

impl Plugin for Topics {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let action = match (event.event_type.as_str(), event.typed()?) {
            ("call.completed", Canonical::Call(call)) => {
                let seconds = call.duration_s.unwrap_or(0).max(0);
                let outbound = call.direction.as_deref().is_some_and(|d| d.starts_with("outbound"));
                let forwarded = call.forwarded_to.as_ref().map(
                    |number| json!({ "number": number, "user_email": Value::Null, "user_name": name_of(Some(number)) }),
                );
                topic(
                    "CALL_RECEIVED",
                    json!({
                        "id": call.call_id,
                        "start_date": datetime(event.occurred_at as i64 - seconds)?,
                        "recording_url": call.recording_url,
                        "from_number": call.from,
                        "from_name": name_of(call.from.as_deref()),
                        "to": call.to,
                        "to_name": name_of(call.to.as_deref()),
                        "length_in_minutes": seconds as f64 / 60.0,
                        "length": human(seconds),
                        "tag": Value::Null,
                        "summary": Value::Null,
                        "one_sentence_summary": Value::Null,
                        "transcriptions": [],
                        "concatenated_transcript": "",
                        "data_collected": {},
                        "type": if outbound { "OUTBOUND" } else { "INBOUND" },
                        "integration_id": Value::Null,
                        "transfer_from": Value::Null,
                        "transfer_original_call_id": forwarded.as_ref().map(|_| call.call_id.clone()),
                        "transfer_to": forwarded,
                        "user_email": hookhost_sdk::kv_get("topics:user_email").unwrap_or_default(),
                        "original_to_number": call.to,
                        "original_to_name": name_of(call.to.as_deref()),
                    }),
                )
            }
            (kind @ ("sms.received" | "sms.sent"), Canonical::Sms(sms)) => {
                let received = kind == "sms.received";
                let media = sms.extra.get("media").and_then(Value::as_array).is_some_and(|m| !m.is_empty());
                topic(
                    if received { "SMS_RECEIVED" } else { "SMS_SENT" },
                    json!({
                        "id": sms.message_sid,
                        "direction": if received { "INBOUND" } else { "OUTBOUND" },
                        "type": if media { "MMS" } else { "SMS" },
                        "content": sms.body.unwrap_or_default(),
                        "sent_at": datetime(event.occurred_at as i64)?,
                        "from_number": sms.from,
                        "to_number": sms.to,
                        "from_name": name_of(sms.from.as_deref()).unwrap_or_default(),
                        "to_name": name_of(sms.to.as_deref()).unwrap_or_default(),
                    }),
                )
            }
            (kind @ ("contact.created" | "contact.updated"), Canonical::Other(p)) => {
                let number = p.get("e164").or_else(|| p.get("contact")).and_then(Value::as_str).unwrap_or_default();
                topic(
                    if kind == "contact.created" { "CONTACT_CREATED" } else { "CONTACT_UPDATED" },
                    json!({
                        "id": number,
                        "name": name_of(Some(number)),
                        "last_name": Value::Null,
                        "company": Value::Null,
                        "emails": [],
                        "numbers": [number],
                    }),
                )
            }
            _ => hookhost_sdk::drop_event("no topic for this event"),
        };
        Ok(vec![action])
    }
}

hookhost_sdk::export!(Topics);

#[cfg(test)]
mod tests {
    use hookhost_sdk::testing::{event, kv_insert, requests, reset};

    use super::*;

    fn sent(event_type: &str, payload: Value) -> Value {
        let actions = Topics::handle(event(event_type, payload)).unwrap();
        hookhost_sdk::serde_json::from_str(&requests(&actions)[0].1.body).unwrap()
    }

    #[test]
    fn a_finished_call_is_call_received() {
        reset();
        kv_insert("name:+14155550100", "Ada");
        let input = json!({ "call_id": "CA1", "from": "+14155550100", "to": "+14155550199", "direction": "inbound",
                            "outcome": "forwarded", "duration_s": 150, "forwarded_to": "+14155550123" });
        let body = sent("call.completed", input);
        assert_eq!(body["topic"], "CALL_RECEIVED");
        let data = &body["data"];
        assert_eq!((data["from_number"].as_str(), data["from_name"].as_str()), (Some("+14155550100"), Some("Ada")));
        assert_eq!((data["length"].as_str(), data["length_in_minutes"].as_f64()), (Some("2m 30s"), Some(2.5)));
        assert_eq!(
            (data["type"].as_str(), data["transfer_to"]["number"].as_str()),
            (Some("INBOUND"), Some("+14155550123"))
        );
        assert_eq!(data["start_date"], "2025-10-10T08:19:15Z", "the event's time less the call's length");
        let ringing = Topics::handle(event("call.ringing", json!({ "call_id": "CA2" }))).unwrap();
        assert!(matches!(ringing[0], Action::Drop(_)), "not before the call ended");
    }

    #[test]
    fn messages_and_contacts() {
        reset();
        let sms = sent("sms.sent", json!({ "message_sid": "SM1", "from": "+14155550199", "to": "+14155550100" }));
        assert_eq!((sms["topic"].as_str(), sms["data"]["direction"].as_str()), (Some("SMS_SENT"), Some("OUTBOUND")));
        assert_eq!((sms["data"]["content"].as_str(), sms["data"]["to_name"].as_str()), (Some(""), Some("")));
        let mms = sent("sms.received", json!({ "message_sid": "MM1", "media": [{ "url": "u" }], "body": "pic" }));
        assert_eq!((mms["data"]["type"].as_str(), mms["data"]["direction"].as_str()), (Some("MMS"), Some("INBOUND")));
        let contact = sent("contact.updated", json!({ "contact": "+14155550100", "e164": "+14155550100" }));
        assert_eq!(
            (contact["topic"].as_str(), contact["data"]["numbers"][0].as_str()),
            (Some("CONTACT_UPDATED"), Some("+14155550100"))
        );
    }
}
