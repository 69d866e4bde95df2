//! Secrets at rest, with a real `hookhost serve` process logging at debug: no secret a tenant
//! gave (provider tokens and webhook secrets, endpoint signing secrets, sink credentials) nor
//! one a client sent (an `Authorization` header, a `?token=`) appears in the database's bytes
//! — the SQLite file and its WAL, or a `pg_dump` — in the log, or in a receipt's stored headers;
//! and everything still works: signatures verify, deliveries are signed.

use hookhost_tests::{Process, Receiver, TestServer};
use serde_json::{Value, json};

const TWILIO_TOKEN: &str = "twtok_9f8e7d6c5b4a39281706";
const STRIPE_SECRET: &str = "whsec_stripe_5ecret_a1b2c3d4e5";
const SINK_PASSWORD: &str = "sinkpw_0a9b8c7d6e5f";
const SINK_HEADER: &str = "Bearer crm_7e6d5c4b3a29";
const CLIENT_AUTH: &str = "Basic c2VjcmV0LWNsaWVudC1jcmVkcw==";

/// Set everything up through `server`, send traffic, and return the secrets to look for.
async fn exercise(server: &TestServer, receiver: &mut Receiver) -> Vec<String> {
    let (tenant, key) = server.create_tenant("secrets").await;
    server.set_provider(&tenant, &key, "twilio", json!({ "auth_token": TWILIO_TOKEN })).await;
    server.set_provider(&tenant, &key, "stripe", json!({ "webhook_secret": STRIPE_SECRET })).await;
    let r = server
        .authed(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/providers/exotel"), &key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let exotel_token = r.json::<Value>().await.unwrap()["callback_token"].as_str().unwrap().to_string();
    let (_, endpoint_secret) = server.create_endpoint(&tenant, &key, &receiver.url, &["*"]).await;
    let sink = json!({ "name": "crm", "kind": "http-upsert", "base_url": "http://127.0.0.1:9", "object": "contacts",
                       "headers": { "authorization": SINK_HEADER } });
    let r = server
        .authed(reqwest::Method::POST, &format!("/v1/tenants/{tenant}/sinks"), &key)
        .json(&sink)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pg_sink = json!({ "name": "db", "kind": "sql", "table": "calls",
                          "database_url": format!("postgres://crm:{SINK_PASSWORD}@203.0.113.10:5432/crm") });
    let r =
        server.authed(reqwest::Method::POST, &format!("/v1/tenants/{tenant}/sinks"), &key).json(&pg_sink).send().await;
    drop(r); // an unreachable address: refused or not, the URL must not be kept in the clear

    // Signed traffic, verified with the sealed secrets, delivered signed with the sealed one.
    let r = server.twilio_status(&tenant, TWILIO_TOKEN, &[("CallSid", "CA1"), ("CallStatus", "ringing")]).await;
    assert_eq!(r.status(), 200);
    let got = receiver.next().await;
    assert!(hookhost_tests::verify_standard_webhook(&endpoint_secret, &got.headers, &got.body));
    // A request carrying a client's credentials, and the Exotel token in its query.
    let r = server
        .http
        .post(server.url(&format!("/hooks/{tenant}/exotel/status?token={exotel_token}")))
        .header("authorization", CLIENT_AUTH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=EX1&Status=completed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let receipts = server.get_json(&format!("/v1/tenants/{tenant}/receipts"), &key).await;
    let text = receipts.to_string();
    assert!(!text.contains(&exotel_token), "receipts list: {text}");
    vec![
        TWILIO_TOKEN.into(),
        STRIPE_SECRET.into(),
        exotel_token,
        SINK_PASSWORD.into(),
        SINK_HEADER.into(),
        CLIENT_AUTH.into(),
        endpoint_secret,
        key,
    ]
}

fn assert_absent(what: &str, haystack: &[u8], secrets: &[String]) {
    for s in secrets {
        let found = haystack.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(!found, "{s:?} found in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_lies_in_the_clear_in_the_sqlite_file_or_the_debug_log() {
    let dir = hookhost_tests::temp_dir("secrets");
    let db = dir.join("hookhost.db");
    let url = format!("sqlite://{}", db.display());
    // No HOOKHOST_SECRET_KEY: the key lives in a file beside the database, mode 0600.
    let env = [("HOOKHOST_SECRET_KEY", ""), ("HOOKHOST_LOG", "debug")];
    let mut process = Process::start(env!("CARGO_BIN_EXE_hookhost"), "secrets", &url, "http://127.0.0.1", &env).await;
    let mut receiver = Receiver::start().await;
    let secrets = exercise(&process.client, &mut receiver).await;
    process.kill();
    let key_file = dir.join("hookhost.db.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let log = std::fs::read(&process.log).unwrap();
    assert!(String::from_utf8_lossy(&log).contains(&key_file.display().to_string()), "the key file's path is logged");
    assert_absent("the debug log", &log, &secrets);
    for file in ["hookhost.db", "hookhost.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            assert_absent(file, &bytes, &secrets);
        }
    }
    // Stored headers: the client's credentials redacted, the request kept.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let headers: Vec<String> = sqlx::query_scalar("SELECT headers FROM receipts").fetch_all(&pool).await.unwrap();
    let with_auth: Vec<Value> = headers
        .iter()
        .map(|h| serde_json::from_str::<Value>(h).unwrap())
        .filter(|h| h.get("authorization").is_some())
        .collect();
    assert_eq!(with_auth.len(), 1);
    assert_eq!(with_auth[0]["authorization"], "[redacted]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_lies_in_the_clear_in_a_postgres_dump() {
    let Ok(url) = hookhost_tests::postgres_database("secrets").await else {
        eprintln!("SKIPPED: no PostgreSQL answers at {}", hookhost_tests::postgres_url());
        return;
    };
    let mut process = Process::start(env!("CARGO_BIN_EXE_hookhost"), "secrets-pg", &url, "http://127.0.0.1", &[]).await;
    let mut receiver = Receiver::start().await;
    let secrets = exercise(&process.client, &mut receiver).await;
    process.kill();
    let dump = std::process::Command::new("pg_dump").arg("--data-only").arg(&url).output();
    let Some(dump) = dump.ok().filter(|d| d.status.success()) else {
        eprintln!("SKIPPED the dump: pg_dump is not installed or failed");
        return;
    };
    assert!(String::from_utf8_lossy(&dump.stdout).contains("enc1:"), "the dump holds the sealed values");
    assert_absent("the pg_dump", &dump.stdout, &secrets);
}
