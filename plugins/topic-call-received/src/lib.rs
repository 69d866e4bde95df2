//! Reshape into the topic style some telephony platforms speak (`004_…` in the seeds): a
//! finished call (`call.completed`, sent after the call ended, as the seed's `CALL_RECEIVED`
//! is) becomes `{"topic": "CALL_RECEIVED", "data": {id, from_number, to, type, length_in_minutes,
//! length, recording_url, start_date}}`, delivered as event type `CALL_RECEIVED`; other events
//! pass on unchanged.
use hookhost_sdk::events::Canonical;
use hookhost_sdk::serde_json::json;
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct TopicCallReceived;

/// A duration as the seed writes it: `2m 30s`, `45s`.
fn human(seconds: i64) -> String {
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s}s"),
        (m, s) => format!("{m}m {s}s"),
    }
}

impl Plugin for TopicCallReceived {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let Ok(Canonical::Call(call)) = event.typed() else { return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]) };
        if event.event_type != "call.completed" {
            return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]);
        }
        let seconds = call.duration_s.unwrap_or(0).max(0);
        let outbound = call.direction.as_deref().is_some_and(|d| d.starts_with("outbound"));
        let payload = json!({
            "topic": "CALL_RECEIVED",
            "data": {
                "id": call.call_id,
                "start_date": event.occurred_at,
                "from_number": call.from,
                "to": call.to,
                "type": if outbound { "OUTBOUND" } else { "INBOUND" },
                "length_in_minutes": seconds as f64 / 60.0,
                "length": human(seconds),
                "recording_url": call.recording_url,
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
    fn a_finished_call_becomes_call_received() {
        let input = json!({ "call_id": "CA1", "from": "+14155550100", "to": "+14155550199", "direction": "inbound",
                            "outcome": "answered", "duration_s": 150 });
        let out = delivered(&TopicCallReceived::handle(event("call.completed", input)).unwrap());
        assert_eq!(out[0].0, "CALL_RECEIVED");
        let data = &out[0].1["data"];
        assert_eq!(data["from_number"], "+14155550100");
        assert_eq!((data["length"].as_str(), data["length_in_minutes"].as_f64()), (Some("2m 30s"), Some(2.5)));
        assert_eq!(data["type"], "INBOUND");
        let ringing = json!({ "call_id": "CA2", "direction": "inbound" });
        assert_eq!(
            delivered(&TopicCallReceived::handle(event("call.ringing", ringing)).unwrap())[0].0,
            "call.ringing",
            "not before the call ended"
        );
    }
}
