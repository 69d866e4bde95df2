//! HTTP routes: provider hooks, the admin and polling API (bearer keys), health and metrics.
//!
//! Handlers parse and authorize, call the ingest service, the store or the plugin engine, and
//! map results to HTTP through [`error::ApiError`]. No SQL and no wasmtime here.

pub mod error;
mod openapi;
mod plugins;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use error::ApiError;

use crate::deliver::{OutboundPolicy, Sender, sign, validate_url};
use crate::ingest::{HookRequest, Ingestor, VoiceLeg};
use crate::plugin::PluginEngine;
use crate::store::{Endpoint, Insert, NewDelivery, Store};
use crate::{Config, TenantId, Wakeups, new_id};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    store: Store,
    ingest: Ingestor,
    plugins: Arc<PluginEngine>,
    config: Arc<Config>,
    /// Sends endpoint test deliveries.
    sender: Sender,
    /// Checks sink databases when a sql sink is created.
    sql_sinks: Arc<crate::sink::SqlSinks>,
    wake: Arc<Wakeups>,
    /// sha256 of the operator token, compared in constant time.
    admin_digest: [u8; 32],
}

impl AppState {
    pub fn new(
        store: Store,
        plugins: Arc<PluginEngine>,
        sender: Sender,
        wake: Arc<Wakeups>,
        config: Arc<Config>,
    ) -> Self {
        let ingest = Ingestor::new(store.clone(), config.clone(), wake.clone());
        let admin_digest = Sha256::digest(config.admin_token.as_bytes()).into();
        let sql_sinks = Arc::default();
        Self { store, ingest, plugins, config, sender, sql_sinks, wake, admin_digest }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let hooks = Router::new()
        .route("/hooks/{tenant}/twilio/voice/{leg}", post(twilio_voice))
        .route("/hooks/{tenant}/twilio/sms/inbound", post(twilio_sms_inbound))
        .route("/hooks/{tenant}/stripe", post(stripe_hook))
        .route("/hooks/{tenant}/telephony/{vendor}", post(vendor_hook))
        .route("/hooks/{tenant}/telephony/{vendor}/sample", post(vendor_sample))
        .route("/hooks/{tenant}/exotel/passthru", get(exotel_passthru).post(exotel_passthru))
        .route("/hooks/{tenant}/exotel/status", post(exotel_status))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let uploads = Router::new()
        .route("/v1/tenants/{id}/plugins", post(upload_plugin).get(plugins::list_plugins))
        .route(
            "/v1/tenants/{id}/plugins/{name}",
            post(plugins::upload_named).get(plugins::get_plugin).delete(plugins::delete_plugin),
        )
        .layer(DefaultBodyLimit::max(state.config.max_plugin_bytes));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|| async { Json(openapi::DOCUMENT.clone()) }))
        .route("/v1/tenants", post(create_tenant))
        .route("/v1/tenants/{id}", get(get_tenant))
        .route("/v1/tenants/{id}/api-keys", post(rotate_api_key).get(list_api_keys))
        .route("/v1/tenants/{id}/api-keys/{prefix}", delete(revoke_api_key))
        .route("/v1/tenants/{id}/providers/{provider}", put(put_provider))
        .route("/v1/tenants/{id}/providers/vendor/{vendor}", put(put_vendor))
        .route("/v1/tenants/{id}/endpoints", post(create_endpoint).get(list_endpoints))
        .route("/v1/tenants/{id}/endpoints/{eid}", get(get_endpoint).patch(patch_endpoint).delete(delete_endpoint))
        .route("/v1/tenants/{id}/endpoints/{eid}/rotate-secret", post(rotate_secret))
        .route("/v1/tenants/{id}/endpoints/{eid}/test", post(test_endpoint))
        .route("/v1/tenants/{id}/endpoints/{eid}/recover", post(recover_endpoint))
        .route("/v1/tenants/{id}/deliveries/{did}/retry", post(retry_delivery))
        .route("/v1/tenants/{id}/events/{event_id}/replay", post(replay_event))
        .route("/v1/tenants/{id}/events", get(list_events))
        .route("/v1/tenants/{id}/events/{event_id}", get(get_event))
        .route("/v1/tenants/{id}/deliveries", get(list_deliveries))
        .route("/v1/tenants/{id}/receipts", get(list_receipts))
        .route("/v1/tenants/{id}/receipts/{rid}/replay", post(replay_receipt))
        .route("/v1/tenants/{id}/sinks", post(create_sink).get(list_sinks))
        .route("/v1/tenants/{id}/sinks/{sid}", delete(delete_sink))
        .route("/v1/tenants/{id}/numbers/{e164}", put(put_number).get(get_number))
        .route("/v1/tenants/{id}/calls/{call_sid}", get(get_call))
        .route("/v1/tenants/{id}/contacts/{e164}", get(get_contact))
        .route("/v1/tenants/{id}/billing", get(get_billing))
        .route("/v1/tenants/{id}/plugins/usage", get(plugins::usage))
        .route("/v1/tenants/{id}/plugins/{name}/versions/{v}", delete(plugins::delete_version))
        .route("/v1/tenants/{id}/plugins/{name}/versions/{v}/activate", post(plugins::activate))
        .route("/v1/tenants/{id}/plugins/{name}/versions/{v}/dry-run", post(plugins::dry_run_version))
        .route("/v1/tenants/{id}/chain", put(plugins::put_chain).get(plugins::get_chain).delete(plugins::delete_chain))
        .route("/v1/tenants/{id}/limits", put(plugins::put_limits).get(plugins::get_limits))
        .route("/v1/tenants/{id}/ceiling", put(plugins::put_ceiling).get(plugins::get_ceiling))
        .route("/v1/tenants/{id}/kv/{key}", put(plugins::put_kv).get(plugins::get_kv).delete(plugins::delete_kv))
        .merge(hooks)
        .merge(uploads)
        .with_state(state)
}

