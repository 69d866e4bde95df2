//! The rows and requests the store takes and returns: plain data, no SQL.

use super::*;

/// A tenant as the API sees it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
}

/// What a tenant sets for itself (`PUT /v1/tenants/{id}/settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantSettings {
    /// The country national phone numbers are read in; none: they are kept as sent.
    pub default_country: Option<Country>,
    /// Emit `contact.created` when hookhost first sees a number and `contact.updated` when a
    /// contact's opt-out state changes.
    pub contact_events: bool,
}

/// A tenant as a provider request needs it: its id, its secret for the provider (if set) and
/// its settings — one read.
#[derive(Debug, Clone)]
pub struct HookTenant {
    pub tenant: TenantId,
    pub secret: Option<String>,
    pub settings: TenantSettings,
}

/// A raw request kept as evidence.
#[derive(Debug, Clone)]
pub struct ReceiptRecord {
    pub tenant_id: TenantId,
    pub provider: &'static str,
    pub route: String,
    /// Headers as a JSON object (name → value).
    pub headers: Value,
    pub body: Vec<u8>,
    pub received_at: i64,
}

/// Which receipts to list.
#[derive(Debug, Clone, Default)]
pub struct ReceiptFilter {
    pub provider: Option<String>,
    pub verdict: Option<Verdict>,
    /// Only receipts with a smaller id (paging backwards).
    pub before: Option<i64>,
}

/// A kept receipt, as the audit API lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReceiptSummary {
    pub id: i64,
    pub provider: String,
    pub route: String,
    pub received_at: i64,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub event_id: Option<String>,
    pub body_bytes: i64,
}

/// A kept receipt with its body, for a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptReceipt {
    pub provider: String,
    pub verdict: Verdict,
    pub dedupe_key: Option<String>,
    pub body: Vec<u8>,
}

/// A contact's opt-out state and message count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Contact {
    pub e164: String,
    pub opted_out: bool,
    /// When the opt-out state last changed (unix ms, as every time the store keeps).
    pub opt_changed_at: Option<i64>,
    /// The keyword that changed it (`STOP`, `START`, …).
    pub last_keyword: Option<String>,
    pub messages: i64,
    /// Unix ms.
    pub last_message_at: Option<i64>,
}

/// A tracked number's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct NumberSettings {
    pub e164: String,
    pub forward_to: Option<String>,
    pub label: String,
    pub voicemail: bool,
}

/// What applying a call signal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallApplied {
    pub event_ids: Vec<String>,
    pub duplicate: bool,
    /// The call's state after the signal.
    pub state: CallState,
}

/// Which event types a listing keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    /// `call.completed`: that type.
    Exact(String),
    /// `call.*`: every type under `call.` (the prefix keeps its dot).
    Under(String),
}

impl TypePattern {
    /// `*` (none: every type), `call.*` or `call.completed`; `None` inside `Some` for `*`.
    pub fn parse(s: &str) -> Option<Option<TypePattern>> {
        let plain = |p: &str| !p.is_empty() && p.len() <= 100 && !p.contains('*') && !p.contains(char::is_whitespace);
        match s {
            "*" => Some(None),
            _ => match s.strip_suffix(".*") {
                Some(under) if plain(under) => Some(Some(TypePattern::Under(format!("{under}.")))),
                Some(_) => None,
                None if plain(s) => Some(Some(TypePattern::Exact(s.to_string()))),
                None => None,
            },
        }
    }
}

/// Which events a listing returns, and in which order.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only those concerning this number (see [`CanonicalEvent::contact`]).
    pub contact: Option<String>,
    pub event_type: Option<TypePattern>,
    /// `occurred_at` at or after (unix s).
    pub since: Option<i64>,
    /// `occurred_at` before (unix s).
    pub until: Option<i64>,
    /// Oldest first after this seq; or newest first before it with `newest_first`.
    pub cursor: Option<i64>,
    pub newest_first: bool,
    pub limit: i64,
}

/// Which calls a listing returns (newest first).
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    /// Started at or after (unix ms).
    pub since: Option<i64>,
    /// An outcome (`missed`, …), or `open` for calls without one yet.
    pub outcome: Option<String>,
    /// Only calls listed after this one (its start, unix ms, and sid): the next page.
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// A call as stored, with when hookhost first heard of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_sid: String,
    /// Unix ms.
    pub created_at: i64,
    pub state: CallState,
}

