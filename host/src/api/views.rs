//! The API's bodies as types: what handlers answer and what they read, each with its OpenAPI
//! schema (`utoipa`), so `/openapi.json` describes every body. Shaping only: no store access,
//! no decisions. Rows the store already returns in their API shape (deliveries, attempts,
//! plugin runs, receipts, numbers, api keys, plugins) are used as they are.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::TenantId;
use crate::store::{
    ApiKeyInfo, Attempt, ChainRule, Delivery, EventStatus, PluginInfo, PluginRun, PluginVersion, ReceiptSummary,
};

/// A list of `T` as `{"data": [...]}`.
macro_rules! lists {
    ($($(#[$doc:meta])* $name:ident of $item:ty;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub data: Vec<$item>,
        }
    )+};
}

lists! {
    ApiKeyList of ApiKeyInfo;
    EndpointList of EndpointView;
    /// Deliveries, newest first.
    DeliveryList of Delivery;
    /// One event's delivery attempts, in order.
    AttemptList of Attempt;
    SinkList of SinkView;
    PluginList of PluginInfo;
    /// Per plugin version: invocations, failures by reason, percentiles.
    UsageList of UsageView;
}

/// A provider request accepted (or recognised as a duplicate).
#[derive(Debug, Serialize, ToSchema)]
pub struct HookReceipt {
    pub received: bool,
    pub event_id: String,
    pub duplicate: bool,
}

// ---- tenants ----

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTenant {
    pub name: String,
}

/// A new tenant; `api_key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    #[schema(value_type = String)]
    pub id: TenantId,
    pub name: String,
    pub api_key: String,
}

/// A plugin version as a tenant sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivePlugin {
    pub name: String,
    pub version: i64,
    pub digest: String,
}

impl From<&PluginVersion> for ActivePlugin {
    fn from(p: &PluginVersion) -> Self {
        Self { name: p.name.clone(), version: p.version, digest: p.digest.clone() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    #[schema(value_type = String)]
    pub id: TenantId,
    pub name: String,
    /// The plugin named `default` if active, else the first active one.
    pub active_plugin: Option<ActivePlugin>,
    pub active_plugins: Vec<ActivePlugin>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the previous keys stay valid: seconds, or a duration (`24h`, `30m`, `0s`).
    #[schema(value_type = Option<String>, example = "24h")]
    pub overlap: Option<Value>,
}

/// A new api key (shown this once) and when the previous ones stop working.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKey {
    pub api_key: String,
    pub prefix: String,
    pub previous_expires_at: Option<i64>,
}

/// A provider's secret: `auth_token` (twilio), `webhook_secret` (stripe), `callback_token`
/// (exotel: at least 16 characters, or omitted to get one).
#[derive(Debug, Deserialize, ToSchema)]
// Describes a body read field by field (precise messages per field); the document only.
#[allow(dead_code)]
pub struct ProviderSecret {
    pub auth_token: Option<String>,
    pub webhook_secret: Option<String>,
    pub callback_token: Option<String>,
}

/// How a vendor authenticates: `auth` `standard` (the default: `secret`, a `whsec_…` Standard
/// Webhooks key), `header` (`header` and its fixed `value`, at least 16 characters) or `basic`
/// (`username`, `password` of at least 16 characters).
#[derive(Debug, Deserialize, ToSchema)]
// Describes a body read field by field (precise messages per field); the document only.
#[allow(dead_code)]
pub struct VendorSecret {
    pub auth: Option<String>,
    pub secret: Option<String>,
    pub header: Option<String>,
    pub value: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Exotel's callback token, to put in the callback URLs as `?token=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackToken {
    pub callback_token: String,
}

/// A tenant's settings. `default_country`: the ISO 3166-1 alpha-2 code (`IN`, `US`, …) national
/// phone numbers from providers are read in; `null`: none (such numbers are kept as sent).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    #[serde(default)]
    pub default_country: Option<String>,
    /// Emit `contact.created` / `contact.updated` (default false).
    #[serde(default)]
    pub contact_events: bool,
}

// ---- endpoints ----

