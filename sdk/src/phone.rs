//! Phone numbers: E.164 checks and normalisation.
//!
//! The host reads the numbers of canonical payloads (`from`, `to`, `contact`) in the tenant's
//! default country (`PUT /v1/tenants/{id}/settings`) with libphonenumber's metadata, keeping
//! the provider's spelling as `from_raw`/`to_raw` when it differs: a plugin normally needs only
//! [`is_e164`]. [`e164`] is for numbers a plugin finds elsewhere (a CRM field, a transcript),
//! with the calling code the plugin knows applies.

/// Whether `s` is written as E.164: `+`, then 8 to 15 digits, the first not zero.
///
/// ```
/// use hookhost_sdk::phone::is_e164;
/// assert!(is_e164("+919876543210"));
/// assert!(!is_e164("09876543210"));
/// assert!(!is_e164("anonymous"));
/// ```
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// `raw` as E.164 (`+` and 8 to 15 digits), reading a number without `+` or international
/// prefix (`00`, `011`) as national in `default_country` (its calling code, e.g. `"1"` or
/// `"91"`; a single trunk `0` is dropped). Spaces, dots, dashes and parentheses are ignored.
/// `None` when what is left is not a plausible number.
///
/// ```
/// use hookhost_sdk::phone::e164;
/// assert_eq!(e164("(415) 867-5309", "1").as_deref(), Some("+14158675309"));
/// assert_eq!(e164("+44 20 7946 0958", "1").as_deref(), Some("+442079460958"));
/// assert_eq!(e164("00919876543210", "1").as_deref(), Some("+919876543210"));
/// assert_eq!(e164("098765 43210", "91").as_deref(), Some("+919876543210"));
/// assert_eq!(e164("not a number", "1"), None);
/// ```
pub fn e164(raw: &str, default_country: &str) -> Option<String> {
    let raw = raw.trim();
    let plus = raw.starts_with('+');
    let mut digits = String::with_capacity(raw.len());
    for (i, c) in raw.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '.' | '-' | '(' | ')' | '\u{a0}' => {}
            _ => return None,
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00").or_else(|| digits.strip_prefix("011")) {
        rest.to_string()
    } else {
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        if digits.len() == 11 && default_country == "1" && digits.starts_with('1') {
            digits.clone()
        } else {
            format!("{default_country}{national}")
        }
    };
    let ok = (8..=15).contains(&international.len()) && !international.starts_with('0');
    ok.then(|| format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::e164;

    #[test]
    fn north_american_numbers_with_and_without_the_leading_one() {
        assert_eq!(e164("4158675309", "1").as_deref(), Some("+14158675309"));
        assert_eq!(e164("1-415-867-5309", "1").as_deref(), Some("+14158675309"));
        assert_eq!(e164("011 44 20 7946 0958", "1").as_deref(), Some("+442079460958"));
    }

    #[test]
    fn implausible_numbers_are_refused() {
        assert_eq!(e164("+12", "1"), None);
        assert_eq!(e164("+1234567890123456", "1"), None);
        assert_eq!(e164("415x867", "1"), None);
        assert_eq!(e164("", "1"), None);
    }
}