/// Calls one sweep closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallsSwept {
    /// Parent ended, dial result missing: closed from what was known.
    pub settled: u64,
    /// Silent too long: closed as failed.
    pub abandoned: u64,
}

/// What accepting a verified receipt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: String,
    /// True when an event with the same provider identity was already stored.
    pub duplicate: bool,
}

/// A delivery endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant_id: TenantId,
    pub url: String,
    pub event_types: Vec<String>,
    pub headers: serde_json::Map<String, Value>,
    pub secret: String,
    pub enabled: bool,
    pub description: String,
    /// `standard` (Standard Webhooks) or `hookhost` (`X-Hookhost-Signature: t=…,v1=…`).
    pub signing: SigningStyle,
    pub timeout_ms: Option<i64>,
    /// Payload field whose value orders this endpoint's deliveries (e.g. `call_id`).
    pub ordered_by: Option<String>,
    pub rate_limit_per_s: Option<f64>,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    /// Header names the receiver's contract gives the signature, message id and timestamp.
    pub header_names: SignatureHeaderNames,
}

/// The header names an endpoint's signature goes out in; `None`: the signing style's default
/// (`webhook-signature`, `webhook-id`, `webhook-timestamp`, or `x-hookhost-signature`,
/// `x-hookhost-event-id`). Lower case, valid, distinct and never a reserved header: checked by
/// the API before they are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SignatureHeaderNames {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The standard style's timestamp header (the hookhost style carries `t=` in the signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl SignatureHeaderNames {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

impl Endpoint {
    /// A new endpoint with the defaults: every event type, enabled, Standard Webhooks signing,
    /// the service's timeout, unordered, unlimited.
    pub fn new(tenant_id: TenantId, url: String, secret: String) -> Self {
        Endpoint {
            id: EndpointId::generate(),
            tenant_id,
            url,
            event_types: vec!["*".into()],
            headers: serde_json::Map::new(),
            secret,
            enabled: true,
            description: String::new(),
            signing: SigningStyle::Standard,
            timeout_ms: None,
            ordered_by: None,
            rate_limit_per_s: None,
            previous_secret: None,
            previous_secret_until: None,
            disabled_reason: None,
            failing_since: None,
            header_names: SignatureHeaderNames::default(),
        }
    }

    /// The secrets that sign at `now_ms`: the current one, then the previous during its overlap.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now_ms < until
        {
            out.push(prev);
        }
        out
    }
}

/// Kinds of leased work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Plugin,
    Delivery,
    Sink,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Plugin => "plugin",
            JobKind::Delivery => "delivery",
            JobKind::Sink => "sink",
        }
    }
}

/// A leased job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub tenant_id: TenantId,
    pub event_id: String,
    /// The lease token this worker's claim took (fresh and random at every claim): every
    /// write of the job's outcome is `WHERE id = … AND lease_token = <this>`, so a worker whose
    /// lease ran out and was claimed again writes nothing.
    pub lease: Option<i64>,
    /// Attempts made before this one.
    pub attempts: i64,
    pub work: JobWork,
}

/// What a job does, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobWork {
    /// Run the tenant's plugins on the event and route the result.
    Plugin,
    /// Send `body` (read with the claim, a shared body too) to an endpoint: in hookhost's
    /// envelope, or as the plugin's `request` shaped it.
    Delivery { endpoint_id: EndpointId, message_id: String, body: String, request: Option<Shape> },
    /// Write `record` at `version` under `external_id` to a sink; `message_id` is the
    /// idempotency key.
    Sink { sink_id: SinkId, external_id: String, version: i64, message_id: String, record: String },
}

impl JobWork {
    pub fn kind(&self) -> JobKind {
        match self {
            JobWork::Plugin => JobKind::Plugin,
            JobWork::Delivery { .. } => JobKind::Delivery,
            JobWork::Sink { .. } => JobKind::Sink,
        }
    }

    /// The endpoint or sink an attempt went to (empty for a plugin job).
    pub fn target(&self) -> &str {
        match self {
            JobWork::Plugin => "",
            JobWork::Delivery { endpoint_id, .. } => endpoint_id.as_str(),
            JobWork::Sink { sink_id, .. } => sink_id.as_str(),
        }
    }
}

