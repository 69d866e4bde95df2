//! The store's tests, on SQLite and on the PostgreSQL at `HOOKHOST_TEST_PG` when one answers.

use super::*;
use crate::now_ms;

/// The same keys for every store of a test (two stores on one database are two replicas).
pub(super) fn test_keys() -> Keyring {
    Keyring::parse("dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMzJieXQ=").unwrap()
}

fn temp_db() -> String {
    let dir = std::env::temp_dir().join(format!("hookhost-store-{}-{}", std::process::id(), crate::new_id("t")));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("s.db").display())
}

/// A new, empty PostgreSQL database on `HOOKHOST_TEST_PG` (default: the server on
/// 127.0.0.1), named like the end-to-end tests' so their sweep drops it later.
async fn postgres_db() -> Result<String, sqlx::Error> {
    use sqlx::Connection;
    let admin = std::env::var("HOOKHOST_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    let name = format!("hh_test_{}_{}", std::process::id(), crate::new_id("unit").to_lowercase());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    let (server, _) = admin.rsplit_once('/').expect("a postgres URL ends with /database");
    Ok(format!("{server}/{name}"))
}

/// The databases every store test runs on: SQLite, and PostgreSQL unless no server answers
/// (then said loudly).
pub(super) async fn databases() -> Vec<String> {
    let mut urls = vec![temp_db()];
    match postgres_db().await {
        Ok(url) => urls.push(url),
        Err(e) => eprintln!("!!! SKIPPING the PostgreSQL half of this store test: no server answers ({e})"),
    }
    urls
}

/// Finish a plugin job as a tenant without plugins does: the outputs as they are.
async fn finish_without_plugin(store: &Store, job: &Job, outputs: Outputs) -> Result<()> {
    let done = PluginJobDone { status: EventStatus::Processed, outputs, ..Default::default() };
    store.finish_plugin_job(job, done).await.map(drop)
}

pub(super) fn receipt(tenant: &TenantId) -> ReceiptRecord {
    ReceiptRecord {
        tenant_id: tenant.clone(),
        provider: "stripe",
        route: "/hooks/x/stripe".into(),
        headers: serde_json::json!({}),
        body: b"{}".to_vec(),
        received_at: now_ms(),
    }
}

pub(super) fn event(tenant: &TenantId, n: usize) -> CanonicalEvent {
    CanonicalEvent {
        id: crate::new_id("evt"),
        tenant_id: tenant.clone(),
        event_type: "billing.stripe.test".into(),
        occurred_at: 0,
        source: "stripe",
        is_test: false,
        payload: serde_json::json!({ "n": n }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_commit_together_and_dedupe_within_a_batch() {
    for url in databases().await {
        accepts_dedupe_on(&url).await;
    }
}

async fn accepts_dedupe_on(url: &str) {
    let store = Store::connect(url, test_keys()).await.unwrap();
    let tenant = TenantId::generate();
    store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (store, tenant) = (store.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            // 50 distinct identities, each sent four times.
            store.accept(&receipt(&tenant), &event(&tenant, i), &format!("stripe:evt_{}", i % 50)).await.unwrap()
        }));
    }
    let mut fresh = std::collections::HashMap::new();
    let mut duplicates = 0;
    for t in tasks {
        let a = t.await.unwrap();
        if a.duplicate {
            duplicates += 1;
        } else {
            fresh.insert(a.event_id, ());
        }
    }
    assert_eq!(fresh.len(), 50);
    assert_eq!(duplicates, 150);
    assert_eq!(store.events_page(&tenant, &EventQuery { limit: 1000, ..Default::default() }).await.unwrap().len(), 50);
    assert_eq!(store.receipts(&tenant, &ReceiptFilter::default(), 1000).await.unwrap().len(), 200);
    let dup = ReceiptFilter { verdict: Some(Verdict::Duplicate), ..Default::default() };
    assert_eq!(store.receipts(&tenant, &dup, 1000).await.unwrap().len(), 150);
    let counts = store.job_counts().await.unwrap();
    assert_eq!(counts, vec![("plugin".to_string(), "pending".to_string(), 50)]);
}

/// A write that cannot be applied (here an event id already taken under another dedupe
/// key) fails alone: the provider requests committed with it are still acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_in_a_group_commit_fails_alone() {
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let tenant = TenantId::generate();
        store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
        let first = event(&tenant, 0);
        store.accept(&receipt(&tenant), &first, "stripe:evt_first").await.unwrap();
        let tasks: Vec<_> = (1..=30)
            .map(|i| {
                let (store, tenant) = (store.clone(), tenant.clone());
                let mut e = event(&tenant, i);
                if i == 13 {
                    e.id = first.id.clone();
                }
                tokio::spawn(async move { (i, store.accept(&receipt(&tenant), &e, &format!("stripe:evt_{i}")).await) })
            })
            .collect();
        for t in tasks {
            let (i, outcome) = t.await.unwrap();
            assert_eq!(outcome.is_ok(), i != 13, "{url}: write {i} -> {outcome:?}");
        }
        assert_eq!(
            store.events_page(&tenant, &EventQuery { limit: 1000, ..Default::default() }).await.unwrap().len(),
            30,
            "{url}"
        );
    }
}

