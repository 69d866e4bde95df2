//! The console at the HTTP level, attacked the way an anonymous client, a forged form or
//! another tenant would: every page needs a session, sign-in answers every bad key alike and
//! is throttled, forms need the session's anti-forgery token, another tenant's ids are 404,
//! and a session ends with sign-out, its key's revocation and its expiry. (What the pages do
//! in a browser is in `tests/browser`.)

use std::time::Duration;

use hookhost_tests::{ADMIN, TestServer, test_config};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::Setup;

/// A browser-like client of the console: no redirects followed, one cookie jar by hand.
struct Console {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Answer {
    status: u16,
    location: String,
    body: String,
}

impl Console {
    fn new(server: &TestServer) -> Self {
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        Self { http, base: server.base.clone(), cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.header("cookie", self.cookie_header()).send().await.unwrap();
        for c in r.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        Answer { status, location, body: r.text().await.unwrap() }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// Post a multipart plugin upload.
    async fn upload(&mut self, content_type: String, body: Vec<u8>) -> Answer {
        let url = format!("{}/console/plugins/upload", self.base);
        let req = self.http.post(url).header("content-type", content_type).body(body);
        self.send(req).await
    }

    /// Sign in with `key` through the form.
    async fn sign_in(&mut self, key: &str) -> Answer {
        let page = self.get("/console/sign-in").await;
        let token = csrf(&page.body);
        self.post("/console/sign-in", &[("key", key), ("csrf", &token)]).await
    }

    /// The anti-forgery token of a page of the console.
    async fn token(&mut self) -> String {
        csrf(&self.get("/console/endpoints").await.body)
    }
}

/// The `csrf` field's value in a page.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
    html[at..at + 64].to_string()
}

const PAGES: [&str; 10] = [
    "/console",
    "/console/events",
    "/console/events/rows?after=0",
    "/console/events/evt_x",
    "/console/endpoints",
    "/console/endpoints/ep_x",
    "/console/plugins",
    "/console/calls",
    "/console/contacts/+14155550100",
    "/console/setup",
];

#[tokio::test]
async fn every_page_and_form_needs_a_session() {
    let s = Setup::new(&["*"]).await;
    let mut anon = Console::new(&s.server);
    for page in PAGES {
        let a = anon.get(page).await;
        assert_eq!((a.status, a.location.as_str()), (303, "/console/sign-in"), "{page}");
    }
    anon.cookies.push(("hookhost_session".into(), "0".repeat(64)));
    for (path, form) in [
        ("/console/endpoints", vec![("url", "https://example.com")]),
        (&*format!("/console/endpoints/{}/test", s.endpoint), vec![]),
        ("/console/sign-out", vec![]),
        ("/console/events/evt_x/deliveries/1/retry", vec![]),
    ] {
        let a = anon.post(path, &form).await;
        assert_eq!((a.status, a.location.as_str()), (303, "/console/sign-in"), "{path} with a made-up session");
    }
    let (_, eps) = s.call(reqwest::Method::GET, "/endpoints", None).await;
    assert_eq!(eps["data"].as_array().unwrap().len(), 1, "nothing was created");
    // The pages answer with headers that keep them out of frames and caches.
    let mut c = Console::new(&s.server);
    assert_eq!(c.sign_in(&s.key).await.location, "/console");
    let r = s.server.http.get(s.server.url("/console")).header("cookie", c.cookie_header()).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
}

#[tokio::test]
async fn sign_in_answers_every_bad_key_alike_and_is_throttled() {
    // Ten attempts, then one an hour: however slow the machine, no token comes back meanwhile.
    let mut config = test_config(&hookhost_tests::fresh_database("console-throttle").await);
    config.console_sign_ins = hookhost::ingest::throttle::Rate { per_second: 1.0 / 3600.0, burst: 10.0 };
    let s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    let (_, rotated) = s.call(reqwest::Method::POST, "/api-keys", Some(json!({ "overlap": 0 }))).await;
    let new_key = rotated["api_key"].as_str().unwrap().to_string();
    let mut c = Console::new(&s.server);
    let mut refusals = Vec::new();
    // An unknown key, the key just rotated out, an empty one, the operator token with a typo.
    for key in ["hk_0000", s.key.as_str(), "", &format!("{ADMIN}x")] {
        let a = c.sign_in(key).await;
        assert_eq!(a.status, 401, "{key:?}");
        assert!(a.body.contains("That key was not accepted."));
        assert!(!c.cookies.iter().any(|(n, _)| n == "hookhost_session"), "no session for {key:?}");
        refusals.push(a.body.replace(&csrf(&a.body), ""));
    }
    assert!(refusals.windows(2).all(|w| w[0] == w[1]), "the same answer whatever the reason");
    // A sign-in form posted without its double-submitted token (a forged log-in).
    let a = c.post("/console/sign-in", &[("key", &new_key), ("csrf", "0")]).await;
    assert_eq!(a.status, 403);
    // Four attempts so far; the bucket holds ten. Once it is spent, the right key is refused
    // too, before it is looked at.
    for _ in 0..6 {
        assert_eq!(c.sign_in("hk_wrong").await.status, 401);
    }
    let a = c.sign_in("hk_wrong").await;
    assert_eq!(a.status, 429);
    assert!(a.body.contains("Too many failed sign-ins"));
    let a = c.sign_in(&new_key).await;
    assert_eq!(a.status, 429, "throttled: {}", a.body);
    assert!(!c.cookies.iter().any(|(n, _)| n == "hookhost_session"));
}

#[tokio::test]
async fn forms_without_the_session_token_are_refused_and_change_nothing() {
    let s = Setup::new(&["*"]).await;
    let mut c = Console::new(&s.server);
    c.sign_in(&s.key).await;
    let token = c.token().await;
    for forged in ["", "0000", &token[..63]] {
        let a = c.post("/console/endpoints", &[("csrf", forged), ("url", "https://example.com/x")]).await;
        assert_eq!(a.status, 403, "{forged:?}");
        let a = c.post(&format!("/console/endpoints/{}/rotate-secret", s.endpoint), &[("csrf", forged)]).await;
        assert_eq!(a.status, 403);
        assert_eq!(c.post("/console/sign-out", &[("csrf", forged)]).await.status, 403);
    }
    let (_, ep) = s.call(reqwest::Method::GET, &format!("/endpoints/{}", s.endpoint), None).await;
    assert_eq!(ep["secret"], s.secret.as_str(), "the secret was not rotated");
    let (_, eps) = s.call(reqwest::Method::GET, "/endpoints", None).await;
    assert_eq!(eps["data"].as_array().unwrap().len(), 1);
    assert_eq!(c.get("/console").await.status, 200, "still signed in");
    // With the token the same form works.
    let a = c.post("/console/endpoints", &[("csrf", &token), ("url", "https://example.com/x")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("shown this once"));
}

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let s = Setup::new(&["*"]).await;
    s.call_status("CA_console_other", "completed").await;
    let event = s.events().await[0]["id"].as_str().unwrap().to_string();
    let (other, other_key) = s.server.create_tenant("other").await;
    assert_ne!(other, s.tenant);
    let mut c = Console::new(&s.server);
    c.sign_in(&other_key).await;
    let token = c.token().await;
    for page in [format!("/console/events/{event}"), format!("/console/endpoints/{}", s.endpoint)] {
        assert_eq!(c.get(&page).await.status, 404, "{page}");
    }
    let forms = [
        format!("/console/endpoints/{}/test", s.endpoint),
        format!("/console/endpoints/{}/rotate-secret", s.endpoint),
        format!("/console/endpoints/{}", s.endpoint),
        format!("/console/events/{event}/replay"),
        format!("/console/events/{event}/deliveries/1/retry"),
    ];
    for path in &forms {
        let a = c.post(path, &[("csrf", &token), ("endpoint_id", &s.endpoint), ("url", "https://example.com/y")]).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
    }
    assert!(!c.get("/console/events").await.body.contains(&event), "the list shows only the session's tenant");
    // A tenant's session cannot reach the operator's picker.
    assert_eq!(c.get("/console/tenants").await.status, 404);
    assert_eq!(c.post("/console/tenants", &[("csrf", &token), ("tenant_id", &s.tenant)]).await.status, 404);
    let (_, ep) = s.call(reqwest::Method::GET, &format!("/endpoints/{}", s.endpoint), None).await;
    assert_eq!(ep["secret"], s.secret.as_str());
    // The overview counts the session's tenant only.
    assert!(c.get("/console").await.body.contains("<strong>0</strong> events"));
    let mut own = Console::new(&s.server);
    own.sign_in(&s.key).await;
    assert!(own.get("/console").await.body.contains("<strong>1</strong> events"));
}

#[tokio::test]
async fn the_operator_picks_a_tenant_and_sessions_end() {
    let clock = hookhost::Clock::system();
    let config = test_config(&hookhost_tests::fresh_database("console").await);
    let server = TestServer::start_with_clock(config, clock.clone()).await;
    let s = Setup::on(server, &["*"]).await;
    let mut op = Console::new(&s.server);
    assert_eq!(op.sign_in(ADMIN).await.location, "/console/tenants");
    assert_eq!(op.get("/console/events").await.location, "/console/tenants", "no tenant picked yet");
    let picker = op.get("/console/tenants").await;
    assert!(picker.body.contains(&s.tenant));
    let token = csrf(&picker.body);
    assert_eq!(op.post("/console/tenants", &[("csrf", &token), ("tenant_id", &s.tenant)]).await.status, 303);
    assert_eq!(op.get("/console/events").await.status, 200);
    assert_eq!(op.post("/console/tenants", &[("csrf", &token), ("tenant_id", "ten_nope")]).await.status, 404);

    // Sign-out ends the session at once.
    let mut c = Console::new(&s.server);
    c.sign_in(&s.key).await;
    let stolen = c.cookies.clone();
    let token = c.token().await;
    assert_eq!(c.post("/console/sign-out", &[("csrf", &token)]).await.location, "/console/sign-in");
    c.cookies = stolen;
    assert_eq!(c.get("/console").await.location, "/console/sign-in", "a signed-out cookie is dead");

    // Revoking the key the session was opened with ends it.
    c.cookies.clear();
    c.sign_in(&s.key).await;
    assert_eq!(c.get("/console").await.status, 200);
    let prefix = &s.key[..11];
    let (status, _) = s.call(reqwest::Method::DELETE, &format!("/api-keys/{prefix}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(c.get("/console").await.location, "/console/sign-in");

    // Sessions expire (HOOKHOST_CONSOLE_SESSION, 8 h by default).
    assert_eq!(op.get("/console").await.status, 200);
    clock.advance(Duration::from_secs(8 * 3600 + 1));
    assert_eq!(op.get("/console").await.location, "/console/sign-in");
}

#[tokio::test]
async fn the_calls_contacts_set_up_and_filters_show_the_tenants_data() {
    let s = Setup::new(&["*"]).await;
    s.call_status("CA_console_calls", "no-answer").await;
    let sms = [("MessageSid", "SM_console_stop"), ("From", "+14158675309"), ("To", "+18005551212"), ("Body", "STOP")];
    let path = format!("/hooks/{}/twilio/sms/inbound", s.tenant);
    let sig = hookhost_tests::twilio_signature(crate::TWILIO_TOKEN, &format!("{}{path}", s.server.public_url), &sms);
    assert_eq!(s.server.post_twilio(&path, &sig, &sms).await.status(), 200);
    let mut c = Console::new(&s.server);
    c.sign_in(&s.key).await;

    let calls = c.get("/console/calls").await;
    assert!(calls.body.contains("href=\"/console/calls/CA_console_calls\""), "{}", calls.body);
    assert!(calls.body.contains(">missed<"));
    let call = c.get("/console/calls/CA_console_calls").await;
    assert!(call.body.contains("CallStatus=no-answer"), "the call's signal, whole: {}", call.body);
    assert!(call.body.contains("[redacted]"), "its signature redacted");
    assert_eq!(c.get("/console/calls/CA_unknown").await.status, 404);

    let contact = c.get("/console/contacts/+14158675309").await;
    assert!(contact.body.contains("opted out") && contact.body.contains("STOP"), "{}", contact.body);
    assert!(contact.body.contains("sms.opt_out") && contact.body.contains("call.missed"), "{}", contact.body);

    let setup = c.get("/console/setup").await;
    let voice = format!("{}/hooks/{}/twilio/voice/inbound", s.server.public_url, s.tenant);
    assert!(setup.body.contains(&voice), "the exact URL to paste: {}", setup.body);
    assert!(setup.body.contains(&format!("{}/hooks/{}/stripe", s.server.public_url, s.tenant)));
    let configured = |id: &str| {
        let at = setup.body.find(&format!("id=\"{id}\"")).unwrap();
        setup.body[at..at + 200].contains(">configured<")
    };
    assert!(configured("twilio") && configured("stripe") && !configured("exotel"));

    let billing = c.get("/console/events?type=billing.*").await;
    assert!(!billing.body.contains("call.missed") && billing.body.contains("No events yet."));
    let sms_only = c.get("/console/events?type=sms.*").await;
    assert!(sms_only.body.contains("sms.opt_out") && !sms_only.body.contains("call.missed"));
    let future = c.get("/console/events?since=2100-01-01T00:00:00Z").await;
    assert!(future.body.contains("No events yet."));
    let past = c.get("/console/events?until=2000-01-01T00:00:00Z").await;
    assert!(past.body.contains("No events yet."));
    assert!(c.get("/console/events?since=0&until=4102444800").await.body.contains("sms.opt_out"));
    let bad = c.get("/console/events?type=not%20a%20type").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("is not an event type"));
}

#[tokio::test]
async fn endpoint_and_plugin_forms_do_what_the_api_does() {
    let s = Setup::new(&["*"]).await;
    let mut c = Console::new(&s.server);
    c.sign_in(&s.key).await;
    let token = c.token().await;
    // Create: the secret is shown once, on the answer, and never on the endpoint's page again.
    let created = c
        .post(
            "/console/endpoints",
            &[("csrf", &token), ("url", "http://127.0.0.1:9/x"), ("event_types", "call.*, sms.opt_out")],
        )
        .await;
    let at = created.body.find("whsec_").expect("the new secret");
    let secret = &created.body[at..created.body[at..].find('<').unwrap() + at];
    let (_, eps) = s.call(reqwest::Method::GET, "/endpoints", None).await;
    let ep = eps["data"].as_array().unwrap().iter().find(|e| e["url"] == "http://127.0.0.1:9/x").unwrap().clone();
    let eid = ep["id"].as_str().unwrap();
    assert_eq!(ep["secret"], secret);
    assert_eq!(ep["event_types"], json!(["call.*", "sms.opt_out"]));
    assert!(!c.get(&format!("/console/endpoints/{eid}")).await.body.contains(secret));
    // Invalid settings are refused with the API's message, nothing changed.
    let bad = c.post(&format!("/console/endpoints/{eid}"), &[("csrf", &token), ("url", "ftp://x")]).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    // Disable (the checkbox unticked), then rotate, then recover.
    let saved =
        c.post(&format!("/console/endpoints/{eid}"), &[("csrf", &token), ("url", "http://127.0.0.1:9/x")]).await;
    assert_eq!(saved.location, format!("/console/endpoints/{eid}"));
    let (_, ep) = s.call(reqwest::Method::GET, &format!("/endpoints/{eid}"), None).await;
    assert_eq!((ep["enabled"].as_bool(), ep["event_types"].clone()), (Some(false), json!(["*"])));
    let rotated = c.post(&format!("/console/endpoints/{eid}/rotate-secret"), &[("csrf", &token)]).await;
    let (_, ep) = s.call(reqwest::Method::GET, &format!("/endpoints/{eid}"), None).await;
    assert_ne!(ep["secret"], secret);
    assert!(rotated.body.contains(ep["secret"].as_str().unwrap()), "the new secret, once");
    let recovered = c.post(&format!("/console/endpoints/{eid}/recover"), &[("csrf", &token), ("since", "0")]).await;
    assert!(recovered.body.contains("0 failed deliveries since 0 queued again"), "{}", recovered.body);
    let bad_since =
        c.post(&format!("/console/endpoints/{eid}/recover"), &[("csrf", &token), ("since", "yesterday")]).await;
    assert_eq!(bad_since.status, 422);

    // Replay an event to the tenant's first endpoint from its page: a second delivery.
    s.call_status("CA_console_replay", "no-answer").await;
    let event = s.event_id_of("call.missed").await;
    s.server.settled("delivery").await;
    let deliveries = |body: &str| body.matches("data-kind=\"delivery\"").count();
    let before = deliveries(&c.get(&format!("/console/events/{event}")).await.body);
    let replayed =
        c.post(&format!("/console/events/{event}/replay"), &[("csrf", &token), ("endpoint_id", &s.endpoint)]).await;
    assert_eq!(replayed.location, format!("/console/events/{event}"));
    assert_eq!(deliveries(&c.get(&format!("/console/events/{event}")).await.body), before + 1);

    // Plugins: two versions of `default`, roll back to the first from the page.
    let (status, _) = s.server.upload_plugin(&s.tenant, &s.key, hookhost_tests::plugins::PASSTHROUGH).await;
    assert_eq!(status, 202);
    let (status, _) = s.server.upload_plugin(&s.tenant, &s.key, hookhost_tests::plugins::REDACT_PHONE).await;
    assert_eq!(status, 202);
    let page = c.get("/console/plugins").await;
    assert!(page.body.contains("Roll back"), "{}", page.body);
    let a = c.post("/console/plugins/default/versions/1/activate", &[("csrf", &token)]).await;
    assert_eq!(a.location, "/console/plugins");
    let (_, p) = s.call(reqwest::Method::GET, "/plugins/default", None).await;
    assert_eq!(p["active_version"], 1);
    assert_eq!(c.post("/console/plugins/default/versions/9/activate", &[("csrf", &token)]).await.status, 404);
}

#[tokio::test]
async fn behind_https_the_session_cookie_is_secure() {
    let mut config = test_config(&hookhost_tests::fresh_database("console-https").await);
    config.public_url = "https://hooks.example.com".into();
    let s = Setup::on(TestServer::start_keeping_public_url(config).await, &["*"]).await;
    let c = Console::new(&s.server);
    let page = c.http.get(format!("{}/console/sign-in", c.base)).send().await.unwrap();
    let pre = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(pre.contains("; Secure") && pre.contains("HttpOnly") && pre.contains("SameSite=Strict"), "{pre}");
    let token = csrf(&page.text().await.unwrap());
    let body =
        form_urlencoded::Serializer::new(String::new()).extend_pairs([("key", &s.key), ("csrf", &token)]).finish();
    let r = c
        .http
        .post(format!("{}/console/sign-in", c.base))
        .header("cookie", pre.split(';').next().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("hookhost_session="));
    let session = session.expect("a session cookie");
    assert!(session.contains("; Secure") && session.contains("HttpOnly") && session.contains("SameSite=Strict"));
}

/// A multipart form as a browser sends it: `csrf`, `name`, and `file` with `bytes`.
fn upload_form(csrf: &str, name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----hookhostconsoletest";
    let mut body = Vec::new();
    for (field, value) in [("csrf", csrf), ("name", name)] {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
        )
        .bytes(),
    );
    body.extend(bytes);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn uploads_through_the_page_keep_the_apis_limits() {
    let mut config = test_config(&hookhost_tests::fresh_database("console-upload").await);
    config.max_plugin_bytes = 64 * 1024;
    let s = Setup::on(TestServer::start_with(config).await, &["*"]).await;
    let mut c = Console::new(&s.server);
    c.sign_in(&s.key).await;
    let token = c.token().await;
    // Over the limit and the 64 KiB the form's own fields may add: 413, nothing stored.
    let (ct, body) = upload_form(&token, "big", &vec![0u8; 136 * 1024]);
    let a = c.upload(ct, body).await;
    assert_eq!(a.status, 413, "{}", a.body);
    // Not a component: the API's 422. Without the token: 403.
    let (ct, body) = upload_form(&token, "junk", b"\0asm\x01\0\0\0 a core module, not a component");
    assert_eq!(c.upload(ct, body).await.status, 422);
    let real = std::fs::read(hookhost_tests::plugins::PASSTHROUGH).unwrap();
    let (ct, body) = upload_form("forged", "default", &real);
    assert_eq!(c.upload(ct, body).await.status, 403);
    let (ct, body) = upload_form(&token, "Bad Name", &real);
    assert_eq!(c.upload(ct, body).await.status, 422);
    let (_, plugins) = s.call(reqwest::Method::GET, "/plugins", None).await;
    assert_eq!(plugins["data"].as_array().map(Vec::len), Some(0), "{plugins}");
}
