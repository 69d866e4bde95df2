//! The receivers' contracts of `../shared/seeds/`, reproduced by the example plugins and
//! checked as a receiver would: each seed's fixture (`tests/fixtures/seeds/`) is the exact body
//! and headers the seed specifies — every field present, no other, each with its value or type
//! (`<string>`, `<integer>`, `<e164>`) — and the deliveries made through the real server must
//! match it field by field.

use serde_json::{Value, json};

use crate::{Setup, TWILIO_TOKEN};
use hookhost_tests::{Receiver, plugins};

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/seeds/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("seed fixture")).expect("fixture is JSON")
}

/// Every difference between `want` (a fixture) and `got`, by JSON path.
fn differences(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    let e164 = |s: &str| {
        s.strip_prefix('+').is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
    };
    match (want, got) {
        (Value::String(t), g) if t.starts_with('<') && t.ends_with('>') => {
            let ok = match t.as_str() {
                "<string>" => g.is_string(),
                "<integer>" => g.is_i64() || g.is_u64(),
                "<e164>" => g.as_str().is_some_and(e164),
                other => panic!("unknown fixture type {other}"),
            };
            if !ok {
                out.push(format!("{path}: want {t}, got {g}"));
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            for k in w.keys().filter(|k| !g.contains_key(*k)) {
                out.push(format!("{path}.{k}: missing"));
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("{path}.{k}: not in the contract"));
            }
            for (k, v) in w {
                if let Some(gv) = g.get(k) {
                    differences(v, gv, &format!("{path}.{k}"), out);
                }
            }
        }
        (w, g) if w != g => out.push(format!("{path}: want {w}, got {g}")),
        _ => {}
    }
}

/// Assert a received request is the fixture's body `n`, with its headers, signed with `secret`.
fn conforms(seed: &Value, n: usize, got: &hookhost_tests::Received, secret: &str) {
    let body = got.json();
    let mut diffs = Vec::new();
    differences(&seed["bodies"][n], &body, "body", &mut diffs);
    for (name, rule) in seed["headers"].as_object().unwrap() {
        let value = got.header(name);
        let ok = match rule.as_str().unwrap() {
            "<cf-signature>" => hookhost_tests::verify_hookhost_signature_in(name, secret, &got.headers, &got.body),
            "<body-id>" => body["id"].as_str() == Some(value.as_str()),
            exact => value == exact,
        };
        if !ok {
            diffs.push(format!("header {name}: {value:?} breaks {rule}"));
        }
    }
    for name in seed["absent_headers"].as_array().unwrap() {
        if !got.header(name.as_str().unwrap()).is_empty() {
            diffs.push(format!("header {name} must not be sent"));
        }
    }
    assert!(diffs.is_empty(), "{} body {n} breaks its contract:\n{}", seed["seed"], diffs.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callfunnel_receives_its_catalogue_signed_under_its_own_header_names() {
    let seed = fixture("callfunnel");
    let s = Setup::new(&["nothing.*"]).await;
    let mut cf = Receiver::start().await;
    let mut endpoint = seed["endpoint"].clone();
    endpoint["url"] = json!(cf.url);
    let (status, ep) = s.call(reqwest::Method::POST, "/endpoints", Some(endpoint)).await;
    assert_eq!(status, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_string();
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, plugins::CALLFUNNEL).await.status(), 201);

    s.call_status("CAcf1", "no-answer").await;
    let got = cf.next().await;
    conforms(&seed, 0, &got, &secret);
    let answered = [
        ("CallSid", "CAcf2"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Direction", "inbound"),
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
        ("SequenceNumber", "1"),
    ];
    assert_eq!(s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &answered).await.status(), 200);
    conforms(&seed, 1, &cf.next().await, &secret);
    let delivered =
        [("MessageSid", "SMcf1"), ("MessageStatus", "delivered"), ("From", "+18005551212"), ("To", "+14158675309")];
    let path = format!("/hooks/{}/twilio/sms/status", s.tenant);
    let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", s.server.public_url), &delivered);
    assert_eq!(s.server.post_twilio(&path, &sig, &delivered).await.status(), 200);
    conforms(&seed, 2, &cf.next().await, &secret);
    s.server.settled("delivery").await;
    assert!(
        cf.next_within(std::time::Duration::ZERO).await.is_none(),
        "nothing outside the catalogue (call.missed dropped)"
    );
}
