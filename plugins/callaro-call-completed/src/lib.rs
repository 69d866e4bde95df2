//! Callaro's post-call webhook (`001_…` in the seeds): each finished call (`call.completed`,
//! exactly once per call) as Callaro's flat body — not hookhost's envelope — sent as the whole
//! request: `{"event": "call.completed", "call_id", "voice_session_id", "call_sid", "tenant_id",
//! "agent_id", "direction": "inbound"|"outbound", "from_e164", "to_e164", "extracted_data",
//! "runtime_vars", "tool_calls"}`. `call_id` (the provider's call id) is the receiver's dedupe
//! key; `voice_session_id` is its stable integer. The receiver's own `tenant_id` and `agent_id`
//! (integers) are the tenant's key-value entries `callaro:tenant_id` and `callaro:agent_id`.
//! Other events are dropped: the contract publishes only finished calls.
use hookhost_sdk::events::Canonical;
use hookhost_sdk::serde_json::{Value, json};
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct CallaroCallCompleted;

/// An integer setting from the key-value store, or why the plugin cannot run without it.
fn setting(key: &str) -> Result<i64, PluginError> {
    let value = hookhost_sdk::kv_get(key).ok_or_else(|| PluginError {
        code: "not_configured".into(),
        message: format!("set the tenant's key-value entry {key} to the receiver's integer id"),
        retryable: false,
    })?;
    value.trim().parse().map_err(|_| PluginError {
        code: "not_configured".into(),
        message: format!("the key-value entry {key} is {value:?}, not an integer"),
        retryable: false,
    })
}

impl Plugin for CallaroCallCompleted {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        if event.event_type != "call.completed" {
            return Ok(vec![hookhost_sdk::drop_event("Callaro publishes finished calls only")]);
        }
        let Canonical::Call(call) = event.typed()? else { unreachable!("call.* events parse as calls") };
        let direction = match call.direction.as_deref() {
            Some(d) if d.starts_with("outbound") => "outbound",
            _ => "inbound",
        };
        let call_sid = call.extra.get("call_sid").and_then(Value::as_str).unwrap_or(&call.call_id).to_string();
        let body = json!({
            "event": "call.completed",
            "call_id": call.call_id,
            "voice_session_id": hookhost_sdk::numeric_id(&call.call_id),
            "call_sid": call_sid,
            "tenant_id": setting("callaro:tenant_id")?,
            "agent_id": setting("callaro:agent_id")?,
            "direction": direction,
            "from_e164": call.from,
            "to_e164": call.to,
            "extracted_data": call.extra.get("extracted_data").cloned().unwrap_or_else(|| json!({})),
            "runtime_vars": call.extra.get("runtime_vars").cloned().unwrap_or_else(|| json!({})),
            "tool_calls": call.extra.get("tool_calls").cloned().unwrap_or_else(|| json!([])),
        });
        Ok(vec![hookhost_sdk::deliver_raw("call.completed", &body).into()])
    }
}

hookhost_sdk::export!(CallaroCallCompleted);

#[cfg(test)]
mod tests {
    use hookhost_sdk::testing::{event, kv_insert, requests, reset};

    use super::*;

    #[test]
    fn a_finished_call_is_callaros_flat_body() {
        reset();
        kv_insert("callaro:tenant_id", "44");
        kv_insert("callaro:agent_id", "42");
        let input = json!({ "call_id": "CA1", "call_sid": "CA1", "from": "+14155550100", "to": "+919900000001",
                            "direction": "outbound-api", "outcome": "answered", "duration_s": 30 });
        let actions = CallaroCallCompleted::handle(event("call.completed", input)).unwrap();
        let sent = requests(&actions);
        let body: Value = hookhost_sdk::serde_json::from_str(&sent[0].1.body).unwrap();
        assert_eq!((body["event"].as_str(), body["direction"].as_str()), (Some("call.completed"), Some("outbound")));
        assert_eq!((body["tenant_id"].as_i64(), body["agent_id"].as_i64()), (Some(44), Some(42)));
        assert!(body["voice_session_id"].is_u64() && body["tool_calls"].is_array());
        let ringing = CallaroCallCompleted::handle(event("call.ringing", json!({ "call_id": "CA1" }))).unwrap();
        assert!(matches!(ringing[0], Action::Drop(_)));
    }

    #[test]
    fn without_its_settings_it_says_which() {
        reset();
        let err = CallaroCallCompleted::handle(event("call.completed", json!({ "call_id": "CA1" }))).unwrap_err();
        assert!(err.message.contains("callaro:tenant_id"), "{}", err.message);
    }
}