// ---- auth ----

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A fresh tenant api key (`hk_` and 64 hex digits) and its prefix (`hk_` and the first 8).
fn new_api_key() -> (String, String) {
    let key = format!("hk_{}", hex::encode(rand::random::<[u8; 32]>()));
    let prefix = key[..11].to_string();
    (key, prefix)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn is_operator(state: &AppState, token: &str) -> bool {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    bool::from(digest.ct_eq(&state.admin_digest))
}

/// Operator token only.
fn require_operator(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(t) if is_operator(state, t) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The operator token or the tenant's own api key; another tenant's key is 403.
async fn authorize(state: &AppState, headers: &HeaderMap, tenant: &str) -> Result<TenantId, ApiError> {
    Ok(authorize_as(state, headers, tenant).await?.0)
}

/// As [`authorize`], also telling whether the caller is the operator.
async fn authorize_as(state: &AppState, headers: &HeaderMap, tenant: &str) -> Result<(TenantId, bool), ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    let operator = is_operator(state, token);
    if !operator {
        match state.store.tenant_by_key_hash(&sha256_hex(token), crate::now_ms()).await? {
            None => return Err(ApiError::Unauthorized),
            Some(own) if own.as_str() != tenant => return Err(ApiError::Forbidden),
            Some(_) => {}
        }
    }
    let t = state.store.tenant(tenant).await?.ok_or_else(|| ApiError::NotFound(format!("unknown tenant {tenant}")))?;
    Ok((t.id, operator))
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|rej| match rej.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(rej.body_text()),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(rej.body_text()),
        _ => ApiError::BadRequest(rej.body_text()),
    })
}

/// Read a body not extracted before the handler ran (so the caller could authenticate
/// first), refusing it past `limit` bytes.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            tracing::warn!(limit, "request body over the limit refused");
            ApiError::PayloadTooLarge(format!("body larger than {limit} bytes"))
        } else {
            ApiError::BadRequest(format!("could not read the body: {e}"))
        }
    })
}

fn raw_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            tracing::warn!(limit, "request body over the limit refused");
            ApiError::PayloadTooLarge(format!("body larger than {limit} bytes"))
        } else {
            ApiError::BadRequest(rej.body_text())
        }
    })
}

// ---- health and metrics ----

