//! Reshape: turns `call.completed` into the flat shape many CRMs ingest —
//! `{call_id, direction, from_e164, to_e164, extracted_data}` — and passes other events on.
//! The host has already read the numbers in the tenant's default country
//! (`PUT /v1/tenants/{id}/settings`): `from`/`to` are E.164 when they are numbers at all.
use hookhost_sdk::events::Canonical;
use hookhost_sdk::phone::is_e164;
use hookhost_sdk::serde_json::json;
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct ReshapeCallCompleted;

impl Plugin for ReshapeCallCompleted {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        if event.event_type != "call.completed" {
            return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]);
        }
        let Canonical::Call(call) = event.typed()? else { unreachable!("call.* parses as a call") };
        let number = |n: &Option<String>| n.clone().filter(|n| is_e164(n));
        let shaped = json!({
            "call_id": call.call_id,
            "direction": match call.direction.as_deref() {
                Some(d) if d.starts_with("outbound") => "outbound",
                Some(_) => "inbound",
                None => "unknown",
            },
            "from_e164": number(&call.from),
            "to_e164": number(&call.to),
            "extracted_data": {
                "outcome": call.outcome,
                "reason": call.reason,
                "duration_s": call.duration_s,
                "forwarded_to": call.forwarded_to,
                "recording_url": call.recording_url,
            },
        });
        Ok(vec![hookhost_sdk::deliver("call.completed", &shaped)])
    }
}

hookhost_sdk::export!(ReshapeCallCompleted);

#[cfg(test)]
mod tests {
    use hookhost_sdk::testing::{delivered, event};

    use super::*;

    #[test]
    fn a_completed_call_takes_the_flat_shape() {
        let input = json!({
            "call_id": "CA1", "from": "+14155550100", "to": "+919876543210", "to_raw": "09876543210",
            "direction": "outbound-dial",
            "outcome": "answered", "duration_s": 42, "answered_by": "direct"
        });
        let out = delivered(&ReshapeCallCompleted::handle(event("call.completed", input)).unwrap());
        assert_eq!(
            out[0].1,
            json!({
                "call_id": "CA1", "direction": "outbound", "from_e164": "+14155550100", "to_e164": "+919876543210",
                "extracted_data": { "outcome": "answered", "reason": null, "duration_s": 42, "forwarded_to": null,
                                    "recording_url": null }
            })
        );
        let anonymous = json!({ "call_id": "CA2", "from": "anonymous", "outcome": "missed" });
        let out = delivered(&ReshapeCallCompleted::handle(event("call.completed", anonymous)).unwrap());
        assert_eq!(out[0].1["from_e164"], json!(null), "not a number: no E.164 invented");
        let other =
            delivered(&ReshapeCallCompleted::handle(event("call.ringing", json!({ "call_id": "CA1" }))).unwrap());
        assert_eq!(other[0].1, json!({ "call_id": "CA1" }));
    }
}
