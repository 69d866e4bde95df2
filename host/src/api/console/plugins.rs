//! The plugins page: upload a `.wasm` (a multipart form), every version with its digest, size
//! and state, activate or roll back, usage (fuel and wall-time percentiles, failures by
//! reason), and a dry run of a version on the last N events shown side by side with the active
//! version's actions, changed fields highlighted. Uploads, activation and dry runs go through
//! the API's handlers.

use std::collections::BTreeMap;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::view::{badge, when_ms};
use super::*;
use crate::api::plugins as api;
use crate::api::views::{DryRunRequest, DryRunView};

async fn plugins_page(state: &AppState, session: &Session, notice: Option<Markup>) -> Result<Response, ConsoleError> {
    let plugins = state.store.plugins(&session.tenant).await?;
    let axum::Json(usage) = api::usage(State(state.clone()), session.api()).await?;
    let compiling = plugins.iter().flat_map(|p| &p.versions).any(|v| v.state.as_str() == "compiling");
    let body = html! {
        @if let Some(n) = notice { (n) }
        h2 { "Upload a version" }
        form.stacked #upload method="post" action="/console/plugins/upload" enctype="multipart/form-data" {
            (session.csrf_field())
            label { "Plugin name " input name="name" value="default" required pattern="[a-z0-9][a-z0-9_-]{0,63}"; }
            label { "Component (.wasm) " input name="file" type="file" accept=".wasm,application/wasm" required; }
            button type="submit" { "Upload" }
        }
        @if plugins.is_empty() { p.empty { "No plugins yet." } }
        @for p in &plugins {
            section.plugin data-compiling=[compiling.then_some("1")] {
                h2 { "Plugin " code { (p.name) } }
                table.versions {
                    thead { tr { th { "Version" } th { "Digest" } th { "Size" } th { "Uploaded" } th { "State" } th {} } }
                    @for v in p.versions.iter().rev() {
                        tr data-version=(v.version) {
                            td { (v.version) }
                            td { code.digest { (v.digest[..v.digest.len().min(16)]) } }
                            td { (v.size_bytes) " B" }
                            td { (when_ms(v.created_at)) }
                            td { @if v.active { (badge("active")) " " } (badge(v.state.as_str()))
                                 @if let Some(r) = &v.reason { " " span.error { (r) } } }
                            td.actions {
                                @if !v.active && v.state.as_str() == "ready" {
                                    form.inline method="post" action={ "/console/plugins/" (p.name) "/versions/" (v.version) "/activate" } {
                                        (session.csrf_field())
                                        button type="submit" { @if p.active_version.is_some_and(|a| a > v.version) { "Roll back" } @else { "Activate" } }
                                    }
                                }
                                @if v.state.as_str() == "ready" {
                                    form.inline method="post" action={ "/console/plugins/" (p.name) "/versions/" (v.version) "/dry-run" } {
                                        (session.csrf_field())
                                        label { "last " input.short name="last" type="number" min="1" max="1000" value="10"; " events" }
                                        " " button.dry-run type="submit" { "Dry run" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !usage.data.is_empty() {
            h2 { "Usage" }
            table.usage {
                thead { tr { th { "Plugin" } th { "Version" } th { "Runs" } th { "Fuel p50 / p99" } th { "Wall µs p50 / p99" } th { "Failures" } } }
                @for u in &usage.data {
                    tr {
                        td { (u.name) } td { (u.version) } td { (u.invocations) }
                        td { (opt(u.fuel.p50)) " / " (opt(u.fuel.p99)) }
                        td { (opt(u.wall_us.p50)) " / " (opt(u.wall_us.p99)) }
                        td { @for (reason, n) in &u.failures { (reason) ": " (n) " " } }
                    }
                }
            }
        }
    };
    Ok(page(session, "/console/plugins", "Plugins", body).into_response())
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "–".into(), |v| v.to_string())
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    /// Set after an upload: the plugin and version it stored.
    uploaded: Option<String>,
    version: Option<i64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let notice = q.uploaded.map(|name| {
        html! { div.notice #uploaded { p { "Uploaded " code { (name) } " version " (q.version.unwrap_or_default()) "." } } }
    });
    plugins_page(&state, &session, notice).await
}

/// A multipart upload: `csrf`, `name`, `file`; refused past the plugin size limit by the
/// route's body limit.
pub(super) async fn upload(
    State(state): State<AppState>,
    session: Session,
    mut form: Multipart,
) -> Result<Response, ConsoleError> {
    let (mut csrf, mut name, mut file) = (String::new(), String::new(), None);
    let bad = |e: axum::extract::multipart::MultipartError| match e.status() {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            tracing::warn!(tenant = %session.tenant, "console plugin upload over the size limit refused");
            ApiError::PayloadTooLarge(format!("a plugin is limited to {} bytes", state.config.max_plugin_bytes))
        }
        _ => ApiError::BadRequest(e.body_text()),
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(bad)?,
            Some("name") => name = field.text().await.map_err(bad)?.trim().to_string(),
            Some("file") => file = Some(field.bytes().await.map_err(bad)?),
            _ => {}
        }
    }
    session.check(&csrf)?;
    let bytes = file.filter(|b| !b.is_empty()).ok_or_else(|| ApiError::BadRequest("choose a .wasm file".into()))?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/wasm"));
    let path = Path((String::new(), name));
    let res =
        api::upload_named(State(state.clone()), session.api(), path, headers, axum::body::Body::from(bytes)).await?;
    let stored: Value =
        serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap_or_default())
            .unwrap_or_default();
    let (name, version) = (stored["name"].as_str().unwrap_or_default(), stored["version"].as_i64().unwrap_or_default());
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("uploaded", name)
        .append_pair("version", &version.to_string())
        .finish();
    Ok(back(&format!("/console/plugins?{query}")))
}

pub(super) async fn activate(
    State(state): State<AppState>,
    session: Session,
    Path((name, v)): Path<(String, String)>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let _activated = api::activate(State(state), session.api(), Path((String::new(), name, v))).await?;
    Ok(back("/console/plugins"))
}

#[derive(Deserialize)]
pub(super) struct DryRunForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    last: String,
}

pub(super) async fn dry_run(
    State(state): State<AppState>,
    session: Session,
    Path((name, v)): Path<(String, String)>,
    axum::Form(form): axum::Form<DryRunForm>,
) -> Result<Response, ConsoleError> {
    session.check(&form.csrf)?;
    let last = form.last.trim().parse::<i64>().unwrap_or(10);
    let request = Ok(axum::Json(DryRunRequest { last }));
    let path = Path((String::new(), name, v));
    let axum::Json(view) = api::dry_run_version(State(state.clone()), session.api(), path, request).await?;
    plugins_page(&state, &session, Some(dry_run_view(&view))).await
}

/// A JSON value's leaves by path (`0.body.to`), as text.
fn leaves(v: &Value, path: String, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                leaves(x, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, if path.is_empty() { i.to_string() } else { format!("{path}.{i}") }, out);
            }
        }
        _ => {
            out.insert(path, v.to_string());
        }
    }
}

/// The two sides' leaves, row by row: path, active value, candidate value, changed.
fn diff(active: &Value, candidate: &Value) -> Vec<(String, Option<String>, Option<String>, bool)> {
    let (mut a, mut c) = (BTreeMap::new(), BTreeMap::new());
    leaves(active, String::new(), &mut a);
    leaves(candidate, String::new(), &mut c);
    let mut paths: Vec<&String> = a.keys().chain(c.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .map(|p| {
            let (x, y) = (a.get(p).cloned(), c.get(p).cloned());
            let changed = x != y;
            (p.clone(), x, y, changed)
        })
        .collect()
}

fn dry_run_view(view: &DryRunView) -> Markup {
    let changed = view.results.iter().filter(|r| r["changed"] == Value::Bool(true)).count();
    html! {
        section.notice #dry-run {
            h2 { "Dry run of " code { (view.name) } " version " (view.version) }
            p { (view.results.len()) " events, " strong #changed-count { (changed) } " changed"
                @if view.skipped > 0 { ", " (view.skipped) " not reached before the deadline" } "." }
            @for r in &view.results {
                @let rows = diff(&r["active_actions"], &r["actions"]);
                article.dry-run-event data-changed=(r["changed"]) {
                    h3 { code { (r["event_type"].as_str().unwrap_or("")) } " " (r["event_id"].as_str().unwrap_or("")) }
                    @if let Some(e) = r.get("error") { p.error { "Candidate failed: " (e) } }
                    table.diff {
                        thead { tr { th { "Field" } th { "Active version" } th { "This version" } } }
                        @for (path, old, new, changed) in &rows {
                            tr class=[changed.then_some("changed")] {
                                td { code { (path) } } td { code { (old.as_deref().unwrap_or("")) } } td { code { (new.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_diff_marks_changed_added_and_removed_leaves() {
        let old = json!([{"kind": "deliver", "body": {"to": "+14155550100", "n": 1}}]);
        let new = json!([{"kind": "deliver", "body": {"to": "+1415555****", "extra": true, "n": 1}}]);
        let rows = super::diff(&old, &new);
        let changed: Vec<&str> = rows.iter().filter(|r| r.3).map(|r| r.0.as_str()).collect();
        assert_eq!(changed, ["0.body.extra", "0.body.to"]);
        assert!(rows.iter().any(|r| r.0 == "0.kind" && !r.3));
        assert!(super::diff(&json!(null), &json!([])).iter().all(|r| r.3), "no active version: all new");
    }
}
