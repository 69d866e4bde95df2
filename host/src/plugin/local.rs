//! The plugin author's runner (`hookhost plugin run`): run a component on a fixture event
//! outside the service and report what it did. No store, no HTTP, no side effects.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Action, Kv, Limits, PluginEngine, PluginError};
use crate::TenantId;
use crate::deliver::request::DEFAULT_CONTENT_TYPE;
use crate::normalize::{CanonicalEvent, envelope, message_id, source_name};

/// What a local run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// True when the plugin returned actions.
    pub ok: bool,
    /// `{"world","outcome","actions","error","fuel_used","wall_us","logs","peak_memory","kv_writes"}`.
    pub json: Value,
}

/// Build the event from an envelope as endpoints receive it; `event_type` is required, the
/// rest defaults (`payload` to `{}`).
pub fn event_from_envelope(v: &Value) -> Result<CanonicalEvent, PluginError> {
    let str_of = |k: &str| v.get(k).and_then(Value::as_str);
    let event_type =
        str_of("event_type").ok_or_else(|| PluginError::Invalid("the event needs an \"event_type\"".into()))?;
    Ok(CanonicalEvent {
        id: str_of("id").unwrap_or("evt_local").to_string(),
        tenant_id: TenantId::parse(str_of("tenant_id").unwrap_or("ten_local"))
            .ok_or_else(|| PluginError::Invalid("tenant_id must be 1 to 64 of A-Z, a-z, 0-9, '_' and '-'".into()))?,
        event_type: event_type.to_string(),
        occurred_at: v.get("timestamp_utc").and_then(Value::as_i64).unwrap_or_else(|| crate::now_ms() / 1000),
        source: source_name(str_of("source").unwrap_or("hookhost")).unwrap_or("hookhost"),
        is_test: v.get("is_test").and_then(Value::as_bool).unwrap_or(false),
        payload: v.get("payload").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Compile `component` and run it once on `event` under `limits`, with `kv` as the tenant's
/// key-value store.
pub async fn run(
    component: Vec<u8>,
    event: &CanonicalEvent,
    kv: HashMap<String, String>,
    limits: Limits,
) -> Result<Report, PluginError> {
    let engine = Arc::new(PluginEngine::new(limits.clone())?);
    let compiled = engine.compile_in_turn(component).await?;
    let inv = engine.invoke(&compiled, event, &limits, Kv::Map(Arc::new(kv))).await;
    let (outcome, actions, error) = match &inv.outcome {
        Ok(actions) => ("ok", actions_json(event, actions), None),
        Err((failure, msg)) => (failure.as_str(), Vec::new(), Some(msg.clone())),
    };
    Ok(Report {
        ok: inv.outcome.is_ok(),
        json: json!({
            "world": compiled.world(),
            "outcome": outcome,
            "actions": actions,
            "error": error,
            "fuel_used": inv.fuel_used,
            "wall_us": inv.wall.as_micros() as u64,
            "logs": inv.logs,
            "peak_memory": inv.peak_memory,
            "kv_writes": inv.kv_writes.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
        }),
    })
}

/// Actions as JSON, with JSON payloads parsed back into values; each deliver action with the
/// exact request it sends (`method`, `path` appended to each endpoint's URL, `content_type`,
/// extra `headers`, `body` as sent — the envelope when the plugin shaped none). The endpoint's
/// own headers and signature headers are added per endpoint when it is sent.
pub fn actions_json(event: &CanonicalEvent, actions: &[Action]) -> Vec<Value> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.to_string()));
    let mut delivered = 0;
    let mut describe = |a: &Action| match a {
        Action::Deliver { event_type, payload, endpoints, request } => {
            let message_id = message_id(&event.id, delivered);
            delivered += 1;
            let request = match request {
                Some(s) => json!({
                    "method": s.shape.method.as_str(),
                    "path": s.shape.path,
                    "content_type": s.shape.content_type,
                    "headers": s.shape.headers,
                    "body": s.body,
                }),
                None => {
                    let payload = parse(payload);
                    let body =
                        envelope(&message_id, event_type, event.occurred_at, &event.tenant_id, &payload, event.is_test);
                    json!({
                        "method": "POST",
                        "path": "",
                        "content_type": DEFAULT_CONTENT_TYPE,
                        "headers": [],
                        "body": body.to_string(),
                    })
                }
            };
            json!({ "deliver": {
                "event_type": event_type,
                "payload": parse(payload),
                "endpoints": endpoints,
                "message_id": message_id,
                "request": request,
            } })
        }
        Action::Sink { sink, external_id, data } => {
            json!({ "sink": { "sink": sink, "external_id": external_id, "data": parse(data) } })
        }
        Action::Drop { reason } => json!({ "drop": reason }),
    };
    actions.iter().map(&mut describe).collect()
}
