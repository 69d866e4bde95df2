//! Provider bodies: Stripe events, vendor envelopes, Exotel JSON/form, SMS keywords, dates.
#![no_main]
use hookhost::normalize::{exotel, parse_rfc3339, sms, stripe, twilio, vendor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = stripe::event(data);
    let _ = vendor::event("fuzz", data, "msg_fuzz", 0);
    if let Ok(params) = exotel::json_params(data) {
        let _ = exotel::signal(exotel::Kind::Status, &params);
        let _ = exotel::signal(exotel::Kind::Passthru, &params);
    }
    let form = hookhost::ingest::twilio::form_params(data);
    let _ = sms::received_payload(&form);
    let text = String::from_utf8_lossy(data);
    let _ = sms::classify(&text, None);
    let _ = twilio::parse_rfc2822(&text);
    let _ = parse_rfc3339(&text);
});
