//! Tracked numbers, calls (one, or a page of them), contacts with their timeline, and the
//! billing record.

use super::*;
use crate::store::CallRecord;

use crate::phone::is_e164;

pub(super) async fn put_number(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, e164)): Path<(String, String)>,
    body: Result<Json<NumberBody>, JsonRejection>,
) -> Result<Json<crate::store::NumberSettings>, ApiError> {
    let b = json_body(body)?;
    if !is_e164(&e164) && e164 != crate::ingest::DEFAULT_NUMBER {
        return Err(unprocessable(format!("{e164:?} is not an E.164 number such as +14155550100 (or \"default\")")));
    }
    let forward_to = b.forward_to.filter(|f| !f.is_empty());
    if let Some(f) = &forward_to
        && !is_e164(f)
    {
        return Err(unprocessable(format!("forward_to {f:?} is not an E.164 number")));
    }
    let n = crate::store::NumberSettings { e164, forward_to, label: b.label, voicemail: b.voicemail };
    state.store.put_number(&tenant, &n).await?;
    Ok(Json(n))
}

pub(super) async fn get_number(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, e164)): Path<(String, String)>,
) -> Result<Json<crate::store::NumberSettings>, ApiError> {
    let n = state
        .store
        .number(&tenant, &e164)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown number {e164}")))?;
    Ok(Json(n))
}

pub(super) async fn get_call(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, call_sid)): Path<(String, String)>,
) -> Result<Json<CallView>, ApiError> {
    let c = state
        .store
        .call(&tenant, &call_sid)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown call {call_sid}")))?;
    Ok(Json(call_view(c)))
}

fn call_view(c: CallRecord) -> CallView {
    let s = c.state;
    CallView {
        call_sid: c.call_sid,
        started_at: c.created_at,
        outcome: s.outcome,
        from: s.from,
        to: s.to,
        direction: s.direction,
        duration_s: s.duration_s,
        forward_to: s.forward_to,
        voicemail: s.voicemail,
        status: s.parent_status,
        dial_status: s.dial_status,
        recording_url: s.recording_url,
    }
}

/// The outcomes a calls listing filters on.
const OUTCOMES: [&str; 6] = ["answered", "missed", "forwarded", "voicemail", "failed", "open"];

#[derive(Deserialize)]
pub(super) struct CallsQuery {
    since: Option<String>,
    outcome: Option<String>,
    before: Option<String>,
    limit: Option<i64>,
}

/// Calls newest first: started `since` (unix s or RFC 3339), with an `outcome` (or `open`),
/// paged with `before` (the `next_before` of the previous page).
pub(super) async fn list_calls(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Query(q): Query<CallsQuery>,
) -> Result<Json<CallPage>, ApiError> {
    let outcome = q.outcome.filter(|o| !o.is_empty());
    if let Some(o) = &outcome
        && !OUTCOMES.contains(&o.as_str())
    {
        return Err(ApiError::BadRequest(format!("outcome must be one of {}, not {o:?}", OUTCOMES.join(", "))));
    }
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(
            b.split_once('_')
                .and_then(|(at, sid)| Some((at.parse::<i64>().ok()?, sid.to_string())))
                .ok_or_else(|| ApiError::BadRequest(format!("invalid cursor {b:?}")))?,
        ),
    };
    let query = crate::store::CallQuery {
        since: time_param("since", q.since.as_deref())?.map(|s| s * 1000),
        outcome,
        before,
        limit: page_limit(q.limit)?,
    };
    let calls = state.store.calls(&tenant, &query).await?;
    let next = (calls.len() as i64 == query.limit)
        .then(|| calls.last().map(|c| format!("{}_{}", c.created_at, c.call_sid)))
        .flatten();
    Ok(Json(CallPage { data: calls.into_iter().map(call_view).collect(), next_before: next }))
}

#[derive(Deserialize)]
pub(super) struct TimelineQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

/// One number's calls and messages — every event that concerns it — newest first.
pub(super) async fn contact_timeline(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, e164)): Path<(String, String)>,
    Query(q): Query<TimelineQuery>,
) -> Result<Json<Timeline>, ApiError> {
    let query = crate::store::EventQuery {
        contact: Some(e164.clone()),
        event_type: type_pattern(q.event_type.as_deref())?,
        cursor: q.before,
        newest_first: true,
        limit: page_limit(q.limit)?,
        ..Default::default()
    };
    let page = state.store.events_page(&tenant, &query).await?;
    let next = (page.len() as i64 == query.limit).then(|| page.last().map(|e| e.seq)).flatten();
    Ok(Json(Timeline { contact: e164, data: page.iter().map(|e| e.event.envelope()).collect(), next_before: next }))
}

pub(super) async fn get_contact(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
    Path((_, e164)): Path<(String, String)>,
) -> Result<Json<crate::store::Contact>, ApiError> {
    let c = state
        .store
        .contact(&tenant, &e164)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("unknown contact {e164}")))?;
    Ok(Json(c))
}

pub(super) async fn get_billing(
    State(state): State<AppState>,
    TenantAuth { tenant, .. }: TenantAuth,
) -> Result<Json<BillingView>, ApiError> {
    let b = state.store.billing(&tenant).await?;
    Ok(Json(BillingView {
        customer_id: b.customer_id,
        customer_email: b.customer_email,
        subscription_id: b.subscription_id,
        status: b.status,
        plan: b.plan,
        current_period_end: b.current_period_end,
        cancel_at_period_end: b.cancel_at_period_end,
        last_invoice: b.last_invoice,
        checkout: b.checkout,
        as_of: BillingAsOf { subscription: b.subscription_as_of, invoice: b.invoice_as_of, customer: b.customer_as_of },
    }))
}
