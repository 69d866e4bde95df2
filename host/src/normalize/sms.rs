//! Twilio messages → canonical message events. Inbound: `sms.received`, with
//! opt-out/opt-in/help keywords (providers.md §4) matched case-insensitively on the trimmed
//! whole body, whether or not Twilio sent `OptOutType` (Advanced Opt-Out); when it did, its
//! verdict wins. Outbound status callbacks: `sms.sent`, `sms.delivered`, `sms.undelivered`,
//! `sms.failed`, `sms.read`. Pure.

use serde_json::{Map, Value};

use super::twilio::param;
use crate::phone::Country;

pub const OPT_OUT: [&str; 8] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"];
pub const OPT_IN: [&str; 3] = ["START", "YES", "UNSTOP"];
pub const HELP: [&str; 2] = ["HELP", "INFO"];

/// What a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut(&'static str),
    OptIn(&'static str),
    Help(&'static str),
}

impl Keyword {
    /// The canonical event emitted beside `sms.received`.
    pub fn event_type(self) -> &'static str {
        match self {
            Keyword::OptOut(_) => "sms.opt_out",
            Keyword::OptIn(_) => "sms.opt_in",
            Keyword::Help(_) => "sms.help",
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Keyword::OptOut(w) | Keyword::OptIn(w) | Keyword::Help(w) => w,
        }
    }
}

/// Classify a message body (and Twilio's `OptOutType`, if sent).
pub fn classify(body: &str, opt_out_type: Option<&str>) -> Option<Keyword> {
    let word = body.trim().to_ascii_uppercase();
    let find = |list: &[&'static str]| list.iter().copied().find(|k| *k == word);
    let matched = find(&OPT_OUT)
        .map(Keyword::OptOut)
        .or_else(|| find(&OPT_IN).map(Keyword::OptIn))
        .or_else(|| find(&HELP).map(Keyword::Help));
    match opt_out_type.map(str::to_ascii_uppercase).as_deref() {
        Some("STOP") => Some(matched.filter(|k| matches!(k, Keyword::OptOut(_))).unwrap_or(Keyword::OptOut("STOP"))),
        Some("START") => Some(matched.filter(|k| matches!(k, Keyword::OptIn(_))).unwrap_or(Keyword::OptIn("START"))),
        Some("HELP") => Some(matched.filter(|k| matches!(k, Keyword::Help(_))).unwrap_or(Keyword::Help("HELP"))),
        _ => matched,
    }
}

/// The canonical event of a Twilio `MessageStatus`, if it has one: the intermediate states
/// (`accepted`, `scheduled`, `queued`, `sending`, `canceled`, `receiving`, `received`) have none.
pub fn status_event(status: &str) -> Option<&'static str> {
    Some(match status {
        "sent" => "sms.sent",
        "delivered" => "sms.delivered",
        "undelivered" => "sms.undelivered",
        "failed" => "sms.failed",
        "read" => "sms.read",
        _ => return None,
    })
}

/// The payload of a message status event, from Twilio's status callback parameters: the
/// message, its parties (`contact` is the recipient), `status`, and the carrier's error when
/// it failed.
pub fn status_payload(
    params: &[(String, String)],
    message_sid: &str,
    status: &str,
    country: Option<Country>,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("message_sid".into(), message_sid.into());
    out.insert("status".into(), status.into());
    let names = [
        ("AccountSid", "account_sid"),
        ("MessagingServiceSid", "messaging_service_sid"),
        ("ErrorCode", "error_code"),
        ("ErrorMessage", "error_message"),
    ];
    copy(&mut out, params, &names, country);
    if let Some(to) = out.get("to").cloned() {
        out.insert("contact".into(), to);
    }
    out
}

