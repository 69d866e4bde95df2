//! CRM sinks: each event sent three times and in shuffled order leaves exactly one correct
//! row per external id, in a SQL table and behind an HTTP upsert API.

use hookhost_tests::{ADMIN, Receiver, now_s, plugins};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::{STRIPE_SECRET, Setup, TWILIO_TOKEN};

async fn create_sink(s: &Setup, token: &str, body: Value) -> (u16, Value) {
    let r = s
        .server
        .authed(Method::POST, &format!("/v1/tenants/{}/sinks", s.tenant), token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn subscription_event(evt: &str, sub: &str, status: &str, created: i64) -> String {
    json!({
        "id": evt, "object": "event", "type": "customer.subscription.updated", "created": created,
        "api_version": "2025-03-31.basil", "livemode": false,
        "data": { "object": { "id": sub, "object": "subscription", "customer": "cus_1", "status": status } }
    })
    .to_string()
}

/// A fixed shuffle of `n` items repeated `times` (deterministic, so a failure reproduces).
fn shuffled(n: usize, times: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n * times).map(|i| i % n).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_sink_holds_one_newest_row_per_external_id_whatever_the_order_and_repeats() {
    let s = Setup::new(&["call.*"]).await;
    let db = hookhost_tests::temp_dir("sink").join("crm.db");
    let url = format!("sqlite://{}", db.display());
    let sink = json!({ "name": "billing", "kind": "sql", "database_url": url, "table": "subscriptions",
                       "event_types": ["billing.subscription.*"], "external_id_field": "object_id" });
    // A sqlite sink writes to the server's disk: operator only.
    assert_eq!(create_sink(&s, &s.key, sink.clone()).await.0, 403);
    let (status, created) = create_sink(&s, ADMIN, sink.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(create_sink(&s, ADMIN, sink).await.0, 409);

    let t0 = 1_760_000_000;
    let events = [
        ("evt_a1", "sub_A", "trialing", t0),
        ("evt_a2", "sub_A", "active", t0 + 10),
        ("evt_a3", "sub_A", "past_due", t0 + 20),
        ("evt_b1", "sub_B", "active", t0 + 5),
        ("evt_b2", "sub_B", "canceled", t0 + 15),
    ];
    for i in shuffled(events.len(), 3) {
        let (evt, sub, st, created) = events[i];
        let r = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), &subscription_event(evt, sub, st, created)).await;
        assert_eq!(r.status(), 200);
    }
    s.server.settled("sink").await;

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT external_id, version, record FROM subscriptions ORDER BY external_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let row = |i: usize| -> (String, i64, Value) {
        let r = &rows[i];
        (r.get("external_id"), r.get("version"), serde_json::from_str(&r.get::<String, _>("record")).unwrap())
    };
    let (a, a_version, a_record) = row(0);
    assert_eq!((a.as_str(), a_version), ("sub_A", t0 + 20));
    assert_eq!(a_record["object"]["status"], "past_due");
    assert_eq!(a_record["stripe_event_id"], "evt_a3");
    let (b, b_version, b_record) = row(1);
    assert_eq!((b.as_str(), b_version), ("sub_B", t0 + 15));
    assert_eq!(b_record["object"]["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_sink_actions_upsert_over_http_with_idempotency_keys_newest_version_winning() {
    let s = Setup::new(&["call.*"]).await;
    let mut crm = Receiver::start().await;
    crm.script(&[500]); // the first write fails and is retried
    let base = format!("http://{}/api", crm.addr);
    let (status, created) = create_sink(
        &s,
        &s.key,
        json!({ "name": "crm", "kind": "http-upsert", "base_url": base,
        "object": "calls", "headers": { "authorization": "Bearer crm-secret" } }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["config"]["headers"]["authorization"], "…", "secrets are not shown back");
    assert_eq!(s.server.upload_plugin(&s.tenant, &s.key, plugins::CRM_SINK).await.0, 202);

    let calls = [
        ("CA1", "ringing", "0"),
        ("CA1", "in-progress", "1"),
        ("CA1", "completed", "2"),
        ("CA2", "ringing", "0"),
        ("CA2", "no-answer", "1"),
    ];
    for i in shuffled(calls.len(), 3) {
        let (sid, status, seq) = calls[i];
        let params = [
            ("CallSid", sid),
            ("CallStatus", status),
            ("SequenceNumber", seq),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ];
        assert_eq!(s.server.twilio_status(&s.tenant, TWILIO_TOKEN, &params).await.status(), 200);
    }
    s.server.settled("sink").await;

    let mut puts = Vec::new();
    while let Some(r) = crm.next_within(std::time::Duration::from_millis(200)).await {
        puts.push(r);
    }
    assert!(
        puts.iter()
            .all(|p| p.header("authorization") == "Bearer crm-secret" && !p.header("idempotency-key").is_empty())
    );
    let mut last: std::collections::HashMap<String, (i64, String)> = Default::default();
    let mut keys_ok = std::collections::HashMap::<String, u16>::new();
    for p in &puts {
        let rec = p.json();
        let id = rec["call_id"].as_str().unwrap().to_string();
        let version = rec["version"].as_i64().unwrap();
        assert_eq!(p.header("x-hookhost-record-version"), version.to_string());
        if p.answered == 200 {
            if let Some((prev, _)) = last.get(&id) {
                assert!(version > *prev, "an older version was written over a newer one");
            }
            last.insert(id, (version, rec["status"].as_str().unwrap().to_string()));
            *keys_ok.entry(p.header("idempotency-key")).or_default() += 1;
        }
    }
    assert_eq!(last["CA1"], (2, "completed".to_string()));
    assert_eq!(last["CA2"], (1, "no-answer".to_string()));
    assert!(keys_ok.values().all(|n| *n == 1), "no write applied twice: {keys_ok:?}");
    assert!(puts.iter().any(|p| p.answered == 500), "the scripted failure happened and was retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_sink_gets_the_same_guarantees() {
    let pg_url =
        std::env::var("HOOKHOST_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let Ok(pool) = sqlx::PgPool::connect(&pg_url).await else {
        eprintln!("SKIPPED a_postgres_sink_gets_the_same_guarantees: no PostgreSQL answers at {pg_url}");
        return;
    };
    let s = Setup::new(&["call.*"]).await;
    let table = format!("hookhost_sink_{}", &s.tenant[4..16]);
    // A sink names its user and password (trust auth takes any password).
    let sink_url = hookhost_tests::with_password(&pg_url, "sink-password");
    let (status, created) = create_sink(
        &s,
        &s.key,
        json!({ "name": "billing", "kind": "sql", "database_url": sink_url,
        "table": table, "event_types": ["billing.subscription.*"], "external_id_field": "object_id" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let t0 = 1_760_000_000;
    let events = [
        ("evt_p1", "sub_P", "trialing", t0),
        ("evt_p2", "sub_P", "active", t0 + 10),
        ("evt_p3", "sub_P", "canceled", t0 + 20),
    ];
    for i in shuffled(events.len(), 3) {
        let (evt, sub, st, created) = events[i];
        let r = s.server.stripe(&s.tenant, STRIPE_SECRET, now_s(), &subscription_event(evt, sub, st, created)).await;
        assert_eq!(r.status(), 200);
    }
    s.server.settled("sink").await;
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT external_id, version, record::text AS record FROM {table}")))
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<i64, _>("version"), t0 + 20);
    let record: Value = serde_json::from_str(&rows[0].get::<String, _>("record")).unwrap();
    assert_eq!(record["object"]["status"], "canceled");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&pool).await.unwrap();
}
