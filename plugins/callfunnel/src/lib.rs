//! CallFunnel's outbound contract (`002_…` in the seeds): its event catalogue from hookhost's
//! canonical events — `call.completed` (answered, forwarded, voicemail) and `call.failed` (busy,
//! no-answer, failed) with `disposition` and `duration_s`; `message.sent`, `message.delivered`
//! and `message.replied` from SMS. Other events are dropped: CallFunnel does not publish them.
//! Pair with an endpoint signing the hookhost way under CallFunnel's header names:
//! `{"signing":"hookhost","signature_header":"X-CF-Signature","id_header":"X-CF-Event-Id"}`.
use hookhost_sdk::events::Canonical;
use hookhost_sdk::serde_json::{Value, json};
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct CallFunnel;

impl Plugin for CallFunnel {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let action = match (event.event_type.as_str(), event.typed()) {
            ("call.completed", Ok(Canonical::Call(call))) => {
                let outcome = call.outcome.as_deref().unwrap_or("failed");
                let failed = matches!(outcome, "missed" | "failed");
                let disposition = if failed { call.reason.as_deref().unwrap_or(outcome) } else { outcome };
                let direction = match call.direction.as_deref() {
                    Some(d) if d.starts_with("outbound") => "outbound",
                    _ => "inbound",
                };
                let body = json!({
                    "call_id": call.call_id,
                    "direction": direction,
                    "from": call.from,
                    "to": call.to,
                    "disposition": disposition,
                    "duration_s": call.duration_s.unwrap_or(0),
                    "recording_url": call.recording_url,
                });
                hookhost_sdk::deliver(if failed { "call.failed" } else { "call.completed" }, &body)
            }
            (kind @ ("sms.sent" | "sms.delivered" | "sms.received"), Ok(Canonical::Sms(sms))) => {
                let (event_type, status) = match kind {
                    "sms.sent" => ("message.sent", "sent"),
                    "sms.delivered" => ("message.delivered", "delivered"),
                    _ => ("message.replied", "received"),
                };
                let contact = sms.extra.get("contact").and_then(Value::as_str).map(str::to_string);
                let body = json!({
                    "message_id": sms.message_sid,
                    "channel": "sms",
                    "status": status,
                    "phone": contact,
                    "text": sms.body,
                });
                hookhost_sdk::deliver(event_type, &body)
            }
            (other, _) => Action::Drop(format!("{other} is not in CallFunnel's catalogue")),
        };
        Ok(vec![action])
    }
}

hookhost_sdk::export!(CallFunnel);

#[cfg(test)]
mod tests {
    use hookhost_sdk::testing::{delivered, event};

    use super::*;

    #[test]
    fn calls_split_into_completed_and_failed_with_a_disposition() {
        let missed = json!({ "call_id": "CA1", "from": "+14158675309", "to": "+18005551212", "direction": "inbound",
                             "outcome": "missed", "reason": "no-answer", "duration_s": 0 });
        let out = delivered(&CallFunnel::handle(event("call.completed", missed)).unwrap());
        assert_eq!(out[0].0, "call.failed");
        assert_eq!(out[0].1["disposition"], "no-answer");
        let answered =
            json!({ "call_id": "CA2", "direction": "outbound-dial", "outcome": "answered", "duration_s": 42 });
        let out = delivered(&CallFunnel::handle(event("call.completed", answered)).unwrap());
        assert_eq!(out[0].0, "call.completed");
        assert_eq!((out[0].1["disposition"].clone(), out[0].1["duration_s"].clone()), (json!("answered"), json!(42)));
        assert_eq!(out[0].1["direction"], "outbound");
    }

    #[test]
    fn messages_keep_their_status_and_the_rest_is_dropped() {
        let sms = json!({ "message_sid": "SM1", "status": "delivered", "contact": "+14158675309" });
        let out = delivered(&CallFunnel::handle(event("sms.delivered", sms)).unwrap());
        assert_eq!(out[0].0, "message.delivered");
        assert_eq!(out[0].1["phone"], "+14158675309");
        for (t, payload) in [("call.ringing", json!({ "call_id": "CA1" })), ("billing.invoice.paid", json!({}))] {
            let dropped = CallFunnel::handle(event(t, payload)).unwrap();
            assert!(matches!(&dropped[0], Action::Drop(r) if r.contains("catalogue")), "{t}");
        }
    }
}
