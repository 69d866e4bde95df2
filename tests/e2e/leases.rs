//! Leases under work that outlasts them: renewed while the work runs, fenced when it ends.

use std::time::Duration;

use hookhost_tests::{Receiver, TestServer, plugins, test_config};
use reqwest::Method;
use serde_json::json;

use crate::Setup;

/// A plugin job whose work (2.5 s) outlasts its lease (1 s) is not claimed again while it runs:
/// the plugin runs once, its event is processed once, one delivery arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_longer_than_its_lease_runs_once() {
    let mut config = test_config(&hookhost_tests::fresh_database("lease").await);
    config.job_lease = Duration::from_secs(1);
    let mut s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    // The slow work: the plugin fetches from a CRM that answers after 2.5 s.
    let mut slow = Receiver::start().await;
    slow.set_delay(Duration::from_millis(2500));
    let ceiling = json!({ "http_allow": ["127.0.0.1"], "timeout_ms": 5000, "http_timeout_ms": 4000 });
    assert_eq!(s.operator(Method::PUT, "/ceiling", Some(ceiling)).await.0, 200);
    assert_eq!(
        s.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 5000, "http_timeout_ms": 4000 }))).await.0,
        200
    );
    assert_eq!(s.upload_named("lookup", plugins::LOOKUP_CALLER).await.0, 202);
    assert_eq!(s.call(Method::POST, "/plugins/lookup/versions/1/activate", None).await.0, 200);
    assert_eq!(s.put_kv("crm_url", &slow.url).await, 204);

    s.call_status("CA1", "ringing").await;
    let got = s.receiver.next().await.json();
    assert_eq!(got["payload"]["call_id"], "CA1");
    let e = s.processed(got["id"].as_str().unwrap()).await;
    assert_eq!(e["plugin_runs"].as_array().unwrap().len(), 1, "the plugin ran once: {e}");
    assert!(e["plugin_runs"][0]["wall_us"].as_i64().unwrap() > 2_000_000, "it outlasted its lease: {e}");
    slow.next().await;
    assert!(slow.next_within(Duration::from_millis(500)).await.is_none(), "the crm was asked once");
    assert!(s.receiver.next_within(Duration::from_millis(500)).await.is_none(), "delivered once");
}
