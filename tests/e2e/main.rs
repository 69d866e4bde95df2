//! End-to-end tests: the real server (`hookhost::run`) on 127.0.0.1 with a temp SQLite
//! database, real plugins built from `plugins/`, real HTTP deliveries to receivers on 127.0.0.1.
//! One binary, several modules (svix's `tests/it` layout).

mod abuse;
mod api;
mod calls;
mod console;
mod delivery;
mod endpoints;
mod ingest;
mod isolation;
mod languages;
mod leases;
mod platform;
mod plugins;
mod reads;
mod routes;
mod seeds;
mod shaped;
mod sinks;
mod uploads;
mod vendors;

use hookhost_tests::{Receiver, TestServer};
use reqwest::Method;
use serde_json::Value;

/// A tenant with Twilio and Stripe configured and one endpoint on a fresh receiver.
pub struct Setup {
    pub server: TestServer,
    pub tenant: String,
    pub key: String,
    pub receiver: Receiver,
    pub endpoint: String,
    pub secret: String,
}

pub const TWILIO_TOKEN: &str = "twilio_auth_token_12345";
pub const STRIPE_SECRET: &str = "whsec_stripe_test_secret";

impl Setup {
    pub async fn new(event_types: &[&str]) -> Self {
        Self::on(TestServer::start().await, event_types).await
    }

    pub async fn on(server: TestServer, event_types: &[&str]) -> Self {
        let (tenant, key) = server.create_tenant("acme plumbing").await;
        server.set_provider(&tenant, &key, "twilio", serde_json::json!({ "auth_token": TWILIO_TOKEN })).await;
        server.set_provider(&tenant, &key, "stripe", serde_json::json!({ "webhook_secret": STRIPE_SECRET })).await;
        let receiver = Receiver::start().await;
        let (endpoint, secret) = server.create_endpoint(&tenant, &key, &receiver.url, event_types).await;
        Self { server, tenant, key, receiver, endpoint, secret }
    }

    /// A call to `/v1/tenants/{tenant}{path}` with the tenant's key: status and JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.key, method, path, body).await
    }

    /// The same call with the operator token.
    pub async fn operator(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(hookhost_tests::ADMIN, method, path, body).await
    }

    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.server.authed(method, &format!("/v1/tenants/{}{path}", self.tenant), token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A signed Twilio status callback for `call_sid` with `status`; asserts 200 + TwiML.
    pub async fn call_status(&self, call_sid: &str, status: &str) {
        let r = self
            .server
            .twilio_status(
                &self.tenant,
                TWILIO_TOKEN,
                &[
                    ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                    ("CallSid", call_sid),
                    ("CallStatus", status),
                    ("From", "+14158675309"),
                    ("To", "+18005551212"),
                    ("Direction", "inbound"),
                    ("ApiVersion", "2010-04-01"),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/xml");
        assert!(r.text().await.unwrap().contains("<Response"));
    }

    pub async fn events(&self) -> Vec<Value> {
        let v = self.server.get_json(&format!("/v1/tenants/{}/events", self.tenant), &self.key).await;
        v["data"].as_array().unwrap().clone()
    }

    pub async fn event(&self, event_id: &str) -> Value {
        self.server.get_json(&format!("/v1/tenants/{}/events/{event_id}", self.tenant), &self.key).await
    }

    pub async fn attempts(&self, event_id: &str) -> Vec<Value> {
        let v = self
            .server
            .get_json(&format!("/v1/tenants/{}/deliveries?event_id={event_id}", self.tenant), &self.key)
            .await;
        v["data"].as_array().unwrap().clone()
    }

    /// Wait until the event's processing status is no longer pending; returns its detail.
    pub async fn processed(&self, event_id: &str) -> Value {
        self.server
            .eventually("the event to be processed", || async {
                let e = self.event(event_id).await;
                (e["status"] != "pending").then_some(e)
            })
            .await
    }

    /// Wait until the event has `n` recorded delivery attempts.
    pub async fn attempts_n(&self, event_id: &str, n: usize) -> Vec<Value> {
        self.server
            .eventually(&format!("{n} delivery attempts"), || async {
                let a = self.attempts(event_id).await;
                (a.len() >= n).then_some(a)
            })
            .await
    }

    /// The id of the (first) event of a type.
    pub async fn event_id_of(&self, event_type: &str) -> String {
        let events = self.events().await;
        let e = events
            .iter()
            .find(|e| e["event_type"] == event_type)
            .unwrap_or_else(|| panic!("no {event_type} in {events:?}"));
        e["id"].as_str().unwrap().to_string()
    }

    /// The only event's id, once there is one.
    pub async fn single_event_id(&self) -> String {
        let events = self.events().await;
        assert_eq!(events.len(), 1, "{events:?}");
        events[0]["id"].as_str().unwrap().to_string()
    }
}
