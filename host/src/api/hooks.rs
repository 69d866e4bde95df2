//! Provider hook routes: one shape for every provider — read the body within its limit, hand
//! the request (with its peer address) to the ingest service, answer as the provider expects
//! (TwiML, `OK`, or a JSON receipt).

use super::*;

/// What a hook route needs of a request besides its body: the URI as requested and the peer
/// address (from the listener's `ConnectInfo`, absent when the router is called directly).
pub(crate) struct HookMeta {
    uri: Uri,
    source: Option<std::net::IpAddr>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for HookMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let source =
            parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_canonical());
        Ok(HookMeta { uri: parts.uri.clone(), source })
    }
}

pub(super) fn hook_request(tenant: String, meta: &HookMeta, headers: HeaderMap, body: Bytes) -> HookRequest {
    let uri = &meta.uri;
    let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    HookRequest { source: meta.source, tenant, path_and_query, headers, body: body.to_vec() }
}

/// `POST /hooks/{tenant}/twilio/voice/{inbound|status|dial-complete}` → TwiML.
pub(super) async fn twilio_voice(
    State(state): State<AppState>,
    Path((tenant, leg)): Path<(String, String)>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let leg = match leg.as_str() {
        "inbound" => VoiceLeg::Inbound,
        "status" => VoiceLeg::Status,
        "dial-complete" => VoiceLeg::DialComplete,
        other => {
            return Err(ApiError::NotFound(format!(
                "no Twilio voice route {other:?} (inbound, status, dial-complete)"
            )));
        }
    };
    let body = raw_body(body, state.config.max_body_bytes)?;
    let twiml = state.ingest.twilio_voice(hook_request(tenant, &uri, headers, body), leg).await?;
    Ok(([(header::CONTENT_TYPE, "text/xml")], twiml).into_response())
}

pub(super) async fn twilio_sms_inbound(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = raw_body(body, state.config.max_body_bytes)?;
    state.ingest.twilio_sms_inbound(hook_request(tenant, &uri, headers, body)).await?;
    Ok(([(header::CONTENT_TYPE, "text/xml")], crate::ingest::twiml::empty()).into_response())
}

pub(super) async fn exotel_hook(
    state: &AppState,
    kind: crate::normalize::exotel::Kind,
    tenant: String,
    uri: &HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = raw_body(body, state.config.max_body_bytes)?;
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.contains("json"));
    state.ingest.exotel(hook_request(tenant, uri, headers, body), kind, json).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], "OK").into_response())
}

pub(super) async fn exotel_passthru(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    exotel_hook(&state, crate::normalize::exotel::Kind::Passthru, tenant, &uri, headers, body).await
}

pub(super) async fn exotel_status(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    exotel_hook(&state, crate::normalize::exotel::Kind::Status, tenant, &uri, headers, body).await
}

pub(super) async fn vendor_ingress(
    state: &AppState,
    tenant: String,
    vendor: &str,
    force_test: bool,
    uri: &HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = raw_body(body, state.config.max_body_bytes)?;
    let accepted = state.ingest.vendor(hook_request(tenant, uri, headers, body), vendor, force_test).await?;
    Ok(Json(json!({ "received": true, "event_id": accepted.event_id, "duplicate": accepted.duplicate }))
        .into_response())
}

pub(super) async fn vendor_hook(
    State(state): State<AppState>,
    Path((tenant, vendor)): Path<(String, String)>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    vendor_ingress(&state, tenant, &vendor, false, &uri, headers, body).await
}

pub(super) async fn vendor_sample(
    State(state): State<AppState>,
    Path((tenant, vendor)): Path<(String, String)>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    vendor_ingress(&state, tenant, &vendor, true, &uri, headers, body).await
}

pub(super) async fn stripe_hook(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = raw_body(body, state.config.max_body_bytes)?;
    let accepted = state.ingest.stripe(hook_request(tenant, &uri, headers, body)).await?;
    Ok(Json(json!({ "received": true, "event_id": accepted.event_id, "duplicate": accepted.duplicate }))
        .into_response())
}
