//! Call stories, table-driven from recorded Twilio requests in `tests/fixtures/calls/`: each
//! step is signed and posted to its route; the TwiML answers, the canonical events (in order)
//! and the call's outcome must be as the fixture says.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{Setup, TWILIO_TOKEN};

fn fixtures() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/calls");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .expect("fixtures directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_call_stories_end_with_the_right_events_and_outcome() {
    let stories = fixtures();
    assert!(stories.len() >= 10, "fixtures missing");
    for (name, story) in stories {
        let s = Setup::new(&["*"]).await;
        if let Some(number) = story.get("number").filter(|n| !n.is_null()) {
            let e164 = number["e164"].as_str().unwrap();
            let r = s
                .server
                .authed(Method::PUT, &format!("/v1/tenants/{}/numbers/{e164}", s.tenant), &s.key)
                .json(number)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{name}: {}", r.text().await.unwrap());
        }
        let call: &Map<String, Value> = story["call"].as_object().unwrap();
        for (i, step) in story["steps"].as_array().unwrap().iter().enumerate() {
            let mut params: Vec<(String, String)> =
                call.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
            for (k, v) in step["params"].as_object().unwrap() {
                params.retain(|(pk, _)| pk != k);
                params.push((k.clone(), v.as_str().unwrap().to_string()));
            }
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let path = format!("/hooks/{}/twilio/voice/{}", s.tenant, step["route"].as_str().unwrap());
            let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", s.server.public_url), &pairs);
            let r = s.server.post_twilio(&path, &sig, &pairs).await;
            assert_eq!(r.status(), 200, "{name} step {i}");
            assert_eq!(r.headers()["content-type"], "text/xml");
            let twiml = r.text().await.unwrap();
            assert!(twiml.starts_with("<?xml") && twiml.contains("<Response"), "{name} step {i}: {twiml}");
            if let Some(want) = step.get("twiml").and_then(Value::as_str) {
                assert!(twiml.contains(want), "{name} step {i}: wanted {want} in {twiml}");
            }
            if want_dial_action(&twiml) {
                assert!(
                    twiml.contains(&format!("{}/hooks/{}/twilio/voice/dial-complete", s.server.public_url, s.tenant)),
                    "{twiml}"
                );
            }
        }
        let events = s.events().await;
        let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
        let want: Vec<&str> = story["events"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(types, want, "{name}: events");
        let call_sid = call["CallSid"].as_str().unwrap();
        for e in &events {
            assert_eq!(e["payload"]["call_id"], call_sid, "{name}: every event names the call");
            assert_eq!(e["payload"]["from"], "+14158675309", "{name}");
        }
        let completed: Vec<&Value> = events.iter().filter(|e| e["event_type"] == "call.completed").collect();
        assert!(completed.len() <= 1, "{name}: call.completed at most once");
        let state = s.server.get_json(&format!("/v1/tenants/{}/calls/{call_sid}", s.tenant), &s.key).await;
        assert_eq!(state["outcome"], story["outcome"], "{name}: outcome");
        if let Some(c) = completed.first() {
            assert_eq!(c["payload"]["outcome"], story["outcome"], "{name}");
        }
        if let Some(d) = story.get("duplicates").and_then(Value::as_i64) {
            let receipts = s.server.get_json(&format!("/v1/tenants/{}/receipts", s.tenant), &s.key).await;
            let duplicates =
                receipts["data"].as_array().unwrap().iter().filter(|r| r["verdict"] == "duplicate").count() as i64;
            assert_eq!(duplicates, d, "{name}: duplicate receipts");
        }
        s.server.stop().await;
    }
}

fn want_dial_action(twiml: &str) -> bool {
    twiml.contains("<Dial") || twiml.contains("<Record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_validated_and_readable() {
    let s = Setup::new(&["*"]).await;
    let put = |e164: &str, body: Value| {
        s.server.authed(Method::PUT, &format!("/v1/tenants/{}/numbers/{e164}", s.tenant), &s.key).json(&body).send()
    };
    let r =
        put("+18005551212", json!({ "forward_to": "+14155550100", "label": "Main", "voicemail": true })).await.unwrap();
    assert_eq!(r.status(), 200);
    let got = s.server.get_json(&format!("/v1/tenants/{}/numbers/+18005551212", s.tenant), &s.key).await;
    assert_eq!(got["forward_to"], "+14155550100");
    assert_eq!(got["voicemail"], true);
    assert_eq!(put("18005551212", json!({})).await.unwrap().status(), 422);
    assert_eq!(put("+18005551212", json!({ "forward_to": "front desk" })).await.unwrap().status(), 422);
    // A status callback without CallSid is malformed: 400, kept as rejected evidence.
    let r = s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &[("CallStatus", "ringing")]).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sms_keywords_drive_the_contacts_opt_out_state() {
    let s = Setup::new(&["sms.*"]).await;
    let send = |sid: &'static str, body: &'static str, opt: Option<&'static str>| {
        let server = &s.server;
        let tenant = s.tenant.clone();
        async move {
            let mut params = vec![
                ("MessageSid", sid),
                ("AccountSid", "AC0123"),
                ("From", "+14158675309"),
                ("To", "+18005551212"),
                ("Body", body),
                ("NumMedia", "0"),
            ];
            if let Some(o) = opt {
                params.push(("OptOutType", o));
            }
            let path = format!("/hooks/{tenant}/twilio/sms/inbound");
            let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", server.public_url), &params);
            let r = server.post_twilio(&path, &sig, &params).await;
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains("<Response/>"));
        }
    };
    let contact_path = format!("/v1/tenants/{}/contacts/+14158675309", s.tenant);
    let contact = || s.server.get_json(&contact_path, &s.key);
    send("SM1", "Is the shop open today?", None).await;
    assert_eq!(contact().await["opted_out"], false);
    send("SM2", "  Stop ", None).await;
    send("SM2", "  Stop ", None).await; // provider retry
    let c = contact().await;
    assert_eq!(c["opted_out"], true);
    assert_eq!(c["last_keyword"], "STOP");
    assert_eq!(c["messages"], 2);
    send("SM3", "unstop", None).await;
    assert_eq!(contact().await["opted_out"], false);
    send("SM4", "arrêtez", Some("STOP")).await; // Advanced Opt-Out's verdict wins
    assert_eq!(contact().await["opted_out"], true);
    send("SM5", "help", None).await;
    assert_eq!(contact().await["opted_out"], true, "help changes nothing");

    let events = s.events().await;
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "sms.received",
            "sms.received",
            "sms.opt_out",
            "sms.received",
            "sms.opt_in",
            "sms.received",
            "sms.opt_out",
            "sms.received",
            "sms.help"
        ]
    );
    assert_eq!(events[2]["payload"]["keyword"], "STOP");
    assert_eq!(events[2]["payload"]["message_sid"], "SM2");
    assert_eq!(events[2]["payload"]["contact"], "+14158675309");
    let missing = s
        .server
        .authed(Method::GET, &format!("/v1/tenants/{}/contacts/+19990000000", s.tenant), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_status_callbacks_make_one_event_per_message_and_status() {
    let s = Setup::new(&["sms.*"]).await;
    let status = |sid: &'static str, status: &'static str, error: Option<&'static str>| {
        let server = &s.server;
        let tenant = s.tenant.clone();
        async move {
            let mut params = vec![
                ("MessageSid", sid),
                ("SmsSid", sid),
                ("AccountSid", "AC0123"),
                ("From", "+18005551212"),
                ("To", "+14158675309"),
                ("MessageStatus", status),
                ("SmsStatus", status),
            ];
            if let Some(code) = error {
                params.push(("ErrorCode", code));
            }
            let path = format!("/hooks/{tenant}/twilio/sms/status");
            let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", server.public_url), &params);
            let r = server.post_twilio(&path, &sig, &params).await;
            assert_eq!(r.status(), 200, "{sid} {status}");
            assert!(r.text().await.unwrap().contains("<Response/>"));
        }
    };
    status("SM10", "queued", None).await;
    status("SM10", "sending", None).await;
    status("SM10", "sent", None).await;
    status("SM10", "sent", None).await; // provider retry
    status("SM10", "delivered", None).await;
    status("SM11", "queued", None).await;
    status("SM11", "undelivered", Some("30003")).await;
    status("SM12", "failed", Some("30008")).await;

    let events = s.events().await;
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["event_type"].as_str().unwrap(), e["payload"]["message_sid"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("sms.sent", "SM10"), ("sms.delivered", "SM10"), ("sms.undelivered", "SM11"), ("sms.failed", "SM12")]
    );
    let undelivered = &events[2]["payload"];
    assert_eq!(undelivered["status"], "undelivered");
    assert_eq!(undelivered["error_code"], "30003");
    assert_eq!(undelivered["contact"], "+14158675309", "the contact is the recipient");
    assert_eq!(undelivered["from"], "+18005551212");

    let verdicts = |v: &'static str| {
        let (server, key, path) = (&s.server, &s.key, format!("/v1/tenants/{}/receipts?verdict={v}", s.tenant));
        async move { server.get_json(&path, key).await["data"].as_array().unwrap().len() }
    };
    assert_eq!(verdicts("ignored").await, 3, "queued, sending, queued: kept, no event");
    assert_eq!(verdicts("duplicate").await, 1);
    assert_eq!(verdicts("accepted").await, 4);
    let r = s
        .server
        .authed(Method::GET, &format!("/v1/tenants/{}/receipts?verdict=maybe", s.tenant), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Unsigned, or without a status: refused and kept as rejected.
    let path = format!("/hooks/{}/twilio/sms/status", s.tenant);
    let params = [("MessageSid", "SM13"), ("MessageStatus", "delivered")];
    assert_eq!(s.server.post_twilio(&path, "bm90IGl0", &params).await.status(), 401);
    let params = [("MessageSid", "SM13")];
    let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", s.server.public_url), &params);
    assert_eq!(s.server.post_twilio(&path, &sig, &params).await.status(), 400);
    assert_eq!(verdicts("rejected").await, 2);
    assert_eq!(s.events().await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exotel_callbacks_are_authenticated_by_token_and_mapped_to_the_call_model() {
    let s = Setup::new(&["*"]).await;
    let r = s
        .server
        .authed(Method::PUT, &format!("/v1/tenants/{}/providers/exotel", s.tenant), &s.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["callback_token"].as_str().unwrap().to_string();
    assert!(token.len() >= 32);
    let passthru =
        |query: String| s.server.http.get(s.server.url(&format!("/hooks/{}/exotel/passthru?{query}", s.tenant))).send();

    let q = "CallSid=ex1&CallFrom=09876543210&CallTo=08041234567&Direction=incoming&CallType=incomplete&digits=%221%22";
    assert_eq!(passthru(q.to_string()).await.unwrap().status(), 401, "no token");
    let r = passthru(format!("{q}&token=wrong{token}")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_token");
    let r = passthru(format!("{q}&token={token}")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(passthru(format!("{q}&token={token}")).await.unwrap().status(), 200, "a retry is acknowledged");

    // National numbers are read in the tenant's default country once it sets one.
    let settings = format!("/v1/tenants/{}/settings", s.tenant);
    let put = |body: Value| s.server.authed(Method::PUT, &settings, &s.key).json(&body).send();
    for bad in [
        json!({ "default_country": "in" }),
        json!({ "default_country": "XX" }),
        json!({ "default_country": "IND" }),
        json!({ "default_country": 91 }),
        json!({ "country": "IN" }),
    ] {
        let r = put(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 422, "{bad}");
    }
    assert_eq!(s.server.get_json(&settings, &s.key).await["default_country"], Value::Null, "refusals change nothing");
    let r = put(json!({ "default_country": "IN" })).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["default_country"], "IN");
    assert_eq!(s.server.get_json(&settings, &s.key).await["default_country"], "IN");

    // The StatusCallback, as JSON, for another call; then repeated and contradicted.
    let status = |body: Value| {
        s.server.http.post(s.server.url(&format!("/hooks/{}/exotel/status?token={token}", s.tenant))).json(&body).send()
    };
    let body = json!({ "CallSid": "ex2", "Status": "busy", "From": "09876543210", "To": "08041234567", "Direction": "inbound",
                       "DateUpdated": "2026-11-24 10:00:00", "ConversationDuration": 0, "Legs": [] });
    assert_eq!(status(body.clone()).await.unwrap().status(), 200);
    assert_eq!(status(body).await.unwrap().status(), 200);
    assert_eq!(status(json!({ "CallSid": "ex2", "Status": "completed" })).await.unwrap().status(), 200);
    assert_eq!(status(json!({ "Status": "completed" })).await.unwrap().status(), 400);

    let events = s.events().await;
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["payload"]["call_id"].as_str().unwrap().into(), e["event_type"].as_str().unwrap().into()))
        .collect();
    let want = [("ex1", "call.completed"), ("ex1", "call.missed"), ("ex2", "call.completed"), ("ex2", "call.missed")];
    assert_eq!(summary, want.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(events[0]["payload"]["reason"], "incomplete");
    assert_eq!(events[0]["payload"]["direction"], "inbound");
    assert_eq!(events[0]["payload"]["from"], "09876543210", "no default country yet: kept as sent");
    assert!(events[0]["payload"].get("from_raw").is_none());
    assert_eq!(events[2]["payload"]["from"], "+919876543210", "read in India, never as +1");
    assert_eq!(events[2]["payload"]["from_raw"], "09876543210");
    assert_eq!(events[2]["payload"]["to"], "+918041234567");
    let call = s.server.get_json(&format!("/v1/tenants/{}/calls/ex2", s.tenant), &s.key).await;
    assert_eq!(call["outcome"], "missed", "a later contradicting status does not flip it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_whose_dial_result_never_comes_closes_once_after_the_settle_time() {
    let clock = hookhost::Clock::system();
    let mut config = hookhost_tests::test_config(&hookhost_tests::fresh_database("settle").await);
    config.sweep_interval = std::time::Duration::from_millis(20);
    let mut s = Setup::on(hookhost_tests::TestServer::start_with_clock(config, clock.clone()).await, &["call.*"]).await;
    let number = json!({ "forward_to": "+14155550100", "voicemail": false });
    let r = s
        .server
        .authed(Method::PUT, &format!("/v1/tenants/{}/numbers/+18005551212", s.tenant), &s.key)
        .json(&number)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let post = |route: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let (server, tenant) = (&s.server, s.tenant.clone());
        async move {
            let mut params = vec![
                ("CallSid", "CAsettle"),
                ("From", "+14158675309"),
                ("To", "+18005551212"),
                ("Direction", "inbound"),
            ];
            params.extend_from_slice(extra);
            let path = format!("/hooks/{tenant}/twilio/voice/{route}");
            let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", server.public_url), &params);
            assert_eq!(server.post_twilio(&path, &sig, &params).await.status(), 200);
        }
    };
    post("inbound", &[("CallStatus", "ringing")]).await;
    // Twilio's request to the <Dial action> failed: only the parent's end arrives.
    post("status", &[("CallStatus", "completed"), ("SequenceNumber", "2"), ("CallDuration", "35")]).await;
    let call_path = format!("/v1/tenants/{}/calls/CAsettle", s.tenant);
    assert_eq!(s.server.get_json(&call_path, &s.key).await["outcome"], Value::Null, "waits for the dial result");

    clock.advance(std::time::Duration::from_secs(61));
    let closed = s
        .server
        .eventually("the sweeper to settle the call", || async {
            let call = s.server.get_json(&call_path, &s.key).await;
            (!call["outcome"].is_null()).then_some(call)
        })
        .await;
    assert_eq!(closed["outcome"], "missed");
    // The late dial result, should it come after all, changes nothing.
    post("dial-complete", &[("DialCallStatus", "completed"), ("DialBridged", "true")]).await;
    let types: Vec<String> = s.events().await.iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["call.initiated", "call.completed", "call.missed"]);
    let got = loop {
        let r = s.receiver.next().await;
        if r.json()["event_type"] == "call.completed" {
            break r.json();
        }
    };
    assert_eq!(got["payload"]["outcome"], "missed");
    assert_eq!(got["payload"]["reason"], "dial-result-missing");
    assert_eq!(got["payload"]["call_id"], "CAsettle");
}
