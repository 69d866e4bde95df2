//! HTTP routes: provider hooks, the admin and polling API (bearer keys), health and metrics.
//!
//! Handlers are authenticated by extractors ([`TenantAuth`], `Operator`, the provider `Hook`)
//! before any body is read, call the ingest service, the store or the plugin engine, and map
//! results to HTTP through [`error::ApiError`]. No SQL and no wasmtime here.
//!
//! This file holds the shared state, authentication (operator token or the tenant's key,
//! compared in constant time), body helpers, health and metrics. `routes` is the one table the
//! router and the OpenAPI document (`openapi`) are built from; `views` the typed bodies; the
//! handlers live by resource: `hooks` (provider routes), `tenants` (tenants, api keys, provider
//! secrets), `endpoints`, `events` (events, deliveries, receipts, replays), `sinks`, `numbers`
//! (numbers, calls, contacts, billing), `plugins` (registry, dry runs, chain, limits and
//! ceilings, key-value, usage).

mod console;
mod endpoints;
pub mod error;
mod events;
mod hooks;
mod numbers;
mod openapi;
mod plugins;
mod routes;
mod sinks;
mod tenants;
mod views;

use endpoints::*;
use events::*;
use hooks::*;
use numbers::*;
use sinks::*;
use tenants::*;
use views::*;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use error::ApiError;
pub use routes::router;

use crate::deliver::{OutboundPolicy, Sender, sign, validate_url};
use crate::ingest::{HookRequest, Ingestor, VoiceLeg};
use crate::plugin::PluginEngine;
use crate::store::{DeliveryStatus, Endpoint, Insert, NewDelivery, SigningStyle, Store, Verdict};
use crate::{Config, DeliveryId, EndpointId, SinkId, TenantId, Wakeups, new_id};

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
    /// Console sign-in attempts per address.
    sign_ins: Arc<crate::ingest::throttle::Throttle>,
}

impl AppState {
    pub fn new(
        store: Store,
        plugins: Arc<PluginEngine>,
        sender: Sender,
        wake: Arc<Wakeups>,
        config: Arc<Config>,
    ) -> Self {
        let ingest = Ingestor::new(store.clone(), config.clone());
        let admin_digest = Sha256::digest(config.admin_token.as_bytes()).into();
        let sql_sinks = Arc::default();
        let sign_ins =
            Arc::new(crate::ingest::throttle::Throttle::new(config.console_sign_ins, config.console_sign_ins));
        Self { store, ingest, plugins, config, sender, sql_sinks, wake, admin_digest, sign_ins }
    }
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

/// The caller of a `/v1/tenants/{id}/…` route, authenticated once and before any body is
/// read: the operator token or that tenant's own api key (another tenant's key is 403, an
/// unknown tenant 404 — told only to a caller whose credentials are valid).
pub(crate) struct TenantAuth {
    pub tenant: TenantId,
    /// Whether the caller holds the operator token (it may change ceilings, a tenant may not).
    pub operator: bool,
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let id = path_param(parts, state, "id").await?;
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let operator = is_operator(state, token);
        if !operator {
            match state.store.tenant_by_key_hash(&sha256_hex(token), state.store.now_ms()).await? {
                None => return Err(ApiError::Unauthorized),
                Some(own) if own.as_str() != id => return Err(ApiError::Forbidden),
                Some(_) => {}
            }
        }
        let t = state.store.tenant(&id).await?.ok_or_else(|| ApiError::NotFound(format!("unknown tenant {id}")))?;
        Ok(TenantAuth { tenant: t.id, operator })
    }
}

/// The operator token, checked before any body is read.
pub(crate) struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(&parts.headers) {
            Some(t) if is_operator(state, t) => Ok(Operator),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// One parameter of the matched route (percent-decoded), for extractors that run before the
/// handler's own `Path`.
async fn path_param(parts: &mut Parts, state: &AppState, name: &str) -> Result<String, ApiError> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let value = params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
    value.ok_or_else(|| ApiError::Internal(format!("a route without {{{name}}}")))
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
    let (compiled, loaded) = state.plugins.compile_counts();
    out.push_str(&format!(
        "# HELP hookhost_plugin_compiles_total Plugin components made runnable since start: compiled from their bytes, or loaded compiled from HOOKHOST_PLUGIN_ARTIFACTS.\n# TYPE hookhost_plugin_compiles_total counter\n\
         hookhost_plugin_compiles_total{{from=\"bytes\"}} {compiled}\nhookhost_plugin_compiles_total{{from=\"disk\"}} {loaded}\n"
    ));
    crate::metrics::render(&mut out);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
