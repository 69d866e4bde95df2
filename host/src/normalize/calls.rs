//! The per-call outcome state machine (Twilio voice: inbound, status callbacks, dial-complete).
//!
//! Pure: a call's state and one signal in, the canonical events to emit out. `call.completed`
//! is emitted exactly once per call, when its outcome is known, with `call.missed`,
//! `call.forwarded` or `call.failed` alongside. Late, out-of-order and repeated signals never
//! reopen a closed call nor emit twice. With `<Dial>`, Twilio answers the parent call itself,
//! so a forwarded call's outcome comes from `DialCallStatus`/`DialBridged`, never from the
//! parent's `completed` (providers.md §4).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What hookhost remembers about one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallState {
    /// The provider's own call id when it differs from the key the call is stored under (a
    /// vendor's `call_id` 1 is stored as `vendor:acme:1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    pub account_sid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The provider's spelling of `from`/`to` when it was not E.164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_raw: Option<String>,
    pub direction: Option<String>,
    /// Where the tracked number forwards to, if it does.
    pub forward_to: Option<String>,
    /// Whether an unanswered forward goes to voicemail.
    pub voicemail: bool,
    /// hookhost's own TwiML answered the call (its Voice URL was hit): no person picked it
    /// up unless a forward connected.
    #[serde(default)]
    pub answered_by_twiml: bool,
    /// The parent call reached `in-progress`.
    pub answered: bool,
    /// Highest `SequenceNumber` applied.
    pub last_sequence: Option<i64>,
    /// Last parent `CallStatus`.
    pub parent_status: Option<String>,
    pub duration_s: Option<i64>,
    pub dial_status: Option<String>,
    pub dial_bridged: Option<bool>,
    pub dial_duration_s: Option<i64>,
    pub dial_call_sid: Option<String>,
    pub recording_url: Option<String>,
    /// answered | missed | forwarded | voicemail | failed, once known.
    pub outcome: Option<String>,
    /// Receipt identities already applied (provider retries are no-ops).
    #[serde(default)]
    pub seen: Vec<String>,
}

/// Who a call is between, as every Twilio voice request says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// The provider's call id, when the call is stored under another key.
    pub call_id: Option<String>,
    pub account_sid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub from_raw: Option<String>,
    pub to_raw: Option<String>,
    pub direction: Option<String>,
}

impl Party {
    /// The parties with `from`/`to` in E.164 where they read as numbers (national ones in
    /// `country`), the provider's spelling kept beside when it differs.
    pub fn in_e164(self, country: Option<crate::phone::Country>) -> Party {
        let split = |n: Option<String>| match n {
            Some(n) => {
                let p = crate::phone::normalize(&n, country);
                (Some(p.number), p.raw)
            }
            None => (None, None),
        };
        let (from, from_raw) = split(self.from);
        let (to, to_raw) = split(self.to);
        Party { from, to, from_raw, to_raw, ..self }
    }
}

/// One provider signal about a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The first request of an inbound call, with the tracked number's settings.
    Inbound { forward_to: Option<String>, voicemail: bool },
    /// A status callback of the parent call.
    Status { status: String, sequence: Option<i64>, duration_s: Option<i64>, recording_url: Option<String> },
    /// A provider that states the outcome itself (Exotel's `CallType`/`Status`).
    Resolved { outcome: String, reason: String, duration_s: Option<i64>, recording_url: Option<String> },
    /// A provider that reports the end without a status vocabulary (a vendor's `call_ended`,
    /// `CALL_RECEIVED`): answered if it was (or `answered` says so), else missed; `details`
    /// (transcript, summary, …) are added to `call.completed`.
    Ended {
        answered: Option<bool>,
        duration_s: Option<i64>,
        recording_url: Option<String>,
        details: Map<String, Value>,
    },
    /// hookhost's sweeper: the call stayed open too long (see [`Sweep`]).
    Sweep(Sweep),
    /// The `<Dial action>` callback (also carries the voicemail recording when one was made).
    DialComplete {
        status: Option<String>,
        bridged: Option<bool>,
        duration_s: Option<i64>,
        dial_call_sid: Option<String>,
        recording_url: Option<String>,
    },
}

/// Why the sweeper closes a call nobody else will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// The parent call ended but its dial result never came (`HOOKHOST_CALL_SETTLE` passed):
    /// closed from what is known.
    Settle,
    /// No signal at all for `HOOKHOST_CALL_ABANDON`: closed as `failed`.
    Abandon,
}

