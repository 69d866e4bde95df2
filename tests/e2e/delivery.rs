//! Delivery: the redact-phone pipeline end to end, signatures, retries, permanent failures,
//! and pending deliveries surviving a restart.

use std::time::Duration;

use hookhost_tests::{TestServer, plugins, test_config, verify_standard_webhook};

use crate::Setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_twilio_callback_flows_through_redact_phone_to_a_signed_delivery() {
    let mut s = Setup::new(&["call.missed"]).await;
    let (status, v) = s.server.upload_plugin(&s.tenant, &s.key, plugins::REDACT_PHONE).await;
    assert_eq!((status, v["version"].as_i64(), v["active"].as_bool()), (202, Some(1), Some(true)), "{v}");

    s.call_status("CA5550001", "no-answer").await;
    let got = s.receiver.next().await;
    assert!(verify_standard_webhook(&s.secret, &got.headers, &got.body), "signature verifies with the endpoint secret");
    assert!(!verify_standard_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &got.headers, &got.body));
    let ts: i64 = got.header("webhook-timestamp").parse().unwrap();
    assert!((ts - hookhost_tests::now_s()).abs() < 600);

    let env = got.json();
    let event_id = s.event_id_of("call.missed").await;
    assert_eq!(got.header("webhook-id"), event_id);
    assert_eq!(env["id"], event_id.as_str());
    assert_eq!(env["event_type"], "call.missed");
    assert_eq!(env["tenant_id"], s.tenant.as_str());
    assert_eq!(env["is_test"], false);
    assert_eq!(env["payload"]["from"], "+*******5309");
    assert_eq!(env["payload"]["to"], "+*******1212");
    assert_eq!(env["payload"]["call_sid"], "CA5550001");
    assert_eq!(env["payload"]["reason"], "no-answer");

    // The stored canonical event keeps the original; the run and the attempt are recorded.
    let detail = s.event(&event_id).await;
    assert_eq!(detail["event"]["payload"]["from"], "+14158675309");
    assert_eq!(detail["status"], "processed");
    assert_eq!(detail["plugin_runs"][0]["outcome"], "ok");
    assert!(detail["plugin_runs"][0]["fuel_used"].as_i64().unwrap() > 0);
    let attempts = s.attempts_n(&event_id, 1).await;
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["outcome"], "succeeded");

    // What happened shows in the metrics (counters are per process: at least this test's).
    let metrics = s.server.http.get(s.server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "hookhost_ingress_total{provider=\"twilio\",verdict=\"accepted\"}",
        "hookhost_delivery_attempts_total{kind=\"delivery\",outcome=\"succeeded\",status_class=\"2xx\"}",
        "hookhost_plugin_invocations_total{outcome=\"ok\"}",
        "hookhost_plugin_fuel_bucket{outcome=\"ok\",le=\"+Inf\"}",
        "hookhost_plugin_seconds_count{outcome=\"ok\"}",
        "# TYPE hookhost_job_oldest_pending_seconds gauge",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_plugin_the_canonical_event_is_delivered_as_is_to_subscribed_endpoints_only() {
    let mut s = Setup::new(&["call.missed"]).await;
    s.call_status("CA1", "ringing").await; // not subscribed
    s.call_status("CA1", "no-answer").await;
    let got = s.receiver.next().await;
    let env = got.json();
    assert_eq!(env["event_type"], "call.missed");
    assert_eq!(env["payload"]["from"], "+14158675309");
    assert!(s.receiver.next_within(Duration::from_millis(300)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_until_a_200() {
    let mut s = Setup::new(&["*"]).await;
    s.receiver.script(&[500, 503]);
    s.call_status("CA1", "completed").await;
    let a = s.receiver.next().await;
    let b = s.receiver.next().await;
    let c = s.receiver.next().await;
    assert_eq!((a.answered, b.answered, c.answered), (500, 503, 200));
    assert_eq!(a.header("webhook-id"), c.header("webhook-id"), "retries keep the message id");
    assert_eq!(a.body, c.body);
    let id = s.single_event_id().await;
    let attempts = s.attempts_n(&id, 3).await;
    let outcomes: Vec<_> =
        attempts.iter().map(|a| (a["status_code"].as_i64(), a["outcome"].as_str().unwrap())).collect();
    assert_eq!(outcomes, [(Some(500), "retry"), (Some(503), "retry"), (Some(200), "succeeded")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_a_permanent_failure_and_is_not_retried() {
    let mut s = Setup::new(&["*"]).await;
    s.receiver.set_default(400);
    s.call_status("CA1", "completed").await;
    assert_eq!(s.receiver.next().await.answered, 400);
    let id = s.single_event_id().await;
    let attempts = s.attempts_n(&id, 1).await;
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["status_code"], 400);
    // The schedule is 50/100/200 ms: a retry would have come well within a second.
    assert!(s.receiver.next_within(Duration::from_millis(800)).await.is_none());
    assert_eq!(s.attempts(&id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_run_out_into_the_dead_letter() {
    let mut s = Setup::new(&["*"]).await;
    s.receiver.set_default(503);
    s.call_status("CA1", "completed").await;
    let id = s.single_event_id().await;
    // 1 try + 3 retries (schedule 50ms,100ms,200ms).
    let attempts = s.attempts_n(&id, 4).await;
    assert_eq!(attempts[3]["outcome"], "dead");
    for _ in 0..4 {
        s.receiver.next().await;
    }
    assert!(s.receiver.next_within(Duration::from_millis(800)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_go_out_after_a_restart() {
    let url = hookhost_tests::fresh_database("restart").await;
    let mut config = test_config(&url);
    // Long enough that the first process cannot retry before it is stopped.
    config.retry_schedule = hookhost::config::parse_schedule("2s,2s").unwrap();
    let mut s = Setup::on(TestServer::start_with(config.clone()).await, &["*"]).await;
    s.receiver.set_default(503);
    s.call_status("CA1", "completed").await;
    let first = s.receiver.next().await;
    assert_eq!(first.answered, 503);
    let id = s.single_event_id().await;
    s.attempts_n(&id, 1).await;

    let Setup { server, tenant, key, mut receiver, .. } = s;
    server.stop().await;
    receiver.set_default(200);

    let server = TestServer::start_with(config).await;
    let again = receiver.next().await;
    assert_eq!(again.answered, 200);
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    let path = format!("/v1/tenants/{tenant}/deliveries?event_id={id}");
    let outcomes: Vec<String> = server
        .eventually("the second attempt to be recorded", || async {
            let v = server.get_json(&path, &key).await;
            let a = v["data"].as_array().unwrap().clone();
            (a.len() >= 2).then(|| a.iter().map(|a| a["outcome"].as_str().unwrap().to_string()).collect())
        })
        .await;
    assert_eq!(outcomes, ["retry", "succeeded"]);
    server.stop().await;
}