/// Every change to what routes a tenant's events bumps its configuration revision (read
/// with each event); an endpoint's failure streak and secret rotation do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_changes_bump_the_config_revision() {
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let (tenant, other) = (TenantId::generate(), TenantId::generate());
        store.create_tenant(&tenant, "t", "hash-a", "hk_test").await.unwrap();
        store.create_tenant(&other, "o", "hash-b", "hk_test").await.unwrap();
        let accepted = store.accept(&receipt(&tenant), &event(&tenant, 0), "stripe:evt_rev").await.unwrap();
        let rev =
            || async { store.event_with_config_rev(&tenant, &accepted.event_id).await.unwrap().expect("the event").1 };
        let mut last = rev().await;
        fn changed(last: &mut i64, now: i64, what: &str) {
            assert!(now > *last, "{what} must bump the revision ({last} -> {now})");
            *last = now;
        }
        let mut ep = Endpoint::new(tenant.clone(), "https://example.com/hook".into(), "whsec_a".into());
        assert_eq!(store.create_endpoint(&ep, 1).await.unwrap(), Insert::Created);
        let mut second = ep.clone();
        second.id = EndpointId::generate();
        assert_eq!(store.create_endpoint(&second, 1).await.unwrap(), Insert::Full, "{url}: the cap");
        changed(&mut last, rev().await, "creating an endpoint");
        ep.enabled = false;
        store.update_endpoint(&ep).await.unwrap();
        changed(&mut last, rev().await, "disabling an endpoint");
        store.rotate_secret(&tenant, &ep.id, "whsec_b", now_ms()).await.unwrap();
        assert_eq!(rev().await, last, "{url}: rotating a secret is not routing");
        let sink = Sink {
            id: SinkId::generate(),
            tenant_id: tenant.clone(),
            name: "crm".into(),
            config: crate::sink::SinkConfig::HttpUpsert {
                base_url: "https://example.com/crm".into(),
                object: "contacts".into(),
                headers: Default::default(),
            },
            event_types: vec!["call.*".into()],
            external_id_field: Some("call_id".into()),
        };
        assert_eq!(store.create_sink(&sink, 5).await.unwrap(), Insert::Created);
        assert_eq!(store.create_sink(&sink, 5).await.unwrap(), Insert::Duplicate);
        changed(&mut last, rev().await, "creating a sink");
        let q = PluginQuotas { plugins: 1, versions: 2, bytes: 9 };
        store.add_plugin_version(&tenant, "p", "d1", b"wasm", true, q).await.unwrap();
        changed(&mut last, rev().await, "uploading a plugin to be activated");
        assert!(!store.activate_plugin(&tenant, "p", 1).await.unwrap(), "{url}: not while it compiles");
        assert_eq!(store.version_state(&tenant, "p", 1).await.unwrap(), Some((PluginState::Compiling, None)));
        assert!(store.finish_compile(&tenant, "p", 1, Ok(())).await.unwrap(), "{url}: active once ready");
        assert!(!store.finish_compile(&tenant, "p", 1, Err("late".into())).await.unwrap(), "{url}: once");
        assert_eq!(store.version_state(&tenant, "p", 1).await.unwrap(), Some((PluginState::Ready, None)));
        changed(&mut last, rev().await, "activating a compiled plugin");
        store.add_plugin_version(&tenant, "p", "d2", b"wasm2", false, q).await.unwrap();
        changed(&mut last, rev().await, "uploading a version");
        assert!(!store.finish_compile(&tenant, "p", 2, Ok(())).await.unwrap(), "{url}: ready, not asked to be active");
        assert_eq!(store.compiling_versions().await.unwrap(), Vec::new());
        // The quotas, counted in the database: versions, plugins, bytes; the same bytes again
        // are the existing version, whatever the quota.
        let over = |u: Upload| match u {
            Upload::OverQuota(quota, _) => quota,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(
            over(store.add_plugin_version(&tenant, "p", "d3", b"w", false, q).await.unwrap()),
            "plugin_versions"
        );
        assert_eq!(over(store.add_plugin_version(&tenant, "q", "d4", b"w", false, q).await.unwrap()), "plugins");
        let roomy = PluginQuotas { versions: 3, ..q };
        assert_eq!(
            over(store.add_plugin_version(&tenant, "p", "d5", b"w", false, roomy).await.unwrap()),
            "plugin_bytes"
        );
        assert!(matches!(
            store.add_plugin_version(&tenant, "p", "d1", b"wasm", false, q).await.unwrap(),
            Upload::Existing(_)
        ));
        assert_eq!(store.delete_plugin_version(&tenant, "p", 1).await.unwrap(), VersionDelete::Active);
        assert_eq!(store.delete_plugin_version(&tenant, "p", 7).await.unwrap(), VersionDelete::NotFound);
        store.activate_plugin(&tenant, "p", 2).await.unwrap();
        changed(&mut last, rev().await, "activating a version");
        store.set_chain(&tenant, Some(&[])).await.unwrap();
        changed(&mut last, rev().await, "setting the chain");
        store.set_chain(&tenant, None).await.unwrap();
        changed(&mut last, rev().await, "removing the chain");
        store.set_limit_overrides(&tenant, &serde_json::json!({ "fuel": 1 })).await.unwrap();
        changed(&mut last, rev().await, "setting limits");
        store.delete_plugin(&tenant, "p").await.unwrap();
        changed(&mut last, rev().await, "deleting a plugin");
        store.delete_endpoint(&tenant, &ep.id).await.unwrap();
        changed(&mut last, rev().await, "deleting an endpoint");
        // Another tenant's changes leave this one's revision alone.
        store.set_chain(&other, Some(&[])).await.unwrap();
        assert_eq!(rev().await, last, "{url}: another tenant's change");
    }
}

