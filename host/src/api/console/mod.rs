//! The tenant console: server-rendered pages under `/console`, embedded in the binary (maud
//! templates, one stylesheet and one small script served from here; no CDN, no build step).
//!
//! This file owns what every page shares: the session (a random token in an HttpOnly,
//! SameSite=Strict cookie; the store keeps its SHA-256), the anti-forgery token every form and
//! script sends back, the page shell, the security headers and the one mapping of failures to
//! HTML. Pages call the same store methods and API handlers the JSON API does, with the tenant
//! the session names, so a page can reach nothing the tenant's key could not. `auth` signs in
//! and out; `events`, `endpoints`, `plugins`, `overview` (overview, calls, set-up) are the pages.
//! No SQL here.

mod auth;
mod endpoints;
mod events;
mod overview;
mod plugins;
mod view;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::TenantId;

/// The session cookie's name.
const SESSION_COOKIE: &str = "hookhost_session";

/// Every console route; an upload's body may be as large as a plugin (`max_plugin_bytes`) and
/// its form fields.
pub(super) fn router(config: &crate::Config) -> Router<AppState> {
    let upload_limit = axum::extract::DefaultBodyLimit::max(config.max_plugin_bytes + 64 * 1024);
    Router::new()
        .route("/console", get(overview::overview))
        .route("/console/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/console/sign-out", post(auth::sign_out))
        .route("/console/tenants", get(auth::tenants_page).post(auth::pick_tenant))
        .route("/console/events", get(events::list))
        .route("/console/events/rows", get(events::rows))
        .route("/console/events/{event_id}", get(events::detail))
        .route("/console/events/{event_id}/replay", post(events::replay))
        .route("/console/events/{event_id}/deliveries/{did}/retry", post(events::retry))
        .route("/console/endpoints", get(endpoints::list).post(endpoints::create))
        .route("/console/endpoints/{eid}", get(endpoints::page_of).post(endpoints::update))
        .route("/console/endpoints/{eid}/test", post(endpoints::test))
        .route("/console/endpoints/{eid}/rotate-secret", post(endpoints::rotate))
        .route("/console/endpoints/{eid}/recover", post(endpoints::recover))
        .route("/console/plugins", get(plugins::list))
        .route("/console/plugins/upload", post(plugins::upload).layer(upload_limit))
        .route("/console/plugins/{name}/versions/{v}/activate", post(plugins::activate))
        .route("/console/plugins/{name}/versions/{v}/dry-run", post(plugins::dry_run))
        .route("/console/calls", get(overview::calls))
        .route("/console/calls/{call_sid}", get(overview::call))
        .route("/console/contacts/{e164}", get(overview::contact))
        .route("/console/setup", get(overview::setup))
        .route("/console/assets/console.css", get(|| asset("text/css", include_str!("assets/console.css"))))
        .route("/console/assets/console.js", get(|| asset("text/javascript", include_str!("assets/console.js"))))
        .layer(middleware::from_fn(security_headers))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// Headers on every console response: no framing, no inline script, nothing cached that a
/// session showed.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/console/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    if !is_asset {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// A signed-in session that shows one tenant.
pub(super) struct Session {
    pub tenant: TenantId,
    pub tenant_name: String,
    pub operator: bool,
    csrf: String,
}

/// A signed-in session, whether or not it has picked a tenant (an operator's may not have).
pub(super) struct Signed {
    pub tenant: Option<TenantId>,
    pub operator: bool,
    csrf: String,
    id_hash: String,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A cookie from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<cookie::Cookie<'a>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let token =
            cookie(&parts.headers, SESSION_COOKIE).map(|c| c.value().to_string()).ok_or(ConsoleError::SignIn)?;
        let id_hash = sha256_hex(&token);
        let stored = state.store.console_session(&id_hash).await.map_err(ApiError::from)?;
        let Some(s) = stored else { return Err(ConsoleError::SignIn) };
        // An operator's session ends with the operator token it was opened with.
        if s.operator && !bool::from(s.credential_hash.as_bytes().ct_eq(hex::encode(state.admin_digest).as_bytes())) {
            return Err(ConsoleError::SignIn);
        }
        Ok(Signed { tenant: s.tenant, operator: s.operator, csrf: s.csrf, id_hash })
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let signed = Signed::from_request_parts(parts, state).await?;
        let Some(id) = signed.tenant else { return Err(ConsoleError::PickTenant) };
        let tenant = state.store.tenant(id.as_str()).await.map_err(ApiError::from)?.ok_or(ConsoleError::PickTenant)?;
        Ok(Session { tenant: tenant.id, tenant_name: tenant.name, operator: signed.operator, csrf: signed.csrf })
    }
}

