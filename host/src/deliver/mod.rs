//! Delivery: endpoints' subscriptions, Standard Webhooks signing ([`sign`]), the retry policy
//! ([`policy`]), the outbound address guard ([`guard`]), the HTTP sender and the delivery
//! worker ([`worker`]). Must not run plugins or parse provider requests.

pub mod guard;
pub mod policy;
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
    Client(String),
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
}

/// Check an endpoint URL at creation: http(s), and not an internal IP literal unless allowed.
/// (Names are checked at every delivery, when they resolve.)
pub fn validate_url(url: &str, allow: &[IpNet]) -> Result<Url, UrlError> {
    let u = Url::parse(url).map_err(|e| UrlError::Invalid(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    match u.host() {
        None => Err(UrlError::Invalid("no host".into())),
        Some(url::Host::Ipv4(ip)) if !guard::permitted(ip.into(), allow) => Err(UrlError::Internal(ip.into())),
        Some(url::Host::Ipv6(ip)) if !guard::permitted(ip.into(), allow) => Err(UrlError::Internal(ip.into())),
        Some(_) => Ok(u),
    }
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
    pub duration: Duration,
}

/// Sends signed deliveries.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow: Arc<Vec<IpNet>>,
}

/// Headers an endpoint's extra headers may not override.
const RESERVED: [&str; 5] = ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "host"];

impl Sender {
    pub fn new(config: &Config) -> Result<Self, DeliverError> {
        let allow = Arc::new(config.outbound_allow.clone());
        let client = reqwest::Client::builder()
            .timeout(config.delivery_timeout)
            .connect_timeout(config.delivery_timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(guard::GuardedResolver { allow: allow.clone() }))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| DeliverError::Client(e.to_string()))?;
        Ok(Self { client, allow })
    }

    /// POST `body` to the endpoint, signed with its secret.
    pub async fn send(&self, ep: &Endpoint, message_id: &str, body: &str) -> Response {
        let started = Instant::now();
        let fail = |error: String| Response {
            status: None,
            error: Some(error),
            retry_after: None,
            duration: started.elapsed(),
        };
        let url = match validate_url(&ep.url, &self.allow) {
            Ok(u) => u,
            Err(e) => return fail(e.to_string()),
        };
        let timestamp = crate::now_ms() / 1000;
        let signature = match sign::standard_signature(&ep.secret, message_id, timestamp, body.as_bytes()) {
            Ok(s) => s,
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
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("hookhost/", env!("CARGO_PKG_VERSION"))));
        for (name, value) in [
            ("webhook-id", message_id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ] {
            headers
                .insert(name, HeaderValue::from_str(&value).expect("ids, digits and base64 are valid header values"));
        }
        match self.client.post(url).headers(headers).body(body.to_string()).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after =
                    resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(policy::parse_retry_after);
                let error = (!resp.status().is_success()).then(|| format!("endpoint answered {status}"));
                Response { status: Some(status), error, retry_after, duration: started.elapsed() }
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
                fail(msg)
            }
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
        let allow = crate::config::parse_cidrs("127.0.0.0/8").unwrap();
        assert!(validate_url("http://127.0.0.1:9/x", &allow).is_ok());
        assert!(matches!(validate_url("http://127.0.0.1:9/x", &[]), Err(UrlError::Internal(_))));
        assert!(matches!(validate_url("http://169.254.169.254/latest", &allow), Err(UrlError::Internal(_))));
        assert!(matches!(validate_url("http://[::1]/", &allow), Err(UrlError::Internal(_))));
        assert_eq!(validate_url("ftp://example.com/", &[]), Err(UrlError::Scheme));
        assert!(validate_url("https://example.com/hook", &[]).is_ok());
        assert!(matches!(validate_url("not a url", &[]), Err(UrlError::Invalid(_))));
    }
}
