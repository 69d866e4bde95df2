//! Stripe webhook signatures (`Stripe-Signature: t=…,v1=…`): hex HMAC-SHA256 keyed with the
//! whole `whsec_…` secret over `{t}.{raw body}`; any `v1` may match (secret rolling);
//! the timestamp must be within the tolerance (providers.md §2).

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::{Receipt, Unverified, Verified, VerifyError};

const HEADER: &str = "Stripe-Signature";

/// Parsed `Stripe-Signature`: the timestamp and every valid-hex `v1` signature.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub t: i64,
    pub v1: Vec<Vec<u8>>,
}

/// Parse the header; pairs split on the first `=`; `v0` and unknown keys are ignored;
/// a `v1` that is not hex is skipped.
pub fn parse_header(h: &str) -> Result<SignatureHeader, VerifyError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for pair in h.split(',') {
        let (k, v) = pair.trim().split_once('=').ok_or(VerifyError::MalformedHeader(HEADER))?;
        match k {
            "t" => t = Some(v.parse::<i64>().map_err(|_| VerifyError::MalformedHeader(HEADER))?),
            "v1" => {
                if let Ok(bytes) = hex::decode(v) {
                    v1.push(bytes);
                }
            }
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::MalformedHeader(HEADER))?;
    if v1.is_empty() {
        return Err(VerifyError::Mismatch);
    }
    Ok(SignatureHeader { t, v1 })
}

/// `hex(HMAC-SHA256(secret, "{t}.{body}"))`, as Stripe signs.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

fn mac(secret: &str, t: i64, body: &[u8]) -> hmac::Hmac<Sha256> {
    let mut m = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Check a header against a body at time `now` (unix s). Signature first, then age: a
/// timestamp more than `tolerance` seconds away from `now`, past or future, is rejected.
pub fn check(header: &str, body: &[u8], secret: &str, now: i64, tolerance: i64) -> Result<(), VerifyError> {
    let h = parse_header(header)?;
    let m = mac(secret, h.t, body);
    if !h.v1.iter().any(|sig| m.clone().verify_slice(sig).is_ok()) {
        return Err(VerifyError::Mismatch);
    }
    let age = now - h.t;
    if age.abs() > tolerance {
        return Err(VerifyError::Stale { age_s: age, tolerance_s: tolerance });
    }
    Ok(())
}

/// Verify a Stripe receipt with the tenant's endpoint secret.
#[allow(clippy::result_large_err)]
pub fn verify(
    receipt: Receipt<Unverified>,
    secret: &str,
    now: i64,
    tolerance: i64,
) -> Result<Receipt<Verified>, (Receipt<Unverified>, VerifyError)> {
    let Some(header) = receipt.header("stripe-signature") else {
        return Err((receipt, VerifyError::MissingHeader(HEADER)));
    };
    match check(header, &receipt.body, secret, now, tolerance) {
        Ok(()) => Ok(receipt.into_verified()),
        Err(e) => Err((receipt, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;

    fn header(t: i64, secret: &str) -> String {
        format!("t={t},v1={}", sign(secret, t, BODY))
    }

    #[test]
    fn valid_signature_within_tolerance() {
        assert_eq!(check(&header(1000, SECRET), BODY, SECRET, 1000, 300), Ok(()));
        assert_eq!(check(&header(1000, SECRET), BODY, SECRET, 1300, 300), Ok(()));
    }

    #[test]
    fn age_301_is_stale() {
        assert_eq!(
            check(&header(1000, SECRET), BODY, SECRET, 1301, 300),
            Err(VerifyError::Stale { age_s: 301, tolerance_s: 300 })
        );
        assert!(matches!(check(&header(2000, SECRET), BODY, SECRET, 1000, 300), Err(VerifyError::Stale { .. })));
    }

    #[test]
    fn wrong_secret_or_tampered_body() {
        assert_eq!(check(&header(1000, "whsec_other"), BODY, SECRET, 1000, 300), Err(VerifyError::Mismatch));
        assert_eq!(check(&header(1000, SECRET), b"{}", SECRET, 1000, 300), Err(VerifyError::Mismatch));
    }

    #[test]
    fn rotation_any_v1_matches_and_garbage_is_skipped() {
        let h = format!("{},v1={},v1=zzzz,v0=abcd", header(1000, "whsec_old"), sign(SECRET, 1000, BODY));
        assert_eq!(check(&h, BODY, SECRET, 1000, 300), Ok(()));
        assert_eq!(check(&h, BODY, "whsec_old", 1000, 300), Ok(()));
        let reordered = format!("v1={},t=1000", sign(SECRET, 1000, BODY));
        assert_eq!(check(&reordered, BODY, SECRET, 1000, 300), Ok(()));
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(check("garbage", BODY, SECRET, 0, 300), Err(VerifyError::MalformedHeader(HEADER)));
        assert_eq!(check("v1=abcd", BODY, SECRET, 0, 300), Err(VerifyError::MalformedHeader(HEADER)));
        assert_eq!(check("t=1000,v0=abcd", BODY, SECRET, 1000, 300), Err(VerifyError::Mismatch));
    }
}
