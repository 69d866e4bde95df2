//! Instance slots: every instantiation — a worker's invocation, a dry run, an upload's check,
//! the CLI — holds one slot of its tenant and one of the engine while its instance lives. The
//! engine's slots are the pooling allocator's instances, so the pool is never asked for more
//! than it has; a tenant's slots are its share, so one tenant holds a few instances at most and
//! waits for its own, never for a pool another tenant emptied. Waiters are served in turn.
//!
//! Owns only the semaphores; knows nothing of wasmtime or the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::TenantId;

/// The engine's and every tenant's instance slots.
#[derive(Debug)]
pub struct Slots {
    global: Arc<Semaphore>,
    per_tenant: usize,
    tenants: Arc<Mutex<HashMap<TenantId, Arc<Semaphore>>>>,
}

/// One instance's slots; released when dropped.
#[derive(Debug)]
pub struct Slot {
    tenant: TenantId,
    tenants: Arc<Mutex<HashMap<TenantId, Arc<Semaphore>>>>,
    own: Option<OwnedSemaphorePermit>,
    global: Option<OwnedSemaphorePermit>,
}

impl Slots {
    /// `total` instances at once, at most `per_tenant` of them one tenant's.
    pub fn new(total: usize, per_tenant: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(total.max(1))),
            per_tenant: per_tenant.clamp(1, total.max(1)),
            tenants: Arc::default(),
        }
    }

    /// Wait for a slot of `tenant`'s share, then for one of the engine's (in that order, so a
    /// tenant waiting on its own share holds none of the engine's).
    pub async fn acquire(&self, tenant: &TenantId) -> Slot {
        let own = {
            let mut tenants = self.tenants.lock().expect("slots lock");
            tenants.entry(tenant.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))).clone()
        };
        let mut slot = Slot { tenant: tenant.clone(), tenants: self.tenants.clone(), own: None, global: None };
        slot.own = Some(own.acquire_owned().await.expect("slot semaphores are never closed"));
        slot.global = Some(self.global.clone().acquire_owned().await.expect("slot semaphores are never closed"));
        slot
    }

    /// Slots of the engine free now.
    pub fn available(&self) -> usize {
        self.global.available_permits()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.global.take();
        self.own.take();
        // Forget a tenant once nobody holds or waits for its slots.
        let mut tenants = self.tenants.lock().expect("slots lock");
        if let Some(sem) = tenants.get(&self.tenant)
            && Arc::strong_count(sem) == 1
        {
            tenants.remove(&self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_tenant_holds_its_share_and_another_still_gets_a_slot() {
        let slots = Slots::new(3, 2);
        let (hostile, calm) = (TenantId::generate(), TenantId::generate());
        let a = slots.acquire(&hostile).await;
        let b = slots.acquire(&hostile).await;
        let third = tokio::time::timeout(Duration::from_millis(20), slots.acquire(&hostile)).await;
        assert!(third.is_err(), "a tenant never holds more than its share");
        let c = slots.acquire(&calm).await;
        assert_eq!(slots.available(), 0);
        drop((a, b, c));
        assert_eq!(slots.available(), 3);
        assert!(slots.tenants.lock().unwrap().is_empty(), "idle tenants are forgotten");
    }
}