/// Finished jobs sent together commit together; one that cannot be applied (its event is
/// gone, so its delivery has no event to follow) fails alone and the others still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_in_a_bookkeeping_batch_fails_alone() {
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let tenant = TenantId::generate();
        store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
        for i in 0..21 {
            store.accept(&receipt(&tenant), &event(&tenant, i), &format!("stripe:evt_{i}")).await.unwrap();
        }
        let mut jobs = store.claim(JobKind::Plugin, 100, Duration::from_secs(60)).await.unwrap();
        assert_eq!(jobs.len(), 21);
        // A job of its own (its lease holds) whose delivery names an event that is gone.
        let mut bogus = jobs.pop().unwrap();
        bogus.event_id = "evt_gone".into();
        let bogus_id = bogus.id;
        jobs.insert(7, bogus);
        let tasks: Vec<_> = jobs
            .iter()
            .map(|job| {
                let delivery = NewDelivery {
                    endpoint_id: EndpointId::named("ep_x"),
                    message_id: job.event_id.clone(),
                    body: "{}".into(),
                    request: None,
                    ordering_key: None,
                };
                let outputs = Outputs { deliveries: vec![delivery], sink_writes: Vec::new() };
                let (store, job) = (store.clone(), job.clone());
                tokio::spawn(async move { finish_without_plugin(&store, &job, outputs).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        for (job, outcome) in jobs.iter().zip(&outcomes) {
            assert_eq!(outcome.is_ok(), job.id != bogus_id, "{url}: job {} -> {outcome:?}", job.id);
        }
        let counts = store.job_counts().await.unwrap();
        assert!(counts.contains(&("delivery".into(), "pending".into(), 20)), "{url}: {counts:?}");
        assert!(counts.contains(&("plugin".into(), "succeeded".into(), 20)), "{url}: {counts:?}");
    }
}

/// A worker whose lease ran out and was claimed again (the lease clock moved on, not slept
/// for) writes nothing: its finish, attempt, defer and renewal are refused; the new holder's
/// result stands, and a late attempt can never reopen a finished job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_was_taken_over_writes_nothing() {
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let tenant = TenantId::generate();
        store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
        store.accept(&receipt(&tenant), &event(&tenant, 1), "stripe:evt_fence").await.unwrap();
        let lease = Duration::from_secs(60);
        let first = store.claim(JobKind::Plugin, 10, lease).await.unwrap().remove(0);
        assert!(store.claim(JobKind::Plugin, 10, lease).await.unwrap().is_empty(), "{url}: leased");
        store.clock().advance(Duration::from_millis(61_000));
        let second = store.claim(JobKind::Plugin, 10, lease).await.unwrap().remove(0);
        assert_eq!(second.id, first.id);
        assert_ne!(second.lease, first.lease, "{url}: a fresh token");

        let outputs = |n: usize| Outputs {
            deliveries: (0..n)
                .map(|i| NewDelivery {
                    endpoint_id: EndpointId::named(&format!("ep_{i}")),
                    message_id: first.event_id.clone(),
                    body: "{}".into(),
                    request: None,
                    ordering_key: None,
                })
                .collect(),
            sink_writes: Vec::new(),
        };
        let stale = |r: Result<()>| matches!(r, Err(StoreError::StaleLease(id)) if id == first.id);
        assert!(stale(finish_without_plugin(&store, &first, outputs(3)).await), "{url}");
        assert!(stale(store.defer(&first, now_ms()).await), "{url}");
        assert!(matches!(store.renew(&first, lease).await, Err(StoreError::StaleLease(_))), "{url}");
        assert!(store.renew(&second, lease).await.is_ok(), "{url}: the holder renews");
        finish_without_plugin(&store, &second, outputs(1)).await.unwrap();
        let counts = store.job_counts().await.unwrap();
        assert!(
            counts.contains(&("delivery".into(), "pending".into(), 1)),
            "{url}: only the holder's output: {counts:?}"
        );
        assert!(counts.contains(&("plugin".into(), "succeeded".into(), 1)), "{url}: {counts:?}");

        // A delivery finished by its new holder is not reopened by the old one's attempt.
        store.clock().advance(Duration::from_millis(1));
        let d1 = store.claim(JobKind::Delivery, 10, lease).await.unwrap().remove(0);
        store.clock().advance(Duration::from_millis(61_000));
        let d2 = store.claim(JobKind::Delivery, 10, lease).await.unwrap().remove(0);
        let ok = AttemptRecord { status_code: Some(200), ..Default::default() };
        store.record_attempt(&d2, DeliveryState::Succeeded, &ok, None).await.unwrap();
        let late = AttemptRecord { status_code: Some(500), ..Default::default() };
        let r = store.record_attempt(&d1, DeliveryState::RetryAt(now_ms()), &late, None).await;
        assert!(matches!(r, Err(StoreError::StaleLease(_))), "{url}: {r:?}");
        let counts = store.job_counts().await.unwrap();
        assert!(counts.contains(&("delivery".into(), "succeeded".into(), 1)), "{url}: never reopened: {counts:?}");
        assert_eq!(store.attempts(&tenant, &first.event_id).await.unwrap().len(), 1, "{url}: one attempt recorded");
    }
}