/// Whether `given` is the session's anti-forgery token (compared in constant time).
fn csrf_ok(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Refuse a form or script call without the session's anti-forgery token.
fn check_csrf(expected: &str, given: &str) -> Result<(), ConsoleError> {
    if csrf_ok(expected, given) { Ok(()) } else { Err(ConsoleError::Forged) }
}

impl Signed {
    pub fn check(&self, given: &str) -> Result<(), ConsoleError> {
        check_csrf(&self.csrf, given)
    }
}

impl Session {
    pub fn check(&self, given: &str) -> Result<(), ConsoleError> {
        check_csrf(&self.csrf, given)
    }

    /// The API's view of this caller, for calling the API's handlers.
    pub fn api(&self) -> super::TenantAuth {
        super::TenantAuth { tenant: self.tenant.clone(), operator: self.operator }
    }

    /// The hidden field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

/// A form whose only field is the anti-forgery token (a button).
#[derive(serde::Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A console failure, answered as a page.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConsoleError {
    /// No session, or it expired, was signed out or lost its credential.
    #[error("sign in to continue")]
    SignIn,
    /// An operator's session that has not picked a tenant yet.
    #[error("pick a tenant")]
    PickTenant,
    /// A form or script call without the session's anti-forgery token.
    #[error("the form's anti-forgery token is missing or wrong; reload the page and try again")]
    Forged,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        ConsoleError::Api(ApiError::from(e))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ConsoleError::SignIn => return Redirect::to("/console/sign-in").into_response(),
            ConsoleError::PickTenant => return Redirect::to("/console/tenants").into_response(),
            ConsoleError::Forged => {
                tracing::warn!("console request without a valid anti-forgery token refused");
                (StatusCode::FORBIDDEN, self.to_string())
            }
            ConsoleError::Api(e) => {
                let status = e.status_and_code().0;
                if status.is_server_error() {
                    tracing::error!(error = %e, "console: internal error");
                    (status, "internal error".to_string())
                } else {
                    (status, e.to_string())
                }
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = bare_page(
            title,
            html! {
                main.narrow {
                    h1 { (status.as_u16()) " " (title) }
                    p.error { (message) }
                    p { a href="/console" { "Back to the console" } }
                }
            },
        );
        (status, body).into_response()
    }
}

/// A whole page without the navigation (sign-in, errors).
fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hookhost" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body { (body) }
        }
    }
}

/// The pages a session moves between.
const NAV: [(&str, &str); 6] = [
    ("/console", "Overview"),
    ("/console/events", "Events"),
    ("/console/endpoints", "Endpoints"),
    ("/console/plugins", "Plugins"),
    ("/console/calls", "Calls"),
    ("/console/setup", "Set-up"),
];

/// A whole page with the navigation; `here` is the current page's path.
pub(super) fn page(session: &Session, here: &str, title: &str, body: Markup) -> Markup {
    bare_page(
        title,
        html! {
            header.top {
                span.brand { "hookhost" }
                nav {
                    @for (href, label) in NAV {
                        a href=(href) class=[(href == here).then_some("here")] { (label) }
                    }
                }
                span.who {
                    (session.tenant_name) " "
                    code { (session.tenant) }
                    @if session.operator { " · " a href="/console/tenants" { "switch tenant" } }
                }
                form.inline method="post" action="/console/sign-out" {
                    (session.csrf_field())
                    button type="submit" { "Sign out" }
                }
            }
            main { h1 { (title) } (body) }
        },
    )
}

/// What a console POST answers when it is done: back to a page (303 See Other).
fn back(to: &str) -> Response {
    Redirect::to(to).into_response()
}
