//! Standard Webhooks verification for generic vendors (providers.md §3): `webhook-id`,
//! `webhook-timestamp`, space-separated `webhook-signature` (`v1,<base64>`; any may match;
//! other versions ignored), the key being the base64-decoded `whsec_` secret; a 5-minute
//! tolerance in both directions. The `svix-` header names are accepted too.

use subtle::ConstantTimeEq;

use super::{Receipt, Unverified, Verified, VerifyError};
use crate::deliver::sign::standard_signature;

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";

/// Check a Standard Webhooks signature; returns `(webhook-id, webhook-timestamp)`.
pub fn check(
    id: Option<&str>,
    ts: Option<&str>,
    sigs: Option<&str>,
    body: &[u8],
    secret: &str,
    now: i64,
    tolerance: i64,
) -> Result<(String, i64), VerifyError> {
    let id = id.filter(|s| !s.is_empty()).ok_or(VerifyError::MissingHeader(ID))?;
    let ts = ts.ok_or(VerifyError::MissingHeader(TIMESTAMP))?;
    let sigs = sigs.ok_or(VerifyError::MissingHeader(SIGNATURE))?;
    let t: i64 = ts.trim().parse().map_err(|_| VerifyError::MalformedHeader(TIMESTAMP))?;
    let expected = standard_signature(secret, id, t, body).map_err(|_| VerifyError::Mismatch)?;
    let matched =
        sigs.split(' ').filter(|s| s.starts_with("v1,")).any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    let age = now - t;
    if age.abs() > tolerance {
        return Err(VerifyError::Stale { age_s: age, tolerance_s: tolerance });
    }
    Ok((id.to_string(), t))
}

/// A verified receipt with its `webhook-id` and `webhook-timestamp`.
pub type VerifiedMessage = (Receipt<Verified>, String, i64);

/// Verify a vendor receipt with the tenant's secret for that vendor.
#[allow(clippy::result_large_err)]
pub fn verify(
    receipt: Receipt<Unverified>,
    secret: &str,
    now: i64,
    tolerance: i64,
) -> Result<VerifiedMessage, (Receipt<Unverified>, VerifyError)> {
    let h = |n: &str| receipt.header(n).or_else(|| receipt.header(&n.replace("webhook-", "svix-")));
    match check(h(ID), h(TIMESTAMP), h(SIGNATURE), &receipt.body, secret, now, tolerance) {
        Ok((id, t)) => Ok((receipt.into_verified(), id, t)),
        Err(e) => Err((receipt, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The python library's vector (providers.md §3).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID_: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const T: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn library_vector_rotation_and_tolerance() {
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let ts = T.to_string();
        assert!(check(Some(ID_), Some(&ts), Some(good), BODY, SECRET, T, 300).is_ok());
        let rotated = format!("v1,bm90IGl0 v1a,ZWQyNTUxOQ== {good}");
        assert!(check(Some(ID_), Some(&ts), Some(&rotated), BODY, SECRET, T + 300, 300).is_ok());
        let bad = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(check(Some(ID_), Some(&ts), Some(bad), BODY, SECRET, T, 300), Err(VerifyError::Mismatch));
        assert!(matches!(
            check(Some(ID_), Some(&ts), Some(good), BODY, SECRET, T + 301, 300),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            check(Some(ID_), Some(&ts), Some(good), BODY, SECRET, T - 301, 300),
            Err(VerifyError::Stale { .. })
        ));
        assert_eq!(check(None, Some(&ts), Some(good), BODY, SECRET, T, 300), Err(VerifyError::MissingHeader(ID)));
        assert_eq!(
            check(Some(ID_), Some("soon"), Some(good), BODY, SECRET, T, 300),
            Err(VerifyError::MalformedHeader(TIMESTAMP))
        );
    }
}
