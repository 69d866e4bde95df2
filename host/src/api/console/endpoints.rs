//! The endpoints pages: list and create; one endpoint to edit, enable or disable, send a test
//! event to (the receiver's answer shown), rotate the secret of (the new one shown once), and
//! recover failed deliveries since a time. Every change goes through the API's handlers, so
//! the same validation, caps and outbound policy apply.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::view::{badge, when_ms};
use super::*;
use crate::api::endpoints as api;
use crate::api::events::{parse_since, recover_since};
use crate::api::views::TestRequest;
use crate::store::Endpoint;

/// The fields a form edits, as the API's settings object.
fn settings(url: &str, description: &str, event_types: &str) -> Map<String, Value> {
    let types: Vec<&str> = event_types.split([',', ' ', '\n']).map(str::trim).filter(|t| !t.is_empty()).collect();
    let types = if types.is_empty() { vec!["*"] } else { types };
    let mut m = Map::new();
    m.insert("url".into(), json!(url.trim()));
    m.insert("description".into(), json!(description));
    m.insert("event_types".into(), json!(types));
    m
}

fn status(ep: &Endpoint) -> Markup {
    html! {
        @if ep.enabled { (badge("enabled")) }
        @else { (badge("disabled")) @if let Some(r) = &ep.disabled_reason { " " span.error { (r) } } }
    }
}

pub(super) async fn list(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let endpoints = state.store.endpoints(&session.tenant).await?;
    let body = html! {
        table.endpoints {
            thead { tr { th { "URL" } th { "Description" } th { "Event types" } th { "State" } } }
            @for ep in &endpoints {
                tr {
                    td { a href={ "/console/endpoints/" (ep.id) } { (ep.url) } }
                    td { (ep.description) }
                    td { code { (ep.event_types.join(", ")) } }
                    td { (status(ep)) }
                }
            }
        }
        @if endpoints.is_empty() { p.empty { "No endpoints yet." } }
        h2 { "New endpoint" }
        form.stacked method="post" action="/console/endpoints" {
            (session.csrf_field())
            label { "URL " input name="url" type="url" required placeholder="https://example.com/hooks"; }
            label { "Description " input name="description"; }
            label { "Event types " input name="event_types" value="*" placeholder="call.*, sms.opt_out"; }
            button type="submit" { "Create endpoint" }
        }
    };
    Ok(page(&session, "/console/endpoints", "Endpoints", body).into_response())
}

#[derive(Deserialize)]
pub(super) struct EndpointForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    event_types: String,
    /// A checkbox: present when ticked.
    enabled: Option<String>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<EndpointForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let body = settings(&form.url, &form.description, &form.event_types);
    let ep = api::new_endpoint(&state, session.tenant.clone(), &body).await?;
    let notice = secret_notice("Endpoint created. Its signing secret, shown this once:", &ep.secret);
    endpoint_page(&state, &session, ep.id.as_str(), Some(notice)).await
}

fn secret_notice(what: &str, secret: &str) -> Markup {
    html! { div.notice #secret { p { (what) } code.secret { (secret) } } }
}

/// One endpoint's page, with what the last action answered (`notice`).
async fn endpoint_page(
    state: &AppState,
    session: &Session,
    eid: &str,
    notice: Option<Markup>,
) -> Result<Response, ConsoleError> {
    let ep = api::find_endpoint(state, &session.tenant, eid).await?;
    let action = |what: &str| format!("/console/endpoints/{}/{what}", ep.id);
    let body = html! {
        @if let Some(n) = notice { (n) }
        p.meta { (status(&ep)) " · signing " code { (ep.signing.as_str()) }
            @if let Some(until) = ep.previous_secret_until { " · previous secret signs until " (when_ms(until)) } }
        h2 { "Settings" }
        form.stacked method="post" action={ "/console/endpoints/" (ep.id) } {
            (session.csrf_field())
            label { "URL " input name="url" type="url" required value=(ep.url); }
            label { "Description " input name="description" value=(ep.description); }
            label { "Event types " input name="event_types" value=(ep.event_types.join(", ")); }
            label.check { input type="checkbox" name="enabled" value="on" checked[ep.enabled]; " Enabled" }
            button type="submit" { "Save" }
        }
        h2 { "Send a test event" }
        form.inline #test-form method="post" action=(action("test")) {
            (session.csrf_field())
            label { "Event type " input name="event_type" value="call.missed"; }
            " " button #send-test type="submit" { "Send test event" }
        }
        h2 { "Signing secret" }
        form.inline method="post" action=(action("rotate-secret")) {
            (session.csrf_field())
            button type="submit" { "Rotate secret" }
            span.hint { " The old secret keeps signing for the overlap." }
        }
        h2 { "Recover failed deliveries" }
        form.inline method="post" action=(action("recover")) {
            (session.csrf_field())
            label { "Failed since " input name="since" required placeholder="2026-12-01T00:00:00Z"; }
            " " button type="submit" { "Recover" }
        }
    };
    Ok(page(session, "/console/endpoints", &format!("Endpoint {}", ep.id), body).into_response())
}

