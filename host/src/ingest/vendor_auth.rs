//! How a generic vendor authenticates its callbacks, per tenant and vendor: a Standard Webhooks
//! signature (`whsec_` secret), a static header value (`X-Api-Key: …`), or HTTP basic auth.
//! Every comparison is constant-time; the credential header is never kept in the evidence.
//! A vendor without a signature has no message id: its identity is the body's SHA-256, so a
//! retry of the same body is a duplicate. Owns the stored form and the check; not the route.

use axum::http::HeaderName;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::standard::{self, VerifiedMessage};
use super::{Receipt, Unverified, VerifyError};

/// Shortest static credential (header value, password) a vendor may be given.
pub const MIN_CREDENTIAL: usize = 16;

/// A vendor's authentication, as the tenant set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "auth", rename_all = "snake_case", deny_unknown_fields)]
pub enum VendorAuth {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard { secret: String },
    /// A header carrying a fixed value.
    Header { header: String, value: String },
    /// `Authorization: Basic …`.
    Basic { username: String, password: String },
}

/// Why a vendor auth setting was refused (the message is the API's answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAuth(pub String);

impl VendorAuth {
    /// What the API was given, checked: `{"secret":"whsec_…"}` (standard, the default),
    /// `{"auth":"header","header","value"}` or `{"auth":"basic","username","password"}`.
    pub fn from_request(body: serde_json::Value) -> Result<Self, InvalidAuth> {
        let mut body = body;
        if let Some(o) = body.as_object_mut() {
            o.entry("auth").or_insert_with(|| "standard".into());
        }
        let auth: VendorAuth = serde_json::from_value(body).map_err(|e| InvalidAuth(e.to_string()))?;
        auth.check()?;
        Ok(auth)
    }

    fn check(&self) -> Result<(), InvalidAuth> {
        let short = |what: &str| InvalidAuth(format!("{what} must be at least {MIN_CREDENTIAL} characters"));
        match self {
            VendorAuth::Standard { secret } => {
                if !secret.starts_with("whsec_")
                    || crate::deliver::sign::secret_key(secret).map_or(true, |k| k.len() < 16)
                {
                    return Err(InvalidAuth("secret must be whsec_ followed by base64 of at least 16 bytes".into()));
                }
            }
            VendorAuth::Header { header, value } => {
                let name = HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| InvalidAuth(format!("{header:?} is not a header name")))?;
                if ["host", "content-type", "content-length", "cookie"].contains(&name.as_str()) {
                    return Err(InvalidAuth(format!("{name} cannot carry a credential")));
                }
                if value.len() < MIN_CREDENTIAL {
                    return Err(short("value"));
                }
            }
            VendorAuth::Basic { username, password } => {
                if username.is_empty() || username.contains(':') {
                    return Err(InvalidAuth("username must be set and hold no ':'".into()));
                }
                if password.len() < MIN_CREDENTIAL {
                    return Err(short("password"));
                }
            }
        }
        Ok(())
    }

    /// The sealed-at-rest form: a standard secret as itself (as stored before other kinds
    /// existed), the others as JSON.
    pub fn to_stored(&self) -> String {
        match self {
            VendorAuth::Standard { secret } => secret.clone(),
            other => serde_json::to_string(other).expect("vendor auth serializes"),
        }
    }

    pub fn from_stored(s: &str) -> Result<Self, serde_json::Error> {
        if s.starts_with('{') { serde_json::from_str(s) } else { Ok(VendorAuth::Standard { secret: s.to_string() }) }
    }

    /// The request header holding the credential, to redact from the evidence.
    pub fn credential_header(&self) -> Option<&str> {
        match self {
            VendorAuth::Header { header, .. } => Some(header),
            VendorAuth::Standard { .. } | VendorAuth::Basic { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            VendorAuth::Standard { .. } => "standard",
            VendorAuth::Header { .. } => "header",
            VendorAuth::Basic { .. } => "basic",
        }
    }
}

