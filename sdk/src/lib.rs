//! # hookhost-sdk — write hookhost plugins in Rust
//!
//! A hookhost plugin is a WebAssembly component that exports one function, `handle`, from the
//! `hookhost:plugin@0.2.0` world (`wit/plugin.wit`). hookhost calls it once per canonical event in
//! a fresh sandbox and acts on the [`Action`]s it returns: deliver to endpoints (in hookhost's
//! envelope, or as a whole request the plugin shapes: [`deliver_raw`]), write to a sink, or drop. This crate owns the guest side of that contract: the generated bindings, typed
//! helpers for payloads and actions, and redaction helpers. It must not depend on anything that
//! needs a host capability the world does not grant (filesystem, network, environment).
//!
//! ```ignore
//! use hookhost_sdk::{Action, Event, Plugin, PluginError};
//!
//! struct KeepMissedCalls;
//!
//! impl Plugin for KeepMissedCalls {
//!     fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
//!         if event.event_type != "call.missed" {
//!             return Ok(vec![Action::Drop("not a missed call".into())]);
//!         }
//!         Ok(vec![hookhost_sdk::deliver_unchanged(&event)])
//!     }
//! }
//!
//! hookhost_sdk::export!(KeepMissedCalls);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`) and upload
//! `target/wasm32-wasip2/release/NAME.wasm` to `POST /v1/tenants/{id}/plugins`.
//!
//! ## The sandbox
//! A plugin runs with no filesystem, network, environment variables, arguments or sockets; it
//! has a fuel budget, a wall-clock deadline, a linear-memory cap, and caps on output size and
//! the number of actions. Exceeding any stops that invocation; the event is marked failed with
//! the reason. Only [`log`], [`kv_get`], [`kv_set`], [`now_ms`] and [`http_fetch`] reach the host.

#![deny(missing_docs)]

// The generated code names this crate by its public path, from inside it too.
extern crate self as hookhost_sdk;

#[cfg(all(target_arch = "wasm32", feature = "bump-alloc"))]
mod alloc;
pub mod events;
pub mod phone;
pub mod redact;
pub mod request;
pub mod testing;

/// Generated bindings for the `hookhost:plugin` world. Use the re-exports at the crate root.
#[allow(missing_docs, clippy::too_many_arguments)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "hookhost_sdk::bindings",
        runtime_path: "hookhost_sdk::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

/// The trait a plugin implements: `fn handle(event: Event) -> Result<Vec<Action>, PluginError>`.
pub use bindings::Guest as Plugin;
pub use bindings::export;
/// The level of a [`log`] line.
pub use bindings::hookhost::plugin::host::Level;
pub use bindings::hookhost::plugin::types::{Action, Deliver, Event, OutboundRequest, PluginError, SinkWrite};
pub use request::{RawDelivery, deliver_raw};
pub use serde_json;

use serde_json::Value;

// Inside a component the host functions are the component's imports; compiled natively (a
// plugin's unit tests) they go to the stand-in host of [`testing`].
#[cfg(target_arch = "wasm32")]
use bindings::hookhost::plugin::host;
#[cfg(not(target_arch = "wasm32"))]
use testing::host;

/// Write a log line; the host captures it with the invocation (size-limited).
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Read a value from the tenant's key-value store, for enrichment.
pub fn kv_get(key: &str) -> Option<String> {
    host::kv_get(key)
}

/// Set (`Some`) or delete (`None`) a key of the tenant's key-value store. Needs the tenant's
/// `kv_write` capability (`PUT /v1/tenants/{id}/limits {"kv_write": true}`). The write is
/// applied when the host commits the event's outcome, and never in a dry run; this
/// invocation's [`kv_get`] sees it at once.
pub fn kv_set(key: &str, value: Option<&str>) -> Result<(), String> {
    host::kv_set(key, value)
}

/// An outbound HTTP request ([`http_fetch`]).
pub use bindings::hookhost::plugin::host::{HttpRequest, HttpResponse};

