//! Endpoints: create within the cap, read, change, delete, rotate the secret, send a test event.

use super::*;
use crate::normalize::CanonicalEvent;
use crate::route::sample::{Sample, sample};

pub(super) fn unprocessable(msg: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(msg.into())
}

/// Apply the settings in `body` to `ep` (create and PATCH share this); unknown keys are refused.
pub(super) fn apply_endpoint_settings(
    ep: &mut Endpoint,
    body: &serde_json::Map<String, Value>,
    policy: &OutboundPolicy,
) -> Result<(), ApiError> {
    for (key, v) in body {
        match key.as_str() {
            "url" => ep.url = v.as_str().ok_or_else(|| unprocessable("url must be a string"))?.to_string(),
            "event_types" => {
                let types: Option<Vec<String>> = v
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t.as_str().map(str::trim).map(String::from)).collect());
                match types {
                    Some(t)
                        if !t.is_empty()
                            && t.len() == v.as_array().map_or(0, Vec::len)
                            && t.iter().all(|x| !x.is_empty()) =>
                    {
                        ep.event_types = t
                    }
                    _ => {
                        return Err(unprocessable(
                            "event_types must be a non-empty list of patterns such as \"call.*\"",
                        ));
                    }
                }
            }
            "headers" => {
                let map = v.as_object().ok_or_else(|| unprocessable("headers must be an object of strings"))?;
                for (name, value) in map {
                    let valid_name = axum::http::HeaderName::try_from(name.as_str()).is_ok();
                    let valid_value = value.as_str().is_some_and(|v| axum::http::HeaderValue::from_str(v).is_ok());
                    if !valid_name || !valid_value {
                        return Err(unprocessable(format!(
                            "header {name:?} must be a valid header name with a string value"
                        )));
                    }
                }
                ep.headers = map.clone();
            }
            "enabled" => {
                ep.enabled = v.as_bool().ok_or_else(|| unprocessable("enabled must be true or false"))?;
                if ep.enabled {
                    ep.disabled_reason = None;
                    ep.failing_since = None;
                } else if ep.disabled_reason.is_none() {
                    ep.disabled_reason = Some("disabled by the tenant".into());
                }
            }
            "description" => {
                let d = v.as_str().ok_or_else(|| unprocessable("description must be a string"))?;
                if d.len() > 1000 {
                    return Err(unprocessable("description is limited to 1000 characters"));
                }
                ep.description = d.to_string();
            }
            "signing" => match v.as_str().and_then(SigningStyle::parse) {
                Some(style) => ep.signing = style,
                None => return Err(unprocessable("signing must be \"standard\" or \"hookhost\"")),
            },
            "timeout_ms" => {
                ep.timeout_ms = match v {
                    Value::Null => None,
                    _ => Some(
                        v.as_i64()
                            .filter(|ms| (1..=120_000).contains(ms))
                            .ok_or_else(|| unprocessable("timeout_ms must be 1 to 120000"))?,
                    ),
                }
            }
            "ordered_by" => {
                ep.ordered_by = match v {
                    Value::Null => None,
                    _ => Some(
                        v.as_str()
                            .filter(|f| !f.is_empty())
                            .ok_or_else(|| unprocessable("ordered_by must be a payload field name"))?
                            .to_string(),
                    ),
                }
            }
            "rate_limit_per_s" => {
                ep.rate_limit_per_s = match v {
                    Value::Null => None,
                    _ => Some(v.as_f64().filter(|r| (MIN_RATE..=MAX_RATE).contains(r)).ok_or_else(|| {
                        unprocessable(format!("rate_limit_per_s must be between {MIN_RATE} and {MAX_RATE}"))
                    })?),
                }
            }
            "signature_header" => ep.header_names.signature = header_name(key, v)?,
            "id_header" => ep.header_names.id = header_name(key, v)?,
            "timestamp_header" => ep.header_names.timestamp = header_name(key, v)?,
            other => return Err(unprocessable(format!("unknown endpoint field {other:?}"))),
        }
    }
    let n = &ep.header_names;
    let chosen: Vec<&String> = [&n.signature, &n.id, &n.timestamp].into_iter().flatten().collect();
    if chosen.iter().enumerate().any(|(i, a)| chosen[..i].contains(a)) {
        return Err(unprocessable("signature_header, id_header and timestamp_header must differ"));
    }
    validate_url(&ep.url, policy).map_err(|e| unprocessable(e.to_string()))?;
    Ok(())
}

