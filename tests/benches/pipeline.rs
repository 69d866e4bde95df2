//! `cargo bench -p hookhost-tests --bench pipeline`
//!
//! Measures, on this machine, with real parts:
//! 1. end-to-end throughput: signed Twilio status callbacks posted over HTTP on 127.0.0.1 →
//!    durable accept (SQLite, synchronous=FULL) → `redact-phone` plugin in a fresh sandbox per
//!    event → signed delivery to a local receiver; events per second from the first post to the
//!    last delivery, plus the providers' ingest latency;
//! 2. instantiation alone, then one plugin invocation (fresh instance, every limit on) of
//!    `redact-phone` at 1 KB and 16 KB payloads, against the same transform done natively in
//!    the host, in the same run; invocations per second on one task. Both start from the
//!    payload's JSON text, as stored (the worker hands that text to the sandbox);
//! 3. the same `redact-phone` in each SDK's language — Rust, Python (componentize-py) and
//!    JavaScript (componentize-js) — at 1 KB: instantiation alone and instantiate + invoke,
//!    fresh instance per event, every limit on, beside the target (≤ 2 ms median).
//!
//! 1b. the same with a receiver that takes 2 ms and 20 ms to answer: delivered/s against
//!    accepted/s and the bound the endpoint's concurrency sets;
//! 1c. the same on a database that holds 100,000 events already, and with 1,000 tenants,
//!    against the empty database's figure;
//!
//! Knobs: `BENCH_EVENTS` (default 2000), `BENCH_CONCURRENCY` (default 32), `BENCH_SLOW_EVENTS`
//! (default 2000), `BENCH_ANSWER_MS` (default `2,20`), `BENCH_STORED` (default 100000),
//! `BENCH_TENANTS` (default 1000), `BENCH_INVOCATIONS`
//! (default 2000), `BENCH_LANG_INVOCATIONS` (default 300), `BENCH_ONLY=` a comma-separated list
//! of `end-to-end`, `slow`, `scale`, `invocations`, `languages` (those parts only);
//! `BENCH_COMPARE=a.wasm,b.wasm` adds builds of one plugin invoked side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookhost::normalize::CanonicalEvent;
use hookhost::plugin::{Kv, PluginEngine};
use hookhost_tests::load::{percentile, post_calls};
use hookhost_tests::{Receiver, TestServer, plugins};
use serde_json::{Value, json};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Statements sqlx ran (its per-statement log events, target `sqlx::query`), counted as they
/// happen; nothing is formatted or written.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

struct CountStatements;

/// With `BENCH_STATEMENTS=1`: per statement (its first words), how many ran and their time.
static PROFILE: std::sync::Mutex<Option<std::collections::HashMap<String, (u64, f64)>>> = std::sync::Mutex::new(None);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
        let mut profile = PROFILE.lock().unwrap();
        if let Some(profile) = profile.as_mut() {
            let mut seen = Seen::default();
            event.record(&mut seen);
            let what = if seen.statement.trim().is_empty() { seen.summary } else { seen.statement };
            let what: String = what.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(90).collect();
            let e = profile.entry(what).or_default();
            e.0 += 1;
            e.1 += seen.elapsed;
        }
    }
}

#[derive(Default)]
struct Seen {
    summary: String,
    statement: String,
    elapsed: f64,
}

impl tracing::field::Visit for Seen {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed = value;
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

/// Print the statements profile, most time first.
fn print_profile(events: usize) {
    let Some(profile) = PROFILE.lock().unwrap().as_mut().map(std::mem::take) else { return };
    let mut rows: Vec<_> = profile.into_iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    println!("\n| statement | per event | total ms | µs each |");
    println!("|---|---|---|---|");
    for (what, (n, secs)) in rows.iter().take(25) {
        println!("| {what} | {:.2} | {:.0} | {:.0} |", *n as f64 / events as f64, secs * 1e3, secs * 1e6 / *n as f64);
    }
}

/// Start the statements profile afresh (when `BENCH_STATEMENTS` keeps one).
fn reset_profile() {
    if let Some(profile) = PROFILE.lock().unwrap().as_mut() {
        profile.clear();
    }
}

fn count_statements() {
    if std::env::var_os("BENCH_STATEMENTS").is_some() {
        *PROFILE.lock().unwrap() = Some(Default::default());
    }
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, filter::Targets};
    let only = Targets::new().with_target("sqlx::query", tracing::Level::DEBUG);
    let subscriber = tracing_subscriber::registry().with(CountStatements.with_filter(only));
    tracing::subscriber::set_global_default(subscriber).expect("the bench's subscriber is the first");
}

