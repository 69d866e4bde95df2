//! Abuse from outside, tried as an anonymous client would: connections that never finish,
//! bodies sent before any credential, rates that break arithmetic, metrics read by anyone.

use std::time::Duration;

use hookhost_tests::{TestServer, test_config};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Setup;

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).await.unwrap()
}

/// Read until the server closes the connection (or `limit` bytes); returns what came.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(hookhost_tests::PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open"),
        }
        if out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A slow-loris client sends half a request line and never finishes its headers: it is cut off
/// at the header deadline, and meanwhile (and after) the service keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_client_is_cut_off_and_the_service_keeps_answering() {
    let mut config = test_config(&hookhost_tests::fresh_database("loris").await);
    config.header_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(config).await;
    let mut lorises = Vec::new();
    for _ in 0..20 {
        let mut s = connect(&server).await;
        s.write_all(b"POST /hooks/ten_x/stripe HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        lorises.push(s);
    }
    let r = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "answering beside twenty stalled clients");
    for mut s in lorises {
        let answer = read_to_close(&mut s).await;
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    // A new connection: idle keep-alive connections are closed at the header deadline too.
    let fresh = reqwest::Client::new();
    assert_eq!(fresh.get(server.url("/healthz")).send().await.unwrap().status(), 200);
}

/// An upload route with a 16 MiB body announced and a wrong key: answered 401 at once, before
/// a byte of the body is read (the body timeout here is far longer than the test's patience).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_authenticated_before_their_body_is_read() {
    let mut config = test_config(&hookhost_tests::fresh_database("authfirst").await);
    config.body_timeout = Duration::from_secs(600);
    let s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    for path in [
        format!("/v1/tenants/{}/plugins/big", s.tenant),
        format!("/v1/tenants/{}/plugins", s.tenant),
        format!("/v1/tenants/{}/kv/k", s.tenant),
    ] {
        let mut stream = connect(&s.server).await;
        let head = format!(
            "{} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Type: application/wasm\r\nContent-Length: 16777216\r\n\r\n",
            if path.contains("/kv/") { "PUT" } else { "POST" }
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[0u8; 1024]).await.unwrap();
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
    }
    // With the right key a body over the limit is 413.
    let big = vec![0u8; hookhost::config::DEFAULT_MAX_PLUGIN_BYTES + 1];
    let r = s
        .server
        .authed(Method::POST, &format!("/v1/tenants/{}/plugins/big", s.tenant), &s.key)
        .header("content-type", "application/wasm")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

/// Rates that once overflowed the token bucket (a hot loop in release, a panic in debug) are
/// refused; `/metrics` asks for its token when one is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_rate_limits_are_refused_and_metrics_can_be_guarded() {
    let mut config = test_config(&hookhost_tests::fresh_database("metrics").await);
    config.metrics_token = Some("mtr_secret".into());
    let s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    for rate in [json!(1e-300), json!(0), json!(-1), json!(1e300), json!("fast")] {
        let (status, body) = s
            .call(Method::PATCH, &format!("/endpoints/{}", s.endpoint), Some(json!({ "rate_limit_per_s": rate })))
            .await;
        assert_eq!(status, 422, "{rate}: {body}");
    }
    assert_eq!(
        s.call(Method::PATCH, &format!("/endpoints/{}", s.endpoint), Some(json!({ "rate_limit_per_s": 0.5 }))).await.0,
        200
    );
    let metrics = s.server.url("/metrics");
    assert_eq!(s.server.http.get(&metrics).send().await.unwrap().status(), 401);
    assert_eq!(s.server.http.get(&metrics).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let r = s.server.http.get(&metrics).bearer_auth("mtr_secret").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("hookhost_jobs"));
}

