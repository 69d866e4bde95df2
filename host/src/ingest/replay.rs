//! Receipt replays: re-run a kept provider request as fresh events. Where normalizing is
//! stateless (Stripe) the raw body is normalized again; otherwise (Twilio calls and messages go
//! through a state machine that has already applied it) the events it produced are copied with
//! new ids. Only accepted or duplicate receipts replay: a rejected one was never verified.

use super::Ingestor;
use crate::TenantId;
use crate::normalize::CanonicalEvent;

/// Why a receipt cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("unknown receipt {0}")]
    Unknown(i64),
    #[error("receipt {0} was rejected; only verified receipts replay")]
    Rejected(i64),
    #[error("receipt no longer normalizes: {0}")]
    NoLongerNormalizes(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Ingestor {
    /// Store the receipt's events again as fresh events (each with its plugin job); their ids.
    pub async fn replay(&self, tenant: &TenantId, receipt_id: i64) -> Result<Vec<String>, ReplayError> {
        let kept = self.store.receipt(tenant, receipt_id).await?;
        let kept = kept.ok_or(ReplayError::Unknown(receipt_id))?;
        if kept.verdict == crate::store::Verdict::Rejected {
            return Err(ReplayError::Rejected(receipt_id));
        }
        let fresh: Vec<CanonicalEvent> = if kept.provider == "stripe" {
            let n = crate::normalize::stripe::event(&kept.body)
                .map_err(|e| ReplayError::NoLongerNormalizes(e.to_string()))?;
            vec![CanonicalEvent {
                id: crate::new_event_id(),
                tenant_id: tenant.clone(),
                event_type: n.event_type,
                occurred_at: n.occurred_at,
                source: "stripe",
                is_test: false,
                payload: n.payload,
            }]
        } else {
            let key = kept.dedupe_key.unwrap_or_default();
            let originals = self.store.events_of_receipt(tenant, &key).await?;
            originals.into_iter().map(|e| CanonicalEvent { id: crate::new_event_id(), ..e }).collect()
        };
        let ids = self.store.insert_replays(tenant, receipt_id, &fresh).await?;
        tracing::info!(%tenant, receipt = receipt_id, events = ids.len(), "receipt replayed");
        Ok(ids)
    }
}