/// Copy the parameters `names` (Twilio's name, the payload's) that are set, then `from` and
/// `to` in E.164 where they read as numbers, with `from_raw`/`to_raw` when the provider spelled
/// them otherwise.
fn copy(out: &mut Map<String, Value>, params: &[(String, String)], names: &[(&str, &str)], country: Option<Country>) {
    for (src, dst) in names {
        if let Some(v) = param(params, src) {
            out.insert(dst.to_string(), v.into());
        }
    }
    for (src, dst) in [("From", "from"), ("To", "to")] {
        if let Some(v) = param(params, src) {
            let n = crate::phone::normalize(v, country);
            out.insert(dst.into(), n.number.into());
            if let Some(raw) = n.raw {
                out.insert(format!("{dst}_raw"), raw.into());
            }
        }
    }
}

/// The `sms.received` payload from Twilio's inbound message parameters.
pub fn received_payload(params: &[(String, String)], country: Option<Country>) -> Map<String, Value> {
    let p = |name: &str| param(params, name);
    let mut out = Map::new();
    let names = [
        ("MessageSid", "message_sid"),
        ("AccountSid", "account_sid"),
        ("MessagingServiceSid", "messaging_service_sid"),
        ("Body", "body"),
        ("OptOutType", "opt_out_type"),
    ];
    copy(&mut out, params, &names, country);
    let media: Vec<Value> = (0..p("NumMedia").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0).min(10))
        .filter_map(|i| {
            let url = p(&format!("MediaUrl{i}"))?;
            Some(serde_json::json!({ "url": url, "content_type": p(&format!("MediaContentType{i}")) }))
        })
        .collect();
    if !media.is_empty() {
        out.insert("media".into(), Value::Array(media));
    }
    if let Some(n) = p("NumSegments").and_then(|n| n.parse::<i64>().ok()) {
        out.insert("segments".into(), n.into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_match_the_trimmed_whole_body_case_insensitively() {
        assert_eq!(classify("  stop ", None), Some(Keyword::OptOut("STOP")));
        assert_eq!(classify("StopAll", None), Some(Keyword::OptOut("STOPALL")));
        assert_eq!(classify("optout", None), Some(Keyword::OptOut("OPTOUT")));
        assert_eq!(classify("unstop", None), Some(Keyword::OptIn("UNSTOP")));
        assert_eq!(classify("Info", None), Some(Keyword::Help("INFO")));
        assert_eq!(classify("please stop calling", None), None);
        assert_eq!(classify("stop.", None), None);
        assert_eq!(classify("", None), None);
    }

    #[test]
    fn twilio_opt_out_type_wins() {
        assert_eq!(classify("arrête", Some("STOP")), Some(Keyword::OptOut("STOP")));
        assert_eq!(classify("quit", Some("STOP")), Some(Keyword::OptOut("QUIT")));
        assert_eq!(classify("yes", Some("START")), Some(Keyword::OptIn("YES")));
        assert_eq!(classify("hello", Some("HELP")), Some(Keyword::Help("HELP")));
    }

    #[test]
    fn only_final_and_read_statuses_are_events() {
        assert_eq!(status_event("delivered"), Some("sms.delivered"));
        assert_eq!(status_event("undelivered"), Some("sms.undelivered"));
        for quiet in ["queued", "sending", "accepted", "scheduled", "canceled", "Delivered", ""] {
            assert_eq!(status_event(quiet), None, "{quiet}");
        }
        let params: Vec<(String, String)> =
            [("To", "+14158675309"), ("From", "+18005551212"), ("ErrorCode", "30003"), ("Body", "not kept")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let p = status_payload(&params, "SM1", "undelivered", None);
        assert_eq!(p["contact"], "+14158675309");
        assert_eq!(p["error_code"], "30003");
        assert!(!p.contains_key("body"));
    }

    #[test]
    fn payload_with_media() {
        let params: Vec<(String, String)> = [
            ("MessageSid", "SM1"),
            ("From", "+14158675309"),
            ("Body", "hi"),
            ("NumMedia", "1"),
            ("MediaUrl0", "https://api.twilio.com/m/1"),
            ("MediaContentType0", "image/jpeg"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = received_payload(&params, None);
        assert_eq!(p["message_sid"], "SM1");
        assert_eq!(p["media"][0]["content_type"], "image/jpeg");
    }
}
