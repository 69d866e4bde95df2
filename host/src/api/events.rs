//! Events, deliveries and receipts as tenants page through them, and the replays and retries
//! they may ask for.

use super::*;

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    after: Option<String>,
    limit: Option<i64>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Events oldest first after the cursor, filtered by type (`call.completed`, `call.*`) and by
/// when they happened (`since` inclusive, `until` exclusive).
pub(super) async fn list_events(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let after = match q.after.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid cursor {c:?}")))?),
    };
    let query = crate::store::EventQuery {
        event_type: type_pattern(q.event_type.as_deref())?,
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        cursor: after,
        limit: page_limit(q.limit)?,
        ..Default::default()
    };
    let page = state.store.events_page(&tenant, &query).await?;
    let next = page.last().map(|e| e.seq.to_string()).or(q.after.filter(|c| !c.is_empty()));
    Ok(Json(EventPage { data: page.iter().map(|e| e.event.envelope()).collect(), next_cursor: next }))
}

/// `limit` between 1 and 1000, 100 when absent.
pub(super) fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 1000".into()));
    }
    Ok(limit)
}

/// A `type` filter: `*`, `call.*` or `call.completed`.
pub(super) fn type_pattern(t: Option<&str>) -> Result<Option<crate::store::TypePattern>, ApiError> {
    match t {
        None | Some("") => Ok(None),
        Some(t) => crate::store::TypePattern::parse(t).ok_or_else(|| {
            ApiError::BadRequest(format!("type {t:?} is not an event type, a pattern like call.* or *"))
        }),
    }
}

/// A time filter, unix seconds or RFC 3339 (`2026-12-01T10:00:00Z`), as unix seconds.
pub(super) fn time_param(name: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else { return Ok(None) };
    v.parse::<i64>()
        .ok()
        .or_else(|| crate::normalize::parse_rfc3339(v))
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("{name} must be unix seconds or an RFC 3339 time, not {v:?}")))
}

pub(super) async fn get_event(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, event_id)): Path<(String, String)>,
) -> Result<Json<EventDetail>, ApiError> {
    let stored = state
        .store
        .event(&tenant, &event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown event {event_id}")))?;
    let runs = state.store.plugin_runs(&tenant, &event_id).await?;
    let attempts = state.store.attempts(&tenant, &event_id).await?;
    Ok(Json(EventDetail {
        event: stored.event.envelope(),
        status: stored.status,
        error: stored.error,
        plugin_runs: runs,
        deliveries: attempts,
    }))
}

#[derive(Deserialize)]
pub(super) struct DeliveriesQuery {
    event_id: Option<String>,
    status: Option<String>,
    endpoint_id: Option<String>,
    limit: Option<i64>,
}

/// With `event_id`: that event's attempts, in order. Otherwise: deliveries, newest first,
/// filtered by `status` (pending, succeeded, failed) and `endpoint_id`.
pub(super) async fn list_deliveries(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Deliveries>, ApiError> {
    if let Some(event_id) = q.event_id.filter(|e| !e.is_empty()) {
        let attempts = state.store.attempts(&tenant, &event_id).await?;
        return Ok(Json(Deliveries::Attempts(AttemptList { data: attempts })));
    }
    let status =
        match q.status.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(&s).ok_or_else(|| {
                ApiError::BadRequest(format!("status must be pending, succeeded or failed, not {s:?}"))
            })?),
        };
    let limit = page_limit(q.limit)?;
    let endpoint = q.endpoint_id.filter(|e| !e.is_empty());
    let endpoint = endpoint.as_deref().map(EndpointId::named);
    let deliveries = state.store.deliveries(&tenant, status, endpoint.as_ref(), limit).await?;
    Ok(Json(Deliveries::Deliveries(DeliveryList { data: deliveries })))
}

pub(super) async fn retry_delivery(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, did)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let did: i64 = did.parse().map_err(|_| ApiError::NotFound(format!("unknown delivery {did}")))?;
    match state.store.retry_delivery(&tenant, DeliveryId(did)).await? {
        None => Err(ApiError::NotFound(format!("unknown delivery {did}"))),
        Some(false) => {
            Err(ApiError::Conflict(format!("delivery {did} has not failed; only failed deliveries are retried")))
        }
        Some(true) => {
            tracing::info!(%tenant, delivery = did, "failed delivery queued again");
            state.wake.delivery.pending();
            Ok((StatusCode::ACCEPTED, Json(Requeued { id: did, status: DeliveryStatus::Pending })).into_response())
        }
    }
}

