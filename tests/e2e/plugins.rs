//! Plugins in the sandbox: hostile ones are stopped with a recorded reason and the tenant's
//! next event still flows; invalid uploads are refused.

use hookhost_tests::{TestServer, plugins, test_config};
use serde_json::Value;

use crate::Setup;

async fn upload_ok(s: &Setup, path: &str) -> i64 {
    let (status, v) = s.server.upload_plugin(&s.tenant, &s.key, path).await;
    assert_eq!((status, v["state"].as_str()), (202, Some("ready")), "{v}");
    v["version"].as_i64().unwrap()
}

async fn last_event_id(s: &Setup) -> String {
    let events = s.events().await;
    events.last().unwrap()["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_forever_and_memory_hog_are_stopped_and_the_next_event_still_flows() {
    let mut s = Setup::new(&["*"]).await;
    assert_eq!(upload_ok(&s, plugins::SPIN_FOREVER).await, 1);
    s.call_status("CA1", "ringing").await;
    let spun = s.processed(&last_event_id(&s).await).await;
    assert_eq!(spun["status"], "failed");
    let outcome = spun["plugin_runs"][0]["outcome"].as_str().unwrap();
    assert!(outcome == "fuel_exhausted" || outcome == "deadline", "{outcome}");
    assert!(
        spun["error"].as_str().unwrap().contains("exhausted") || spun["error"].as_str().unwrap().contains("deadline")
    );

    assert_eq!(upload_ok(&s, plugins::MEMORY_HOG).await, 2);
    s.call_status("CA2", "ringing").await;
    let hogged = s.processed(&last_event_id(&s).await).await;
    assert_eq!(hogged["status"], "failed");
    assert_eq!(hogged["plugin_runs"][0]["outcome"], "memory_limit");
    assert_eq!(hogged["plugin_runs"][0]["plugin_version"], 2);
    assert!(hogged["error"].as_str().unwrap().contains("memory limit"));

    assert_eq!(upload_ok(&s, plugins::PASSTHROUGH).await, 3);
    s.call_status("CA3", "ringing").await;
    let got = s.receiver.next().await;
    assert_eq!(got.json()["payload"]["call_sid"], "CA3", "nothing of the failed events was delivered");
    let ok = s.processed(&last_event_id(&s).await).await;
    assert_eq!(ok["status"], "processed");
}

/// The noisy neighbour: one tenant's plugin spins until its 2 s deadline on every event; the
/// other tenant's events, sent after, are delivered while the spinning tenant's backlog is still
/// being worked through (at most `plugin_tenant_concurrency` of its events hold a slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_tenant_does_not_stop_another_tenants_events() {
    let server = TestServer::start_with(test_config(&hookhost_tests::fresh_database("two").await)).await;
    let hostile = Setup::on(server, &["*"]).await;
    assert_eq!(upload_ok(&hostile, plugins::SPIN_FOREVER).await, 1);
    let limits = serde_json::json!({ "fuel": 100_000_000_000u64, "timeout_ms": 3000 });
    assert_eq!(hostile.operator(reqwest::Method::PUT, "/ceiling", Some(limits.clone())).await.0, 200);
    let r = hostile
        .server
        .authed(reqwest::Method::PUT, &format!("/v1/tenants/{}/limits", hostile.tenant), &hostile.key)
        .json(&limits)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A second tenant on the same server, with a plugin of its own, set up before the storm.
    let (tenant, key) = hostile.server.create_tenant("calm").await;
    hostile.server.set_provider(&tenant, &key, "twilio", serde_json::json!({ "auth_token": "calm-token" })).await;
    assert_eq!(hostile.server.upload_plugin(&tenant, &key, plugins::PASSTHROUGH).await.0, 202);
    let mut receiver = hookhost_tests::Receiver::start().await;
    hostile.server.create_endpoint(&tenant, &key, &receiver.url, &["*"]).await;

    let alone = calm_round(&hostile.server, &tenant, &mut receiver, "ALONE").await;
    // 40 events that each spin for 3 s: 30 s of work at 4 in flight.
    for i in 0..40 {
        hostile.call_status(&format!("CAH{i}"), "ringing").await;
    }
    let beside = calm_round(&hostile.server, &tenant, &mut receiver, "BESIDE").await;
    let unfinished = hostile.server.unfinished_jobs("plugin").await;
    println!(
        "calm tenant's callback-to-delivery latencies alone: {alone:?}; beside a spinning tenant: {beside:?}; hostile plugin jobs still unfinished: {unfinished}"
    );
    assert!(unfinished > 0, "the calm tenant's events did not wait for the hostile tenant's backlog");
}

