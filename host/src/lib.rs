//! # hookhost
//!
//! A multi-tenant service that receives telephony and billing callbacks from providers
//! (Twilio, Stripe, Exotel, any vendor signing with Standard Webhooks), verifies and keeps
//! them, normalizes them into canonical events, runs each tenant's WebAssembly plugins on them,
//! and delivers the result, signed, to the tenant's endpoints with retries, or writes it to
//! CRM sinks.
//!
//! # Layout
//!
//! One stage per module, in the order an event flows:
//!
//! - [`ingest`]: per provider, signature verification over the raw request
//!   (`Receipt<Unverified>` → `Receipt<Verified>`), rejected-request throttling, then the
//!   durable accept: evidence, dedupe, event and plugin job in one transaction, before the
//!   provider's 2xx.
//! - [`normalize`]: the canonical event model and the provider → canonical mapping (pure).
//! - [`route`]: the router stage — a plugin job's event through the tenant's routing (cached
//!   per configuration revision), its plugin chain, fan-out to endpoints and the default sink
//!   mapping, billing projection, plugin retries.
//! - [`plugin`]: the wasmtime sandbox (the only module that imports wasmtime), limits and
//!   ceilings, chains, stored plugins made ready to run, dry runs and the local runner.
//! - [`deliver`]: endpoint signing (Standard Webhooks or the hookhost style), the retry policy,
//!   the outbound address guard, per-endpoint fairness and ordering, and the delivery worker.
//! - [`sink`]: CRM sinks (HTTP upsert, SQL upsert) and the sink worker: newest version wins,
//!   never written twice.
//! - [`store`]: sqlx over SQLite or PostgreSQL, one file per aggregate; the job outbox with
//!   fenced, renewed leases; the batching writers; retention; typed states. The only SQL on
//!   hookhost's own tables.
//! - [`api`]: axum routes by resource behind one authentication extractor — provider hooks,
//!   the admin and polling API, health, metrics, the OpenAPI document, and the tenant console
//!   (`api::console`: server-rendered pages over the same handlers). No SQL, no wasmtime.
//! - `jobs`: the pump the three workers (route, deliver, sink) share — claims, wake-ups, lease
//!   renewal.
//! - [`metrics`]: counters and histograms rendered at `/metrics`.
//! - [`secrets`]: the keyring that seals secrets at rest (the store seals and opens with it).
//! - [`config`]: settings, parsed and validated ([`Config::validate`]) in the library.
//! - [`clock`]: the time every stage reads, shifted by hand in tests.
//! - [`ids`]: identifier types (tenants, endpoints, sinks, deliveries) and minting.
//! - [`phone`]: phone numbers to E.164 in a tenant's default country (libphonenumber metadata).
//! - [`server`]: the listener (connection cap, header and body deadlines, peer addresses).
//!
//! [`run`] starts the HTTP server, the route, delivery and sink workers, the retention sweeper
//! and the call sweeper (calls no provider will close), and stops them when the `shutdown`
//! future completes.

// No unsafe code but the one call that loads a compiled plugin kept on disk
// (`plugin::artifacts`), which wasmtime can only offer as unsafe.
#![deny(unsafe_code)]

pub mod api;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod ids;
pub mod ingest;
mod jobs;
pub mod metrics;
pub mod normalize;
pub mod phone;
pub mod plugin;
pub mod route;
pub mod secrets;
pub mod server;
pub mod sink;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use clock::Clock;
pub use config::Config;
pub use ids::{DeliveryId, EndpointId, SinkId, TenantId, new_event_id, new_id};

