//! `POST /hooks/{tenant}/telephony/{vendor}` (and `…/sample`): JSON from any telephony vendor,
//! authenticated as the tenant set for that vendor ([`vendor_auth`]). A call's lifecycle goes
//! through the per-call state machine (stored under `vendor:{vendor}:{call_id}`, so `call.completed`
//! comes once, with `call.missed` beside a missed call); everything else, and test sends, is
//! accepted as one event.

use super::{IngestError, Ingestor, vendor_auth};
use crate::normalize::vendor;
use crate::store::{Accepted, StoreError};

impl Ingestor {
    /// Verify, normalize and store a vendor callback; `force_test` marks a `/sample` send.
    pub async fn vendor(&self, req: super::HookRequest, name: &str, force_test: bool) -> Result<Accepted, IngestError> {
        if !vendor::valid_vendor(name) {
            return Err(IngestError::NotConfigured("vendor"));
        }
        let (mut receipt, stored, settings) = self.open(req, "vendor", &format!("vendor:{name}")).await?;
        let auth = vendor_auth::VendorAuth::from_stored(&stored)
            .map_err(|e| IngestError::Store(StoreError::Corrupt(format!("vendor {name} authentication: {e}"))))?;
        receipt.credential_header = auth.credential_header().map(str::to_string);
        let (verified, message_id, signed_at) =
            match vendor_auth::verify(receipt, &auth, self.store.now_ms() / 1000, 300) {
                Ok(v) => v,
                Err((receipt, e)) => return Err(self.reject(&receipt, e.into()).await),
            };
        let (mut n, is_test) = match vendor::event(name, &verified.body, &message_id, signed_at) {
            Ok(x) => x,
            Err(e) => return Err(self.reject(&verified, e.into()).await),
        };
        if force_test {
            n.dedupe_key.push_str(":sample");
        }
        let is_test = is_test || force_test;
        // Test sends never open or close a real call.
        match vendor::call(&n).filter(|_| !is_test) {
            Some(call) => {
                let key = format!("vendor:{name}:{}", call.call_id);
                let party = call.party.in_e164(settings.default_country);
                let applied =
                    self.apply_signal(&verified, &key, &n.dedupe_key, n.occurred_at, party, call.signal).await?;
                let event_id = applied.event_ids.into_iter().next().unwrap_or_default();
                Ok(Accepted { event_id, duplicate: applied.duplicate })
            }
            None => self.accept_as(verified, Ok(n), is_test).await,
        }
    }
}
