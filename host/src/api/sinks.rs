//! CRM sinks: create (checked, and for `sql` prepared under the tenant's outbound policy), list,
//! delete.

use super::*;

pub(super) async fn create_sink(
    State(state): State<AppState>,
    TenantAuth { tenant, operator }: TenantAuth,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
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
        id: SinkId::generate(),
        tenant_id: tenant.clone(),
        name: name.to_string(),
        config,
        event_types,
        external_id_field,
    };
    if let crate::sink::SinkConfig::Sql { database_url: url, table } = &sink.config {
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
    Ok((StatusCode::CREATED, Json(SinkView::from(&sink))).into_response())
}

pub(super) async fn list_sinks(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<SinkList>, ApiError> {
    let sinks = state.store.sinks(&tenant).await?;
    Ok(Json(SinkList { data: sinks.iter().map(SinkView::from).collect() }))
}

/// Delete a sink; its pending writes fail with "sink deleted".
pub(super) async fn delete_sink(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_sink(&tenant, &SinkId::named(&sid)).await? {
        return Err(ApiError::NotFound(format!("no sink {sid}")));
    }
    tracing::info!(%tenant, sink = %sid, "sink deleted");
    Ok(StatusCode::NO_CONTENT)
}
