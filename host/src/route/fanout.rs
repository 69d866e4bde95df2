//! What an event turns into: the plugins' actions (or the event itself, with no plugin) become
//! deliveries to subscribed endpoints and writes to sinks, under the operator's fan-out budget.
//! Pure: reads the routing it is given, writes nothing.

use std::sync::Arc;

use serde_json::Value;

use crate::deliver::request::{Shape, Shaped};
use crate::deliver::subscribed;
use crate::normalize::{CanonicalEvent, envelope, message_id};
use crate::plugin::Action;
use crate::sink::record_version;
use crate::store::{Endpoint, EventStatus, NewDelivery, NewSinkWrite, Outputs, Sink};

/// What routing an event produced: its outputs, its new status, and notes for its record.
#[derive(Debug, Default)]
pub(super) struct Routed {
    pub outputs: Outputs,
    pub status: EventStatus,
    pub notes: Vec<String>,
}

/// The event as it is, with no plugin: to every subscribed endpoint and sink.
pub(super) fn pass_through(event: &CanonicalEvent, endpoints: &[Endpoint], sinks: &[Sink]) -> Routed {
    let mut outputs = Outputs::default();
    let message = Message { id: &event.id, event_type: &event.event_type, payload: &event.payload, shaped: None };
    route(event, endpoints, sinks, &mut outputs, message, &[]).expect("an envelope fits every endpoint");
    Routed { outputs, status: EventStatus::Processed, notes: Vec::new() }
}

/// Turn a plugin chain's actions into deliveries and sink writes: `processed` when any action
/// produced output, `dropped` otherwise; an error message when the output is unusable (then
/// nothing is written).
pub(super) fn apply(
    event: &CanonicalEvent,
    endpoints: &[Endpoint],
    sinks: &[Sink],
    actions: Vec<Action>,
) -> Result<Routed, String> {
    let mut routed = Routed::default();
    let (out, notes) = (&mut routed.outputs, &mut routed.notes);
    let mut used = false;
    let mut n = 0usize;
    for (i, action) in actions.into_iter().enumerate() {
        match action {
            Action::Deliver { event_type, payload, endpoints: only, request } => {
                // A shaped request's payload is not sent: it may be empty.
                let payload: Value = if payload.is_empty() && request.is_some() {
                    Value::Null
                } else {
                    serde_json::from_str(&payload).map_err(|e| format!("deliver action payload is not JSON: {e}"))?
                };
                if event_type.is_empty() {
                    return Err("deliver action has an empty event type".into());
                }
                let message_id = message_id(&event.id, n);
                n += 1;
                let message =
                    Message { id: &message_id, event_type: &event_type, payload: &payload, shaped: request.as_deref() };
                route(event, endpoints, sinks, out, message, &only).map_err(|e| format!("action {i}: {e}"))?;
                used = true;
            }
            Action::Sink { sink, external_id, data } => {
                let record: Value =
                    serde_json::from_str(&data).map_err(|e| format!("sink action record is not JSON: {e}"))?;
                if external_id.is_empty() {
                    return Err("sink action has an empty external id".into());
                }
                let Some(target) = sinks.iter().find(|s| s.name == sink) else {
                    notes.push(format!("sink action for unknown sink {sink:?} not applied"));
                    continue;
                };
                out.sink_writes.push(NewSinkWrite {
                    sink_id: target.id.clone(),
                    idempotency_key: format!("{}:{}:{external_id}:{i}", event.id, target.name),
                    version: record_version(&record, event.occurred_at),
                    external_id,
                    record: record.to_string(),
                });
                used = true;
            }
            Action::Drop { reason } => notes.push(format!("dropped: {reason}")),
        }
    }
    if !used && notes.is_empty() {
        notes.push("dropped: plugin returned no actions".into());
    }
    routed.status = if used { EventStatus::Processed } else { EventStatus::Dropped };
    Ok(routed)
}

