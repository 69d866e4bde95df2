//! Plugins that shape the whole outbound request (`hookhost:plugin@0.2.0`), and components
//! built against 0.1.0, through the real server: the receiver gets exactly the method, path,
//! headers and body the plugin asked for, signed over the body's bytes; what would forge a
//! signature or leave the endpoint's host is refused with the reason and sends nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::Setup;
use hookhost_tests::{plugins, verify_standard_webhook};

impl Setup {
    /// Set the tenant's key-value entry `key` to `value`.
    async fn kv_put(&self, key: &str, value: &str) {
        let r = self
            .server
            .authed(Method::PUT, &format!("/v1/tenants/{}/kv/{key}", self.tenant), &self.key)
            .body(value.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// A missed call's event, processed: its id and detail.
    async fn missed_call(&self, call_sid: &str) -> (String, Value) {
        self.call_status(call_sid, "no-answer").await;
        let events = self
            .server
            .eventually("the call's event", || async {
                self.events()
                    .await
                    .into_iter()
                    .find(|e| e["event_type"] == "call.missed" && e["payload"]["call_id"] == call_sid)
            })
            .await;
        let id = events["id"].as_str().unwrap().to_string();
        let detail = self.processed(&id).await;
        (id, detail)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shaped_request_reaches_the_receiver_byte_for_byte_and_replays_the_same() {
    let mut s = Setup::new(&["call.missed"]).await;
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, plugins::SHAPE_REQUEST).await.0, 202);
    let body = "call CA1 missed — é\n";
    let shape = json!({ "method": "PUT", "path": "/calls/CA1?src=hookhost", "content_type": "text/plain; charset=utf-8",
                        "headers": [["X-Api-Version", "2"], ["Authorization", "Bearer tenant-key"]], "body": body });
    s.kv_put("shape", &shape.to_string()).await;
    let (id, event) = s.missed_call("CAshape1").await;
    assert_eq!(event["status"], "processed", "{event}");

    let got = s.receiver.next().await;
    assert_eq!(got.method, Method::PUT);
    assert_eq!(got.uri, "/hook/calls/CA1?src=hookhost");
    assert_eq!(got.body, body.as_bytes(), "the body as the plugin wrote it");
    assert_eq!(got.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!((got.header("x-api-version"), got.header("authorization")), ("2".into(), "Bearer tenant-key".into()));
    assert!(verify_standard_webhook(&s.secret, &got.headers, &got.body), "signed over the exact bytes");
    assert_eq!(got.header("webhook-id"), id);

    // A replay sends the same request again, not an envelope.
    let (status, _) =
        s.call(Method::POST, &format!("/events/{id}/replay"), Some(json!({ "endpoint_id": s.endpoint }))).await;
    assert_eq!(status, 202);
    let again = s.receiver.next().await;
    assert_eq!((again.method, again.uri.as_str(), again.body), (Method::PUT, "/hook/calls/CA1?src=hookhost", got.body));

    // A JSON body keeps its bytes too (no re-serialization: spacing and key order as written).
    let json_body = r#"{ "z": 1,  "a": [true] }"#;
    s.kv_put("shape", &json!({ "method": "patch", "body": json_body }).to_string()).await;
    s.missed_call("CAshape2").await;
    let got = s.receiver.next().await;
    assert_eq!((&got.method, got.uri.as_str()), (&Method::PATCH, "/hook"));
    assert_eq!((got.body.as_ref(), got.header("content-type").as_str()), (json_body.as_bytes(), "application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_shapes_are_refused_with_the_reason_and_send_nothing() {
    let mut s = Setup::new(&["call.*"]).await;
    // A second endpoint signing under its own header name: the plugin must not set it.
    let cf = json!({ "url": s.receiver.url, "event_types": ["call.*"], "signing": "hookhost",
                     "signature_header": "X-CF-Signature", "id_header": "X-CF-Event-Id" });
    let (status, _) = s.call(Method::POST, "/endpoints", Some(cf)).await;
    assert_eq!(status, 201);
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, plugins::SHAPE_REQUEST).await.0, 202);
    let cases = [
        (json!({ "headers": [["Webhook-Signature", "v1,forged"]] }), "reserved"),
        (json!({ "headers": [["X-Hookhost-Event-Id", "evt_forged"]] }), "reserved"),
        (json!({ "headers": [["X-CF-Signature", "t=1,v1=forged"]] }), "signature header"),
        (json!({ "headers": [["Host", "evil.example"]] }), "reserved"),
        (json!({ "headers": [["Content-Length", "1"]] }), "reserved"),
        (json!({ "headers": [["X-A", "v\r\nX-B: smuggled"]] }), "not a valid header"),
        (json!({ "path": "@evil.example/x" }), "must start with"),
        (json!({ "path": "/../../admin" }), "'..' segments"),
        (json!({ "path": "//evil.example/x" }), "must not start with '//'"),
        (json!({ "method": "DELETE" }), "not POST, PUT or PATCH"),
        (json!({ "body": "{not json" }), "not JSON"),
        (json!({ "content_type": "text/plain\r\nX-B: 1", "body": "x" }), "not a media type"),
    ];
    for (i, (shape, reason)) in cases.iter().enumerate() {
        s.kv_put("shape", &shape.to_string()).await;
        let (_, event) = s.missed_call(&format!("CAhostile{i}")).await;
        assert_eq!(event["status"], "failed", "{shape} → {event}");
        let error = event["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("plugin_error") && error.contains(reason), "{shape}: {error}");
    }
    s.server.settled("delivery").await;
    assert!(s.receiver.next_within(std::time::Duration::ZERO).await.is_none(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_built_against_0_1_0_keep_loading_and_running() {
    let mut s = Setup::new(&["call.missed"]).await;
    let (status, v) = s.server.upload_plugin(&s.tenant, &s.key, plugins::LEGACY_V01).await;
    assert_eq!((status, v["state"].as_str()), (202, Some("ready")), "{v}");
    s.kv_put("owner", "ada").await;
    let (_, event) = s.missed_call("CAlegacy1").await;
    assert_eq!(event["status"], "processed", "{event}");
    let got = s.receiver.next().await;
    let envelope = got.json();
    assert_eq!((envelope["event_type"].as_str(), got.method.as_str()), (Some("call.missed"), "POST"));
    assert_eq!(envelope["payload"]["world"], "0.1.0");
    assert_eq!(envelope["payload"]["owner"], "ada", "its kv-get import works");
    assert_eq!(envelope["payload"]["call_id"], "CAlegacy1");
    let runs = &event["plugin_runs"];
    assert!(runs.to_string().contains("legacy plugin at"), "its log import works: {runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_runner_shows_the_exact_request_of_each_world() {
    use hookhost::plugin::{Limits, local};
    let event = local::event_from_envelope(
        &json!({ "id": "evt_1", "event_type": "call.missed", "payload": { "call_id": "CA1" } }),
    )
    .unwrap();
    let shape = json!({ "method": "PUT", "path": "/calls/CA1", "headers": [["X-A", "1"]], "content_type": "text/plain", "body": "hi" });
    let kv = [("shape".to_string(), shape.to_string())].into();
    let report =
        local::run(std::fs::read(plugins::SHAPE_REQUEST).unwrap(), &event, kv, Limits::default()).await.unwrap();
    assert_eq!(report.json["world"], "hookhost:plugin@0.2.0");
    let request = &report.json["actions"][0]["deliver"]["request"];
    assert_eq!(
        request,
        &json!({ "method": "PUT", "path": "/calls/CA1", "content_type": "text/plain", "headers": [["x-a", "1"]], "body": "hi" })
    );
    // A hostile shape fails the run with the reason, as it fails an event.
    let kv = [("shape".to_string(), json!({ "headers": [["Host", "evil"]] }).to_string())].into();
    let report =
        local::run(std::fs::read(plugins::SHAPE_REQUEST).unwrap(), &event, kv, Limits::default()).await.unwrap();
    assert_eq!((report.ok, report.json["outcome"].as_str()), (false, Some("plugin_error")));
    assert!(report.json["error"].as_str().unwrap().contains("\"Host\" is reserved"), "{}", report.json);
    // A 0.1.0 component: the envelope it sends, exactly.
    let report = local::run(std::fs::read(plugins::LEGACY_V01).unwrap(), &event, Default::default(), Limits::default())
        .await
        .unwrap();
    assert_eq!(report.json["world"], "hookhost:plugin@0.1.0");
    let request = &report.json["actions"][0]["deliver"]["request"];
    let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    assert_eq!((request["method"].as_str(), body["id"].as_str()), (Some("POST"), Some("evt_1")));
    assert_eq!(body["payload"]["world"], "0.1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_plugin_of_a_chain_may_shape_the_request() {
    let mut s = Setup::new(&["call.missed"]).await;
    for (name, path) in [("shape-request", plugins::SHAPE_REQUEST), ("passthrough", plugins::PASSTHROUGH)] {
        assert_eq!(s.upload_named(name, path).await.0, 202);
        assert_eq!(s.call(Method::POST, &format!("/plugins/{name}/versions/1/activate"), None).await.0, 200);
    }
    s.kv_put("shape", &json!({ "method": "PUT", "body": "{}" }).to_string()).await;
    let chain = json!([{ "match": "call.*", "plugins": ["shape-request", "passthrough"] }]);
    assert_eq!(s.call(Method::PUT, "/chain", Some(chain)).await.0, 200);
    let (_, event) = s.missed_call("CAchain1").await;
    assert_eq!(event["status"], "failed", "{event}");
    assert!(event["error"].as_str().unwrap().contains("only a chain's last plugin may shape"), "{event}");
    // Last in the chain, the same plugin's request goes out.
    let chain = json!([{ "match": "call.*", "plugins": ["passthrough", "shape-request"] }]);
    assert_eq!(s.call(Method::PUT, "/chain", Some(chain)).await.0, 200);
    let (_, event) = s.missed_call("CAchain2").await;
    assert_eq!(event["status"], "processed", "{event}");
    assert_eq!(s.receiver.next().await.method, Method::PUT);
}