/// Five callbacks of the calm tenant, one after another, each timed from the provider's POST
/// to the endpoint's receipt.
async fn calm_round(
    server: &TestServer,
    tenant: &str,
    receiver: &mut hookhost_tests::Receiver,
    round: &str,
) -> Vec<std::time::Duration> {
    let mut latencies = Vec::new();
    for i in 0..5 {
        let sid = format!("CA{round}{i}");
        let started = std::time::Instant::now();
        let r = server.twilio_status(tenant, "calm-token", &[("CallSid", &sid), ("CallStatus", "ringing")]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(receiver.next().await.json()["payload"]["call_sid"], sid.as_str());
        latencies.push(started.elapsed());
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_uploads_are_refused_with_a_reason() {
    let s = Setup::new(&["*"]).await;
    let path = format!("/v1/tenants/{}/plugins", s.tenant);
    let post = |ct: &'static str, body: Vec<u8>| {
        s.server.authed(reqwest::Method::POST, &path, &s.key).header("content-type", ct).body(body).send()
    };
    let r = post("application/wasm", b"definitely not wasm".to_vec()).await.unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("not a valid plugin component"), "{v}");

    // A core module (not a component).
    let r = post("application/wasm", b"\0asm\x01\0\0\0".to_vec()).await.unwrap();
    assert_eq!(r.status(), 422);

    let r = post("application/octet-stream", std::fs::read(plugins::PASSTHROUGH).unwrap()).await.unwrap();
    assert_eq!(r.status(), 415);

    let t = s.server.get_json(&format!("/v1/tenants/{}", s.tenant), &s.key).await;
    assert!(t["active_plugin"].is_null(), "a refused upload changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_runner_reports_actions_and_each_limit_by_name() {
    use hookhost::plugin::{Limits, local};
    let event = local::event_from_envelope(&serde_json::json!({
        "event_type": "call.missed",
        "payload": { "call_sid": "CA1", "from": "+14158675309" }
    }))
    .unwrap();
    let bytes = std::fs::read(plugins::REDACT_PHONE).unwrap();
    let report = local::run(bytes, &event, Default::default(), Limits::default()).await.unwrap();
    assert!(report.ok);
    assert_eq!(report.json["outcome"], "ok");
    assert_eq!(report.json["actions"][0]["deliver"]["payload"]["from"], "+*******5309");
    assert!(report.json["logs"].as_str().unwrap().contains("masked 1 phone fields"));

    let limits = Limits { fuel: 5_000_000, ..Limits::default() };
    let report =
        local::run(std::fs::read(plugins::SPIN_FOREVER).unwrap(), &event, Default::default(), limits).await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.json["outcome"], "fuel_exhausted");

    // With fuel out of the way, the wall-clock deadline stops it.
    let limits = Limits { fuel: u64::MAX / 2, timeout: std::time::Duration::from_millis(100), ..Limits::default() };
    let report =
        local::run(std::fs::read(plugins::SPIN_FOREVER).unwrap(), &event, Default::default(), limits).await.unwrap();
    assert_eq!(report.json["outcome"], "deadline");

    assert!(local::event_from_envelope(&serde_json::json!({ "payload": {} })).is_err());
}

/// `hookhost plugin new`'s crate builds for wasm32-wasip2 as it is and runs in the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_from_the_template_builds_and_runs() {
    use hookhost::plugin::template::{self, Lang, SdkSource};
    use hookhost::plugin::{Limits, local};

    let parent = hookhost_tests::temp_dir("template");
    let dir = template::create(&parent, "tag-calls", Lang::Rust, &SdkSource::from_build(Lang::Rust)).unwrap();
    // Build beside the example plugins, with their lock file, so the dependencies are reused.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::copy(repo.join("plugins/Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target = std::path::Path::new(plugins::PASSTHROUGH).ancestors().nth(3).unwrap().to_path_buf();
    let build_dir = dir.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&build_dir)
            .env("CARGO_TARGET_DIR", &target)
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "the template did not build");
    let wasm = std::path::Path::new(plugins::PASSTHROUGH).with_file_name("tag_calls.wasm");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("event.json")).unwrap()).unwrap();
    let event = local::event_from_envelope(&fixture).unwrap();
    let report =
        local::run(std::fs::read(&wasm).unwrap(), &event, Default::default(), Limits::default()).await.unwrap();
    assert_eq!(report.json["actions"][0]["deliver"]["payload"]["handled_by"], "TagCalls", "{}", report.json);
}