fn main() {
    count_statements();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // `BENCH_ONLY=a,b`: only those parts (`end-to-end`, `slow`, `scale`, `invocations`,
    // `languages`); `scale` without `end-to-end` compares with a fresh empty run of its own.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runs = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    rt.block_on(async {
        let mut empty = None;
        if runs("end-to-end") {
            empty = Some(end_to_end().await);
        }
        if runs("slow") {
            slow_receivers().await;
        }
        if runs("scale") {
            at_scale(empty).await;
        }
        if let Ok(paths) = std::env::var("BENCH_COMPARE") {
            compare_builds(&paths).await;
        }
        if runs("invocations") {
            invocations().await;
        }
        if runs("languages") {
            languages().await;
        }
    });
}

/// A server with `tenants` tenants, each with the Twilio provider, one endpoint at the one
/// receiver and `redact-phone` as its plugin.
struct Bench {
    server: Arc<TestServer>,
    db: std::path::PathBuf,
    receiver: Receiver,
    tenants: Arc<Vec<(String, String)>>,
}

/// One end-to-end run: what it took, and what sqlx ran.
struct Measured {
    events: usize,
    accepted_in: Duration,
    delivered_in: Duration,
    latencies: Vec<Duration>,
    statements: u64,
}

impl Measured {
    fn accepted_per_s(&self) -> f64 {
        self.events as f64 / self.accepted_in.as_secs_f64()
    }
    fn delivered_per_s(&self) -> f64 {
        self.events as f64 / self.delivered_in.as_secs_f64()
    }
}

impl Bench {
    /// A fresh server (SQLite) whose receiver takes `answer` to answer each delivery.
    async fn start(tenants: usize, answer: Duration) -> Bench {
        let db = hookhost_tests::temp_dir("bench").join("bench.db");
        let mut config = hookhost_tests::test_config(&format!("sqlite://{}", db.display()));
        config.retry_schedule = hookhost::config::parse_schedule("1s,5s").unwrap();
        let server = Arc::new(TestServer::start_with(config).await);
        let receiver = Receiver::start().await;
        receiver.set_delay(answer);
        let next = Arc::new(AtomicU64::new(0));
        let mut setting_up = Vec::new();
        for _ in 0..tenants.min(16) {
            let (server, next, url) = (server.clone(), next.clone(), receiver.url.clone());
            setting_up.push(tokio::spawn(async move {
                let mut made = Vec::new();
                while next.fetch_add(1, Ordering::SeqCst) < tenants as u64 {
                    let (tenant, key) = server.create_tenant("bench").await;
                    server.set_provider(&tenant, &key, "twilio", json!({ "auth_token": "bench-token" })).await;
                    server.create_endpoint(&tenant, &key, &url, &["*"]).await;
                    assert_eq!(server.upload_plugin(&tenant, &key, plugins::REDACT_PHONE).await.0, 202);
                    made.push((tenant, "bench-token".to_string()));
                }
                made
            }));
        }
        let mut made = Vec::new();
        for task in setting_up {
            made.extend(task.await.unwrap());
        }
        Bench { server, db, receiver, tenants: Arc::new(made) }
    }

