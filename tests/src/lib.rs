//! Test support for hookhost's end-to-end tests and benchmarks: the real server on 127.0.0.1
//! with a fresh database (SQLite, or PostgreSQL with `HOOKHOST_TEST_STORE=postgres`), a recording receiver on 127.0.0.1, providers' signing done
//! independently of the host's code, and the paths of plugins built from `plugins/`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use hookhost::Config;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Paths of the example plugins, built by this crate's build script from the plugins
/// workspace's members (`PASSTHROUGH`, `REDACT_PHONE`, …, and `ALL`).
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// How long a test waits for something that should happen (generous: tests assert behaviour,
/// not speed).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const ADMIN: &str = "adm_test_token";

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hookhost-{tag}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        hex::encode(rand_bytes())
    ));
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

fn rand_bytes() -> [u8; 4] {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    t.to_le_bytes()
}

/// A running hookhost.
pub struct TestServer {
    pub base: String,
    /// The URL providers sign against (the listener's unless configured otherwise).
    pub public_url: String,
    pub database_url: String,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), hookhost::RunError>>>,
}

/// `url` with `password` as its password unless it has one.
pub fn with_password(url: &str, password: &str) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    if u.password().is_none() {
        u.set_password(Some(password)).unwrap();
    }
    u.to_string()
}

/// Install sqlx's drivers for `sqlx::AnyPool` (tests that read the database directly).
pub fn sqlx_any() {
    sqlx::any::install_default_drivers();
}