impl Sweep {
    /// The key the sweep of `call_sid` is applied under (once per call; its events' dedupe keys
    /// start with it).
    pub fn key(self, call_sid: &str) -> String {
        match self {
            Sweep::Settle => format!("hookhost:settle:{call_sid}"),
            Sweep::Abandon => format!("hookhost:abandon:{call_sid}"),
        }
    }
}

/// An event to emit: canonical type and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub event_type: String,
    pub payload: Value,
}

const TERMINAL: [&str; 5] = ["completed", "no-answer", "busy", "canceled", "failed"];

impl CallState {
    fn base_payload(&self, call_sid: &str) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("call_id".into(), self.call_id.as_deref().unwrap_or(call_sid).into());
        p.insert("call_sid".into(), call_sid.into());
        for (k, v) in [
            ("account_sid", &self.account_sid),
            ("from", &self.from),
            ("to", &self.to),
            ("from_raw", &self.from_raw),
            ("to_raw", &self.to_raw),
            ("direction", &self.direction),
        ] {
            if let Some(v) = v {
                p.insert(k.into(), v.clone().into());
            }
        }
        p
    }

    fn lifecycle(&self, call_sid: &str, event_type: &str, status: &str, sequence: Option<i64>) -> Emit {
        let mut p = self.base_payload(call_sid);
        p.insert("call_status".into(), status.into());
        if let Some(seq) = sequence {
            p.insert("sequence_number".into(), seq.into());
        }
        Emit { event_type: event_type.into(), payload: Value::Object(p) }
    }

    fn dial_failed(&self) -> bool {
        self.dial_status.is_some() && !self.dial_connected()
    }

    fn dial_connected(&self) -> bool {
        self.dial_bridged == Some(true) || matches!(self.dial_status.as_deref(), Some("completed" | "answered"))
    }

    /// Close the call with `outcome`: `call.completed`, and the alongside event.
    fn close(&mut self, call_sid: &str, outcome: &str, reason: &str) -> Vec<Emit> {
        self.outcome = Some(outcome.to_string());
        let mut p = self.base_payload(call_sid);
        p.insert("outcome".into(), outcome.into());
        p.insert("reason".into(), reason.into());
        let opt = [
            ("call_status", self.parent_status.clone().map(Value::from)),
            ("sequence_number", self.last_sequence.map(Value::from)),
            ("duration_s", self.duration_s.map(Value::from)),
            ("dial_call_duration_s", self.dial_duration_s.map(Value::from)),
            ("dial_call_sid", self.dial_call_sid.clone().map(Value::from)),
            ("recording_url", self.recording_url.clone().map(Value::from)),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                p.insert(k.into(), v);
            }
        }
        if outcome == "forwarded" {
            if let Some(f) = &self.forward_to {
                p.insert("forwarded_to".into(), f.clone().into());
            }
            p.insert("answered_by".into(), "forward".into());
        } else if outcome == "answered" {
            p.insert("answered_by".into(), "direct".into());
        }
        let completed = Emit { event_type: "call.completed".into(), payload: Value::Object(p.clone()) };
        let alongside = match outcome {
            "missed" => Some("call.missed"),
            "forwarded" => Some("call.forwarded"),
            "failed" => Some("call.failed"),
            _ => None,
        };
        let mut out = vec![completed];
        if let Some(t) = alongside {
            out.push(Emit { event_type: t.into(), payload: Value::Object(p) });
        }
        out
    }

    /// Try to decide the outcome from what is known; `None` while it is not yet knowable.
    fn resolve(&mut self, call_sid: &str) -> Vec<Emit> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        // A forward's result decides, whatever the parent's status says.
        if self.dial_connected() {
            let reason = self.dial_status.clone().unwrap_or_else(|| "bridged".into());
            return self.close(call_sid, "forwarded", &reason);
        }
        if self.dial_failed() {
            let reason = self.dial_status.clone().unwrap_or_default();
            if !self.voicemail {
                return self.close(call_sid, "missed", &reason);
            }
            if self.recording_url.is_some() {
                return self.close(call_sid, "voicemail", &reason);
            }
            // Voicemail offered: wait for the recording or the end of the call.
            return match self.parent_status.as_deref() {
                Some(s) if TERMINAL.contains(&s) => self.close(call_sid, "missed", &reason),
                _ => Vec::new(),
            };
        }
        let Some(status) = self.parent_status.clone().filter(|s| TERMINAL.contains(&s.as_str())) else {
            return Vec::new();
        };
        match status.as_str() {
            "no-answer" | "busy" | "canceled" => self.close(call_sid, "missed", &status),
            "failed" => self.close(call_sid, "failed", &status),
            // completed with a forward configured but no dial result yet: wait for dial-complete
            // (or the sweeper, see `Sweep::Settle`).
            _ if self.forward_to.is_some() => Vec::new(),
            _ if self.recording_url.is_some() && self.voicemail => self.close(call_sid, "voicemail", &status),
            // Only hookhost's TwiML answered (a greeting, a <Record> nobody spoke into): nobody
            // picked up.
            _ if self.answered_by_twiml && self.voicemail => self.close(call_sid, "missed", "no-recording"),
            _ if self.answered_by_twiml => self.close(call_sid, "missed", "no-forward-or-voicemail"),
            _ => self.close(call_sid, "answered", &status),
        }
    }

    /// The number on the other end: the caller of an inbound call, the callee of an outbound one.
    pub fn other_party(&self) -> Option<&str> {
        let outbound = self.direction.as_deref().is_some_and(|d| d.starts_with("outbound"));
        if outbound { self.to.as_deref() } else { self.from.as_deref() }
    }

    /// The parent call has ended and the outcome still waits on something (a dial result).
    pub fn awaiting_result(&self) -> bool {
        self.outcome.is_none() && self.parent_status.as_deref().is_some_and(|s| TERMINAL.contains(&s))
    }

    /// Close a call the sweeper found open: settled from what is known, or abandoned.
    fn sweep(&mut self, call_sid: &str, sweep: Sweep) -> Vec<Emit> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        match sweep {
            Sweep::Settle if !self.awaiting_result() => Vec::new(),
            // A missing dial result may hide a forward that connected; reported missed so the
            // caller is followed up rather than lost, with the reason saying so.
            Sweep::Settle if self.voicemail && self.recording_url.is_some() => {
                self.close(call_sid, "voicemail", "dial-result-missing")
            }
            Sweep::Settle => self.close(call_sid, "missed", "dial-result-missing"),
            Sweep::Abandon => self.close(call_sid, "failed", "abandoned"),
        }
    }
}

