//! `cargo bench -p hookhost --bench load`: the service under load, as deployed: real
//! `hookhost serve` processes (this build), real HTTP on 127.0.0.1, real databases.
//!
//! 1. Twilio voice inbound → TwiML: latency at a fixed request rate (open loop: each request is
//!    timed from when it was due, so a stall counts against every request it delays).
//! 2. Sustained signed status callbacks → `redact-phone` plugin → signed delivery to a local
//!    receiver: events per second from the first post to the last delivery, on SQLite and on
//!    PostgreSQL with one replica, and on PostgreSQL with two.
//!
//! Knobs: `BENCH_TWIML_RATE` (1000/s), `BENCH_TWIML_SECONDS` (5), `BENCH_ONLY=twiml` (part (a) only), `BENCH_EVENTS` (3000),
//! `BENCH_CONCURRENCY` (32), `BENCH_TENANT_SHARE` (the servers' per-tenant plugin share, default
//! the service's 4: the bench has one tenant). PostgreSQL runs need `HOOKHOST_TEST_PG` (default the server on
//! 127.0.0.1) and are left out, said so, when it does not answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hookhost_tests::load::{percentile, post_completed_calls};
use hookhost_tests::{Process, Receiver, TestServer, plugins, twilio_signature};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_hookhost");
const PUBLIC_URL: &str = "https://hooks.example.com";
const TOKEN: &str = "bench-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn sqlite_url(tag: &str) -> String {
    format!("sqlite://{}", hookhost_tests::temp_dir(tag).join("hookhost.db").display())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        twiml().await;
        if std::env::var("BENCH_ONLY").as_deref() == Ok("twiml") {
            return;
        }
        let mut rows = vec![pipeline("SQLite", &sqlite_url("load"), 1).await];
        match hookhost_tests::postgres_database("load1").await {
            Ok(url) => {
                rows.push(pipeline("PostgreSQL", &url, 1).await);
                rows.push(pipeline("PostgreSQL", &hookhost_tests::postgres_database("load2").await.unwrap(), 2).await);
            }
            Err(e) => println!("(PostgreSQL runs left out: {} does not answer: {e})", hookhost_tests::postgres_url()),
        }
        println!("\n== signed callback -> redact-phone plugin -> signed delivery, sustained (127.0.0.1)");
        println!(
            "| store | replicas | events | senders | accepted/s | delivered end to end/s | ingest p50 | ingest p99 | target delivered/s |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        let targets = ["≥ 3,000", "≥ 1,500", "≥ the one replica's"];
        for (row, target) in rows.iter().zip(targets) {
            println!("{row} {target} |");
        }
    });
}

/// A tenant with Twilio, one endpoint on `receiver`, and `plugin` (if any), set up through `via`.
async fn tenant(via: &TestServer, receiver: &Receiver, plugin: Option<&str>) -> (String, String) {
    let (tenant, key) = via.create_tenant("bench").await;
    via.set_provider(&tenant, &key, "twilio", json!({ "auth_token": TOKEN })).await;
    via.create_endpoint(&tenant, &key, &receiver.url, &["*"]).await;
    if let Some(p) = plugin {
        assert_eq!(via.upload_plugin(&tenant, &key, p).await.0, 202);
    }
    (tenant, key)
}

