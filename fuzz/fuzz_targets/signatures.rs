//! Signature headers and signed strings: Twilio, Stripe, Standard Webhooks. Never a panic.
#![no_main]
use hookhost::ingest::{standard, stripe, twilio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_at(text.len() / 2);
    let _ = stripe::parse_header(head);
    let _ = stripe::check(head, body.as_bytes(), "whsec_test_secret", 1_700_000_000, 300);
    let params = twilio::form_params(body.as_bytes());
    let _ = twilio::url_variants(head);
    let _ = twilio::is_valid(head, &params, body, "token");
    let mut parts = head.splitn(3, '\n');
    let (id, ts, sig) = (parts.next(), parts.next(), parts.next());
    let _ = standard::check(id, ts, sig, body.as_bytes(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1_700_000_000, 300);
});
