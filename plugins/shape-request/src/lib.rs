//! Shapes each event's whole request as the tenant's key-value entry `shape` says:
//! `{"method", "path", "headers": [[name, value]], "content_type", "body"}`, each optional (the
//! body defaults to the event's payload). Made for trying every shape against the host's checks,
//! hostile ones included; with no `shape` entry it delivers the envelope unchanged.
use hookhost_sdk::serde_json::{self, Value};
use hookhost_sdk::{Action, Event, Plugin, PluginError, RawDelivery};

struct ShapeRequest;

fn bad(message: String) -> PluginError {
    PluginError { code: "bad_shape".into(), message, retryable: false }
}

impl Plugin for ShapeRequest {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let Some(spec) = hookhost_sdk::kv_get("shape") else {
            return Ok(vec![hookhost_sdk::deliver_unchanged(&event)]);
        };
        let spec: Value = serde_json::from_str(&spec).map_err(|e| bad(format!("shape is not JSON: {e}")))?;
        let text = |k: &str| spec.get(k).and_then(Value::as_str);
        let body = text("body").map_or_else(|| event.payload.clone(), str::to_string);
        let mut raw = RawDelivery::text(&event.event_type, text("content_type").unwrap_or(""), body)
            .method(text("method").unwrap_or(""))
            .path(text("path").unwrap_or(""))
            .payload(&event.payload_json()?);
        for pair in spec.get("headers").and_then(Value::as_array).into_iter().flatten() {
            let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
                return Err(bad(format!("a header is [name, value], not {pair}")));
            };
            raw = raw.header(name, value);
        }
        Ok(vec![raw.into()])
    }
}

hookhost_sdk::export!(ShapeRequest);
