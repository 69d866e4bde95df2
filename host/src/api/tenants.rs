//! Tenants (operator only to create), their api keys (rotate, list, revoke) and their provider
//! secrets.

use super::*;

pub(super) async fn create_tenant(
    State(state): State<AppState>,
    _: Operator,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<Response, ApiError> {
    let NewTenant { name } = json_body(body)?;
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::Unprocessable("name must be 1 to 200 characters".into()));
    }
    let id = TenantId::generate();
    let (api_key, prefix) = new_api_key();
    state.store.create_tenant(&id, name, &sha256_hex(&api_key), &prefix).await?;
    tracing::info!(tenant = %id, "tenant created");
    Ok((StatusCode::CREATED, Json(CreatedTenant { id, name: name.to_string(), api_key })).into_response())
}

/// A new api key for the tenant; its previous keys stay valid for `overlap` (default 24 h).
pub(super) async fn rotate_api_key(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    body: Option<Json<Rotation>>,
) -> Result<Response, ApiError> {
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
    let now = state.store.now_ms();
    let previous =
        state.store.rotate_api_key(&tenant, &sha256_hex(&api_key), &prefix, now, overlap.as_millis() as i64).await?;
    tracing::info!(%tenant, %prefix, overlap_s = overlap.as_secs(), "api key rotated");
    let body = NewApiKey { api_key, prefix, previous_expires_at: previous };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn list_api_keys(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<ApiKeyList>, ApiError> {
    Ok(Json(ApiKeyList { data: state.store.api_keys(&tenant, state.store.now_ms()).await? }))
}

/// Revoke a key at once (the key making the call too, if it is that one).
pub(super) async fn revoke_api_key(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, prefix)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !state.store.revoke_api_key(&tenant, &prefix).await? {
        return Err(ApiError::NotFound(format!("no api key {prefix}")));
    }
    tracing::info!(%tenant, %prefix, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn get_tenant(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<TenantView>, ApiError> {
    let t = state
        .store
        .tenant(tenant.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown tenant {tenant}")))?;
    let active = state.store.active_plugins(&tenant).await?;
    Ok(Json(TenantView {
        id: t.id,
        name: t.name,
        active_plugin: active.iter().find(|p| p.name == plugins::DEFAULT_PLUGIN).or(active.first()).map(Into::into),
        active_plugins: active.iter().map(Into::into).collect(),
    }))
}

/// The tenant's settings.
pub(super) async fn get_settings(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<SettingsBody>, ApiError> {
    Ok(Json(settings_view(&state.store.settings(&tenant).await?)))
}

/// Replace the tenant's settings (every field; an omitted one is cleared).
pub(super) async fn put_settings(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    body: Result<Json<SettingsBody>, JsonRejection>,
) -> Result<Json<SettingsBody>, ApiError> {
    let SettingsBody { default_country, contact_events } = json_body(body)?;
    let default_country = default_country
        .map(|c| c.parse::<crate::phone::Country>().map_err(|e| unprocessable(format!("default_country: {e}"))))
        .transpose()?;
    let settings = crate::store::TenantSettings { default_country, contact_events };
    state.store.put_settings(&tenant, &settings).await?;
    tracing::info!(%tenant, default_country = ?settings.default_country, "tenant settings changed");
    Ok(Json(settings_view(&settings)))
}

fn settings_view(s: &crate::store::TenantSettings) -> SettingsBody {
    SettingsBody { default_country: s.default_country.map(|c| c.to_string()), contact_events: s.contact_events }
}

pub(super) async fn put_provider(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, provider)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
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
        return Ok(Json(CallbackToken { callback_token: token }).into_response());
    }
    let secret = given.ok_or_else(|| ApiError::Unprocessable(format!("{field} is required (a non-empty string)")))?;
    state.store.set_provider_secret(&tenant, &provider, secret).await?;
    tracing::info!(%tenant, provider, "provider secret set");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn put_vendor(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, vendor)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    if !crate::normalize::vendor::valid_vendor(&vendor) {
        return Err(unprocessable("vendor names are [a-z0-9_-], 1 to 32 characters"));
    }
    let auth = crate::ingest::vendor_auth::VendorAuth::from_request(json_body(body)?)
        .map_err(|e| unprocessable(e.to_string()))?;
    state.store.set_provider_secret(&tenant, &format!("vendor:{vendor}"), &auth.to_stored()).await?;
    tracing::info!(%tenant, vendor, auth = auth.kind(), "vendor authentication set");
    Ok(StatusCode::NO_CONTENT)
}