async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    Ok("ready")
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let given: [u8; 32] = Sha256::digest(bearer(&headers).unwrap_or_default().as_bytes()).into();
        let wanted: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !bool::from(given.ct_eq(&wanted)) {
            return Err(ApiError::Unauthorized);
        }
    }
    let mut out =
        String::from("# HELP hookhost_jobs Jobs in the outbox by kind and status.\n# TYPE hookhost_jobs gauge\n");
    for (kind, status, n) in state.store.job_counts().await? {
        out.push_str(&format!("hookhost_jobs{{kind=\"{kind}\",status=\"{status}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP hookhost_replays_total Replays: deliveries made by event replays and events made by receipt replays.\n# TYPE hookhost_replays_total counter\n",
    );
    out.push_str(&format!("hookhost_replays_total {}\n", state.store.replay_count().await?));
    out.push_str(
        "# HELP hookhost_job_oldest_pending_seconds Age of the oldest pending job by kind (the backlog's lag).\n# TYPE hookhost_job_oldest_pending_seconds gauge\n",
    );
    for (kind, age_ms) in state.store.oldest_pending().await? {
        out.push_str(&format!("hookhost_job_oldest_pending_seconds{{kind=\"{kind}\"}} {}\n", age_ms as f64 / 1000.0));
    }
    let (code_bytes, plugins) = state.plugins.cached();
    out.push_str(&format!(
        "# HELP hookhost_plugin_cache_bytes Compiled plugin code held in memory (bounded by HOOKHOST_PLUGIN_CACHE_BYTES).\n# TYPE hookhost_plugin_cache_bytes gauge\nhookhost_plugin_cache_bytes {code_bytes}\n\
         # HELP hookhost_plugin_cache_entries Compiled plugins held in memory.\n# TYPE hookhost_plugin_cache_entries gauge\nhookhost_plugin_cache_entries {plugins}\n"
    ));
    crate::metrics::render(&mut out);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

// ---- provider hooks ----

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

fn hook_request(tenant: String, meta: &HookMeta, headers: HeaderMap, body: Bytes) -> HookRequest {
    let uri = &meta.uri;
    let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    HookRequest { source: meta.source, tenant, path_and_query, headers, body: body.to_vec() }
}

/// `POST /hooks/{tenant}/twilio/voice/{inbound|status|dial-complete}` → TwiML.
async fn twilio_voice(
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

async fn twilio_sms_inbound(
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

async fn exotel_hook(
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

async fn exotel_passthru(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    exotel_hook(&state, crate::normalize::exotel::Kind::Passthru, tenant, &uri, headers, body).await
}

async fn exotel_status(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    exotel_hook(&state, crate::normalize::exotel::Kind::Status, tenant, &uri, headers, body).await
}

async fn vendor_ingress(
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

async fn vendor_hook(
    State(state): State<AppState>,
    Path((tenant, vendor)): Path<(String, String)>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    vendor_ingress(&state, tenant, &vendor, false, &uri, headers, body).await
}

async fn vendor_sample(
    State(state): State<AppState>,
    Path((tenant, vendor)): Path<(String, String)>,
    uri: HookMeta,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    vendor_ingress(&state, tenant, &vendor, true, &uri, headers, body).await
}

async fn stripe_hook(
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

// ---- tenants ----

#[derive(Deserialize)]
struct NewTenant {
    name: String,
}

async fn create_tenant(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<Response, ApiError> {
    require_operator(&state, &headers)?;
    let NewTenant { name } = json_body(body)?;
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::Unprocessable("name must be 1 to 200 characters".into()));
    }
    let id = TenantId::generate();
    let (api_key, prefix) = new_api_key();
    state.store.create_tenant(&id, name, &sha256_hex(&api_key), &prefix).await?;
    tracing::info!(tenant = %id, "tenant created");
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "name": name, "api_key": api_key }))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// How long the previous keys stay valid: seconds, or a duration (`24h`, `30m`, `0s`).
    overlap: Option<Value>,
}

/// A new api key for the tenant; its previous keys stay valid for `overlap` (default 24 h).
async fn rotate_api_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Rotation>>,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let overlap = match body.and_then(|Json(r)| r.overlap) {
        None | Some(Value::Null) => std::time::Duration::from_secs(86_400),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| unprocessable("overlap must be a whole number of seconds or a duration like 24h"))?,
        Some(Value::String(s)) => crate::config::parse_duration(&s).map_err(|e| unprocessable(e.to_string()))?,
        Some(_) => return Err(unprocessable("overlap must be a whole number of seconds or a duration like 24h")),
    };
    if overlap > std::time::Duration::from_secs(30 * 86_400) {
        return Err(unprocessable("overlap is at most 30 days"));
    }
    let (api_key, prefix) = new_api_key();
    let now = crate::now_ms();
    let previous =
        state.store.rotate_api_key(&tenant, &sha256_hex(&api_key), &prefix, now, overlap.as_millis() as i64).await?;
    tracing::info!(%tenant, %prefix, overlap_s = overlap.as_secs(), "api key rotated");
    let body = json!({ "api_key": api_key, "prefix": prefix, "previous_expires_at": previous });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_api_keys(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    Ok(Json(json!({ "data": state.store.api_keys(&tenant, crate::now_ms()).await? })))
}

/// Revoke a key at once (the key making the call too, if it is that one).
async fn revoke_api_key(
    State(state): State<AppState>,
    Path((id, prefix)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    if !state.store.revoke_api_key(&tenant, &prefix).await? {
        return Err(ApiError::NotFound(format!("no api key {prefix}")));
    }
    tracing::info!(%tenant, %prefix, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn get_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let t =
        state.store.tenant(tenant.as_str()).await?.ok_or_else(|| ApiError::NotFound(format!("unknown tenant {id}")))?;
    let active = state.store.active_plugins(&tenant).await?;
    let show = |p: &crate::store::PluginVersion| json!({ "name": p.name, "version": p.version, "digest": p.digest });
    Ok(Json(json!({
        "id": t.id,
        "name": t.name,
        "active_plugin": active.iter().find(|p| p.name == plugins::DEFAULT_PLUGIN).or(active.first()).map(show),
        "active_plugins": active.iter().map(show).collect::<Vec<_>>(),
    })))
}

async fn put_provider(
    State(state): State<AppState>,
    Path((id, provider)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let body = json_body(body)?;
    let field = match provider.as_str() {
        "twilio" => "auth_token",
        "stripe" => "webhook_secret",
        "exotel" => "callback_token",
        other => return Err(ApiError::NotFound(format!("unknown provider {other}; known: twilio, stripe, exotel"))),
    };
    let given = body.get(field).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    if provider == "exotel" {
        // Exotel signs nothing: a random token in the callback URLs is the authentication.
        let token = match given {
            Some(t) if t.len() >= 16 => t.to_string(),
            Some(_) => {
                return Err(unprocessable("callback_token must be at least 16 characters (or omit it to get one)"));
            }
            None => hex::encode(rand::random::<[u8; 24]>()),
        };
        state.store.set_provider_secret(&tenant, &provider, &token).await?;
        tracing::info!(%tenant, provider, "provider secret set");
        return Ok(Json(json!({ "callback_token": token })).into_response());
    }
    let secret = given.ok_or_else(|| ApiError::Unprocessable(format!("{field} is required (a non-empty string)")))?;
    state.store.set_provider_secret(&tenant, &provider, secret).await?;
    tracing::info!(%tenant, provider, "provider secret set");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn put_vendor(
    State(state): State<AppState>,
    Path((id, vendor)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    if !crate::normalize::vendor::valid_vendor(&vendor) {
        return Err(unprocessable("vendor names are [a-z0-9_-], 1 to 32 characters"));
    }
    let body = json_body(body)?;
    let secret = body.get("secret").and_then(Value::as_str).unwrap_or_default();
    if !secret.starts_with("whsec_") || sign::secret_key(secret).map_or(true, |k| k.len() < 16) {
        return Err(unprocessable("secret must be whsec_ followed by base64 of at least 16 bytes"));
    }
    state.store.set_provider_secret(&tenant, &format!("vendor:{vendor}"), secret).await?;
    tracing::info!(%tenant, vendor, "vendor secret set");
    Ok(StatusCode::NO_CONTENT)
}

// ---- endpoints ----

/// The endpoint as the API shows it.
fn endpoint_json(ep: &Endpoint) -> Value {
    json!({
        "id": ep.id,
        "url": ep.url,
        "description": ep.description,
        "event_types": ep.event_types,
        "headers": ep.headers,
        "enabled": ep.enabled,
        "disabled_reason": ep.disabled_reason,
        "signing": ep.signing,
        "timeout_ms": ep.timeout_ms,
        "ordered_by": ep.ordered_by,
        "rate_limit_per_s": ep.rate_limit_per_s,
        "secret": ep.secret,
        "previous_secret_expires_at": ep.previous_secret_until.filter(|until| *until > crate::now_ms()),
    })
}

fn unprocessable(msg: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(msg.into())
}

/// Apply the settings in `body` to `ep` (create and PATCH share this); unknown keys are refused.
fn apply_endpoint_settings(
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
            "signing" => match v.as_str() {
                Some(style @ ("standard" | "hookhost")) => ep.signing = style.to_string(),
                _ => return Err(unprocessable("signing must be \"standard\" or \"hookhost\"")),
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
            other => return Err(unprocessable(format!("unknown endpoint field {other:?}"))),
        }
    }
    validate_url(&ep.url, policy).map_err(|e| unprocessable(e.to_string()))?;
    Ok(())
}

/// An endpoint's rate limit, deliveries per second: from one a day to far beyond what one
/// receiver takes.
const MIN_RATE: f64 = 1.0 / 86_400.0;
const MAX_RATE: f64 = 100_000.0;

fn object_body(body: Result<Json<Value>, JsonRejection>) -> Result<serde_json::Map<String, Value>, ApiError> {
    match json_body(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(unprocessable("the body must be a JSON object")),
    }
}

async fn create_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let body = object_body(body)?;
    if !body.contains_key("url") {
        return Err(unprocessable("url is required"));
    }
    let outbound = state.sender.policies().read(&state.store, &tenant).await?;
    let mut ep = Endpoint::new(tenant, String::new(), sign::new_secret());
    apply_endpoint_settings(&mut ep, &body, &outbound)?;
    if state.store.create_endpoint(&ep, state.config.max_endpoints).await? == Insert::Full {
        tracing::warn!(tenant = %ep.tenant_id, "endpoint refused: the tenant is at its cap");
        return Err(ApiError::Quota {
            quota: "endpoints",
            message: format!("the tenant has {} endpoints, its cap; delete one first", state.config.max_endpoints),
        });
    }
    tracing::info!(tenant = %ep.tenant_id, endpoint = %ep.id, "endpoint created");
    Ok((StatusCode::CREATED, Json(endpoint_json(&ep))).into_response())
}

async fn list_endpoints(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let eps = state.store.endpoints(&tenant).await?;
    Ok(Json(json!({ "data": eps.iter().map(endpoint_json).collect::<Vec<_>>() })))
}

async fn find_endpoint(state: &AppState, tenant: &TenantId, eid: &str) -> Result<Endpoint, ApiError> {
    state.store.endpoint(tenant, eid).await?.ok_or_else(|| ApiError::NotFound(format!("unknown endpoint {eid}")))
}

async fn get_endpoint(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    Ok(Json(endpoint_json(&find_endpoint(&state, &tenant, &eid).await?)))
}

async fn patch_endpoint(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
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
        state.wake.delivery.notify_one();
    }
    Ok(Json(endpoint_json(&ep)))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    if !state.store.delete_endpoint(&tenant, &eid).await? {
        return Err(ApiError::NotFound(format!("unknown endpoint {eid}")));
    }
    tracing::info!(%tenant, endpoint = %eid, "endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let secret = sign::new_secret();
    let until = crate::now_ms() + state.config.secret_overlap.as_millis() as i64;
    if !state.store.rotate_secret(&tenant, &eid, &secret, until).await? {
        return Err(ApiError::NotFound(format!("unknown endpoint {eid}")));
    }
    tracing::info!(%tenant, endpoint = %eid, "endpoint secret rotated");
    Ok(Json(json!({ "secret": secret, "previous_secret_expires_at": until })))
}

#[derive(Deserialize)]
struct TestRequest {
    event_type: Option<String>,
}

async fn test_endpoint(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<TestRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let req = json_body(body)?;
    let event_type = req.event_type.unwrap_or_else(|| "call.missed".into());
    if event_type.trim().is_empty() {
        return Err(unprocessable("event_type must not be empty"));
    }
    let ep = find_endpoint(&state, &tenant, &eid).await?;
    let id = new_id("evt_test");
    let body = crate::normalize::envelope(
        &id,
        &event_type,
        crate::now_ms() / 1000,
        &tenant,
        &sample_payload(&event_type),
        true,
    );
    let outbound = state.sender.policies().read(&state.store, &tenant).await?;
    let r = state.sender.send(&ep, &outbound, &id, &body.to_string()).await;
    Ok(Json(json!({
        "event_id": id,
        "event_type": event_type,
        "succeeded": r.status.is_some_and(|s| (200..300).contains(&s)),
        "status_code": r.status,
        "error": r.error,
        "response_excerpt": r.excerpt,
        "duration_ms": r.duration.as_millis() as u64,
    })))
}

/// A realistic sample payload for a test delivery.
fn sample_payload(event_type: &str) -> Value {
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

// ---- plugins ----

/// The skeleton's upload: a new version of the plugin named `default`, activated at once.
async fn upload_plugin(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    // Authenticated before a byte of the body is read.
    let tenant = authorize(&state, &headers, &id).await?;
    let bytes = read_body(body, state.config.max_plugin_bytes).await?;
    plugins::store_upload(&state, &tenant, plugins::DEFAULT_PLUGIN, &headers, bytes, true).await
}

// ---- events and deliveries ----

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<String>,
    limit: Option<i64>,
}

async fn list_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let after = match q.after.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid cursor {c:?}")))?,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    let page = state.store.events_page(&tenant, after, limit).await?;
    let next = page.last().map(|e| e.seq.to_string()).or(q.after.filter(|c| !c.is_empty()));
    Ok(Json(json!({
        "data": page.iter().map(|e| e.event.envelope()).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

async fn get_event(
    State(state): State<AppState>,
    Path((id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let stored = state
        .store
        .event(&tenant, &event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown event {event_id}")))?;
    let runs = state.store.plugin_runs(&tenant, &event_id).await?;
    let attempts = state.store.attempts(&tenant, &event_id).await?;
    Ok(Json(json!({
        "event": stored.event.envelope(),
        "status": stored.status,
        "error": stored.error,
        "plugin_runs": runs,
        "deliveries": attempts,
    })))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    event_id: Option<String>,
    status: Option<String>,
    endpoint_id: Option<String>,
    limit: Option<i64>,
}

/// With `event_id`: that event's attempts, in order. Otherwise: deliveries, newest first,
/// filtered by `status` (pending, succeeded, failed) and `endpoint_id`.
async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    if let Some(event_id) = q.event_id.filter(|e| !e.is_empty()) {
        let attempts = state.store.attempts(&tenant, &event_id).await?;
        return Ok(Json(json!({ "data": attempts })));
    }
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = status.as_deref()
        && !matches!(s, "pending" | "succeeded" | "failed")
    {
        return Err(ApiError::BadRequest(format!("status must be pending, succeeded or failed, not {s:?}")));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    let endpoint = q.endpoint_id.filter(|e| !e.is_empty());
    let deliveries = state.store.deliveries(&tenant, status.as_deref(), endpoint.as_deref(), limit).await?;
    Ok(Json(json!({ "data": deliveries })))
}

async fn retry_delivery(
    State(state): State<AppState>,
    Path((id, did)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let did: i64 = did.parse().map_err(|_| ApiError::NotFound(format!("unknown delivery {did}")))?;
    match state.store.retry_delivery(&tenant, did).await? {
        None => Err(ApiError::NotFound(format!("unknown delivery {did}"))),
        Some(false) => {
            Err(ApiError::Conflict(format!("delivery {did} has not failed; only failed deliveries are retried")))
        }
        Some(true) => {
            tracing::info!(%tenant, delivery = did, "failed delivery queued again");
            state.wake.delivery.notify_one();
            Ok((StatusCode::ACCEPTED, Json(json!({ "id": did, "status": "pending" }))).into_response())
        }
    }
}

#[derive(Deserialize)]
struct RecoverRequest {
    since: Value,
}

/// `since` as unix seconds, or an RFC 3339 UTC time such as `2026-11-24T10:00:00Z`.
fn parse_since(v: &Value) -> Result<i64, ApiError> {
    let bad = || unprocessable("since must be unix seconds or an RFC 3339 time like 2026-11-24T10:00:00Z");
    match v {
        Value::Number(n) => n.as_i64().map(|s| s * 1000).ok_or_else(bad),
        Value::String(s) => crate::normalize::parse_rfc3339(s).map(|secs| secs * 1000).ok_or_else(bad),
        _ => Err(bad()),
    }
}

async fn recover_endpoint(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<RecoverRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let since = parse_since(&json_body(body)?.since)?;
    find_endpoint(&state, &tenant, &eid).await?;
    let n = state.store.recover(&tenant, &eid, since).await?;
    tracing::info!(%tenant, endpoint = %eid, requeued = n, "failed deliveries recovered");
    state.wake.delivery.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({ "requeued": n }))).into_response())
}

#[derive(Deserialize)]
struct ReplayRequest {
    endpoint_id: String,
}

async fn replay_event(
    State(state): State<AppState>,
    Path((id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let req = json_body(body)?;
    let ep = find_endpoint(&state, &tenant, &req.endpoint_id).await?;
    let stored = state
        .store
        .event(&tenant, &event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown event {event_id}")))?;
    let fallback = NewDelivery {
        endpoint_id: ep.id.clone(),
        message_id: stored.event.id.clone(),
        body: stored.event.envelope().to_string().into(),
        ordering_key: None,
    };
    let ids = state.store.replay(&tenant, &event_id, &ep.id, fallback).await?;
    tracing::info!(%tenant, %event_id, endpoint = %ep.id, deliveries = ?ids, "event replayed");
    state.wake.delivery.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({ "delivery_ids": ids }))).into_response())
}

#[derive(Deserialize)]
struct ReceiptsQuery {
    limit: Option<i64>,
    provider: Option<String>,
    verdict: Option<String>,
    before: Option<i64>,
}

async fn list_receipts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ReceiptsQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    if let Some(v) = q.verdict.as_deref()
        && !matches!(v, "accepted" | "duplicate" | "rejected")
    {
        return Err(ApiError::BadRequest("verdict must be accepted, duplicate or rejected".into()));
    }
    let filter = crate::store::ReceiptFilter { provider: q.provider, verdict: q.verdict, before: q.before };
    let receipts = state.store.receipts(&tenant, &filter, limit).await?;
    let next = (receipts.len() as i64 == limit).then(|| receipts.last().map(|r| r.id)).flatten();
    Ok(Json(json!({ "data": receipts, "next_before": next })))
}

// ---- sinks ----

fn sink_json(s: &crate::store::Sink) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "config": crate::sink::redacted(&s.kind, &s.config),
        "event_types": s.event_types,
        "external_id_field": s.external_id_field,
    })
}

async fn create_sink(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (tenant, operator) = authorize_as(&state, &headers, &id).await?;
    let body = object_body(body)?;
    let name = body.get("name").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if name.is_empty() || name.len() > 100 {
        return Err(unprocessable("name is required (1 to 100 characters)"));
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    let outbound = state.sender.policies().read(&state.store, &tenant).await?;
    let config = crate::sink::validate_config(kind, &body, &outbound, operator).map_err(|e| match e {
        crate::sink::SinkError::OperatorOnly => ApiError::Forbidden,
        other => unprocessable(other.to_string()),
    })?;
    let event_types: Vec<String> = match body.get("event_types") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|_| unprocessable("event_types must be a list of patterns"))?
        }
    };
    let external_id_field = body.get("external_id_field").and_then(Value::as_str).map(String::from);
    if !event_types.is_empty() && external_id_field.is_none() {
        return Err(unprocessable(
            "the default mapping (event_types) needs external_id_field, the payload field holding the id",
        ));
    }
    let sink = crate::store::Sink {
        id: new_id("snk"),
        tenant_id: tenant.clone(),
        name: name.to_string(),
        kind: kind.to_string(),
        config,
        event_types,
        external_id_field,
    };
    if kind == "sql" {
        let url = sink.config["database_url"].as_str().unwrap_or_default();
        let table = sink.config["table"].as_str().unwrap_or_default();
        state
            .sql_sinks
            .prepare(&tenant, &outbound, url, table)
            .await
            .map_err(|e| unprocessable(format!("cannot prepare the sink table: {e}")))?;
    }
    match state.store.create_sink(&sink, state.config.max_sinks).await? {
        Insert::Created => {}
        Insert::Duplicate => return Err(ApiError::Conflict(format!("a sink named {name:?} exists"))),
        Insert::Full => {
            tracing::warn!(%tenant, "sink refused: the tenant is at its cap");
            return Err(ApiError::Quota {
                quota: "sinks",
                message: format!("the tenant has {} sinks, its cap; delete one first", state.config.max_sinks),
            });
        }
    }
    tracing::info!(%tenant, sink = %sink.name, kind, "sink created");
    Ok((StatusCode::CREATED, Json(sink_json(&sink))).into_response())
}

async fn list_sinks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let sinks = state.store.sinks(&tenant).await?;
    Ok(Json(json!({ "data": sinks.iter().map(sink_json).collect::<Vec<_>>() })))
}

/// Delete a sink; its pending writes fail with "sink deleted".
async fn delete_sink(
    State(state): State<AppState>,
    Path((id, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    if !state.store.delete_sink(&tenant, &sid).await? {
        return Err(ApiError::NotFound(format!("no sink {sid}")));
    }
    tracing::info!(%tenant, sink = %sid, "sink deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---- numbers and calls ----

/// Whether `s` is an E.164 number: `+` then 8 to 15 digits, no leading zero.
fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0'))
}

#[derive(Deserialize)]
struct NumberBody {
    forward_to: Option<String>,
    #[serde(default)]
    label: String,
    #[serde(default)]
    voicemail: bool,
}

async fn put_number(
    State(state): State<AppState>,
    Path((id, e164)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<NumberBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let b = json_body(body)?;
    if !is_e164(&e164) && e164 != crate::ingest::DEFAULT_NUMBER {
        return Err(unprocessable(format!("{e164:?} is not an E.164 number such as +14155550100 (or \"default\")")));
    }
    let forward_to = b.forward_to.filter(|f| !f.is_empty());
    if let Some(f) = &forward_to
        && !is_e164(f)
    {
        return Err(unprocessable(format!("forward_to {f:?} is not an E.164 number")));
    }
    let n = crate::store::NumberSettings { e164, forward_to, label: b.label, voicemail: b.voicemail };
    state.store.put_number(&tenant, &n).await?;
    Ok(Json(json!(n)))
}

async fn get_number(
    State(state): State<AppState>,
    Path((id, e164)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let n = state
        .store
        .number(&tenant, &e164)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown number {e164}")))?;
    Ok(Json(json!(n)))
}

async fn get_call(
    State(state): State<AppState>,
    Path((id, call_sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let c = state
        .store
        .call(&tenant, &call_sid)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown call {call_sid}")))?;
    Ok(Json(json!({
        "call_sid": call_sid,
        "outcome": c.outcome,
        "from": c.from,
        "to": c.to,
        "forward_to": c.forward_to,
        "voicemail": c.voicemail,
        "status": c.parent_status,
        "dial_status": c.dial_status,
        "recording_url": c.recording_url,
    })))
}

async fn get_contact(
    State(state): State<AppState>,
    Path((id, e164)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let c = state
        .store
        .contact(&tenant, &e164)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown contact {e164}")))?;
    Ok(Json(c))
}

async fn get_billing(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let b = state.store.billing(&tenant).await?;
    Ok(Json(json!({
        "customer_id": b.customer_id,
        "customer_email": b.customer_email,
        "subscription_id": b.subscription_id,
        "status": b.status,
        "plan": b.plan,
        "current_period_end": b.current_period_end,
        "cancel_at_period_end": b.cancel_at_period_end,
        "last_invoice": b.last_invoice,
        "checkout": b.checkout,
        "as_of": { "subscription": b.subscription_as_of, "invoice": b.invoice_as_of, "customer": b.customer_as_of },
    })))
}

/// Re-run a kept receipt: normalize again from its raw body where normalizing is stateless
/// (Stripe), else replay the events it produced (Twilio calls and messages go through a state
/// machine that has already applied it); then the tenant's current plugin and endpoints. Only
/// accepted or duplicate receipts replay: a rejected one was never verified.
async fn replay_receipt(
    State(state): State<AppState>,
    Path((id, rid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let unknown = || ApiError::NotFound(format!("unknown receipt {rid}"));
    let rid_n: i64 = rid.parse().map_err(|_| unknown())?;
    let (provider, verdict, key, body) = state.store.receipt(&tenant, rid_n).await?.ok_or_else(unknown)?;
    if verdict == "rejected" {
        return Err(ApiError::Conflict(format!("receipt {rid} was rejected; only verified receipts replay")));
    }
    let key = key.unwrap_or_default();
    let originals = state.store.events_of_receipt(&tenant, &key).await?;
    let fresh: Vec<crate::normalize::CanonicalEvent> = if provider == "stripe" {
        let n = crate::normalize::stripe::event(&body)
            .map_err(|e| unprocessable(format!("receipt no longer normalizes: {e}")))?;
        vec![crate::normalize::CanonicalEvent {
            id: new_id("evt"),
            tenant_id: tenant.clone(),
            event_type: n.event_type,
            occurred_at: n.occurred_at,
            source: "stripe",
            is_test: false,
            payload: n.payload,
        }]
    } else {
        originals.into_iter().map(|e| crate::normalize::CanonicalEvent { id: new_id("evt"), ..e }).collect()
    };
    let ids = state.store.insert_replays(&tenant, rid_n, &fresh).await?;
    tracing::info!(%tenant, receipt = rid_n, events = ids.len(), "receipt replayed");
    state.wake.plugin.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({ "event_ids": ids }))).into_response())
}
