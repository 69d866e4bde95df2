//! The admin API: tokens, tenant isolation, validation.

use hookhost_tests::{ADMIN, TestServer};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_keys_reach_only_their_own_tenant() {
    let server = TestServer::start().await;
    let (a, a_key) = server.create_tenant("a").await;
    let (b, b_key) = server.create_tenant("b").await;
    let events = |t: &str| format!("/v1/tenants/{t}/events");

    assert_eq!(server.authed(Method::GET, &events(&a), &a_key).send().await.unwrap().status(), 200);
    assert_eq!(server.authed(Method::GET, &events(&a), ADMIN).send().await.unwrap().status(), 200);
    assert_eq!(server.authed(Method::GET, &events(&a), &b_key).send().await.unwrap().status(), 403);
    assert_eq!(server.authed(Method::GET, &events(&b), &a_key).send().await.unwrap().status(), 403);
    let r = server
        .authed(Method::PUT, &format!("/v1/tenants/{a}/providers/twilio"), &b_key)
        .json(&json!({ "auth_token": "stolen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(server.http.get(server.url(&events(&a))).send().await.unwrap().status(), 401);
    assert_eq!(server.authed(Method::GET, &events(&a), "hk_wrong").send().await.unwrap().status(), 401);
    // Only the operator creates tenants.
    let r = server.authed(Method::POST, "/v1/tenants", &a_key).json(&json!({ "name": "x" })).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(server.authed(Method::GET, &events("ten_nope"), ADMIN).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_validated_and_internal_addresses_refused_unless_allowed() {
    let mut config = hookhost_tests::test_config(&hookhost_tests::fresh_database("v").await);
    config.outbound_allow.clear();
    let server = TestServer::start_with(config).await;
    let (t, key) = server.create_tenant("t").await;
    let create = |body: serde_json::Value| {
        server.authed(Method::POST, &format!("/v1/tenants/{t}/endpoints"), &key).json(&body).send()
    };
    for url in ["http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://10.0.0.8/"]
    {
        let r = create(json!({ "url": url, "event_types": ["*"] })).await.unwrap();
        assert_eq!(r.status(), 422, "{url}");
    }
    assert_eq!(create(json!({ "url": "ftp://example.com/" })).await.unwrap().status(), 422);
    assert_eq!(create(json!({ "url": "https://example.com/h", "event_types": [] })).await.unwrap().status(), 422);
    let r = create(json!({ "url": "https://example.com/h", "event_types": ["call.*"] })).await.unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("ep_"));
    assert!(v["secret"].as_str().unwrap().starts_with("whsec_"));
    let r = server
        .authed(Method::POST, &format!("/v1/tenants/{t}/endpoints"), &key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let server = TestServer::start().await;
    assert_eq!(server.http.get(server.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(server.http.get(server.url("/readyz")).send().await.unwrap().status(), 200);
    let r = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("# TYPE hookhost_jobs gauge"));
    let doc: serde_json::Value =
        server.http.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/tenants/{id}/plugins/{name}/versions/{v}/dry-run"]["post"].is_object());
}

/// The document is built from the same table as the router: walk it against the running
/// server. Every documented operation is routed (the router's own 404 and 405 have no JSON
/// body; a handler's refusals do), and a tenant route refuses a caller without credentials
/// before it reads anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_guarded() {
    let server = TestServer::start().await;
    let (tenant, _) = server.create_tenant("walk").await;
    let doc: serde_json::Value =
        server.http.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path.replace("{id}", &tenant).replace("{tenant}", &tenant);
            let concrete: String = concrete
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = server.http.request(m, server.url(&concrete)).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(status != 404 || body.contains("\"error\""), "{method} {path}: the router's 404: {body}");
            if op["security"][0]["bearer"].is_array() {
                assert_eq!(status, 401, "{method} {path} answered {status} without credentials: {body}");
            }
            walked += 1;
        }
    }
    assert!(walked > 55, "walked {walked} operations");
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["EndpointView"]["properties"]["url"].is_object(), "bodies are described");
}
