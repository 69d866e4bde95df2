//! Endpoints and deliveries receivers can rely on: settings, both signing styles, rotation,
//! test sends, dead letter and retry, recover, replay, auto-disable, fairness, rate limits and
//! ordered delivery.

use std::time::Duration;

use hookhost_tests::{
    Receiver, TestServer, plugins, test_config, verify_hookhost_signature, verify_hookhost_signature_in,
    verify_standard_webhook,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Setup;

async fn send(s: &Setup, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.server.authed(method, &format!("/v1/tenants/{}{path}", s.tenant), &s.key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn add_endpoint(s: &Setup, body: Value) -> Value {
    let (status, v) = send(s, Method::POST, "/endpoints", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v
}

async fn deliveries(s: &Setup, query: &str) -> Vec<Value> {
    let (status, v) = send(s, Method::GET, &format!("/deliveries?{query}"), None).await;
    assert_eq!(status, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_settings_are_read_updated_and_deleted() {
    let s = Setup::new(&["*"]).await;
    let ep = add_endpoint(
        &s,
        json!({ "url": s.receiver.url, "event_types": ["call.*"], "description": "CRM", "signing": "hookhost",
                "timeout_ms": 5000, "ordered_by": "call_id", "rate_limit_per_s": 20, "enabled": true,
                "headers": { "authorization": "Bearer crm-token" } }),
    )
    .await;
    let id = ep["id"].as_str().unwrap();
    let (status, got) = send(&s, Method::GET, &format!("/endpoints/{id}"), None).await;
    assert_eq!(status, 200);
    for key in ["description", "signing", "timeout_ms", "ordered_by", "rate_limit_per_s", "headers", "event_types"] {
        assert_eq!(got[key], ep[key], "{key}");
    }
    assert_eq!(got["signing"], "hookhost");

    let (status, patched) = send(
        &s,
        Method::PATCH,
        &format!("/endpoints/{id}"),
        Some(json!({ "description": "CRM v2", "timeout_ms": null })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "CRM v2");
    assert!(patched["timeout_ms"].is_null());
    assert_eq!(patched["ordered_by"], "call_id", "untouched fields stay");

    for bad in [
        json!({ "signing": "md5" }),
        json!({ "colour": "red" }),
        json!({ "url": "http://example.com/x" }),
        json!({ "rate_limit_per_s": 0 }),
    ] {
        let (status, v) = send(&s, Method::PATCH, &format!("/endpoints/{id}"), Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad} → {v}");
    }
    let (status, _) = send(&s, Method::DELETE, &format!("/endpoints/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(send(&s, Method::GET, &format!("/endpoints/{id}"), None).await.0, 404);
    assert_eq!(send(&s, Method::DELETE, &format!("/endpoints/{id}"), None).await.0, 404);
}

/// A receiver's contract may name its own headers (CallFunnel: `X-CF-Signature: t=…,v1=…` and
/// `X-CF-Event-Id`): the signature goes out under those names and only those, and a name that
/// would clobber the request's own headers, repeat another or not be a header is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_names_its_signature_headers() {
    let mut s = Setup::new(&["*"]).await;
    let mut cf = Receiver::start().await;
    let ep = add_endpoint(
        &s,
        json!({ "url": cf.url, "signing": "hookhost", "signature_header": "X-CF-Signature", "id_header": "X-CF-Event-Id",
                "headers": { "x-cf-signature": "forged by the tenant's own headers" } }),
    )
    .await;
    assert_eq!(ep["signature_header"], "x-cf-signature");
    assert_eq!(ep["id_header"], "x-cf-event-id");
    assert!(ep["timestamp_header"].is_null());
    let secret = ep["secret"].as_str().unwrap().to_string();

    s.call_status("CA1", "ringing").await;
    let got = cf.next().await;
    assert!(verify_hookhost_signature_in("x-cf-signature", &secret, &got.headers, &got.body), "{:?}", got.headers);
    assert_eq!(got.header("x-cf-event-id"), got.json()["id"].as_str().unwrap());
    assert!(got.header("x-hookhost-signature").is_empty() && got.header("x-hookhost-event-id").is_empty());
    s.receiver.next().await;

    let id = ep["id"].as_str().unwrap();
    for bad in [
        json!({ "signature_header": "Content-Length" }),
        json!({ "id_header": "host" }),
        json!({ "signature_header": "bad header" }),
        json!({ "signature_header": 7 }),
        json!({ "timestamp_header": "x-cf-event-id" }),
    ] {
        let (status, v) = send(&s, Method::PATCH, &format!("/endpoints/{id}"), Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad} → {v}");
    }
    // Back to the style's defaults.
    let (status, v) = send(
        &s,
        Method::PATCH,
        &format!("/endpoints/{id}"),
        Some(json!({ "signature_header": null, "id_header": null })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    s.call_status("CA2", "ringing").await;
    let got = cf.next().await;
    assert!(verify_hookhost_signature(&secret, &got.headers, &got.body));
    assert!(got.header("x-cf-signature").starts_with("forged"), "the tenant's own header is just a header again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookhost_signing_style_and_secret_rotation_overlap() {
    let mut s = Setup::new(&["*"]).await;
    let mut hh = Receiver::start().await;
    let ep = add_endpoint(&s, json!({ "url": hh.url, "signing": "hookhost" })).await;
    let hh_secret = ep["secret"].as_str().unwrap().to_string();

    s.call_status("CA1", "ringing").await;
    let got = hh.next().await;
    assert!(verify_hookhost_signature(&hh_secret, &got.headers, &got.body));
    assert_eq!(got.header("x-hookhost-event-id"), got.json()["id"].as_str().unwrap());
    assert!(got.header("webhook-signature").is_empty());
    s.receiver.next().await;

    // Rotate the standard endpoint's secret: during the overlap both secrets verify.
    let (status, rotated) = send(&s, Method::POST, &format!("/endpoints/{}/rotate-secret", s.endpoint), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, s.secret);
    assert!(rotated["previous_secret_expires_at"].as_i64().unwrap() > hookhost::now_ms());
    s.call_status("CA2", "ringing").await;
    let got = s.receiver.next().await;
    assert!(verify_standard_webhook(&new_secret, &got.headers, &got.body));
    assert!(verify_standard_webhook(&s.secret, &got.headers, &got.body));
    assert_eq!(got.header("webhook-signature").split(' ').count(), 2);
    let before = hh.next().await; // CA2 at the hookhost-style endpoint, still one secret
    assert_eq!(before.header("x-hookhost-signature").matches("v1=").count(), 1);

    // The hookhost style repeats v1= during its rotation.
    let (_, rotated) =
        send(&s, Method::POST, &format!("/endpoints/{}/rotate-secret", ep["id"].as_str().unwrap()), None).await;
    s.call_status("CA3", "ringing").await;
    let got = hh.next().await;
    assert!(verify_hookhost_signature(rotated["secret"].as_str().unwrap(), &got.headers, &got.body));
    assert!(verify_hookhost_signature(&hh_secret, &got.headers, &got.body));
    assert_eq!(got.header("x-hookhost-signature").matches("v1=").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_delivers_a_sample_with_is_test_and_reports_the_attempt() {
    let mut s = Setup::new(&["*"]).await;
    s.receiver.script(&[418]);
    let (status, r) = send(
        &s,
        Method::POST,
        &format!("/endpoints/{}/test", s.endpoint),
        Some(json!({ "event_type": "sms.received" })),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status_code"], 418);
    assert_eq!(r["succeeded"], false);
    assert!(r["duration_ms"].as_u64().is_some());
    let got = s.receiver.next().await;
    assert_eq!(got.json()["is_test"], true);
    assert_eq!(got.json()["event_type"], "sms.received");
    assert!(verify_standard_webhook(&s.secret, &got.headers, &got.body));
    let (_, r) = send(
        &s,
        Method::POST,
        &format!("/endpoints/{}/test", s.endpoint),
        Some(json!({ "event_type": "call.missed" })),
    )
    .await;
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["succeeded"], true);
    assert_eq!(s.receiver.next().await.json()["payload"]["call_id"], "CA00000000000000000000000000000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_retried_one_by_one_or_recovered_since_a_time() {
    let mut s = Setup::new(&["*"]).await;
    s.receiver.set_default(503);
    s.call_status("CA1", "completed").await;
    let id = s.single_event_id().await;
    s.attempts_n(&id, 4).await;
    let failed = deliveries(&s, "status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["dead_letter"], true);
    assert_eq!(failed[0]["attempts"], 4);
    assert!(deliveries(&s, "status=pending").await.is_empty());
    assert_eq!(deliveries(&s, &format!("status=failed&endpoint_id={}", s.endpoint)).await.len(), 1);
    assert!(deliveries(&s, "status=failed&endpoint_id=ep_other").await.is_empty());
    for _ in 0..4 {
        s.receiver.next().await;
    }

    s.receiver.set_default(200);
    let did = failed[0]["id"].as_i64().unwrap();
    let (status, _) = send(&s, Method::POST, &format!("/deliveries/{did}/retry"), None).await;
    assert_eq!(status, 202);
    assert_eq!(s.receiver.next().await.answered, 200);
    let done = s
        .server
        .eventually("the retried delivery to succeed", || async {
            let d = deliveries(&s, "status=succeeded").await;
            (!d.is_empty()).then(|| d[0].clone())
        })
        .await;
    assert_eq!(done["manual_retries"], 1);
    assert_eq!(send(&s, Method::POST, &format!("/deliveries/{did}/retry"), None).await.0, 409);
    assert_eq!(send(&s, Method::POST, "/deliveries/999999/retry", None).await.0, 404);

    // Two permanent failures, then recover everything since a time.
    s.receiver.set_default(400);
    s.call_status("CA2", "completed").await;
    s.call_status("CA3", "completed").await;
    s.receiver.next().await;
    s.receiver.next().await;
    s.server
        .eventually("two failed deliveries", || async {
            (deliveries(&s, "status=failed").await.len() == 2).then_some(())
        })
        .await;
    s.receiver.set_default(200);
    let (status, r) = send(
        &s,
        Method::POST,
        &format!("/endpoints/{}/recover", s.endpoint),
        Some(json!({ "since": "2020-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["requeued"], 2);
    let mut sids = vec![
        s.receiver.next().await.json()["payload"]["call_sid"].as_str().unwrap().to_string(),
        s.receiver.next().await.json()["payload"]["call_sid"].as_str().unwrap().to_string(),
    ];
    sids.sort();
    assert_eq!(sids, ["CA2", "CA3"]);
    let (status, _) =
        send(&s, Method::POST, &format!("/endpoints/{}/recover", s.endpoint), Some(json!({ "since": "soon" }))).await;
    assert_eq!(status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_replayed_to_another_endpoint_as_the_plugin_shaped_it() {
    let mut s = Setup::new(&["*"]).await;
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, plugins::REDACT_PHONE).await.0, 202);
    s.call_status("CA1", "completed").await;
    let original = s.receiver.next().await;
    let id = s.single_event_id().await;

    let mut other = Receiver::start().await;
    let ep = add_endpoint(&s, json!({ "url": other.url, "event_types": ["sms.*"] })).await;
    let (status, r) =
        send(&s, Method::POST, &format!("/events/{id}/replay"), Some(json!({ "endpoint_id": ep["id"] }))).await;
    assert_eq!(status, 202, "{r}");
    let replayed = other.next().await;
    assert_eq!(replayed.body, original.body, "the same envelope, redacted by the plugin");
    assert_eq!(replayed.json()["payload"]["from"], "+*******5309");
    assert!(verify_standard_webhook(ep["secret"].as_str().unwrap(), &replayed.headers, &replayed.body));
    let replays: Vec<Value> = deliveries(&s, &format!("endpoint_id={}", ep["id"].as_str().unwrap())).await;
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[0]["replay"], true);
    let (status, _) = send(&s, Method::POST, "/events/evt_nope/replay", Some(json!({ "endpoint_id": ep["id"] }))).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_the_configured_time_is_disabled_announced_and_resumes_when_enabled() {
    let mut config = test_config(&hookhost_tests::fresh_database("health").await);
    config.retry_schedule = hookhost::config::parse_schedule("50ms,100ms,200ms,500ms,800ms").unwrap();
    config.endpoint_disable_after = Some(Duration::from_millis(250));
    let mut s = Setup::on(TestServer::start_with(config).await, &["call.*"]).await;
    let mut watcher = Receiver::start().await;
    add_endpoint(&s, json!({ "url": watcher.url, "event_types": ["endpoint.*"] })).await;
    s.receiver.set_default(500);
    s.call_status("CA1", "completed").await;

    let announced = watcher.next().await.json();
    assert_eq!(announced["event_type"], "endpoint.disabled");
    assert_eq!(announced["payload"]["endpoint_id"], s.endpoint.as_str());
    assert!(announced["payload"]["reason"].as_str().unwrap().contains("failed"));
    let (_, ep) = send(&s, Method::GET, &format!("/endpoints/{}", s.endpoint), None).await;
    assert_eq!(ep["enabled"], false);
    assert!(ep["disabled_reason"].as_str().unwrap().contains("every delivery attempt failed"));
    let pending = deliveries(&s, &format!("status=pending&endpoint_id={}", s.endpoint)).await;
    assert_eq!(pending.len(), 1, "the delivery waits while its endpoint is disabled");

    s.receiver.set_default(200);
    let (status, ep) =
        send(&s, Method::PATCH, &format!("/endpoints/{}", s.endpoint), Some(json!({ "enabled": true }))).await;
    assert_eq!(status, 200);
    assert!(ep["disabled_reason"].is_null());
    loop {
        let got = s.receiver.next().await;
        if got.answered == 200 {
            assert_eq!(got.json()["payload"]["call_sid"], "CA1");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_hold_back_another_endpoint() {
    let mut config = test_config(&hookhost_tests::fresh_database("fair").await);
    config.delivery_concurrency = 4;
    config.endpoint_concurrency = 2;
    let mut s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    let slow = Receiver::start().await;
    slow.set_delay(Duration::from_secs(3));
    add_endpoint(&s, json!({ "url": slow.url })).await;
    for i in 0..12 {
        s.call_status(&format!("CA{i}"), "ringing").await;
    }
    for _ in 0..12 {
        s.receiver.next().await;
    }
    // The slow endpoint takes 3 s per delivery, 2 at a time: it cannot have finished 12.
    assert!(slow.count.load(std::sync::atomic::Ordering::SeqCst) < 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoints_rate_limit_spaces_its_deliveries() {
    let s = Setup::new(&["sms.*"]).await;
    let mut limited = Receiver::start().await;
    add_endpoint(&s, json!({ "url": limited.url, "rate_limit_per_s": 5 })).await;
    for i in 0..10 {
        s.call_status(&format!("CA{i}"), "ringing").await;
    }
    let first = limited.next().await.at;
    let mut last = first;
    for _ in 1..10 {
        last = limited.next().await.at;
    }
    // A burst of 5, then one every 200 ms: the tenth comes at least ~1 s after the first.
    assert!(last - first >= Duration::from_millis(900), "{:?}", last - first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_endpoints_get_each_calls_events_in_order_even_across_a_retry() {
    let s = Setup::new(&["sms.*"]).await;
    let mut ordered = Receiver::start().await;
    add_endpoint(&s, json!({ "url": ordered.url, "ordered_by": "call_id" })).await;
    // Each call's first delivery fails once, so its retry must still come before the rest.
    ordered.fail_matching("\"call_sid\":\"CA1\",\"call_status\":\"ringing\"", 1);
    ordered.fail_matching("\"call_sid\":\"CA2\",\"call_status\":\"ringing\"", 1);
    for status in ["ringing", "in-progress", "completed"] {
        s.call_status("CA1", status).await;
        s.call_status("CA2", status).await;
    }
    let mut seen: Vec<(String, String, u16)> = Vec::new();
    while seen.iter().filter(|(_, _, code)| *code == 200).count() < 6 {
        let got = ordered.next().await;
        let p = &got.json()["payload"];
        seen.push((p["call_id"].as_str().unwrap().into(), p["call_status"].as_str().unwrap().into(), got.answered));
    }
    for call in ["CA1", "CA2"] {
        let order: Vec<(&str, u16)> =
            seen.iter().filter(|(c, _, _)| c == call).map(|(_, st, code)| (st.as_str(), *code)).collect();
        assert_eq!(order, [("ringing", 503), ("ringing", 200), ("in-progress", 200), ("completed", 200)], "{call}");
    }
}
