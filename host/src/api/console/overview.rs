//! The overview (activity charts over the last hour and day, backlog, disabled endpoints), the
//! calls pages (calls with their outcome, one call's signals in order, a number's timeline)
//! and the set-up page (which providers are configured, the exact callback URLs to paste).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::view::{badge, bars, json_block, redacted_headers, when_ms, when_s};
use super::*;
use crate::api::numbers as api;
use crate::store::Activity;

fn activity_block(title: &str, span: &str, a: &[Activity]) -> Markup {
    let events: Vec<i64> = a.iter().map(|b| b.events).collect();
    let attempts: Vec<i64> = a.iter().map(|b| b.attempts).collect();
    let failed: Vec<i64> = a.iter().map(|b| b.failed_attempts).collect();
    let (n_ev, n_at, n_failed) = (events.iter().sum::<i64>(), attempts.iter().sum::<i64>(), failed.iter().sum::<i64>());
    let rate = if n_at == 0 { "–".to_string() } else { format!("{:.1} %", 100.0 * n_failed as f64 / n_at as f64) };
    html! {
        section.activity {
            h2 { (title) }
            div.charts {
                figure { (bars(&format!("events per bucket, {span}"), &events, "events")) figcaption { strong { (n_ev) } " events" } }
                figure { (bars(&format!("delivery attempts per bucket, {span}"), &attempts, "attempts")) figcaption { strong { (n_at) } " delivery attempts" } }
                figure { (bars(&format!("failed attempts per bucket, {span}"), &failed, "failures")) figcaption { strong { (n_failed) } " failed · non-2xx rate " (rate) } }
            }
        }
    }
}

pub(super) async fn overview(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let tenant = &session.tenant;
    let hour = state.store.activity(tenant, 5 * 60_000, 12).await?;
    let day = state.store.activity(tenant, 3_600_000, 24).await?;
    let backlog = state.store.backlog(tenant).await?;
    let disabled: Vec<_> = state.store.endpoints(tenant).await?.into_iter().filter(|e| !e.enabled).collect();
    let body = html! {
        (activity_block("Last hour", "5 minutes each", &hour))
        (activity_block("Last day", "1 hour each", &day))
        section {
            h2 { "Backlog" }
            @if backlog.is_empty() { p { "Nothing waiting." } }
            @else { ul { @for (kind, n) in &backlog { li { (n) " " (kind) " job(s) waiting or running" } } } }
        }
        section {
            h2 { "Disabled endpoints" }
            @if disabled.is_empty() { p { "None." } }
            ul { @for e in &disabled { li { a href={ "/console/endpoints/" (e.id) } { (e.url) } " " span.error { (e.disabled_reason.as_deref().unwrap_or("")) } } } }
        }
    };
    Ok(page(&session, "/console", "Overview", body).into_response())
}

#[derive(Deserialize)]
pub(super) struct CallsQuery {
    outcome: Option<String>,
}

pub(super) async fn calls(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<CallsQuery>,
) -> Result<Response, ConsoleError> {
    let query = crate::store::CallQuery {
        outcome: q.outcome.clone().filter(|o| !o.is_empty()),
        limit: 100,
        ..Default::default()
    };
    let calls = state.store.calls(&session.tenant, &query).await?;
    let body = html! {
        table.calls {
            thead { tr { th { "Started" } th { "Call" } th { "From" } th { "To" } th { "Outcome" } th { "Duration" } } }
            @for c in &calls {
                tr {
                    td { (when_ms(c.created_at)) }
                    td { a href={ "/console/calls/" (c.call_sid) } { (c.call_sid) } }
                    td { @if let Some(f) = &c.state.from { a href={ "/console/contacts/" (f) } { (f) } } }
                    td { @if let Some(t) = &c.state.to { a href={ "/console/contacts/" (t) } { (t) } } }
                    td { (badge(c.state.outcome.as_deref().unwrap_or("open"))) }
                    td { @if let Some(d) = c.state.duration_s { (d) " s" } }
                }
            }
        }
        @if calls.is_empty() { p.empty { "No calls yet." } }
    };
    Ok(page(&session, "/console/calls", "Calls", body).into_response())
}