/// Apply one signal (identified by `receipt_key`) to a call; returns the events to emit.
pub fn step(state: &mut CallState, call_sid: &str, receipt_key: &str, party: Party, signal: Signal) -> Vec<Emit> {
    if state.seen.iter().any(|k| k == receipt_key) {
        return Vec::new();
    }
    state.seen.push(receipt_key.to_string());
    state.account_sid = state.account_sid.take().or(party.account_sid);
    state.call_id = state.call_id.take().or(party.call_id);
    if state.from.is_none() {
        (state.from, state.from_raw) = (party.from, party.from_raw);
    }
    if state.to.is_none() {
        (state.to, state.to_raw) = (party.to, party.to_raw);
    }
    state.direction = state.direction.take().or(party.direction);
    let closed = state.outcome.is_some();
    let mut out = Vec::new();
    match signal {
        Signal::Inbound { forward_to, voicemail } => {
            state.forward_to = forward_to;
            state.voicemail = voicemail;
            state.answered_by_twiml = true;
            if !closed {
                out.push(state.lifecycle(call_sid, "call.initiated", "ringing", None));
            }
        }
        Signal::Status { status, sequence, duration_s, recording_url } => {
            let stale = matches!((sequence, state.last_sequence), (Some(s), Some(last)) if s <= last);
            if let Some(s) = sequence {
                state.last_sequence = Some(state.last_sequence.map_or(s, |l| l.max(s)));
            }
            if recording_url.is_some() {
                state.recording_url = recording_url;
            }
            if TERMINAL.contains(&status.as_str()) {
                state.duration_s = duration_s.or(state.duration_s);
                if state.parent_status.as_deref().is_none_or(|p| !TERMINAL.contains(&p)) {
                    state.parent_status = Some(status);
                }
                out.extend(state.resolve(call_sid));
            } else if !closed && !stale {
                match status.as_str() {
                    "ringing" => out.push(state.lifecycle(call_sid, "call.ringing", &status, sequence)),
                    "in-progress" | "answered" => {
                        state.answered = true;
                        out.push(state.lifecycle(call_sid, "call.answered", &status, sequence));
                    }
                    "queued" | "initiated" => out.push(state.lifecycle(call_sid, "call.initiated", &status, sequence)),
                    _ => {}
                }
                if state.parent_status.as_deref().is_none_or(|p| !TERMINAL.contains(&p)) {
                    state.parent_status = Some(status);
                }
            }
        }
        Signal::Resolved { outcome, reason, duration_s, recording_url } => {
            state.duration_s = duration_s.or(state.duration_s);
            state.recording_url = recording_url.or(state.recording_url.take());
            if !closed {
                out.extend(state.close(call_sid, &outcome, &reason));
            }
        }
        Signal::Ended { answered, duration_s, recording_url, details } => {
            state.duration_s = duration_s.or(state.duration_s);
            state.recording_url = recording_url.or(state.recording_url.take());
            if !closed {
                let (outcome, reason) =
                    if answered.unwrap_or(state.answered) { ("answered", "ended") } else { ("missed", "not-answered") };
                for mut e in state.close(call_sid, outcome, reason) {
                    if let Value::Object(p) = &mut e.payload {
                        for (k, v) in &details {
                            p.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                    out.push(e);
                }
            }
        }
        Signal::Sweep(sweep) => out.extend(state.sweep(call_sid, sweep)),
        Signal::DialComplete { status, bridged, duration_s, dial_call_sid, recording_url } => {
            if status.is_some() {
                state.dial_status = status;
                state.dial_bridged = bridged.or(state.dial_bridged);
                state.dial_duration_s = duration_s.or(state.dial_duration_s);
                state.dial_call_sid = dial_call_sid.or(state.dial_call_sid.take());
            }
            if recording_url.is_some() {
                state.recording_url = recording_url;
            }
            out.extend(state.resolve(call_sid));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(forward: bool, voicemail: bool) -> Signal {
        Signal::Inbound { forward_to: forward.then(|| "+14155550100".into()), voicemail }
    }
    fn status(s: &str, seq: i64) -> Signal {
        Signal::Status { status: s.into(), sequence: Some(seq), duration_s: Some(30), recording_url: None }
    }
    fn dial(s: &str, bridged: bool) -> Signal {
        Signal::DialComplete {
            status: Some(s.into()),
            bridged: Some(bridged),
            duration_s: Some(12),
            dial_call_sid: Some("CAchild".into()),
            recording_url: None,
        }
    }
    fn run(signals: Vec<(&str, Signal)>) -> (CallState, Vec<String>) {
        let mut st = CallState::default();
        let mut types = Vec::new();
        for (key, sig) in signals {
            let party =
                Party { from: Some("+14158675309".into()), to: Some("+18005551212".into()), ..Party::default() };
            types.extend(step(&mut st, "CA1", key, party, sig).into_iter().map(|e| e.event_type));
        }
        (st, types)
    }

    #[test]
    fn answered_directly() {
        // The tenant's own TwiML answered (hookhost gets status callbacks only).
        let (st, t) = run(vec![("s1", status("in-progress", 1)), ("s2", status("completed", 2))]);
        assert_eq!(t, ["call.answered", "call.completed"]);
        assert_eq!(st.outcome.as_deref(), Some("answered"));
        assert_eq!(st.from.as_deref(), Some("+14158675309"));
    }

    #[test]
    fn no_answer_is_missed() {
        let (st, t) = run(vec![("i", inbound(false, false)), ("s1", status("no-answer", 1))]);
        assert_eq!(t, ["call.initiated", "call.completed", "call.missed"]);
        assert_eq!(st.outcome.as_deref(), Some("missed"));
    }

    #[test]
    fn forwarded_and_answered_despite_parent_completed_first() {
        // The parent's completed arrives before dial-complete: it must not decide.
        let (st, t) =
            run(vec![("i", inbound(true, false)), ("s2", status("completed", 2)), ("d", dial("completed", true))]);
        assert_eq!(t, ["call.initiated", "call.completed", "call.forwarded"]);
        assert_eq!(st.outcome.as_deref(), Some("forwarded"));
    }

    #[test]
    fn forwarded_no_answer_without_voicemail_is_missed_at_dial_complete() {
        let (st, t) =
            run(vec![("i", inbound(true, false)), ("d", dial("no-answer", false)), ("s", status("completed", 3))]);
        assert_eq!(t, ["call.initiated", "call.completed", "call.missed"]);
        assert_eq!(st.outcome.as_deref(), Some("missed"));
    }

    #[test]
    fn forwarded_no_answer_with_voicemail_becomes_voicemail_when_recorded() {
        let rec = Signal::DialComplete {
            status: None,
            bridged: None,
            duration_s: None,
            dial_call_sid: None,
            recording_url: Some("https://api.twilio.com/rec/RE1".into()),
        };
        let (st, t) = run(vec![
            ("i", inbound(true, true)),
            ("d", dial("no-answer", false)),
            ("r", rec),
            ("s", status("completed", 3)),
        ]);
        assert_eq!(t, ["call.initiated", "call.completed"]);
        assert_eq!(st.outcome.as_deref(), Some("voicemail"));
    }

    #[test]
    fn voicemail_offered_but_nothing_recorded_is_missed_at_the_end() {
        let (st, t) = run(vec![("i", inbound(true, true)), ("d", dial("busy", false)), ("s", status("completed", 3))]);
        assert_eq!(t, ["call.initiated", "call.completed", "call.missed"]);
        assert_eq!(st.outcome.as_deref(), Some("missed"));
    }

    #[test]
    fn only_hookhosts_twiml_answering_is_a_missed_call() {
        for (voicemail, reason) in [(true, "no-recording"), (false, "no-forward-or-voicemail")] {
            let mut st = CallState::default();
            let p = Party::default();
            step(&mut st, "CA1", "i", p.clone(), inbound(false, voicemail));
            step(&mut st, "CA1", "s1", p.clone(), status("in-progress", 1));
            let out = step(&mut st, "CA1", "s2", p, status("completed", 2));
            let types: Vec<&str> = out.iter().map(|e| e.event_type.as_str()).collect();
            assert_eq!(types, ["call.completed", "call.missed"], "voicemail {voicemail}");
            assert_eq!(out[0].payload["reason"], reason);
        }
    }

    #[test]
    fn a_missing_dial_result_settles_once_and_only_after_the_call_ended() {
        let (mut st, _) = run(vec![("i", inbound(true, false)), ("s1", status("in-progress", 1))]);
        let key = Sweep::Settle.key("CA1");
        let settle = |st: &mut CallState| step(st, "CA1", &key, Party::default(), Signal::Sweep(Sweep::Settle));
        assert!(!st.awaiting_result());
        assert!(settle(&mut st).is_empty(), "still in progress: nothing to settle");
        st.seen.retain(|k| *k != key);
        step(&mut st, "CA1", "s2", Party::default(), status("completed", 2));
        assert!(st.awaiting_result(), "forwarded, ended, no dial result");
        let out = settle(&mut st);
        let types: Vec<&str> = out.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["call.completed", "call.missed"]);
        assert_eq!(out[0].payload["reason"], "dial-result-missing");
        assert!(settle(&mut st).is_empty(), "once");
        let late = step(&mut st, "CA1", "d", Party::default(), dial("completed", true));
        assert!(late.is_empty(), "a late dial result never reopens it");
    }

    #[test]
    fn a_call_without_signals_is_abandoned_as_failed() {
        let (mut st, _) = run(vec![("i", inbound(true, false))]);
        let key = Sweep::Abandon.key("CA1");
        let out = step(&mut st, "CA1", &key, Party::default(), Signal::Sweep(Sweep::Abandon));
        assert_eq!(out[0].payload["outcome"], "failed");
        assert_eq!(out[0].payload["reason"], "abandoned");
        assert_eq!(out[1].event_type, "call.failed");
    }

    #[test]
    fn out_of_order_late_and_repeated_callbacks_never_flip_or_repeat() {
        let (st, t) = run(vec![
            ("s2", status("completed", 2)),
            ("s1", status("in-progress", 1)), // late
            ("s2", status("completed", 2)),   // provider retry
            ("s3", status("failed", 3)),      // nonsense after close
            ("s0", status("ringing", 0)),
        ]);
        assert_eq!(t, ["call.completed"]);
        assert_eq!(st.outcome.as_deref(), Some("answered"));
    }

    #[test]
    fn busy_and_failed() {
        assert_eq!(run(vec![("s", status("busy", 0))]).1, ["call.completed", "call.missed"]);
        assert_eq!(run(vec![("s", status("failed", 0))]).1, ["call.completed", "call.failed"]);
    }
}