pub(super) async fn page_of(
    State(state): State<AppState>,
    session: Session,
    Path(eid): Path<String>,
) -> Result<Response, ConsoleError> {
    endpoint_page(&state, &session, &eid, None).await
}

pub(super) async fn update(
    State(state): State<AppState>,
    session: Session,
    Path(eid): Path<String>,
    Form(form): Form<EndpointForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let mut body = settings(&form.url, &form.description, &form.event_types);
    body.insert("enabled".into(), json!(form.enabled.is_some()));
    let path = Path((String::new(), eid.clone()));
    let _view = api::patch_endpoint(State(state), session.api(), path, Ok(axum::Json(Value::Object(body)))).await?;
    Ok(back(&format!("/console/endpoints/{eid}")))
}

#[derive(Deserialize)]
pub(super) struct TestForm {
    #[serde(default)]
    csrf: String,
    event_type: Option<String>,
}

pub(super) async fn test(
    State(state): State<AppState>,
    session: Session,
    Path(eid): Path<String>,
    Form(form): Form<TestForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let request = Ok(axum::Json(TestRequest { event_type: form.event_type }));
    let path = Path((String::new(), eid.clone()));
    let axum::Json(r) = api::test_endpoint(State(state.clone()), session.api(), path, request).await?;
    let notice = html! {
        div.notice #test-result data-succeeded=(r.succeeded) {
            p {
                "Test event " code { (r.event_type) } " → "
                @match r.status_code { Some(s) => { "receiver answered " strong.status { (s) } } None => { "no answer" } }
                " in " (r.duration_ms) " ms " (badge(if r.succeeded { "succeeded" } else { "failed" }))
            }
            @if let Some(e) = &r.error { p.error { (e) } }
            @if let Some(x) = &r.response_excerpt { pre.excerpt { (x) } }
        }
    };
    endpoint_page(&state, &session, &eid, Some(notice)).await
}

pub(super) async fn rotate(
    State(state): State<AppState>,
    session: Session,
    Path(eid): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let path = Path((String::new(), eid.clone()));
    let axum::Json(r) = api::rotate_secret(State(state.clone()), session.api(), path).await?;
    let notice = secret_notice("Secret rotated. The new signing secret, shown this once:", &r.secret);
    endpoint_page(&state, &session, &eid, Some(notice)).await
}

#[derive(Deserialize)]
pub(super) struct RecoverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    since: String,
}

pub(super) async fn recover(
    State(state): State<AppState>,
    session: Session,
    Path(eid): Path<String>,
    Form(form): Form<RecoverForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let since = form.since.trim();
    let since_ms = parse_since(&since.parse::<i64>().map_or_else(|_| json!(since), |s| json!(s)))?;
    let n = recover_since(&state, &session.tenant, &eid, since_ms).await?;
    let notice = html! { div.notice #recovered { p { (n) " failed deliveries since " (since) " queued again." } } };
    endpoint_page(&state, &session, &eid, Some(notice)).await
}
