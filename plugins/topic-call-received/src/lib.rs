//! Reshape into the topic style some telephony platforms speak: an inbound call's first event
//! becomes `{"topic": "CALL_RECEIVED", "data": {call_id, caller, callee, received_at}}`,
//! delivered as event type `CALL_RECEIVED`; other events pass on unchanged.
use hookhost_sdk::events::Canonical;
use hookhost_sdk::serde_json::json;
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct TopicCallReceived;

impl Plugin for TopicCallReceived {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let first_event = matches!(event.event_type.as_str(), "call.initiated" | "call.ringing");
        let Ok(Canonical::Call(call)) = event.typed() else { return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]) };
        if !first_event || call.direction.as_deref().is_some_and(|d| d != "inbound") {
            return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]);
        }
        let payload = json!({
            "topic": "CALL_RECEIVED",
            "data": {
                "call_id": call.call_id,
                "caller": call.from,
                "callee": call.to,
                "received_at": event.occurred_at,
            },
        });
        Ok(vec![hookhost_sdk::deliver("CALL_RECEIVED", &payload)])
    }
}

hookhost_sdk::export!(TopicCallReceived);

#[cfg(test)]
mod tests {
    use hookhost_sdk::testing::{delivered, event};

    use super::*;

    #[test]
    fn an_inbound_ringing_call_becomes_call_received() {
        let input = json!({ "call_id": "CA1", "from": "+14155550100", "to": "+14155550199", "direction": "inbound" });
        let out = delivered(&TopicCallReceived::handle(event("call.ringing", input)).unwrap());
        assert_eq!(out[0].0, "CALL_RECEIVED");
        assert_eq!(out[0].1["data"]["caller"], "+14155550100");
        assert_eq!(out[0].1["data"]["received_at"], 1_760_084_505);
        let outbound = json!({ "call_id": "CA2", "direction": "outbound-api" });
        assert_eq!(delivered(&TopicCallReceived::handle(event("call.ringing", outbound)).unwrap())[0].0, "call.ringing");
    }
}
