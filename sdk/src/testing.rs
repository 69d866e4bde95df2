//! Test helpers for plugin authors: build events and run a plugin natively, against a
//! stand-in host whose key-value store, clock and captured logs the test controls.
//!
//! ```
//! use hookhost_sdk::{Action, Event, Plugin, PluginError, testing};
//!
//! struct Tag;
//! impl Plugin for Tag {
//!     fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
//!         let owner = hookhost_sdk::kv_get("owner").unwrap_or_default();
//!         let mut p = event.payload_json()?;
//!         p["owner"] = owner.into();
//!         Ok(vec![hookhost_sdk::deliver(&event.event_type, &p)])
//!     }
//! }
//!
//! testing::reset();
//! testing::kv_insert("owner", "ada");
//! let actions = Tag::handle(testing::event("call.missed", serde_json::json!({ "call_id": "CA1" }))).unwrap();
//! let delivered = testing::delivered(&actions);
//! assert_eq!(delivered[0].1["owner"], "ada");
//! ```
//!
//! The same plugin built as a component runs in hookhost's sandbox with `hookhost plugin run
//! --component … --event …`, or in tests through the `hookhost` crate's `plugin::local::run`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Action, Event, HttpRequest, Level, OutboundRequest};

#[derive(Default)]
struct Host {
    kv: BTreeMap<String, String>,
    logs: Vec<(Level, String)>,
    now_ms: u64,
    kv_write: bool,
    /// URL → (status, body) answered by `http_fetch`.
    http: BTreeMap<String, (u16, String)>,
    fetched: Vec<HttpRequest>,
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host { now_ms: 1_760_084_505_000, kv_write: true, ..Host::default() });
}

/// Clear the stand-in host: empty key-value store and logs, the clock at 2025-10-10, writes
/// allowed.
pub fn reset() {
    HOST.with(|h| *h.borrow_mut() = Host { now_ms: 1_760_084_505_000, kv_write: true, ..Host::default() });
}

/// Put a key into the stand-in key-value store.
pub fn kv_insert(key: &str, value: &str) {
    HOST.with(|h| h.borrow_mut().kv.insert(key.to_string(), value.to_string()));
}

/// The stand-in key-value store now.
pub fn kv_snapshot() -> BTreeMap<String, String> {
    HOST.with(|h| h.borrow().kv.clone())
}

/// Grant or refuse `kv_set`, as a tenant's `kv_write` limit does.
pub fn allow_kv_write(allowed: bool) {
    HOST.with(|h| h.borrow_mut().kv_write = allowed);
}

/// Answer `http_fetch` of `url` (any method) with `status` and `body`. Other URLs get an error,
/// as a host not on the tenant's allow-list would.
pub fn http_route(url: &str, status: u16, body: &str) {
    HOST.with(|h| h.borrow_mut().http.insert(url.to_string(), (status, body.to_string())));
}

/// The requests `http_fetch` was asked for so far.
pub fn fetched() -> Vec<HttpRequest> {
    HOST.with(|h| h.borrow().fetched.clone())
}

/// Set the stand-in clock, unix milliseconds.
pub fn set_now_ms(now: u64) {
    HOST.with(|h| h.borrow_mut().now_ms = now);
}

/// The log lines written so far.
pub fn logs() -> Vec<(Level, String)> {
    HOST.with(|h| h.borrow().logs.clone())
}

/// An event as hookhost would pass it: id `evt_test`, tenant `ten_test`, source `test`.
pub fn event(event_type: &str, payload: Value) -> Event {
    Event {
        id: "evt_test".into(),
        tenant_id: "ten_test".into(),
        event_type: event_type.into(),
        occurred_at: 1_760_084_505,
        source: "test".into(),
        is_test: false,
        payload: payload.to_string(),
    }
}

/// The `deliver` actions as `(event type, payload)`, payloads parsed.
pub fn delivered(actions: &[Action]) -> Vec<(String, Value)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(d) => Some((d.event_type.clone(), serde_json::from_str(&d.payload).unwrap_or(Value::Null))),
            _ => None,
        })
        .collect()
}

/// The `deliver` actions that shape their request, as `(event type, request)`.
pub fn requests(actions: &[Action]) -> Vec<(String, &OutboundRequest)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(d) => d.request.as_ref().map(|r| (d.event_type.clone(), r)),
            _ => None,
        })
        .collect()
}

/// The host functions as the SDK calls them when compiled natively.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) mod host {
    use super::HOST;
    use crate::{HttpRequest, HttpResponse, Level};

    pub fn log(level: Level, message: &str) {
        HOST.with(|h| h.borrow_mut().logs.push((level, message.to_string())));
    }

    pub fn kv_get(key: &str) -> Option<String> {
        HOST.with(|h| h.borrow().kv.get(key).cloned())
    }

    pub fn kv_set(key: &str, value: Option<&str>) -> Result<(), String> {
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            if !h.kv_write {
                return Err("kv_write is not granted to this tenant's plugins".into());
            }
            match value {
                Some(v) => h.kv.insert(key.to_string(), v.to_string()),
                None => h.kv.remove(key),
            };
            Ok(())
        })
    }

    pub fn now_ms() -> u64 {
        HOST.with(|h| h.borrow().now_ms)
    }

    pub fn http_fetch(req: &HttpRequest) -> Result<HttpResponse, String> {
        HOST.with(|h| {
            let mut h = h.borrow_mut();
            h.fetched.push(req.clone());
            match h.http.get(&req.url) {
                Some((status, body)) => Ok(HttpResponse { status: *status, headers: Vec::new(), body: body.clone() }),
                None => Err(format!("no stand-in route for {} (testing::http_route)", req.url)),
            }
        })
    }
}
