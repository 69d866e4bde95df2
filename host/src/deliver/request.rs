//! A delivery's request as a plugin shaped it (`hookhost:plugin@0.2.0`'s `outbound-request`):
//! method, path suffix, extra headers and content type, checked once when the plugin returns
//! them ([`Shape::new`]) and again against each endpoint they go to ([`Shape::url`],
//! [`Shape::reserved_by`]). The body is kept apart, stored as every delivery's body is. Pure:
//! no I/O. Must not sign or send: [`super::Sender`] does, with what this module allowed.

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::store::SignatureHeaderNames;

/// Extra headers a plugin may set on one request.
pub const MAX_HEADERS: usize = 32;
/// Longest path suffix, bytes.
pub const MAX_PATH_BYTES: usize = 2048;
/// Longest content type, bytes.
const MAX_CONTENT_TYPE_BYTES: usize = 256;
/// The body's media type when the plugin names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";

/// Headers the host owns on every delivery: framing and routing, hop-by-hop, and the media type
/// (set through the shape's own field). Signature headers are refused by prefix and by the
/// endpoint's configured names.
const RESERVED: [&str; 11] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];
/// Prefixes of the default signature, id and timestamp headers of both signing styles.
const RESERVED_PREFIXES: [&str; 2] = ["webhook-", "x-hookhost-"];

/// The methods a delivery may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }

    pub fn http(self) -> reqwest::Method {
        match self {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        }
    }
}

/// How a shaped delivery's request differs from the envelope's. Stored with its job as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub method: Method,
    /// Appended to the endpoint's URL: empty, `/…` (with an optional `?query`) or `?query`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Extra headers, names in lower case, none reserved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    pub content_type: String,
}

/// A plugin's whole request: how it is shaped, and its body as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped {
    pub shape: Shape,
    pub body: String,
}

/// Why a shaped request is refused; the message is the plugin author's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("method {0:?} is not POST, PUT or PATCH")]
    Method(String),
    #[error("path {path:?} {why}")]
    Path { path: String, why: &'static str },
    #[error("header {0:?} is not a valid header name and value")]
    Header(String),
    #[error("header {name:?} is reserved: {why}")]
    Reserved { name: String, why: &'static str },
    #[error("{0} headers, at most {MAX_HEADERS}")]
    TooManyHeaders(usize),
    #[error("content type {0:?} is not a media type (type/subtype, at most 256 bytes)")]
    ContentType(String),
    #[error("the body is not JSON, which its content type {content_type:?} says it is: {reason}")]
    NotJson { content_type: String, reason: String },
    #[error("the endpoint's URL with the path {0:?} is not a URL on the endpoint's host")]
    Escapes(String),
}

impl Shaped {
    /// Check what a plugin returned: method, path, headers, content type, and a JSON body when
    /// the content type is JSON.
    pub fn new(
        method: &str,
        path: String,
        headers: Vec<(String, String)>,
        content_type: &str,
        body: String,
    ) -> Result<Self, ShapeError> {
        let method = match method.to_ascii_uppercase().as_str() {
            "" | "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            _ => return Err(ShapeError::Method(method.to_string())),
        };
        check_path(&path)?;
        if headers.len() > MAX_HEADERS {
            return Err(ShapeError::TooManyHeaders(headers.len()));
        }
        let headers = headers.into_iter().map(|(n, v)| check_header(n, v)).collect::<Result<Vec<_>, _>>()?;
        let content_type = if content_type.is_empty() { DEFAULT_CONTENT_TYPE } else { content_type };
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let well_formed = content_type.len() <= MAX_CONTENT_TYPE_BYTES
            && HeaderValue::from_str(content_type).is_ok()
            && media.split_once('/').is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
        if !well_formed {
            return Err(ShapeError::ContentType(content_type.to_string()));
        }
        if media == "application/json" || media.ends_with("+json") {
            serde_json::from_str::<serde::de::IgnoredAny>(&body)
                .map_err(|e| ShapeError::NotJson { content_type: content_type.to_string(), reason: e.to_string() })?;
        }
        Ok(Shaped { shape: Shape { method, path, headers, content_type: content_type.to_string() }, body })
    }
}

impl Shape {
    /// The endpoint's URL with the path appended: a `/…` suffix extends its path, a query is
    /// joined to the endpoint's own with `&`. Refused if the result is not on the same scheme,
    /// host and port.
    pub fn url(&self, endpoint: &Url) -> Result<Url, ShapeError> {
        if self.path.is_empty() {
            return Ok(endpoint.clone());
        }
        let (path, query) = match self.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.path.as_str(), None),
        };
        let mut url = endpoint.clone();
        if !path.is_empty() {
            let joined = format!("{}{path}", endpoint.path().trim_end_matches('/'));
            url.set_path(&joined);
        }
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            let joined = match endpoint.query().filter(|e| !e.is_empty()) {
                Some(own) => format!("{own}&{q}"),
                None => q.to_string(),
            };
            url.set_query(Some(&joined));
        }
        // Parsed again from its text: what is sent is what this says.
        let reparsed = Url::parse(url.as_str()).map_err(|_| ShapeError::Escapes(self.path.clone()))?;
        let same = reparsed.scheme() == endpoint.scheme()
            && reparsed.host() == endpoint.host()
            && reparsed.port_or_known_default() == endpoint.port_or_known_default()
            && reparsed.username() == endpoint.username()
            && reparsed.password() == endpoint.password();
        if !same {
            return Err(ShapeError::Escapes(self.path.clone()));
        }
        Ok(reparsed)
    }

    /// The first extra header that is one of the endpoint's configured signature, id or
    /// timestamp header names.
    pub fn reserved_by(&self, names: &SignatureHeaderNames) -> Option<&str> {
        let own = [&names.signature, &names.id, &names.timestamp];
        self.headers
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| own.iter().any(|o| o.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(n))))
    }
}

