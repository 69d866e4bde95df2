//! The TwiML hookhost answers Twilio voice requests with. Pure.

use super::VoiceLeg;
use crate::normalize::calls::CallState;

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// An empty `<Response/>`: acknowledges a callback, does nothing.
pub fn empty() -> String {
    format!("{HEAD}<Response/>")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

fn record(action: &str) -> String {
    format!(
        "{HEAD}<Response><Say>Please leave a message after the tone.</Say><Record action=\"{}\" method=\"POST\" maxLength=\"120\" playBeep=\"true\"/></Response>",
        escape(action)
    )
}

fn hang_up(say: Option<&str>) -> String {
    match say {
        Some(s) => format!("{HEAD}<Response><Say>{}</Say><Hangup/></Response>", escape(s)),
        None => format!("{HEAD}<Response><Hangup/></Response>"),
    }
}

/// What to answer `leg` with, given the call's state after it; `action` is the dial-complete URL.
pub fn answer(leg: VoiceLeg, call: &CallState, action: &str) -> String {
    match leg {
        VoiceLeg::Status => empty(),
        VoiceLeg::Inbound => match (&call.forward_to, call.voicemail) {
            (Some(to), _) => format!(
                "{HEAD}<Response><Dial action=\"{}\" method=\"POST\" timeout=\"20\">{}</Dial></Response>",
                escape(action),
                escape(to)
            ),
            (None, true) => record(action),
            (None, false) => hang_up(Some("Sorry, this number cannot take your call.")),
        },
        VoiceLeg::DialComplete => {
            let forward_failed = call.dial_status.is_some() && call.outcome.is_none();
            if forward_failed && call.voicemail && call.recording_url.is_none() {
                record(action)
            } else {
                hang_up(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_forwards_records_or_declines() {
        let mut c = CallState { forward_to: Some("+1415&5550100".into()), ..Default::default() };
        let x = answer(VoiceLeg::Inbound, &c, "https://h.example/hooks/t/twilio/voice/dial-complete");
        assert!(x.contains("<Dial action=\"https://h.example/hooks/t/twilio/voice/dial-complete\""));
        assert!(x.contains(">+1415&amp;5550100</Dial>"));
        c.forward_to = None;
        c.voicemail = true;
        assert!(answer(VoiceLeg::Inbound, &c, "a").contains("<Record action=\"a\""));
        c.voicemail = false;
        assert!(answer(VoiceLeg::Inbound, &c, "a").contains("<Hangup/>"));
        assert_eq!(answer(VoiceLeg::Status, &c, "a"), empty());
    }

    #[test]
    fn dial_complete_records_only_when_the_forward_failed_and_voicemail_is_on() {
        let c = CallState { dial_status: Some("no-answer".into()), voicemail: true, ..Default::default() };
        assert!(answer(VoiceLeg::DialComplete, &c, "a").contains("<Record"));
        let recorded = CallState { recording_url: Some("r".into()), ..c.clone() };
        assert!(answer(VoiceLeg::DialComplete, &recorded, "a").contains("<Hangup/>"));
        let bridged = CallState { outcome: Some("forwarded".into()), ..c };
        assert!(answer(VoiceLeg::DialComplete, &bridged, "a").contains("<Hangup/>"));
    }
}
