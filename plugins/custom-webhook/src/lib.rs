//! The "Custom Webhook" contract (`003_…` in the seeds), sent as the whole request: the body is
//! `{"event_type", "timestamp_utc", "payload", "is_test"}` — that envelope, not hookhost's (no
//! `id`, no `tenant_id`) — with its six event names:
//!
//! | hookhost event | sent as | payload |
//! |---|---|---|
//! | `call.initiated` | `call_initiated` | `call_id`, `from`, `to`, `direction`, `source` |
//! | `call.ringing` | `call_ringing` | the same |
//! | `call.answered` | `call_answered` | the same |
//! | `call.transcript` | `transcript` | `call {id, from, to, source, direction}`, `type`, `transcript`, `timestamp_utc` (a string) |
//! | `call.completed` (`call.ended` for test events) | `call_ended` | `call_id`, `from`, `to`, `direction`, `source`, `transcript` (an array) |
//! | `call.failed` | `error` | `call {…}`, `error_message` |
//!
//! `call_id` and `call.id` are integers: the provider's id when it is one, otherwise a stable
//! number from it ([`hookhost_sdk::numeric_id`]). `direction` is `inbound` or `outbound`;
//! `source` is the vendor's when it sent one, else `{provider}:{tenant}`; `is_test` is the
//! event's (vendor `…/sample` posts). The deliver action's type is the contract's name, so an
//! endpoint subscribes to `call_ended`, `error`, … or `*`. Other events are dropped.
use hookhost_sdk::events::Canonical;
use hookhost_sdk::serde_json::{Map, Value, json};
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct CustomWebhook;

impl Plugin for CustomWebhook {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let name = match event.event_type.as_str() {
            "call.initiated" => "call_initiated",
            "call.ringing" => "call_ringing",
            "call.answered" => "call_answered",
            "call.transcript" => "transcript",
            // `call.ended` is a vendor's test event, which does not drive the call machine.
            "call.completed" | "call.ended" => "call_ended",
            "call.failed" => "error",
            _ => return Ok(vec![hookhost_sdk::drop_event("not in the custom webhook's event list")]),
        };
        let Canonical::Call(call) = event.typed()? else { unreachable!("call.* events parse as calls") };
        let text = |k: &str| call.extra.get(k).and_then(Value::as_str).map(str::to_string);
        // Top level, or under `call` as the vendor's transcript and error events nest them.
        let nested =
            |k: &str| call.extra.get("call").and_then(|c| c.get(k)).and_then(Value::as_str).map(str::to_string);
        let (from, to) = (call.from.clone().or_else(|| nested("from")), call.to.clone().or_else(|| nested("to")));
        let direction = match call.direction.as_deref().or(nested("direction").as_deref()) {
            Some(d) if d.starts_with("outbound") => "outbound",
            _ => "inbound",
        };
        let source = text("source")
            .or_else(|| nested("source"))
            .unwrap_or_else(|| format!("{}:{}", event.source, event.tenant_id));
        let id = hookhost_sdk::numeric_id(&call.call_id);
        let party = json!({ "id": id, "from": from, "to": to, "source": source, "direction": direction });
        let flat = |mut extra: Map<String, Value>| {
            for (k, v) in [("call_id", json!(id)), ("from", json!(from)), ("to", json!(to))] {
                extra.insert(k.into(), v);
            }
            extra.insert("direction".into(), direction.into());
            extra.insert("source".into(), source.clone().into());
            Value::Object(extra)
        };
        let payload = match name {
            "transcript" => json!({
                "call": party,
                "type": text("type").or_else(|| text("speaker")).unwrap_or_else(|| "customer".into()),
                "transcript": text("transcript").or_else(|| text("text")).unwrap_or_default(),
                "timestamp_utc": call.extra.get("timestamp_utc").map_or_else(
                    || event.occurred_at.to_string(),
                    |t| t.as_str().map_or_else(|| t.to_string(), str::to_string),
                ),
            }),
            "error" => json!({
                "call": party,
                "error_message": text("error_message").or(call.reason.clone()).unwrap_or_else(|| "error".into()),
            }),
            "call_ended" => {
                let transcript = call.extra.get("transcript").filter(|t| t.is_array()).cloned().unwrap_or(json!([]));
                flat(Map::from_iter([("transcript".to_string(), transcript)]))
            }
            _ => flat(Map::new()),
        };
        let body = json!({
            "event_type": name,
            "timestamp_utc": event.occurred_at,
            "payload": payload,
            "is_test": event.is_test,
        });
        Ok(vec![hookhost_sdk::deliver_raw(name, &body).into()])
    }
}

hookhost_sdk::export!(CustomWebhook);

#[cfg(test)]
mod tests {
    use hookhost_sdk::testing::{event, requests};

    use super::*;

    fn sent(event_type: &str, payload: Value) -> Value {
        let actions = CustomWebhook::handle(event(event_type, payload)).unwrap();
        hookhost_sdk::serde_json::from_str(&requests(&actions)[0].1.body).unwrap()
    }

    #[test]
    fn the_six_events_in_their_envelope() {
        let call =
            json!({ "call_id": "7", "from": "+905555555555", "to": "+905555555554", "direction": "outbound-api" });
        let body = sent("call.initiated", call.clone());
        assert_eq!(body.as_object().unwrap().len(), 4, "event_type, timestamp_utc, payload, is_test: {body}");
        assert_eq!(
            (body["event_type"].as_str(), body["payload"]["call_id"].as_u64()),
            (Some("call_initiated"), Some(7))
        );
        assert_eq!(body["payload"]["direction"], "outbound");
        assert_eq!(sent("call.completed", call.clone())["payload"]["transcript"], json!([]));
        let failed = sent("call.failed", json!({ "call_id": "CA9", "reason": "busy" }));
        assert_eq!(
            (failed["event_type"].as_str(), failed["payload"]["error_message"].as_str()),
            (Some("error"), Some("busy"))
        );
        assert!(failed["payload"]["call"]["id"].is_u64());
        let said = sent("call.transcript", json!({ "call_id": "7", "type": "ai", "transcript": "Hello" }));
        assert_eq!((said["payload"]["type"].as_str(), said["payload"]["call"]["id"].as_u64()), (Some("ai"), Some(7)));
        assert!(said["payload"]["timestamp_utc"].is_string());
        let sms = CustomWebhook::handle(event("sms.received", json!({}))).unwrap();
        assert!(matches!(sms[0], Action::Drop(_)));
    }
}