/// An endpoint's settings; on create `url` is required, on PATCH every field is optional.
/// Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
// Describes a body read field by field (precise messages per field); the document only.
#[allow(dead_code)]
pub struct EndpointSettings {
    pub url: Option<String>,
    /// Patterns such as `call.*`; default every event type.
    pub event_types: Option<Vec<String>>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
    #[schema(value_type = Option<String>, example = "standard")]
    pub signing: Option<String>,
    /// 1 to 120000.
    pub timeout_ms: Option<i64>,
    /// A payload field whose value orders deliveries sharing it.
    pub ordered_by: Option<String>,
    pub rate_limit_per_s: Option<f64>,
    /// The signature's header instead of the style's default (e.g. `X-CF-Signature`); null:
    /// the default.
    pub signature_header: Option<String>,
    /// The message id's header (e.g. `X-CF-Event-Id`).
    pub id_header: Option<String>,
    /// The standard style's timestamp header.
    pub timestamp_header: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: crate::EndpointId,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    #[schema(value_type = Object)]
    pub headers: serde_json::Map<String, Value>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    #[schema(value_type = String, example = "standard")]
    pub signing: crate::store::SigningStyle,
    pub timeout_ms: Option<i64>,
    pub ordered_by: Option<String>,
    pub rate_limit_per_s: Option<f64>,
    pub secret: String,
    pub previous_secret_expires_at: Option<i64>,
    pub signature_header: Option<String>,
    pub id_header: Option<String>,
    pub timestamp_header: Option<String>,
}

