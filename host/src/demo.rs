//! `hookhost demo`: one command for a newcomer. Starts the service on a temporary SQLite
//! database with a demo tenant and a local receiver, builds and activates the `redact-phone`
//! example plugin when the wasm target is installed, posts a few signed sample callbacks (a
//! missed call, a forwarded call, an SMS STOP, a Stripe invoice) through the real provider
//! routes, and prints the console's URL and a sign-in key. Uses only the public HTTP API and
//! the providers' own signing schemes; owns no state of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use hookhost::Config;
use hookhost::ingest::{stripe, twilio};
use serde_json::{Value, json};

/// A client of the demo's own server.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let r = req.send().await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// A receiver on 127.0.0.1 that answers 200 and prints what it gets.
async fn receiver() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        let ty = v["event_type"].as_str().or(v["type"].as_str()).unwrap_or("?").to_string();
        println!("  receiver ← {ty} {}", v["id"].as_str().unwrap_or(""));
        "ok"
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}

/// The repository's `plugins/` (when this binary runs from a checkout) and whether the wasm
/// target is installed: then `redact-phone` is built from source.
fn build_redact_phone() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_path_buf();
    let manifest = root.join("plugins/Cargo.toml");
    if !manifest.is_file() {
        return None;
    }
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output().ok()?;
    if !String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") {
        println!("  (wasm32-wasip2 is not installed: no plugin; `rustup target add wasm32-wasip2` adds it)");
        return None;
    }
    let target = root.join("target/wasm-plugins");
    println!("  building plugins/redact-phone for wasm32-wasip2 …");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "-p", "redact-phone", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .ok()?;
    let wasm = target.join("wasm32-wasip2/release/redact_phone.wasm");
    (status.success() && wasm.is_file()).then_some(wasm)
}

/// Post a Twilio form to `route`, signed with `token` over the public URL.
async fn twilio_post(api: &Api, public: &str, route: &str, token: &str, params: &[(&str, &str)]) -> anyhow::Result<()> {
    let owned: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let signature = twilio::sign(&format!("{public}{route}"), &owned, token);
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let r = api
        .http
        .post(format!("{}{route}", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("{route}: {}", r.status());
    }
    Ok(())
}

/// Start the demo on `listen` and serve until Ctrl-C.
pub async fn run(listen: &str) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("hookhost-demo-{}", hex::encode(rand::random::<[u8; 4]>())));
    std::fs::create_dir_all(&dir)?;
    let admin = format!("adm_{}", hex::encode(rand::random::<[u8; 16]>()));
    let mut config = Config::new(format!("sqlite://{}", dir.join("demo.db").display()), admin.clone());
    config.public_url = format!("http://{listen}");
    config.outbound_allow = hookhost::config::parse_cidrs("127.0.0.0/8")?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let public = config.public_url.clone();
    let server = tokio::spawn(hookhost::run(config, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    }));

    let api = Api { http: reqwest::Client::new(), base: public.clone(), token: admin.clone() };
    for _ in 0..500 {
        if api.http.get(format!("{public}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("hookhost demo: data in {}", dir.display());
    let tenant = api.call(reqwest::Method::POST, "/v1/tenants", Some(json!({ "name": "Demo Plumbing" }))).await?;
    let (id, key) = (tenant["id"].as_str().unwrap_or_default(), tenant["api_key"].as_str().unwrap_or_default());
    let api = Api { token: key.to_string(), ..api };
    let t = |p: &str| format!("/v1/tenants/{id}{p}");
    let twilio_token = hex::encode(rand::random::<[u8; 16]>());
    let stripe_secret = format!("whsec_{}", hex::encode(rand::random::<[u8; 16]>()));
    api.call(reqwest::Method::PUT, &t("/providers/twilio"), Some(json!({ "auth_token": twilio_token }))).await?;
    api.call(reqwest::Method::PUT, &t("/providers/stripe"), Some(json!({ "webhook_secret": stripe_secret }))).await?;
    api.call(reqwest::Method::PUT, &t("/numbers/+18005551212"), Some(json!({ "forward_to": "+14155550123" }))).await?;
    let receiver = receiver().await?;
    api.call(reqwest::Method::POST, &t("/endpoints"), Some(json!({ "url": receiver, "event_types": ["*"] }))).await?;
    if let Some(wasm) = build_redact_phone() {
        let r = api
            .http
            .post(format!("{public}{}", t("/plugins")))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(std::fs::read(&wasm)?)
            .send()
            .await?;
        println!("  redact-phone uploaded: {}", r.status());
        // Its compile takes a moment; the samples wait for it so they run through it.
        for _ in 0..300 {
            let p = api.call(reqwest::Method::GET, &t("/plugins/default"), None).await?;
            if p["active_version"].is_i64() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    println!("  posting signed sample callbacks …");
    let hooks = format!("/hooks/{id}");
    let account = ("AccountSid", "AC00000000000000000000000000000000");
    // A missed call: to a number without forwarding, nobody answers.
    let missed = [account, ("CallSid", "CA_demo_missed"), ("From", "+14155550100"), ("To", "+18005559999")];
    twilio_post(&api, &public, &format!("{hooks}/twilio/voice/inbound"), &twilio_token, &missed).await?;
    let mut status = missed.to_vec();
    status.extend([("CallStatus", "no-answer"), ("Direction", "inbound")]);
    twilio_post(&api, &public, &format!("{hooks}/twilio/voice/status"), &twilio_token, &status).await?;
    // A forwarded call: the tracked number forwards, the forward answers.
    let fwd = [account, ("CallSid", "CA_demo_forwarded"), ("From", "+14155550111"), ("To", "+18005551212")];
    twilio_post(&api, &public, &format!("{hooks}/twilio/voice/inbound"), &twilio_token, &fwd).await?;
    let mut dial = fwd.to_vec();
    dial.extend([("DialCallStatus", "completed"), ("DialBridged", "true"), ("DialCallDuration", "42")]);
    twilio_post(&api, &public, &format!("{hooks}/twilio/voice/dial-complete"), &twilio_token, &dial).await?;
    let mut done = fwd.to_vec();
    done.extend([("CallStatus", "completed"), ("CallDuration", "45"), ("Direction", "inbound")]);
    twilio_post(&api, &public, &format!("{hooks}/twilio/voice/status"), &twilio_token, &done).await?;
    // An SMS STOP.
    let stop =
        [account, ("MessageSid", "SM_demo_stop"), ("From", "+14155550100"), ("To", "+18005551212"), ("Body", "STOP")];
    twilio_post(&api, &public, &format!("{hooks}/twilio/sms/inbound"), &twilio_token, &stop).await?;
    // A Stripe invoice.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let invoice = json!({ "id": "evt_demo_invoice_paid", "object": "event", "type": "invoice.paid", "created": now,
        "livemode": false, "data": { "object": { "id": "in_demo", "object": "invoice", "customer": "cus_demo",
        "status": "paid", "amount_paid": 4900, "currency": "usd" } } })
    .to_string();
    let r = api
        .http
        .post(format!("{public}{hooks}/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", format!("t={now},v1={}", stripe::sign(&stripe_secret, now, invoice.as_bytes())))
        .body(invoice)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("stripe sample: {}", r.status());
    }

    println!();
    println!("  console:       {public}/console");
    println!("  sign in with:  {key}");
    println!("  operator:      {admin}");
    println!("  tenant:        {id}");
    println!("  Ctrl-C stops the demo (its data stays in {}).", dir.display());
    server.await?.map_err(anyhow::Error::from)
}
