//! The one table of routes: each entry is the handler axum routes to and the description
//! `/openapi.json` gives of it (tag, summary, success status, who may call, request and
//! response bodies with their schemas). The router and the document are both built from this
//! table, so neither can name a route the other lacks. Owns the table only; the handlers live
//! by resource, the document's shape in [`super::openapi`].

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use utoipa::ToSchema;

use super::openapi::{Schemas, schema};
use super::*;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Auth {
    /// No credentials (health, this document; metrics unless a token is configured).
    Open,
    /// The provider's own signature (or Exotel's `?token=`), checked with the tenant's secret.
    Provider,
    /// The operator token or the tenant's API key as `Authorization: Bearer …`.
    Bearer,
}

/// A request or response body.
#[derive(Clone, Copy)]
pub(super) enum Body {
    None,
    /// JSON described by a schema (registered in the document's components).
    Json(fn(&mut Schemas) -> Value),
    Form,
    Wasm,
    Text,
    Xml,
}

/// The JSON body `T`.
fn json<T: ToSchema>() -> Body {
    Body::Json(schema::<T>)
}

/// Which body limit a route's body is read within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// axum's default (2 MiB).
    Default,
    /// `HOOKHOST_MAX_BODY_BYTES`.
    Hook,
    /// `HOOKHOST_MAX_PLUGIN_BYTES`.
    Upload,
}

/// What the document says of an operation.
#[derive(Clone, Copy)]
pub(super) struct Doc {
    pub tag: &'static str,
    pub summary: &'static str,
    pub ok: u16,
    pub auth: Auth,
    pub request: Body,
    pub response: Body,
    pub limit: Limit,
}

/// A bearer-authenticated JSON operation answering `ok` with no body until told otherwise.
fn doc(tag: &'static str, summary: &'static str) -> Doc {
    Doc { tag, summary, ok: 200, auth: Auth::Bearer, request: Body::None, response: Body::None, limit: Limit::Default }
}

impl Doc {
    fn ok(self, ok: u16) -> Self {
        Self { ok, ..self }
    }
    fn takes(self, request: Body) -> Self {
        Self { request, ..self }
    }
    fn gives(self, response: Body) -> Self {
        Self { response, ..self }
    }
    fn open(self) -> Self {
        Self { auth: Auth::Open, ..self }
    }
    /// A provider hook: the provider's signature, the hook body limit.
    fn hook(self) -> Self {
        Self { auth: Auth::Provider, limit: Limit::Hook, ..self }
    }
    fn upload(self) -> Self {
        Self { request: Body::Wasm, limit: Limit::Upload, ..self }
    }
}

/// One operation: a method on a path, its handler and its description.
pub(super) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
    pub doc: Doc,
}

fn at<H: Handler<T, AppState>, T: 'static>(method: Method, path: &'static str, handler: H, doc: Doc) -> Route {
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    Route { method, path, handler: axum::routing::on(filter, handler), doc }
}

