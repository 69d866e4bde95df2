//! Provider ingress: signatures, replay windows, dedupe, evidence, error statuses.

use hookhost_tests::{TestServer, now_s};
use serde_json::{Value, json};
use std::time::Duration;

use crate::{STRIPE_SECRET, Setup, TWILIO_TOKEN};

fn stripe_event(id: &str) -> String {
    json!({
        "id": id, "object": "event", "type": "customer.subscription.updated", "created": now_s(),
        "livemode": false, "api_version": "2025-03-31.basil",
        "data": { "object": { "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active" },
                  "previous_attributes": { "status": "trialing" } }
    })
    .to_string()
}

async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.expect("errors are JSON");
    v["error"]["code"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_twilio_signature_and_stale_stripe_timestamp_are_401_and_nothing_is_delivered() {
    let mut s = Setup::new(&["*"]).await;
    let path = format!("/hooks/{}/twilio/voice/status", s.tenant);
    let params = [("CallSid", "CA1"), ("CallStatus", "ringing")];
    let good = hookhost_tests::twilio_signature(TWILIO_TOKEN, &s.server.url(&path), &params);
    let mut tampered = good.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let r = s.server.post_twilio(&path, std::str::from_utf8(&tampered).unwrap(), &params).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "invalid_signature");
    // Signed over different params than sent.
    let r = s.server.post_twilio(&path, &good, &[("CallSid", "CA1"), ("CallStatus", "completed")]).await;
    assert_eq!(r.status(), 401);
    let r = s.server.post_twilio(&path, "", &params).await;
    assert_eq!(r.status(), 401);

    let r = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s() - 301, &stripe_event("evt_stale")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "stale_timestamp");
    let r = s.server.stripe(&s.tenant, "whsec_wrong", now_s(), &stripe_event("evt_wrong")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "invalid_signature");

    assert!(s.events().await.is_empty(), "no event from a rejected request");
    // Every rejected request is kept as evidence, with its reason.
    let receipts = s.server.get_json(&format!("/v1/tenants/{}/receipts", s.tenant), &s.key).await;
    let receipts = receipts["data"].as_array().unwrap();
    assert_eq!(receipts.len(), 5);
    assert!(receipts.iter().all(|r| r["verdict"] == "rejected" && r["event_id"].is_null()));
    assert!(receipts[0]["reason"].as_str().unwrap().contains("signature does not match"));
    assert!(receipts[1]["reason"].as_str().unwrap().contains("outside the tolerance"));
    assert!(receipts[4]["body_bytes"].as_i64().unwrap() > 0);
    // A valid request afterwards is the first and only thing delivered.
    s.call_status("CA2", "ringing").await;
    let got = s.receiver.next().await;
    assert_eq!(got.json()["payload"]["call_sid"], "CA2");
    assert!(s.receiver.next_within(Duration::from_millis(300)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stripe_event_twice_is_one_event_and_one_delivery() {
    let mut s = Setup::new(&["billing.*"]).await;
    let body = stripe_event("evt_1NG8Du2eZvKYlo2CUI79vXWy");
    let first: Value = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), &body).await.json().await.unwrap();
    let second = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), &body).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["event_id"], second["event_id"]);

    let got = s.receiver.next().await;
    let env = got.json();
    assert_eq!(env["event_type"], "billing.subscription.updated");
    assert_eq!(env["payload"]["stripe_event_id"], "evt_1NG8Du2eZvKYlo2CUI79vXWy");
    assert_eq!(env["payload"]["object"]["id"], "sub_1");
    assert_eq!(s.events().await.len(), 1);
    let receipts = s.server.get_json(&format!("/v1/tenants/{}/receipts", s.tenant), &s.key).await;
    let verdicts: Vec<&str> =
        receipts["data"].as_array().unwrap().iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["duplicate", "accepted"]);
    let id = first["event_id"].as_str().unwrap();
    assert_eq!(s.attempts_n(id, 1).await.len(), 1);
    assert!(s.receiver.next_within(Duration::from_millis(300)).await.is_none(), "a duplicate is never re-processed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_unconfigured_provider_oversized_and_malformed_bodies() {
    let s = Setup::new(&["*"]).await;
    let r = s.server.stripe("ten_doesnotexist", STRIPE_SECRET, now_s(), &stripe_event("evt_x")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "unknown_tenant");

    let (other, other_key) = s.server.create_tenant("no providers").await;
    let r = s.server.stripe(&other, STRIPE_SECRET, now_s(), &stripe_event("evt_y")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "provider_not_configured");
    let _ = other_key;

    let huge = "x".repeat(300 * 1024);
    let r = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), &huge).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "payload_too_large");

    // Correctly signed but not a Stripe event: 400, kept as rejected evidence.
    let r = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), "{\"hello\":1}").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "malformed");
    let r = s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &[("CallStatus", "ringing")]).await;
    assert_eq!(r.status(), 400);
    assert!(s.events().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_statuses_map_to_lifecycle_and_outcome_events_and_retries_dedupe() {
    let s = Setup::new(&["call.*"]).await;
    for (sid, status) in
        [("CA1", "ringing"), ("CA1", "in-progress"), ("CA1", "completed"), ("CA2", "busy"), ("CA3", "failed")]
    {
        s.call_status(sid, status).await;
    }
    s.call_status("CA2", "busy").await; // a provider retry
    let events = s.events().await;
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "call.ringing",
            "call.answered",
            "call.completed",
            "call.completed",
            "call.missed",
            "call.completed",
            "call.failed"
        ]
    );
    assert_eq!(events[2]["payload"]["outcome"], "answered");
    assert_eq!(events[3]["payload"]["outcome"], "missed");
    assert_eq!(events[4]["payload"]["reason"], "busy");
    assert_eq!(events[4]["payload"]["call_sid"], "CA2");
    assert_eq!(events[4]["payload"]["from"], "+14158675309");
    assert_eq!(events[6]["payload"]["outcome"], "failed");
    assert!(events.iter().all(|e| e["tenant_id"] == s.tenant.as_str() && e["is_test"] == false));

    // Polling with the cursor walks the same events in pages.
    let path = format!("/v1/tenants/{}/events?limit=2", s.tenant);
    let page1 = s.server.get_json(&path, &s.key).await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = s.server.get_json(&format!("{path}&after={cursor}"), &s.key).await;
    assert_eq!(page2["data"][0]["id"], events[2]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_signature_covers_the_configured_public_url_not_the_listener() {
    // A server reached by Twilio at https://hooks.example.com (behind a proxy).
    let mut config = hookhost_tests::test_config(&hookhost_tests::fresh_database("h").await);
    config.public_url = "https://hooks.example.com".into();
    let s = Setup::on(TestServer::start_keeping_public_url(config).await, &["*"]).await;
    s.call_status("CA9", "ringing").await; // signed over https://hooks.example.com/hooks/…
    let path = format!("/hooks/{}/twilio/voice/status", s.tenant);
    let params = [("CallSid", "CA10"), ("CallStatus", "ringing")];
    let over_listener = hookhost_tests::twilio_signature(TWILIO_TOKEN, &s.server.url(&path), &params);
    assert_eq!(s.server.post_twilio(&path, &over_listener, &params).await.status(), 401);
    assert_eq!(s.events().await.len(), 1);
}

/// Stripe fixtures (recorded shapes, both API versions) from `tests/fixtures/stripe/`.
fn stripe_fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/stripe/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_events_keep_a_monotonic_billing_record_in_both_api_shapes() {
    let s = Setup::new(&["billing.*"]).await;
    // Newest first, then the older ones late, each twice: the record must end at the newest.
    let order = [
        "subscription_past_due_basil",
        "invoice_payment_failed_basil",
        "checkout_session_completed",
        "subscription_created_pre2025",
        "subscription_updated_basil",
        "invoice_paid_basil",
        "subscription_past_due_basil",
        "subscription_created_pre2025",
    ];
    for name in order {
        let r = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), &stripe_fixture(name)).await;
        assert_eq!(r.status(), 200, "{name}");
    }
    s.server.settled("delivery").await;
    let b = s.server.get_json(&format!("/v1/tenants/{}/billing", s.tenant), &s.key).await;
    assert_eq!(b["status"], "past_due");
    assert_eq!(b["subscription_id"], "sub_1QxA1");
    assert_eq!(b["customer_id"], "cus_QxA1");
    assert_eq!(b["plan"], "pro_monthly");
    assert_eq!(b["current_period_end"], 1766480001, "basil: the period end comes from the items");
    assert_eq!(b["last_invoice"]["id"], "in_1QfailD");
    assert_eq!(b["last_invoice"]["event"], "invoice.payment_failed");
    assert_eq!(b["last_invoice"]["subscription_id"], "sub_1QxA1");
    assert_eq!(b["checkout"]["client_reference_id"], "acct_42");
    let types: Vec<String> = s.events().await.iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types.len(), 6, "repeats are not new events: {types:?}");
    assert!(types.contains(&"billing.checkout.completed".to_string()));
    assert!(types.contains(&"billing.invoice.payment_failed".to_string()));
    assert!(types.contains(&"billing.subscription.created".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_receipts_replay_through_the_current_plugin_and_endpoints() {
    let mut s = Setup::new(&["*"]).await;
    let r = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), &stripe_event("evt_replayme")).await;
    assert_eq!(r.status(), 200);
    let first = s.receiver.next().await.json();
    s.call_status("CA77", "busy").await; // two events: call.completed + call.missed
    s.receiver.next().await;
    s.receiver.next().await;
    let bad = s.server.stripe(&s.tenant, "whsec_wrong", now_s(), &stripe_event("evt_bad")).await;
    assert_eq!(bad.status(), 401);

    let receipts = s.server.get_json(&format!("/v1/tenants/{}/receipts", s.tenant), &s.key).await;
    let receipts = receipts["data"].as_array().unwrap().clone();
    let id_of = |verdict: &str, provider: &str| {
        receipts.iter().find(|r| r["verdict"] == verdict && r["provider"] == provider).unwrap()["id"].as_i64().unwrap()
    };
    let replay = |rid: i64| {
        s.server
            .authed(reqwest::Method::POST, &format!("/v1/tenants/{}/receipts/{rid}/replay", s.tenant), &s.key)
            .send()
    };
    let r = replay(id_of("accepted", "stripe")).await.unwrap();
    assert_eq!(r.status(), 202);
    let again = s.receiver.next().await.json();
    assert_eq!(again["event_type"], first["event_type"]);
    assert_eq!(again["payload"], first["payload"]);
    assert_ne!(again["id"], first["id"], "a replay is a new event");

    let r = replay(id_of("accepted", "twilio")).await.unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["event_ids"].as_array().unwrap().len(), 2);
    let mut types = vec![
        s.receiver.next().await.json()["event_type"].clone(),
        s.receiver.next().await.json()["event_type"].clone(),
    ];
    types.sort_by_key(|t| t.to_string());
    assert_eq!(types, [json!("call.completed"), json!("call.missed")]);

    assert_eq!(replay(id_of("rejected", "stripe")).await.unwrap().status(), 409);
    assert_eq!(replay(999_999).await.unwrap().status(), 404);
    let metrics = s.server.http.get(s.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hookhost_replays_total 3"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_vendors_sign_with_standard_webhooks_and_any_shape_is_kept() {
    let s = Setup::new(&["*"]).await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let r = s
        .server
        .authed(reqwest::Method::PUT, &format!("/v1/tenants/{}/providers/vendor/acme-voice", s.tenant), &s.key)
        .json(&json!({ "secret": secret }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let post = |path: &'static str, id: &'static str, ts: i64, body: String, key: &'static str| {
        let sig = hookhost_tests::standard_sign(key, id, ts, &body);
        s.server
            .http
            .post(s.server.url(&format!("/hooks/{}/telephony/{path}", s.tenant)))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
    };
    let transcript = json!({ "event_type": "transcript", "timestamp_utc": 1760000000, "is_test": false,
                             "payload": { "call_id": "v-call-1", "text": "I need a plumber" } })
    .to_string();
    let r = post("acme-voice", "msg_1", now_s(), transcript.clone(), secret).await.unwrap();
    assert_eq!(r.status(), 200);
    let again = post("acme-voice", "msg_1", now_s(), transcript.clone(), secret).await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(
        post("acme-voice", "msg_2", now_s(), transcript.clone(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .await
            .unwrap()
            .status(),
        401
    );
    let stale = post("acme-voice", "msg_3", now_s() - 301, transcript.clone(), secret).await.unwrap();
    assert_eq!(stale.status(), 401);
    assert_eq!(error_code(stale).await, "stale_timestamp");
    let topic = json!({ "topic": "CONTACT_UPDATED", "data": { "id": "k1", "phone": "+14155550100" } }).to_string();
    assert_eq!(post("acme-voice", "msg_4", now_s(), topic, secret).await.unwrap().status(), 200);
    let odd = json!({ "type": "queue.overflow", "data": { "queue": "sales" } }).to_string();
    assert_eq!(post("acme-voice", "msg_5", now_s(), odd.clone(), secret).await.unwrap().status(), 200);
    assert_eq!(post("acme-voice/sample", "msg_6", now_s(), odd, secret).await.unwrap().status(), 200);
    assert_eq!(post("acme-voice", "msg_7", now_s(), "{not json".into(), secret).await.unwrap().status(), 400);
    assert_eq!(post("other-vendor", "msg_8", now_s(), "{}".into(), secret).await.unwrap().status(), 404);

    let events = s.events().await;
    let got: Vec<(&str, bool)> =
        events.iter().map(|e| (e["event_type"].as_str().unwrap(), e["is_test"].as_bool().unwrap())).collect();
    assert_eq!(
        got,
        [
            ("call.transcript", false),
            ("contact.updated", false),
            ("vendor.acme-voice.queue.overflow", false),
            ("vendor.acme-voice.queue.overflow", true)
        ]
    );
    assert_eq!(events[0]["payload"]["text"], "I need a plumber");
    assert_eq!(events[0]["payload"]["vendor"], "acme-voice");
    assert_eq!(events[0]["timestamp_utc"], 1760000000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_filter_by_provider_and_verdict_and_page_backwards() {
    let s = Setup::new(&["*"]).await;
    for i in 0..3 {
        s.call_status(&format!("CA{i}"), "ringing").await;
    }
    s.call_status("CA0", "ringing").await; // duplicate
    assert_eq!(s.server.stripe(&s.tenant, "whsec_wrong", now_s(), &stripe_event("evt_r")).await.status(), 401);
    let (server, tenant, key) = (&s.server, s.tenant.clone(), s.key.clone());
    let list = |q: &str| {
        let path = format!("/v1/tenants/{tenant}/receipts?{q}");
        let key = key.clone();
        async move { server.get_json(&path, &key).await }
    };
    assert_eq!(list("provider=twilio").await["data"].as_array().unwrap().len(), 4);
    assert_eq!(list("verdict=duplicate").await["data"].as_array().unwrap().len(), 1);
    let rejected = list("verdict=rejected&provider=stripe").await;
    assert_eq!(rejected["data"][0]["reason"], "signature does not match");
    let page1 = list("limit=2").await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    let before = page1["next_before"].as_i64().unwrap();
    let page2 = list(&format!("limit=10&before={before}")).await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 3);
    assert!(page2["next_before"].is_null());
    let bad = s
        .server
        .authed(reqwest::Method::GET, &format!("/v1/tenants/{}/receipts?verdict=maybe", s.tenant), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
