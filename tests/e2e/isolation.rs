//! Tenants that do not trust each other, tried as a hostile tenant would: its own key cannot
//! lift its limits or grant itself capabilities, and nothing it uploads or asks for starves
//! another tenant.

use std::time::Duration;

use hookhost_tests::{Receiver, TestServer, components, plugins, test_config};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Setup, TWILIO_TOKEN};

/// The tenant key raising its limits and granting itself capabilities: refused, naming the
/// field; the ceiling unchanged; the operator's ceiling is the only way up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_key_cannot_raise_its_limits_or_grant_itself_capabilities() {
    let s = Setup::new(&["*"]).await;
    let (_, before) = s.call(Method::GET, "/limits", None).await;

    for (raise, field) in [
        (json!({ "timeout_ms": 60_000 }), "timeout_ms"),
        (json!({ "fuel": 100_000_000_000u64 }), "fuel"),
        (json!({ "memory_bytes": 256u64 << 20 }), "memory_bytes"),
        (json!({ "output_bytes": 16u64 << 20 }), "output_bytes"),
        (json!({ "max_actions": 10_000 }), "max_actions"),
    ] {
        let (status, body) = s.call(Method::PUT, "/limits", Some(raise.clone())).await;
        assert_eq!(status, 422, "{raise}: {body}");
        assert_eq!(body["error"]["code"], "above_ceiling", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    for (grant, field) in [
        (json!({ "kv_write": true }), "kv_write"),
        (json!({ "http_allow": ["*.evil.example"] }), "http_allow"),
        (json!({ "outbound_allow": ["10.0.0.0/8"] }), "outbound_allow"),
    ] {
        let (status, body) = s.call(Method::PUT, "/limits", Some(grant.clone())).await;
        assert_eq!(status, 403, "{grant}: {body}");
        assert_eq!(body["error"]["code"], "capability_not_granted", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    // Its own ceiling is the operator's alone.
    let (status, _) = s.call(Method::PUT, "/ceiling", Some(json!({ "timeout_ms": 60_000, "kv_write": true }))).await;
    assert_eq!(status, 403);
    let (_, after) = s.call(Method::GET, "/limits", None).await;
    assert_eq!(before, after, "nothing changed");
    assert_eq!(after["ceiling"]["kv_write"], false);
    assert_eq!(after["ceiling"]["timeout_ms"], 1000, "the default ceiling is the configured default");

    // Lowering is the tenant's right; the operator raises the ceiling, then the tenant may use it.
    assert_eq!(s.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 200 }))).await.0, 200);
    let ceiling = json!({ "timeout_ms": 5000, "kv_write": true, "outbound_allow": ["10.1.0.0/16"] });
    let (status, body) = s.operator(Method::PUT, "/ceiling", Some(ceiling)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["timeout_ms"], 200, "the tenant's own lower limit stays");
    assert_eq!(body["limits"]["kv_write"], true, "a granted capability applies at once");
    assert_eq!(body["limits"]["outbound_allow"], json!(["10.1.0.0/16"]));
    let (status, body) = s.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 5000 }))).await;
    assert_eq!((status, &body["limits"]["timeout_ms"]), (200, &json!(5000)), "{body}");
    assert_eq!(s.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 5001 }))).await.0, 422);

    // A ceiling lowered later holds the stored limits down at once.
    assert_eq!(s.operator(Method::PUT, "/ceiling", Some(json!({ "timeout_ms": 300 }))).await.0, 200);
    let (_, body) = s.call(Method::GET, "/limits", None).await;
    assert_eq!(body["limits"]["timeout_ms"], 300, "{body}");
    assert_eq!(body["limits"]["kv_write"], false, "the grant was withdrawn with the new ceiling");
    // Bad ceilings are refused.
    for bad in [json!({ "fuel": 0 }), json!({ "outbound_allow": ["not-a-cidr"] }), json!({ "nope": 1 })] {
        assert_eq!(s.operator(Method::PUT, "/ceiling", Some(bad.clone())).await.0, 422, "{bad}");
    }
}

