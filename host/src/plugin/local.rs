//! The plugin author's runner (`hookhost plugin run`): run a component on a fixture event
//! outside the service and report what it did. No store, no HTTP, no side effects.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Action, Kv, Limits, PluginEngine, PluginError};
use crate::TenantId;
use crate::normalize::{CanonicalEvent, source_name};

/// What a local run produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// True when the plugin returned actions.
    pub ok: bool,
    /// `{"outcome","actions","error","fuel_used","wall_us","logs"}`.
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
        Ok(actions) => ("ok", actions.iter().map(action_json).collect::<Vec<_>>(), None),
        Err((failure, msg)) => (failure.as_str(), Vec::new(), Some(msg.clone())),
    };
    Ok(Report {
        ok: inv.outcome.is_ok(),
        json: json!({
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

/// An action as JSON, with JSON payloads parsed back into values.
pub fn action_json(a: &Action) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.to_string()));
    match a {
        Action::Deliver { event_type, payload, endpoints } => {
            json!({ "deliver": { "event_type": event_type, "payload": parse(payload), "endpoints": endpoints } })
        }
        Action::Sink { sink, external_id, data } => {
            json!({ "sink": { "sink": sink, "external_id": external_id, "data": parse(data) } })
        }
        Action::Drop { reason } => json!({ "drop": reason }),
    }
}
