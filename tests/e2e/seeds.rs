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
                "<array>" => g.is_array(),
                "<datetime>" => g.as_str().is_some_and(|d| {
                    time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).is_ok()
                }),
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

/// Assert a received request is the fixture's body `n`, with its method, path and headers,
/// signed with `secret`.
fn conforms(seed: &Value, n: usize, got: &hookhost_tests::Received, secret: &str) {
    let body = got.json();
    let mut diffs = Vec::new();
    differences(&seed["bodies"][n], &body, "body", &mut diffs);
    if let Some(method) = seed["method"].as_str().filter(|m| *m != got.method.as_str()) {
        diffs.push(format!("method {} is not {method}", got.method));
    }
    if let Some(path) = seed["path"].as_str().filter(|p| *p != got.uri) {
        diffs.push(format!("path {} is not {path}", got.uri));
    }
    if !hookhost_tests::verify_standard_webhook(secret, &got.headers, &got.body)
        && !hookhost_tests::verify_hookhost_signature_in(
            seed["endpoint"]["signature_header"].as_str().unwrap_or("x-hookhost-signature"),
            secret,
            &got.headers,
            &got.body,
        )
    {
        diffs.push("not signed over the body's exact bytes".into());
    }
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
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, plugins::CALLFUNNEL).await.0, 202);

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

/// Every request the receiver has had (call after the deliveries settled).
async fn everything(receiver: &mut Receiver) -> Vec<hookhost_tests::Received> {
    let mut got = Vec::new();
    while let Some(r) = receiver.next_within(std::time::Duration::ZERO).await {
        got.push(r);
    }
    got
}

/// Each fixture body conforms to the received request with the same `key`.
fn each_conforms<K: PartialEq + std::fmt::Debug>(
    seed: &Value,
    got: &[hookhost_tests::Received],
    key: impl Fn(&Value) -> K,
    secret: &str,
) {
    for (n, want) in seed["bodies"].as_array().unwrap().iter().enumerate() {
        let found = got.iter().find(|r| key(&r.json()) == key(want));
        let found = found.unwrap_or_else(|| panic!("no {:?} among {} deliveries", key(want), got.len()));
        conforms(seed, n, found, secret);
    }
}

/// A finished Twilio call's status callback.
fn completed_call<'a>(
    sid: &'a str,
    from: &'a str,
    to: &'a str,
    direction: &'a str,
    seconds: &'a str,
) -> [(&'a str, &'a str); 6] {
    [
        ("CallSid", sid),
        ("From", from),
        ("To", to),
        ("Direction", direction),
        ("CallStatus", "completed"),
        ("CallDuration", seconds),
    ]
}