/// Await creations: how many were created (201) and how many refused for `quota` (409 naming
/// it); anything else fails the test.
/// How many of `tasks` answered `created` (201 for endpoints, 202 for plugin uploads) and how
/// many were refused by `quota`.
async fn created_or_refused(
    tasks: Vec<tokio::task::JoinHandle<(u16, Value)>>,
    created_status: u16,
    quota: &str,
) -> (usize, usize) {
    let (mut created, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (status, _) if status == created_status => created += 1,
            (409, body) => {
                assert_eq!(body["error"]["quota"], quota, "{body}");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    (created, refused)
}

async fn upload_bytes(s: &Setup, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    s.server.upload_component(&s.tenant, &s.key, Some(name), bytes).await
}

/// A component with ~120 core instances would take a pool's worth of instance slots in a few
/// invocations: refused when compiled, with the reason, and never activated; a few extra
/// instances are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_many_core_instances_is_refused_at_upload() {
    let s = Setup::new(&["*"]).await;
    let (status, body) = upload_bytes(&s, "few", components::with_core_instances(plugins::PASSTHROUGH, 4)).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (202, Some("ready")),
        "a valid plugin with a few more instances: {body}"
    );
    let (status, body) = upload_bytes(&s, "many", components::with_core_instances(plugins::PASSTHROUGH, 120)).await;
    assert_eq!((status, body["state"].as_str()), (202, Some("invalid")), "{body}");
    let message = body["reason"].as_str().unwrap();
    assert!(message.contains("core module instances") && message.contains("maximum of 32"), "{message}");
    let (status, refused) = s.call(Method::POST, "/plugins/many/versions/1/activate", None).await;
    assert_eq!(status, 409, "an invalid version is never activated: {refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("is invalid: not a valid plugin component"),
        "{refused}"
    );
    let (status, _) = s.call(Method::POST, "/plugins/many/versions/1/dry-run", Some(json!({ "last": 5 }))).await;
    assert_eq!(status, 409, "nor dry-run");
}

/// A second tenant on `server` with the passthrough plugin and an endpoint on a fresh receiver.
async fn calm_tenant(server: &hookhost_tests::TestServer) -> (String, String, Receiver) {
    let (tenant, key) = server.create_tenant("calm").await;
    server.set_provider(&tenant, &key, "twilio", json!({ "auth_token": "calm-token" })).await;
    assert_eq!(server.upload_plugin(&tenant, &key, plugins::PASSTHROUGH).await.0, 202);
    let receiver = Receiver::start().await;
    server.create_endpoint(&tenant, &key, &receiver.url, &["*"]).await;
    (tenant, key, receiver)
}

/// `n` calls of the calm tenant, each delivered, and none of its events failed.
async fn calm_events_all_delivered(
    server: &hookhost_tests::TestServer,
    tenant: &str,
    key: &str,
    receiver: &mut Receiver,
    n: usize,
) {
    for i in 0..n {
        let r = server
            .twilio_status(tenant, "calm-token", &[("CallSid", &format!("CACALM{i}")), ("CallStatus", "ringing")])
            .await;
        assert_eq!(r.status(), 200);
    }
    for _ in 0..n {
        receiver.next().await;
    }
    let events = server.get_json(&format!("/v1/tenants/{tenant}/events"), key).await;
    for e in events["data"].as_array().unwrap() {
        assert_ne!(e["status"], "failed", "{e}");
    }
}

