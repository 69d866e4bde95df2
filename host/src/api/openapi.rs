//! The OpenAPI 3.1 document served at `GET /openapi.json`, built once from the route table
//! ([`super::routes`]) — the same table the router is built from — with every JSON body's
//! schema taken from its type (`utoipa::ToSchema`). Owns the document's shape only.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::routes::{Auth, Body, Route, routes};

/// The document's `components.schemas`, by name.
pub(super) type Schemas = BTreeMap<String, Value>;

/// Register `T` (and the types it refers to) in `schemas`; a reference to it.
pub(super) fn schema<T: ToSchema>(schemas: &mut Schemas) -> Value {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    for (name, s) in nested {
        schemas.entry(name).or_insert_with(|| serde_json::to_value(s).expect("a schema serializes"));
    }
    let schema = serde_json::to_value(T::schema()).expect("a schema serializes");
    // Lists and other unnamed compositions are used inline; named types by reference.
    if schema.get("$ref").is_some() || matches!(schema.get("type").and_then(Value::as_str), Some("array")) {
        return schema;
    }
    let name = T::name().into_owned();
    schemas.entry(name.clone()).or_insert(schema);
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn content(body: Body, schemas: &mut Schemas) -> Option<Value> {
    let (media, schema) = match body {
        Body::None => return None,
        Body::Json(of) => ("application/json", of(schemas)),
        Body::Form => ("application/x-www-form-urlencoded", json!({ "type": "object" })),
        Body::Wasm => ("application/wasm", json!({ "type": "string", "format": "binary" })),
        Body::Text => ("text/plain", json!({ "type": "string" })),
        Body::Xml => ("text/xml", json!({ "type": "string" })),
    };
    Some(json!({ media: { "schema": schema } }))
}

fn operation(route: &Route, schemas: &mut Schemas) -> Value {
    let doc = &route.doc;
    let params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let mut ok = json!({ "description": "success" });
    if let Some(c) = content(doc.response, schemas) {
        ok["content"] = c;
    }
    let error = schema::<super::views::ErrorBody>(schemas);
    let mut o = json!({
        "tags": [doc.tag],
        "summary": doc.summary,
        "operationId": format!("{}{}", route.method.as_str().to_lowercase(), route.path.replace(['/', '{', '}', '-', '.'], "_")),
        "parameters": params,
        "responses": {
            doc.ok.to_string(): ok,
            "default": { "description": "an error", "content": { "application/json": { "schema": error } } }
        },
        "security": if doc.auth == Auth::Bearer { json!([{ "bearer": [] }]) } else { json!([]) },
    });
    if let Some(c) = content(doc.request, schemas) {
        o["requestBody"] = json!({ "required": true, "content": c });
    }
    o
}

/// The document for `routes`.
fn document(routes: &[Route]) -> Value {
    let mut schemas = Schemas::new();
    let mut paths = Map::new();
    for route in routes {
        let item = paths.entry(route.path).or_insert_with(|| json!({}));
        item[route.method.as_str().to_lowercase()] = operation(route, &mut schemas);
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
            "schemas": schemas,
        }
    })
}

/// The document, built once.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(|| document(&routes()));

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_described_with_its_bodies_and_no_reference_dangles() {
        let doc = &*DOCUMENT;
        let table = routes();
        let described: usize =
            doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
        assert_eq!(described, table.len(), "one operation per route, none merged away");
        assert!(table.len() > 55);
        let mut found = Vec::new();
        refs(doc, &mut found);
        for r in &found {
            let name = r.strip_prefix("#/components/schemas/").expect("a component reference");
            assert!(doc["components"]["schemas"][name].is_object(), "{r} dangles");
        }
        let endpoint = &doc["paths"]["/v1/tenants/{id}/endpoints"]["post"];
        assert_eq!(
            endpoint["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/EndpointView"
        );
        assert!(doc["components"]["schemas"]["EndpointView"]["properties"]["signing"].is_object());
        assert_eq!(doc["paths"]["/v1/tenants/{id}/kv/{key}"]["put"]["parameters"][1]["name"], "key");
        let event = &doc["components"]["schemas"]["EventDetail"]["properties"];
        assert!(event["plugin_runs"].is_object() && event["status"].is_object(), "{event}");
    }
}
