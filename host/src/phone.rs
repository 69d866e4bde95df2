//! Phone numbers as providers send them → E.164, with Google's libphonenumber metadata (the
//! `phonenumber` crate): `+14158675309` stays as it is, a national number (`09876543210`) is
//! read in the tenant's default country, anything else (`anonymous`, `client:alice`, a SIP
//! URI, a national number without a country) is kept as sent. Pure; never guesses a country.

use std::fmt;
use std::str::FromStr;

use phonenumber::country;

/// A tenant's default country for national numbers: an ISO 3166-1 alpha-2 code the numbering
/// metadata knows (`IN`, `US`, `GB`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country(country::Id);

impl Country {
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

impl FromStr for Country {
    type Err = UnknownCountry;

    /// Upper-case ISO codes only: `in` is refused rather than guessed.
    fn from_str(s: &str) -> Result<Self, UnknownCountry> {
        let unknown = || UnknownCountry(s.to_string());
        if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown());
        }
        s.parse::<country::Id>().map(Country).map_err(|_| unknown())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A country code that is not an ISO 3166-1 alpha-2 code of the numbering plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 3166-1 alpha-2 country code such as \"US\" or \"IN\"")]
pub struct UnknownCountry(pub String);

/// `raw` as an E.164 number, reading a national number in `country`; `None` when it is not
/// a phone number or is national and no country is known.
pub fn e164(raw: &str, country: Option<Country>) -> Option<String> {
    let raw = raw.trim();
    // Letters are never part of a number a provider reports (`anonymous`, `client:…`, `sip:…`);
    // the parser would read vanity letters as digits.
    if raw.is_empty() || raw.bytes().any(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    // Already E.164 (what Twilio sends): kept as it is, without the parser's cost.
    if is_e164(raw) {
        return Some(raw.to_string());
    }
    let international = raw.starts_with('+') || raw.starts_with("00");
    if !international && country.is_none() {
        return None;
    }
    // Rewritten only when the numbering plan says it is a number there: `0999` is not `+91999`.
    let number = phonenumber::parse(country.map(|c| c.0), raw).ok()?;
    phonenumber::is_valid(&number).then(|| number.format().mode(phonenumber::Mode::E164).to_string())
}

/// Whether `s` is written as E.164: `+`, then 8 to 15 digits, the first not zero.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// A number as the canonical payload carries it: E.164 when it reads as one, else as sent;
/// with the provider's own spelling beside it when that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub number: String,
    pub raw: Option<String>,
}

/// Normalize `raw` for a payload (see [`Normalized`]).
pub fn normalize(raw: &str, country: Option<Country>) -> Normalized {
    match e164(raw, country) {
        Some(n) if n == raw => Normalized { number: n, raw: None },
        Some(n) => Normalized { number: n, raw: Some(raw.to_string()) },
        None => Normalized { number: raw.to_string(), raw: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Option<Country> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn national_numbers_read_in_the_tenants_country_never_in_plus_one() {
        assert_eq!(e164("09876543210", c("IN")).as_deref(), Some("+919876543210"));
        assert_eq!(e164("098765 43210", c("IN")).as_deref(), Some("+919876543210"));
        assert_eq!(e164("(415) 867-5309", c("US")).as_deref(), Some("+14158675309"));
        assert_eq!(e164("020 7946 0958", c("GB")).as_deref(), Some("+442079460958"));
        assert_eq!(e164("09876543210", None), None, "no country: not guessed");
        assert_eq!(e164("0999", c("IN")), None, "not a number in India");
    }

    #[test]
    fn international_numbers_keep_their_own_country() {
        assert_eq!(e164("+14158675309", c("IN")).as_deref(), Some("+14158675309"));
        assert_eq!(e164("+91 98765 43210", None).as_deref(), Some("+919876543210"));
        assert_eq!(e164("0044 20 7946 0958", c("IN")).as_deref(), Some("+442079460958"));
    }

    #[test]
    fn what_is_not_a_number_stays_as_sent() {
        for raw in ["anonymous", "client:alice", "sip:alice@example.com", "", "+", "12", "0999", "+0123456789"] {
            assert_eq!(e164(raw, c("US")), None, "{raw}");
            assert_eq!(normalize(raw, c("US")).number, raw);
        }
        assert_eq!(normalize("09876543210", c("IN")).raw.as_deref(), Some("09876543210"));
        assert_eq!(normalize("+14158675309", c("IN")).raw, None);
    }

    #[test]
    fn countries_are_iso_codes_in_upper_case() {
        assert_eq!("IN".parse::<Country>().unwrap().as_str(), "IN");
        for bad in ["in", "IND", "XX", "", "+91", "U S"] {
            assert!(bad.parse::<Country>().is_err(), "{bad}");
        }
    }
}
