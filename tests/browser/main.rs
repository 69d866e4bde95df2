//! The console in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them): sign in, watch a signed callback appear on the
//! events page without reload, read its evidence chain, press an endpoint's test button, upload
//! a plugin and dry-run it against the active one, retry a failed delivery. The server, the
//! receiver and the plugins are the real ones of the end-to-end tests. A failing test saves a
//! screenshot under `target/tmp/browser-screenshots/`.
//!
//! Without chromedriver on the PATH the tests say so and pass, except under `CI` (or with
//! `HOOKHOST_BROWSER_TESTS=1`), where they fail: CI must run them.

mod scenarios;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hookhost_tests::{PATIENCE, Receiver, TestServer, twilio_signature};
use serde_json::json;

pub const TWILIO_TOKEN: &str = "twilio_auth_token_browser";

/// One browser at a time: Chromium is heavy on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A chromedriver process and the browser session it drives.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// Whether the browser tests must run (CI) rather than be skipped when no browser is here.
fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var("HOOKHOST_BROWSER_TESTS").is_ok_and(|v| v == "1")
}

impl Browser {
    /// Start chromedriver and a headless Chromium; `None` (said loudly) when not installed.
    async fn start() -> Option<Self> {
        if !on_path("chromedriver") {
            assert!(!required(), "chromedriver is not installed: apt-get install chromium chromium-driver");
            eprintln!("!!! SKIPPED: no chromedriver on the PATH (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let profile = hookhost_tests::temp_dir("chromium-profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", format!("--user-data-dir={}", profile.display())],
            }
        });
        let caps: serde_json::Map<String, serde_json::Value> = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(client) => return Some(Browser { client, driver, _profile: profile }),
                Err(e) if tokio::time::Instant::now() > deadline => panic!("chromedriver did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// Run a scenario in a fresh browser; on failure save a screenshot and fail with its path.
pub async fn run<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(browser) = Browser::start().await else { return };
    let outcome = tokio::spawn(scenario(browser.client.clone())).await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(panic) => Some(format!("panicked: {panic}")),
    };
    if let Some(failure) = failure {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        match browser.client.screenshot().await {
            Ok(png) => std::fs::write(&path, png).unwrap(),
            Err(e) => eprintln!("no screenshot: {e}"),
        }
        let _ = browser.client.clone().close().await;
        panic!("{name} failed: {failure}\nscreenshot: {}", path.display());
    }
    let _ = browser.client.clone().close().await;
}

/// A tenant with Twilio configured and one endpoint on a fresh receiver.
pub struct Scene {
    pub server: TestServer,
    pub tenant: String,
    pub key: String,
    pub receiver: Receiver,
    pub endpoint: String,
}

impl Scene {
    pub async fn new() -> Self {
        let server = TestServer::start().await;
        let (tenant, key) = server.create_tenant("Acme Plumbing").await;
        server.set_provider(&tenant, &key, "twilio", json!({ "auth_token": TWILIO_TOKEN })).await;
        let receiver = Receiver::start().await;
        let (endpoint, _) = server.create_endpoint(&tenant, &key, &receiver.url, &["*"]).await;
        Self { server, tenant, key, receiver, endpoint }
    }

    /// A signed Twilio status callback for a missed call from +14158675309.
    pub async fn missed_call(&self, call_sid: &str) {
        let path = format!("/hooks/{}/twilio/voice/status", self.tenant);
        let params = [
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("CallSid", call_sid),
            ("CallStatus", "no-answer"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Direction", "inbound"),
        ];
        let sig = twilio_signature(TWILIO_TOKEN, &format!("{}{path}", self.server.public_url), &params);
        let r = self.server.post_twilio(&path, &sig, &params).await;
        assert_eq!(r.status(), 200);
    }

    /// The id of the tenant's newest event of `event_type`, once there.
    pub async fn event_id(&self, event_type: &str) -> String {
        let path = format!("/v1/tenants/{}/events", self.tenant);
        self.server
            .eventually(event_type, || async {
                let page = self.server.get_json(&path, &self.key).await;
                let found = page["data"].as_array()?.iter().rev().find(|e| e["event_type"] == event_type)?.clone();
                Some(found["id"].as_str()?.to_string())
            })
            .await
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

/// Sign in through the form with `key`; lands on the overview.
pub async fn sign_in(c: &Client, scene: &Scene, key: &str) -> anyhow::Result<()> {
    c.goto(&scene.url("/console")).await?;
    anyhow::ensure!(c.current_url().await?.path() == "/console/sign-in", "not sent to the sign-in page");
    c.find(Locator::Css("#key")).await?.send_keys(key).await?;
    c.find(Locator::Css("button[type=submit]")).await?.click().await?;
    wait_for(c, "h1").await?;
    anyhow::ensure!(c.current_url().await?.path() == "/console", "not on the overview after sign-in");
    Ok(())
}

/// The first element matching `css`, waiting for it.
pub async fn wait_for(c: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    Ok(c.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await?)
}

/// Wait until the page's text contains `needle`, reloading with `reload` between looks.
pub async fn wait_for_text(c: &Client, needle: &str, reload: bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = c.find(Locator::Css("body")).await?.text().await?;
        if text.contains(needle) {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the page never showed {needle:?}:\n{text}");
        if reload {
            c.refresh().await?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
