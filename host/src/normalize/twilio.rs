//! Twilio voice status callbacks → canonical call events.

use serde_json::{Map, Value};

use super::{NormalizeError, Normalized};

/// Form parameters of a Twilio request, decoded, in the order received.
pub type Params = [(String, String)];

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The canonical type for a `CallStatus`, and whether it is a missed call.
pub fn call_event_type(status: &str) -> &'static str {
    match status {
        "queued" | "initiated" => "call.initiated",
        "ringing" => "call.ringing",
        "in-progress" | "answered" => "call.answered",
        "completed" => "call.completed",
        "no-answer" | "busy" | "canceled" => "call.missed",
        "failed" => "call.failed",
        _ => "call.updated",
    }
}

/// Normalize a voice status callback. `received_at` (unix seconds) stands in when Twilio sends
/// no `Timestamp`.
pub fn voice_status(params: &Params, received_at: i64) -> Result<Normalized, NormalizeError> {
    let call_sid = param(params, "CallSid").ok_or(NormalizeError::Missing("CallSid"))?;
    let status = param(params, "CallStatus").ok_or(NormalizeError::Missing("CallStatus"))?;
    let event_type = call_event_type(status);

    let mut p = Map::new();
    p.insert("call_id".into(), call_sid.into());
    p.insert("call_sid".into(), call_sid.into());
    p.insert("call_status".into(), status.into());
    for (src, dst) in [
        ("AccountSid", "account_sid"),
        ("From", "from"),
        ("To", "to"),
        ("Direction", "direction"),
        ("ParentCallSid", "parent_call_sid"),
        ("ForwardedFrom", "forwarded_from"),
        ("CallerName", "caller_name"),
        ("RecordingUrl", "recording_url"),
        ("RecordingSid", "recording_sid"),
        ("Timestamp", "provider_timestamp"),
    ] {
        if let Some(v) = param(params, src) {
            p.insert(dst.into(), v.into());
        }
    }
    for (src, dst) in [("CallDuration", "duration_s"), ("SequenceNumber", "sequence_number")] {
        if let Some(n) = param(params, src).and_then(|v| v.parse::<i64>().ok()) {
            p.insert(dst.into(), n.into());
        }
    }
    if event_type == "call.missed" {
        p.insert("reason".into(), status.into());
    }
    let sequence = param(params, "SequenceNumber").unwrap_or("");
    let occurred_at = param(params, "Timestamp").and_then(parse_rfc2822).unwrap_or(received_at);
    Ok(Normalized {
        event_type: event_type.to_string(),
        occurred_at,
        payload: Value::Object(p),
        dedupe_key: format!("twilio:call:{call_sid}:{status}:{sequence}"),
    })
}

/// Parse an RFC 2822 date as Twilio sends it (`Thu, 01 Jan 2026 12:01:00 +0000`) to unix seconds.
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.split_once(", ").map_or(s, |(_, rest)| rest);
    let mut it = s.split_whitespace();
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next().flatten().unwrap_or(0));
    let zone = it.next().unwrap_or("+0000");
    let (sign, digits) = match zone.as_bytes().first() {
        Some(b'+') => (1, &zone[1..]),
        Some(b'-') => (-1, &zone[1..]),
        _ if zone == "GMT" || zone == "UT" || zone == "Z" => (1, "0000"),
        _ => return None,
    };
    if digits.len() != 4 || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let offset = sign * (digits[..2].parse::<i64>().ok()? * 3600 + digits[2..].parse::<i64>().ok()? * 60);
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn maps_every_status() {
        for (status, ty) in [
            ("ringing", "call.ringing"),
            ("in-progress", "call.answered"),
            ("completed", "call.completed"),
            ("no-answer", "call.missed"),
            ("busy", "call.missed"),
            ("canceled", "call.missed"),
            ("failed", "call.failed"),
        ] {
            let n = voice_status(&params(&[("CallSid", "CA1"), ("CallStatus", status)]), 7).unwrap();
            assert_eq!(n.event_type, ty, "{status}");
        }
    }

    #[test]
    fn missed_call_carries_reason_ids_and_dedupe_key() {
        let n = voice_status(
            &params(&[
                ("CallSid", "CA123"),
                ("AccountSid", "AC9"),
                ("CallStatus", "no-answer"),
                ("From", "+14158675309"),
                ("To", "+18005551212"),
                ("SequenceNumber", "3"),
                ("Timestamp", "Thu, 01 Jan 2026 12:01:00 +0000"),
            ]),
            7,
        )
        .unwrap();
        assert_eq!(n.payload["reason"], "no-answer");
        assert_eq!(n.payload["call_sid"], "CA123");
        assert_eq!(n.payload["account_sid"], "AC9");
        assert_eq!(n.payload["sequence_number"], 3);
        assert_eq!(n.dedupe_key, "twilio:call:CA123:no-answer:3");
        assert_eq!(n.occurred_at, 1_767_268_860);
    }

    #[test]
    fn requires_call_sid_and_status() {
        assert_eq!(voice_status(&params(&[("CallStatus", "ringing")]), 0), Err(NormalizeError::Missing("CallSid")));
        assert_eq!(voice_status(&params(&[("CallSid", "CA1")]), 0), Err(NormalizeError::Missing("CallStatus")));
    }

    #[test]
    fn rfc2822_dates() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_rfc2822("Thu, 01 Jan 2026 12:01:00 +0000"), Some(1_767_268_860));
        assert_eq!(parse_rfc2822("Thu, 01 Jan 2026 13:01:00 +0100"), Some(1_767_268_860));
        assert_eq!(parse_rfc2822("Mon, 29 Feb 2024 00:00:00 GMT"), Some(1_709_164_800));
        assert_eq!(parse_rfc2822("yesterday"), None);
    }
}
