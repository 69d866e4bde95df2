//! Ingest: from a provider's raw request to a durable, deduplicated canonical event.
//!
//! Owns the order of the steps (DESIGN.md): resolve tenant → verify → normalize → persist the
//! evidence, the event and its plugin job in one transaction → answer. Each provider module
//! holds its signature rules; a `Receipt<Verified>` can only be made by one of them. Must not
//! run plugins or deliver anything: that happens after the provider has its answer.

mod replay;
pub mod standard;
pub mod stripe;
pub mod throttle;
pub mod twilio;
pub mod twiml;
mod vendor;
pub mod vendor_auth;

pub use replay::ReplayError;

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::normalize::calls::{Party, Signal};
use crate::normalize::{CanonicalEvent, NormalizeError, Normalized};
use crate::normalize::{exotel, sms};
use crate::store::{Accepted, HookTenant, ReceiptRecord, Store, StoreError, TenantSettings, Verdict};
use crate::{Config, TenantId};

/// A request whose signature has not been checked.
#[derive(Debug)]
pub struct Unverified;
/// A request whose signature was checked with the tenant's secret.
#[derive(Debug)]
pub struct Verified;

/// A provider request as received, in a trust state `S`.
#[derive(Debug)]
pub struct Receipt<S> {
    pub tenant: TenantId,
    /// The address the request came from, when known.
    pub source: Option<IpAddr>,
    pub provider: &'static str,
    /// Path and query as requested.
    pub route: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Unix ms.
    pub received_at: i64,
    /// A header this tenant's provider sends its credential in, redacted like `authorization`.
    pub credential_header: Option<String>,
    state: PhantomData<S>,
}

impl Receipt<Unverified> {
    pub fn new(
        tenant: TenantId,
        provider: &'static str,
        route: String,
        headers: HeaderMap,
        body: Vec<u8>,
        received_at: i64,
    ) -> Self {
        Self {
            tenant,
            source: None,
            provider,
            route,
            headers,
            body,
            received_at,
            credential_header: None,
            state: PhantomData,
        }
    }

    /// Only the providers' verify functions in this module tree call this.
    fn into_verified(self) -> Receipt<Verified> {
        Receipt {
            tenant: self.tenant,
            source: self.source,
            provider: self.provider,
            route: self.route,
            headers: self.headers,
            body: self.body,
            received_at: self.received_at,
            credential_header: self.credential_header,
            state: PhantomData,
        }
    }
}