/// Dry runs bypassed the worker's slots: many at once from one tenant, each spinning to its
/// deadline, while another tenant's events flow. The other tenant's events are all delivered
/// and none fails; the hostile tenant's dry runs stop at their request deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dry_runs_do_not_fail_another_tenants_events() {
    let mut config = test_config(&hookhost_tests::fresh_database("dryruns").await);
    config.dry_run_timeout = Duration::from_secs(2);
    let hostile = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    // Every run spins to its 1 s deadline (not to its fuel): 60 s of work for 4 slots.
    let fuel = json!({ "fuel": 100_000_000_000u64 });
    assert_eq!(hostile.operator(Method::PUT, "/ceiling", Some(fuel.clone())).await.0, 200);
    assert_eq!(hostile.call(Method::PUT, "/limits", Some(fuel)).await.0, 200);
    assert_eq!(hostile.upload_named("spin", plugins::SPIN_FOREVER).await.0, 202);
    for i in 0..5 {
        hostile.call_status(&format!("CAH{i}"), "ringing").await;
    }
    let (tenant, key, mut receiver) = calm_tenant(&hostile.server).await;

    let storm: Vec<_> = (0..12)
        .map(|_| {
            let (server, tenant, key) = (hostile.server.clone_client(), hostile.tenant.clone(), hostile.key.clone());
            tokio::spawn(async move {
                let path = format!("/v1/tenants/{tenant}/plugins/spin/versions/1/dry-run");
                let r = server.authed(Method::POST, &path, &key).json(&json!({ "last": 1000 })).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    calm_events_all_delivered(&hostile.server, &tenant, &key, &mut receiver, 10).await;
    let mut skipped = 0;
    for dry in storm {
        let (status, body) = dry.await.unwrap();
        assert_eq!(status, 200, "{body}");
        skipped += body["skipped"].as_u64().unwrap();
        for r in body["results"].as_array().unwrap() {
            assert!(["deadline", "fuel_exhausted"].contains(&r["error"]["outcome"].as_str().unwrap()), "{r}");
        }
    }
    assert!(skipped > 0, "12 dry runs of 5 events at 1 s each cannot all finish within 2 s at 4 slots");
    // Over the cap of events a dry run may look at.
    let (status, _) =
        hostile.call(Method::POST, "/plugins/spin/versions/1/dry-run", Some(json!({ "last": 1001 }))).await;
    assert_eq!(status, 422);
}

/// One tenant tries to take every instance of the pool at once — 300 requests that each
/// instantiate (dry runs and upload checks) beside its own spinning events. Its slots are its
/// share; the other tenant's events are delivered, and nothing fails for want of an instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_exhausted_by_one_tenant_leaves_the_other_tenants_events_delivered() {
    let hostile = Setup::new(&["*"]).await;
    assert_eq!(hostile.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 20 }))).await.0, 200);
    assert_eq!(hostile.upload_named("spin", plugins::SPIN_FOREVER).await.0, 202);
    assert_eq!(hostile.call(Method::POST, "/plugins/spin/versions/1/activate", None).await.0, 200);
    for i in 0..20 {
        hostile.call_status(&format!("CAH{i}"), "ringing").await;
    }
    let (tenant, key, mut receiver) = calm_tenant(&hostile.server).await;
    let spin = std::fs::read(plugins::SPIN_FOREVER).unwrap();
    let storm: Vec<_> = (0..300)
        .map(|i| {
            let (server, tenant, key, spin) =
                (hostile.server.clone_client(), hostile.tenant.clone(), hostile.key.clone(), spin.clone());
            tokio::spawn(async move {
                let r = if i % 3 == 0 {
                    // The same bytes again: compiled from the cache, checked, 200.
                    server
                        .authed(Method::POST, &format!("/v1/tenants/{tenant}/plugins/spin"), &key)
                        .header("content-type", "application/wasm")
                        .body(spin)
                } else {
                    let path = format!("/v1/tenants/{tenant}/plugins/spin/versions/1/dry-run");
                    server.authed(Method::POST, &path, &key).json(&json!({ "last": 3 }))
                };
                r.send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    calm_events_all_delivered(&hostile.server, &tenant, &key, &mut receiver, 10).await;
    for r in storm {
        assert!([200, 201].contains(&r.await.unwrap()));
    }
    // The hostile tenant's own events failed by their own limits, never for want of an instance.
    for e in hostile.all_processed(20).await {
        let outcome = e["plugin_runs"][0]["outcome"].as_str().unwrap();
        assert!(["deadline", "fuel_exhausted"].contains(&outcome), "{e}");
    }
}

/// A plugin whose upstream is down returns `retryable: true`: its event is tried again with
/// backoff and delivered once the upstream is back; one that stays down fails after the
/// attempt budget with the last reason, every attempt recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_returning_retryable_once_then_succeeding_is_delivered() {
    let mut config = test_config(&hookhost_tests::fresh_database("retryable").await);
    config.plugin_retry_backoff = Duration::from_millis(200);
    config.plugin_attempts = 5;
    let mut s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    assert_eq!(s.upload_named("flaky", plugins::FLAKY_UPSTREAM).await.0, 202);
    assert_eq!(s.call(Method::POST, "/plugins/flaky/versions/1/activate", None).await.0, 200);
    assert_eq!(s.put_kv("upstream:down", "crm answered 503").await, 204);

    s.call_status("CA1", "ringing").await;
    let id = s.events().await[0]["id"].as_str().unwrap().to_string();
    let e = s
        .server
        .eventually("a retryable failure recorded", || async {
            let e = s.event(&id).await;
            (e["plugin_runs"].as_array().is_some_and(|r| !r.is_empty())).then_some(e)
        })
        .await;
    assert_eq!(e["plugin_runs"][0]["outcome"], "plugin_error", "{e}");
    assert!(e["plugin_runs"][0]["error"].as_str().unwrap().contains("(retryable)"), "{e}");
    assert_eq!(s.call(Method::DELETE, "/kv/upstream:down", None).await.0, 204, "the upstream is back");
    let got = s.receiver.next().await.json();
    assert_eq!(got["payload"]["call_sid"], "CA1");
    let e = s.processed(&id).await;
    assert_eq!(e["status"], "processed", "{e}");
    let runs = e["plugin_runs"].as_array().unwrap();
    assert_eq!(runs.last().unwrap()["outcome"], "ok", "{e}");

    // Down for good: five attempts, then failed with the last reason.
    assert_eq!(s.put_kv("upstream:down", "crm answered 503").await, 204);
    s.call_status("CA2", "ringing").await;
    let id = s.events().await.last().unwrap()["id"].as_str().unwrap().to_string();
    let e = s.processed(&id).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert!(e["error"].as_str().unwrap().contains("after 5 attempts"), "{e}");
    assert_eq!(e["plugin_runs"].as_array().unwrap().len(), 5, "{e}");
    assert!(s.receiver.next_within(Duration::from_millis(200)).await.is_none(), "nothing of it delivered");
}

/// A burst of uploads of distinct components while the provider keeps calling: every callback
/// is answered, the compile budget takes them one at a time, and the quotas hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_uploads_keeps_provider_requests_answered_and_quotas_hold() {
    let mut config = test_config(&hookhost_tests::fresh_database("uploads").await);
    config.max_plugin_versions = 6;
    config.max_plugins = 2;
    let s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    let callbacks = |tag: &'static str| {
        let s = &s;
        async move {
            let mut latencies = Vec::new();
            for i in 0..40 {
                let started = std::time::Instant::now();
                let sid = format!("CA{tag}{i}");
                let r = s
                    .server
                    .twilio_status(&s.tenant, TWILIO_TOKEN, &[("CallSid", &sid), ("CallStatus", "ringing")])
                    .await;
                assert_eq!(r.status(), 200);
                latencies.push(started.elapsed());
            }
            latencies.sort();
            (latencies[20], latencies[39])
        }
    };
    let quiet = callbacks("Q").await;
    let uploads: Vec<_> = (0..8)
        .map(|i| {
            let (server, tenant, key) = (s.server.clone_client(), s.tenant.clone(), s.key.clone());
            tokio::spawn(async move {
                let r = server
                    .authed(Method::POST, &format!("/v1/tenants/{tenant}/plugins/burst"), &key)
                    .header("content-type", "application/wasm")
                    .body(components::distinct(plugins::PASSTHROUGH, i))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let during = callbacks("U").await;
    let (created, over) = created_or_refused(uploads, 202, "plugin_versions").await;
    assert_eq!((created, over), (6, 2), "six versions, the quota; the rest refused");
    for v in 1..=6 {
        assert_eq!(s.server.compiled(&s.tenant, &s.key, "burst", v).await["state"], "ready");
    }
    eprintln!(
        "provider callbacks: alone p50 {:?} max {:?}; during the upload burst p50 {:?} max {:?}",
        quiet.0, quiet.1, during.0, during.1
    );

    // A third plugin passes the quota of two; an inactive version can be deleted, the active one not.
    assert_eq!(s.upload_named("second", plugins::PASSTHROUGH).await.0, 202);
    let (status, body) = s.upload_named("third", plugins::PASSTHROUGH).await;
    assert_eq!((status, &body["error"]["quota"]), (409, &json!("plugins")), "{body}");
    assert_eq!(s.call(Method::POST, "/plugins/burst/versions/2/activate", None).await.0, 200);
    assert_eq!(s.call(Method::DELETE, "/plugins/burst/versions/2", None).await.0, 409);
    assert_eq!(s.call(Method::DELETE, "/plugins/burst/versions/1", None).await.0, 204);
    assert_eq!(s.call(Method::DELETE, "/plugins/burst/versions/1", None).await.0, 404);
    let (status, _) = upload_bytes(&s, "burst", components::distinct(plugins::PASSTHROUGH, 100)).await;
    assert_eq!(status, 202, "a deleted version frees its place");
}

/// The process's resident memory, bytes (the server runs in this process).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
    kb.unwrap_or(0) * 1024
}

/// A metric's value from `/metrics`.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).unwrap().parse().unwrap()
}

/// Many distinct uploads no longer grow the compiled-code cache without bound: it holds at most
/// `HOOKHOST_PLUGIN_CACHE_BYTES`, and an evicted plugin is compiled again when it runs.
/// Prints the process's RSS before and after (`UPLOADS`, default 100, sets the count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_uploads_do_not_grow_the_compiled_code_cache_without_bound() {
    let uploads: u64 = std::env::var("UPLOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let cap = 2 << 20;
    let mut config = test_config(&hookhost_tests::fresh_database("cache").await);
    config.plugin_cache_bytes = cap;
    config.max_plugin_versions = uploads + 1;
    config.max_plugin_storage_bytes = 1 << 30;
    let mut s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    let before = rss();
    for i in 0..uploads {
        let (status, body) = upload_bytes(&s, "many", components::distinct(plugins::REDACT_PHONE, i)).await;
        assert_eq!(status, 202, "{body}");
    }
    let after = rss();
    let held = metric(&s.server, "hookhost_plugin_cache_bytes").await;
    let entries = metric(&s.server, "hookhost_plugin_cache_entries").await;
    eprintln!(
        "{uploads} distinct uploads of redact-phone: RSS {:.1} MiB -> {:.1} MiB; cache {entries} plugins, {:.2} MiB (cap {:.0} MiB)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        held / 1048576.0,
        cap as f64 / 1048576.0
    );
    assert!(held <= cap as f64, "{held}");
    assert!(entries < uploads as f64, "older plugins were evicted: {entries}");
    // The first version, long evicted, still runs: compiled again on demand.
    assert_eq!(s.call(Method::POST, "/plugins/many/versions/1/activate", None).await.0, 200);
    s.call_status("CA1", "ringing").await;
    assert_eq!(s.receiver.next().await.json()["payload"]["call_sid"], "CA1");
}

/// 1,000 endpoint creations, fifty at a time, by a tenant that wants to multiply each event:
/// exactly the cap is created, the rest refused with 409 naming the quota. Sinks likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_endpoints_are_refused_past_the_cap() {
    let s = Setup::new(&["*"]).await; // one endpoint already
    let mut created = 1;
    let mut refused = 0;
    for wave in 0..20 {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                let (server, tenant, key) = (s.server.clone_client(), s.tenant.clone(), s.key.clone());
                tokio::spawn(async move {
                    let url = format!("http://127.0.0.1:9/hook/{wave}/{i}");
                    let r = server
                        .authed(Method::POST, &format!("/v1/tenants/{tenant}/endpoints"), &key)
                        .json(&json!({ "url": url, "event_types": ["*"] }))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let (c, r) = created_or_refused(batch, 201, "endpoints").await;
        (created, refused) = (created + c, refused + r);
    }
    assert_eq!((created, refused), (50, 951), "the default cap of 50 endpoints");
    let (_, listed) = s.call(Method::GET, "/endpoints", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 50);

    let sink = |n: usize| json!({ "name": format!("crm{n}"), "kind": "http-upsert", "base_url": "http://127.0.0.1:9", "object": "contacts" });
    for n in 0..20 {
        assert_eq!(s.call(Method::POST, "/sinks", Some(sink(n))).await.0, 201);
    }
    let (status, body) = s.call(Method::POST, "/sinks", Some(sink(20))).await;
    assert_eq!((status, &body["error"]["quota"]), (409, &json!("sinks")), "{body}");
    let (_, sinks) = s.call(Method::GET, "/sinks", None).await;
    let first = sinks["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(s.call(Method::DELETE, &format!("/sinks/{first}"), None).await.0, 204);
    assert_eq!(s.call(Method::POST, "/sinks", Some(sink(20))).await.0, 201, "room again");
}

/// One event sent to many endpoints: its body is stored once and shared by the deliveries;
/// an event whose copies would pass the fan-out budget fails with the reason, none enqueued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_body_is_shared_by_its_deliveries_and_fan_out_has_a_budget() {
    let mut config = test_config(&hookhost_tests::fresh_database("fanout").await);
    config.max_event_fanout_bytes = 3_000;
    let mut s = Setup::on(TestServer::start_with(config).await, &["call.ringing"]).await;
    let mut others = Vec::new();
    for _ in 0..2 {
        let receiver = Receiver::start().await;
        s.server.create_endpoint(&s.tenant, &s.key, &receiver.url, &["call.ringing"]).await;
        others.push(receiver);
    }
    s.call_status("CA1", "ringing").await;
    let first = s.receiver.next().await;
    for r in &mut others {
        assert_eq!(r.next().await.body, first.body, "the same body to every endpoint");
    }
    hookhost_tests::sqlx_any();
    let db = sqlx::AnyPool::connect(&s.server.database_url).await.unwrap();
    let event = first.json()["id"].as_str().unwrap().to_string();
    let bodies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bodies WHERE event_id = $1")
        .bind(&event)
        .fetch_one(&db)
        .await
        .unwrap();
    let inline: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE event_id = $1 AND kind = 'delivery' AND body IS NOT NULL")
            .bind(&event)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((bodies, inline), (1, 0), "stored once, referenced three times");

    // Three copies of a body of ~1.5 KB (its call id, twice) pass 3,000 bytes: failed, nothing sent.
    let long = format!("CA{}", "7".repeat(600));
    let r = s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &[("CallSid", &long), ("CallStatus", "ringing")]).await;
    assert_eq!(r.status(), 200);
    let id = s.events().await.last().unwrap()["id"].as_str().unwrap().to_string();
    let e = s.processed(&id).await;
    assert_eq!(e["status"], "failed", "{e}");
    let error = e["error"].as_str().unwrap();
    assert!(error.starts_with("output_limit") && error.contains("3 deliveries"), "{error}");
    assert!(s.receiver.next_within(Duration::from_millis(200)).await.is_none());
}

/// A sql sink is a connection the service opens for a tenant: it must not reach what the
/// operator did not allow that tenant — its own database above all. The operator's global
/// allow-list here is empty; one tenant is granted loopback on its ceiling, the other is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_sink_cannot_reach_what_the_operator_did_not_allow() {
    let mut config = test_config(&hookhost_tests::fresh_database("sqlsink").await);
    config.outbound_allow = Vec::new();
    let server = TestServer::start_with(config).await;
    let (hostile, key) = server.create_tenant("hostile").await;
    let sink = |url: &str| json!({ "name": "crm", "kind": "sql", "database_url": url, "table": "calls" });
    let create = |tenant: String, key: String, body: Value| {
        let server = server.clone_client();
        async move {
            let r = server
                .authed(Method::POST, &format!("/v1/tenants/{tenant}/sinks"), &key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    for (url, why) in [
        ("postgres://postgres:x@localhost:5432/test", "internal addresses"),
        ("postgres://postgres:x@127.0.0.1:5432/test", "internal address"),
        ("postgres://postgres:x@db.example.com/test?host=/var/run/postgresql", "\"host\" is not allowed"),
        ("postgres:///test?host=/var/run/postgresql", "host is required"),
        ("postgres://postgres:x@db.example.com/test?hostaddr=127.0.0.1", "\"hostaddr\" is not allowed"),
        ("postgres://postgres@127.0.0.1:5432/test", "a user and a password are required"),
        ("postgres://127.0.0.1/test", "a user and a password are required"),
    ] {
        let (status, body) = create(hostile.clone(), key.clone(), sink(url)).await;
        assert_eq!(status, 422, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{url}: {message}");
    }
    // Its endpoints cannot reach loopback either: the operator allowed nothing internal.
    let r = server
        .authed(Method::POST, &format!("/v1/tenants/{hostile}/endpoints"), &key)
        .json(&json!({ "url": "http://127.0.0.1:9/hook" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // The operator grants loopback to one tenant alone: its sink connects (real PostgreSQL),
    // and a refused connection is told in our words, not the server's.
    let Ok(pg) = sqlx::PgPool::connect(&hookhost_tests::postgres_url()).await else {
        eprintln!("SKIPPED the granted half: no PostgreSQL answers at {}", hookhost_tests::postgres_url());
        return;
    };
    drop(pg);
    let (granted, granted_key) = server.create_tenant("granted").await;
    let r = server
        .authed(Method::PUT, &format!("/v1/tenants/{granted}/ceiling"), hookhost_tests::ADMIN)
        .json(&json!({ "outbound_allow": ["127.0.0.0/8"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = server
        .authed(Method::POST, &format!("/v1/tenants/{granted}/endpoints"), &granted_key)
        .json(&json!({ "url": "http://127.0.0.1:9/hook" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the grant is this tenant's");
    let url = hookhost_tests::with_password(&hookhost_tests::postgres_url(), "sink-password");
    let table = format!("hookhost_grant_{}", &granted[4..16]);
    let body = json!({ "name": "crm", "kind": "sql", "database_url": url, "table": table });
    let (status, created) = create(granted.clone(), granted_key.clone(), body).await;
    assert_eq!(status, 201, "{created}");
    let mut missing = reqwest::Url::parse(&url).unwrap();
    missing.set_path("/no_such_database_here");
    let body = json!({ "name": "crm2", "kind": "sql", "database_url": missing.to_string(), "table": "calls" });
    let (status, refused) = create(granted.clone(), granted_key.clone(), body).await;
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("the database does not exist") && !message.contains("no_such_database_here"), "{message}");
    // The other tenant is still refused the same address.
    let (status, _) = create(hostile, key, sink(&url)).await;
    assert_eq!(status, 422);
    let pg = sqlx::PgPool::connect(&hookhost_tests::postgres_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"))).execute(&pg).await.unwrap();
}

/// Every example plugin fits the per-component caps and the default ceiling: each uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_plugin_fits_the_caps() {
    let s = Setup::new(&["*"]).await;
    for (name, path) in plugins::ALL {
        let (status, body) = upload_bytes(&s, name, std::fs::read(path).unwrap()).await;
        assert_eq!((status, body["state"].as_str()), (202, Some("ready")), "{name}: {body}");
    }
}

/// A hostile plugin cannot read what an earlier event — another tenant's — left in sandbox
/// memory, whatever the pool keeps mapped between instances (`HOOKHOST_PLUGIN_KEEP_RESIDENT`,
/// 32 MiB by default: kept pages are reset to the initial image, the rest unmapped).
/// `memory-snoop` fills its heap with a word and scans its whole linear memory for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_instance_never_sees_memory_an_earlier_event_wrote() {
    use hookhost::plugin::{Kv, Limits, PluginEngine, local};

    let limits = Limits::default();
    let engine = std::sync::Arc::new(PluginEngine::new(limits.clone()).unwrap());
    let snoop = engine.compile_in_turn(std::fs::read(plugins::MEMORY_SNOOP).unwrap()).await.unwrap();
    let secret: u64 = 0x5345_4352_4554_2d41;
    let (fill, probe) = (format!("{secret:016x}"), format!("{:016x}", secret ^ 0x5a5a_5a5a_5a5a_5a5a));
    let found = |tenant: &'static str, payload: Value| {
        let (engine, snoop, limits) = (&engine, &snoop, &limits);
        async move {
            let envelope =
                json!({ "id": "evt_snoop", "tenant_id": tenant, "event_type": "call.missed", "payload": payload });
            let event = local::event_from_envelope(&envelope).unwrap();
            let inv = engine.invoke(snoop, &event, limits, Kv::Map(Default::default())).await;
            let actions = inv.outcome.unwrap_or_else(|(f, m)| panic!("{} {m}", f.as_str()));
            local::actions_json(&event, &actions)[0]["deliver"]["payload"]["found"].as_u64().unwrap()
        }
    };
    // The scan works: an instance finds the 16 MiB it filled itself.
    assert!(found("ten_a", json!({ "mb": 16, "fill": fill, "probe": probe })).await >= 2 << 20);
    // Tenant A fills 40 MiB, past what a slot keeps mapped; B's next instances find none of it.
    assert_eq!(found("ten_a", json!({ "mb": 40, "fill": fill })).await, 0);
    for _ in 0..3 {
        assert_eq!(
            found("ten_b", json!({ "mb": 40, "probe": probe })).await,
            0,
            "a later instance read another event's memory"
        );
    }
}