    /// Post the callbacks numbered `ids` from `concurrency` senders, spread over the tenants;
    /// wait for every delivery.
    async fn run(&self, ids: std::ops::Range<usize>, concurrency: usize) -> Measured {
        let events = ids.len();
        let delivered_before = self.receiver.count.load(Ordering::SeqCst);
        let started = Instant::now();
        let statements_before = STATEMENTS.load(Ordering::Relaxed);
        let server = &self.server;
        let targets = Arc::new(vec![TestServer::external(&server.base, &server.public_url, &server.database_url)]);
        let posted = post_calls(targets, self.tenants.clone(), ids, concurrency, Arc::default()).await;
        assert_eq!(posted.accepted.len(), events, "every callback accepted");
        let accepted_in = started.elapsed();
        while self.receiver.count.load(Ordering::SeqCst) < delivered_before + events {
            assert!(started.elapsed() < Duration::from_secs(900), "deliveries stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let delivered_in = started.elapsed();
        let statements = STATEMENTS.load(Ordering::Relaxed) - statements_before;
        Measured { events, accepted_in, delivered_in, latencies: posted.latencies, statements }
    }
}

/// Post `events` signed callbacks from `concurrency` senders to a fresh server with one tenant
/// whose receiver takes `answer` to answer each delivery; wait for every delivery.
async fn measure(events: usize, concurrency: usize, answer: Duration) -> (Bench, Measured) {
    let bench = Bench::start(1, answer).await;
    let measured = bench.run(0..events, concurrency).await;
    (bench, measured)
}

async fn end_to_end() -> f64 {
    let events = env_usize("BENCH_EVENTS", 2000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let (bench, m) = measure(events, concurrency, Duration::ZERO).await;
    let (server, db) = (&bench.server, &bench.db);
    println!("\n== end to end: signed Twilio callback -> redact-phone plugin -> signed delivery (SQLite, 127.0.0.1)");
    println!(
        "| events | senders | accepted/s | delivered end to end/s | ingest p50 | ingest p99 | statements/event (target ≤ 4) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {events} | {concurrency} | {:.0} | {:.0} (target ≥ 3,000) | {:.2} ms | {:.2} ms | {:.1} |",
        m.accepted_per_s(),
        m.delivered_per_s(),
        percentile(&m.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&m.latencies, 0.99).as_secs_f64() * 1e3,
        m.statements as f64 / events as f64,
    );
    print_profile(events);
    // Disk use: the database and its WAL, after a checkpoint, per event kept.
    let pool = sqlx::SqlitePool::connect(&server.database_url).await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await.unwrap();
    let bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db.display())).ok())
        .map(|m| m.len())
        .sum();
    let per_event = bytes as f64 / events as f64;
    println!(
        "\n== disk: {:.1} MB for {events} events ({per_event:.0} bytes each: receipt, event, jobs, attempt, plugin run); \
         kept 30 days at 10 events/s ≈ {:.1} GB",
        bytes as f64 / 1e6,
        per_event * 10.0 * 86_400.0 * 30.0 / 1e9
    );
    m.delivered_per_s()
}