pub(super) async fn call(
    State(state): State<AppState>,
    session: Session,
    Path(call_sid): Path<String>,
) -> Result<Response, ConsoleError> {
    let path = Path((String::new(), call_sid.clone()));
    let axum::Json(view) = api::get_call(State(state.clone()), session.api(), path).await?;
    let signals = state.store.call_receipts(&session.tenant, &call_sid).await?;
    let body = html! {
        (json_block(&serde_json::to_value(&view).unwrap_or_default()))
        h2 { "Signals, in order" }
        ol.signals {
            @for r in &signals {
                li {
                    p.meta { (when_ms(r.received_at)) " · " code { (r.route) } " · " (badge(r.verdict.as_str())) }
                    details { summary { "Request" }
                        table.headers { @for (n, v) in redacted_headers(&r.headers) { tr { th { (n) } td { code { (v) } } } } }
                        pre.body { (String::from_utf8_lossy(&r.body)) }
                    }
                }
            }
        }
    };
    Ok(page(&session, "/console/calls", &format!("Call {call_sid}"), body).into_response())
}

pub(super) async fn contact(
    State(state): State<AppState>,
    session: Session,
    Path(e164): Path<String>,
) -> Result<Response, ConsoleError> {
    let path = Path((String::new(), e164.clone()));
    let query = Query(serde_json::from_value(serde_json::json!({})).map_err(|e| ApiError::Internal(e.to_string()))?);
    let axum::Json(timeline) = api::contact_timeline(State(state.clone()), session.api(), path, query).await?;
    let contact = state.store.contact(&session.tenant, &e164).await?;
    let body = html! {
        @if let Some(c) = &contact {
            p.meta #opt-state {
                @if c.opted_out { (badge("opted out")) } @else { (badge("subscribed")) }
                @if let (Some(k), Some(at)) = (&c.last_keyword, c.opt_changed_at) { " · " code { (k) } " at " (when_ms(at)) }
                " · " (c.messages) " message(s)"
            }
        }
        table.timeline {
            thead { tr { th { "When" } th { "Type" } th { "Event" } } }
            @for e in &timeline.data {
                tr {
                    td { (when_s(e["timestamp_utc"].as_i64().unwrap_or_default())) }
                    td { code { (e["event_type"].as_str().unwrap_or("")) } }
                    td { a href={ "/console/events/" (e["id"].as_str().unwrap_or("")) } { (e["id"].as_str().unwrap_or("")) } }
                }
            }
        }
        @if timeline.data.is_empty() { p.empty { "Nothing for this number." } }
    };
    Ok(page(&session, "/console/calls", &format!("Number {e164}"), body).into_response())
}

pub(super) async fn setup(State(state): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let configured = state.store.configured_providers(&session.tenant).await?;
    let base = format!("{}/hooks/{}", state.config.public_url.trim_end_matches('/'), session.tenant);
    let is = |p: &str| configured.iter().any(|c| c == p);
    let vendors: Vec<&str> = configured.iter().filter_map(|c| c.strip_prefix("vendor:")).collect();
    let url = |u: String| html! { li { code.url { (u) } } };
    let body = html! {
        section.provider #twilio {
            h2 { "Twilio " (badge(if is("twilio") { "configured" } else { "not configured" })) }
            p { "Voice URL (A call comes in):" } ul { (url(format!("{base}/twilio/voice/inbound"))) }
            p { "Call status changes:" } ul { (url(format!("{base}/twilio/voice/status"))) }
            p { "Messaging (A message comes in) and message status callback:" }
            ul { (url(format!("{base}/twilio/sms/inbound"))) (url(format!("{base}/twilio/sms/status"))) }
        }
        section.provider #stripe {
            h2 { "Stripe " (badge(if is("stripe") { "configured" } else { "not configured" })) }
            p { "Webhook endpoint URL:" } ul { (url(format!("{base}/stripe"))) }
        }
        section.provider #exotel {
            h2 { "Exotel " (badge(if is("exotel") { "configured" } else { "not configured" })) }
            p { "Passthru applet and StatusCallback (add " code { "?token=" } " and the callback token you were given):" }
            ul { (url(format!("{base}/exotel/passthru"))) (url(format!("{base}/exotel/status"))) }
        }
        section.provider #vendors {
            h2 { "Other vendors (Standard Webhooks)" }
            @if vendors.is_empty() { p { "None configured: PUT /v1/tenants/" (session.tenant) "/providers/vendor/{vendor}." } }
            ul { @for v in &vendors { (url(format!("{base}/telephony/{v}"))) } }
        }
    };
    Ok(page(&session, "/console/setup", "Set-up", body).into_response())
}
