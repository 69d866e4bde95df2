//! HTTP routes: provider hooks, the admin and polling API (bearer keys), health and metrics.
//!
//! Handlers parse and authorize, call the ingest service, the store or the plugin engine, and
//! map results to HTTP through [`error::ApiError`]. No SQL and no wasmtime here.

pub mod error;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use error::ApiError;

use crate::deliver::{sign, validate_url};
use crate::ingest::{HookRequest, Ingestor};
use crate::plugin::PluginEngine;
use crate::store::{Endpoint, Store};
use crate::{Config, TenantId, Wakeups, new_id};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    store: Store,
    ingest: Ingestor,
    plugins: Arc<PluginEngine>,
    config: Arc<Config>,
    /// sha256 of the operator token, compared in constant time.
    admin_digest: [u8; 32],
}

impl AppState {
    pub fn new(store: Store, plugins: Arc<PluginEngine>, wake: Arc<Wakeups>, config: Arc<Config>) -> Self {
        let ingest = Ingestor::new(store.clone(), config.clone(), wake);
        let admin_digest = Sha256::digest(config.admin_token.as_bytes()).into();
        Self { store, ingest, plugins, config, admin_digest }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let hooks = Router::new()
        .route("/hooks/{tenant}/twilio/voice/status", post(twilio_voice_status))
        .route("/hooks/{tenant}/stripe", post(stripe_hook))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    let uploads = Router::new()
        .route("/v1/tenants/{id}/plugins", post(upload_plugin))
        .layer(DefaultBodyLimit::max(state.config.max_plugin_bytes));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/tenants", post(create_tenant))
        .route("/v1/tenants/{id}", get(get_tenant))
        .route("/v1/tenants/{id}/providers/{provider}", put(put_provider))
        .route("/v1/tenants/{id}/endpoints", post(create_endpoint).get(list_endpoints))
        .route("/v1/tenants/{id}/events", get(list_events))
        .route("/v1/tenants/{id}/events/{event_id}", get(get_event))
        .route("/v1/tenants/{id}/deliveries", get(list_deliveries))
        .route("/v1/tenants/{id}/receipts", get(list_receipts))
        .merge(hooks)
        .merge(uploads)
        .with_state(state)
}

// ---- auth ----

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
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
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    if !is_operator(state, token) {
        match state.store.tenant_by_key_hash(&sha256_hex(token)).await? {
            None => return Err(ApiError::Unauthorized),
            Some(own) if own.as_str() != tenant => return Err(ApiError::Forbidden),
            Some(_) => {}
        }
    }
    let t = state.store.tenant(tenant).await?.ok_or_else(|| ApiError::NotFound(format!("unknown tenant {tenant}")))?;
    Ok(t.id)
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|rej| match rej.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(rej.body_text()),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(rej.body_text()),
        _ => ApiError::BadRequest(rej.body_text()),
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

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut out =
        String::from("# HELP hookhost_jobs Jobs in the outbox by kind and status.\n# TYPE hookhost_jobs gauge\n");
    for (kind, status, n) in state.store.job_counts().await? {
        out.push_str(&format!("hookhost_jobs{{kind=\"{kind}\",status=\"{status}\"}} {n}\n"));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

// ---- provider hooks ----

const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

fn hook_request(tenant: String, uri: &Uri, headers: HeaderMap, body: Bytes) -> HookRequest {
    let path_and_query = uri.path_and_query().map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    HookRequest { tenant, path_and_query, headers, body: body.to_vec() }
}

async fn twilio_voice_status(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = raw_body(body, state.config.max_body_bytes)?;
    state.ingest.twilio_voice_status(hook_request(tenant, &uri, headers, body)).await?;
    Ok(([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response())
}

async fn stripe_hook(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    uri: Uri,
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
    let api_key = format!("hk_{}", hex::encode(rand::random::<[u8; 32]>()));
    state.store.create_tenant(&id, name, &sha256_hex(&api_key)).await?;
    tracing::info!(tenant = %id, "tenant created");
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "name": name, "api_key": api_key }))).into_response())
}