/// One delivered message: its id, type and payload, and the plugin's request when it shaped one.
struct Message<'a> {
    id: &'a str,
    event_type: &'a str,
    payload: &'a Value,
    shaped: Option<&'a Shaped>,
}

/// One message to every enabled endpoint subscribed to its type (and named in `only`, if any),
/// and by the default mapping to every sink subscribed to it. Refused when a shaped request
/// does not fit one of those endpoints (a header it signs with, a path off its host).
fn route(
    event: &CanonicalEvent,
    endpoints: &[Endpoint],
    sinks: &[Sink],
    out: &mut Outputs,
    message: Message<'_>,
    only: &[String],
) -> Result<(), String> {
    let Message { id: message_id, event_type, payload, shaped } = message;
    // One body, shared by every endpoint's delivery (and stored once).
    let body: Arc<str> = match shaped {
        Some(s) => s.body.as_str().into(),
        None => envelope(message_id, event_type, event.occurred_at, &event.tenant_id, payload, event.is_test)
            .to_string()
            .into(),
    };
    let shape = shaped.map(|s| Arc::new(s.shape.clone()));
    let subscribers: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|ep| {
            subscribed(&ep.event_types, event_type) && (only.is_empty() || only.iter().any(|o| ep.id == *o.as_str()))
        })
        .collect();
    if let Some(shape) = &shape {
        for ep in &subscribers {
            fits(shape, ep)?;
        }
    }
    out.deliveries.extend(subscribers.into_iter().map(|ep| NewDelivery {
        endpoint_id: ep.id.clone(),
        message_id: message_id.to_string(),
        body: body.clone(),
        request: shape.clone(),
        ordering_key: ep.ordered_by.as_deref().and_then(|field| key_field(payload, field)),
    }));
    // The default mapping: each subscribed sink gets the payload, keyed by its external_id_field.
    out.sink_writes.extend(sinks.iter().filter(|s| subscribed(&s.event_types, event_type)).filter_map(|s| {
        let external_id = key_field(payload, s.external_id_field.as_deref()?)?;
        Some(NewSinkWrite {
            sink_id: s.id.clone(),
            idempotency_key: format!("{message_id}:{}:{external_id}", s.name),
            version: record_version(payload, event.occurred_at),
            external_id,
            record: payload.to_string(),
        })
    }));
    Ok(())
}

/// Whether a shaped request can go to `ep`: none of its headers is one the endpoint signs with,
/// and its path keeps the endpoint's host.
fn fits(shape: &Shape, ep: &Endpoint) -> Result<(), String> {
    if let Some(name) = shape.reserved_by(&ep.header_names) {
        return Err(format!("deliver request refused: header {name:?} is endpoint {}'s signature header", ep.id));
    }
    let url = reqwest::Url::parse(&ep.url).map_err(|e| format!("endpoint {} has no valid URL: {e}", ep.id))?;
    shape.url(&url).map_err(|e| format!("deliver request refused for endpoint {}: {e}", ep.id))?;
    Ok(())
}

/// Whether what an event enqueues fits `budget`: every delivery's body (as sent, once per
/// endpoint) and every sink record, in bytes. Refused with the reason otherwise.
pub(super) fn within_budget(outputs: &Outputs, budget: usize) -> Result<(), String> {
    let bytes: usize = outputs.deliveries.iter().map(|d| d.body.len()).sum::<usize>()
        + outputs.sink_writes.iter().map(|w| w.record.len()).sum::<usize>();
    if bytes > budget {
        return Err(format!(
            "the event would enqueue {bytes} bytes ({} deliveries, {} sink writes), more than the {budget} allowed",
            outputs.deliveries.len(),
            outputs.sink_writes.len()
        ));
    }
    Ok(())
}

/// The value of `field` in the payload as a key (strings and numbers only).
fn key_field(payload: &Value, field: &str) -> Option<String> {
    match payload.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
