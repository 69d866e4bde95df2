//! Generic telephony vendors: each authenticates as its tenant chose (Standard Webhooks, a
//! static header, basic auth — tried with wrong and missing credentials, and the credential
//! never kept in the evidence), and their call events go through the same per-call machine as
//! Twilio's: `call.completed` once, `call.missed` beside a missed call, normalized fields.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Setup;

pub(crate) const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const API_KEY: &str = "vendor-static-key-0123456789";

pub(crate) async fn set_auth(s: &Setup, vendor: &str, body: Value) -> u16 {
    s.call(Method::PUT, &format!("/providers/vendor/{vendor}"), Some(body)).await.0
}

/// Post a Standard Webhooks–signed body to `telephony/{vendor}`.
pub(crate) async fn signed(s: &Setup, vendor: &str, id: &str, body: &Value) -> reqwest::Response {
    let (body, ts) = (body.to_string(), hookhost_tests::now_s());
    s.server
        .http
        .post(s.server.url(&format!("/hooks/{}/telephony/{vendor}", s.tenant)))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", hookhost_tests::standard_sign(SECRET, id, ts, &body))
        .body(body)
        .send()
        .await
        .unwrap()
}

fn plain(s: &Setup, vendor: &str, body: &Value) -> reqwest::RequestBuilder {
    s.server
        .http
        .post(s.server.url(&format!("/hooks/{}/telephony/{vendor}", s.tenant)))
        .header("content-type", "application/json")
        .body(body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendors_authenticate_with_a_static_header_or_basic_auth_in_constant_time() {
    let s = Setup::new(&["*"]).await;
    for bad in [
        json!({ "auth": "header", "header": "X-Api-Key", "value": "short" }),
        json!({ "auth": "header", "header": "bad header", "value": API_KEY }),
        json!({ "auth": "basic", "username": "acme", "password": "short" }),
        json!({ "auth": "mtls" }),
        json!({ "secret": "not-whsec" }),
    ] {
        assert_eq!(set_auth(&s, "keyed", bad.clone()).await, 422, "{bad}");
    }
    assert_eq!(set_auth(&s, "keyed", json!({ "auth": "header", "header": "X-Api-Key", "value": API_KEY })).await, 204);
    let password = "basic-password-0123456789";
    assert_eq!(set_auth(&s, "based", json!({ "auth": "basic", "username": "acme", "password": password })).await, 204);

    let body =
        json!({ "topic": "SMS_RECEIVED", "data": { "id": "m1", "from_number": "+14158675309", "content": "hi" } });
    let r = plain(&s, "keyed", &body).header("x-api-key", API_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let again = plain(&s, "keyed", &body).header("x-api-key", API_KEY).send().await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true, "the same body again is a retry");
    for wrong in [&API_KEY[1..], &format!("{API_KEY}x"), ""] {
        let r = plain(&s, "keyed", &body).header("x-api-key", wrong).send().await.unwrap();
        assert_eq!(r.status(), 401, "{wrong:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_credentials");
    }
    assert_eq!(plain(&s, "keyed", &body).send().await.unwrap().status(), 401, "no header");
    assert_eq!(signed(&s, "keyed", "msg_x", &body).await.status(), 401, "a signature is not the key");

    let basic = |user: &str, pass: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    };
    let body2 = json!({ "topic": "SMS_SENT", "data": { "id": "m2", "to_number": "+14158675309" } });
    let ok = plain(&s, "based", &body2).header("authorization", basic("acme", password)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    for (user, pass) in [("acme", "basic-password-012345678"), ("evil", password), ("", "")] {
        let r = plain(&s, "based", &body2).header("authorization", basic(user, pass)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{user}:{pass}");
    }
    let types: Vec<String> = s.events().await.iter().map(|e| e["event_type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["sms.received", "sms.sent"]);

    // The evidence keeps every request, never the credential.
    hookhost_tests::sqlx_any();
    let db = sqlx::AnyPool::connect(&s.server.database_url).await.unwrap();
    let headers: Vec<(String,)> =
        sqlx::query_as("SELECT headers FROM receipts WHERE provider = 'vendor'").fetch_all(&db).await.unwrap();
    assert!(headers.len() >= 10, "{}", headers.len());
    for (h,) in headers {
        assert!(!h.contains(API_KEY) && !h.contains(&API_KEY[1..]) && !h.contains("YWNtZT"), "a credential kept: {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_calls_close_once_with_normalized_fields() {
    let s = Setup::new(&["*"]).await;
    assert_eq!(set_auth(&s, "salpre", json!({ "secret": SECRET })).await, 204);
    assert_eq!(s.call(Method::PUT, "/settings", Some(json!({ "default_country": "IN" }))).await.0, 200);
    let call = |event: &str, id: i64| {
        json!({ "event_type": event, "timestamp_utc": 1760084505, "is_test": false,
                "payload": { "call_id": id, "from": "09876543210", "to": "+905555555554", "direction": "inbound",
                             "source": "salprebox:S", "transcript": [{ "type": "ai", "message": "Hello" }] } })
    };
    // Call 1 is answered; its end is sent twice under two message ids (a vendor's own duplicate).
    for (i, event) in ["call_initiated", "call_ringing", "call_answered", "call_ended", "call_ended"].iter().enumerate()
    {
        assert_eq!(signed(&s, "salpre", &format!("msg_a{i}"), &call(event, 1)).await.status(), 200, "{event}");
    }
    // Call 2 rings out; call 3 fails.
    for (i, event) in ["call_initiated", "call_ended"].iter().enumerate() {
        assert_eq!(signed(&s, "salpre", &format!("msg_b{i}"), &call(event, 2)).await.status(), 200);
    }
    let error = json!({ "event_type": "error", "payload": { "call": { "id": 3, "from": "+905555555555", "direction": "outbound" },
                                                          "error_message": "Error message" } });
    assert_eq!(signed(&s, "salpre", "msg_c0", &error).await.status(), 200);
    // A test send never opens a real call.
    let test = json!({ "event_type": "call_ended", "is_test": true, "payload": { "call_id": 4 } });
    assert_eq!(signed(&s, "salpre", "msg_d0", &test).await.status(), 200);

    let events = s.events().await;
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["event_type"].as_str().unwrap().into(), e["payload"]["call_id"].as_str().unwrap_or("?").into()))
        .collect();
    let want = [
        ("call.initiated", "1"),
        ("call.ringing", "1"),
        ("call.answered", "1"),
        ("call.completed", "1"),
        ("call.initiated", "2"),
        ("call.completed", "2"),
        ("call.missed", "2"),
        ("call.completed", "3"),
        ("call.failed", "3"),
        ("call.ended", "4"),
    ];
    assert_eq!(got, want.map(|(t, c)| (t.to_string(), c.to_string())));
    let completed = &events[3]["payload"];
    assert_eq!(completed["outcome"], "answered");
    assert_eq!(completed["from"], "+919876543210", "read in the tenant's country");
    assert_eq!(completed["from_raw"], "09876543210");
    assert_eq!(completed["direction"], "inbound");
    assert_eq!(completed["transcript"][0]["message"], "Hello", "the vendor's details reach call.completed");
    assert_eq!(events[7]["payload"]["outcome"], "failed");
    assert_eq!(events[7]["payload"]["reason"], "Error message");
    assert_eq!(events[7]["payload"]["direction"], "outbound");
    assert!(events[9]["is_test"].as_bool().unwrap());
    let (_, stored) = s.call(Method::GET, "/calls?outcome=missed", None).await;
    assert_eq!(stored["data"][0]["call_sid"], "vendor:salpre:2");
}
