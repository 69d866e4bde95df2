//! The OpenAPI 3.1 description of every route, served at `GET /openapi.json`: one table of
//! operations (method, path, summary, success status, body type), turned into the document
//! once. A unit test reads the router's source and fails when a route is missing here or an
//! entry names no route. Owns the description only; the handlers live in [`super`].

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No credentials (health, metrics, this document).
    Open,
    /// The provider's own signature (or Exotel's `?token=`), checked with the tenant's secret.
    Provider,
    /// The operator token or the tenant's API key as `Authorization: Bearer …`.
    Bearer,
}

/// What an operation's request body is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Json,
    Form,
    Wasm,
    Text,
}

struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    ok: u16,
    auth: Auth,
    body: Body,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    ok: u16,
    auth: Auth,
    body: Body,
) -> Op {
    Op { method, path, tag, summary, ok, auth, body }
}

use Auth::{Bearer, Open, Provider};
use Body::{Form, Json, None as NoBody, Text, Wasm};

#[rustfmt::skip]
static OPS: &[Op] = &[
    op("get", "/healthz", "service", "200 while the process runs", 200, Open, NoBody),
    op("get", "/readyz", "service", "200 when the database answers, 503 otherwise", 200, Open, NoBody),
    op("get", "/metrics", "service", "Prometheus text exposition", 200, Open, NoBody),
    op("get", "/openapi.json", "service", "This document", 200, Open, NoBody),
    op("post", "/hooks/{tenant}/twilio/voice/{leg}", "hooks", "Twilio voice webhook (leg: inbound, status, dial-complete); answers TwiML", 200, Provider, Form),
    op("post", "/hooks/{tenant}/twilio/sms/inbound", "hooks", "Twilio inbound SMS/MMS; answers empty TwiML", 200, Provider, Form),
    op("post", "/hooks/{tenant}/stripe", "hooks", "Stripe event (Stripe-Signature)", 200, Provider, Json),
    op("post", "/hooks/{tenant}/telephony/{vendor}", "hooks", "Any vendor signing with Standard Webhooks", 200, Provider, Json),
    op("post", "/hooks/{tenant}/telephony/{vendor}/sample", "hooks", "The same, with is_test forced true", 200, Provider, Json),
    op("get", "/hooks/{tenant}/exotel/passthru", "hooks", "Exotel Passthru applet (?token=)", 200, Provider, NoBody),
    op("post", "/hooks/{tenant}/exotel/passthru", "hooks", "Exotel Passthru applet (?token=)", 200, Provider, Form),
    op("post", "/hooks/{tenant}/exotel/status", "hooks", "Exotel StatusCallback (?token=)", 200, Provider, Form),
    op("post", "/v1/tenants", "tenants", "Create a tenant (operator only); returns its API key once", 201, Bearer, Json),
    op("get", "/v1/tenants/{id}", "tenants", "A tenant and its active plugin", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/api-keys", "tenants", "A new api key; the previous ones valid for the overlap", 201, Bearer, Json),
    op("get", "/v1/tenants/{id}/api-keys", "tenants", "The tenant's valid api keys by prefix", 200, Bearer, NoBody),
    op("delete", "/v1/tenants/{id}/api-keys/{prefix}", "tenants", "Revoke an api key at once", 204, Bearer, NoBody),
    op("put", "/v1/tenants/{id}/providers/{provider}", "tenants", "Set a provider's secret (twilio, stripe, exotel)", 204, Bearer, Json),
    op("put", "/v1/tenants/{id}/providers/vendor/{vendor}", "tenants", "Set a Standard Webhooks vendor's secret", 204, Bearer, Json),
    op("post", "/v1/tenants/{id}/endpoints", "endpoints", "Create a delivery endpoint", 201, Bearer, Json),
    op("get", "/v1/tenants/{id}/endpoints", "endpoints", "List endpoints", 200, Bearer, NoBody),
    op("get", "/v1/tenants/{id}/endpoints/{eid}", "endpoints", "An endpoint", 200, Bearer, NoBody),
    op("patch", "/v1/tenants/{id}/endpoints/{eid}", "endpoints", "Change an endpoint", 200, Bearer, Json),
    op("delete", "/v1/tenants/{id}/endpoints/{eid}", "endpoints", "Delete an endpoint", 204, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/endpoints/{eid}/rotate-secret", "endpoints", "Rotate the signing secret (the old one signs on for the overlap)", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/endpoints/{eid}/test", "endpoints", "Send a sample event now", 200, Bearer, Json),
    op("post", "/v1/tenants/{id}/endpoints/{eid}/recover", "endpoints", "Queue again every failed delivery since a time", 202, Bearer, Json),
    op("get", "/v1/tenants/{id}/events", "events", "Events, oldest first, by cursor", 200, Bearer, NoBody),
    op("get", "/v1/tenants/{id}/events/{event_id}", "events", "An event with its plugin runs and deliveries", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/events/{event_id}/replay", "events", "Deliver an event again to an endpoint", 202, Bearer, Json),
    op("get", "/v1/tenants/{id}/deliveries", "deliveries", "Deliveries by status and endpoint, or an event's attempts", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/deliveries/{did}/retry", "deliveries", "Queue a failed delivery again", 202, Bearer, NoBody),
    op("get", "/v1/tenants/{id}/receipts", "receipts", "Kept provider requests, newest first", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/receipts/{rid}/replay", "receipts", "Re-run a kept provider request", 202, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/sinks", "sinks", "Create a CRM sink (http-upsert or sql)", 201, Bearer, Json),
    op("get", "/v1/tenants/{id}/sinks", "sinks", "List sinks", 200, Bearer, NoBody),
    op("delete", "/v1/tenants/{id}/sinks/{sid}", "sinks", "Delete a sink (its pending writes fail)", 204, Bearer, NoBody),
    op("put", "/v1/tenants/{id}/numbers/{e164}", "telephony", "A tracked number's forwarding and voicemail", 200, Bearer, Json),
    op("get", "/v1/tenants/{id}/numbers/{e164}", "telephony", "A tracked number's settings", 200, Bearer, NoBody),
    op("get", "/v1/tenants/{id}/calls/{call_sid}", "telephony", "A call as its state machine holds it", 200, Bearer, NoBody),
    op("get", "/v1/tenants/{id}/contacts/{e164}", "telephony", "A contact's message thread and opt-out state", 200, Bearer, NoBody),
    op("get", "/v1/tenants/{id}/billing", "billing", "The tenant's billing state from Stripe", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/plugins", "plugins", "Upload a version of the plugin `default`, active at once", 201, Bearer, Wasm),
    op("get", "/v1/tenants/{id}/plugins", "plugins", "Plugins with their versions and which is active", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/plugins/{name}", "plugins", "Upload a new immutable version (validated, precompiled, not active)", 201, Bearer, Wasm),
    op("get", "/v1/tenants/{id}/plugins/{name}", "plugins", "One plugin and its versions", 200, Bearer, NoBody),
    op("delete", "/v1/tenants/{id}/plugins/{name}", "plugins", "Delete a plugin (409 while the chain names it)", 204, Bearer, NoBody),
    op("get", "/v1/tenants/{id}/plugins/usage", "plugins", "Invocations, failures, fuel and wall-time percentiles per version", 200, Bearer, NoBody),
    op("delete", "/v1/tenants/{id}/plugins/{name}/versions/{v}", "plugins", "Delete an inactive version", 204, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/plugins/{name}/versions/{v}/activate", "plugins", "Activate a version (an older one: rollback)", 200, Bearer, NoBody),
    op("post", "/v1/tenants/{id}/plugins/{name}/versions/{v}/dry-run", "plugins", "Run a version on the last N events, without effects", 200, Bearer, Json),
    op("put", "/v1/tenants/{id}/chain", "plugins", "Set the plugin chain per event-type pattern", 200, Bearer, Json),
    op("get", "/v1/tenants/{id}/chain", "plugins", "The plugin chain", 200, Bearer, NoBody),
    op("delete", "/v1/tenants/{id}/chain", "plugins", "Remove the chain (every active plugin runs)", 204, Bearer, NoBody),
    op("put", "/v1/tenants/{id}/limits", "plugins", "Override sandbox limits and capabilities", 200, Bearer, Json),
    op("get", "/v1/tenants/{id}/limits", "plugins", "Effective limits, the overrides and the ceiling", 200, Bearer, NoBody),
    op("put", "/v1/tenants/{id}/ceiling", "plugins", "Set the tenant's ceiling and capabilities (operator token only)", 200, Bearer, Json),
    op("get", "/v1/tenants/{id}/ceiling", "plugins", "The tenant's ceiling and capabilities", 200, Bearer, NoBody),
    op("put", "/v1/tenants/{id}/kv/{key}", "plugins", "Set a key-value entry (body: the value)", 204, Bearer, Text),
    op("get", "/v1/tenants/{id}/kv/{key}", "plugins", "A key-value entry", 200, Bearer, NoBody),
    op("delete", "/v1/tenants/{id}/kv/{key}", "plugins", "Delete a key-value entry", 204, Bearer, NoBody),
];

fn operation(op: &Op) -> Value {
    let params: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let mut o = json!({
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}', '-', '.'], "_")),
        "parameters": params,
        "responses": {
            op.ok.to_string(): { "description": "success" },
            "default": { "description": "an error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        }
    });
    let content = match op.body {
        Body::None => None,
        Body::Json => Some("application/json"),
        Body::Form => Some("application/x-www-form-urlencoded"),
        Body::Wasm => Some("application/wasm"),
        Body::Text => Some("text/plain"),
    };
    if let Some(ct) = content {
        o["requestBody"] = json!({ "required": true, "content": { ct: {} } });
    }
    match op.auth {
        Auth::Bearer => o["security"] = json!([{ "bearer": [] }]),
        Auth::Open | Auth::Provider => o["security"] = json!([]),
    }
    o
}

/// The document.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut paths = Map::new();
    for op in OPS {
        let item = paths.entry(op.path).or_insert_with(|| json!({}));
        item[op.method] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hookhost",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Telephony and billing callbacks in, verified, normalized, run through tenants' WebAssembly plugins, signed and delivered out."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "The operator token or a tenant's API key" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": { "error": { "type": "object", "properties": {
                        "code": { "type": "string" }, "message": { "type": "string" } } } }
                }
            }
        }
    })
});

#[cfg(test)]
mod tests {
    use super::*;

    /// (method, path) of every route the router's source registers.
    fn routes_in_source() -> Vec<(String, String)> {
        let source = [include_str!("mod.rs"), include_str!("plugins.rs")].concat();
        let mut out = Vec::new();
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let open = rest.find('"').expect("a path");
            let close = open + 1 + rest[open + 1..].find('"').expect("a closing quote");
            let path = rest[open + 1..close].to_string();
            // The handlers: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .expect("balanced")
                .0;
            let handlers = &rest[close..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                if handlers.contains(&format!(" {method}(")) || handlers.contains(&format!(".{method}(")) {
                    out.push((method.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_described_and_every_description_is_a_route() {
        let routes = routes_in_source();
        assert!(routes.len() > 40, "the source scan found the router: {routes:?}");
        let described: Vec<(String, String)> = OPS.iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
        for r in &routes {
            assert!(described.contains(r), "{r:?} is routed but not in the OpenAPI document");
        }
        for d in &described {
            assert!(routes.contains(d), "{d:?} is described but not routed");
        }
        let doc = &*DOCUMENT;
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["paths"]["/v1/tenants/{id}/kv/{key}"]["put"]["parameters"][1]["name"], "key");
    }
}