/// Rows written before secrets were sealed are sealed when the store opens; a new key
/// put first (the old one kept to open) seals every secret again; both keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_secrets_are_sealed_at_start_and_again_under_a_new_key() {
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let tenant = TenantId::generate();
        store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
        // As an older version wrote it: in the clear.
        sqlx::query("INSERT INTO provider_configs (tenant_id, provider, secret, updated_at) VALUES ($1, 'twilio', 'plain-token', 0)")
            .bind(tenant.as_str())
            .execute(&store.write)
            .await
            .unwrap();
        store.close().await;
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let raw: String = sqlx::query_scalar("SELECT secret FROM provider_configs WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(raw.starts_with(&format!("enc1:{}:", test_keys().current_id())), "{url}: {raw}");
        let secret = |s: &Store| {
            let (s, t) = (s.clone(), tenant.clone());
            async move { s.hook_tenant(t.as_str(), "twilio").await.unwrap().unwrap().secret.unwrap() }
        };
        assert_eq!(secret(&store).await, "plain-token");
        store.close().await;
        let rotated =
            Keyring::parse(&format!("{},dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMzJieXQ=", crate::secrets::new_key()))
                .unwrap();
        let new_id = rotated.current_id().to_string();
        let store = Store::connect(&url, rotated).await.unwrap();
        let raw: String = sqlx::query_scalar("SELECT secret FROM provider_configs WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(raw.starts_with(&format!("enc1:{new_id}:")), "{url}: sealed again under the new key");
        assert_eq!(secret(&store).await, "plain-token");
        store.close().await;
        let old_only = Store::connect(&url, test_keys()).await;
        assert!(matches!(old_only, Err(StoreError::Secret(_))), "{url}: the old key alone cannot open them");
    }
}

