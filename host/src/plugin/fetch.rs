//! Outbound HTTP for plugins (`http-fetch`): only to hosts on the tenant's allow-list, https
//! unless the address is in `HOOKHOST_OUTBOUND_ALLOW`, never to internal addresses (checked when
//! the name resolves, as for deliveries), no redirects, a timeout within the invocation's
//! deadline, and a cap on the response body. Owns the plugins' HTTP client and nothing else.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};

use crate::deliver::{OutboundPolicy, guard, validate_url};

/// A request as the plugin asked for it.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The tenant's rules for one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRules {
    /// Hosts a plugin may fetch from: exact names, or `*.example.com` for its subdomains.
    pub allow: Vec<String>,
    pub timeout: Duration,
    pub max_bytes: usize,
    pub max_requests: usize,
}

impl Default for HttpRules {
    fn default() -> Self {
        Self { allow: Vec::new(), timeout: Duration::from_secs(2), max_bytes: 256 << 10, max_requests: 4 }
    }
}

/// Whether `pattern` is an allow-list entry: a host name (or IP literal), or `*.` and a name.
pub fn valid_pattern(pattern: &str) -> bool {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'))
}

/// Whether `host` is on the allow-list `allow`: one of its names, or under one of its
/// `*.domain` entries. An allow-list pattern asks for nothing beyond `allow` by the same rule
/// (`*.eu.crm.example` is under `*.crm.example`), which is how a tenant's list is held to its
/// ceiling's.
pub fn host_allowed(host: &str, allow: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allow.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == p,
        }
    })
}

/// The plugins' HTTP clients (one per outbound allow-list). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetcher {
    clients: Arc<guard::GuardedClients>,
    policy: Arc<OutboundPolicy>,
}

impl Fetcher {
    pub fn new(policy: OutboundPolicy) -> Result<Self, reqwest::Error> {
        let clients = guard::GuardedClients::new(|resolver| {
            reqwest::Client::builder()
                // A proxy would resolve names itself, past the guard.
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(resolver))
                .user_agent("hookhost-plugin")
                .build()
        });
        clients.get(&policy.allow)?;
        Ok(Self { clients: Arc::new(clients), policy: Arc::new(policy) })
    }

    /// Send `req` under `rules` within `remaining` of the invocation's deadline, reaching the
    /// internal ranges of the operator's policy and of `outbound_allow` (the tenant's grant).
    /// `read_only` (a dry run) allows only GET and HEAD.
    pub async fn fetch(
        &self,
        req: FetchRequest,
        rules: &HttpRules,
        outbound_allow: &[ipnet::IpNet],
        remaining: Duration,
        read_only: bool,
    ) -> Result<FetchResponse, String> {
        let method = Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("invalid method {:?}", req.method))?;
        if ![Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(&method) {
            return Err(format!("method {method} is not allowed"));
        }
        if read_only && ![Method::GET, Method::HEAD].contains(&method) {
            return Err("a dry run sends only GET and HEAD requests".into());
        }
        let policy = self.policy.widened(outbound_allow);
        let url = validate_url(&req.url, &policy).map_err(|e| e.to_string())?;
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        if !host_allowed(host, &rules.allow) {
            return Err(format!("host {host} is not in the tenant's http_allow list"));
        }
        let timeout = rules.timeout.min(remaining);
        if timeout.is_zero() {
            return Err("no time left before the invocation's deadline".into());
        }
        let client = self.clients.get(&policy.allow).map_err(|e| format!("http client: {e}"))?;
        let mut builder = client.request(method, url).timeout(timeout);
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
            if name == reqwest::header::HOST {
                return Err("the host header is set from the URL".into());
            }
            let value = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let read = async {
            let mut resp = builder.send().await.map_err(|e| describe(&e, timeout))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e, timeout))? {
                if body.len() + chunk.len() > rules.max_bytes {
                    return Err(format!("response body larger than {} bytes", rules.max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FetchResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
        };
        // The client's timeout covers the whole exchange, body included; this bounds it too.
        tokio::time::timeout(timeout, read)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {} ms", timeout.as_millis())))
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_as_subdomains() {
        let allow = vec!["api.example.com".to_string(), "*.crm.test".to_string()];
        assert!(host_allowed("api.example.com", &allow));
        assert!(host_allowed("API.example.com.", &allow));
        assert!(host_allowed("eu.crm.test", &allow));
        assert!(!host_allowed("crm.test", &allow));
        assert!(!host_allowed("evil-api.example.com", &allow));
        assert!(!host_allowed("api.example.com.evil.test", &allow));
        assert!(!host_allowed("anything", &[]));
    }

    #[tokio::test]
    async fn refusals_name_their_rule() {
        let fetcher = Fetcher::new(OutboundPolicy::default()).unwrap();
        let rules = HttpRules { allow: vec!["10.1.2.3".into(), "api.example.com".into()], ..HttpRules::default() };
        let req = |method: &str, url: &str| FetchRequest {
            method: method.into(),
            url: url.into(),
            headers: vec![],
            body: None,
        };
        let second = Duration::from_secs(1);
        let err = fetcher.fetch(req("GET", "https://10.1.2.3/x"), &rules, &[], second, false).await.unwrap_err();
        assert!(err.contains("internal address"), "the tenant cannot allow what the operator did not: {err}");
        let err =
            fetcher.fetch(req("GET", "https://other.example.com/"), &rules, &[], second, false).await.unwrap_err();
        assert!(err.contains("not in the tenant's http_allow"), "{err}");
        let err = fetcher.fetch(req("POST", "https://api.example.com/"), &rules, &[], second, true).await.unwrap_err();
        assert!(err.contains("dry run"), "{err}");
        let err = fetcher.fetch(req("GET", "http://api.example.com/"), &rules, &[], second, false).await.unwrap_err();
        assert!(err.contains("https"), "{err}");
        let err =
            fetcher.fetch(req("CONNECT", "https://api.example.com/"), &rules, &[], second, false).await.unwrap_err();
        assert!(err.contains("not allowed"), "{err}");
        let err = fetcher
            .fetch(req("GET", "https://api.example.com/"), &rules, &[], Duration::ZERO, false)
            .await
            .unwrap_err();
        assert!(err.contains("deadline"), "{err}");
    }

    #[test]
    fn allow_list_entries_are_names() {
        for ok in ["api.example.com", "*.crm.test", "127.0.0.1", "localhost"] {
            assert!(valid_pattern(ok), "{ok}");
        }
        for bad in ["", "*", "*.", "http://x", "a..b", "x/y", "*.*.x"] {
            assert!(!valid_pattern(bad), "{bad}");
        }
    }
}