impl<S> Receipt<S> {
    /// The evidence row for this receipt: credentials in headers and the route's query are
    /// redacted (the signature headers are kept: they prove nothing without the secret).
    pub fn record(&self) -> ReceiptRecord {
        let mut headers = Map::new();
        for (name, value) in &self.headers {
            let credential = self.credential_header.as_deref().is_some_and(|h| name.as_str().eq_ignore_ascii_case(h));
            let value = if credential || REDACTED_HEADERS.contains(&name.as_str()) {
                REDACTED.to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            headers.insert(name.as_str().to_string(), Value::String(value));
        }
        ReceiptRecord {
            tenant_id: self.tenant.clone(),
            provider: self.provider,
            route: self.redacted_route(),
            headers: Value::Object(headers),
            body: self.body.clone(),
            received_at: self.received_at,
        }
    }

    /// The route with the values of credential query parameters (`token`, …) redacted: what
    /// is stored and logged.
    pub fn redacted_route(&self) -> String {
        redact_query(&self.route)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Request headers whose values are credentials: never stored.
const REDACTED_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "x-api-key"];
/// Query parameters whose values are credentials.
const REDACTED_PARAMS: [&str; 6] = ["token", "access_token", "api_key", "apikey", "key", "secret"];
const REDACTED: &str = "[redacted]";

/// `path?query` with the values of credential parameters (`token`, `key`, …) replaced.
pub fn redact_query(route: &str) -> String {
    let Some((path, query)) = route.split_once('?') else { return route.to_string() };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if REDACTED_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => format!("{k}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Why a signature check failed. The message is safe to show the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp outside the tolerance of {tolerance_s} s (age {age_s} s)")]
    Stale { age_s: i64, tolerance_s: i64 },
    #[error("missing or wrong callback token")]
    BadToken,
    #[error("missing or wrong credentials")]
    BadCredentials,
}

/// Why a provider request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    #[error("tenant has no {0} configuration")]
    NotConfigured(&'static str),
    #[error(transparent)]
    Unauthorized(#[from] VerifyError),
    #[error(transparent)]
    Malformed(#[from] NormalizeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many rejected requests from this address or to this tenant: answered 429, not
    /// stored.
    #[error("too many rejected requests; retry after {retry_after_s} s")]
    Throttled { retry_after_s: u64 },
}

/// A provider request as the API hands it over.
#[derive(Debug)]
pub struct HookRequest {
    /// The address it came from, when known.
    pub source: Option<IpAddr>,
    pub tenant: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The ingest service.
#[derive(Debug, Clone)]
pub struct Ingestor {
    store: Store,
    config: Arc<Config>,
    throttle: Arc<throttle::Throttle>,
}

impl Ingestor {
    pub fn new(store: Store, config: Arc<Config>) -> Self {
        let throttle = Arc::new(throttle::Throttle::new(config.rejected_per_address, config.rejected_per_tenant));
        Self { store, config, throttle }
    }

    /// `POST /hooks/{tenant}/twilio/voice/{inbound|status|dial-complete}`: verify, apply the
    /// signal to the call's state machine (events, state and evidence in one transaction) and
    /// return the TwiML to answer with.
    pub async fn twilio_voice(&self, req: HookRequest, leg: VoiceLeg) -> Result<String, IngestError> {
        let (verified, params, settings) = self.open_twilio(req).await?;
        let p = |name| crate::normalize::twilio::param(&params, name).map(str::to_string);
        let Some(call_sid) = p("CallSid") else {
            return Err(self.reject(&verified, NormalizeError::Missing("CallSid").into()).await);
        };
        let party = Party {
            call_id: None,
            account_sid: p("AccountSid"),
            from: p("From"),
            to: p("To"),
            from_raw: None,
            to_raw: None,
            direction: p("Direction"),
        }
        .in_e164(settings.default_country);
        let received_s = verified.received_at / 1000;
        let (signal, key, occurred_at) = match leg {
            VoiceLeg::Inbound => {
                let number = match &party.to {
                    Some(to) => self.store.number(&verified.tenant, to).await?,
                    None => None,
                };
                // Unknown numbers get the tenant's fallback (`numbers/default`), if set.
                let number = match number {
                    Some(n) => Some(n),
                    None => self.store.number(&verified.tenant, DEFAULT_NUMBER).await?,
                };
                let signal = Signal::Inbound {
                    forward_to: number.as_ref().and_then(|n| n.forward_to.clone()),
                    voicemail: number.as_ref().is_some_and(|n| n.voicemail),
                };
                (signal, format!("twilio:inbound:{call_sid}"), received_s)
            }
            VoiceLeg::Status => {
                let Some(status) = p("CallStatus") else {
                    return Err(self.reject(&verified, NormalizeError::Missing("CallStatus").into()).await);
                };
                let sequence = p("SequenceNumber").and_then(|v| v.parse().ok());
                let key = format!("twilio:call:{call_sid}:{status}:{}", p("SequenceNumber").unwrap_or_default());
                let at = p("Timestamp").and_then(|t| crate::normalize::twilio::parse_rfc2822(&t)).unwrap_or(received_s);
                let signal = Signal::Status {
                    status,
                    sequence,
                    duration_s: p("CallDuration").and_then(|v| v.parse().ok()),
                    recording_url: p("RecordingUrl"),
                };
                (signal, key, at)
            }
            VoiceLeg::DialComplete => {
                let key = format!(
                    "twilio:dial:{call_sid}:{}:{}",
                    p("DialCallStatus").unwrap_or_default(),
                    p("RecordingSid").or_else(|| p("RecordingUrl")).unwrap_or_default()
                );
                let signal = Signal::DialComplete {
                    status: p("DialCallStatus"),
                    bridged: p("DialBridged").map(|b| b.eq_ignore_ascii_case("true")),
                    duration_s: p("DialCallDuration").and_then(|v| v.parse().ok()),
                    dial_call_sid: p("DialCallSid"),
                    recording_url: p("RecordingUrl"),
                };
                (signal, key, received_s)
            }
        };
        let applied = self.apply_signal(&verified, &call_sid, &key, occurred_at, party, signal).await?;
        let action = format!("{}/hooks/{}/twilio/voice/dial-complete", self.config.public_url, verified.tenant);
        Ok(twiml::answer(leg, &applied.state, &action))
    }

    /// `POST /hooks/{tenant}/twilio/sms/inbound`: `sms.received` on the sender's contact thread,
    /// with `sms.opt_out`/`sms.opt_in`/`sms.help` beside it when the body is a keyword.
    pub async fn twilio_sms_inbound(&self, req: HookRequest) -> Result<(), IngestError> {
        let (verified, params, settings) = self.open_twilio(req).await?;
        let p = |name| crate::normalize::twilio::param(&params, name);
        let Some(message_sid) = p("MessageSid").or_else(|| p("SmsMessageSid")).or_else(|| p("SmsSid")) else {
            return Err(self.reject(&verified, NormalizeError::Missing("MessageSid").into()).await);
        };
        let Some(from) = p("From") else {
            return Err(self.reject(&verified, NormalizeError::Missing("From").into()).await);
        };
        let mut payload = sms::received_payload(&params, settings.default_country);
        let from = payload["from"].as_str().unwrap_or(from).to_string();
        payload.insert("message_sid".into(), message_sid.into());
        payload.insert("contact".into(), from.as_str().into());
        let keyword = sms::classify(p("Body").unwrap_or_default(), p("OptOutType"));
        let mut events = vec![("sms.received".to_string(), Value::Object(payload.clone()))];
        if let Some(k) = keyword {
            payload.insert("keyword".into(), k.word().into());
            events.push((k.event_type().to_string(), Value::Object(payload)));
        }
        let opt = match keyword {
            Some(sms::Keyword::OptOut(w)) => Some((true, w)),
            Some(sms::Keyword::OptIn(w)) => Some((false, w)),
            _ => None,
        };
        let key = format!("twilio:sms:{message_sid}");
        let applied = self.store.apply_sms(&verified.record(), &key, &from, &events, opt).await?;
        ingress(verified.provider, Verdict::of(applied.duplicate).as_str());
        if applied.duplicate {
            tracing::info!(tenant = %verified.tenant, %message_sid, "duplicate Twilio message acknowledged");
        } else {
            tracing::info!(tenant = %verified.tenant, %message_sid, keyword = ?keyword.map(|k| k.word()), "message accepted");
        }
        Ok(())
    }

    /// `POST /hooks/{tenant}/twilio/sms/status`: an outbound message's status callback →
    /// `sms.sent`, `sms.delivered`, `sms.undelivered`, `sms.failed` or `sms.read`, once per
    /// message and status. The intermediate states (`queued`, `sending`, …) are kept as
    /// `ignored` receipts and make no event.
    pub async fn twilio_sms_status(&self, req: HookRequest) -> Result<(), IngestError> {
        let (verified, params, settings) = self.open_twilio(req).await?;
        let p = |name| crate::normalize::twilio::param(&params, name);
        let Some(message_sid) = p("MessageSid").or_else(|| p("SmsSid")) else {
            return Err(self.reject(&verified, NormalizeError::Missing("MessageSid").into()).await);
        };
        let Some(status) = p("MessageStatus").or_else(|| p("SmsStatus")) else {
            return Err(self.reject(&verified, NormalizeError::Missing("MessageStatus").into()).await);
        };
        let Some(event_type) = sms::status_event(status) else {
            let reason = format!("message status {status:?} makes no event");
            self.store.keep_receipt(&verified.record(), Verdict::Ignored, &reason).await?;
            ingress(verified.provider, Verdict::Ignored.as_str());
            tracing::debug!(tenant = %verified.tenant, %message_sid, %status, "message status acknowledged without an event");
            return Ok(());
        };
        let normalized = Normalized {
            event_type: event_type.to_string(),
            occurred_at: verified.received_at / 1000,
            payload: Value::Object(sms::status_payload(&params, message_sid, status, settings.default_country)),
            dedupe_key: format!("twilio:sms-status:{message_sid}:{status}"),
        };
        self.accept(verified, Ok(normalized)).await.map(drop)
    }

    /// `GET|POST /hooks/{tenant}/exotel/passthru` and `POST /hooks/{tenant}/exotel/status`.
    /// Exotel signs nothing: the URL carries the tenant's callback token as `?token=…`.
    pub async fn exotel(&self, req: HookRequest, kind: exotel::Kind, json_body: bool) -> Result<(), IngestError> {
        let (receipt, token, settings) = self.open(req, "exotel", "exotel").await?;
        let query = receipt.route.split_once('?').map_or("", |(_, q)| q).to_string();
        let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let given = params.iter().find(|(k, _)| k == "token").map(|(_, v)| v.clone()).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes())) || token.is_empty() {
            return Err(self.reject(&receipt, VerifyError::BadToken.into()).await);
        }
        let verified = receipt.into_verified();
        params.retain(|(k, _)| k != "token");
        if !verified.body.is_empty() {
            let body =
                if json_body { exotel::json_params(&verified.body) } else { Ok(twilio::form_params(&verified.body)) };
            match body {
                Ok(b) => params.extend(b),
                Err(e) => return Err(self.reject(&verified, e.into()).await),
            }
        }
        let (call_sid, party, signal, key) = match exotel::signal(kind, &params) {
            Ok(x) => x,
            Err(e) => return Err(self.reject(&verified, e.into()).await),
        };
        let party = party.in_e164(settings.default_country);
        self.apply_signal(&verified, &call_sid, &key, verified.received_at / 1000, party, signal).await?;
        Ok(())
    }

    /// `POST /hooks/{tenant}/stripe`.
    pub async fn stripe(&self, req: HookRequest) -> Result<Accepted, IngestError> {
        let (receipt, secret, _) = self.open(req, "stripe", "stripe").await?;
        let verified = match stripe::verify(
            receipt,
            &secret,
            self.store.now_ms() / 1000,
            self.config.stripe_tolerance.as_secs() as i64,
        ) {
            Ok(v) => v,
            Err((receipt, e)) => return Err(self.reject(&receipt, e.into()).await),
        };
        let normalized = crate::normalize::stripe::event(&verified.body);
        self.accept(verified, normalized).await
    }

    /// Apply one verified signal (identified by `key`) to call `call_sid`'s state machine:
    /// events, state and evidence in one transaction (see [`Store::apply_call`]).
    async fn apply_signal(
        &self,
        verified: &Receipt<Verified>,
        call_sid: &str,
        key: &str,
        occurred_at: i64,
        party: Party,
        signal: Signal,
    ) -> Result<crate::store::CallApplied, IngestError> {
        let step = crate::store::call_step(call_sid, key, party, signal);
        let applied = self.store.apply_call(&verified.record(), call_sid, key, occurred_at, step).await?;
        ingress(verified.provider, Verdict::of(applied.duplicate).as_str());
        if applied.duplicate {
            tracing::info!(tenant = %verified.tenant, provider = verified.provider, %call_sid, %key, "duplicate call signal acknowledged");
        } else if !applied.event_ids.is_empty() {
            tracing::info!(tenant = %verified.tenant, provider = verified.provider, %call_sid, events = applied.event_ids.len(), outcome = ?applied.state.outcome, "call signal accepted");
        }
        Ok(applied)
    }

    /// Resolve the tenant and verify `X-Twilio-Signature` over the public URL and the form
    /// parameters; returns the verified receipt, its parameters and the tenant's settings.
    async fn open_twilio(
        &self,
        req: HookRequest,
    ) -> Result<(Receipt<Verified>, Vec<(String, String)>, TenantSettings), IngestError> {
        let (receipt, token, settings) = self.open(req, "twilio", "twilio").await?;
        let url = format!("{}{}", self.config.public_url, receipt.route);
        let params = twilio::form_params(&receipt.body);
        match twilio::verify(receipt, &url, &params, &token) {
            Ok(v) => Ok((v, params, settings)),
            Err((receipt, e)) => Err(self.reject(&receipt, e.into()).await),
        }
    }

    /// Resolve the tenant, its secret for `secret_of` and its settings (one read); a tenant
    /// without that secret has the request rejected (and kept) as not configured for `provider`.
    async fn open(
        &self,
        req: HookRequest,
        provider: &'static str,
        secret_of: &str,
    ) -> Result<(Receipt<Unverified>, String, TenantSettings), IngestError> {
        let Some(HookTenant { tenant, secret, settings }) = self.store.hook_tenant(&req.tenant, secret_of).await?
        else {
            // Not stored (there is no tenant to keep it for), but throttled like any rejection.
            self.throttled(req.source, None)?;
            return Err(IngestError::UnknownTenant(req.tenant.clone()));
        };
        let mut receipt =
            Receipt::new(tenant, provider, req.path_and_query, req.headers, req.body, self.store.now_ms());
        receipt.source = req.source;
        match secret {
            Some(secret) => Ok((receipt, secret, settings)),
            None => {
                let e = IngestError::NotConfigured(provider);
                Err(self.reject(&receipt, e).await)
            }
        }
    }

    /// A rejected request past its address's or tenant's budget: counted, not stored.
    fn throttled(&self, source: Option<IpAddr>, tenant: Option<&TenantId>) -> Result<(), IngestError> {
        self.throttle.take(source, tenant.map(TenantId::as_str), self.store.now_ms()).map_err(|wait_ms| {
            crate::metrics::count(&crate::metrics::INGRESS, &[("provider", "any"), ("verdict", "throttled")]);
            IngestError::Throttled { retry_after_s: (wait_ms as u64).div_ceil(1000).max(1) }
        })
    }

    /// Keep the rejected request as evidence (with the group commit's next batch), then hand
    /// back the error to answer with — or 429 past the rejection budget, not stored.
    async fn reject<S>(&self, receipt: &Receipt<S>, e: IngestError) -> IngestError {
        if let Err(throttled) = self.throttled(receipt.source, Some(&receipt.tenant)) {
            tracing::debug!(tenant = %receipt.tenant, source = ?receipt.source, "rejected request throttled");
            return throttled;
        }
        tracing::warn!(tenant = %receipt.tenant, provider = receipt.provider, route = %receipt.redacted_route(), source = ?receipt.source, error = %e, "provider request rejected");
        ingress(receipt.provider, "rejected");
        match self.store.keep_receipt(&receipt.record(), Verdict::Rejected, &e.to_string()).await {
            Ok(()) => e,
            Err(store) => store.into(),
        }
    }

    async fn accept(
        &self,
        receipt: Receipt<Verified>,
        normalized: Result<Normalized, NormalizeError>,
    ) -> Result<Accepted, IngestError> {
        self.accept_as(receipt, normalized, false).await
    }

    async fn accept_as(
        &self,
        receipt: Receipt<Verified>,
        normalized: Result<Normalized, NormalizeError>,
        is_test: bool,
    ) -> Result<Accepted, IngestError> {
        let n = match normalized {
            Ok(n) => n,
            Err(e) => return Err(self.reject(&receipt, e.into()).await),
        };
        let event = CanonicalEvent {
            id: crate::new_event_id(),
            tenant_id: receipt.tenant.clone(),
            event_type: n.event_type,
            occurred_at: n.occurred_at,
            source: receipt.provider,
            is_test,
            payload: n.payload,
        };
        let accepted = self.store.accept(&receipt.record(), &event, &n.dedupe_key).await?;
        ingress(receipt.provider, Verdict::of(accepted.duplicate).as_str());
        if accepted.duplicate {
            tracing::info!(tenant = %receipt.tenant, event_id = %accepted.event_id, key = %n.dedupe_key, "duplicate provider request acknowledged");
        } else {
            tracing::info!(tenant = %receipt.tenant, event_id = %accepted.event_id, event_type = %event.event_type, "event accepted");
        }
        Ok(accepted)
    }
}

/// The number-settings key of a tenant's fallback for calls to numbers it has not configured.
pub const DEFAULT_NUMBER: &str = "default";

/// Which Twilio voice callback a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceLeg {
    /// The call's first request (Voice URL): answered with TwiML that forwards or records.
    Inbound,
    /// A status callback of the parent call.
    Status,
    /// The `<Dial action>` callback, and the voicemail recording's.
    DialComplete,
}

/// Count a provider request's verdict (`hookhost_ingress_total`).
fn ingress(provider: &str, verdict: &str) {
    crate::metrics::count(&crate::metrics::INGRESS, &[("provider", provider), ("verdict", verdict)]);
}
