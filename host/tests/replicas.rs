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