/// Current time, unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("plugin engine: {0}")]
    Plugin(#[from] plugin::PluginError),
    #[error("delivery client: {0}")]
    Deliver(#[from] deliver::DeliverError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

pub use store::Wakeups;

/// Run the service on `listener` until `shutdown` completes: HTTP API, plugin, delivery and
/// sink workers. Work in flight at shutdown is given a grace period; what is left keeps its
/// lease in the store and is picked up at the next start.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with_clock(config, Clock::system(), listener, shutdown).await
}

/// [`run`], with every stage reading time from `clock` (tests shift it instead of waiting).
pub async fn run_with_clock(
    config: Config,
    clock: Clock,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    config.validate()?;
    let config = Arc::new(config);
    let keys =
        secrets::Keyring::load(config.secret_key.as_deref(), &config.database_url).map_err(store::StoreError::from)?;
    let store = store::Store::connect_with_clock(&config.database_url, keys, clock).await?;
    let released = store.release_all_leases().await?;
    if released > 0 {
        tracing::info!(released, "released leases of jobs left running by the previous process");
    }
    let fetcher = plugin::fetch::Fetcher::new(deliver::OutboundPolicy::from_config(&config))
        .map_err(deliver::DeliverError::Client)?;
    let mut engine =
        plugin::PluginEngine::with_keep_resident(config.plugin_limits.clone(), config.plugin_keep_resident)?
            .with_default_ceiling(&config.tenant_ceiling)?
            .with_tenant_slots(config.plugin_tenant_concurrency)
            .with_compile_concurrency(config.compile_concurrency)
            .with_cache_bytes(config.plugin_cache_bytes)
            .with_fetcher(fetcher)
            .with_threads(config.plugin_threads)?;
    if let Some(dir) = &config.plugin_artifacts {
        engine = engine.with_artifacts(dir, config.plugin_artifacts_bytes)?;
    }
    let engine = Arc::new(engine);
    // Uploads a stop or a crash cut short are compiled again, in the background.
    tokio::spawn(plugin::stored::recover_compiles(store.clone(), engine.clone()));
    let sender = deliver::Sender::new(&config)?;
    let wake = store.wakeups();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let plugin_worker =
        tokio::spawn(route::run(store.clone(), engine.clone(), wake.clone(), config.clone(), stop_rx.clone()));
    let delivery_worker = tokio::spawn(deliver::worker::run(
        store.clone(),
        sender.clone(),
        wake.clone(),
        config.clone(),
        stop_rx.clone(),
    ));
    let sink_worker =
        tokio::spawn(sink::worker::run(store.clone(), sender.clone(), wake.clone(), config.clone(), stop_rx.clone()));

    let sweeper = tokio::spawn(sweep(store.clone(), config.clone(), stop_rx.clone()));
    let call_sweeper = tokio::spawn(sweep_calls(store.clone(), config.clone(), stop_rx.clone()));
    let state = api::AppState::new(store.clone(), engine, sender, wake, config.clone());
    let app = api::router(state);
    tracing::info!(addr = %listener.local_addr()?, "hookhost listening");
    let limits = server::ServeLimits {
        max_connections: config.max_connections,
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        grace: Duration::from_secs(10),
    };
    let served = server::serve(listener, app, limits, shutdown).await;

    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(10);
    let _ = tokio::time::timeout(grace, async {
        let _ = plugin_worker.await;
        let _ = delivery_worker.await;
        let _ = sink_worker.await;
        let _ = sweeper.await;
        let _ = call_sweeper.await;
    })
    .await;
    store.close().await;
    served?;
    Ok(())
}

/// Delete what retention no longer keeps, every `sweep_interval`, until `stop`.
async fn sweep(store: store::Store, config: Arc<Config>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let retention = store::Retention { keep: config.retention, keep_rejected: config.rejected_retention };
    while !*stop.borrow() {
        match store.sweep(store.now_ms(), retention).await {
            Ok(swept) if swept.total() > 0 => tracing::info!(?swept, "retention sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; trying again at the next"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.sweep_interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Close the calls no provider will close (see [`store::Store::sweep_calls`]), every quarter
/// of `call_settle` (at most every `sweep_interval`), until `stop`.
async fn sweep_calls(store: store::Store, config: Arc<Config>, mut stop: tokio::sync::watch::Receiver<bool>) {
    const BATCH: i64 = 200;
    let every = (config.call_settle / 4).min(config.sweep_interval);
    while !*stop.borrow() {
        let full = match store.sweep_calls(config.call_settle, config.call_abandon, BATCH).await {
            Ok(swept) => swept.settled + swept.abandoned == BATCH as u64,
            Err(e) => {
                tracing::warn!(error = %e, "call sweep failed; trying again at the next");
                false
            }
        };
        if full {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Every parser of untrusted input, fed generated and mutated inputs: none may panic. (The
/// cargo-fuzz targets in `fuzz/` explore the same functions far longer; this keeps a floor in
/// every test run.)
#[cfg(test)]
mod hostile_input {
    use crate::ingest::{standard, stripe, twilio};
    use crate::normalize::{exotel, sms, vendor};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const SEEDS: [&str; 6] = [
        "t=1700000000,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=abc",
        r#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1"}}}"#,
        "CallSid=CA1&CallStatus=completed&From=%2B14158675309&Digits=1234&Digits=5678",
        r#"{"event_type":"transcript","timestamp_utc":1,"payload":{"call_id":"c"},"is_test":true}"#,
        r#"{"CallSid":"c2","Status":"busy","ConversationDuration":0}"#,
        "Thu, 01 Jan 2026 12:01:00 +0000",
    ];

    #[test]
    fn no_parser_panics_on_hostile_input() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for i in 0..20_000 {
            let seed = SEEDS[i % SEEDS.len()].as_bytes();
            let mut data: Vec<u8> =
                if i % 3 == 0 { (0..(rng.next() % 300)).map(|_| rng.next() as u8).collect() } else { seed.to_vec() };
            for _ in 0..(rng.next() % 6) {
                if data.is_empty() {
                    break;
                }
                let at = (rng.next() as usize) % data.len();
                match rng.next() % 3 {
                    0 => data[at] = rng.next() as u8,
                    1 => {
                        data.remove(at);
                    }
                    _ => {
                        let specials = b",=.&%{}\"\\\0\xff";
                        data.insert(at, specials[(rng.next() as usize) % specials.len()])
                    }
                }
            }
            let text = String::from_utf8_lossy(&data);
            let _ = stripe::check(&text, &data, "whsec_x", 1_700_000_000, 300);
            let params = twilio::form_params(&data);
            let _ = twilio::url_variants(&text);
            let _ = twilio::is_valid(&text, &params, &text, "t");
            let _ = standard::check(
                Some(&text),
                Some(&text),
                Some(&text),
                &data,
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                0,
                300,
            );
            let _ = crate::normalize::stripe::event(&data);
            let _ = vendor::event("v", &data, "m", 0);
            if let Ok(p) = exotel::json_params(&data) {
                let _ = exotel::signal(exotel::Kind::Status, &p);
            }
            let _ = exotel::signal(exotel::Kind::Passthru, &params);
            let _ = sms::classify(&text, Some(&text));
            let india = Some("IN".parse().expect("a country"));
            let _ = sms::received_payload(&params, india);
            let _ = crate::phone::e164(&text, india);
            let _ = crate::normalize::twilio::parse_rfc2822(&text);
            let _ = crate::normalize::parse_rfc3339(&text);
        }
    }
}