/// Retention deletes what is old and finished, keeps what is pending whatever its age, and
/// keeps rejected receipts for their own, shorter time (time passed in, not slept for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_rows_and_keeps_pending_ones() {
    const DAY: i64 = 86_400_000;
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let tenant = TenantId::generate();
        store.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
        let lease = Duration::from_secs(60);
        // Event 1: processed, delivered to two endpoints (one shared body), a plugin run.
        let done = store.accept(&receipt(&tenant), &event(&tenant, 1), "stripe:evt_old").await.unwrap();
        let job = store.claim(JobKind::Plugin, 10, lease).await.unwrap().remove(0);
        let body: Arc<str> = "{}".into();
        let deliveries = (0..2)
            .map(|i| NewDelivery {
                endpoint_id: EndpointId::named(&format!("ep_{i}")),
                message_id: done.event_id.clone(),
                body: body.clone(),
                request: None,
                ordering_key: None,
            })
            .collect();
        let run = PluginRun {
            plugin_name: "p".into(),
            plugin_version: 1,
            outcome: "ok".into(),
            wall_us: 1,
            ran_at: now_ms(),
            ..Default::default()
        };
        let finished = PluginJobDone {
            runs: vec![run],
            status: EventStatus::Processed,
            outputs: Outputs { deliveries, sink_writes: Vec::new() },
            ..Default::default()
        };
        store.finish_plugin_job(&job, finished).await.unwrap();
        for d in store.claim(JobKind::Delivery, 10, lease).await.unwrap() {
            let ok = AttemptRecord { status_code: Some(200), ..Default::default() };
            store.record_attempt(&d, DeliveryState::Succeeded, &ok, None).await.unwrap();
        }
        // Event 2: still waiting for its plugin. A rejected request.
        let waiting = store.accept(&receipt(&tenant), &event(&tenant, 2), "stripe:evt_waiting").await.unwrap();
        store.keep_receipt(&receipt(&tenant), Verdict::Rejected, "bad signature").await.unwrap();

        let retention =
            Retention { keep: Duration::from_secs(30 * 86_400), keep_rejected: Duration::from_secs(7 * 86_400) };
        let now = now_ms();
        assert_eq!(store.sweep(now + DAY, retention).await.unwrap().total(), 0, "{url}: nothing is old yet");
        let swept = store.sweep(now + 8 * DAY, retention).await.unwrap();
        assert_eq!(swept, Swept { receipts: 1, ..Default::default() }, "{url}: the rejected receipt, alone");
        let swept = store.sweep(now + 31 * DAY, retention).await.unwrap();
        assert_eq!(
            swept,
            Swept { receipts: 1, events: 1, jobs: 3, attempts: 2, plugin_runs: 1, bodies: 1 },
            "{url}: the finished event and all of it"
        );
        assert!(store.event(&tenant, &done.event_id).await.unwrap().is_none(), "{url}");
        assert!(store.event(&tenant, &waiting.event_id).await.unwrap().is_some(), "{url}: pending, kept");
        let counts = store.job_counts().await.unwrap();
        assert!(counts.contains(&("plugin".into(), "pending".into(), 1)), "{url}: its job kept: {counts:?}");
        let receipts = store.receipts(&tenant, &ReceiptFilter::default(), 10).await.unwrap();
        assert_eq!(receipts.len(), 1, "{url}: the pending event's receipt kept");
    }
}

