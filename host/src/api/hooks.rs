//! Provider hook routes, one shape for every provider: the [`Hook`] extractor reads the
//! request (tenant from the route, URI as requested, peer address, headers, body within its
//! limit); the handler hands it to the ingest service and answers as the provider expects
//! (TwiML, `OK`, or a JSON receipt). No verification here: that is the ingest service's.

use super::*;
use crate::normalize::exotel::Kind as ExotelKind;
use crate::store::Accepted;

/// A provider request, read whole before the handler runs (providers send no credentials the
/// API could check first: the signature covers the body).
pub(crate) struct Hook(HookRequest);

impl axum::extract::FromRequest<AppState> for Hook {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let tenant = path_param(&mut parts, state, "tenant").await?;
        let source =
            parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_canonical());
        let uri = &parts.uri;
        let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
        let body = read_body(body, state.config.max_body_bytes).await?;
        Ok(Hook(HookRequest { source, tenant, path_and_query, headers: parts.headers, body: body.to_vec() }))
    }
}

fn twiml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn receipt(accepted: Accepted) -> Response {
    Json(HookReceipt { received: true, event_id: accepted.event_id, duplicate: accepted.duplicate }).into_response()
}

/// `POST /hooks/{tenant}/twilio/voice/{inbound|status|dial-complete}` → TwiML.
pub(super) async fn twilio_voice(
    State(state): State<AppState>,
    Path((_, leg)): Path<(String, String)>,
    Hook(req): Hook,
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
    Ok(twiml(state.ingest.twilio_voice(req, leg).await?))
}

pub(super) async fn twilio_sms_inbound(State(state): State<AppState>, Hook(req): Hook) -> Result<Response, ApiError> {
    state.ingest.twilio_sms_inbound(req).await?;
    Ok(twiml(crate::ingest::twiml::empty()))
}

pub(super) async fn twilio_sms_status(State(state): State<AppState>, Hook(req): Hook) -> Result<Response, ApiError> {
    state.ingest.twilio_sms_status(req).await?;
    Ok(twiml(crate::ingest::twiml::empty()))
}

async fn exotel(state: &AppState, kind: ExotelKind, req: HookRequest) -> Result<Response, ApiError> {
    let content_type = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let json = content_type.is_some_and(|ct| ct.contains("json"));
    state.ingest.exotel(req, kind, json).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], "OK").into_response())
}

pub(super) async fn exotel_passthru(State(state): State<AppState>, Hook(req): Hook) -> Result<Response, ApiError> {
    exotel(&state, ExotelKind::Passthru, req).await
}

pub(super) async fn exotel_status(State(state): State<AppState>, Hook(req): Hook) -> Result<Response, ApiError> {
    exotel(&state, ExotelKind::Status, req).await
}

pub(super) async fn vendor_hook(
    State(state): State<AppState>,
    Path((_, vendor)): Path<(String, String)>,
    Hook(req): Hook,
) -> Result<Response, ApiError> {
    Ok(receipt(state.ingest.vendor(req, &vendor, false).await?))
}

pub(super) async fn vendor_sample(
    State(state): State<AppState>,
    Path((_, vendor)): Path<(String, String)>,
    Hook(req): Hook,
) -> Result<Response, ApiError> {
    Ok(receipt(state.ingest.vendor(req, &vendor, true).await?))
}

pub(super) async fn stripe_hook(State(state): State<AppState>, Hook(req): Hook) -> Result<Response, ApiError> {
    Ok(receipt(state.ingest.stripe(req).await?))
}
