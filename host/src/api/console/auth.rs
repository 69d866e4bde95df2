//! Signing in and out of the console, and an operator's tenant picker.
//!
//! The sign-in form is protected against forged log-ins by a double-submitted token (a
//! short-lived cookie and the same value in the form). A key is checked as the API checks it,
//! the answer to a wrong key is the same whatever the reason, and attempts are throttled per
//! address (`HOOKHOST_CONSOLE_SIGN_INS`). The key is never kept: the session row holds its SHA-256, so rotating out or
//! revoking the key ends the session.

use std::net::{IpAddr, SocketAddr};

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use maud::html;
use serde::Deserialize;

use super::*;
use crate::store::ConsoleSession;

/// The sign-in form's double-submit cookie.
const PRE_COOKIE: &str = "hookhost_sign_in";

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A cookie with the console's attributes: HttpOnly, SameSite=Strict, Secure when the service
/// is reached over https.
fn console_cookie(state: &AppState, name: &'static str, value: String, max_age_s: i64) -> HeaderValue {
    let c = Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.public_url.starts_with("https://"))
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build();
    HeaderValue::from_str(&c.to_string()).expect("cookie values are hex")
}

fn sign_in_form(pre: &str, message: Option<&str>) -> Markup {
    bare_page(
        "Sign in",
        html! {
            main.narrow {
                h1 { "hookhost console" }
                @if let Some(m) = message { p.error role="alert" { (m) } }
                form method="post" action="/console/sign-in" autocomplete="off" {
                    input type="hidden" name="csrf" value=(pre);
                    label for="key" { "Tenant API key or operator token" }
                    input #key type="password" name="key" required autofocus autocomplete="off";
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// A sign-in form with a fresh double-submit token.
fn sign_in_response(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let pre = random_token();
    let cookie = console_cookie(state, PRE_COOKIE, pre.clone(), 3600);
    (status, [(header::SET_COOKIE, cookie)], sign_in_form(&pre, message)).into_response()
}

pub(super) async fn sign_in_page(State(state): State<AppState>) -> Response {
    sign_in_response(&state, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

/// The answer to every refused key, whatever the reason.
const REFUSED: &str = "That key was not accepted.";

pub(super) async fn sign_in(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, ConsoleError> {
    let pre = cookie(&headers, PRE_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if !csrf_ok(&pre, &form.csrf) {
        tracing::warn!("console sign-in without its form token refused");
        return Ok(sign_in_response(&state, StatusCode::FORBIDDEN, Some("The form expired; sign in again.")));
    }
    let address: Option<IpAddr> = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    let now = state.store.now_ms();
    // Every attempt takes a token from its address's bucket, so guessing is slow whatever the
    // guesses are; a throttled attempt is refused before its key is looked at.
    if let Err(retry_after_ms) = state.sign_ins.take(address, None, now) {
        let retry_after = (retry_after_ms + 999) / 1000;
        tracing::warn!(?address, "console sign-in throttled");
        let mut res = sign_in_response(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins; wait and try again."),
        );
        res.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
        return Ok(res);
    }
    let key = form.key.trim();
    let credential_hash = sha256_hex(key);
    let (tenant, operator) = if !key.is_empty() && super::super::is_operator(&state, key) {
        (None, true)
    } else {
        match state.store.tenant_by_key_hash(&credential_hash, now).await.map_err(ApiError::from)? {
            Some(t) if !key.is_empty() => (Some(t), false),
            _ => {
                tracing::warn!(?address, "console sign-in refused");
                return Ok(sign_in_response(&state, StatusCode::UNAUTHORIZED, Some(REFUSED)));
            }
        }
    };
    let token = random_token();
    let ttl = state.config.console_session;
    let session = ConsoleSession {
        tenant: tenant.clone(),
        operator,
        credential_hash,
        csrf: random_token(),
        expires_at: now + ttl.as_millis() as i64,
    };
    state.store.open_session(&sha256_hex(&token), &session).await.map_err(ApiError::from)?;
    tracing::info!(tenant = ?tenant.as_ref().map(TenantId::as_str), operator, "console session opened");
    let to = if operator { "/console/tenants" } else { "/console" };
    let mut res = Redirect::to(to).into_response();
    let h = res.headers_mut();
    h.append(header::SET_COOKIE, console_cookie(&state, SESSION_COOKIE, token, ttl.as_secs() as i64));
    h.append(header::SET_COOKIE, console_cookie(&state, PRE_COOKIE, String::new(), 0));
    Ok(res)
}

pub(super) async fn sign_out(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    signed.check(&form.csrf)?;
    state.store.close_session(&signed.id_hash).await?;
    tracing::info!(tenant = ?signed.tenant.as_ref().map(TenantId::as_str), "console session signed out");
    let mut res = Redirect::to("/console/sign-in").into_response();
    res.headers_mut().insert(header::SET_COOKIE, console_cookie(&state, SESSION_COOKIE, String::new(), 0));
    Ok(res)
}

/// How many tenants the picker lists.
const PICKER_LIMIT: i64 = 1000;

pub(super) async fn tenants_page(State(state): State<AppState>, signed: Signed) -> Result<Response, ConsoleError> {
    if !signed.operator {
        return Err(ApiError::NotFound("no such page".into()).into());
    }
    let tenants = state.store.tenant_names(PICKER_LIMIT).await?;
    let body = bare_page(
        "Pick a tenant",
        html! {
            main.narrow {
                h1 { "Pick a tenant" }
                @if tenants.is_empty() { p { "No tenants yet: create one with POST /v1/tenants." } }
                form method="post" action="/console/tenants" {
                    input type="hidden" name="csrf" value=(signed.csrf);
                    ul.plain {
                        @for (id, name) in &tenants {
                            li { button type="submit" name="tenant_id" value=(id) { (name) " " code { (id) } } }
                        }
                    }
                }
            }
        },
    );
    Ok(body.into_response())
}

#[derive(Deserialize)]
pub(super) struct Pick {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant_id: String,
}

pub(super) async fn pick_tenant(
    State(state): State<AppState>,
    signed: Signed,
    Form(form): Form<Pick>,
) -> Result<Response, ConsoleError> {
    signed.check(&form.csrf)?;
    if !signed.operator {
        return Err(ApiError::NotFound("no such page".into()).into());
    }
    let tenant = state
        .store
        .tenant(&form.tenant_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown tenant {}", form.tenant_id)))?;
    state.store.pick_session_tenant(&signed.id_hash, &tenant.id).await?;
    tracing::info!(tenant = %tenant.id, "operator console session picked a tenant");
    Ok(back("/console"))
}