/// Headers an endpoint may not give its signature, id or timestamp: the request's own.
const NOT_SIGNATURE_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "authorization",
    "cookie",
];

/// A signature header name setting: a valid header name (kept lower case) that is not one of
/// the request's own headers, or `null` for the signing style's default.
fn header_name(key: &str, v: &Value) -> Result<Option<String>, ApiError> {
    let Some(name) = v.as_str() else {
        return match v {
            Value::Null => Ok(None),
            _ => Err(unprocessable(format!("{key} must be a header name or null"))),
        };
    };
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name.len() > 64 || axum::http::HeaderName::try_from(name.as_str()).is_err() {
        return Err(unprocessable(format!("{key} {name:?} is not a valid header name")));
    }
    if NOT_SIGNATURE_HEADERS.contains(&name.as_str()) {
        return Err(unprocessable(format!("{key} may not be {name:?}: the request sets it")));
    }
    Ok(Some(name))
}

/// An endpoint's rate limit, deliveries per second: from one a day to far beyond what one
/// receiver takes.
pub(super) const MIN_RATE: f64 = 1.0 / 86_400.0;
pub(super) const MAX_RATE: f64 = 100_000.0;

pub(super) fn object_body(
    body: Result<Json<Value>, JsonRejection>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    match json_body(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(unprocessable("the body must be a JSON object")),
    }
}

pub(super) async fn create_endpoint(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let ep = new_endpoint(&state, tenant, &object_body(body)?).await?;
    Ok((StatusCode::CREATED, Json(EndpointView::of(&ep, state.store.now_ms()))).into_response())
}

/// Create an endpoint with the settings in `body` (`url` required), within the tenant's cap.
pub(super) async fn new_endpoint(
    state: &AppState,
    tenant: TenantId,
    body: &serde_json::Map<String, Value>,
) -> Result<Endpoint, ApiError> {
    if !body.contains_key("url") {
        return Err(unprocessable("url is required"));
    }
    let outbound = state.sender.policies().read(&state.store, &tenant).await?;
    let mut ep = Endpoint::new(tenant, String::new(), sign::new_secret());
    apply_endpoint_settings(&mut ep, body, &outbound)?;
    if state.store.create_endpoint(&ep, state.config.max_endpoints).await? == Insert::Full {
        tracing::warn!(tenant = %ep.tenant_id, "endpoint refused: the tenant is at its cap");
        return Err(ApiError::Quota {
            quota: "endpoints",
            message: format!("the tenant has {} endpoints, its cap; delete one first", state.config.max_endpoints),
        });
    }
    tracing::info!(tenant = %ep.tenant_id, endpoint = %ep.id, "endpoint created");
    Ok(ep)
}

pub(super) async fn list_endpoints(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<EndpointList>, ApiError> {
    let eps = state.store.endpoints(&tenant).await?;
    let now = state.store.now_ms();
    Ok(Json(EndpointList { data: eps.iter().map(|ep| EndpointView::of(ep, now)).collect() }))
}

pub(super) async fn find_endpoint(state: &AppState, tenant: &TenantId, eid: &str) -> Result<Endpoint, ApiError> {
    state
        .store
        .endpoint(tenant, &EndpointId::named(eid))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown endpoint {eid}")))
}

pub(super) async fn get_endpoint(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, eid)): Path<(String, String)>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(EndpointView::of(&find_endpoint(&state, &tenant, &eid).await?, state.store.now_ms())))
}

