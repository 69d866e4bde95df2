//! Uploads answer before their component is compiled (`202`, state `compiling`, then `ready` or
//! `invalid` with the reason), compiled components are kept on disk so a restart does not
//! compile them again, and versions a stop cut short are compiled at the next start.

use reqwest::Method;
use serde_json::{Value, json};

use crate::Setup;
use hookhost_tests::{TestServer, plugins, test_config};

/// `hookhost_plugin_compiles_total` by `from` (`bytes`, `disk`).
async fn compiles(server: &TestServer) -> (u64, u64) {
    let text = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |from: &str| {
        let prefix = format!("hookhost_plugin_compiles_total{{from=\"{from}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap().parse().unwrap()
    };
    (count("bytes"), count("disk"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_answers_compiling_then_ready_and_a_restart_loads_it_from_disk() {
    let database = hookhost_tests::fresh_database("artifacts").await;
    let artifacts = hookhost_tests::temp_dir("artifacts");
    let config = || {
        let mut c = test_config(&database);
        c.plugin_artifacts = Some(artifacts.clone());
        c
    };
    let s = Setup::on(TestServer::start_with(config()).await, &["call.missed"]).await;
    let r = s
        .server
        .authed(Method::POST, &format!("/v1/tenants/{}/plugins", s.tenant), &s.key)
        .header("content-type", "application/wasm")
        .body(std::fs::read(plugins::REDACT_PHONE).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["state"].as_str(), body["active"].as_bool()), (Some("compiling"), Some(false)), "{body}");
    let ready = s.server.compiled(&s.tenant, &s.key, "default", 1).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    let (_, plugin) = s.call(Method::GET, "/plugins/default", None).await;
    assert_eq!(plugin["active_version"], 1, "uploaded to be active: active once ready");
    assert_eq!(compiles(&s.server).await, (1, 0), "compiled once, from its bytes");
    assert_eq!(std::fs::read_dir(&artifacts).unwrap().count(), 1, "and kept on disk");

    // A restart on the same database and directory: the plugin runs without a compile.
    let Setup { server, tenant, key, receiver, endpoint, secret } = s;
    server.stop().await;
    let server = TestServer::start_with(config()).await;
    let mut s = Setup { server, tenant, key, receiver, endpoint, secret };
    s.call_status("CArestart1", "no-answer").await;
    let got = s.receiver.next().await.json();
    assert!(got["payload"]["from"].as_str().unwrap().starts_with("+*"), "redact-phone ran: {got}");
    assert_eq!(compiles(&s.server).await, (0, 1), "loaded from disk, not compiled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_a_stop_left_compiling_are_compiled_at_the_next_start() {
    let database = hookhost_tests::fresh_database("recover").await;
    let s = Setup::on(TestServer::start_with(test_config(&database)).await, &["call.missed"]).await;
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, plugins::REDACT_PHONE).await.0, 202);
    let (_, invalid) =
        s.server.upload_component(&s.tenant, &s.key, Some("broken"), b"\0asm\x0d\0\x01\0garbage".to_vec()).await;
    assert_eq!(invalid["state"], "invalid", "{invalid}");
    let Setup { server, tenant, key, receiver, endpoint, secret } = s;
    server.stop().await;
    // As if the process had died while compiling both: stored, not yet compiled, not active.
    hookhost_tests::sqlx_any();
    let db = sqlx::AnyPool::connect(&database).await.unwrap();
    sqlx::query("UPDATE plugins SET state = 'compiling', state_reason = NULL, active = 0, activate_when_ready = 1")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    let server = TestServer::start_with(test_config(&database)).await;
    let mut s = Setup { server, tenant, key, receiver, endpoint, secret };
    assert_eq!(s.server.compiled(&s.tenant, &s.key, "default", 1).await["state"], "ready");
    let broken = s.server.compiled(&s.tenant, &s.key, "broken", 1).await;
    assert_eq!(broken["state"], "invalid", "{broken}");
    assert!(broken["reason"].as_str().unwrap().contains("not a valid plugin component"), "{broken}");
    let (_, plugin) = s.call(Method::GET, "/plugins/default", None).await;
    assert_eq!(plugin["active_version"], 1, "{plugin}");
    s.call_status("CArecover1", "no-answer").await;
    assert!(s.receiver.next().await.json()["payload"]["from"].as_str().unwrap().starts_with("+*"));
    let (_, broken) = s.call(Method::GET, "/plugins/broken", None).await;
    assert!(broken["active_version"].is_null(), "an invalid version is never made active: {broken}");
    assert_eq!(s.call(Method::POST, "/plugins/broken/versions/1/activate", Some(json!({}))).await.0, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_over_the_old_16_mib_limit_uploads_and_runs() {
    let mut s = Setup::new(&["call.missed"]).await;
    let big = hookhost_tests::components::padded(plugins::REDACT_PHONE, 20 << 20);
    assert!(big.len() > 20 << 20);
    let (status, v) = s.server.upload_component(&s.tenant, &s.key, None, big).await;
    assert_eq!((status, v["state"].as_str(), v["active"].as_bool()), (202, Some("ready"), Some(true)), "{v}");
    assert!(v["size_bytes"].as_i64().unwrap() > 20 << 20);
    s.call_status("CAbig1", "no-answer").await;
    assert!(s.receiver.next().await.json()["payload"]["from"].as_str().unwrap().starts_with("+*"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_plugins_upload_and_run_on_a_real_callback() {
    let mut s = Setup::new(&["call.missed"]).await;
    for (n, (lang, component)) in
        [("Python", plugins::PY_REDACT_PHONE), ("JavaScript", plugins::JS_REDACT_PHONE)].into_iter().enumerate()
    {
        let (status, v) = s.server.upload_plugin(&s.tenant, &s.key, component).await;
        assert_eq!(
            (status, v["state"].as_str(), v["active"].as_bool()),
            (202, Some("ready"), Some(true)),
            "{lang}: {v}"
        );
        assert!(v["size_bytes"].as_i64().unwrap() > 10 << 20, "componentize-py and -js components are large: {v}");
        s.call_status(&format!("CAlang{n}"), "no-answer").await;
        let got = s.receiver.next().await;
        assert!(hookhost_tests::verify_standard_webhook(&s.secret, &got.headers, &got.body));
        assert_eq!(got.json()["payload"]["from"], "+*******5309", "the {lang} plugin masked it");
        assert_eq!(got.json()["payload"]["call_id"], format!("CAlang{n}"));
    }
}