/// `hookhost plugin new --lang python`: its test passes, it builds with the SDK's wrapper over
/// componentize-py (the test build's toolchain), and it runs on its own fixture in the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_python_plugin_from_the_template_tests_builds_and_runs() {
    use hookhost::plugin::template::{self, Lang, SdkSource};

    let parent = hookhost_tests::temp_dir("template-py");
    let dir = template::create(&parent, "tag-calls", Lang::Python, &SdkSource::from_build(Lang::Python)).unwrap();
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("sdk-python");
    let python =
        std::path::Path::new(plugins::PY_REDACT_PHONE).ancestors().nth(2).unwrap().join("python-toolchain/bin/python");
    let run = |args: Vec<&'static str>| {
        let (dir, sdk, python) = (dir.clone(), sdk.clone(), python.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .args(args)
                .current_dir(dir)
                .env("PYTHONPATH", sdk)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .status()
                .unwrap()
        })
    };
    assert!(run(vec!["-m", "unittest", "-q"]).await.unwrap().success(), "the template's own test");
    assert!(run(vec!["-m", "hookhost_sdk.build", "app.py", "-o", "tag_calls.wasm"]).await.unwrap().success());
    runs_on_its_fixture(&dir).await;
}

/// `hookhost plugin new --lang js`: its test passes, it builds with the SDK's `hookhost-build`
/// (componentize-js), and it runs on its own fixture in the sandbox. Offline: the project's
/// `node_modules` is the checkout's (what `npm install` gives it: the SDK and its toolchain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_javascript_plugin_from_the_template_tests_builds_and_runs() {
    use hookhost::plugin::template::{self, Lang, SdkSource};

    assert!(!plugins::JS.is_empty(), "the test build installed the npm workspace");
    let parent = hookhost_tests::temp_dir("template-js");
    let dir = template::create(&parent, "tag-calls", Lang::Js, &SdkSource::from_build(Lang::Js)).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::os::unix::fs::symlink(root.join("node_modules"), dir.join("node_modules")).unwrap();
    let npm = |script: &'static str| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("npm").args(["run", "--silent", script]).current_dir(dir).status().unwrap()
        })
    };
    assert!(npm("test").await.unwrap().success(), "the template's own test");
    assert!(npm("build").await.unwrap().success(), "the template builds");
    runs_on_its_fixture(&dir).await;
}

/// A Python or JavaScript template project, built into `tag_calls.wasm`, runs on the fixture it
/// wrote in the real sandbox: it marks the payload and logs one line.
async fn runs_on_its_fixture(dir: &std::path::Path) {
    use hookhost::plugin::{Limits, local};

    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("event.json")).unwrap()).unwrap();
    let event = local::event_from_envelope(&fixture).unwrap();
    let bytes = std::fs::read(dir.join("tag_calls.wasm")).unwrap();
    let report = local::run(bytes, &event, Default::default(), Limits::default()).await.unwrap();
    assert_eq!(report.json["actions"][0]["deliver"]["payload"]["handled_by"], "tag-calls", "{}", report.json);
    assert_eq!(report.json["logs"], "info: handled call.missed\n");
}
