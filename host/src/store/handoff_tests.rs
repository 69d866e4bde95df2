//! The store's side of handing jobs over in memory, on SQLite and PostgreSQL: what is handed
//! over is leased and fenced like a claim, the bounds hold, and nothing handed over is lost
//! when the process dies.

use super::tests::{databases, event, receipt, test_keys};
use super::*;

async fn accept(store: &Store, tenant: &TenantId, key: &str) {
    assert!(!store.accept(&receipt(tenant), &event(tenant, 0), key).await.unwrap().duplicate);
}

fn delivery(endpoint: &str, ordering_key: Option<&str>) -> NewDelivery {
    NewDelivery {
        endpoint_id: EndpointId::named(endpoint),
        message_id: crate::new_id("msg"),
        body: "{\"n\":1}".into(),
        request: None,
        ordering_key: ordering_key.map(str::to_string),
    }
}

async fn finish(store: &Store, job: &Job, deliveries: Vec<NewDelivery>) -> Result<usize> {
    let outputs = Outputs { deliveries, sink_writes: Vec::new() };
    store.finish_plugin_job(job, PluginJobDone { status: EventStatus::Processed, outputs, ..Default::default() }).await
}

const LEASE: Duration = Duration::from_secs(60);

/// With no worker taking from a lane, nothing is handed over; with one, a tenant's events go
/// to it leased up to the per-tenant bound and the lane's total, the rest wait pending (and
/// the worker is told); deliveries without an ordering key follow, keyed ones wait for the
/// claim's ordering rule. A handed-over job whose lease was taken over writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_handed_over_leased_within_their_bounds_and_fenced_like_claims() {
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let wake = store.wakeups();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        for t in [&a, &b] {
            store.create_tenant(t, "t", &crate::new_id("hash"), &crate::new_id("hk")).await.unwrap();
        }
        accept(&store, &a, "closed").await;
        assert!(wake.plugin.take(8).is_empty(), "{url}: no worker, nothing handed over");
        assert!(wake.plugin.take_pending(), "{url}: the worker is told of the pending row");
        assert_eq!(store.claim(JobKind::Plugin, 8, LEASE).await.unwrap().len(), 1, "{url}");

        wake.plugin.open(Bounds { total: 3, per_key: 2, lease: LEASE });
        for key in ["a1", "a2", "a3"] {
            accept(&store, &a, key).await;
        }
        accept(&store, &b, "b1").await;
        accept(&store, &b, "b2").await;
        let handed = wake.plugin.take(8);
        let tenants: Vec<&TenantId> = handed.iter().map(|h| &h.job.tenant_id).collect();
        assert_eq!(tenants, [&a, &a, &b], "{url}: two of a's (its bound), one of b's (the lane's)");
        assert!(wake.plugin.take_pending(), "{url}");
        let claimed = store.claim(JobKind::Plugin, 8, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 2, "{url}: a3 and b2 wait in the store, the handed ones are leased");

        // The first handed job routes to two endpoints: the unkeyed delivery is handed over.
        wake.delivery.open(Bounds { total: 8, per_key: 8, lease: LEASE });
        finish(&store, &handed[0].job, vec![delivery("ep_1", None), delivery("ep_2", Some("k"))]).await.unwrap();
        let sent = wake.delivery.take(8);
        assert_eq!(sent.len(), 1, "{url}");
        assert!(
            matches!(&sent[0].job.work, JobWork::Delivery { endpoint_id, body, .. } if endpoint_id.as_str() == "ep_1" && body == "{\"n\":1}"),
            "{url}: {:?}",
            sent[0].job
        );
        assert!(wake.delivery.take_pending(), "{url}: the keyed one is pending");
        let keyed = store.claim(JobKind::Delivery, 8, LEASE).await.unwrap();
        assert_eq!(keyed.len(), 1, "{url}: only the keyed one is claimable");
        let ok = AttemptRecord { status_code: Some(200), ..Default::default() };
        store.record_attempt(&sent[0].job, DeliveryState::Succeeded, &ok, None).await.unwrap();

        // A handed job whose lease ran out was claimed again: its holder's result stands.
        store.clock().advance(LEASE + Duration::from_secs(1));
        let taken = store.claim(JobKind::Plugin, 8, LEASE).await.unwrap();
        let over = taken.iter().find(|j| j.id == handed[1].job.id).expect("the expired handed job is claimed again");
        let r = finish(&store, &handed[1].job, vec![delivery("ep_1", None)]).await;
        assert!(matches!(r, Err(StoreError::StaleLease(id)) if id == over.id), "{url}: {r:?}");
        assert!(wake.delivery.take(8).is_empty(), "{url}: nothing of a stale result is handed over");
        finish(&store, over, Vec::new()).await.unwrap();
    }
}

/// A process that dies with jobs handed over in memory loses none of them: SQLite's next start
/// releases their leases; on PostgreSQL, another replica claims them once their leases run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_handed_over_to_a_process_that_died_are_claimed_again() {
    for url in databases().await {
        let store = Store::connect(&url, test_keys()).await.unwrap();
        let tenant = TenantId::generate();
        store.create_tenant(&tenant, "t", &crate::new_id("hash"), &crate::new_id("hk")).await.unwrap();
        store.wakeups().plugin.open(Bounds { total: 8, per_key: 8, lease: LEASE });
        for key in ["x1", "x2"] {
            accept(&store, &tenant, key).await;
        }
        let handed = store.wakeups().plugin.take(8);
        assert_eq!(handed.len(), 2, "{url}");
        drop(handed);
        // The process dies: its memory is gone. The next one (or another replica) starts.
        let next = Store::connect(&url, test_keys()).await.unwrap();
        next.release_all_leases().await.unwrap();
        if next.backend() == Backend::Postgres {
            assert!(next.claim(JobKind::Plugin, 8, LEASE).await.unwrap().is_empty(), "{url}: leased until it runs out");
            next.clock().advance(LEASE + Duration::from_secs(1));
        }
        assert_eq!(next.claim(JobKind::Plugin, 8, LEASE).await.unwrap().len(), 2, "{url}");
    }
}
