//! Delivery: endpoints' subscriptions, Standard Webhooks signing ([`sign`]), the retry policy
//! ([`policy`]), the outbound address guard ([`guard`]), the HTTP sender and the delivery
//! worker ([`worker`]). Must not run plugins or parse provider requests.

pub mod guard;
pub mod outbound;
pub mod policy;
pub mod request;
pub mod sign;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use crate::Config;
use crate::store::Endpoint;

/// Faults of the delivery machinery itself.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why an endpoint URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("invalid URL: {0}")]
    Invalid(String),
    #[error("URL scheme must be http or https")]
    Scheme,
    #[error("URL points to an internal address {0}; allow it with HOOKHOST_OUTBOUND_ALLOW")]
    Internal(std::net::IpAddr),
    #[error(
        "plain http is only allowed to addresses in HOOKHOST_OUTBOUND_ALLOW (or with HOOKHOST_ALLOW_HTTP=true); use https"
    )]
    HttpsRequired,
}

/// Where outbound deliveries may go.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Internal ranges let through.
    pub allow: Vec<IpNet>,
    /// Plain http to any host.
    pub allow_http: bool,
}

impl OutboundPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self { allow: config.outbound_allow.clone(), allow_http: config.allow_http }
    }

    /// This policy with a tenant's own internal ranges let through as well.
    pub fn widened(&self, extra: &[IpNet]) -> OutboundPolicy {
        let mut allow = self.allow.clone();
        allow.extend(extra.iter().filter(|n| !self.allow.contains(n)).copied());
        OutboundPolicy { allow, allow_http: self.allow_http }
    }
}

/// Check an endpoint URL: http(s); https unless the host is an allow-listed address (or http
/// is allowed); not an internal IP literal unless allow-listed. Names are checked again at
/// every delivery, when they resolve.
pub fn validate_url(url: &str, policy: &OutboundPolicy) -> Result<Url, UrlError> {
    let u = Url::parse(url).map_err(|e| UrlError::Invalid(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    let literal: Option<std::net::IpAddr> = match u.host() {
        None => return Err(UrlError::Invalid("no host".into())),
        Some(url::Host::Ipv4(ip)) => Some(ip.into()),
        Some(url::Host::Ipv6(ip)) => Some(ip.into()),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => Some(std::net::Ipv4Addr::LOCALHOST.into()),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = literal
        && !guard::permitted(ip, &policy.allow)
    {
        return Err(UrlError::Internal(ip));
    }
    let allow_listed = literal.is_some_and(|ip| policy.allow.iter().any(|net| net.contains(&ip)));
    if u.scheme() == "http" && !policy.allow_http && !allow_listed {
        return Err(UrlError::HttpsRequired);
    }
    Ok(u)
}

/// Whether an endpoint subscribed to `patterns` gets `event_type`: `*` matches all, `call.*`
/// matches `call.` and everything under it, anything else matches exactly.
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix('*').is_some_and(|prefix| prefix.ends_with('.') && event_type.starts_with(prefix))
    })
}

/// The result of one HTTP attempt.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    /// The first [`EXCERPT_BYTES`] of the response body.
    pub excerpt: Option<String>,
    pub duration: Duration,
}

/// How much of a response body is kept.
pub const EXCERPT_BYTES: usize = 1024;

/// Sends signed deliveries, each under its tenant's outbound policy.
#[derive(Debug, Clone)]
pub struct Sender {
    clients: Arc<guard::GuardedClients>,
    policies: Arc<outbound::TenantPolicies>,
}

/// Headers an endpoint's extra headers may not override.
const RESERVED: [&str; 7] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hookhost-event-id",
    "x-hookhost-signature",
    "content-type",
    "host",
];