impl EndpointView {
    pub fn of(ep: &crate::store::Endpoint, now: i64) -> Self {
        Self {
            id: ep.id.clone(),
            url: ep.url.clone(),
            description: ep.description.clone(),
            event_types: ep.event_types.clone(),
            headers: ep.headers.clone(),
            enabled: ep.enabled,
            disabled_reason: ep.disabled_reason.clone(),
            signing: ep.signing,
            timeout_ms: ep.timeout_ms,
            ordered_by: ep.ordered_by.clone(),
            rate_limit_per_s: ep.rate_limit_per_s,
            secret: ep.secret.clone(),
            previous_secret_expires_at: ep.previous_secret_until.filter(|until| *until > now),
            signature_header: ep.header_names.signature.clone(),
            id_header: ep.header_names.id.clone(),
            timestamp_header: ep.header_names.timestamp.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretRotated {
    pub secret: String,
    pub previous_secret_expires_at: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TestRequest {
    /// Default `call.missed`.
    pub event_type: Option<String>,
}

/// What the endpoint answered to a sample event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub event_id: String,
    pub event_type: String,
    pub succeeded: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub duration_ms: u64,
}

// ---- events, deliveries, receipts ----

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Envelopes `{id, type, occurred_at, tenant_id, is_test, data}`, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
    /// Pass as `after` for the next page.
    pub next_cursor: Option<String>,
}

/// An event with its evidence chain: plugin runs and delivery attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[schema(value_type = Object)]
    pub event: Value,
    pub status: EventStatus,
    pub error: Option<String>,
    pub plugin_runs: Vec<PluginRun>,
    pub deliveries: Vec<Attempt>,
}

/// Deliveries, or with `event_id` that event's attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Deliveries {
    Deliveries(DeliveryList),
    Attempts(AttemptList),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    pub id: i64,
    pub status: crate::store::DeliveryStatus,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverRequest {
    /// Unix seconds, or an RFC 3339 UTC time such as `2026-11-24T10:00:00Z`.
    #[schema(value_type = String, example = "2026-11-24T10:00:00Z")]
    pub since: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    pub requeued: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplayRequest {
    pub endpoint_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayedDeliveries {
    pub delivery_ids: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayedEvents {
    pub event_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptPage {
    pub data: Vec<ReceiptSummary>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<i64>,
}

// ---- sinks ----

/// A sink: `kind` `http-upsert` (`base_url`, `object`, `headers`) or `sql` (`database_url`,
/// `table`); `event_types` with `external_id_field` for the default mapping.
#[derive(Debug, Deserialize, ToSchema)]
// Describes a body read field by field (precise messages per field); the document only.
#[allow(dead_code)]
pub struct SinkRequest {
    pub name: String,
    #[schema(example = "http-upsert")]
    pub kind: String,
    pub base_url: Option<String>,
    pub object: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub database_url: Option<String>,
    pub table: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub external_id_field: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SinkView {
    pub id: crate::SinkId,
    pub name: String,
    pub kind: &'static str,
    /// The settings with header values and database passwords hidden.
    #[schema(value_type = Object)]
    pub config: Value,
    pub event_types: Vec<String>,
    pub external_id_field: Option<String>,
}

impl From<&crate::store::Sink> for SinkView {
    fn from(s: &crate::store::Sink) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            kind: s.config.kind(),
            config: s.config.redacted(),
            event_types: s.event_types.clone(),
            external_id_field: s.external_id_field.clone(),
        }
    }
}

// ---- telephony and billing ----

#[derive(Debug, Deserialize, ToSchema)]
pub struct NumberBody {
    pub forward_to: Option<String>,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub voicemail: bool,
}

/// A call as its state machine holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    pub call_sid: String,
    /// When hookhost first heard of it (unix ms).
    pub started_at: i64,
    /// `answered`, `missed`, `forwarded`, `voicemail`, `failed`; null while open.
    pub outcome: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub direction: Option<String>,
    pub duration_s: Option<i64>,
    pub forward_to: Option<String>,
    pub voicemail: bool,
    pub status: Option<String>,
    pub dial_status: Option<String>,
    pub recording_url: Option<String>,
}

/// A page of calls, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallPage {
    pub data: Vec<CallView>,
    /// Pass as `before` for the next page; null on the last.
    pub next_before: Option<String>,
}

/// A number's timeline: every event concerning it, newest first (delivery envelopes).
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub contact: String,
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
    /// Pass as `before` for the next page; null on the last.
    pub next_before: Option<i64>,
}

/// When each part of the billing record was last changed by Stripe (unix seconds).
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingAsOf {
    pub subscription: Option<i64>,
    pub invoice: Option<i64>,
    pub customer: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingView {
    pub customer_id: Option<String>,
    pub customer_email: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub plan: Option<String>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub last_invoice: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub checkout: Option<Value>,
    pub as_of: BillingAsOf,
}

// ---- plugins ----

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedVersion {
    pub name: String,
    pub version: i64,
    pub digest: String,
    pub active: bool,
    /// `compiling` for a new upload (then `ready` or `invalid`, in `GET …/plugins/{name}`).
    pub state: crate::store::PluginState,
    /// Why the version is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Activated {
    pub name: String,
    pub version: i64,
    pub active: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DryRunRequest {
    /// How many of the tenant's last events to run on.
    pub last: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunView {
    pub name: String,
    pub version: i64,
    /// Per event: its id and what the plugin did (actions or its failure).
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Value>,
    /// Events not reached before the dry run's deadline.
    pub skipped: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainView {
    /// The rules, first match wins; `null` when no chain is set.
    pub chain: Option<Vec<ChainRule>>,
    /// Without a chain: every active plugin runs, as this one rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implicit: Option<Vec<ChainRule>>,
}

/// Limits and capabilities as JSON objects (`fuel`, `timeout_ms`, `memory_bytes`, …).
/// Limit and capability fields to set (`fuel`, `timeout_ms`, `memory_bytes`, `output_bytes`,
/// `max_actions`, `log_bytes`, `kv_write`, `http_allow`, and for a ceiling `outbound_allow`).
#[derive(Debug, Deserialize, ToSchema)]
// Describes a body read field by field (precise messages per field); the document only.
#[allow(dead_code)]
#[schema(value_type = Object)]
pub struct LimitsBody(Value);

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    /// In force: the defaults with the overrides, within the ceiling.
    #[schema(value_type = Object)]
    pub limits: Value,
    #[schema(value_type = Object)]
    pub overrides: Value,
    #[schema(value_type = Object)]
    pub ceiling: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CeilingView {
    #[schema(value_type = Object)]
    pub ceiling: Value,
    #[schema(value_type = Object)]
    pub overrides: Value,
}

/// p50, p90, p99 and max (nearest rank); null when there is no figure.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p90: Option<i64>,
    pub p99: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub name: String,
    pub version: i64,
    pub invocations: usize,
    /// Failed invocations by reason (`trap`, `fuel_exhausted`, …).
    pub failures: std::collections::BTreeMap<String, u64>,
    pub fuel: Percentiles,
    pub wall_us: Percentiles,
    pub peak_memory_bytes: Option<i64>,
}

/// An error: `{"error": {"code", "message"}}` (and `field` or `quota` where they apply).
#[derive(Debug, Serialize, ToSchema)]
// Describes a body read field by field (precise messages per field); the document only.
#[allow(dead_code)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
// Describes a body read field by field (precise messages per field); the document only.
#[allow(dead_code)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}