async fn get_tenant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let t =
        state.store.tenant(tenant.as_str()).await?.ok_or_else(|| ApiError::NotFound(format!("unknown tenant {id}")))?;
    let plugin = state.store.active_plugin(&tenant).await?;
    Ok(Json(json!({
        "id": t.id,
        "name": t.name,
        "active_plugin": plugin.map(|p| json!({ "name": p.name, "version": p.version, "digest": p.digest })),
    })))
}

async fn put_provider(
    State(state): State<AppState>,
    Path((id, provider)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let body = json_body(body)?;
    let field = match provider.as_str() {
        "twilio" => "auth_token",
        "stripe" => "webhook_secret",
        other => return Err(ApiError::NotFound(format!("unknown provider {other}; known: twilio, stripe"))),
    };
    let secret = body
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::Unprocessable(format!("{field} is required (a non-empty string)")))?;
    state.store.set_provider_secret(&tenant, &provider, secret).await?;
    tracing::info!(%tenant, provider, "provider secret set");
    Ok(StatusCode::NO_CONTENT)
}

// ---- endpoints ----

#[derive(Deserialize)]
struct NewEndpoint {
    url: String,
    #[serde(default = "all_events")]
    event_types: Vec<String>,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
}

fn all_events() -> Vec<String> {
    vec!["*".into()]
}

fn endpoint_json(ep: &Endpoint) -> Value {
    json!({
        "id": ep.id,
        "url": ep.url,
        "event_types": ep.event_types,
        "headers": ep.headers,
        "enabled": ep.enabled,
        "secret": ep.secret,
    })
}

async fn create_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<NewEndpoint>, JsonRejection>,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let req = json_body(body)?;
    validate_url(&req.url, &state.config.outbound_allow).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    if req.event_types.is_empty() || req.event_types.iter().any(|t| t.trim().is_empty()) {
        return Err(ApiError::Unprocessable(
            "event_types must be a non-empty list of patterns such as \"call.*\"".into(),
        ));
    }
    for (name, value) in &req.headers {
        let valid_name = axum::http::HeaderName::try_from(name.as_str()).is_ok();
        let valid_value = value.as_str().is_some_and(|v| axum::http::HeaderValue::from_str(v).is_ok());
        if !valid_name || !valid_value {
            return Err(ApiError::Unprocessable(format!(
                "header {name:?} must be a valid header name with a string value"
            )));
        }
    }
    let ep = Endpoint {
        id: new_id("ep"),
        tenant_id: tenant,
        url: req.url,
        event_types: req.event_types,
        headers: req.headers,
        secret: sign::new_secret(),
        enabled: true,
    };
    state.store.create_endpoint(&ep).await?;
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

// ---- plugins ----

async fn upload_plugin(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/wasm") {
        return Err(ApiError::UnsupportedMediaType("plugins are uploaded as Content-Type: application/wasm".into()));
    }
    let bytes = raw_body(body, state.config.max_plugin_bytes)?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let engine = state.plugins.clone();
    let to_compile = bytes.clone();
    let compiled = tokio::task::spawn_blocking(move || engine.compile(&to_compile))
        .await
        .map_err(|e| ApiError::Internal(format!("compile task: {e}")))?
        .map_err(|e| {
            tracing::warn!(%tenant, error = %e, "plugin upload refused");
            ApiError::Unprocessable(e.to_string())
        })?;
    let version = state.store.add_plugin_version(&tenant, "default", &digest, &bytes).await?;
    state.plugins.remember(&digest, compiled);
    tracing::info!(%tenant, version = version.version, %digest, "plugin uploaded and activated");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": version.name, "version": version.version, "digest": version.digest })),
    )
        .into_response())
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
}

async fn list_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let event_id =
        q.event_id.filter(|e| !e.is_empty()).ok_or_else(|| ApiError::BadRequest("event_id is required".into()))?;
    let attempts = state.store.attempts(&tenant, &event_id).await?;
    Ok(Json(json!({ "data": attempts })))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

async fn list_receipts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers, &id).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    Ok(Json(json!({ "data": state.store.receipts(&tenant, limit).await? })))
}
