//! Exotel callbacks → call signals (providers.md §6). Exotel signs nothing; authenticity is the
//! callback token, checked by ingest. Pure.

use super::NormalizeError;
use super::calls::{Party, Signal};

/// Which Exotel callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Passthru applet (GET with query parameters, or POST).
    Passthru,
    /// The terminal StatusCallback (form or JSON).
    Status,
}

fn get<'a>(params: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()))
}

/// The call, its parties, the signal and the receipt's identity.
pub fn signal(kind: Kind, params: &[(String, String)]) -> Result<(String, Party, Signal, String), NormalizeError> {
    let call_sid = get(params, &["CallSid"]).ok_or(NormalizeError::Missing("CallSid"))?.to_string();
    let party = Party {
        call_id: None,
        from_raw: None,
        to_raw: None,
        account_sid: None,
        from: get(params, &["CallFrom", "From"]).map(String::from),
        to: get(params, &["CallTo", "To"]).map(String::from),
        direction: get(params, &["Direction"])
            .map(|d| if d == "incoming" { "inbound".to_string() } else { d.to_string() }),
    };
    let recording_url = get(params, &["RecordingUrl"]).map(String::from);
    let duration_s = get(params, &["ConversationDuration", "DialCallDuration"]).and_then(|d| d.parse().ok());
    let resolved = |outcome: &str, reason: &str| Signal::Resolved {
        outcome: outcome.into(),
        reason: reason.into(),
        duration_s,
        recording_url: recording_url.clone(),
    };
    let (signal, key) = match kind {
        Kind::Passthru => {
            let call_type = get(params, &["CallType"]).ok_or(NormalizeError::Missing("CallType"))?;
            let dial = get(params, &["DialCallStatus"]);
            let signal = match call_type {
                "call-attempt" => {
                    Signal::Status { status: "initiated".into(), sequence: None, duration_s: None, recording_url: None }
                }
                "completed" if dial.is_some_and(|d| d == "completed") && get(params, &["DialWhomNumber"]).is_some() => {
                    resolved("forwarded", "completed")
                }
                "completed" => resolved("answered", "completed"),
                "client-hangup" | "incomplete" => resolved("missed", call_type),
                "voicemail" => resolved("voicemail", "voicemail"),
                other => return Err(NormalizeError::Malformed(format!("unknown CallType {other:?}"))),
            };
            (signal, format!("exotel:passthru:{call_sid}:{call_type}"))
        }
        Kind::Status => {
            let status = get(params, &["Status"]).ok_or(NormalizeError::Missing("Status"))?;
            let signal = match status {
                "completed" => resolved("answered", status),
                "busy" | "no-answer" => resolved("missed", status),
                "failed" => resolved("failed", status),
                other => return Err(NormalizeError::Malformed(format!("unknown Status {other:?}"))),
            };
            (signal, format!("exotel:status:{call_sid}:{status}"))
        }
    };
    Ok((call_sid, party, signal, key))
}

/// Parameters of a JSON body: top-level strings and numbers (Exotel's StatusCallback may be JSON).
pub fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, NormalizeError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| NormalizeError::Malformed(format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| NormalizeError::Malformed("not a JSON object".into()))?;
    Ok(obj
        .iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn passthru_call_types() {
        let (sid, party, sig, key) = signal(
            Kind::Passthru,
            &p(&[("CallSid", "c1"), ("CallFrom", "09999"), ("CallType", "incomplete"), ("Direction", "incoming")]),
        )
        .unwrap();
        assert_eq!(sid, "c1");
        assert_eq!(party.direction.as_deref(), Some("inbound"));
        assert!(matches!(sig, Signal::Resolved { ref outcome, .. } if outcome == "missed"));
        assert_eq!(key, "exotel:passthru:c1:incomplete");
        let (_, _, sig, _) =
            signal(Kind::Passthru, &p(&[("CallSid", "c1"), ("CallType", "voicemail"), ("RecordingUrl", "https://r")]))
                .unwrap();
        assert!(
            matches!(sig, Signal::Resolved { ref outcome, ref recording_url, .. } if outcome == "voicemail" && recording_url.is_some())
        );
        assert!(signal(Kind::Passthru, &p(&[("CallSid", "c1"), ("CallType", "weird")])).is_err());
        assert_eq!(
            signal(Kind::Passthru, &p(&[("CallType", "completed")])).unwrap_err(),
            NormalizeError::Missing("CallSid")
        );
    }

    #[test]
    fn status_callback_and_json() {
        let params = json_params(br#"{"CallSid":"c2","Status":"busy","ConversationDuration":0,"Legs":[]}"#).unwrap();
        let (_, _, sig, key) = signal(Kind::Status, &params).unwrap();
        assert!(
            matches!(sig, Signal::Resolved { ref outcome, ref reason, .. } if outcome == "missed" && reason == "busy")
        );
        assert_eq!(key, "exotel:status:c2:busy");
        assert!(json_params(b"[1]").is_err());
    }
}