/// Fetch a URL from one of the tenant's allow-listed hosts (`PUT /v1/tenants/{id}/limits
/// {"http_allow": ["api.example.com"]}`; none by default). The time counts against the
/// invocation's deadline; the body is capped; errors say which rule refused.
pub fn http_fetch(request: &HttpRequest) -> Result<HttpResponse, String> {
    host::http_fetch(request)
}

/// `GET url` with `headers`, the JSON body parsed; an error for a non-2xx status too.
pub fn get_json(url: &str, headers: &[(&str, &str)]) -> Result<Value, String> {
    let request = HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: None,
    };
    let response = http_fetch(&request)?;
    if !(200..300).contains(&response.status) {
        return Err(format!("GET {url}: status {}", response.status));
    }
    serde_json::from_str(&response.body).map_err(|e| format!("GET {url}: body is not JSON: {e}"))
}

/// The host's wall-clock time, unix milliseconds.
pub fn now_ms() -> u64 {
    host::now_ms()
}

impl Event {
    /// The payload parsed as JSON. A payload that does not parse is a non-retryable error.
    pub fn payload_json(&self) -> Result<Value, PluginError> {
        serde_json::from_str(&self.payload).map_err(|e| PluginError {
            code: "bad_payload".into(),
            message: format!("event payload is not JSON: {e}"),
            retryable: false,
        })
    }

    /// The event as its typed canonical form (see [`events`]).
    pub fn typed(&self) -> Result<events::Canonical, PluginError> {
        events::Canonical::parse(&self.event_type, &self.payload).map_err(|e| PluginError {
            code: "bad_payload".into(),
            message: format!("{} payload does not have its canonical shape: {e}", self.event_type),
            retryable: false,
        })
    }
}

/// A stable integer for a string id, for receivers whose contract has integer ids: the id
/// itself when it is a decimal integer below 2^53, otherwise 53 bits of its FNV-1a hash (safe in
/// JavaScript, and the same for the same id on every run and every replica; two different ids
/// share one with odds of about one in 10^15 per pair).
pub fn numeric_id(id: &str) -> u64 {
    const SAFE: u64 = (1 << 53) - 1;
    if let Ok(n) = id.parse::<u64>()
        && n <= SAFE
        && !id.starts_with('+')
    {
        return n;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    hash & SAFE
}

/// Deliver `payload` as an event of `event_type` to every subscribed endpoint.
pub fn deliver(event_type: &str, payload: &Value) -> Action {
    Action::Deliver(Deliver {
        event_type: event_type.to_string(),
        payload: payload.to_string(),
        endpoints: Vec::new(),
        request: None,
    })
}

/// Deliver the event as it came in.
pub fn deliver_unchanged(event: &Event) -> Action {
    Action::Deliver(Deliver {
        event_type: event.event_type.clone(),
        payload: event.payload.clone(),
        endpoints: Vec::new(),
        request: None,
    })
}

/// Drop the event on purpose, recording why.
pub fn drop_event(reason: &str) -> Action {
    Action::Drop(reason.to_string())
}

/// Write `record` to the tenant's sink named `sink`, keyed by `external_id`.
pub fn sink(sink: &str, external_id: &str, record: &Value) -> Action {
    Action::Sink(SinkWrite { sink: sink.to_string(), external_id: external_id.to_string(), data: record.to_string() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn numeric_ids_are_the_number_or_a_stable_53_bit_hash() {
        assert_eq!(super::numeric_id("1"), 1);
        assert_eq!(super::numeric_id("9007199254740991"), (1 << 53) - 1);
        let sid = super::numeric_id("CA0123456789abcdef0123456789abcdef");
        assert_eq!(sid, super::numeric_id("CA0123456789abcdef0123456789abcdef"), "stable");
        assert!(sid < 1 << 53 && sid != super::numeric_id("CA0123456789abcdef0123456789abcdee"));
        assert!(super::numeric_id("9007199254740992") < 1 << 53, "above 2^53 is hashed");
        assert_ne!(super::numeric_id("+5"), 5);
    }
}
