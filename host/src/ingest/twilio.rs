//! Twilio request validation (`X-Twilio-Signature`): base64 HMAC-SHA1 with the tenant's auth
//! token over the public URL followed by the sorted form parameters (providers.md §1).

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha1::Sha1;

use super::{Receipt, Unverified, Verified, VerifyError};

/// Decode a form body into its parameters, in order.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The string Twilio signs: the URL, then each parameter's name and value, sorted by name
/// (byte order); a repeated name contributes each distinct value once, sorted (as the SDKs do).
pub fn signing_string(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut s = String::with_capacity(url.len() + params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    s.push_str(url);
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(v);
    }
    s
}

/// The URL forms Twilio's SDKs accept a signature over: as configured, without its port, and
/// with the scheme's default port added (a custom port is kept).
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else { return out };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => match p.parse::<u16>() {
            Ok(_) => (h, Some(p)),
            Err(_) => (hostport, None),
        },
        _ => (hostport, None),
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let without = format!("{scheme}://{userinfo}{host}{tail}");
    let with = format!("{scheme}://{userinfo}{host}:{}{tail}", port.unwrap_or(default_port));
    for v in [without, with] {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The `X-Twilio-Signature` Twilio would send for `url` + `params` with `token` (base64 of
/// HMAC-SHA1 over [`signing_string`]); for tools that post sample callbacks (`hookhost demo`).
pub fn sign(url: &str, params: &[(String, String)], token: &str) -> String {
    let mut mac = Hmac::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(signing_string(url, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` (base64) is a valid Twilio signature of `url` + `params` with `token`.
/// Compared in constant time.
pub fn is_valid(url: &str, params: &[(String, String)], signature: &str, token: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
    url_variants(url).iter().any(|u| {
        let mut mac = Hmac::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
        mac.update(signing_string(u, params).as_bytes());
        mac.verify_slice(&expected).is_ok()
    })
}

type Hmac = hmac::Hmac<Sha1>;

/// Verify a Twilio receipt against the public `url` it was sent to.
#[allow(clippy::result_large_err)]
pub fn verify(
    receipt: Receipt<Unverified>,
    url: &str,
    params: &[(String, String)],
    token: &str,
) -> Result<Receipt<Verified>, (Receipt<Unverified>, VerifyError)> {
    let Some(sig) = receipt.header("x-twilio-signature") else {
        return Err((receipt, VerifyError::MissingHeader("X-Twilio-Signature")));
    };
    if is_valid(url, params, sig, token) { Ok(receipt.into_verified()) } else { Err((receipt, VerifyError::Mismatch)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from twilio-python tests/unit/test_request_validator.py (providers.md §1).
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn base_vector() {
        assert!(is_valid(URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", TOKEN));
        assert!(!is_valid(URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B9=", TOKEN));
        assert!(!is_valid(URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "54321"));
        assert!(!is_valid(URL, &params(), "not base64!", TOKEN));
        assert_eq!(sign(URL, &params(), TOKEN), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "Twilio's documented vector");
    }

    #[test]
    fn port_variants_validate_both_ways() {
        assert!(is_valid(URL, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w=", TOKEN));
        assert!(is_valid(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            TOKEN
        ));
        assert!(is_valid(
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            TOKEN
        ));
        assert!(is_valid(
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &params(),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            TOKEN
        ));
        assert!(is_valid(
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &params(),
            "CYn1h0gLBdNxDGkKJg6hYohgeD8=",
            TOKEN
        ));
    }

    #[test]
    fn repeated_parameter_values_are_sorted_and_deduplicated() {
        let p: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert!(is_valid(URL, &p, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", TOKEN));
    }

    #[test]
    fn userinfo_is_signed() {
        let url = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(is_valid(url, &params(), "CukzLTc1tT5dXEDIHm/tKBanW10=", TOKEN));
        assert!(is_valid(url, &params(), "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=", TOKEN));
    }

    #[test]
    fn variants() {
        assert_eq!(
            url_variants("https://a.com/x"),
            vec!["https://a.com/x".to_string(), "https://a.com:443/x".to_string()]
        );
        assert_eq!(
            url_variants("http://a.com:8080/x?y=1"),
            vec!["http://a.com:8080/x?y=1".to_string(), "http://a.com/x?y=1".to_string()]
        );
    }
}