/// A seed's tenant: its endpoint (from the fixture) on a fresh receiver, its plugin, its
/// key-value entries and settings. Returns the receiver, the endpoint's secret and its id.
async fn seeded(s: &Setup, seed: &Value) -> (Receiver, String, String) {
    let receiver = Receiver::start().await;
    let mut endpoint = seed["endpoint"].clone();
    endpoint["url"] = json!(receiver.url);
    let (status, ep) = s.call(reqwest::Method::POST, "/endpoints", Some(endpoint)).await;
    assert_eq!(status, 201, "{ep}");
    let path = plugins::ALL.iter().find(|(name, _)| seed["plugin"] == *name).expect("the seed's plugin").1;
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, path).await.0, 202);
    for (key, value) in seed["kv"].as_object().into_iter().flatten() {
        let r = s
            .server
            .authed(reqwest::Method::PUT, &format!("/v1/tenants/{}/kv/{key}", s.tenant), &s.key)
            .body(value.as_str().unwrap().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    if !seed["settings"].is_null() {
        let (status, body) = s.call(reqwest::Method::PUT, "/settings", Some(seed["settings"].clone())).await;
        assert_eq!(status, 200, "{body}");
    }
    (receiver, ep["secret"].as_str().unwrap().to_string(), ep["id"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callaro_receives_its_flat_call_completed_body() {
    let seed = fixture("callaro");
    let s = Setup::new(&["nothing.*"]).await;
    let (mut callaro, secret, _) = seeded(&s, &seed).await;
    let inbound = completed_call("CAca1", "+14158675309", "+18005551212", "inbound", "42");
    assert_eq!(s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &inbound).await.status(), 200);
    conforms(&seed, 0, &callaro.next().await, &secret);
    // Outbound to a national Indian number: E.164 from the tenant's country, not +1.
    let outbound = completed_call("CAca2", "+14155550100", "09876543210", "outbound-api", "10");
    assert_eq!(s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &outbound).await.status(), 200);
    conforms(&seed, 1, &callaro.next().await, &secret);
    // The provider retries: hookhost's dedupe keeps it to one delivery per call_id.
    assert_eq!(s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &outbound).await.status(), 200);
    s.server.settled("delivery").await;
    assert!(callaro.next_within(std::time::Duration::ZERO).await.is_none(), "one body per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_webhook_receives_its_envelope_and_six_event_names() {
    use crate::vendors::{SECRET, set_auth, signed};
    let seed = fixture("custom-webhook");
    let s = Setup::new(&["nothing.*"]).await;
    let (mut receiver, secret, endpoint) = seeded(&s, &seed).await;
    assert_eq!(set_auth(&s, "salprebox", json!({ "secret": SECRET })).await, 204);
    let party = json!({ "from": "+905555555555", "to": "+905555555554", "source": "salprebox:SALPRE_AABBCCDD" });
    let with = |extra: Value| {
        let mut p = party.clone();
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        p
    };
    let out = json!({ "direction": "outbound", "call_id": 1 });
    let mut call = party.clone();
    call["id"] = json!(1);
    call["direction"] = json!("outbound");
    // The seed's own examples, as its platform posts them (is_test true), then a second call
    // that fails (is_test false).
    let posts = [
        json!({ "event_type": "call_initiated", "timestamp_utc": 1760084505, "payload": with(out.clone()), "is_test": true }),
        json!({ "event_type": "call_ringing", "timestamp_utc": 1760084555, "payload": with(out.clone()), "is_test": true }),
        json!({ "event_type": "call_answered", "timestamp_utc": 1760084576, "payload": with(out.clone()), "is_test": true }),
        json!({ "event_type": "transcript", "timestamp_utc": 1760084622, "is_test": true,
                "payload": { "call": call, "type": "customer", "transcript": "Hello, how are you?", "timestamp_utc": "111111" } }),
        json!({ "event_type": "call_ended", "timestamp_utc": 1760084597, "is_test": true,
                "payload": with(json!({ "direction": "outbound", "call_id": 1, "transcript": seed["bodies"][4]["payload"]["transcript"] })) }),
        json!({ "event_type": "call_initiated", "timestamp_utc": 1760084600, "payload": with(json!({ "direction": "inbound", "call_id": 2 })), "is_test": false }),
        json!({ "event_type": "error", "timestamp_utc": 1760084656, "is_test": false,
                "payload": { "call": { "id": 2, "from": "+905555555555", "to": "+905555555554", "direction": "inbound" }, "error_message": "Error message" } }),
    ];
    for (i, body) in posts.iter().enumerate() {
        assert_eq!(signed(&s, "salprebox", &format!("msg_{i}"), body).await.status(), 200, "{body}");
    }
    s.server.settled("delivery").await;
    let got = everything(&mut receiver).await;
    let call_of = |b: &Value| b["payload"]["call_id"].as_u64().or_else(|| b["payload"]["call"]["id"].as_u64());
    each_conforms(&seed, &got, |b| (b["event_type"].clone(), call_of(b)), &secret);
    // Call 1: the five of its lifecycle once each; call 2: initiated, ended (failed), error.
    assert_eq!(got.len(), 8, "{:?}", got.iter().map(|r| r.json()["event_type"].clone()).collect::<Vec<_>>());

    // The endpoint's test button sends what the plugin makes of a sample event: the contract,
    // with is_test true.
    let (status, result) = s
        .call(
            reqwest::Method::POST,
            &format!("/endpoints/{endpoint}/test"),
            Some(json!({ "event_type": "call.completed" })),
        )
        .await;
    assert_eq!(
        (status, result["succeeded"].as_bool(), result["status_code"].as_u64()),
        (200, Some(true), Some(200)),
        "{result}"
    );
    let test = receiver.next().await.json();
    assert_eq!((test["event_type"].as_str(), test["is_test"].as_bool()), (Some("call_ended"), Some(true)), "{test}");
    assert!(test["payload"]["call_id"].is_u64() && test.get("id").is_none(), "{test}");
    // A type the plugin drops sends nothing, and says why.
    let (status, result) = s
        .call(
            reqwest::Method::POST,
            &format!("/endpoints/{endpoint}/test"),
            Some(json!({ "event_type": "sms.received" })),
        )
        .await;
    assert_eq!((status, result["succeeded"].as_bool()), (200, Some(false)), "{result}");
    assert!(result["error"].as_str().unwrap().contains("not in the custom webhook's event list"), "{result}");
    assert!(receiver.next_within(std::time::Duration::ZERO).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_receive_calls_messages_and_contacts_under_the_seeds_field_names() {
    let seed = fixture("topics");
    let s = Setup::new(&["nothing.*"]).await;
    let (mut receiver, secret, _) = seeded(&s, &seed).await;
    let call = completed_call("CAtp1", "+14158675309", "+18005551212", "inbound", "150");
    assert_eq!(s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &call).await.status(), 200);
    let post = |path: &str, params: Vec<(&'static str, &'static str)>| {
        let path = format!("/hooks/{}/twilio/sms/{path}", s.tenant);
        let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", s.server.public_url), &params);
        let server = &s.server;
        async move { assert_eq!(server.post_twilio(&path, &sig, &params).await.status(), 200) }
    };
    let inbound =
        |sid, body| vec![("MessageSid", sid), ("From", "+14158675309"), ("To", "+18005551212"), ("Body", body)];
    post("inbound", inbound("SMtp1", "Is the shop open today?")).await;
    post("inbound", inbound("SMtp2", "STOP")).await;
    let sent =
        vec![("MessageSid", "SMtp3"), ("MessageStatus", "sent"), ("From", "+18005551212"), ("To", "+14158675309")];
    post("status", sent).await;
    s.server.settled("delivery").await;
    let got = everything(&mut receiver).await;
    each_conforms(&seed, &got, |b| (b["topic"].clone(), b["data"]["id"].clone()), &secret);
    // And the STOP itself as SMS_RECEIVED: six in all, each once.
    let topics: Vec<Value> = got.iter().map(|r| r.json()["topic"].clone()).collect();
    assert_eq!(got.len(), 6, "{topics:?}");
}