/// `since` as unix seconds, or an RFC 3339 UTC time such as `2026-11-24T10:00:00Z`.
pub(super) fn parse_since(v: &Value) -> Result<i64, ApiError> {
    let bad = || unprocessable("since must be unix seconds or an RFC 3339 time like 2026-11-24T10:00:00Z");
    match v {
        Value::Number(n) => n.as_i64().map(|s| s * 1000).ok_or_else(bad),
        Value::String(s) => crate::normalize::parse_rfc3339(s).map(|secs| secs * 1000).ok_or_else(bad),
        _ => Err(bad()),
    }
}

pub(super) async fn recover_endpoint(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, eid)): Path<(String, String)>,
    body: Result<Json<RecoverRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let since = parse_since(&json_body(body)?.since)?;
    let n = recover_since(&state, &tenant, &eid, since).await?;
    Ok((StatusCode::ACCEPTED, Json(Recovered { requeued: n })).into_response())
}

/// Queue again the endpoint's deliveries that failed since `since_ms`; how many.
pub(super) async fn recover_since(
    state: &AppState,
    tenant: &TenantId,
    eid: &str,
    since_ms: i64,
) -> Result<u64, ApiError> {
    find_endpoint(state, tenant, eid).await?;
    let n = state.store.recover(tenant, &EndpointId::named(eid), since_ms).await?;
    tracing::info!(%tenant, endpoint = %eid, requeued = n, "failed deliveries recovered");
    state.wake.delivery.pending();
    Ok(n)
}

pub(super) async fn replay_event(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, event_id)): Path<(String, String)>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = json_body(body)?;
    let ep = find_endpoint(&state, &tenant, &req.endpoint_id).await?;
    let stored = state
        .store
        .event(&tenant, &event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown event {event_id}")))?;
    let fallback = NewDelivery {
        endpoint_id: ep.id.clone(),
        message_id: stored.event.id.clone(),
        body: stored.event.envelope().to_string().into(),
        request: None,
        ordering_key: None,
    };
    let ids = state.store.replay(&tenant, &event_id, &ep.id, fallback).await?;
    tracing::info!(%tenant, %event_id, endpoint = %ep.id, deliveries = ?ids, "event replayed");
    state.wake.delivery.pending();
    Ok((StatusCode::ACCEPTED, Json(ReplayedDeliveries { delivery_ids: ids })).into_response())
}

#[derive(Deserialize)]
pub(super) struct ReceiptsQuery {
    limit: Option<i64>,
    provider: Option<String>,
    verdict: Option<String>,
    before: Option<i64>,
}

pub(super) async fn list_receipts(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Query(q): Query<ReceiptsQuery>,
) -> Result<Json<ReceiptPage>, ApiError> {
    let limit = page_limit(q.limit)?;
    let verdict =
        match q.verdict.as_deref() {
            None => None,
            Some(v) => Some(Verdict::parse(v).ok_or_else(|| {
                ApiError::BadRequest("verdict must be accepted, duplicate, rejected or ignored".into())
            })?),
        };
    let filter = crate::store::ReceiptFilter { provider: q.provider, verdict, before: q.before };
    let receipts = state.store.receipts(&tenant, &filter, limit).await?;
    let next = (receipts.len() as i64 == limit).then(|| receipts.last().map(|r| r.id)).flatten();
    Ok(Json(ReceiptPage { data: receipts, next_before: next }))
}

/// Re-run a kept receipt through the tenant's current plugins and endpoints (see
/// [`Ingestor::replay`](crate::ingest::Ingestor::replay)).
pub(super) async fn replay_receipt(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, rid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let rid: i64 = rid.parse().map_err(|_| ApiError::NotFound(format!("unknown receipt {rid}")))?;
    let ids = state.ingest.replay(&tenant, rid).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayedEvents { event_ids: ids })).into_response())
}
