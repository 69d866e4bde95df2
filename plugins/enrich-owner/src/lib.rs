//! Enrichment: adds `owner` (the person or team owning the called number) from the tenant's
//! key-value store, key `owner:{to}` as set with `PUT /v1/tenants/{id}/kv/owner:+14155550100`.
//! When the tenant grants `kv_write`, it also counts missed calls per number under `missed:{to}`.
use hookhost_sdk::phone::e164;
use hookhost_sdk::serde_json::Value;
use hookhost_sdk::{Action, Event, Level, Plugin, PluginError};

struct EnrichOwner;

impl Plugin for EnrichOwner {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let mut payload = event.payload_json()?;
        let Some(to) = payload.get("to").and_then(Value::as_str).and_then(|n| e164(n, "1")) else {
            return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]);
        };
        let owner = hookhost_sdk::kv_get(&format!("owner:{to}"));
        if owner.is_none() {
            hookhost_sdk::log(Level::Info, &format!("no owner for {to}"));
        }
        payload["owner"] = owner.map(Value::from).unwrap_or(Value::Null);
        if event.event_type == "call.missed" {
            let key = format!("missed:{to}");
            let n = hookhost_sdk::kv_get(&key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
            if let Err(e) = hookhost_sdk::kv_set(&key, Some(&n.to_string())) {
                hookhost_sdk::log(Level::Debug, &format!("call count not kept: {e}"));
            }
        }
        Ok(vec![hookhost_sdk::deliver(&event.event_type, &payload)])
    }
}

hookhost_sdk::export!(EnrichOwner);

#[cfg(test)]
mod tests {
    use hookhost_sdk::serde_json::json;
    use hookhost_sdk::testing::{self, delivered, event};

    use super::*;

    #[test]
    fn adds_the_owner_of_the_called_number_and_counts_missed_calls() {
        testing::reset();
        testing::kv_insert("owner:+14155550100", "support-team");
        let out = EnrichOwner::handle(event("call.missed", json!({ "call_id": "CA1", "to": "(415) 555-0100" })));
        assert_eq!(delivered(&out.unwrap())[0].1["owner"], "support-team");
        EnrichOwner::handle(event("call.missed", json!({ "call_id": "CA2", "to": "+14155550100" }))).unwrap();
        EnrichOwner::handle(event("call.completed", json!({ "call_id": "CA2", "to": "+14155550100" }))).unwrap();
        assert_eq!(testing::kv_snapshot()["missed:+14155550100"], "2");
    }

    #[test]
    fn an_unknown_number_gets_a_null_owner_and_a_log_line() {
        testing::reset();
        testing::allow_kv_write(false);
        let out = EnrichOwner::handle(event("call.missed", json!({ "call_id": "CA1", "to": "+14155550199" }))).unwrap();
        assert!(delivered(&out)[0].1["owner"].is_null());
        assert!(testing::logs().iter().any(|(_, m)| m.contains("no owner for +14155550199")));
    }
}