/// A stored canonical event with its processing state.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: CanonicalEvent,
    /// `event.payload` as stored (JSON text).
    pub payload_json: String,
    pub status: EventStatus,
    pub error: Option<String>,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub delivery_id: i64,
    pub event_id: String,
    pub endpoint_id: String,
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub duration_ms: i64,
    pub outcome: String,
    pub attempted_at: i64,
}

/// One plugin invocation, as recorded.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct PluginRun {
    pub plugin_name: String,
    pub plugin_version: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub fuel_used: Option<i64>,
    pub wall_us: i64,
    pub logs: String,
    pub ran_at: i64,
    pub peak_memory: Option<i64>,
}

/// Everything a finished plugin job writes.
#[derive(Debug, Default)]
pub struct PluginJobDone {
    pub runs: Vec<PluginRun>,
    /// The event's new status: processed, dropped or failed (ignored with `retry_at`).
    pub status: EventStatus,
    /// Run the job again at this time (unix ms) instead of finishing it: the runs are
    /// recorded, the event stays pending with `error`, no output or key-value write is kept.
    pub retry_at: Option<i64>,
    pub error: Option<String>,
    pub outputs: Outputs,
    pub kv_writes: Vec<(String, Option<String>)>,
    pub kv_max_keys: u64,
}

/// A delivery to enqueue once the plugin has run.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub endpoint_id: EndpointId,
    pub message_id: String,
    /// Shared by the deliveries of one body (one per endpoint): stored once.
    pub body: Arc<str>,
    /// How the plugin shaped the request, when it did (shared like the body).
    pub request: Option<Arc<Shape>>,
    /// Deliveries to the same endpoint sharing a key go out one at a time, in order.
    pub ordering_key: Option<String>,
}

/// A sink write to enqueue once the plugin has run.
#[derive(Debug, Clone)]
pub struct NewSinkWrite {
    pub sink_id: SinkId,
    pub external_id: String,
    /// Stable across retries and duplicates of the same write: the sink's `Idempotency-Key`.
    pub idempotency_key: String,
    pub record: String,
    /// The write applies only if newer than the version the sink already holds.
    pub version: i64,
}

/// What a plugin job produces.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub deliveries: Vec<NewDelivery>,
    pub sink_writes: Vec<NewSinkWrite>,
}

/// A CRM sink.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sink {
    pub id: SinkId,
    #[serde(skip)]
    pub tenant_id: TenantId,
    pub name: String,
    /// Where it writes, with its kind's settings.
    #[serde(skip)]
    pub config: crate::sink::SinkConfig,
    /// Events the default mapping writes (payload keyed by `external_id_field`).
    pub event_types: Vec<String>,
    pub external_id_field: Option<String>,
}

/// What one delivery attempt returned, as recorded.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The first KiB of the response body.
    pub excerpt: Option<String>,
    pub duration_ms: i64,
}

/// A delivery (one envelope to one endpoint) and where it stands.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: String,
    pub endpoint_id: EndpointId,
    pub message_id: String,
    pub status: DeliveryStatus,
    /// For failed deliveries: true when retries ran out (dead letter), false when permanent.
    pub dead_letter: bool,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub replay: bool,
    pub manual_retries: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How a delivery attempt ended, for the job's next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Succeeded,
    /// Retry at this time (unix ms).
    RetryAt(i64),
    /// Permanent failure (non-retryable status).
    Failed,
    /// Retries exhausted: dead letter.
    Dead,
    /// Not sent: the sink already holds a newer version of the record.
    Skipped,
}

impl DeliveryState {
    pub fn outcome(self) -> &'static str {
        match self {
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::RetryAt(_) => "retry",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
            DeliveryState::Skipped => "skipped",
        }
    }
}

/// A call signal's step over the call's state (see `normalize::calls::step`). A step may run
/// more than once (a batch that failed is applied again one request at a time); only the run
/// that commits counts.
pub type CallStep = Box<dyn Fn(&mut CallState) -> Vec<Emit> + Send + Sync>;

/// The step that applies `signal` (identified by `key`) from `party` to call `call_sid`.
pub fn call_step(call_sid: &str, key: &str, party: Party, signal: Signal) -> CallStep {
    let (sid, key) = (call_sid.to_string(), key.to_string());
    Box::new(move |state| crate::normalize::calls::step(state, &sid, &key, party.clone(), signal.clone()))
}

/// What creating a capped, named row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Created,
    /// Its name is taken.
    Duplicate,
    /// The tenant is at its cap for these rows.
    Full,
}
