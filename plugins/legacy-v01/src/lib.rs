//! A plugin built against the frozen `hookhost:plugin@0.1.0` world (`wit/v0.1/plugin.wit`) with
//! plain wit-bindgen, as components uploaded before 0.2.0 were: it must keep working. It uses
//! every 0.1.0 import that needs no grant — `log`, `kv-get`, `now-ms` — and delivers the payload
//! with `"world": "0.1.0"` and the key-value store's `owner` added; `drop` for `sms.*`.

mod bindings {
    #![allow(clippy::too_many_arguments, clippy::crate_in_macro_def)]
    wit_bindgen::generate!({ path: "../../wit/v0.1", world: "plugin", pub_export_macro: true, default_bindings_module: "crate::bindings" });
}

use bindings::{Guest, export};

use bindings::hookhost::plugin::host::{Level, kv_get, log, now_ms};
use bindings::hookhost::plugin::types::{Action, Deliver, Event, PluginError};

struct Legacy;

impl Guest for Legacy {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        if event.event_type.starts_with("sms.") {
            return Ok(vec![Action::Drop("legacy plugin drops messages".into())]);
        }
        log(Level::Info, &format!("legacy plugin at {} ms", now_ms()));
        // The payload is a JSON object: add two fields before its closing brace.
        let body = event.payload.trim_end();
        let Some(open) = body.strip_suffix('}') else {
            return Err(PluginError { code: "bad_payload".into(), message: "not an object".into(), retryable: false });
        };
        let owner = kv_get("owner").unwrap_or_default().replace(['"', '\\'], "");
        let sep = if open.trim_end().ends_with('{') { "" } else { "," };
        let payload = format!("{open}{sep}\"world\":\"0.1.0\",\"owner\":\"{owner}\"}}");
        Ok(vec![Action::Deliver(Deliver { event_type: event.event_type, payload, endpoints: Vec::new() })])
    }
}

export!(Legacy);
