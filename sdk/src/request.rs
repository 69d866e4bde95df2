//! Deliveries whose whole request the plugin shapes (`hookhost:plugin@0.2.0`): the body as
//! given with its content type, extra headers, the method and a path appended to each
//! endpoint's URL. hookhost still owns the endpoint's URL, its signature headers (computed over
//! the body's exact bytes) and its own headers.
//!
//! ```
//! use hookhost_sdk::{Action, serde_json::json};
//!
//! // A flat JSON body instead of hookhost's envelope, PUT to `{endpoint URL}/calls/CA1`.
//! let action: Action = hookhost_sdk::deliver_raw("call.completed", &json!({ "event": "call.completed" }))
//!     .method("PUT")
//!     .path("/calls/CA1")
//!     .header("X-Api-Version", "2")
//!     .into();
//! # let _ = action;
//! ```
//!
//! What the host refuses (the run fails with the reason, so `hookhost plugin run` shows it):
//! a method other than `POST`/`PUT`/`PATCH`; a path not starting with `/` or `?`, with `.`/`..`
//! segments, `#`, spaces or control characters; the headers hookhost sets (`host`,
//! `content-length`, `content-type` — use [`RawDelivery::text`] — and hop-by-hop ones), the
//! signature headers (`webhook-*`, `x-hookhost-*` and the endpoint's configured names); more
//! than 32 headers; a JSON content type with a body that is not JSON. Only the last plugin of a
//! chain may shape the request.

use serde_json::Value;

use crate::{Action, Deliver, OutboundRequest};

/// A delivery with a shaped request, built step by step; an [`Action`] through `into()`.
#[derive(Debug, Clone)]
pub struct RawDelivery {
    deliver: Deliver,
    request: OutboundRequest,
}

/// Deliver `body` (JSON, sent byte for byte as `serde_json` writes it) as the whole request
/// body of an event of `event_type`, to every subscribed endpoint. The body is also the
/// delivery's payload, so an endpoint's `ordered_by` field and sinks' default mapping read it.
pub fn deliver_raw(event_type: &str, body: &Value) -> RawDelivery {
    let text = body.to_string();
    RawDelivery::new(event_type, text.clone(), "application/json", text)
}

impl RawDelivery {
    fn new(event_type: &str, payload: String, content_type: &str, body: String) -> Self {
        RawDelivery {
            deliver: Deliver { event_type: event_type.into(), payload, endpoints: Vec::new(), request: None },
            request: OutboundRequest {
                method: "POST".into(),
                path: String::new(),
                headers: Vec::new(),
                content_type: content_type.into(),
                body,
            },
        }
    }

    /// Deliver `body` as it is with its `content_type` (`text/plain`, `application/xml`,
    /// `application/x-www-form-urlencoded`, …). It has no payload: no `ordered_by` key.
    pub fn text(event_type: &str, content_type: &str, body: impl Into<String>) -> Self {
        RawDelivery::new(event_type, String::new(), content_type, body.into())
    }

    /// `POST` (the default), `PUT` or `PATCH`.
    pub fn method(mut self, method: &str) -> Self {
        self.request.method = method.into();
        self
    }

    /// Append `/more/path`, `/path?query` or `?query` to each endpoint's URL.
    pub fn path(mut self, path: &str) -> Self {
        self.request.path = path.into();
        self
    }

    /// Add a header (the endpoint's own headers, configured by the tenant, win on a clash).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers.push((name.into(), value.into()));
        self
    }

    /// Deliver only to these endpoint ids (still only if subscribed to the event type).
    pub fn to_endpoints(mut self, ids: &[&str]) -> Self {
        self.deliver.endpoints = ids.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The payload that keys ordered deliveries and sinks' default mapping (not sent).
    pub fn payload(mut self, payload: &Value) -> Self {
        self.deliver.payload = payload.to_string();
        self
    }
}

impl From<RawDelivery> for Action {
    fn from(raw: RawDelivery) -> Action {
        Action::Deliver(Deliver { request: Some(raw.request), ..raw.deliver })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_the_whole_request() {
        let action: Action = deliver_raw("call.completed", &json!({ "call_id": 7 }))
            .method("PATCH")
            .path("/calls?x=1")
            .header("X-A", "1")
            .to_endpoints(&["ep_1"])
            .into();
        let Action::Deliver(d) = action else { panic!("a deliver action") };
        let r = d.request.expect("a request");
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.content_type.as_str()),
            ("PATCH", "/calls?x=1", "application/json")
        );
        assert_eq!((r.body.as_str(), d.payload.as_str()), (r#"{"call_id":7}"#, r#"{"call_id":7}"#));
        assert_eq!((r.headers, d.endpoints), (vec![("X-A".into(), "1".into())], vec!["ep_1".to_string()]));
        let Action::Deliver(d) = RawDelivery::text("sms.received", "text/plain", "hi").into() else { panic!() };
        assert_eq!((d.payload.as_str(), d.request.unwrap().body.as_str()), ("", "hi"));
    }
}