/// Every route of the service.
#[rustfmt::skip]
pub(super) fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        at(M::GET, "/healthz", || async { "ok" }, doc("service", "200 while the process runs").open().gives(Body::Text)),
        at(M::GET, "/readyz", readyz, doc("service", "200 when the database answers, 503 otherwise").open().gives(Body::Text)),
        at(M::GET, "/metrics", metrics, doc("service", "Prometheus text exposition (bearer HOOKHOST_METRICS_TOKEN when set)").open().gives(Body::Text)),
        at(M::GET, "/openapi.json", || async { Json(super::openapi::DOCUMENT.clone()) }, doc("service", "This document").open()),
        at(M::POST, "/hooks/{tenant}/twilio/voice/{leg}", twilio_voice, doc("hooks", "Twilio voice webhook (leg: inbound, status, dial-complete); answers TwiML").hook().takes(Body::Form).gives(Body::Xml)),
        at(M::POST, "/hooks/{tenant}/twilio/sms/inbound", twilio_sms_inbound, doc("hooks", "Twilio inbound SMS/MMS; answers empty TwiML").hook().takes(Body::Form).gives(Body::Xml)),
        at(M::POST, "/hooks/{tenant}/twilio/sms/status", twilio_sms_status, doc("hooks", "Twilio outbound message status callback (sms.sent, .delivered, .undelivered, .failed, .read); answers empty TwiML").hook().takes(Body::Form).gives(Body::Xml)),
        at(M::POST, "/hooks/{tenant}/stripe", stripe_hook, doc("hooks", "Stripe event (Stripe-Signature)").hook().takes(Body::Text).gives(json::<HookReceipt>())),
        at(M::POST, "/hooks/{tenant}/telephony/{vendor}", vendor_hook, doc("hooks", "Any vendor signing with Standard Webhooks").hook().takes(Body::Text).gives(json::<HookReceipt>())),
        at(M::POST, "/hooks/{tenant}/telephony/{vendor}/sample", vendor_sample, doc("hooks", "The same, with is_test forced true").hook().takes(Body::Text).gives(json::<HookReceipt>())),
        at(M::GET, "/hooks/{tenant}/exotel/passthru", exotel_passthru, doc("hooks", "Exotel Passthru applet (?token=)").hook().gives(Body::Text)),
        at(M::POST, "/hooks/{tenant}/exotel/passthru", exotel_passthru, doc("hooks", "Exotel Passthru applet (?token=)").hook().takes(Body::Form).gives(Body::Text)),
        at(M::POST, "/hooks/{tenant}/exotel/status", exotel_status, doc("hooks", "Exotel StatusCallback (?token=)").hook().takes(Body::Form).gives(Body::Text)),
        at(M::POST, "/v1/tenants", create_tenant, doc("tenants", "Create a tenant (operator only); returns its API key once").ok(201).takes(json::<NewTenant>()).gives(json::<CreatedTenant>())),
        at(M::GET, "/v1/tenants/{id}", get_tenant, doc("tenants", "A tenant and its active plugins").gives(json::<TenantView>())),
        at(M::POST, "/v1/tenants/{id}/api-keys", rotate_api_key, doc("tenants", "A new api key; the previous ones valid for the overlap").ok(201).takes(json::<Rotation>()).gives(json::<NewApiKey>())),
        at(M::GET, "/v1/tenants/{id}/api-keys", list_api_keys, doc("tenants", "The tenant's valid api keys by prefix").gives(json::<ApiKeyList>())),
        at(M::DELETE, "/v1/tenants/{id}/api-keys/{prefix}", revoke_api_key, doc("tenants", "Revoke an api key at once").ok(204)),
        at(M::GET, "/v1/tenants/{id}/settings", get_settings, doc("tenants", "The tenant's settings (default_country)").gives(json::<SettingsBody>())),
        at(M::PUT, "/v1/tenants/{id}/settings", put_settings, doc("tenants", "Replace the tenant's settings; default_country: the ISO 3166-1 alpha-2 code national numbers are read in").takes(json::<SettingsBody>()).gives(json::<SettingsBody>())),
        at(M::PUT, "/v1/tenants/{id}/providers/{provider}", put_provider, doc("tenants", "Set a provider's secret (twilio, stripe: 204; exotel: 200 with the callback token)").ok(204).takes(json::<ProviderSecret>()).gives(json::<CallbackToken>())),
        at(M::PUT, "/v1/tenants/{id}/providers/vendor/{vendor}", put_vendor, doc("tenants", "Set a Standard Webhooks vendor's secret").ok(204).takes(json::<VendorSecret>())),
        at(M::POST, "/v1/tenants/{id}/endpoints", create_endpoint, doc("endpoints", "Create a delivery endpoint").ok(201).takes(json::<EndpointSettings>()).gives(json::<EndpointView>())),
        at(M::GET, "/v1/tenants/{id}/endpoints", list_endpoints, doc("endpoints", "List endpoints").gives(json::<EndpointList>())),
        at(M::GET, "/v1/tenants/{id}/endpoints/{eid}", get_endpoint, doc("endpoints", "An endpoint").gives(json::<EndpointView>())),
        at(M::PATCH, "/v1/tenants/{id}/endpoints/{eid}", patch_endpoint, doc("endpoints", "Change an endpoint").takes(json::<EndpointSettings>()).gives(json::<EndpointView>())),
        at(M::DELETE, "/v1/tenants/{id}/endpoints/{eid}", delete_endpoint, doc("endpoints", "Delete an endpoint").ok(204)),
        at(M::POST, "/v1/tenants/{id}/endpoints/{eid}/rotate-secret", rotate_secret, doc("endpoints", "Rotate the signing secret (the old one signs on for the overlap)").gives(json::<SecretRotated>())),
        at(M::POST, "/v1/tenants/{id}/endpoints/{eid}/test", test_endpoint, doc("endpoints", "Send a sample event now").takes(json::<TestRequest>()).gives(json::<TestResult>())),
        at(M::POST, "/v1/tenants/{id}/endpoints/{eid}/recover", recover_endpoint, doc("endpoints", "Queue again every failed delivery since a time").ok(202).takes(json::<RecoverRequest>()).gives(json::<Recovered>())),
        at(M::GET, "/v1/tenants/{id}/events", list_events, doc("events", "Events, oldest first, by cursor (?after=&limit=)").gives(json::<EventPage>())),
        at(M::GET, "/v1/tenants/{id}/events/{event_id}", get_event, doc("events", "An event with its plugin runs and delivery attempts").gives(json::<EventDetail>())),
        at(M::POST, "/v1/tenants/{id}/events/{event_id}/replay", replay_event, doc("events", "Deliver an event again to an endpoint").ok(202).takes(json::<ReplayRequest>()).gives(json::<ReplayedDeliveries>())),
        at(M::GET, "/v1/tenants/{id}/deliveries", list_deliveries, doc("deliveries", "Deliveries by status and endpoint, or an event's attempts (?event_id=)").gives(json::<Deliveries>())),
        at(M::POST, "/v1/tenants/{id}/deliveries/{did}/retry", retry_delivery, doc("deliveries", "Queue a failed delivery again").ok(202).gives(json::<Requeued>())),
        at(M::GET, "/v1/tenants/{id}/receipts", list_receipts, doc("receipts", "Kept provider requests, newest first (?provider=&verdict=&before=&limit=)").gives(json::<ReceiptPage>())),
        at(M::POST, "/v1/tenants/{id}/receipts/{rid}/replay", replay_receipt, doc("receipts", "Re-run a kept provider request").ok(202).gives(json::<ReplayedEvents>())),
        at(M::POST, "/v1/tenants/{id}/sinks", create_sink, doc("sinks", "Create a CRM sink (http-upsert or sql)").ok(201).takes(json::<SinkRequest>()).gives(json::<SinkView>())),
        at(M::GET, "/v1/tenants/{id}/sinks", list_sinks, doc("sinks", "List sinks").gives(json::<SinkList>())),
        at(M::DELETE, "/v1/tenants/{id}/sinks/{sid}", delete_sink, doc("sinks", "Delete a sink (its pending writes fail)").ok(204)),
        at(M::PUT, "/v1/tenants/{id}/numbers/{e164}", put_number, doc("telephony", "A tracked number's forwarding and voicemail").takes(json::<NumberBody>()).gives(json::<crate::store::NumberSettings>())),
        at(M::GET, "/v1/tenants/{id}/numbers/{e164}", get_number, doc("telephony", "A tracked number's settings").gives(json::<crate::store::NumberSettings>())),
        at(M::GET, "/v1/tenants/{id}/calls/{call_sid}", get_call, doc("telephony", "A call as its state machine holds it").gives(json::<CallView>())),
        at(M::GET, "/v1/tenants/{id}/calls", list_calls, doc("telephony", "Calls newest first (?since=&outcome=&before=&limit=)").gives(json::<CallPage>())),
        at(M::GET, "/v1/tenants/{id}/contacts/{e164}/timeline", contact_timeline, doc("telephony", "A number's calls and messages, newest first (?type=&before=&limit=)").gives(json::<Timeline>())),
        at(M::GET, "/v1/tenants/{id}/contacts/{e164}", get_contact, doc("telephony", "A contact's message thread and opt-out state").gives(json::<crate::store::Contact>())),
        at(M::GET, "/v1/tenants/{id}/billing", get_billing, doc("billing", "The tenant's billing state from Stripe").gives(json::<BillingView>())),
        at(M::POST, "/v1/tenants/{id}/plugins", plugins::upload_plugin, doc("plugins", "Upload a version of the plugin `default`, active at once (200 when the same bytes exist)").ok(201).upload().gives(json::<UploadedVersion>())),
        at(M::GET, "/v1/tenants/{id}/plugins", plugins::list_plugins, doc("plugins", "Plugins with their versions and which is active").gives(json::<PluginList>())),
        at(M::POST, "/v1/tenants/{id}/plugins/{name}", plugins::upload_named, doc("plugins", "Upload a new immutable version (validated, precompiled, not active)").ok(201).upload().gives(json::<UploadedVersion>())),
        at(M::GET, "/v1/tenants/{id}/plugins/{name}", plugins::get_plugin, doc("plugins", "One plugin and its versions").gives(json::<crate::store::PluginInfo>())),
        at(M::DELETE, "/v1/tenants/{id}/plugins/{name}", plugins::delete_plugin, doc("plugins", "Delete a plugin (409 while the chain names it)").ok(204)),
        at(M::GET, "/v1/tenants/{id}/plugins/usage", plugins::usage, doc("plugins", "Invocations, failures, fuel and wall-time percentiles per version").gives(json::<UsageList>())),
        at(M::DELETE, "/v1/tenants/{id}/plugins/{name}/versions/{v}", plugins::delete_version, doc("plugins", "Delete an inactive version").ok(204)),
        at(M::POST, "/v1/tenants/{id}/plugins/{name}/versions/{v}/activate", plugins::activate, doc("plugins", "Activate a version (an older one: rollback)").gives(json::<Activated>())),
        at(M::POST, "/v1/tenants/{id}/plugins/{name}/versions/{v}/dry-run", plugins::dry_run_version, doc("plugins", "Run a version on the last N events, without effects").takes(json::<DryRunRequest>()).gives(json::<DryRunView>())),
        at(M::PUT, "/v1/tenants/{id}/chain", plugins::put_chain, doc("plugins", "Set the plugin chain per event-type pattern").takes(json::<Vec<crate::store::ChainRule>>()).gives(json::<ChainView>())),
        at(M::GET, "/v1/tenants/{id}/chain", plugins::get_chain, doc("plugins", "The plugin chain").gives(json::<ChainView>())),
        at(M::DELETE, "/v1/tenants/{id}/chain", plugins::delete_chain, doc("plugins", "Remove the chain (every active plugin runs)").ok(204)),
        at(M::PUT, "/v1/tenants/{id}/limits", plugins::put_limits, doc("plugins", "Override sandbox limits and capabilities (within the ceiling)").takes(json::<LimitsBody>()).gives(json::<LimitsView>())),
        at(M::GET, "/v1/tenants/{id}/limits", plugins::get_limits, doc("plugins", "Effective limits, the overrides and the ceiling").gives(json::<LimitsView>())),
        at(M::PUT, "/v1/tenants/{id}/ceiling", plugins::put_ceiling, doc("plugins", "Set the tenant's ceiling and capabilities (operator token only)").takes(json::<LimitsBody>()).gives(json::<LimitsView>())),
        at(M::GET, "/v1/tenants/{id}/ceiling", plugins::get_ceiling, doc("plugins", "The tenant's ceiling and capabilities").gives(json::<CeilingView>())),
        at(M::PUT, "/v1/tenants/{id}/kv/{key}", plugins::put_kv, doc("plugins", "Set a key-value entry (body: the value)").ok(204).takes(Body::Text)),
        at(M::GET, "/v1/tenants/{id}/kv/{key}", plugins::get_kv, doc("plugins", "A key-value entry").gives(Body::Text)),
        at(M::DELETE, "/v1/tenants/{id}/kv/{key}", plugins::delete_kv, doc("plugins", "Delete a key-value entry").ok(204)),
    ]
}

/// The router of [`routes`]: one method router per path, each route's body limit applied.
pub fn router(state: AppState) -> Router {
    let mut paths: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for route in routes() {
        let handler = match route.doc.limit {
            Limit::Default => route.handler,
            Limit::Hook => route.handler.layer(DefaultBodyLimit::max(state.config.max_body_bytes)),
            Limit::Upload => route.handler.layer(DefaultBodyLimit::max(state.config.max_plugin_bytes)),
        };
        match paths.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(handler),
            None => paths.push((route.path, handler)),
        }
    }
    let api = paths.into_iter().fold(Router::new(), |router, (path, methods)| router.route(path, methods));
    api.merge(super::console::router(&state.config)).with_state(state)
}