fn check_path(path: &str) -> Result<(), ShapeError> {
    let bad = |why| Err(ShapeError::Path { path: path.to_string(), why });
    if path.is_empty() {
        return Ok(());
    }
    if !(path.starts_with('/') || path.starts_with('?')) {
        return bad("must start with '/' or '?'");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("is longer than 2048 bytes");
    }
    if path.starts_with("//") || path.contains('\\') {
        return bad("must not start with '//' or hold a backslash");
    }
    if path.chars().any(|c| c.is_control() || c.is_whitespace() || c == '#') {
        return bad("must not hold spaces, control characters or '#'");
    }
    let segments = path.split('?').next().unwrap_or_default().split('/');
    let dots = segments.map(|s| s.to_ascii_lowercase().replace("%2e", ".")).any(|s| s == "." || s == "..");
    if dots {
        return bad("must not hold '.' or '..' segments");
    }
    Ok(())
}

fn check_header(name: String, value: String) -> Result<(String, String), ShapeError> {
    let (Ok(n), Ok(_)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(&value)) else {
        return Err(ShapeError::Header(name));
    };
    let lower = n.as_str();
    if RESERVED.contains(&lower) {
        let why =
            if lower == "content-type" { "set the request's content-type field instead" } else { "hookhost sets it" };
        return Err(ShapeError::Reserved { name, why });
    }
    if RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(ShapeError::Reserved { name, why: "signature, id and timestamp headers are hookhost's" });
    }
    Ok((lower.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(method: &str, path: &str, headers: &[(&str, &str)], ct: &str, body: &str) -> Result<Shaped, ShapeError> {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        Shaped::new(method, path.into(), headers, ct, body.into())
    }

    fn url_of(endpoint: &str, path: &str) -> Result<String, ShapeError> {
        let s = shaped("", path, &[], "text/plain", "x")?;
        s.shape.url(&Url::parse(endpoint).unwrap()).map(|u| u.to_string())
    }

    #[test]
    fn methods_and_defaults() {
        let s = shaped("", "", &[], "", "{}").unwrap();
        assert_eq!((s.shape.method, s.shape.content_type.as_str()), (Method::Post, "application/json"));
        assert_eq!(shaped("patch", "", &[], "", "{}").unwrap().shape.method, Method::Patch);
        assert_eq!(shaped("PUT", "", &[], "", "{}").unwrap().shape.method, Method::Put);
        for m in ["GET", "DELETE", "CONNECT", "POST ", "TRACE"] {
            assert_eq!(shaped(m, "", &[], "", "{}"), Err(ShapeError::Method(m.into())), "{m}");
        }
    }

    #[test]
    fn paths_stay_on_the_endpoint() {
        assert_eq!(url_of("https://a.com/hooks", "/calls/1").unwrap(), "https://a.com/hooks/calls/1");
        assert_eq!(url_of("https://a.com/hooks/", "/x?y=1").unwrap(), "https://a.com/hooks/x?y=1");
        assert_eq!(url_of("https://a.com/h?key=k", "?event=call").unwrap(), "https://a.com/h?key=k&event=call");
        assert_eq!(url_of("https://a.com/h?key=k", "/x").unwrap(), "https://a.com/h/x?key=k");
        assert_eq!(url_of("https://a.com", "/x").unwrap(), "https://a.com/x");
        // The attacker's spellings: each refused before or after joining.
        for hostile in [
            "@evil.com",
            "evil.com",
            ".evil.com",
            ":8080/x",
            "//evil.com/x",
            "/..",
            "/a/../../admin",
            "/%2e%2e/admin",
            "/%2E/x",
            "/x#frag",
            "/x y",
            "/x\r\nHost: evil.com",
            "/x\\evil",
            "\u{0}",
        ] {
            assert!(url_of("https://a.com/hooks", hostile).is_err(), "{hostile:?}");
        }
        assert!(url_of("https://a.com", &format!("/{}", "a".repeat(MAX_PATH_BYTES))).is_err());
        // A percent-encoded '@' or '/' stays in the path.
        assert_eq!(url_of("https://a.com/h", "/%40evil.com").unwrap(), "https://a.com/h/%40evil.com");
        assert_eq!(url_of("https://u:p@a.com:8443/h", "/x").unwrap(), "https://u:p@a.com:8443/h/x");
    }

    #[test]
    fn reserved_and_invalid_headers_are_refused() {
        for name in [
            "Host",
            "content-length",
            "Content-Type",
            "Transfer-Encoding",
            "connection",
            "webhook-signature",
            "Webhook-Id",
            "webhook-timestamp",
            "X-Hookhost-Signature",
            "x-hookhost-event-id",
        ] {
            assert!(matches!(shaped("", "", &[(name, "v")], "", "{}"), Err(ShapeError::Reserved { .. })), "{name}");
        }
        assert!(matches!(shaped("", "", &[("bad name", "v")], "", "{}"), Err(ShapeError::Header(_))));
        assert!(matches!(shaped("", "", &[("x-a", "v\r\nx-b: 1")], "", "{}"), Err(ShapeError::Header(_))));
        let many: Vec<(String, String)> = (0..=MAX_HEADERS).map(|i| (format!("x-h{i}"), "v".into())).collect();
        assert_eq!(
            Shaped::new("", String::new(), many, "", "{}".into()),
            Err(ShapeError::TooManyHeaders(MAX_HEADERS + 1))
        );
        let ok = shaped("", "", &[("X-CF-Signature", "t=1"), ("Authorization", "Bearer k")], "", "{}").unwrap();
        assert_eq!(ok.shape.headers[0].0, "x-cf-signature");
        let names = SignatureHeaderNames { signature: Some("x-cf-signature".into()), ..Default::default() };
        assert_eq!(ok.shape.reserved_by(&names), Some("x-cf-signature"));
        assert_eq!(ok.shape.reserved_by(&SignatureHeaderNames::default()), None);
    }

    #[test]
    fn content_types_and_json_bodies() {
        assert!(shaped("", "", &[], "text/plain; charset=utf-8", "not json").is_ok());
        assert!(shaped("", "", &[], "application/x-www-form-urlencoded", "a=1&b=2").is_ok());
        assert!(matches!(shaped("", "", &[], "", "{not json"), Err(ShapeError::NotJson { .. })));
        assert!(matches!(shaped("", "", &[], "application/cloudevents+json", "nope"), Err(ShapeError::NotJson { .. })));
        for ct in ["json", "text/", "/plain", "a/b/c", "text/plain\r\nx-a: 1"] {
            assert!(matches!(shaped("", "", &[], ct, "x"), Err(ShapeError::ContentType(_))), "{ct}");
        }
        assert!(shaped("", "", &[], &format!("text/{}", "a".repeat(300)), "x").is_err());
    }

    #[test]
    fn shapes_round_trip_as_stored() {
        let s = shaped("put", "/x", &[("x-a", "1")], "text/plain", "b").unwrap().shape;
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"{"method":"PUT","path":"/x","headers":[["x-a","1"]],"content_type":"text/plain"}"#);
        assert_eq!(serde_json::from_str::<Shape>(&text).unwrap(), s);
    }
}
