//! Standard Webhooks signing of outbound deliveries (DESIGN.md): `webhook-signature:
//! v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` where `key` is the base64-decoded
//! part of the endpoint's `whsec_…` secret. Pure functions.

use crate::store::{SignatureHeaderNames, SigningStyle};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// A secret that is not `whsec_` + base64.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("endpoint secret is not whsec_ followed by base64")]
pub struct BadSecret;

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("whsec_{}", B64.encode(key))
}

/// The signing key of a `whsec_…` secret (the prefix is optional, as in the libraries).
pub fn secret_key(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(b64).map_err(|_| BadSecret)
}

fn hmac_parts(secret: &str, parts: &[&[u8]]) -> Result<Vec<u8>, BadSecret> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret_key(secret)?).expect("HMAC takes any key length");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b".");
        }
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The `webhook-signature` value for one secret: `v1,<base64>`.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let mac = hmac_parts(secret, &[msg_id.as_bytes(), timestamp.to_string().as_bytes(), body])?;
    Ok(format!("v1,{}", B64.encode(mac)))
}

/// The `v1` of the hookhost style for one secret: hex HMAC-SHA256(key, "{t}.{body}").
pub fn hookhost_v1(secret: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    Ok(hex::encode(hmac_parts(secret, &[timestamp.to_string().as_bytes(), body])?))
}

/// Signature headers for `body`, signed with every secret in `secrets` (rotation overlap):
/// Standard Webhooks (`webhook-id`, `webhook-timestamp`, space-separated `webhook-signature`)
/// or the hookhost style (`X-Hookhost-Event-Id`, `X-Hookhost-Signature: t=…,v1=…[,v1=…]`),
/// under the endpoint's own header `names` where it has them.
pub fn signature_headers(
    style: SigningStyle,
    names: &SignatureHeaderNames,
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, BadSecret> {
    let name = |own: &Option<String>, default: &str| own.clone().unwrap_or_else(|| default.to_string());
    if style == SigningStyle::Hookhost {
        let mut sig = format!("t={timestamp}");
        for s in secrets {
            sig.push_str(",v1=");
            sig.push_str(&hookhost_v1(s, timestamp, body)?);
        }
        return Ok(vec![
            (name(&names.id, "x-hookhost-event-id"), msg_id.to_string()),
            (name(&names.signature, "x-hookhost-signature"), sig),
        ]);
    }
    let sigs = secrets.iter().map(|s| standard_signature(s, msg_id, timestamp, body)).collect::<Result<Vec<_>, _>>()?;
    Ok(vec![
        (name(&names.id, "webhook-id"), msg_id.to_string()),
        (name(&names.timestamp, "webhook-timestamp"), timestamp.to_string()),
        (name(&names.signature, "webhook-signature"), sigs.join(" ")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the standard-webhooks python and rust libraries (providers.md §3).
    #[test]
    fn python_vector() {
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rust_vector() {
        let sig = standard_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn an_endpoint_may_name_its_own_headers() {
        let secret = new_secret();
        let names = SignatureHeaderNames {
            signature: Some("x-cf-signature".into()),
            id: Some("x-cf-event-id".into()),
            timestamp: None,
        };
        let cf = signature_headers(SigningStyle::Hookhost, &names, &[&secret], "evt_1", 1700000000, b"{}").unwrap();
        let v1 = hookhost_v1(&secret, 1700000000, b"{}").unwrap();
        assert_eq!(
            cf,
            [
                ("x-cf-event-id".to_string(), "evt_1".to_string()),
                ("x-cf-signature".to_string(), format!("t=1700000000,v1={v1}"))
            ]
        );
        let std = signature_headers(SigningStyle::Standard, &names, &[&secret], "evt_1", 1700000000, b"{}").unwrap();
        let got: Vec<&str> = std.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, ["x-cf-event-id", "webhook-timestamp", "x-cf-signature"], "unnamed ones keep the default");
    }

    #[test]
    fn both_styles_sign_with_every_overlapping_secret() {
        let (a, b) = (new_secret(), new_secret());
        let sign = |style| {
            signature_headers(style, &SignatureHeaderNames::default(), &[&a, &b], "evt_1", 1700000000, b"{}").unwrap()
        };
        let std = sign(SigningStyle::Standard);
        assert_eq!(std[0], ("webhook-id".to_string(), "evt_1".to_string()));
        let sigs: Vec<&str> = std[2].1.split(' ').collect();
        assert_eq!(
            sigs,
            [
                standard_signature(&a, "evt_1", 1700000000, b"{}").unwrap(),
                standard_signature(&b, "evt_1", 1700000000, b"{}").unwrap()
            ]
        );
        let hh = sign(SigningStyle::Hookhost);
        assert_eq!(hh[0], ("x-hookhost-event-id".to_string(), "evt_1".to_string()));
        assert_eq!(
            hh[1].1,
            format!(
                "t=1700000000,v1={},v1={}",
                hookhost_v1(&a, 1700000000, b"{}").unwrap(),
                hookhost_v1(&b, 1700000000, b"{}").unwrap()
            )
        );
    }

    #[test]
    fn secrets() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert_eq!(secret_key("whsec_!!!"), Err(BadSecret));
    }
}