/// Two stores on one database, as two replicas: claiming at the same time, each job is
/// leased to exactly one of them, and every job is leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_claiming_together_lease_each_job_once() {
    for url in databases().await {
        let (a, b) =
            (Store::connect(&url, test_keys()).await.unwrap(), Store::connect(&url, test_keys()).await.unwrap());
        let tenant = TenantId::generate();
        a.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
        for i in 0..300 {
            a.accept(&receipt(&tenant), &event(&tenant, i), &format!("stripe:evt_{i}")).await.unwrap();
        }
        // Each claims until both together hold every job (a claim may come back empty while
        // the other holds the rows it looked at).
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let claimer = |store: Store| {
            let taken = taken.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let give_up = std::time::Instant::now() + Duration::from_secs(60);
                while taken.load(std::sync::atomic::Ordering::SeqCst) < 300 && std::time::Instant::now() < give_up {
                    let busy = std::collections::HashMap::new();
                    let jobs = store.claim_plugin_jobs(7, Duration::from_secs(60), &busy, 1000).await.unwrap();
                    taken.fetch_add(jobs.len(), std::sync::atomic::Ordering::SeqCst);
                    ids.extend(jobs.iter().map(|j| j.id));
                }
                ids
            })
        };
        let (ta, tb) = (claimer(a.clone()), claimer(b.clone()));
        let (ia, ib) = (ta.await.unwrap(), tb.await.unwrap());
        let mut all: Vec<i64> = ia.iter().chain(&ib).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), ia.len() + ib.len(), "{url}: a job was leased twice");
        assert_eq!(all.len(), 300, "{url}: every job is leased");
        assert!(a.claim(JobKind::Plugin, 10, Duration::from_secs(60)).await.unwrap().is_empty());
    }
}

/// The twin migrations stay twins: SQLite and PostgreSQL end with the same tables, the same
/// columns in each, and the same named indexes (types differ by dialect, names may not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_define_the_same_schema() {
    let urls = databases().await;
    let [sqlite, postgres] = urls.as_slice() else {
        eprintln!("!!! SKIPPING the schema comparison: it needs the PostgreSQL half");
        return;
    };
    let lite = Store::connect(sqlite, test_keys()).await.unwrap();
    let pg = Store::connect(postgres, test_keys()).await.unwrap();
    let mut lite_columns: Vec<(String, String)> = Vec::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'",
    )
    .fetch_all(&lite.pool)
    .await
    .unwrap();
    for t in &tables {
        let cols: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{t}')")))
            .fetch_all(&lite.pool)
            .await
            .unwrap();
        lite_columns.extend(cols.into_iter().map(|c| (t.clone(), c)));
    }
    let mut pg_columns: Vec<(String, String)> = sqlx::query(
        "SELECT CAST(table_name AS TEXT) AS t, CAST(column_name AS TEXT) AS c FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name != '_sqlx_migrations'",
    )
    .fetch_all(&pg.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("t"), r.get("c")))
    .collect();
    lite_columns.sort();
    pg_columns.sort();
    assert_eq!(lite_columns, pg_columns, "tables and columns differ between the migrations");

    let mut lite_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%'",
    )
    .fetch_all(&lite.pool)
    .await
    .unwrap();
    let mut pg_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(indexname AS TEXT) FROM pg_indexes WHERE schemaname = current_schema()
           AND tablename != '_sqlx_migrations' AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'",
    )
    .fetch_all(&pg.pool)
    .await
    .unwrap();
    lite_indexes.sort();
    pg_indexes.sort();
    assert!(
        lite_columns.len() > 100 && lite_indexes.len() > 10,
        "{} columns, {} indexes",
        lite_columns.len(),
        lite_indexes.len()
    );
    assert_eq!(lite_indexes, pg_indexes, "named indexes differ between the migrations");
}
