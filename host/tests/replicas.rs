//! Real `hookhost serve` processes (the built binary) under load, killed with SIGKILL: several
//! replicas on one PostgreSQL, and one process on SQLite restarted after the kill. What they
//! count: every callback answered 2xx is delivered at least once; with no fault, exactly once.
//! Knob: `REPLICA_CALLBACKS` (default 2000 per run).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookhost_tests::load::{Posted, post_completed_calls};
use hookhost_tests::{Process, Receiver, TestServer};

/// Every replica is reached, and signed for, under one public name (as behind a balancer).
const PUBLIC_URL: &str = "https://hooks.example.com";
const TOKEN: &str = "replica-token";
/// Generous: the test asserts what arrives, not how fast.
const DELIVERY_PATIENCE: Duration = Duration::from_secs(300);

fn callbacks() -> usize {
    std::env::var("REPLICA_CALLBACKS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

/// One `hookhost serve` process of this build on `database_url`.
async fn replica(name: &str, database_url: &str) -> Process {
    Process::start(env!("CARGO_BIN_EXE_hookhost"), name, database_url, PUBLIC_URL, &[]).await
}

/// A tenant with Twilio configured and one endpoint on `receiver`, set up through `via`.
async fn tenant(via: &TestServer, receiver: &Receiver) -> String {
    let (tenant, key) = via.create_tenant("replicas").await;
    via.set_provider(&tenant, &key, "twilio", serde_json::json!({ "auth_token": TOKEN })).await;
    via.create_endpoint(&tenant, &key, &receiver.url, &["*"]).await;
    tenant
}

/// Deliveries per call sid, read until every sid in `owed` has arrived (then a little longer,
/// to see late duplicates).
async fn deliveries(
    receiver: &mut Receiver,
    owed: &HashSet<String>,
    logs: &[&std::path::Path],
) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let started = Instant::now();
    while owed.iter().any(|sid| !seen.contains_key(sid)) {
        let missing = owed.iter().filter(|sid| !seen.contains_key(*sid)).count();
        assert!(
            started.elapsed() < DELIVERY_PATIENCE,
            "{missing} accepted callbacks never delivered; replica logs: {logs:?}"
        );
        if let Some(r) = receiver.next_within(Duration::from_secs(1)).await {
            let sid = r.json()["payload"]["call_sid"].as_str().unwrap_or_default().to_string();
            *seen.entry(sid).or_default() += 1;
        }
    }
    while let Some(r) = receiver.next_within(Duration::from_millis(1500)).await {
        let sid = r.json()["payload"]["call_sid"].as_str().unwrap_or_default().to_string();
        *seen.entry(sid).or_default() += 1;
    }
    seen
}

fn report(run: &str, accepted: usize, refused: usize, seen: &HashMap<String, usize>) -> usize {
    let twice = seen.values().filter(|&&c| c > 1).count();
    let total: usize = seen.values().sum();
    println!(
        "{run}: {accepted} callbacks answered 2xx, {refused} refused; {} events delivered ({total} deliveries), {twice} more than once",
        seen.len()
    );
    twice
}

async fn postgres_or_skip() -> Option<String> {
    match hookhost_tests::postgres_database("replicas").await {
        Ok(url) => Some(url),
        Err(e) => {
            eprintln!(
                "!!! SKIPPING the PostgreSQL replica test: {} does not answer ({e})",
                hookhost_tests::postgres_url()
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_deliver_every_accepted_event_exactly_once() {
    let Some(url) = postgres_or_skip().await else { return };
    let (a, b) = (replica("a", &url).await, replica("b", &url).await);
    let mut receiver = Receiver::start().await;
    let tenant = tenant(&a.client, &receiver).await;
    let targets = Arc::new(vec![
        TestServer::external(&a.client.base, PUBLIC_URL, &url),
        TestServer::external(&b.client.base, PUBLIC_URL, &url),
    ]);
    let Posted { accepted, refused, .. } =
        post_completed_calls(targets, &tenant, TOKEN, callbacks(), 16, Arc::default()).await;
    assert_eq!(refused, 0, "no replica was harmed, none may refuse");
    let seen = deliveries(&mut receiver, &accepted, &[&a.log, &b.log]).await;
    assert_eq!(report("2 replicas, no faults", accepted.len(), refused, &seen), 0, "an event was delivered twice");
    assert_eq!(seen.len(), accepted.len(), "nothing but the accepted callbacks was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_run_loses_no_accepted_event() {
    let Some(url) = postgres_or_skip().await else { return };
    let a = replica("a", &url).await;
    let b = replica("b", &url).await;
    let mut c = replica("c", &url).await;
    let mut receiver = Receiver::start().await;
    let tenant = tenant(&a.client, &receiver).await;
    let targets: Arc<Vec<TestServer>> =
        Arc::new([&a, &b, &c].iter().map(|r| TestServer::external(&r.client.base, PUBLIC_URL, &url)).collect());
    let n = callbacks();
    let answered = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn({
        let (targets, tenant, answered) = (targets.clone(), tenant.clone(), answered.clone());
        async move { post_completed_calls(targets, &tenant, TOKEN, n, 16, answered).await }
    });
    while answered.load(Ordering::SeqCst) < n / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.kill();
    let Posted { accepted, refused, .. } = load.await.unwrap();
    let seen = deliveries(&mut receiver, &accepted, &[&a.log, &b.log, &c.log]).await;
    report("3 replicas, one SIGKILLed after a third of the load", accepted.len(), refused, &seen);
    assert!(refused > 0, "the killed replica's share was refused after the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_under_load_delivers_every_accepted_event_after_restart() {
    let url = format!("sqlite://{}", hookhost_tests::temp_dir("crash").join("hookhost.db").display());
    let mut first = replica("first", &url).await;
    let mut receiver = Receiver::start().await;
    let tenant = tenant(&first.client, &receiver).await;
    let n = callbacks();
    let answered = Arc::new(AtomicUsize::new(0));
    let targets = Arc::new(vec![TestServer::external(&first.client.base, PUBLIC_URL, &url)]);
    let load = tokio::spawn({
        let (tenant, answered) = (tenant.clone(), answered.clone());
        async move { post_completed_calls(targets, &tenant, TOKEN, n, 16, answered).await }
    });
    while answered.load(Ordering::SeqCst) < n / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let Posted { accepted, refused, .. } = load.await.unwrap();
    let second = replica("second", &url).await;
    let seen = deliveries(&mut receiver, &accepted, &[&first.log, &second.log]).await;
    report("SQLite, SIGKILLed halfway, restarted", accepted.len(), refused, &seen);
    assert!(refused > 0, "callbacks after the kill were refused");
}

/// Work longer than its lease, on two replicas: each plugin job asks a CRM that answers after
/// 2.5 s while leases last 1 s. Renewed leases keep every job with the replica running it, so
/// each event's plugin runs once (one CRM request each) and each event is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_work_longer_than_its_lease_once() {
    let Some(url) = postgres_or_skip().await else { return };
    let env = [("HOOKHOST_JOB_LEASE", "1s")];
    let bin = env!("CARGO_BIN_EXE_hookhost");
    let a = Process::start(bin, "lease-a", &url, PUBLIC_URL, &env).await;
    let b = Process::start(bin, "lease-b", &url, PUBLIC_URL, &env).await;
    let mut receiver = Receiver::start().await;
    let mut crm = Receiver::start().await;
    crm.set_delay(Duration::from_millis(2500));
    let tenant = tenant(&a.client, &receiver).await;
    let admin = hookhost_tests::ADMIN;
    let ceiling = serde_json::json!({ "http_allow": ["127.0.0.1"], "timeout_ms": 5000, "http_timeout_ms": 4000 });
    let r = a
        .client
        .authed(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/ceiling"), admin)
        .json(&ceiling)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let limits = serde_json::json!({ "timeout_ms": 5000, "http_timeout_ms": 4000 });
    let r = a
        .client
        .authed(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/limits"), admin)
        .json(&limits)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = a
        .client
        .authed(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/kv/crm_url"), admin)
        .body(crm.url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(a.client.upload_plugin(&tenant, admin, hookhost_tests::plugins::LOOKUP_CALLER).await.0, 202);

    let calls = 8;
    for i in 0..calls {
        let via = if i % 2 == 0 { &a.client } else { &b.client };
        let sid = format!("CALEASE{i}");
        let params =
            [("CallSid", sid.as_str()), ("CallStatus", "ringing"), ("From", "+14158675309"), ("To", "+18005551212")];
        let r = via.twilio_status(&tenant, TOKEN, &params).await;
        assert_eq!(r.status(), 200);
    }
    let owed: HashSet<String> = (0..calls).map(|i| format!("CALEASE{i}")).collect();
    let seen = deliveries(&mut receiver, &owed, &[&a.log, &b.log]).await;
    assert_eq!(report("2 replicas, work 2.5x its lease", calls, 0, &seen), 0, "an event was delivered twice");
    let mut asked = 0;
    while crm.next_within(Duration::from_millis(1500)).await.is_some() {
        asked += 1;
    }
    assert_eq!(asked, calls, "each event's plugin asked the CRM once");
}
