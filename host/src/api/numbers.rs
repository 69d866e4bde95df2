//! Tracked numbers, call state, contacts and the billing record.

use super::*;

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
    Ok(Json(CallView {
        call_sid,
        outcome: c.outcome,
        from: c.from,
        to: c.to,
        forward_to: c.forward_to,
        voicemail: c.voicemail,
        status: c.parent_status,
        dial_status: c.dial_status,
        recording_url: c.recording_url,
    }))
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