/// Receivers that take milliseconds to answer (`BENCH_ANSWER_MS`, default `2,20`): delivery
/// keeps level with intake until the endpoint's concurrency (`HOOKHOST_ENDPOINT_CONCURRENCY`,
/// 16 requests in flight per endpoint) over the answer time bounds it (Little's law).
async fn slow_receivers() {
    let events = env_usize("BENCH_SLOW_EVENTS", 2000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let in_flight = hookhost::Config::new("", "").endpoint_concurrency;
    let answers: Vec<u64> = std::env::var("BENCH_ANSWER_MS")
        .unwrap_or_else(|_| "2,20".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    println!("\n== receivers answering in milliseconds: one endpoint, {in_flight} requests in flight at most");
    println!(
        "| answer time | events | accepted/s | delivered/s | delivered/accepted (target ≈ 1 up to the bound) | bound: in flight / answer time |"
    );
    println!("|---|---|---|---|---|---|");
    for ms in answers {
        let (_, m) = measure(events, concurrency, Duration::from_millis(ms)).await;
        let bound = in_flight as f64 / (ms.max(1) as f64 / 1000.0);
        println!(
            "| {ms} ms | {events} | {:.0} | {:.0} | {:.2} | {bound:.0}/s |",
            m.accepted_per_s(),
            m.delivered_per_s(),
            m.delivered_per_s() / m.accepted_per_s(),
        );
    }
}

/// Cost grows linearly: the same run on a database that already holds `BENCH_STORED` events
/// (default 100,000, posted and delivered first) and on a server with `BENCH_TENANTS` tenants
/// (default 1,000, callbacks spread over all of them), beside the empty database's figure
/// (`empty`, from part 1, or measured here when part 1 did not run).
async fn at_scale(empty: Option<f64>) {
    let events = env_usize("BENCH_EVENTS", 2000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let empty = match empty {
        Some(e) => e,
        None => measure(events, concurrency, Duration::ZERO).await.1.delivered_per_s(),
    };
    let stored = env_usize("BENCH_STORED", 100_000);
    let tenants = env_usize("BENCH_TENANTS", 1000);
    println!("\n== at scale: delivered/s beside the empty database's {empty:.0}/s (target: within 20 %)");
    println!("| database | events measured | accepted/s | delivered/s | of empty | set-up |");
    println!("|---|---|---|---|---|---|");
    let row = |what: String, m: Measured, setup: Duration| {
        println!(
            "| {what} | {} | {:.0} | {:.0} | {:.0} % | {:.0} s |",
            m.events,
            m.accepted_per_s(),
            m.delivered_per_s(),
            100.0 * m.delivered_per_s() / empty,
            setup.as_secs_f64()
        );
    };
    let started = Instant::now();
    let bench = Bench::start(1, Duration::ZERO).await;
    bench.run(0..stored, concurrency).await;
    let setup = started.elapsed();
    reset_profile();
    row(format!("{stored} events stored"), bench.run(stored..stored + events, concurrency).await, setup);
    print_profile(events);
    drop(bench);
    let started = Instant::now();
    let bench = Bench::start(tenants, Duration::ZERO).await;
    let setup = started.elapsed();
    row(format!("{tenants} tenants"), bench.run(0..events, concurrency).await, setup);
}

fn payload(bytes: usize) -> Value {
    let mut legs = Vec::new();
    let mut p =
        json!({ "call_sid": "CA0123456789abcdef0123456789abcdef", "from": "+14158675309", "to": "+18005551212" });
    while p.to_string().len() < bytes {
        legs.push(json!({ "to": "+18005551212", "answered_by": "human", "duration": 42, "note": "forwarded to the front desk" }));
        p["legs"] = Value::Array(legs.clone());
    }
    p
}

/// A missed call of tenant `ten_bench` carrying `payload`.
fn bench_event(payload: &Value) -> CanonicalEvent {
    CanonicalEvent {
        id: "evt_bench".into(),
        tenant_id: hookhost::TenantId::from_stored("ten_bench".into()),
        event_type: "call.missed".into(),
        occurred_at: 0,
        source: "twilio",
        is_test: false,
        payload: payload.clone(),
    }
}

fn native(payload: &str) -> String {
    let mut v: Value = serde_json::from_str(payload).unwrap();
    // The same transform the plugin runs (the SDK's redaction), linked natively into the host.
    hookhost_sdk::redact::redact_phones(&mut v);
    v.to_string()
}

/// `BENCH_COMPARE=a.wasm,b.wasm,…`: builds of one plugin (say, with other SDK features or link
/// settings) invoked round by round in one run, so they see the same machine; median of each.
async fn compare_builds(paths: &str) {
    let n = env_usize("BENCH_INVOCATIONS", 2000);
    let limits = hookhost::plugin::Limits::default();
    let engine = Arc::new(PluginEngine::new(limits.clone()).unwrap());
    let paths: Vec<&str> = paths.split(',').map(str::trim).collect();
    println!("\n== builds compared, interleaved (fresh instance, every limit on)");
    println!("| payload | component | median |");
    println!("|---|---|---|");
    let compiled: Vec<_> = paths.iter().map(|p| engine.compile(&std::fs::read(p).unwrap()).unwrap()).collect();
    let kv = Kv::Map(Arc::new(Default::default()));
    for size in [1024, 16 * 1024] {
        let p = payload(size);
        let event = bench_event(&p);
        let text = p.to_string();
        let mut times = vec![Vec::new(); compiled.len()];
        for _ in 0..n {
            for (c, t) in compiled.iter().zip(times.iter_mut()) {
                let s = Instant::now();
                let inv = engine.invoke_json(c, &event, text.clone(), &limits, kv.clone()).await;
                t.push(s.elapsed());
                assert!(inv.outcome.is_ok());
            }
        }
        for (path, mut t) in paths.iter().zip(times) {
            t.sort();
            println!("| {} KB | {path} | {:.1} µs |", size / 1024, percentile(&t, 0.5).as_secs_f64() * 1e6);
        }
    }
}

async fn invocations() {
    let n = env_usize("BENCH_INVOCATIONS", 2000);
    let limits = hookhost::plugin::Limits::default();
    let engine = Arc::new(PluginEngine::new(limits.clone()).unwrap());
    let bytes = std::fs::read(plugins::REDACT_PHONE).unwrap();
    let compiled = engine.compile(&bytes).unwrap();
    let kv = Kv::Map(Arc::new(Default::default()));
    let tenant = hookhost::TenantId::from_stored("ten_bench".into());
    let mut inst = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        engine.instantiate(&compiled, &tenant, &limits).await.unwrap();
        inst.push(t.elapsed());
    }
    inst.sort();
    println!(
        "\n== instantiation alone (store + WASI context + limits + instantiate from the cached pre-instance): median {:.1} µs, p99 {:.1} µs",
        percentile(&inst, 0.5).as_secs_f64() * 1e6,
        percentile(&inst, 0.99).as_secs_f64() * 1e6,
    );
    println!("\n== one plugin invocation (fresh instance, fuel + epoch deadline + memory cap) vs native");
    println!("| payload | plugin median | plugin p99 | native median | ratio | invocations/s (one task) | target |");
    println!("|---|---|---|---|---|---|---|");
    for size in [1024, 16 * 1024] {
        let p = payload(size);
        let event = bench_event(&p);
        let text = p.to_string();
        let (mut plug, mut nat) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut plugin_total = Duration::ZERO;
        for _ in 0..n {
            // Interleave so both see the same machine state.
            let t = Instant::now();
            // As the worker does: the payload's stored JSON text goes to the guest as it is.
            let inv = engine.invoke_json(&compiled, &event, text.clone(), &limits, kv.clone()).await;
            let d = t.elapsed();
            plugin_total += d;
            plug.push(d);
            assert!(inv.outcome.is_ok());
            let t = Instant::now();
            std::hint::black_box(native(&text));
            nat.push(t.elapsed());
        }
        plug.sort();
        nat.sort();
        let (pm, nm) = (percentile(&plug, 0.5), percentile(&nat, 0.5));
        let target = if size == 1024 { "median ≤ 25 µs" } else { "≤ 1.5x native" };
        println!(
            "| {} KB | {:.1} µs | {:.1} µs | {:.1} µs | {:.2}x | {:.0} | {target} |",
            size / 1024,
            pm.as_secs_f64() * 1e6,
            percentile(&plug, 0.99).as_secs_f64() * 1e6,
            nm.as_secs_f64() * 1e6,
            pm.as_secs_f64() / nm.as_secs_f64(),
            n as f64 / plugin_total.as_secs_f64(),
        );
    }
}

/// Part 3: one plugin, three languages, at 1 KB; the payload text as the worker hands it over.
async fn languages() {
    let n = env_usize("BENCH_LANG_INVOCATIONS", 300);
    let limits = hookhost::plugin::Limits::default();
    let engine = Arc::new(PluginEngine::new(limits.clone()).unwrap());
    let kv = Kv::Map(Arc::new(Default::default()));
    let tenant = hookhost::TenantId::from_stored("ten_bench".into());
    let p = payload(1024);
    let event = bench_event(&p);
    let text = p.to_string();
    let mut compiled = Vec::new();
    for (lang, path) in [
        ("Rust", plugins::REDACT_PHONE),
        ("Python", plugins::PY_REDACT_PHONE),
        ("JavaScript", plugins::JS_REDACT_PHONE),
    ] {
        let bytes = std::fs::read(path).unwrap();
        let t = Instant::now();
        let plugin = engine.compile(&bytes).unwrap();
        compiled.push((lang, bytes.len(), t.elapsed(), plugin));
    }
    // One language at a time (its pool slots stay warm with its memory image), then the three
    // round by round (as a service running several tenants' plugins at once).
    for interleaved in [false, true] {
        println!(
            "\n== redact-phone in each SDK's language, 1 KB (fresh instance per event, every limit on; {})",
            if interleaved { "the three interleaved" } else { "one language at a time" }
        );
        let mut times: Vec<(Vec<Duration>, Vec<Duration>, u64)> = compiled.iter().map(|_| Default::default()).collect();
        let order: Vec<usize> = if interleaved {
            (0..n).flat_map(|_| 0..compiled.len()).collect()
        } else {
            (0..compiled.len()).flat_map(|l| std::iter::repeat_n(l, n)).collect()
        };
        for l in order {
            let (lang, _, _, plugin) = &compiled[l];
            let t = Instant::now();
            engine.instantiate(plugin, &tenant, &limits).await.unwrap();
            times[l].0.push(t.elapsed());
            let t = Instant::now();
            let inv = engine.invoke_json(plugin, &event, text.clone(), &limits, kv.clone()).await;
            times[l].1.push(t.elapsed());
            assert!(inv.outcome.is_ok(), "{lang}: {:?}", inv.outcome.err());
            times[l].2 = inv.fuel_used;
        }
        println!(
            "| language | component | compile | instantiate median | instantiate + invoke median | p99 | fuel | target |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for ((lang, size, compile, _), (mut inst, mut runs, fuel)) in compiled.iter().zip(times) {
            inst.sort();
            runs.sort();
            println!(
                "| {lang} | {:.1} MB | {:.1} s | {:.3} ms | {:.3} ms | {:.3} ms | {:.2} M | {} |",
                *size as f64 / 1e6,
                compile.as_secs_f64(),
                ms(percentile(&inst, 0.5)),
                ms(percentile(&runs, 0.5)),
                ms(percentile(&runs, 0.99)),
                fuel as f64 / 1e6,
                if *lang == "Rust" { "—" } else { "≤ 2 ms median" },
            );
        }
    }
}
