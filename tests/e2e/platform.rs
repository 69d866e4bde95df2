//! The plugin platform through the real server: named versions, activation and rollback, dry
//! runs with no side effects, chains, per-tenant limits and capabilities, the key-value store,
//! and usage figures.

use hookhost_tests::{TestServer, plugins, test_config};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Setup;

impl Setup {
    pub(crate) async fn upload_named(&self, name: &str, path: &str) -> (u16, Value) {
        self.server.upload(&self.tenant, &self.key, Some(name), path).await
    }

    pub(crate) async fn put_kv(&self, key: &str, value: &str) -> u16 {
        let path = format!("/v1/tenants/{}/kv/{key}", self.tenant);
        let r = self.server.authed(Method::PUT, &path, &self.key).body(value.to_string()).send().await.unwrap();
        r.status().as_u16()
    }

    /// Wait until every event is no longer pending; returns them with their detail.
    pub(crate) async fn all_processed(&self, n: usize) -> Vec<Value> {
        self.server
            .eventually(&format!("{n} processed events"), || async {
                let events = self.events().await;
                if events.len() < n {
                    return None;
                }
                let mut out = Vec::new();
                for e in &events {
                    let d = self.event(e["id"].as_str().unwrap()).await;
                    if d["status"] == "pending" {
                        return None;
                    }
                    out.push(d);
                }
                Some(out)
            })
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_immutable_dry_runs_compare_and_activation_rolls_back() {
    let mut s = Setup::new(&["call.completed"]).await;

    // Version 1: passthrough. Uploading stores it; it does not run until activated.
    let (status, v1) = s.upload_named("shape", plugins::PASSTHROUGH).await;
    assert_eq!((status, v1["state"].as_str(), v1["active"].as_bool()), (202, Some("ready"), Some(false)), "{v1}");
    assert_eq!((v1["name"].as_str(), v1["version"].as_i64()), (Some("shape"), Some(1)));
    assert_eq!(v1["digest"].as_str().unwrap().len(), 64);
    let (status, v2) = s.upload_named("shape", plugins::RESHAPE_CALL_COMPLETED).await;
    assert_eq!((status, v2["version"].as_i64()), (202, Some(2)));
    let (status, again) = s.upload_named("shape", plugins::RESHAPE_CALL_COMPLETED).await;
    assert_eq!((status, again["version"].as_i64()), (200, Some(2)), "the same bytes are the same version");
    assert_eq!(again["state"], "ready");

    let (_, list) = s.call(Method::GET, "/plugins", None).await;
    let shape = &list["data"][0];
    assert_eq!(shape["name"], "shape");
    assert!(shape["active_version"].is_null());
    assert_eq!(shape["versions"].as_array().unwrap().len(), 2);

    // Nothing active: the event is delivered as it is.
    s.call_status("CA1", "in-progress").await;
    s.call_status("CA1", "completed").await;
    let got = s.receiver.next().await.json();
    assert_eq!(got["payload"]["call_id"], "CA1");
    assert!(got["payload"]["from"].is_string(), "unchanged: {got}");

    // A dry run of version 2 against no active version.
    let (status, dry) = s.call(Method::POST, "/plugins/shape/versions/2/dry-run", Some(json!({ "last": 10 }))).await;
    assert_eq!(status, 200, "{dry}");
    let results = dry["results"].as_array().unwrap();
    let completed = results.iter().find(|r| r["event_type"] == "call.completed").expect("the completed event");
    assert!(completed["active_actions"].is_null());
    assert_eq!(completed["changed"], true);
    assert_eq!(completed["actions"][0]["deliver"]["payload"]["from_e164"], "+14158675309");

    // With version 1 active, the dry run shows the difference only where there is one.
    let (status, _) = s.call(Method::POST, "/plugins/shape/versions/1/activate", None).await;
    assert_eq!(status, 200);
    let (_, dry) = s.call(Method::POST, "/plugins/shape/versions/2/dry-run", Some(json!({ "last": 10 }))).await;
    let results = dry["results"].as_array().unwrap();
    assert!(results.len() >= 2, "{dry}");
    for r in results {
        let changed = r["event_type"] == "call.completed";
        assert_eq!(r["changed"], changed, "{r}");
        assert!(r["active_actions"].is_array());
    }
    let (_, usage) = s.call(Method::GET, "/plugins/usage", None).await;
    assert_eq!(usage["data"], json!([]), "a dry run records nothing: {usage}");
    assert_eq!(s.attempts(&s.event_id_of("call.completed").await).await.len(), 1, "and delivers nothing");

    // Activate version 2: the next completed call is reshaped. Roll back to 1: unchanged again.
    assert_eq!(s.call(Method::POST, "/plugins/shape/versions/2/activate", None).await.0, 200);
    s.call_status("CA2", "in-progress").await;
    s.call_status("CA2", "completed").await;
    let got = s.receiver.next().await.json();
    assert_eq!(got["payload"]["call_id"], "CA2");
    assert_eq!(got["payload"]["to_e164"], "+18005551212");
    assert_eq!(got["payload"]["extracted_data"]["outcome"], "answered");

    assert_eq!(s.call(Method::POST, "/plugins/shape/versions/1/activate", None).await.0, 200);
    s.call_status("CA3", "in-progress").await;
    s.call_status("CA3", "completed").await;
    let got = s.receiver.next().await.json();
    assert_eq!(got["payload"]["call_id"], "CA3");
    assert!(got["payload"].get("to_e164").is_none(), "rolled back: {got}");

    // Usage per version.
    let (_, usage) = s.call(Method::GET, "/plugins/usage", None).await;
    let rows = usage["data"].as_array().unwrap();
    let v2 = rows.iter().find(|r| r["version"] == 2).expect("version 2 ran");
    assert!(v2["invocations"].as_u64().unwrap() >= 1);
    assert!(v2["wall_us"]["p50"].as_i64().unwrap() > 0);
    assert!(v2["fuel"]["p99"].as_i64().unwrap() > 0);
    assert!(v2["peak_memory_bytes"].as_i64().unwrap() > 0);
    assert_eq!(v2["failures"], json!({}));

    // Refusals.
    assert_eq!(s.call(Method::POST, "/plugins/shape/versions/9/activate", None).await.0, 404);
    assert_eq!(s.call(Method::POST, "/plugins/shape/versions/2/dry-run", Some(json!({ "last": 0 }))).await.0, 422);
    assert_eq!(s.upload_named("Bad%20Name", plugins::PASSTHROUGH).await.0, 422);
    assert_eq!(s.upload_named("usage", plugins::PASSTHROUGH).await.0, 405, "a GET-only route");
    assert_eq!(s.upload_named("bad.name", plugins::PASSTHROUGH).await.0, 422);

    // Delete.
    assert_eq!(s.call(Method::DELETE, "/plugins/shape", None).await.0, 204);
    assert_eq!(s.call(Method::GET, "/plugins/shape", None).await.0, 404);
    assert_eq!(s.call(Method::DELETE, "/plugins/shape", None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_filters_then_enriches_and_kv_writes_need_the_capability() {
    let mut s = Setup::new(&["*"]).await;
    for (name, path) in [("filter", plugins::KEEP_MISSED_CALLS), ("enrich", plugins::ENRICH_OWNER)] {
        assert_eq!(s.upload_named(name, path).await.0, 202);
        assert_eq!(s.call(Method::POST, &format!("/plugins/{name}/versions/1/activate"), None).await.0, 200);
    }
    let chain = json!([{ "match": "call.*", "plugins": ["filter", "enrich"] }]);
    let (status, body) = s.call(Method::PUT, "/chain", Some(chain.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.call(Method::GET, "/chain", None).await.1["chain"], chain);
    assert_eq!(s.put_kv("owner:+18005551212", "support-team").await, 204);

    // kv_write is not granted yet: the plugin's write is refused, the event still flows.
    s.call_status("CA1", "no-answer").await;
    let got = s.receiver.next().await.json();
    assert_eq!(got["event_type"], "call.missed");
    assert_eq!(got["payload"]["owner"], "support-team");
    assert_eq!(s.call(Method::GET, "/kv/missed:+18005551212", None).await.0, 404);

    // The tenant cannot grant it to itself; the operator grants it on the ceiling.
    let (status, refused) = s.call(Method::PUT, "/limits", Some(json!({ "kv_write": true }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("capability_not_granted")), "{refused}");
    let (status, limits) = s.operator(Method::PUT, "/ceiling", Some(json!({ "kv_write": true }))).await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["limits"]["kv_write"], true);
    s.call_status("CA2", "no-answer").await;
    assert_eq!(s.receiver.next().await.json()["payload"]["call_id"], "CA2");
    let events = s.all_processed(4).await;
    let (status, count) = s.call(Method::GET, "/kv/missed:+18005551212", None).await;
    assert_eq!((status, count), (200, json!(1)), "the write committed with the event");

    // Everything but the missed calls was dropped by the filter, with its reason.
    for e in &events {
        if e["event"]["event_type"] == "call.missed" {
            assert_eq!(e["status"], "processed", "{e}");
            assert_eq!(e["plugin_runs"].as_array().unwrap().len(), 2, "filter then enrich: {e}");
        } else {
            assert_eq!(e["status"], "dropped", "{e}");
            assert!(e["error"].as_str().unwrap().contains("not a missed call"), "{e}");
            assert_eq!(e["plugin_runs"].as_array().unwrap().len(), 1, "the chain stops at the filter: {e}");
        }
    }

    // Chain validation; a plugin in the chain cannot be deleted.
    let bad = [
        json!([{ "match": "call.*", "plugins": ["nope"] }]),
        json!([{ "match": "ca*ll", "plugins": [] }]),
        json!({ "match": "*" }),
    ];
    for b in bad {
        assert!([400, 422].contains(&s.call(Method::PUT, "/chain", Some(b.clone())).await.0), "{b}");
    }
    assert_eq!(s.call(Method::DELETE, "/plugins/filter", None).await.0, 409);
    assert_eq!(s.call(Method::DELETE, "/chain", None).await.0, 204);
    assert_eq!(s.call(Method::GET, "/chain", None).await.1["implicit"][0]["plugins"], json!(["filter", "enrich"]));
    assert_eq!(s.call(Method::DELETE, "/plugins/filter", None).await.0, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_checked_and_applied_per_tenant_and_kv_has_quotas() {
    let mut config = test_config(&hookhost_tests::fresh_database("limits").await);
    config.kv_max_keys = 2;
    let s = Setup::on(TestServer::start_with(config).await, &["*"]).await;

    for bad in [
        json!({ "fuel": 0 }),
        json!({ "memory_bytes": 1u64 << 40 }),
        json!({ "timeout_ms": "soon" }),
        json!({ "surprise": 1 }),
        json!([1]),
    ] {
        let (status, body) = s.call(Method::PUT, "/limits", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (_, limits) = s.call(Method::GET, "/limits", None).await;
    assert_eq!(limits["overrides"], json!({}));
    assert_eq!(limits["limits"]["kv_write"], false, "capabilities are denied by default");

    let set = json!({ "fuel": 100_000_000_000u64, "timeout_ms": 150, "max_actions": 5 });
    let (status, body) = s.call(Method::PUT, "/limits", Some(set.clone())).await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("fuel")), "above the default ceiling: {body}");
    let ceiling = json!({ "fuel": 100_000_000_000u64 });
    assert_eq!(s.operator(Method::PUT, "/ceiling", Some(ceiling)).await.0, 200);
    let (status, limits) = s.call(Method::PUT, "/limits", Some(set.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(limits["overrides"], set);
    assert_eq!(limits["limits"]["timeout_ms"], 150);

    assert_eq!(s.upload_named("spin", plugins::SPIN_FOREVER).await.0, 202);
    assert_eq!(s.call(Method::POST, "/plugins/spin/versions/1/activate", None).await.0, 200);
    s.call_status("CA1", "ringing").await;
    let e = s.all_processed(1).await.remove(0);
    assert_eq!(e["status"], "failed");
    assert_eq!(e["plugin_runs"][0]["outcome"], "deadline", "{e}");
    assert!(e["error"].as_str().unwrap().contains("150 ms"), "the tenant's own deadline: {e}");
    let (_, usage) = s.call(Method::GET, "/plugins/usage", None).await;
    assert_eq!(usage["data"][0]["failures"]["deadline"], 1, "{usage}");

    // The key-value store: set, read, overwrite, quota, size, delete.
    assert_eq!(s.put_kv("a", "1").await, 204);
    assert_eq!(s.put_kv("b", "2").await, 204);
    assert_eq!(s.put_kv("a", "one").await, 204, "overwriting is not a new key");
    assert_eq!(s.put_kv("c", "3").await, 409, "quota of 2 keys");
    assert_eq!(s.put_kv("d", &"x".repeat(70_000)).await, 413);
    assert_eq!(s.call(Method::GET, "/kv/a", None).await.1, json!("one"));
    assert_eq!(s.call(Method::DELETE, "/kv/a", None).await.0, 204);
    assert_eq!(s.call(Method::GET, "/kv/a", None).await.0, 404);
    assert_eq!(s.put_kv("c", "3").await, 204);

    // Another tenant sees none of it.
    let (other, other_key) = s.server.create_tenant("other").await;
    let r = s.server.authed(Method::GET, &format!("/v1/tenants/{other}/kv/b"), &other_key).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s.server.authed(Method::GET, &format!("/v1/tenants/{}/kv/b", s.tenant), &other_key).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

/// A CRM on 127.0.0.1: `GET /contacts/{n}` → `{"name":"Ada","number":n}`; under `/slow` it
/// answers after 3 s.
async fn start_crm() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::Path as P;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = axum::Router::new()
        .route(
            "/contacts/{n}",
            axum::routing::get(move |P(n): P<String>| async move {
                h1.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({ "name": "Ada", "number": n }))
            }),
        )
        .route(
            "/slow/contacts/{n}",
            axum::routing::get(move || async move {
                h2.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                axum::Json(json!({}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fetch_reaches_only_allow_listed_hosts_within_the_deadline() {
    let mut s = Setup::new(&["call.ringing"]).await;
    let (crm, hits) = start_crm().await;
    assert_eq!(s.upload_named("lookup", plugins::LOOKUP_CALLER).await.0, 202);
    assert_eq!(s.call(Method::POST, "/plugins/lookup/versions/1/activate", None).await.0, 200);
    assert_eq!(s.put_kv("crm_url", &crm).await, 204);

    // Not granted: the plugin gets an error, logs it, and the event still flows.
    s.call_status("CA1", "ringing").await;
    let got = s.receiver.next().await.json();
    assert!(got["payload"]["caller"].is_null(), "{got}");
    let e = s.all_processed(1).await.remove(0);
    assert!(e["plugin_runs"][0]["logs"].as_str().unwrap().contains("http_allow list is empty"), "{e}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let limits = json!({ "http_allow": ["127.0.0.1"], "http_timeout_ms": 300 });
    assert_eq!(s.call(Method::PUT, "/limits", Some(limits.clone())).await.0, 403, "not granted yet");
    assert_eq!(s.operator(Method::PUT, "/ceiling", Some(json!({ "http_allow": ["127.0.0.1"] }))).await.0, 200);
    assert_eq!(s.call(Method::PUT, "/limits", Some(limits)).await.0, 200);
    s.call_status("CA2", "ringing").await;
    let got = s.receiver.next().await.json();
    assert_eq!(got["payload"]["caller"], json!({ "name": "Ada", "number": "14158675309" }), "{got}");

    // A slow host is cut at the fetch timeout; the event is delivered without the enrichment.
    assert_eq!(s.put_kv("crm_url", &format!("{crm}/slow")).await, 204);
    s.call_status("CA3", "ringing").await;
    let got = s.receiver.next().await.json();
    assert_eq!(got["payload"]["call_id"], "CA3");
    assert!(got["payload"]["caller"].is_null());
    let e = s.event(got["id"].as_str().unwrap()).await;
    assert!(e["plugin_runs"][0]["logs"].as_str().unwrap().contains("timed out after 300 ms"), "{e}");

    // Bad allow-list entries are refused.
    for bad in [json!({ "http_allow": ["http://x"] }), json!({ "http_allow": "x" })] {
        assert_eq!(s.call(Method::PUT, "/limits", Some(bad)).await.0, 422);
    }
}
