//! The read API, the polling alternative to pushed events: events by type pattern and time,
//! calls by start and outcome, and one number's timeline — each filter tried with bad input,
//! and a number's timeline never showing another tenant's traffic.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Setup, TWILIO_TOKEN};

const CALLER: &str = "+14158675309";

/// Post signed Twilio form parameters to `/hooks/{tenant}/twilio/{route}`.
async fn twilio(s: &Setup, tenant: &str, route: &str, params: &[(&str, &str)]) {
    let path = format!("/hooks/{tenant}/twilio/{route}");
    let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", s.server.public_url), params);
    assert_eq!(s.server.post_twilio(&path, &sig, params).await.status(), 200, "{route}");
}

async fn call(s: &Setup, tenant: &str, sid: &str, from: &str, statuses: &[&str]) {
    for (i, status) in statuses.iter().enumerate() {
        let seq = i.to_string();
        let params = [
            ("CallSid", sid),
            ("From", from),
            ("To", "+18005551212"),
            ("Direction", "inbound"),
            ("CallStatus", status),
            ("SequenceNumber", seq.as_str()),
        ];
        twilio(s, tenant, "voice/status", &params).await;
    }
}

async fn get(s: &Setup, path_and_query: &str) -> (u16, Value) {
    s.call(Method::GET, path_and_query, None).await
}