/// Configuration for tests: fast retries, loopback allowed, the given database.
/// The PostgreSQL server tests use: `HOOKHOST_TEST_PG`, by default the one on 127.0.0.1.
pub fn postgres_url() -> String {
    std::env::var("HOOKHOST_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether this run puts the servers it starts on PostgreSQL (`HOOKHOST_TEST_STORE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("HOOKHOST_TEST_STORE").as_deref() == Ok("postgres")
}

/// A fresh, empty database for one test: a SQLite file, or with `HOOKHOST_TEST_STORE=postgres`
/// a database of its own on [`postgres_url`] (which must answer then).
pub async fn fresh_database(tag: &str) -> String {
    if on_postgres() {
        return postgres_database(tag)
            .await
            .unwrap_or_else(|e| panic!("HOOKHOST_TEST_STORE=postgres but {} does not answer: {e}", postgres_url()));
    }
    format!("sqlite://{}", temp_dir(tag).join("hookhost.db").display())
}

/// A new, empty database on [`postgres_url`]'s server, named for this process so a later run
/// drops it (databases of processes no longer running are dropped on first use).
pub async fn postgres_database(tag: &str) -> Result<String, sqlx::Error> {
    use sqlx::{AssertSqlSafe, Connection};
    static N: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let admin = postgres_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    if !SWEPT.swap(true, Ordering::SeqCst) {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'hh\\_test\\_%'")
                .fetch_all(&mut conn)
                .await?;
        for name in names {
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
    let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    let name = format!("hh_test_{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), tag.to_lowercase());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    let (server, _) = admin.rsplit_once('/').expect("a postgres URL ends with /database");
    Ok(format!("{server}/{name}"))
}

/// The key test servers seal secrets with (base64 of 32 bytes).
pub const SECRET_KEY: &str = "aG9va2hvc3QtdGVzdHMtc2VjcmV0LWtleS0zMmJ5dGU=";

pub fn test_config(database_url: &str) -> Config {
    let mut c = Config::new(database_url, ADMIN);
    c.secret_key = Some(SECRET_KEY.into());
    c.retry_schedule = hookhost::config::parse_schedule("50ms,100ms,200ms").unwrap();
    c.outbound_allow = hookhost::config::parse_cidrs("127.0.0.0/8").unwrap();
    c.delivery_timeout = Duration::from_secs(10);
    c.idle_poll = Duration::from_millis(50);
    c
}

impl TestServer {
    /// Start on a fresh SQLite database.
    pub async fn start() -> Self {
        Self::start_with(test_config(&fresh_database("db").await)).await
    }

    /// Start with a config; its public URL is set to the listener's address.
    pub async fn start_with(config: Config) -> Self {
        Self::start_inner(config, true).await
    }

    /// Start with a config, keeping its public URL.
    pub async fn start_keeping_public_url(config: Config) -> Self {
        Self::start_inner(config, false).await
    }

    /// Start with a config, every stage reading time from `clock` (the test advances it).
    pub async fn start_with_clock(config: Config, clock: hookhost::Clock) -> Self {
        Self::start_on(config, true, clock).await
    }

    /// A client of a server running elsewhere (another process), with the same helpers.
    pub fn external(base: &str, public_url: &str, database_url: &str) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self {
            base: base.to_string(),
            public_url: public_url.to_string(),
            database_url: database_url.to_string(),
            http,
            shutdown: None,
            handle: None,
        }
    }

    async fn start_inner(config: Config, own_public_url: bool) -> Self {
        Self::start_on(config, own_public_url, hookhost::Clock::system()).await
    }

    async fn start_on(mut config: Config, own_public_url: bool, clock: hookhost::Clock) -> Self {
        // The server's logs, when asked for (`RUST_LOG=hookhost=debug cargo test … -- --nocapture`).
        if std::env::var_os("RUST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::from_default_env();
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        if own_public_url {
            config.public_url = base.clone();
        }
        let public_url = config.public_url.clone();
        let database_url = config.database_url.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(hookhost::run_with_clock(config, clock, listener, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let server = Self { base, public_url, database_url, http, shutdown: Some(tx), handle: Some(handle) };
        for _ in 0..500 {
            if let Ok(r) = server.http.get(format!("{}/readyz", server.base)).send().await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("hookhost did not become ready");
    }

    /// Stop gracefully and wait for it.
    /// A client of the same server (for tasks of their own); does not stop it when dropped.
    pub fn clone_client(&self) -> Self {
        Self::external(&self.base, &self.public_url, &self.database_url)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server stopped cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with a bearer token.
    pub fn authed(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// GET JSON with a token, asserting 200.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let r = self.authed(reqwest::Method::GET, path, token).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}: {}", r.text().await.unwrap_or_default());
        r.json().await.unwrap()
    }

    /// Create a tenant: (id, api_key).
    pub async fn create_tenant(&self, name: &str) -> (String, String) {
        let r = self
            .authed(reqwest::Method::POST, "/v1/tenants", ADMIN)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (v["id"].as_str().unwrap().to_string(), v["api_key"].as_str().unwrap().to_string())
    }

    pub async fn set_provider(&self, tenant: &str, key: &str, provider: &str, body: Value) {
        let r = self
            .authed(reqwest::Method::PUT, &format!("/v1/tenants/{tenant}/providers/{provider}"), key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    }

    /// Create an endpoint: (id, secret).
    pub async fn create_endpoint(&self, tenant: &str, key: &str, url: &str, event_types: &[&str]) -> (String, String) {
        let r = self
            .authed(reqwest::Method::POST, &format!("/v1/tenants/{tenant}/endpoints"), key)
            .json(&json!({ "url": url, "event_types": event_types, "headers": {} }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        let v: Value = r.json().await.unwrap();
        (v["id"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string())
    }

    /// Upload a plugin component file as the tenant's `default` plugin, activated once it is
    /// compiled: the status, and (for a new version, 202) the version as it stands once its
    /// compilation ended (`state` `ready` or `invalid`, `active`), else the answer's body.
    pub async fn upload_plugin(&self, tenant: &str, key: &str, path: &str) -> (u16, Value) {
        self.upload(tenant, key, None, path).await
    }

    /// Upload a component as a version of `name` (or of the `default` plugin, activated when
    /// ready), waiting for its compilation as [`upload_plugin`](Self::upload_plugin) does.
    pub async fn upload(&self, tenant: &str, key: &str, name: Option<&str>, path: &str) -> (u16, Value) {
        let bytes = std::fs::read(path).expect("plugin built by build.rs");
        self.upload_component(tenant, key, name, bytes).await
    }

    /// [`upload`](Self::upload) of a component's bytes.
    pub async fn upload_component(&self, tenant: &str, key: &str, name: Option<&str>, bytes: Vec<u8>) -> (u16, Value) {
        let route = match name {
            Some(n) => format!("/v1/tenants/{tenant}/plugins/{n}"),
            None => format!("/v1/tenants/{tenant}/plugins"),
        };
        let r = self
            .authed(reqwest::Method::POST, &route, key)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 202 {
            return (status, body);
        }
        assert_eq!(body["state"], "compiling", "{body}");
        let name = body["name"].as_str().unwrap().to_string();
        let done = self.compiled(tenant, key, &name, body["version"].as_i64().unwrap()).await;
        let mut out = body;
        for (k, v) in done.as_object().unwrap() {
            out[k] = v.clone();
        }
        (status, out)
    }

    /// Wait until version `version` of plugin `name` is no longer compiling: the version as
    /// listed then (`state` `ready` or `invalid`).
    pub async fn compiled(&self, tenant: &str, key: &str, name: &str, version: i64) -> Value {
        self.eventually("the upload to be compiled", || async {
            let plugin = self.get_json(&format!("/v1/tenants/{tenant}/plugins/{name}"), key).await;
            let v = plugin["versions"].as_array()?.iter().find(|v| v["version"] == version)?.clone();
            (v["state"] != "compiling").then_some(v)
        })
        .await
    }

    /// POST a Twilio voice status callback signed with `token` over this server's public URL.
    pub async fn twilio_status(&self, tenant: &str, token: &str, params: &[(&str, &str)]) -> reqwest::Response {
        let path = format!("/hooks/{tenant}/twilio/voice/status");
        let sig = twilio_signature(token, &format!("{}{path}", self.public_url), params);
        self.post_twilio(&path, &sig, params).await
    }

    pub async fn post_twilio(&self, path: &str, signature: &str, params: &[(&str, &str)]) -> reqwest::Response {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        self.http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// POST a Stripe event signed with `secret` at unix time `t`.
    pub async fn stripe(&self, tenant: &str, secret: &str, t: i64, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/hooks/{tenant}/stripe")))
            .header("content-type", "application/json")
            .header("stripe-signature", format!("t={t},v1={}", stripe_signature(secret, t, body)))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Jobs of `kind` not yet finished (pending or running), from `/metrics`.
    pub async fn unfinished_jobs(&self, kind: &str) -> i64 {
        let text = self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("hookhost_jobs{{kind=\"{kind}\",status=\"pending\"}}"))
                    || l.starts_with(&format!("hookhost_jobs{{kind=\"{kind}\",status=\"running\"}}"))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
            .sum()
    }

    /// Wait until every job of `kind` has finished.
    pub async fn settled(&self, kind: &str) {
        self.eventually(&format!("all {kind} jobs to finish"), || async {
            (self.unfinished_jobs("plugin").await == 0 && self.unfinished_jobs(kind).await == 0).then_some(())
        })
        .await
    }

    /// Poll until `f` returns Some, up to [`PATIENCE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A `hookhost serve` process (the binary at `bin`), started on a free port of 127.0.0.1 and
/// killed with SIGKILL when dropped; its log goes to a file.
pub struct Process {
    child: std::process::Child,
    /// A client of it, with the helpers of an in-process server.
    pub client: TestServer,
    pub log: PathBuf,
}

impl Process {
    /// Start it on `database_url`, signed for at `public_url`, with short leases and retries
    /// (and `env` on top); returns once `/readyz` answers. Its log filter is
    /// `HOOKHOST_TEST_SERVER_LOG` (default `warn`).
    pub async fn start(bin: &str, name: &str, database_url: &str, public_url: &str, env: &[(&str, &str)]) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = temp_dir("process").join(format!("{name}.log"));
        let child = std::process::Command::new(bin)
            .arg("serve")
            .env("HOOKHOST_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKHOST_DATABASE_URL", database_url)
            .env("HOOKHOST_ADMIN_TOKEN", ADMIN)
            .env("HOOKHOST_SECRET_KEY", SECRET_KEY)
            .env("HOOKHOST_PUBLIC_URL", public_url)
            .env("HOOKHOST_OUTBOUND_ALLOW", "127.0.0.0/8")
            .env("HOOKHOST_JOB_LEASE", "3s")
            .env("HOOKHOST_RETRY_SCHEDULE", "200ms,500ms,1s,2s")
            .env("HOOKHOST_LOG", std::env::var("HOOKHOST_TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start hookhost serve");
        let client = TestServer::external(&format!("http://127.0.0.1:{port}"), public_url, database_url);
        let process = Process { child, client, log };
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(r) = process.client.http.get(process.client.url("/readyz")).send().await
                && r.status().is_success()
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} did not become ready; its log: {}", process.log.display());
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Load for tests and benchmarks: signed Twilio status callbacks, each a completed call (one
/// canonical event), posted round-robin over one or more servers.
pub mod load {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::{TestServer, twilio_signature};

    /// What a load run saw.
    #[derive(Debug, Default)]
    pub struct Posted {
        /// Call sids answered 2xx (each owed one delivered event).
        pub accepted: HashSet<String>,
        /// Requests that got no 2xx (refused connection, error status).
        pub refused: usize,
        /// Latency of each 2xx answer, sorted.
        pub latencies: Vec<Duration>,
    }

    /// Post callbacks `0..n` for `tenant` (Twilio auth token `token`), `concurrency` at a
    /// time, callback `i` to `targets[i % len]`, each signed for its target's public URL.
    /// `answered` counts the 2xx as they come.
    pub async fn post_completed_calls(
        targets: Arc<Vec<TestServer>>,
        tenant: &str,
        token: &str,
        n: usize,
        concurrency: usize,
        answered: Arc<AtomicUsize>,
    ) -> Posted {
        let tenants = Arc::new(vec![(tenant.to_string(), token.to_string())]);
        post_calls(targets, tenants, 0..n, concurrency, answered).await
    }

    /// Post callbacks numbered `ids` (each a call of its own), callback `i` for
    /// `tenants[i % len]` (tenant id, Twilio auth token) to `targets[i % len]`, `concurrency` at
    /// a time, each signed for its target's public URL. `answered` counts the 2xx as they come.
    pub async fn post_calls(
        targets: Arc<Vec<TestServer>>,
        tenants: Arc<Vec<(String, String)>>,
        ids: std::ops::Range<usize>,
        concurrency: usize,
        answered: Arc<AtomicUsize>,
    ) -> Posted {
        let next = Arc::new(AtomicUsize::new(ids.start));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (targets, tenants, next, answered, end) =
                (targets.clone(), tenants.clone(), next.clone(), answered.clone(), ids.end);
            tasks.push(tokio::spawn(async move {
                let mut seen = Posted::default();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= end {
                        return seen;
                    }
                    let (tenant, token) = &tenants[i % tenants.len()];
                    let path = format!("/hooks/{tenant}/twilio/voice/status");
                    let sid = format!("CA{i:032}");
                    let params = [
                        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                        ("CallSid", sid.as_str()),
                        ("CallStatus", "completed"),
                        ("From", "+14158675309"),
                        ("To", "+18005551212"),
                        ("Direction", "inbound"),
                    ];
                    let target = &targets[i % targets.len()];
                    let sig = twilio_signature(token, &format!("{}{path}", target.public_url), &params);
                    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
                    let started = Instant::now();
                    let sent = target
                        .http
                        .post(target.url(&path))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("x-twilio-signature", sig)
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            seen.latencies.push(started.elapsed());
                            seen.accepted.insert(sid);
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        // A killed server refuses; what was never answered 2xx is not owed.
                        _ => seen.refused += 1,
                    }
                }
            }));
        }
        let mut all = Posted::default();
        for t in tasks {
            let seen = t.await.unwrap();
            all.accepted.extend(seen.accepted);
            all.refused += seen.refused;
            all.latencies.extend(seen.latencies);
        }
        all.latencies.sort();
        all
    }

    /// The `p` quantile (0–1) of sorted durations.
    pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }
}

/// Twilio's algorithm, written independently of the host: base64 HMAC-SHA1 over the URL and
/// the sorted name+value pairs.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut s = url.to_string();
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(s.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Stripe's `v1`: hex HMAC-SHA256 keyed with the whole secret over `{t}.{body}`.
pub fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Sign as a Standard Webhooks sender would: `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`.
pub fn standard_sign(secret: &str, id: &str, ts: i64, body: &str) -> String {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Verify a Standard Webhooks delivery as a receiver would.
pub fn verify_standard_webhook(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (id, ts, sigs) = (get("webhook-id"), get("webhook-timestamp"), get("webhook-signature"));
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = B64.encode(mac.finalize().into_bytes());
    sigs.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// Verify the hookhost style (`X-Hookhost-Signature: t=…,v1=…`) as a receiver would: hex
/// HMAC-SHA256 with the decoded `whsec_` key over `{t}.{body}`; any `v1` may match.
pub fn verify_hookhost_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    verify_hookhost_signature_in("x-hookhost-signature", secret, headers, body)
}

/// [`verify_hookhost_signature`] with the signature in header `name` (an endpoint's own).
pub fn verify_hookhost_signature_in(name: &str, secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut t = None;
    let mut sigs = Vec::new();
    for pair in header.split(',') {
        match pair.split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    sigs.contains(&expected)
}

pub fn now_s() -> i64 {
    hookhost::now_ms() / 1000
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: reqwest::Method,
    /// The request's path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the receiver answered.
    pub answered: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("delivery body is JSON")
    }
    pub fn header(&self, n: &str) -> String {
        self.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }
}

/// A webhook receiver on 127.0.0.1 that records every request and answers scripted statuses:
/// first those queued with [`Receiver::script`], then the default status.
pub struct Receiver {
    pub url: String,
    pub addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Received>,
    script: Arc<Mutex<VecDeque<u16>>>,
    default_status: Arc<AtomicU16>,
    /// (substring, remaining): requests whose body contains it get 503 while remaining > 0.
    fail_rules: Arc<Mutex<Vec<(String, usize)>>>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    pub count: Arc<AtomicUsize>,
    _server: JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let default_status = Arc::new(AtomicU16::new(200));
        let count = Arc::new(AtomicUsize::new(0));
        let fail_rules: Arc<Mutex<Vec<(String, usize)>>> = Arc::new(Mutex::new(Vec::new()));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s, d, c, f, dl) =
            (script.clone(), default_status.clone(), count.clone(), fail_rules.clone(), delay_ms.clone());
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let (s, d, c, f, dl, tx) = (s.clone(), d.clone(), c.clone(), f.clone(), dl.clone(), tx.clone());
                async move {
                    let at = std::time::Instant::now();
                    let delay = dl.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    let text = String::from_utf8_lossy(&body).into_owned();
                    let ruled = f
                        .lock()
                        .unwrap()
                        .iter_mut()
                        .find(|(needle, left)| *left > 0 && text.contains(needle.as_str()))
                        .map(|(_, left)| {
                            *left -= 1;
                            503
                        });
                    let answered = ruled
                        .unwrap_or_else(|| s.lock().unwrap().pop_front().unwrap_or_else(|| d.load(Ordering::SeqCst)));
                    c.fetch_add(1, Ordering::SeqCst);
                    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("a method");
                    let uri = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                    let _ = tx.send(Received { method, uri, headers, body, answered, at });
                    StatusCode::from_u16(answered).unwrap()
                }
            },
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/hook"),
            addr,
            rx,
            script,
            default_status,
            fail_rules,
            delay_ms,
            count,
            _server: server,
        }
    }

    /// Answer 503 to the first `times` requests whose body contains `needle`.
    pub fn fail_matching(&self, needle: &str, times: usize) {
        self.fail_rules.lock().unwrap().push((needle.to_string(), times));
    }

    /// Take this long to answer each request.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answer these statuses to the next requests, in order.
    pub fn script(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// Answer this status once the script is used up.
    pub fn set_default(&self, status: u16) {
        self.default_status.store(status, Ordering::SeqCst);
    }

    /// The next request, waiting up to [`PATIENCE`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("timed out waiting for a delivery")
            .expect("receiver open")
    }

    /// The next request if one comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.rx.recv()).await.ok().flatten()
    }
}

/// Hand-made components for the tests of the sandbox's caps: a real plugin with sections
/// appended (a component may interleave its sections).
pub mod components {
    use wasm_encoder::{Component, CustomSection, InstanceSection, Module, ModuleArg, ModuleSection};

    /// Sections encoded alone, without the component header.
    fn sections(c: Component) -> Vec<u8> {
        c.finish()[8..].to_vec()
    }

    /// The plugin at `path` with a custom section holding `n`: a distinct component (its own
    /// digest) that compiles and runs like the original.
    pub fn distinct(path: &str, n: u64) -> Vec<u8> {
        let mut bytes = std::fs::read(path).unwrap();
        let mut c = Component::new();
        let data = n.to_le_bytes();
        c.section(&CustomSection { name: "hookhost-test".into(), data: data.as_slice().into() });
        bytes.extend(sections(c));
        bytes
    }

    /// The plugin at `path` grown by a custom section of `extra` bytes: a large component
    /// (componentize-py and componentize-js make 10–20 MB ones) that is still a valid plugin.
    pub fn padded(path: &str, extra: usize) -> Vec<u8> {
        let mut bytes = std::fs::read(path).unwrap();
        let mut c = Component::new();
        let data = vec![0x5a; extra];
        c.section(&CustomSection { name: "hookhost-padding".into(), data: data.as_slice().into() });
        bytes.extend(sections(c));
        bytes
    }

    /// The plugin at `path` with one more (empty) core module instantiated `extra` times: still
    /// a valid plugin of our world, with `extra` more core instances.
    pub fn with_core_instances(path: &str, extra: u32) -> Vec<u8> {
        let mut bytes = std::fs::read(path).unwrap();
        let modules = wasmparser::Parser::new(0)
            .parse_all(&bytes)
            .filter(|p| matches!(p, Ok(wasmparser::Payload::ModuleSection { .. })))
            .count() as u32;
        // Nested components' modules are parsed as well; only the outer ones count, and this
        // plugin's outer component holds every module directly.
        let mut c = Component::new();
        c.section(&ModuleSection(&Module::new()));
        let mut instances = InstanceSection::new();
        for _ in 0..extra {
            instances.instantiate(modules, Vec::<(&str, ModuleArg)>::new());
        }
        c.section(&instances);
        bytes.extend(sections(c));
        bytes
    }
}
