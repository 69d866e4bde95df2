//! The call state machine under arbitrary signal sequences: call.completed at most once, and
//! a closed call never changes its outcome.
#![no_main]
use hookhost::normalize::calls::{CallState, Party, Signal, Sweep, step};
use libfuzzer_sys::fuzz_target;

const STATUSES: [&str; 9] = ["queued", "ringing", "in-progress", "completed", "no-answer", "busy", "canceled", "failed", "x"];

fuzz_target!(|data: &[u8]| {
    let mut st = CallState::default();
    let mut completed = 0;
    let mut outcome: Option<String> = None;
    for (i, chunk) in data.chunks(3).enumerate() {
        let (a, b, c) = (chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0));
        let status = STATUSES[(b as usize) % STATUSES.len()].to_string();
        let signal = match a % 6 {
            0 => Signal::Inbound { forward_to: (c & 1 == 1).then(|| "+14155550100".into()), voicemail: c & 2 == 2 },
            1 => Signal::Status { status, sequence: Some((c % 8) as i64), duration_s: None, recording_url: None },
            2 => Signal::DialComplete {
                status: Some(status),
                bridged: Some(c & 1 == 1),
                duration_s: None,
                dial_call_sid: None,
                recording_url: (c & 4 == 4).then(|| "https://r".into()),
            },
            3 => Signal::Sweep(Sweep::Settle),
            4 => Signal::Sweep(Sweep::Abandon),
            _ => Signal::Resolved { outcome: "missed".into(), reason: "x".into(), duration_s: None, recording_url: None },
        };
        let key = format!("k{}", (i as u8).wrapping_mul(c) % 16);
        for e in step(&mut st, "CA1", &key, Party::default(), signal) {
            if e.event_type == "call.completed" {
                completed += 1;
            }
        }
        if let Some(o) = &outcome {
            assert_eq!(st.outcome.as_ref(), Some(o), "a closed call changed its outcome");
        }
        outcome = st.outcome.clone();
    }
    assert!(completed <= 1);
});
