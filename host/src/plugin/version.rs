//! The two `hookhost:plugin` worlds a component may be built against: 0.2.0 (today's) and the
//! frozen 0.1.0. Owns which one a component is, its instantiation and call, and the 0.1.0
//! imports, which do what the 0.2.0 ones do ([`super::host`]); a 0.1.0 component's output is
//! turned into 0.2.0 terms here, so nothing past this module knows there are two. Must not
//! decide anything about the output: [`super::check_output`] does.

use wasmtime::Store;

use super::bindings_v1::hookhost::plugin::{host as v1_imports, types as v1};
use super::{HostState, bindings, bindings_v1, imports, wit};

/// A linked component of either world.
pub(super) enum Pre {
    V2(bindings::PluginPre<HostState>),
    V1(bindings_v1::PluginPre<HostState>),
}

/// What `handle` returned, in 0.2.0 terms.
type Handled = Result<Vec<wit::Action>, wit::PluginError>;

impl Pre {
    /// The world `pre` exports `handle` of: 0.2.0 first, then 0.1.0; the reason both refused
    /// otherwise.
    pub(super) fn new(pre: wasmtime::component::InstancePre<HostState>) -> Result<Self, String> {
        let v2 = match bindings::PluginPre::new(pre.clone()) {
            Ok(p) => return Ok(Pre::V2(p)),
            Err(e) => e,
        };
        match bindings_v1::PluginPre::new(pre) {
            Ok(p) => Ok(Pre::V1(p)),
            Err(v1) => Err(format!(
                "it is not a hookhost:plugin component (0.2.0: {v2:#}; 0.1.0: {v1:#}); build it against wit/plugin.wit"
            )),
        }
    }

    pub(super) fn world(&self) -> &'static str {
        match self {
            Pre::V2(_) => "hookhost:plugin@0.2.0",
            Pre::V1(_) => "hookhost:plugin@0.1.0",
        }
    }

    /// Instantiate without calling (an upload's check that the initial state fits).
    pub(super) async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<()> {
        match self {
            Pre::V2(p) => p.instantiate_async(store).await.map(drop),
            Pre::V1(p) => p.instantiate_async(store).await.map(drop),
        }
    }

    /// Instantiate and call `handle` on `event`.
    pub(super) async fn handle(&self, store: &mut Store<HostState>, event: &wit::Event) -> wasmtime::Result<Handled> {
        match self {
            Pre::V2(p) => p.instantiate_async(&mut *store).await?.call_handle(store, event).await,
            Pre::V1(p) => {
                let event = v1::Event {
                    id: event.id.clone(),
                    tenant_id: event.tenant_id.clone(),
                    event_type: event.event_type.clone(),
                    occurred_at: event.occurred_at,
                    source: event.source.clone(),
                    is_test: event.is_test,
                    payload: event.payload.clone(),
                };
                let handled = p.instantiate_async(&mut *store).await?.call_handle(store, &event).await?;
                Ok(handled.map(|actions| actions.into_iter().map(action).collect()).map_err(|e| wit::PluginError {
                    code: e.code,
                    message: e.message,
                    retryable: e.retryable,
                }))
            }
        }
    }
}

/// A 0.1.0 action: the same, with no shaped request.
fn action(a: v1::Action) -> wit::Action {
    match a {
        v1::Action::Deliver(d) => wit::Action::Deliver(wit::Deliver {
            event_type: d.event_type,
            payload: d.payload,
            endpoints: d.endpoints,
            request: None,
        }),
        v1::Action::Sink(s) => {
            wit::Action::Sink(wit::SinkWrite { sink: s.sink, external_id: s.external_id, data: s.data })
        }
        v1::Action::Drop(reason) => wit::Action::Drop(reason),
    }
}

impl v1::Host for HostState {}

impl v1_imports::Host for HostState {
    async fn log(&mut self, level: v1_imports::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            v1_imports::Level::Debug => imports::Level::Debug,
            v1_imports::Level::Info => imports::Level::Info,
            v1_imports::Level::Warn => imports::Level::Warn,
            v1_imports::Level::Error => imports::Level::Error,
        };
        imports::Host::log(self, level, message).await
    }

    async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        imports::Host::kv_get(self, key).await
    }

    async fn kv_set(&mut self, key: String, value: Option<String>) -> wasmtime::Result<Result<(), String>> {
        imports::Host::kv_set(self, key, value).await
    }

    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        imports::Host::now_ms(self).await
    }

    async fn http_fetch(
        &mut self,
        req: v1_imports::HttpRequest,
    ) -> wasmtime::Result<Result<v1_imports::HttpResponse, String>> {
        let req = imports::HttpRequest { method: req.method, url: req.url, headers: req.headers, body: req.body };
        let resp = imports::Host::http_fetch(self, req).await?;
        Ok(resp.map(|r| v1_imports::HttpResponse { status: r.status, headers: r.headers, body: r.body }))
    }
}
