//! A filter: drops test events and every event but missed calls, each with a recorded reason.
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct KeepMissedCalls;

impl Plugin for KeepMissedCalls {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        if event.is_test {
            return Ok(vec![hookhost_sdk::drop_event("test event")]);
        }
        if event.event_type != "call.missed" {
            return Ok(vec![hookhost_sdk::drop_event(&format!("{} is not a missed call", event.event_type))]);
        }
        Ok(vec![hookhost_sdk::deliver_unchanged(&event)])
    }
}

hookhost_sdk::export!(KeepMissedCalls);

#[cfg(test)]
mod tests {
    use hookhost_sdk::serde_json::json;
    use hookhost_sdk::testing::{delivered, event};

    use super::*;

    #[test]
    fn keeps_missed_calls_only() {
        let kept = KeepMissedCalls::handle(event("call.missed", json!({ "call_id": "CA1" }))).unwrap();
        assert_eq!(delivered(&kept)[0].1["call_id"], "CA1");
        let dropped = KeepMissedCalls::handle(event("call.answered", json!({ "call_id": "CA1" }))).unwrap();
        assert!(matches!(&dropped[..], [Action::Drop(r)] if r.contains("not a missed call")));
        let mut test = event("call.missed", json!({ "call_id": "CA1" }));
        test.is_test = true;
        assert!(matches!(&KeepMissedCalls::handle(test).unwrap()[..], [Action::Drop(r)] if r == "test event"));
    }
}
