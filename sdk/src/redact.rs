//! Redaction helpers: find phone numbers in JSON payloads and mask them.
//! Pure functions over values; no host calls.

use serde_json::Value;

/// How many trailing digits a masked phone number keeps.
pub const KEEP_DIGITS: usize = 4;

/// Whether `s` looks like a phone number: an optional leading `+`, then 7 to 15 digits,
/// possibly separated by spaces, dashes, dots or parentheses (`+1 (415) 867-5309`).
/// Identifiers with letters (`CA123…`) and short numbers are not phone numbers.
pub fn looks_like_phone(s: &str) -> bool {
    let t = s.trim();
    let body = t.strip_prefix('+').unwrap_or(t);
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '(') {
        return false;
    }
    let mut digits = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return false,
        }
    }
    (7..=15).contains(&digits)
}

/// Mask every digit of `s` but the last [`KEEP_DIGITS`], keeping separators and a leading `+`:
/// `+14158675309` → `+*******5309`.
pub fn mask_phone(s: &str) -> String {
    let total = s.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= total.saturating_sub(KEEP_DIGITS) {
                    return '*';
                }
            }
            c
        })
        .collect()
}

/// Mask every string in `value`, at any depth, that [`looks_like_phone`]. Returns how many
/// strings were masked.
pub fn redact_phones(value: &mut Value) -> usize {
    match value {
        Value::String(s) if looks_like_phone(s) => {
            *s = mask_phone(s);
            1
        }
        Value::Array(items) => items.iter_mut().map(redact_phones).sum(),
        Value::Object(map) => map.values_mut().map(redact_phones).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recognises_phone_numbers_and_not_ids() {
        for yes in ["+14158675309", "4158675309", "+1 (415) 867-5309", "+91 80 4719 2000"] {
            assert!(looks_like_phone(yes), "{yes}");
        }
        for no in ["CA1234567890ABCDE", "42", "+", "", "client:alice", "12-34", "1234567890123456"] {
            assert!(!looks_like_phone(no), "{no}");
        }
    }

    #[test]
    fn masks_all_but_last_four_digits() {
        assert_eq!(mask_phone("+14158675309"), "+*******5309");
        assert_eq!(mask_phone("+1 (415) 867-5309"), "+* (***) ***-5309");
    }

    #[test]
    fn redacts_nested_fields_only_where_phone_like() {
        let mut v = json!({
            "from": "+14158675309",
            "call_sid": "CA1234567890ABCDE",
            "legs": [{"to": "+18005551212", "duration": 42}],
            "note": "call me"
        });
        assert_eq!(redact_phones(&mut v), 2);
        assert_eq!(v["from"], "+*******5309");
        assert_eq!(v["legs"][0]["to"], "+*******1212");
        assert_eq!(v["call_sid"], "CA1234567890ABCDE");
        assert_eq!(v["legs"][0]["duration"], 42);
    }
}
