//! The events pages: the list (newest first, filtered by type and time, new events added
//! without reload by the script polling `rows`), and one event's evidence chain — the provider
//! requests kept for it, the canonical event, each plugin run, each delivery with every
//! attempt — with its retry and replay buttons, which call the API's own handlers.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::view::{badge, json_block, redacted_headers, redacted_route, when_ms, when_s};
use super::*;
use crate::api::events as api;
use crate::api::views::ReplayRequest;
use crate::store::{EventQuery, StoredEvent};

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// Older than this seq (the next page).
    before: Option<i64>,
    /// Newer than this seq (the script's poll).
    after: Option<i64>,
}

/// How many events a page shows.
const PAGE: i64 = 50;

impl ListQuery {
    fn query(&self) -> Result<EventQuery, ConsoleError> {
        Ok(EventQuery {
            event_type: api::type_pattern(Some(&self.event_type))?,
            since: api::time_param("since", Some(&self.since))?,
            until: api::time_param("until", Some(&self.until))?,
            ..Default::default()
        })
    }

    /// The filter as a query string, for links and the script.
    fn filter(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("type", &self.event_type)
            .append_pair("since", &self.since)
            .append_pair("until", &self.until)
            .finish()
    }
}

fn row(e: &StoredEvent) -> Markup {
    let ev = &e.event;
    html! {
        tr data-seq=(e.seq) {
            td { (when_s(ev.occurred_at)) }
            td { code { (ev.event_type) } }
            td { a href={ "/console/events/" (ev.id) } { (ev.id) } }
            td { (badge(e.status.as_str())) @if ev.is_test { " " span.badge.neutral { "test" } } }
            td { (ev.source) }
        }
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let query = EventQuery { cursor: q.before, newest_first: true, limit: PAGE, ..q.query()? };
    let events = state.store.events_page(&session.tenant, &query).await?;
    let newest = events.first().map_or(q.before.map_or(0, |b| b - 1), |e| e.seq);
    let live = q.before.is_none();
    let body = html! {
        form.filters method="get" action="/console/events" {
            label { "Type " input name="type" value=(q.event_type) placeholder="call.* or call.completed"; }
            label { "Since " input name="since" value=(q.since) placeholder="2026-12-01T00:00:00Z"; }
            label { "Until " input name="until" value=(q.until) placeholder="unix seconds or RFC 3339"; }
            button type="submit" { "Filter" }
        }
        table.events {
            thead { tr { th { "Occurred" } th { "Type" } th { "Event" } th { "Status" } th { "Source" } } }
            tbody #event-rows data-live=[live.then(|| format!("/console/events/rows?{}", q.filter()))] data-after=(newest) {
                @for e in &events { (row(e)) }
            }
        }
        @if events.is_empty() { p.empty { "No events yet." } }
        @if let Some(last) = events.last().filter(|_| events.len() as i64 == PAGE) {
            p { a href={ "/console/events?" (q.filter()) "&before=" (last.seq) } { "Older events →" } }
        }
    };
    Ok(page(&session, "/console/events", "Events", body).into_response())
}

/// Rows newer than `after`, newest first, for the list's script; `x-after` names the newest.
pub(super) async fn rows(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let after = q.after.unwrap_or(0);
    let query = EventQuery { cursor: Some(after), limit: 100, ..q.query()? };
    let events = state.store.events_page(&session.tenant, &query).await?;
    let newest = events.last().map_or(after, |e| e.seq);
    let fragment = html! { @for e in events.iter().rev() { (row(e)) } };
    Ok(([(header::HeaderName::from_static("x-after"), newest.to_string())], fragment).into_response())
}

/// Bodies longer than this are cut on the page.
const BODY_SHOWN: usize = 64 * 1024;