pub(super) async fn patch_endpoint(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, eid)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<EndpointView>, ApiError> {
    let body = object_body(body)?;
    let mut ep = find_endpoint(&state, &tenant, &eid).await?;
    let was_enabled = ep.enabled;
    let outbound = state.sender.policies().read(&state.store, &tenant).await?;
    apply_endpoint_settings(&mut ep, &body, &outbound)?;
    if !state.store.update_endpoint(&ep).await? {
        return Err(ApiError::NotFound(format!("unknown endpoint {eid}")));
    }
    if ep.enabled && !was_enabled {
        tracing::info!(%tenant, endpoint = %eid, "endpoint re-enabled; its pending deliveries resume");
        state.wake.delivery.pending();
    }
    Ok(Json(EndpointView::of(&ep, state.store.now_ms())))
}

pub(super) async fn delete_endpoint(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, eid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_endpoint(&tenant, &EndpointId::named(&eid)).await? {
        return Err(ApiError::NotFound(format!("unknown endpoint {eid}")));
    }
    tracing::info!(%tenant, endpoint = %eid, "endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, eid)): Path<(String, String)>,
) -> Result<Json<SecretRotated>, ApiError> {
    let secret = sign::new_secret();
    let until = state.store.now_ms() + state.config.secret_overlap.as_millis() as i64;
    if !state.store.rotate_secret(&tenant, &EndpointId::named(&eid), &secret, until).await? {
        return Err(ApiError::NotFound(format!("unknown endpoint {eid}")));
    }
    tracing::info!(%tenant, endpoint = %eid, "endpoint secret rotated");
    Ok(Json(SecretRotated { secret, previous_secret_expires_at: until }))
}

pub(super) async fn test_endpoint(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, eid)): Path<(String, String)>,
    body: Result<Json<TestRequest>, JsonRejection>,
) -> Result<Json<TestResult>, ApiError> {
    let req = json_body(body)?;
    let event_type = req.event_type.unwrap_or_else(|| "call.missed".into());
    if event_type.trim().is_empty() {
        return Err(unprocessable("event_type must not be empty"));
    }
    let ep = find_endpoint(&state, &tenant, &eid).await?;
    let event = CanonicalEvent {
        id: new_id("evt_test"),
        tenant_id: tenant.clone(),
        event_type: event_type.clone(),
        occurred_at: state.store.now_ms() / 1000,
        source: "hookhost",
        is_test: true,
        payload: sample_payload(&event_type),
    };
    let (message_id, body, request) = match sample(&state.store, &state.plugins, &ep, &event).await? {
        Sample::Send { message_id, body, request } => (message_id, body, request),
        Sample::Nothing(why) => {
            tracing::info!(%tenant, endpoint = %eid, %event_type, %why, "endpoint test sent nothing");
            return Ok(Json(TestResult {
                event_id: event.id,
                event_type,
                succeeded: false,
                status_code: None,
                error: Some(why),
                response_excerpt: None,
                duration_ms: 0,
            }));
        }
    };
    let outbound = state.sender.policies().read(&state.store, &tenant).await?;
    let r = state.sender.send(&ep, &outbound, &message_id, &body, request.as_ref()).await;
    Ok(Json(TestResult {
        event_id: message_id,
        event_type,
        succeeded: r.status.is_some_and(|s| (200..300).contains(&s)),
        status_code: r.status,
        error: r.error,
        response_excerpt: r.excerpt,
        duration_ms: r.duration.as_millis() as u64,
    }))
}

/// A realistic sample payload for a test delivery.
pub(super) fn sample_payload(event_type: &str) -> Value {
    if event_type.starts_with("call.") {
        json!({ "call_sid": "CA00000000000000000000000000000000", "call_id": "CA00000000000000000000000000000000",
                "from": "+14155550100", "to": "+14155550199", "direction": "inbound", "call_status": "no-answer", "reason": "no-answer" })
    } else if event_type.starts_with("sms.") {
        json!({ "message_sid": "SM00000000000000000000000000000000", "from": "+14155550100", "to": "+14155550199", "body": "Hello" })
    } else if event_type.starts_with("billing.") {
        json!({ "stripe_event_id": "evt_00000000000000", "object_id": "sub_00000000000000", "customer_id": "cus_00000000000000" })
    } else {
        json!({ "sample": true })
    }
}
