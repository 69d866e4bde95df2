//! Maps each call event to a CRM record (`sink` action to the tenant's sink named `crm`, keyed
//! by the call id, versioned by Twilio's sequence number) and delivers the event unchanged.
use hookhost_sdk::serde_json::{Value, json};
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct CrmSink;

impl Plugin for CrmSink {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let payload = event.payload_json()?;
        let Some(call_id) = payload.get("call_id").and_then(Value::as_str) else {
            return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]);
        };
        let version = payload.get("sequence_number").and_then(Value::as_i64).unwrap_or(event.occurred_at as i64);
        let record = json!({
            "call_id": call_id,
            "status": payload["call_status"],
            "from": payload["from"],
            "to": payload["to"],
            "version": version,
        });
        Ok(vec![hookhost_sdk::sink("crm", call_id, &record), hookhost_sdk::deliver_unchanged(&event)])
    }
}

hookhost_sdk::export!(CrmSink);