/// Check a vendor receipt; returns it verified with its message id and time (unix s).
#[allow(clippy::result_large_err)]
pub fn verify(
    receipt: Receipt<Unverified>,
    auth: &VendorAuth,
    now: i64,
    tolerance: i64,
) -> Result<VerifiedMessage, (Receipt<Unverified>, VerifyError)> {
    let ok = match auth {
        VendorAuth::Standard { secret } => return standard::verify(receipt, secret, now, tolerance),
        VendorAuth::Header { header, value } => {
            receipt.header(header).is_some_and(|given| bool::from(given.as_bytes().ct_eq(value.as_bytes())))
        }
        VendorAuth::Basic { username, password } => basic(receipt.header("authorization"), username, password),
    };
    if !ok {
        return Err((receipt, VerifyError::BadCredentials));
    }
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&receipt.body));
    let at = receipt.received_at / 1000;
    Ok((receipt.into_verified(), format!("sha256:{}", &digest[..32]), at))
}

/// Whether `Authorization: Basic …` carries `username` and `password`; both compared in
/// constant time, whichever differs.
fn basic(header: Option<&str>, username: &str, password: &str) -> bool {
    let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic "))) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else { return false };
    let (u, p) = (&decoded[..colon], &decoded[colon + 1..]);
    bool::from(u.ct_eq(username.as_bytes()) & p.ct_eq(password.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;

    fn receipt(headers: &[(&str, &str)]) -> Receipt<Unverified> {
        let mut map = axum::http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        Receipt::new(TenantId::from_stored("t".into()), "vendor", "/x".into(), map, b"{}".to_vec(), 5_000)
    }

    #[test]
    fn a_static_header_must_match_exactly() {
        let auth = VendorAuth::Header { header: "x-api-key".into(), value: "k".repeat(20) };
        let ok = verify(receipt(&[("x-api-key", &"k".repeat(20))]), &auth, 5, 300).unwrap();
        assert!(ok.1.starts_with("sha256:"), "a body's digest is its identity");
        assert_eq!(ok.2, 5);
        for bad in [&"k".repeat(19), &"k".repeat(21), &"K".repeat(20), ""] {
            let e = verify(receipt(&[("x-api-key", bad)]), &auth, 5, 300).unwrap_err().1;
            assert_eq!(e, VerifyError::BadCredentials, "{bad}");
        }
        assert!(verify(receipt(&[]), &auth, 5, 300).is_err());
    }

    #[test]
    fn basic_auth_checks_both_halves() {
        let auth = VendorAuth::Basic { username: "acme".into(), password: "p".repeat(16) };
        let b64 = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert!(
            verify(receipt(&[("authorization", &b64(&format!("acme:{}", "p".repeat(16))))]), &auth, 5, 300).is_ok()
        );
        for bad in [
            b64(&format!("acme:{}", "p".repeat(15))),
            b64(&format!("evil:{}", "p".repeat(16))),
            b64("acme"),
            "Bearer x".into(),
            "Basic !!".into(),
        ] {
            assert!(verify(receipt(&[("authorization", &bad)]), &auth, 5, 300).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_checked_and_stored_compatibly() {
        let std = VendorAuth::from_request(serde_json::json!({ "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }))
            .unwrap();
        assert_eq!(VendorAuth::from_stored(&std.to_stored()).unwrap(), std);
        assert_eq!(std.to_stored(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "as stored before");
        let h = VendorAuth::from_request(
            serde_json::json!({ "auth": "header", "header": "X-Api-Key", "value": "v".repeat(16) }),
        )
        .unwrap();
        assert_eq!(VendorAuth::from_stored(&h.to_stored()).unwrap(), h);
        for bad in [
            serde_json::json!({ "secret": "whsec_short" }),
            serde_json::json!({ "auth": "header", "header": "X Api", "value": "v".repeat(16) }),
            serde_json::json!({ "auth": "header", "header": "host", "value": "v".repeat(16) }),
            serde_json::json!({ "auth": "header", "header": "x-k", "value": "short" }),
            serde_json::json!({ "auth": "basic", "username": "a:b", "password": "p".repeat(16) }),
            serde_json::json!({ "auth": "basic", "username": "a", "password": "short" }),
            serde_json::json!({ "auth": "oauth" }),
            serde_json::json!({ "auth": "header", "header": "x-k", "value": "v".repeat(16), "extra": 1 }),
        ] {
            assert!(VendorAuth::from_request(bad.clone()).is_err(), "{bad}");
        }
    }
}
