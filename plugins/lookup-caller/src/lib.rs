//! Enrichment over HTTP: looks the caller up in the tenant's CRM — `GET {crm_url}/contacts/{from}`
//! where `crm_url` is the key-value entry `crm_url` (and the tenant allow-lists its host) — and
//! adds the answer as `caller`. A lookup that fails leaves `caller` null and logs why: the event
//! is still delivered.
use hookhost_sdk::serde_json::Value;
use hookhost_sdk::{Action, Event, Level, Plugin, PluginError};

struct LookupCaller;

impl Plugin for LookupCaller {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let mut payload = event.payload_json()?;
        let (Some(base), Some(from)) = (hookhost_sdk::kv_get("crm_url"), payload.get("from").and_then(Value::as_str))
        else {
            return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]);
        };
        let url = format!("{}/contacts/{}", base.trim_end_matches('/'), from.trim_start_matches('+'));
        payload["caller"] = match hookhost_sdk::get_json(&url, &[("accept", "application/json")]) {
            Ok(contact) => contact,
            Err(e) => {
                hookhost_sdk::log(Level::Warn, &format!("caller lookup failed: {e}"));
                Value::Null
            }
        };
        Ok(vec![hookhost_sdk::deliver(&event.event_type, &payload)])
    }
}

hookhost_sdk::export!(LookupCaller);

#[cfg(test)]
mod tests {
    use hookhost_sdk::serde_json::json;
    use hookhost_sdk::testing::{self, delivered, event};

    use super::*;

    #[test]
    fn adds_the_contact_the_crm_returns() {
        testing::reset();
        testing::kv_insert("crm_url", "https://crm.example.com/api/");
        testing::http_route("https://crm.example.com/api/contacts/14155550100", 200, r#"{"name":"Ada"}"#);
        let out = LookupCaller::handle(event("call.ringing", json!({ "call_id": "CA1", "from": "+14155550100" })));
        assert_eq!(delivered(&out.unwrap())[0].1["caller"], json!({ "name": "Ada" }));
        assert_eq!(testing::fetched()[0].method, "GET");
    }

    #[test]
    fn a_failed_lookup_still_delivers() {
        testing::reset();
        testing::kv_insert("crm_url", "https://crm.example.com");
        testing::http_route("https://crm.example.com/contacts/14155550100", 404, "");
        let out = LookupCaller::handle(event("call.ringing", json!({ "call_id": "CA1", "from": "+14155550100" })));
        assert!(delivered(&out.unwrap())[0].1["caller"].is_null());
        assert!(testing::logs()[0].1.contains("status 404"));
    }
}