fn types(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_calls_and_a_numbers_timeline_can_be_polled_with_filters() {
    let s = Setup::new(&["*"]).await;
    let t = s.tenant.clone();
    call(&s, &t, "CAa", CALLER, &["no-answer"]).await;
    call(&s, &t, "CAb", CALLER, &["in-progress", "completed"]).await;
    call(&s, &t, "CAc", "+14155550111", &["busy"]).await;
    call(&s, &t, "CAd", CALLER, &["ringing"]).await;
    let sms = [("MessageSid", "SMr1"), ("From", CALLER), ("To", "+18005551212"), ("Body", "are you open?")];
    twilio(&s, &t, "sms/inbound", &sms).await;
    let status = [("MessageSid", "SMs1"), ("MessageStatus", "delivered"), ("From", "+18005551212"), ("To", CALLER)];
    twilio(&s, &t, "sms/status", &status).await;
    // The same number calls another tenant: never in this tenant's timeline.
    let other = Setup::on(s.server.clone_client(), &["*"]).await;
    call(&other, &other.tenant, "CAother", CALLER, &["no-answer"]).await;

    // Events by type pattern and time.
    let (code, missed) = get(&s, "/events?type=call.missed").await;
    assert_eq!(code, 200);
    let calls: Vec<&str> =
        missed["data"].as_array().unwrap().iter().map(|e| e["payload"]["call_id"].as_str().unwrap()).collect();
    assert_eq!(calls, ["CAa", "CAc"]);
    let (_, sms_events) = get(&s, "/events?type=sms.*").await;
    assert_eq!(types(&sms_events), ["sms.received", "sms.delivered"]);
    let (_, call_events) = get(&s, "/events?type=call.*").await;
    assert!(
        types(&call_events).iter().all(|t| t.starts_with("call.")) && types(&call_events).len() == 7,
        "{call_events}"
    );
    let (_, all) = get(&s, "/events?type=*&since=2020-01-01T00:00:00Z").await;
    assert_eq!(types(&all).len(), 9);
    let future = hookhost_tests::now_s() + 3600;
    assert!(types(&get(&s, &format!("/events?since={future}")).await.1).is_empty());
    assert!(types(&get(&s, "/events?until=1000").await.1).is_empty());
    for bad in
        ["type=call*", "type=*.missed", "type=call.**", "since=yesterday", "until=2026-13-01T00:00:00Z", "limit=0"]
    {
        let (code, body) = get(&s, &format!("/events?{bad}")).await;
        assert_eq!(code, 400, "{bad}: {body}");
    }

    // Calls newest first, by outcome, paged.
    let sids = |page: &Value| -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|c| c["call_sid"].as_str().unwrap().to_string()).collect()
    };
    let (_, missed_calls) = get(&s, "/calls?outcome=missed").await;
    assert_eq!(sids(&missed_calls), ["CAc", "CAa"]);
    assert_eq!(missed_calls["data"][0]["from"], "+14155550111");
    assert_eq!(sids(&get(&s, "/calls?outcome=answered").await.1), ["CAb"]);
    assert_eq!(sids(&get(&s, "/calls?outcome=open").await.1), ["CAd"]);
    let (_, first) = get(&s, "/calls?limit=3").await;
    assert_eq!(sids(&first), ["CAd", "CAc", "CAb"]);
    let cursor = first["next_before"].as_str().unwrap().to_string();
    let (_, second) = get(&s, &format!("/calls?limit=3&before={cursor}")).await;
    assert_eq!(sids(&second), ["CAa"], "the other tenant's call is not listed");
    assert_eq!(second["next_before"], Value::Null);
    assert!(sids(&get(&s, &format!("/calls?since={future}")).await.1).is_empty());
    for bad in ["outcome=lost", "before=12", "before=x_CA1", "since=soon"] {
        assert_eq!(get(&s, &format!("/calls?{bad}")).await.0, 400, "{bad}");
    }

    // One number's timeline, newest first; this tenant's only.
    let (code, timeline) = get(&s, &format!("/contacts/{CALLER}/timeline")).await;
    assert_eq!(code, 200);
    assert_eq!(timeline["contact"], CALLER);
    let got = types(&timeline);
    assert_eq!(got.first().map(String::as_str), Some("sms.delivered"));
    assert_eq!(got.iter().filter(|t| *t == "call.completed").count(), 2, "CAa and CAb: {got:?}");
    let call_ids: Vec<&str> =
        timeline["data"].as_array().unwrap().iter().filter_map(|e| e["payload"]["call_id"].as_str()).collect();
    assert!(!call_ids.contains(&"CAc") && !call_ids.contains(&"CAother"), "{call_ids:?}");
    let (_, texts) = get(&s, &format!("/contacts/{CALLER}/timeline?type=sms.*")).await;
    assert_eq!(types(&texts), ["sms.delivered", "sms.received"]);
    let (_, page) = get(&s, &format!("/contacts/{CALLER}/timeline?limit=2")).await;
    let before = page["next_before"].as_i64().unwrap();
    let (_, rest) = get(&s, &format!("/contacts/{CALLER}/timeline?before={before}")).await;
    assert_eq!(types(&page).len() + types(&rest).len(), got.len(), "pages cover the timeline once");
    let (_, nobody) = get(&s, "/contacts/+19995550000/timeline").await;
    assert_eq!(nobody["data"], json!([]));
    let (_, theirs) = other.call(Method::GET, &format!("/contacts/{CALLER}/timeline"), None).await;
    assert!(types(&theirs).iter().all(|t| t.starts_with("call.")), "the other tenant sees its own call only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_asks_hears_of_new_contacts_and_their_opt_out_changes_once() {
    let s = Setup::new(&["*"]).await;
    let t = s.tenant.clone();
    let settings = |on: bool| json!({ "contact_events": on });
    // Off by default: a new caller is kept as a contact, but no contact.* event is sent.
    call(&s, &t, "CAq", "+14155550123", &["no-answer"]).await;
    assert!(types(&get(&s, "/events?type=contact.*").await.1).is_empty());
    assert_eq!(get(&s, "/contacts/+14155550123").await.0, 200, "kept either way");
    assert_eq!(s.call(Method::PUT, "/settings", Some(settings(true))).await.0, 200);
    assert_eq!(get(&s, "/settings").await.1["contact_events"], true);

    call(&s, &t, "CAr", CALLER, &["ringing", "completed"]).await; // a new number
    call(&s, &t, "CAs", CALLER, &["busy"]).await; // seen before
    call(&s, &t, "CAt", "+14155550123", &["busy"]).await; // seen while it was off
    let stop =
        |sid: &'static str| [("MessageSid", sid), ("From", "+14155550199"), ("To", "+18005551212"), ("Body", "STOP")];
    twilio(&s, &t, "sms/inbound", &stop("SMq1")).await; // a new number, opting out
    twilio(&s, &t, "sms/inbound", &stop("SMq2")).await; // still opted out: no change
    let (_, contacts) = get(&s, "/events?type=contact.*").await;
    let got: Vec<(String, String)> = contacts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event_type"].as_str().unwrap().into(), e["payload"]["contact"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        got,
        [
            ("contact.created".to_string(), CALLER.to_string()),
            ("contact.created".to_string(), "+14155550199".to_string()),
            ("contact.updated".to_string(), "+14155550199".to_string()),
        ]
    );
    assert_eq!(contacts["data"][0]["payload"]["first_seen_in"], "call");
    assert_eq!(contacts["data"][2]["payload"]["opted_out"], true);
    assert_eq!(contacts["data"][2]["payload"]["keyword"], "STOP");
    let (_, timeline) = get(&s, "/contacts/+14155550199/timeline").await;
    let events = types(&timeline);
    assert!(
        events.contains(&"contact.created".to_string()) && events.contains(&"contact.updated".to_string()),
        "{events:?}"
    );
    assert_eq!(s.call(Method::PUT, "/settings", Some(json!({ "contact_events": "yes" }))).await.0, 422);
}