impl Sender {
    pub fn new(config: &Config) -> Result<Self, DeliverError> {
        let timeout = config.delivery_timeout;
        let clients = guard::GuardedClients::new(move |resolver| {
            reqwest::Client::builder()
                // A proxy would resolve names itself, past the guard.
                .no_proxy()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(resolver))
                .pool_max_idle_per_host(16)
                .build()
        });
        clients.get(&config.outbound_allow)?;
        let policies = Arc::new(outbound::TenantPolicies::new(config));
        Ok(Self { clients: Arc::new(clients), policies })
    }

    /// Tenants' outbound policies (what [`send`](Self::send) and [`put_json`](Self::put_json)
    /// are given).
    pub fn policies(&self) -> &outbound::TenantPolicies {
        &self.policies
    }

    /// The client for `policy`, and the URL checked against it.
    fn prepare(&self, url: &str, policy: &OutboundPolicy) -> Result<(reqwest::Client, Url), String> {
        let url = validate_url(url, policy).map_err(|e| e.to_string())?;
        let client = self.clients.get(&policy.allow).map_err(|e| format!("http client: {e}"))?;
        Ok((client, url))
    }

    /// POST `body` to the endpoint (or send it as the plugin's `shape` says), signed in the
    /// endpoint's style with its current secrets over the body's exact bytes, under its tenant's
    /// outbound `policy`.
    pub async fn send(
        &self,
        ep: &Endpoint,
        policy: &OutboundPolicy,
        message_id: &str,
        body: &str,
        shape: Option<&request::Shape>,
    ) -> Response {
        let started = Instant::now();
        let fail = |error: String| Response {
            status: None,
            error: Some(error),
            retry_after: None,
            excerpt: None,
            duration: started.elapsed(),
        };
        let (client, mut url) = match self.prepare(&ep.url, policy) {
            Ok(ready) => ready,
            Err(e) => return fail(e),
        };
        if let Some(shape) = shape {
            // Checked when the plugin returned it; again here for a replay to another endpoint.
            if let Some(name) = shape.reserved_by(&ep.header_names) {
                return fail(format!("the shaped request sets {name:?}, this endpoint's signature header"));
            }
            url = match shape.url(&url) {
                Ok(u) => u,
                Err(e) => return fail(e.to_string()),
            };
        }
        let now = crate::now_ms();
        let signed = sign::signature_headers(
            ep.signing,
            &ep.header_names,
            &ep.signing_secrets(now),
            message_id,
            now / 1000,
            body.as_bytes(),
        );
        let signed = match signed {
            Ok(h) => h,
            Err(e) => return fail(e.to_string()),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &ep.headers {
            let (Ok(n), Some(Ok(v))) = (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
            else {
                continue;
            };
            if !RESERVED.contains(&n.as_str()) {
                headers.insert(n, v);
            }
        }
        let method = match shape {
            None => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(request::DEFAULT_CONTENT_TYPE));
                reqwest::Method::POST
            }
            Some(shape) => {
                // Names and values were checked when the plugin returned them; the endpoint's own
                // headers stay as the tenant configured them.
                for (name, value) in &shape.headers {
                    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
                        headers.entry(n).or_insert(v);
                    }
                }
                let content_type = HeaderValue::from_str(&shape.content_type)
                    .unwrap_or(HeaderValue::from_static(request::DEFAULT_CONTENT_TYPE));
                headers.insert(CONTENT_TYPE, content_type);
                shape.method.http()
            }
        };
        headers.entry(USER_AGENT).or_insert(HeaderValue::from_static(concat!("hookhost/", env!("CARGO_PKG_VERSION"))));
        for (name, value) in signed {
            // Names are checked when an endpoint is saved; one that is not valid is not sent.
            let Ok(name) = HeaderName::try_from(name) else { continue };
            let value = HeaderValue::from_str(&value).expect("ids, digits, hex and base64 are valid header values");
            headers.insert(name, value);
        }
        let mut request = client.request(method, url).headers(headers).body(body.to_string());
        if let Some(ms) = ep.timeout_ms.filter(|ms| *ms > 0) {
            request = request.timeout(Duration::from_millis(ms as u64));
        }
        execute(request, started).await
    }

    /// PUT a JSON record (sinks): the URL is checked like an endpoint's; `headers` are the
    /// sink's own plus its idempotency key.
    pub async fn put_json(
        &self,
        url: &str,
        policy: &OutboundPolicy,
        headers: &[(String, String)],
        body: &str,
    ) -> Response {
        let started = Instant::now();
        let (client, url) = match self.prepare(url, policy) {
            Ok(ready) => ready,
            Err(e) => {
                return Response {
                    status: None,
                    error: Some(e),
                    retry_after: None,
                    excerpt: None,
                    duration: started.elapsed(),
                };
            }
        };
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
                map.insert(n, v);
            }
        }
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        map.insert(USER_AGENT, HeaderValue::from_static(concat!("hookhost/", env!("CARGO_PKG_VERSION"))));
        execute(client.put(url).headers(map).body(body.to_string()), started).await
    }
}

/// Send a request and read what an attempt records: status, `Retry-After`, a body excerpt.
async fn execute(request: reqwest::RequestBuilder, started: Instant) -> Response {
    match request.send().await {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry_after =
                resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(policy::parse_retry_after);
            let mut excerpt = Vec::new();
            while excerpt.len() < EXCERPT_BYTES {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        excerpt.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - excerpt.len())])
                    }
                    _ => break,
                }
            }
            let error = (!resp.status().is_success()).then(|| format!("endpoint answered {status}"));
            let excerpt = (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned());
            Response { status: Some(status), error, retry_after, excerpt, duration: started.elapsed() }
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connection error"
            } else {
                "request error"
            };
            let mut msg = format!("{kind}: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            Response { status: None, error: Some(msg), retry_after: None, excerpt: None, duration: started.elapsed() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&p(&["call.*"]), "call.missed"));
        assert!(!subscribed(&p(&["call.*"]), "sms.received"));
        assert!(!subscribed(&p(&["call.*"]), "callx.missed"));
        assert!(subscribed(&p(&["*"]), "billing.invoice.paid"));
        assert!(subscribed(&p(&["sms.received", "billing.*"]), "billing.invoice.paid"));
        assert!(!subscribed(&p(&[]), "call.missed"));
    }

    #[test]
    fn urls() {
        let local = OutboundPolicy { allow: crate::config::parse_cidrs("127.0.0.0/8").unwrap(), allow_http: false };
        let strict = OutboundPolicy::default();
        assert!(validate_url("http://127.0.0.1:9/x", &local).is_ok());
        assert!(validate_url("http://localhost:9/x", &local).is_ok());
        assert!(matches!(validate_url("http://127.0.0.1:9/x", &strict), Err(UrlError::Internal(_))));
        assert!(matches!(validate_url("http://localhost/", &strict), Err(UrlError::Internal(_))));
        assert!(matches!(validate_url("http://169.254.169.254/latest", &local), Err(UrlError::Internal(_))));
        assert!(matches!(validate_url("http://[::1]/", &local), Err(UrlError::Internal(_))));
        assert_eq!(validate_url("ftp://example.com/", &strict), Err(UrlError::Scheme));
        assert!(validate_url("https://example.com/hook", &strict).is_ok());
        assert_eq!(validate_url("http://example.com/hook", &local), Err(UrlError::HttpsRequired));
        assert!(
            validate_url("http://example.com/hook", &OutboundPolicy { allow_http: true, ..strict.clone() }).is_ok()
        );
        assert!(matches!(validate_url("not a url", &strict), Err(UrlError::Invalid(_))));
    }
}