async fn twiml() {
    let rate = env_usize("BENCH_TWIML_RATE", 1000);
    let seconds = env_usize("BENCH_TWIML_SECONDS", 5);
    let server = Process::start(BIN, "twiml", &sqlite_url("twiml"), PUBLIC_URL, &[]).await;
    let receiver = Receiver::start().await;
    let (tenant, key) = tenant(&server.client, &receiver, None).await;
    let r = server
        .client
        .authed(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/numbers/+18005551212"), &key)
        .json(&json!({ "forward_to": "+14155550100", "label": "front desk", "voicemail": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let client = Arc::new(TestServer::external(&server.client.base, PUBLIC_URL, &server.client.database_url));
    let path = format!("/hooks/{tenant}/twilio/voice/inbound");
    let total = rate * seconds;
    // The disk's own fsync latency, measured beside the run in the database's directory.
    let (stop, fsyncs) = fsync_probe(&server.client.database_url);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = tick.tick().await;
        let (client, path) = (client.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let sid = format!("CA{i:032}");
            let params = [
                ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                ("CallSid", sid.as_str()),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
                ("From", "+14158675309"),
                ("To", "+18005551212"),
            ];
            let sig = twilio_signature(TOKEN, &format!("{PUBLIC_URL}{path}"), &params);
            let r = client.post_twilio(&path, &sig, &params).await;
            let ok = r.status() == 200 && r.text().await.unwrap_or_default().contains("<Dial");
            (due.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    for t in tasks {
        let (d, ok) = t.await.unwrap();
        latencies.push(d);
        failed += usize::from(!ok);
    }
    latencies.sort();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut fsyncs = fsyncs.join().unwrap();
    fsyncs.sort();
    let (sync50, sync99) = (ms(percentile(&fsyncs, 0.5)), ms(percentile(&fsyncs, 0.99)));
    println!("\n== Twilio voice inbound -> TwiML <Dial>, one process on SQLite (event durable before the answer)");
    println!("| rate | requests | not <Dial> | p50 | p90 | p99 | max | disk fsync p50 / p99 (same run) | target p99 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {rate}/s | {total} | {failed} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {sync50:.2} / {sync99:.2} ms ({} syncs) | ≤ {:.2} ms (1.5 × fsync p99) |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        fsyncs.len(),
        sync99 * 1.5,
    );
}

/// Until the flag is set, write 4 KiB and `fdatasync` in a file beside the database at `url`
/// every 10 ms; the time each sync took.
fn fsync_probe(url: &str) -> (Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<Vec<Duration>>) {
    use std::io::Write;
    let db = std::path::PathBuf::from(url.trim_start_matches("sqlite://"));
    let path = db.with_file_name("fsync-probe");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let probe = std::thread::spawn(move || {
        let mut file = std::fs::File::create(&path).unwrap();
        let mut times = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            file.write_all(&[7u8; 4096]).unwrap();
            let t = Instant::now();
            file.sync_data().unwrap();
            times.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
        times
    });
    (stop, probe)
}

async fn pipeline(store: &str, url: &str, replicas: usize) -> String {
    let events = env_usize("BENCH_EVENTS", 3000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let mut servers = Vec::new();
    for i in 0..replicas {
        servers.push(
            Process::start(
                BIN,
                &format!("{store}-{i}"),
                url,
                PUBLIC_URL,
                &[
                    ("HOOKHOST_JOB_LEASE", "60s"),
                    ("HOOKHOST_PLUGIN_TENANT_CONCURRENCY", &std::env::var("BENCH_TENANT_SHARE").unwrap_or("4".into())),
                ],
            )
            .await,
        );
    }
    let receiver = Receiver::start().await;
    let (tenant, _) = tenant(&servers[0].client, &receiver, Some(plugins::REDACT_PHONE)).await;
    let targets: Arc<Vec<TestServer>> =
        Arc::new(servers.iter().map(|s| TestServer::external(&s.client.base, PUBLIC_URL, url)).collect());
    let started = Instant::now();
    let posted = post_completed_calls(targets, &tenant, TOKEN, events, concurrency, Arc::default()).await;
    let accepted_in = started.elapsed();
    assert_eq!(posted.accepted.len(), events, "every callback accepted");
    while receiver.count.load(Ordering::SeqCst) < events {
        assert!(started.elapsed() < Duration::from_secs(900), "deliveries stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered_in = started.elapsed();
    format!(
        "| {store} | {replicas} | {events} | {concurrency} | {:.0} | {:.0} | {:.2} ms | {:.2} ms |",
        events as f64 / accepted_in.as_secs_f64(),
        events as f64 / delivered_in.as_secs_f64(),
        ms(percentile(&posted.latencies, 0.5)),
        ms(percentile(&posted.latencies, 0.99)),
    )
}