/// 10,000 forged callbacks from one address, 20 KB each: answered 401 while its budget lasts,
/// then 429 with `Retry-After`, none stored past the budget and none stored whole; the real
/// provider's signed callbacks from the same address are never throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rejected_requests_from_one_address_are_throttled_not_stored() {
    let s = Setup::new(&["*"]).await;
    let started = std::time::Instant::now();
    let junk = "x".repeat(20_000);
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    let mut retry_after_seen = false;
    let forged = |i: usize| {
        let (http, url, junk) =
            (s.server.http.clone(), s.server.url(&format!("/hooks/{}/twilio/voice/status", s.tenant)), junk.clone());
        async move {
            let body: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("CallSid", format!("CAF{i}")), ("CallStatus", "ringing".into()), ("Junk", junk)])
                .finish();
            let r = http
                .post(url)
                .header("x-twilio-signature", "Zm9yZ2Vk")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }
    };
    let mut provider_latency = Vec::new();
    for wave in 0..100 {
        let batch: Vec<_> = (0..100).map(|i| tokio::spawn(forged(wave * 100 + i))).collect();
        // The real provider, from the same address, in the middle of the flood.
        let t = std::time::Instant::now();
        let r = s
            .server
            .twilio_status(
                &s.tenant,
                crate::TWILIO_TOKEN,
                &[("CallSid", &format!("CAREAL{wave}")), ("CallStatus", "ringing")],
            )
            .await;
        assert_eq!(r.status(), 200, "accepted traffic is never throttled");
        provider_latency.push(t.elapsed());
        for b in batch {
            let (status, retry_after) = b.await.unwrap();
            *answers.entry(status).or_default() += 1;
            retry_after_seen |= status == 429 && retry_after;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(answers.keys().copied().collect::<Vec<_>>(), vec![401, 429], "{answers:?}");
    assert!(retry_after_seen);
    provider_latency.sort();
    eprintln!(
        "10,000 forged requests in {elapsed:.1} s: {answers:?}; provider callbacks during the flood p50 {:?}, max {:?}",
        provider_latency[50], provider_latency[99]
    );

    hookhost_tests::sqlx_any();
    let db = sqlx::AnyPool::connect(&s.server.database_url).await.unwrap();
    let row: (i64, i64, i64) = s
        .server
        .eventually("the rejected receipts committed", || async {
            let row: (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(MAX(length(body)), 0), COALESCE(MIN(body_len), 0) FROM receipts WHERE verdict = 'rejected'",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            (row.0 as usize >= answers[&401] * 9 / 10).then_some(row)
        })
        .await;
    let (kept, longest, smallest_len) = row;
    let bound = 100.0 + 20.0 * elapsed + 1.0;
    assert!((kept as f64) <= bound, "{kept} rejected receipts kept, bound {bound}");
    assert!(
        longest <= 1024 && smallest_len > 20_000,
        "the first KiB kept, the length recorded: {longest} {smallest_len}"
    );
}

/// A leaked tenant key is replaced without downtime: a new key, the old one valid for the
/// overlap, then revoked at once; another tenant's key rotates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_rotate_with_an_overlap_and_are_revoked_at_once() {
    let s = Setup::new(&["*"]).await;
    let (status, rotated) = s.call(Method::POST, "/api-keys", Some(json!({ "overlap": "1h" }))).await;
    assert_eq!(status, 201, "{rotated}");
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    let prefix = rotated["prefix"].as_str().unwrap();
    assert!(new_key.starts_with(prefix) && prefix.starts_with("hk_"));
    let expires = rotated["previous_expires_at"].as_i64().unwrap();
    assert!(expires > hookhost_tests::now_s() * 1000, "{rotated}");

    let path = format!("/v1/tenants/{}", s.tenant);
    let status_with = |key: String| {
        let server = s.server.clone_client();
        let path = path.clone();
        async move { server.authed(Method::GET, &path, &key).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status_with(s.key.clone()).await, 200, "the old key, within the overlap");
    assert_eq!(status_with(new_key.clone()).await, 200);
    let (_, keys) = s.call_as(&new_key, Method::GET, "/api-keys", None).await;
    let listed: Vec<&str> = keys["data"].as_array().unwrap().iter().map(|k| k["prefix"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 2, "{keys}");
    assert!(!keys.to_string().contains(&new_key[11..]), "keys are never listed");
    let old_prefix = listed.iter().find(|p| **p != prefix).unwrap().to_string();
    let (status, _) = s.call_as(&new_key, Method::DELETE, &format!("/api-keys/{old_prefix}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(status_with(s.key.clone()).await, 401, "revoked at once");
    assert_eq!(status_with(new_key.clone()).await, 200);

    // An overlap of zero ends the previous key now; another tenant's key is refused.
    let (_, again) = s.call_as(&new_key, Method::POST, "/api-keys", Some(json!({ "overlap": 0 }))).await;
    assert_eq!(status_with(new_key.clone()).await, 401);
    let newest = again["api_key"].as_str().unwrap().to_string();
    let (other, other_key) = s.server.create_tenant("other").await;
    let r =
        s.server.authed(Method::POST, &format!("/v1/tenants/{}/api-keys", s.tenant), &other_key).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s.server.authed(Method::GET, &format!("/v1/tenants/{other}"), &newest).send().await.unwrap();
    assert_eq!(r.status(), 403);
    for bad in [json!({ "overlap": "forever" }), json!({ "overlap": -1 }), json!({ "overlap": "90d" })] {
        assert_eq!(s.call_as(&newest, Method::POST, "/api-keys", Some(bad.clone())).await.0, 422, "{bad}");
    }
}