pub(super) async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(event_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let tenant = &session.tenant;
    let stored = state
        .store
        .event(tenant, &event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown event {event_id}")))?;
    // A call's events come from all of its signals: those are its evidence.
    let mut receipts = state.store.event_receipts(tenant, &event_id).await?;
    let call_sid = stored.event.payload.get("call_sid").and_then(|v| v.as_str());
    if let Some(sid) = call_sid.filter(|_| stored.event.event_type.starts_with("call.")) {
        receipts.extend(state.store.call_receipts(tenant, sid).await?);
        receipts.sort_by_key(|r| r.id);
        receipts.dedup_by_key(|r| r.id);
    }
    let runs = state.store.plugin_runs(tenant, &event_id).await?;
    let outbound = state.store.event_outbound(tenant, &event_id).await?;
    let attempts = state.store.attempts(tenant, &event_id).await?;
    let endpoints = state.store.endpoints(tenant).await?;
    let digests: HashMap<(String, i64), String> = state
        .store
        .plugins(tenant)
        .await?
        .into_iter()
        .flat_map(|p| p.versions.into_iter().map(move |v| ((p.name.clone(), v.version), v.digest)))
        .collect();
    let ev = &stored.event;
    let body = html! {
        p.meta {
            code { (ev.event_type) } " · occurred " (when_s(ev.occurred_at)) " · " (badge(stored.status.as_str()))
            @if let Some(err) = &stored.error { " " span.error { (err) } }
        }
        ol.chain {
            li #provider-request {
                h2 { "1. Provider request" }
                @if receipts.is_empty() {
                    p.empty { "No provider request is kept for this event (a test or replayed event, or past retention)." }
                }
                @for r in &receipts {
                    article.receipt {
                        p.meta {
                            "Receipt " (r.id) " · " (r.provider) " · " (badge(r.verdict.as_str())) " · received " (when_ms(r.received_at))
                            @if let Some(reason) = &r.reason { " · " (reason) }
                        }
                        p { code { "POST " (redacted_route(&r.route)) } }
                        table.headers { @for (name, value) in redacted_headers(&r.headers) { tr { th { (name) } td { code { (value) } } } } }
                        pre.body { (String::from_utf8_lossy(&r.body[..r.body.len().min(BODY_SHOWN)])) }
                    }
                }
            }
            li #canonical-event { h2 { "2. Canonical event" } (json_block(&ev.envelope())) }
            li #plugin-runs {
                h2 { "3. Plugin runs" }
                @if runs.is_empty() { p.empty { "No plugin ran (none active, or not yet)." } }
                @else {
                    table {
                        thead { tr { th { "Plugin" } th { "Version" } th { "Digest" } th { "Outcome" } th { "Fuel" } th { "Wall time" } th { "Ran" } } }
                        @for run in &runs {
                            tr.plugin-run {
                                td { (run.plugin_name) } td { (run.plugin_version) }
                                td { code.digest { (digests.get(&(run.plugin_name.clone(), run.plugin_version)).map_or("", |d| &d[..d.len().min(12)])) } }
                                td { (badge(&run.outcome)) @if let Some(e) = &run.error { " " span.error { (e) } } }
                                td { (run.fuel_used.map_or("–".to_string(), |f| f.to_string())) }
                                td { (run.wall_us) " µs" }
                                td { (when_ms(run.ran_at)) }
                            }
                            @if !run.logs.is_empty() { tr { td colspan="7" { pre.logs { (run.logs) } } } }
                        }
                    }
                }
            }
            li #deliveries {
                h2 { "4. Deliveries and sink writes" }
                @if outbound.is_empty() { p.empty { "No delivery (no endpoint subscribed, the plugin dropped it, or not yet)." } }
                @for o in &outbound {
                    @let d = &o.delivery;
                    article.delivery data-status=(d.status.as_str()) data-kind=(if o.sink { "sink" } else { "delivery" }) {
                        p.meta {
                            @if o.sink { "Sink write " (d.id) " to sink " code { (d.endpoint_id) } }
                            @else { "Delivery " (d.id) " to " a href={ "/console/endpoints/" (d.endpoint_id) } { (d.endpoint_id) } }
                            " · " (badge(if d.dead_letter { "dead" } else { d.status.as_str() }))
                            " · " (d.attempts) " attempt(s)"
                            @if let Some(e) = &d.last_error { " · " span.error { (e) } }
                        }
                        table.attempts {
                            thead { tr { th { "#" } th { "When" } th { "Status" } th { "Duration" } th { "Outcome" } th { "Response" } } }
                            @for a in attempts.iter().filter(|a| a.delivery_id == d.id.0) {
                                tr.attempt {
                                    td { (a.attempt) } td { (when_ms(a.attempted_at)) }
                                    td.status { (a.status_code.map_or("–".to_string(), |s| s.to_string())) @if let Some(e) = &a.error { " " span.error { (e) } } }
                                    td { (a.duration_ms) " ms" } td { (badge(&a.outcome)) }
                                    td { code.excerpt { (a.response_excerpt.as_deref().unwrap_or("")) } }
                                }
                            }
                        }
                        @if let Some(body) = &o.body { details { summary { "Sent body" } pre.body { (body) } } }
                        @if d.status == crate::store::DeliveryStatus::Failed && !o.sink {
                            form.inline method="post" action={ "/console/events/" (ev.id) "/deliveries/" (d.id) "/retry" } {
                                (session.csrf_field())
                                button.retry type="submit" { "Retry delivery" }
                            }
                        }
                    }
                }
                @if !endpoints.is_empty() {
                    form.inline method="post" action={ "/console/events/" (ev.id) "/replay" } {
                        (session.csrf_field())
                        label { "Replay to " select name="endpoint_id" { @for ep in &endpoints { option value=(ep.id) { (ep.url) } } } }
                        " " button type="submit" { "Replay" }
                    }
                }
            }
        }
    };
    Ok(page(&session, "/console/events", &format!("Event {}", ev.id), body).into_response())
}

#[derive(Deserialize)]
pub(super) struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    endpoint_id: String,
}

pub(super) async fn replay(
    State(state): State<AppState>,
    session: Session,
    Path(event_id): Path<String>,
    Form(form): Form<ReplayForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let request = Ok(axum::Json(ReplayRequest { endpoint_id: form.endpoint_id }));
    api::replay_event(State(state), session.api(), Path((String::new(), event_id.clone())), request).await?;
    Ok(back(&format!("/console/events/{event_id}")))
}

pub(super) async fn retry(
    State(state): State<AppState>,
    session: Session,
    Path((event_id, did)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    api::retry_delivery(State(state), session.api(), Path((String::new(), did))).await?;
    Ok(back(&format!("/console/events/{event_id}")))
}
